import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETH_HEADER_LEN,
  EthernetView,
  ParseResult,
  emitEthernetHeader,
  macFromString,
  macToString,
} from '../../../src/packet/index.js';
import { frame } from './fixtures/frames.js';
import { everyPrefixRejected, expectResult } from './helpers.js';

const MAC_A = macFromString('02:00:0a:c8:01:02');
const MAC_R = macFromString('02:00:0a:c8:01:01');

describe('EthernetView', () => {
  it('parses the captured ARP request (broadcast)', () => {
    const f = frame('arpRequest');
    const e = new EthernetView();
    expectResult(e.wrap(f, 0, f.length), ParseResult.Ok);
    assert.equal(e.etherType, ETHERTYPE_ARP);
    assert.ok(e.dstIsBroadcast);
    assert.ok(e.dstIsMulticast);
    assert.ok(e.srcIs(MAC_A));
    assert.ok(!e.srcIsMulticast);
    assert.equal(macToString(f, e.srcOffset), '02:00:0a:c8:01:02');
    assert.equal(e.payloadOffset, 14);
    assert.equal(e.payloadLength, 28);
  });

  it('parses a unicast IPv4 frame and an IPv6 multicast frame', () => {
    const f = frame('echoRequest');
    const e = new EthernetView();
    expectResult(e.wrap(f, 0, f.length), ParseResult.Ok);
    assert.equal(e.etherType, ETHERTYPE_IPV4);
    assert.ok(e.dstIs(MAC_R));
    assert.ok(!e.dstIs(MAC_A));
    assert.ok(!e.dstIsBroadcast);
    assert.ok(!e.dstIsMulticast);
    assert.equal(e.payloadLength, 52);

    const v6 = frame('ipv6RouterSolicitation');
    expectResult(e.wrap(v6, 0, v6.length), ParseResult.Ok);
    assert.equal(e.etherType, ETHERTYPE_IPV6);
    assert.equal(macToString(v6, e.dstOffset), '33:33:00:00:00:02');
    assert.ok(e.dstIsMulticast);
    assert.ok(!e.dstIsBroadcast);
  });

  it('re-emits the captured header byte for byte', () => {
    for (const name of ['arpRequest', 'arpReply', 'echoReply', 'tcpSyn'] as const) {
      const f = frame(name);
      const e = new EthernetView();
      expectResult(e.wrap(f, 0, f.length), ParseResult.Ok);
      const out = Buffer.alloc(14);
      const dst = Buffer.alloc(6);
      const src = Buffer.alloc(6);
      e.copyDstTo(dst, 0);
      e.copySrcTo(src, 0);
      assert.equal(emitEthernetHeader(out, 0, dst, src, e.etherType), ETH_HEADER_LEN);
      assert.deepEqual(out, f.subarray(0, 14), name);
    }
  });

  it('setters and swap write in place', () => {
    const f = frame('echoRequest');
    const e = new EthernetView();
    e.wrap(f, 0, f.length);
    e.swapAddresses();
    assert.ok(e.dstIs(MAC_A) && e.srcIs(MAC_R));
    const ee = macFromString('ee:ee:ee:ee:ee:ee');
    e.setDst(ee);
    e.setSrc(MAC_A);
    e.setEtherType(ETHERTYPE_ARP);
    assert.equal(f.subarray(0, 14).toString('hex'), 'eeeeeeeeeeee02000ac801020806');
    assert.equal(f.length, 66);
  });

  it('works at an offset inside a larger buffer', () => {
    const f = frame('arpReply');
    const big = Buffer.alloc(f.length + 100, 0xaa);
    f.copy(big, 50);
    const e = new EthernetView();
    expectResult(e.wrap(big, 50, f.length), ParseResult.Ok);
    assert.ok(e.dstIs(MAC_A));
    assert.equal(e.payloadOffset, 64);
  });

  it('rejects short frames and bad ranges as Truncated', () => {
    const e = new EthernetView();
    const f = frame('arpRequest');
    everyPrefixRejected((b, o, l) => e.wrap(b, o, l), f, 0, 14, [ParseResult.Truncated]);
    expectResult(e.wrap(f, 0, f.length + 1), ParseResult.Truncated);
    expectResult(e.wrap(f, 30, 14), ParseResult.Truncated);
    expectResult(e.wrap(f, -1, 20), ParseResult.Truncated);
    expectResult(e.wrap(f, 0, NaN), ParseResult.Truncated);
    expectResult(e.wrap(f, 0.5, 20), ParseResult.Truncated);
  });
});
