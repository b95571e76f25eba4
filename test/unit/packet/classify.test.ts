import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ETHERTYPE_ARP,
  ETHERTYPE_IPV6,
  FrameLayer,
  FrameParser,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ParseResult,
  frameLayerNames,
  parseResultNames,
} from '../../../src/packet/index.js';
import { type FrameName, FRAME_HEX, frame } from './fixtures/frames.js';
import { ipipEchoFrame } from './fixtures/synthetic.js';
import { expectResult } from './helpers.js';

const ALL = Object.keys(FRAME_HEX) as FrameName[];

function expected(name: FrameName): [ParseResult, FrameLayer, number] {
  if (name.startsWith('arp')) return [ParseResult.Ok, FrameLayer.Arp, -1];
  if (name.startsWith('ipv6')) return [ParseResult.Unrecognized, FrameLayer.Ethernet, -1];
  if (name.startsWith('fragment')) return [ParseResult.Fragmented, FrameLayer.Ipv4, IPPROTO_ICMP];
  if (name.startsWith('tcp')) return [ParseResult.Ok, FrameLayer.Tcp, IPPROTO_TCP];
  if (name.startsWith('udp')) return [ParseResult.Ok, FrameLayer.Udp, IPPROTO_UDP];
  return [ParseResult.Ok, FrameLayer.Icmp, IPPROTO_ICMP];
}

describe('FrameParser', () => {
  const p = new FrameParser();

  for (const name of ALL) {
    const [result, layer, proto] = expected(name);
    it(`${name}: ${parseResultNames[result]} at ${frameLayerNames[layer]}`, () => {
      const f = frame(name);
      expectResult(p.parse(f, 0, f.length), result, name);
      assert.equal(p.layer, layer);
      assert.equal(p.protocol, proto);
      assert.ok(!p.tunneled);
    });
  }

  it('sets the views it parsed', () => {
    const f = frame('portUnreachable');
    expectResult(p.parse(f, 0, f.length), ParseResult.Ok);
    assert.equal(p.icmp.code, 3);
    assert.equal(p.quoted.payloadDstPort, 33434);
    const a = frame('arpRequest');
    expectResult(p.parse(a, 0, a.length), ParseResult.Ok);
    assert.equal(p.etherType, ETHERTYPE_ARP);
    assert.equal(p.arp.op, 1);
    const v6 = frame('ipv6RouterSolicitation');
    p.parse(v6, 0, v6.length);
    assert.equal(p.etherType, ETHERTYPE_IPV6);
  });

  it('every strict prefix of every frame is Truncated or Malformed', () => {
    for (const name of [...ALL.filter((n) => !n.startsWith('ipv6'))]) {
      const f = frame(name);
      for (let l = 0; l < f.length; l++) {
        const cut = Buffer.from(f.subarray(0, l));
        const r = p.parse(cut, 0, l);
        assert.ok(
          r === ParseResult.Truncated || r === ParseResult.Malformed,
          `${name} prefix ${l}: ${parseResultNames[r]}`,
        );
      }
    }
    const t = ipipEchoFrame();
    for (let l = 0; l < t.length; l++) {
      assert.equal(p.parse(Buffer.from(t.subarray(0, l)), 0, l), ParseResult.Truncated);
    }
  });

  it('reports bad checksums at the layer they are in', () => {
    const cases: [FrameName, number, FrameLayer][] = [
      ['tcpSyn', 25, FrameLayer.Ipv4], // IP header checksum byte
      ['tcpSyn', 60, FrameLayer.Tcp], // an option byte
      ['udpDatagram', 45, FrameLayer.Udp],
      ['echoRequest', 50, FrameLayer.Icmp],
    ];
    for (const [name, at, layer] of cases) {
      const f = frame(name);
      f[at] ^= 0x40;
      expectResult(p.parse(f, 0, f.length), ParseResult.Checksum, `${name}[${at}]`);
      assert.equal(p.layer, layer);
    }
    const t = ipipEchoFrame();
    t[42] ^= 1; // inner TTL
    expectResult(p.parse(t, 0, t.length), ParseResult.Checksum);
    assert.equal(p.layer, FrameLayer.InnerIpv4);
  });

  it('skips transport checksums when asked', () => {
    const q = new FrameParser();
    q.verifyL4Checksums = false;
    const f = frame('tcpSyn');
    f[60] ^= 0x40;
    expectResult(q.parse(f, 0, f.length), ParseResult.Ok);
    f[25] ^= 1;
    expectResult(q.parse(f, 0, f.length), ParseResult.Checksum);
  });

  it('an ICMP error with an unusable quote fails at the quote', () => {
    const f = frame('timeExceeded');
    f[42] = 0x44; // quoted IHL 4
    // keep the ICMP checksum right so the quote is what fails
    const q = new FrameParser();
    q.verifyL4Checksums = false;
    expectResult(q.parse(f, 0, f.length), ParseResult.Malformed);
    assert.equal(q.layer, FrameLayer.IcmpQuote);
  });

  it('unknown IP protocols are Ok without a transport view', () => {
    const f = frame('echoRequest');
    f[23] = 47; // GRE
    f.writeUInt16BE(0, 24);
    const ipv = new FrameParser();
    ipv.ip.wrap(f, 14, 52);
    ipv.ip.fillChecksum();
    expectResult(ipv.parse(f, 0, f.length), ParseResult.Ok);
    assert.equal(ipv.protocol, 47);
    assert.equal(ipv.layer, FrameLayer.Ipv4);
  });
});
