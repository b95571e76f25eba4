import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ETHERTYPE_IPV4,
  FrameParser,
  ICMP_ECHO_REQUEST,
  IPIP_OVERHEAD,
  IPPROTO_ICMP,
  IPPROTO_IPIP,
  IPPROTO_TCP,
  Ipv4View,
  ParseResult,
  emitEthernetHeader,
  ipipDecapsulate,
  ipipEncapsulate,
  ipv4ToString,
  macFromString,
} from '../../../src/packet/index.js';
import { type FrameName, frame } from './fixtures/frames.js';
import { ipipEchoFrame } from './fixtures/synthetic.js';
import { expectResult, ip, ipOf } from './helpers.js';

const W1 = ip('10.1.110.102');
const W2 = ip('10.1.110.107');

/** Copies the IP packet of a captured frame behind 14 + 20 bytes of headroom. */
function withHeadroom(name: FrameName): Ipv4View {
  const f = frame(name);
  const buf = Buffer.alloc(f.length + IPIP_OVERHEAD);
  f.copy(buf, 14 + IPIP_OVERHEAD, 14);
  const v = new Ipv4View();
  expectResult(v.wrap(buf, 14 + IPIP_OVERHEAD, f.length - 14), ParseResult.Ok);
  return v;
}

describe('IPIP', () => {
  it('ipipEncapsulate writes the outer header into the headroom (pinned, tshark-checked)', () => {
    const inner = withHeadroom('echoRequest');
    const o = ipipEncapsulate(inner, W1, W2, 0x1234);
    assert.equal(o, 14);
    emitEthernetHeader(
      inner.buf,
      0,
      macFromString('02:42:0a:01:6e:6b'),
      macFromString('02:42:0a:01:6e:66'),
      ETHERTYPE_IPV4,
    );
    assert.deepEqual(inner.buf, ipipEchoFrame());
  });

  it('the outer header inherits TTL, TOS and DF, or takes the given TTL', () => {
    const inner = withHeadroom('echoReply'); // ttl 63, DF clear
    inner.setTos(0xb9);
    const o = ipipEncapsulate(inner, W1, W2, 7);
    const outer = new Ipv4View();
    expectResult(outer.wrap(inner.buf, o, inner.buf.length - o), ParseResult.Ok);
    assert.equal(outer.ttl, 63);
    assert.equal(outer.tos, 0xb9);
    assert.ok(!outer.dontFragment);
    assert.equal(outer.protocol, IPPROTO_IPIP);
    assert.equal(outer.totalLength, 72);
    assert.ok(outer.verifyChecksum());
    const o2 = ipipEncapsulate(withHeadroom('tcpSyn'), W1, W2, 7, 255);
    assert.equal(o2, 14);
  });

  it('refuses without headroom', () => {
    const v = ipOf('echoRequest');
    assert.equal(ipipEncapsulate(v, W1, W2, 1), -1); // offset 14 < 20
  });

  it('ipipDecapsulate re-wraps the inner packet in place', () => {
    const f = ipipEchoFrame();
    const outer = ipOf('echoRequest', f);
    assert.equal(ipv4ToString(outer.src), '10.1.110.102');
    const inner = new Ipv4View();
    expectResult(ipipDecapsulate(outer, inner), ParseResult.Ok);
    assert.equal(inner.offset, 34);
    assert.equal(inner.protocol, IPPROTO_ICMP);
    assert.ok(inner.verifyChecksum());
    assert.deepEqual(f.subarray(34), frame('echoRequest').subarray(14));
  });

  it('ipipDecapsulate reasons: not IPIP, fragmented outer, bad inner', () => {
    const inner = new Ipv4View();
    expectResult(ipipDecapsulate(ipOf('echoRequest'), inner), ParseResult.Unrecognized);
    const frag = ipipEchoFrame();
    frag[20] |= 0x20; // MF
    expectResult(ipipDecapsulate(ipOf('echoRequest', frag), inner), ParseResult.Fragmented);
    const trunc = ipipEchoFrame();
    trunc.writeUInt16BE(53, 36); // inner total length 53 > 52
    expectResult(ipipDecapsulate(ipOf('echoRequest', trunc), inner), ParseResult.Truncated);
  });

  it('FrameParser walks into the tunnel', () => {
    const p = new FrameParser();
    const f = ipipEchoFrame();
    expectResult(p.parse(f, 0, f.length), ParseResult.Ok);
    assert.ok(p.tunneled);
    assert.equal(p.l3, p.inner);
    assert.equal(ipv4ToString(p.ip.dst), '10.1.110.107');
    assert.equal(ipv4ToString(p.l3.dst), '10.200.2.2');
    assert.equal(p.protocol, IPPROTO_ICMP);
    assert.equal(p.icmp.type, ICMP_ECHO_REQUEST);

    const syn = withHeadroom('tcpSyn');
    const o = ipipEncapsulate(syn, W1, W2, 9);
    emitEthernetHeader(
      syn.buf,
      o - 14,
      macFromString('ee:ee:ee:ee:ee:ee'),
      macFromString('02:00:00:00:00:01'),
      ETHERTYPE_IPV4,
    );
    expectResult(p.parse(syn.buf, 0, syn.buf.length), ParseResult.Ok);
    assert.equal(p.protocol, IPPROTO_TCP);
    assert.equal(p.tcp.mss, 1240);
  });
});
