import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ParseResult,
  UDP_HEADER_LEN,
  UdpView,
  emitIpv4Header,
  emitUdp,
  internetChecksum,
  parseIpv4Repr,
  pseudoHeaderSum,
} from '../../../src/packet/index.js';
import { type FrameName, frame } from './fixtures/frames.js';
import { everyPrefixRejected, expectResult, ipOf, onesAdd, udpOf } from './helpers.js';

// name, ports and checksum as `tshark -T fields -e udp.srcport -e udp.dstport -e udp.checksum
// -o udp.check_checksum:TRUE` printed them (status good, or "not present" for 0).
const UDP_FRAMES: [FrameName, number, number, number][] = [
  ['udpDatagram', 40000, 5353, 0xef77],
  ['udpNoChecksum', 40001, 5353, 0],
  ['udpToClosedPort', 40002, 33434, 0x81c4],
];

describe('UdpView on captured datagrams', () => {
  for (const [name, sport, dport, csum] of UDP_FRAMES) {
    it(`${name}: ${sport} > ${dport}, 13 bytes, checksum ${csum === 0 ? 'none' : 'ok'}`, () => {
      const ipv = ipOf(name);
      const u = udpOf(ipv);
      assert.equal(u.srcPort, sport);
      assert.equal(u.dstPort, dport);
      assert.equal(u.udpLength, 21);
      assert.equal(u.length, 21);
      assert.equal(u.payloadOffset, 42);
      assert.equal(u.payloadLength, 13);
      assert.equal(
        u.buf.toString('latin1', u.payloadOffset, u.payloadOffset + 13),
        'kubewire udp\n',
      );
      assert.equal(u.checksum, csum);
      assert.ok(u.verifyChecksum(ipv));
    });
  }

  it('checksum values against a full recomputation', () => {
    const ipv = ipOf('udpDatagram');
    const u = udpOf(ipv);
    const init = pseudoHeaderSum(ipv.src, ipv.dst, 17, u.length);
    assert.equal(internetChecksum(u.buf, u.offset, u.length, init), 0);
    const c = u.checksum;
    u.fillChecksum(ipv);
    assert.equal(u.checksum, c);
    u.buf[u.payloadOffset] ^= 1;
    assert.ok(!u.verifyChecksum(ipv));
  });

  it('emitUdp rebuilds each captured frame byte for byte', () => {
    for (const [name] of UDP_FRAMES) {
      const orig = frame(name);
      const ipv = ipOf(name);
      const u = udpOf(ipv);
      const out = Buffer.alloc(orig.length);
      orig.copy(out, 0, 0, 14);
      emitIpv4Header(out, 14, parseIpv4Repr(ipv));
      orig.copy(out, 42, 42);
      const n = emitUdp(out, 34, u.srcPort, u.dstPort, 13, ipv.src, ipv.dst, u.checksum !== 0);
      assert.equal(n, UDP_HEADER_LEN);
      assert.deepEqual(out, orig, name);
    }
  });

  it('a computed checksum of 0 is sent as 0xffff', () => {
    const ipv = ipOf('udpDatagram');
    const u = udpOf(ipv);
    // Change the first payload word so that the checksum would come out as 0.
    const w = u.buf.readUInt16BE(u.payloadOffset);
    u.buf.writeUInt16BE(onesAdd(w, u.checksum), u.payloadOffset);
    u.fillChecksum(ipv);
    assert.equal(u.checksum, 0xffff);
    assert.ok(u.verifyChecksum(ipv));
    const out = Buffer.from(ipv.buf);
    emitUdp(out, 34, u.srcPort, u.dstPort, 13, ipv.src, ipv.dst);
    assert.equal(out.readUInt16BE(40), 0xffff);
  });
});

describe('UdpView port setters', () => {
  it('update the checksum incrementally, equal to a full recomputation', () => {
    for (const port of [0, 1, 53, 8080, 31000, 0xffff]) {
      const ipv = ipOf('udpDatagram');
      const u = udpOf(ipv);
      u.setSrcPort(port);
      u.setDstPort(port ^ 0x5a5a);
      assert.equal(u.srcPort, port);
      assert.equal(u.dstPort, port ^ 0x5a5a);
      assert.ok(u.verifyChecksum(ipv));
      const c = u.checksum;
      u.fillChecksum(ipv);
      assert.equal(c, u.checksum);
    }
  });

  it('keep a zero checksum zero', () => {
    const ipv = ipOf('udpNoChecksum');
    const u = udpOf(ipv);
    u.setSrcPort(1234);
    u.setDstPort(53);
    assert.equal(u.checksum, 0);
    assert.equal(u.srcPort, 1234);
    assert.equal(u.dstPort, 53);
  });

  it('write 0xffff when the update yields 0', () => {
    const ipv = ipOf('udpDatagram');
    const u = udpOf(ipv);
    const target = onesAdd(u.srcPort, u.checksum);
    u.setSrcPort(target);
    assert.equal(u.checksum, 0xffff);
    assert.ok(u.verifyChecksum(ipv));
  });
});

describe('UdpView rejects bad datagrams', () => {
  const u = new UdpView();
  it('Malformed when the length field is below 8', () => {
    for (const l of [0, 1, 7]) {
      const f = frame('udpDatagram');
      f.writeUInt16BE(l, 38);
      expectResult(u.wrap(f, 34, 21), ParseResult.Malformed, `length ${l}`);
    }
  });

  it('Truncated when the length field exceeds the IP payload', () => {
    const f = frame('udpDatagram');
    f.writeUInt16BE(22, 38);
    expectResult(u.wrap(f, 34, 21), ParseResult.Truncated);
  });

  it('a shorter length field trims the view (as Linux trims the skb)', () => {
    const f = frame('udpDatagram');
    f.writeUInt16BE(10, 38);
    expectResult(u.wrap(f, 34, 21), ParseResult.Ok);
    assert.equal(u.length, 10);
    assert.equal(u.payloadLength, 2);
  });

  it('every prefix is Truncated', () => {
    const f = frame('udpDatagram');
    everyPrefixRejected((b, o, l) => u.wrap(b, o, l), f, 34, 21, [ParseResult.Truncated]);
  });
});
