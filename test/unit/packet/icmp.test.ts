import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ETH_HEADER_LEN,
  EthernetView,
  ICMP_DEST_UNREACH,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_ERROR_MAX_QUOTE,
  ICMP_EXC_TTL,
  ICMP_FRAG_NEEDED,
  ICMP_PARAMETER_PROB,
  ICMP_PORT_UNREACH,
  ICMP_TIME_EXCEEDED,
  IPPROTO_ICMP,
  IPPROTO_UDP,
  IcmpView,
  Ipv4View,
  ParseResult,
  emitIcmpError,
  emitIcmpErrorPacket,
  icmpErrorAllowed,
  ipv4ToString,
  turnEchoRequestIntoReply,
} from '../../../src/packet/index.js';
import { frame } from './fixtures/frames.js';
import { everyPrefixRejected, expectResult, icmpOf, ip, ipOf } from './helpers.js';

const A = '10.200.1.2';
const R = '10.200.1.1';
const B = '10.200.2.2';

function quotedOf(icmp: IcmpView): Ipv4View {
  const q = new Ipv4View();
  expectResult(q.wrapQuoted(icmp.buf, icmp.embeddedOffset, icmp.embeddedLength), ParseResult.Ok);
  return q;
}

describe('IcmpView on captured messages', () => {
  it('echo request and reply (ping -s 24 -p 6b7562657769726521)', () => {
    const req = icmpOf(ipOf('echoRequest'));
    assert.equal(req.type, ICMP_ECHO_REQUEST);
    assert.equal(req.code, 0);
    assert.equal(req.identifier, 8145);
    assert.equal(req.sequence, 1);
    assert.equal(req.checksum, 0x1eaf);
    assert.equal(req.length, 32);
    assert.ok(!req.isError);
    assert.ok(req.verifyChecksum());
    assert.equal(req.payloadLength, 24);
    assert.ok(req.buf.subarray(req.payloadOffset).toString('latin1').endsWith('e!kubewi'));
    const rep = icmpOf(ipOf('echoReply'));
    assert.equal(rep.type, ICMP_ECHO_REPLY);
    assert.equal(rep.identifier, 8145);
    assert.equal(rep.sequence, 1);
    assert.ok(rep.verifyChecksum());
  });

  it('time exceeded in transit, quoting the whole 84-byte original', () => {
    const icmp = icmpOf(ipOf('timeExceeded'));
    assert.equal(icmp.type, ICMP_TIME_EXCEEDED);
    assert.equal(icmp.code, ICMP_EXC_TTL);
    assert.ok(icmp.isError);
    assert.ok(icmp.verifyChecksum());
    assert.equal(icmp.length, 92);
    assert.equal(icmp.embeddedLength, 84);
    const q = quotedOf(icmp);
    assert.equal(ipv4ToString(q.src), A);
    assert.equal(ipv4ToString(q.dst), B);
    assert.equal(q.ttl, 1);
    assert.equal(q.id, 9560);
    assert.equal(q.totalLength, 84);
    assert.equal(q.length, 84);
    assert.ok(q.verifyChecksum());
    assert.deepEqual(
      q.buf.subarray(q.offset, q.offset + 84),
      frame('ttl1EchoRequest').subarray(14),
    );
  });

  it('frag needed (mtu 1280), quote cut at 576 bytes of IP', () => {
    const ipv = ipOf('fragNeeded');
    const icmp = icmpOf(ipv);
    assert.equal(icmp.type, ICMP_DEST_UNREACH);
    assert.equal(icmp.code, ICMP_FRAG_NEEDED);
    assert.equal(icmp.nextHopMtu, 1280);
    assert.ok(icmp.verifyChecksum());
    assert.equal(icmp.length, 556);
    assert.equal(icmp.embeddedLength, ICMP_ERROR_MAX_QUOTE);
    const q = quotedOf(icmp);
    assert.equal(q.totalLength, 1328);
    assert.equal(q.length, 548);
    assert.ok(q.dontFragment);
    assert.equal(q.protocol, IPPROTO_ICMP);
    assert.equal(ipv4ToString(q.dst), B);
    const echo = new IcmpView();
    expectResult(echo.wrap(q.buf, q.payloadOffset, q.payloadLength), ParseResult.Ok);
    assert.equal(echo.identifier, 8209);
  });

  it('port unreachable quoting the UDP datagram', () => {
    const icmp = icmpOf(ipOf('portUnreachable'));
    assert.equal(icmp.type, ICMP_DEST_UNREACH);
    assert.equal(icmp.code, ICMP_PORT_UNREACH);
    assert.ok(icmp.verifyChecksum());
    const q = quotedOf(icmp);
    assert.equal(q.protocol, IPPROTO_UDP);
    assert.equal(q.ttl, 63);
    assert.equal(q.id, 11115);
    assert.equal(q.payloadSrcPort, 40002);
    assert.equal(q.payloadDstPort, 33434);
  });

  it('rejects fewer than 8 bytes as Truncated', () => {
    const f = frame('echoRequest');
    const v = new IcmpView();
    everyPrefixRejected((b, o, l) => v.wrap(b, o, l), f, 34, 8, [ParseResult.Truncated]);
    expectResult(v.wrap(f, 34, 8), ParseResult.Ok);
    assert.equal(v.embeddedLength, 0);
  });
});

describe('ICMP error builders reproduce the kernel', () => {
  const out = Buffer.alloc(700);

  it('time exceeded from R about the ttl-1 echo request', () => {
    const original = ipOf('ttl1EchoRequest');
    const n = emitIcmpErrorPacket(out, 0, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, original, ip(R), 49652);
    assert.equal(n, 112);
    assert.deepEqual(out.subarray(0, n), frame('timeExceeded').subarray(ETH_HEADER_LEN));
  });

  it('frag needed from R about the 1328-byte DF echo request (576-byte rule)', () => {
    const original = ipOf('bigEchoRequest');
    const n = emitIcmpErrorPacket(
      out,
      0,
      ICMP_DEST_UNREACH,
      ICMP_FRAG_NEEDED,
      original,
      ip(R),
      49917,
      1280,
    );
    assert.equal(n, 576);
    assert.deepEqual(out.subarray(0, n), frame('fragNeeded').subarray(ETH_HEADER_LEN));
  });

  it('port unreachable from B, forwarded back by R', () => {
    const original = ipOf('udpToClosedPort');
    original.decrementTtl(); // as B received it
    const n = emitIcmpErrorPacket(
      out,
      0,
      ICMP_DEST_UNREACH,
      ICMP_PORT_UNREACH,
      original,
      ip(B),
      15387,
    );
    const reply = new Ipv4View();
    expectResult(reply.wrap(out, 0, n), ParseResult.Ok);
    reply.decrementTtl(); // R forwards it to A
    assert.deepEqual(out.subarray(0, n), frame('portUnreachable').subarray(ETH_HEADER_LEN));
  });

  it('emitIcmpError alone: ICMP length, pointer of a parameter problem', () => {
    const original = ipOf('rrEchoRequest');
    const n = emitIcmpError(out, 10, ICMP_PARAMETER_PROB, 0, original, 21);
    assert.equal(n, 8 + 124);
    const icmp = new IcmpView();
    expectResult(icmp.wrap(out, 10, n), ParseResult.Ok);
    assert.equal(icmp.pointer, 21);
    assert.equal(icmp.gateway, 21 << 24);
    assert.ok(icmp.verifyChecksum());
    assert.deepEqual(out.subarray(18, 18 + 124), frame('rrEchoRequest').subarray(14));
  });
});

describe('icmpErrorAllowed', () => {
  it('allows errors about ordinary packets', () => {
    for (const n of ['ttl1EchoRequest', 'bigEchoRequest', 'udpToClosedPort', 'tcpSyn'] as const) {
      assert.ok(icmpErrorAllowed(ipOf(n)), n);
    }
    assert.ok(icmpErrorAllowed(ipOf('fragmentFirst')));
  });

  it('refuses errors about errors, non-first fragments, bad sources and group destinations', () => {
    assert.ok(!icmpErrorAllowed(ipOf('timeExceeded')));
    assert.ok(!icmpErrorAllowed(ipOf('portUnreachable')));
    assert.ok(!icmpErrorAllowed(ipOf('fragmentLast')));
    for (const [src, dst] of [
      ['0.0.0.0', B],
      ['127.0.0.1', B],
      ['224.0.0.5', B],
      ['255.255.255.255', B],
      [A, '239.1.2.3'],
      [A, '255.255.255.255'],
    ]) {
      const v = ipOf('udpDatagram');
      v.setSrc(ip(src));
      v.setDst(ip(dst));
      assert.ok(!icmpErrorAllowed(v), `${src} > ${dst}`);
    }
    const unknownType = ipOf('echoRequest');
    unknownType.buf[unknownType.payloadOffset] = 42;
    assert.ok(!icmpErrorAllowed(unknownType));
  });
});

describe('turnEchoRequestIntoReply', () => {
  it('turns the captured request to R into the captured reply from R', () => {
    const f = frame('pingRouterRequest');
    const e = new EthernetView();
    e.wrap(f, 0, f.length);
    const ipv = ipOf('pingRouterRequest', f);
    const icmp = icmpOf(ipv);
    turnEchoRequestIntoReply(ipv, icmp);
    // What Linux does besides: a fresh IP id and DF clear.
    ipv.setId(49112);
    ipv.setDontFragment(false);
    e.swapAddresses();
    assert.deepEqual(f, frame('pingRouterReply'));
  });

  it('turns the request to B into the reply A saw after R forwarded it', () => {
    const f = frame('echoRequest');
    const e = new EthernetView();
    e.wrap(f, 0, f.length);
    const ipv = ipOf('echoRequest', f);
    const icmp = icmpOf(ipv);
    turnEchoRequestIntoReply(ipv, icmp, 64);
    ipv.setId(13905);
    ipv.setDontFragment(false);
    ipv.decrementTtl();
    e.swapAddresses();
    assert.deepEqual(f, frame('echoReply'));
  });

  it('echo setters update the checksum incrementally', () => {
    const icmp = icmpOf(ipOf('pingRouterRequest'));
    icmp.setIdentifier(0xbeef);
    icmp.setSequence(0xffff);
    icmp.setCode(1);
    icmp.setType(ICMP_ECHO_REPLY);
    assert.equal(icmp.identifier, 0xbeef);
    assert.equal(icmp.sequence, 0xffff);
    assert.equal(icmp.code, 1);
    assert.ok(icmp.verifyChecksum());
    const c = icmp.checksum;
    icmp.fillChecksum();
    assert.equal(icmp.checksum, c);
  });
});
