import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IPOPT_RR,
  IPPROTO_ICMP,
  Ipv4View,
  ParseResult,
  emitIpv4Header,
  ipv4ToString,
  parseIpv4Repr,
  readIpv4,
} from '../../../src/packet/index.js';
import { type FrameName, FRAME_HEX, frame } from './fixtures/frames.js';
import { everyPrefixRejected, expectResult, ip, ipOf } from './helpers.js';

const A = '10.200.1.2';
const R = '10.200.1.1';
const B = '10.200.2.2';

// name, tos, ttl, id, DF, MF, fragment offset, protocol, total length, header length, src, dst —
// as printed by tcpdump -vv for each captured frame (see the comments in fixtures/frames.ts).
type Row = [
  FrameName,
  number,
  number,
  number,
  boolean,
  boolean,
  number,
  number,
  number,
  number,
  string,
  string,
];
const TABLE: Row[] = [
  ['pingRouterRequest', 0, 64, 60414, true, false, 0, 1, 84, 20, A, R],
  ['pingRouterReply', 0, 64, 49112, false, false, 0, 1, 84, 20, R, A],
  ['echoRequest', 0, 64, 9294, true, false, 0, 1, 52, 20, A, B],
  ['echoReply', 0, 63, 13905, false, false, 0, 1, 52, 20, B, A],
  ['rrEchoRequest', 0, 64, 9301, true, false, 0, 1, 124, 60, A, B],
  ['rrEchoReply', 0, 63, 14096, false, false, 0, 1, 124, 60, B, A],
  ['ttl1EchoRequest', 0, 1, 9560, true, false, 0, 1, 84, 20, A, B],
  ['timeExceeded', 0xc0, 64, 49652, false, false, 0, 1, 112, 20, R, A],
  ['bigEchoRequest', 0, 64, 0, true, false, 0, 1, 1328, 20, A, B],
  ['fragNeeded', 0xc0, 64, 49917, false, false, 0, 1, 576, 20, R, A],
  ['fragmentFirst', 0, 64, 9850, false, true, 0, 1, 1276, 20, A, B],
  ['fragmentLast', 0, 64, 9850, false, false, 1256, 1, 772, 20, A, B],
  ['tcpSyn', 0, 64, 23996, true, false, 0, 6, 60, 20, A, B],
  ['tcpSynAck', 0, 63, 0, true, false, 0, 6, 60, 20, B, A],
  ['tcpAck', 0, 64, 23997, true, false, 0, 6, 52, 20, A, B],
  ['tcpClientData', 0, 64, 23998, true, false, 0, 6, 58, 20, A, B],
  ['tcpServerAck', 0, 63, 12340, true, false, 0, 6, 52, 20, B, A],
  ['tcpServerData', 0, 63, 12341, true, false, 0, 6, 58, 20, B, A],
  ['tcpClientAck', 0, 64, 23999, true, false, 0, 6, 52, 20, A, B],
  ['tcpFirstFin', 0, 64, 24000, true, false, 0, 6, 52, 20, A, B],
  ['tcpSecondFin', 0, 63, 12342, true, false, 0, 6, 52, 20, B, A],
  ['tcpLastAck', 0, 64, 24001, true, false, 0, 6, 52, 20, A, B],
  ['udpDatagram', 0, 64, 10778, true, false, 0, 17, 41, 20, A, B],
  ['udpNoChecksum', 0, 64, 10850, true, false, 0, 17, 41, 20, A, B],
  ['udpToClosedPort', 0, 64, 11115, true, false, 0, 17, 41, 20, A, B],
  ['portUnreachable', 0xc0, 63, 15387, false, false, 0, 1, 69, 20, B, A],
];

const IPV4_NAMES = (Object.keys(FRAME_HEX) as FrameName[]).filter(
  (n) => frame(n).readUInt16BE(12) === 0x0800,
);

describe('Ipv4View on captured frames', () => {
  it('covers every captured IPv4 frame', () => {
    assert.deepEqual(new Set(TABLE.map((r) => r[0])), new Set(IPV4_NAMES));
  });

  for (const [name, tos, ttl, id, df, mf, off, proto, total, hl, src, dst] of TABLE) {
    it(`${name}: fields as tcpdump printed them, checksum verifies`, () => {
      const v = ipOf(name);
      assert.equal(v.version, 4);
      assert.equal(v.tos, tos);
      assert.equal(v.dscp, tos >>> 2);
      assert.equal(v.ecn, 0);
      assert.equal(v.ttl, ttl);
      assert.equal(v.id, id);
      assert.equal(v.dontFragment, df);
      assert.equal(v.moreFragments, mf);
      assert.equal(v.fragmentOffset, off);
      assert.equal(v.isFragment, mf || off !== 0);
      assert.equal(v.protocol, proto);
      assert.equal(v.totalLength, total);
      assert.equal(v.length, total);
      assert.equal(v.headerLength, hl);
      assert.equal(v.optionsLength, hl - 20);
      assert.equal(ipv4ToString(v.src), src);
      assert.equal(ipv4ToString(v.dst), dst);
      assert.equal(v.payloadOffset, 14 + hl);
      assert.equal(v.payloadLength, total - hl);
      assert.ok(v.verifyChecksum());
      assert.equal(v.checksum, frame(name).readUInt16BE(24));
    });
  }

  it('rrEchoRequest: NOP, then record route with one slot used (ping -R)', () => {
    const v = ipOf('rrEchoRequest');
    const rr = v.findOption(IPOPT_RR);
    assert.equal(rr, v.optionsOffset + 1);
    assert.equal(v.buf[v.optionsOffset], 1); // NOP
    assert.equal(v.buf[rr + 1], 39); // length: 3 + 9 slots
    assert.equal(v.buf[rr + 2], 8); // pointer: next free slot
    assert.equal(ipv4ToString(readIpv4(v.buf, rr + 3)), A);
    assert.equal(readIpv4(v.buf, rr + 7), 0);
    assert.equal(v.findOption(68), -1);
  });

  it('rrEchoReply: the route recorded by A, R, B and back, then EOL', () => {
    const v = ipOf('rrEchoReply');
    const rr = v.findOption(IPOPT_RR);
    assert.equal(rr, v.optionsOffset);
    assert.equal(v.buf[rr + 1], 39);
    assert.equal(v.buf[rr + 2], 24);
    const recorded = [0, 1, 2, 3, 4].map((i) => ipv4ToString(readIpv4(v.buf, rr + 3 + 4 * i)));
    assert.deepEqual(recorded, [A, '10.200.2.1', B, B, R]);
    assert.equal(v.buf[v.optionsOffset + 39], 0); // EOL
  });

  it('re-emits every option-less, unfragmented header byte for byte', () => {
    for (const name of IPV4_NAMES) {
      const v = ipOf(name);
      if (v.headerLength !== 20 || v.isFragment) continue;
      const out = Buffer.alloc(20);
      assert.equal(emitIpv4Header(out, 0, parseIpv4Repr(v)), 20);
      assert.deepEqual(out, frame(name).subarray(14, 34), name);
    }
  });

  it('payloadSrcPort / payloadDstPort read ports, or -1', () => {
    const udp = ipOf('udpDatagram');
    assert.equal(udp.payloadSrcPort, 40000);
    assert.equal(udp.payloadDstPort, 5353);
    const tcp = ipOf('tcpSynAck');
    assert.equal(tcp.payloadSrcPort, 8080);
    assert.equal(tcp.payloadDstPort, 46120);
    assert.equal(ipOf('fragmentLast').payloadSrcPort, -1);
    const b = frame('udpDatagram');
    b.writeUInt16BE(23, 16); // total length: 3 payload bytes
    const v = new Ipv4View();
    v.wrap(b, 14, b.length - 14);
    assert.equal(v.payloadSrcPort, -1);
    assert.equal(v.payloadDstPort, -1);
  });

  it('trims Ethernet padding to the total length', () => {
    const f = Buffer.alloc(80, 0xee);
    frame('udpDatagram').copy(f);
    const v = ipOf('udpDatagram', f);
    assert.equal(v.length, 41);
    assert.equal(v.payloadLength, 21);
  });
});

describe('Ipv4View setters keep the header checksum exact', () => {
  function assertChecksumExact(v: Ipv4View, what: string): void {
    assert.ok(v.verifyChecksum(), what);
    const incremental = v.checksum;
    v.fillChecksum();
    assert.equal(incremental, v.checksum, what);
  }

  it('decrementTtl on every captured packet equals a full recomputation', () => {
    for (const name of IPV4_NAMES) {
      const v = ipOf(name);
      const ttl = v.ttl;
      v.decrementTtl();
      assert.equal(v.ttl, ttl - 1);
      assertChecksumExact(v, name);
    }
  });

  it('decrementTtl is a no-op at 0 and counts 1 -> 0', () => {
    const v = ipOf('ttl1EchoRequest');
    v.decrementTtl();
    assert.equal(v.ttl, 0);
    assertChecksumExact(v, 'ttl 0');
    v.decrementTtl();
    assert.equal(v.ttl, 0);
  });

  it('setSrc, setDst, setTtl, setTos, setId, setDontFragment, swapAddresses', () => {
    for (const name of ['echoRequest', 'rrEchoReply', 'tcpSyn', 'fragmentLast'] as const) {
      const v = ipOf(name);
      const l4 = Buffer.from(v.buf.subarray(v.payloadOffset));
      v.setSrc(ip('192.168.8.222'));
      v.setDst(ip('10.96.0.10'));
      assert.equal(v.src, ip('192.168.8.222'));
      assert.equal(v.dst, ip('10.96.0.10'));
      assertChecksumExact(v, `${name} addresses`);
      v.setTtl(200);
      v.setTos(0xb8);
      v.setId(0xfffe);
      v.setDontFragment(!v.dontFragment);
      assert.equal(v.ttl, 200);
      assert.equal(v.tos, 0xb8);
      assert.equal(v.id, 0xfffe);
      assertChecksumExact(v, `${name} fields`);
      const fo = v.fragmentOffset;
      v.setDontFragment(true);
      assert.ok(v.dontFragment);
      assert.equal(v.fragmentOffset, fo);
      v.swapAddresses();
      assert.equal(v.src, ip('10.96.0.10'));
      assert.equal(v.dst, ip('192.168.8.222'));
      assertChecksumExact(v, `${name} swap`);
      assert.deepEqual(v.buf.subarray(v.payloadOffset), l4, 'payload untouched');
    }
  });

  it('fillChecksum restores a zeroed checksum', () => {
    const f = frame('tcpSyn');
    f.writeUInt16BE(0, 24);
    const v = ipOf('tcpSyn', f);
    assert.ok(!v.verifyChecksum());
    v.fillChecksum();
    assert.deepEqual(f, frame('tcpSyn'));
  });
});

describe('Ipv4View rejects bad packets with a reason', () => {
  const v = new Ipv4View();
  function wrap(mutate: (b: Buffer) => void, name: FrameName = 'udpDatagram'): ParseResult {
    const f = frame(name);
    mutate(f);
    return v.wrap(f, 14, f.length - 14);
  }

  it('Malformed: version, IHL < 5, total length < header, bad options', () => {
    expectResult(
      wrap((b) => (b[14] = 0x65)),
      ParseResult.Malformed,
      'version 6',
    );
    expectResult(
      wrap((b) => (b[14] = 0x05)),
      ParseResult.Malformed,
      'version 0',
    );
    expectResult(
      wrap((b) => (b[14] = 0x44)),
      ParseResult.Malformed,
      'IHL 4',
    );
    expectResult(
      wrap((b) => b.writeUInt16BE(19, 16)),
      ParseResult.Malformed,
      'total 19',
    );
    expectResult(
      wrap((b) => b.writeUInt16BE(40, 16), 'rrEchoRequest'),
      ParseResult.Malformed,
      'total < IHL*4',
    );
    expectResult(
      wrap((b) => (b[36] = 1), 'rrEchoRequest'),
      ParseResult.Malformed,
      'RR len 1',
    );
    expectResult(
      wrap((b) => (b[36] = 40), 'rrEchoRequest'),
      ParseResult.Malformed,
      'RR too long',
    );
    // 39-byte RR followed by a lone option type without its length byte.
    expectResult(
      wrap((b) => {
        b[34] = 7;
        b[35] = 39;
        b[73] = 68;
      }, 'rrEchoRequest'),
      ParseResult.Malformed,
      'dangling type',
    );
  });

  it('Ok: options that end in EOL padding or are all NOPs', () => {
    expectResult(
      wrap(() => undefined, 'rrEchoReply'),
      ParseResult.Ok,
    );
    expectResult(
      wrap((b) => b.fill(1, 34, 74), 'rrEchoRequest'),
      ParseResult.Ok,
      'all NOP',
    );
    expectResult(
      wrap((b) => b.fill(0, 34, 74), 'rrEchoRequest'),
      ParseResult.Ok,
      'all EOL',
    );
  });

  it('Truncated: total length beyond the buffer, header beyond the buffer', () => {
    expectResult(
      wrap((b) => b.writeUInt16BE(42, 16)),
      ParseResult.Truncated,
      'total 42 > 41',
    );
    expectResult(
      wrap((b) => b.writeUInt16BE(0xffff, 16)),
      ParseResult.Truncated,
    );
    const f = frame('rrEchoRequest');
    expectResult(v.wrap(f, 14, 40), ParseResult.Truncated, 'IHL 15 in 40 bytes');
  });

  it('every prefix of every captured packet is Truncated', () => {
    for (const name of IPV4_NAMES) {
      const f = frame(name);
      everyPrefixRejected((b, o, l) => v.wrap(b, o, l), f, 14, f.length - 14, [
        ParseResult.Truncated,
      ]);
    }
  });

  it('wrapQuoted accepts a cut-short total length', () => {
    const q = new Ipv4View();
    const f = frame('bigEchoRequest');
    expectResult(q.wrapQuoted(f, 14, 548), ParseResult.Ok);
    assert.equal(q.totalLength, 1328);
    assert.equal(q.length, 548);
    assert.equal(q.payloadLength, 528);
    assert.equal(q.protocol, IPPROTO_ICMP);
    expectResult(q.wrapQuoted(f, 14, 19), ParseResult.Truncated);
    const rr = frame('rrEchoRequest');
    expectResult(q.wrapQuoted(rr, 14, 59), ParseResult.Truncated, 'options cut');
    expectResult(q.wrapQuoted(rr, 14, 60), ParseResult.Ok);
    assert.equal(q.payloadLength, 0);
    rr[14] = 0x44;
    expectResult(q.wrapQuoted(rr, 14, 60), ParseResult.Malformed);
  });
});
