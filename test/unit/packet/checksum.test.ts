import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checksumApplyDelta,
  checksumDelta32,
  checksumFold,
  checksumUpdate16,
  checksumUpdate32,
  internetChecksum,
  onesComplementSum,
  pseudoHeaderSum,
} from '../../../src/packet/index.js';
import { Prng, ip } from './helpers.js';

/** Straightforward RFC 1071 reference: add words, fold as we go. */
function reference(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let s = checksumFold(initial);
  for (let i = 0; i < len; i += 2) {
    const w = (buf[off + i] << 8) | (i + 1 < len ? buf[off + i + 1] : 0);
    s += w;
    s = (s & 0xffff) + (s >>> 16);
  }
  return ~s & 0xffff;
}

describe('internetChecksum', () => {
  it('matches the RFC 1071 worked example', () => {
    const b = Buffer.from('0001f203f4f5f6f7', 'hex');
    assert.equal(onesComplementSum(b, 0, 8), 0xddf2);
    assert.equal(internetChecksum(b, 0, 8), 0x220d);
  });

  it('pads an odd trailing byte with zero', () => {
    assert.equal(internetChecksum(Buffer.from([0x01]), 0, 1), 0xfeff);
    assert.equal(
      internetChecksum(Buffer.from([0x12, 0x34, 0x56]), 0, 3),
      ~(0x1234 + 0x5600) & 0xffff,
    );
  });

  it('of nothing is 0xffff', () => {
    assert.equal(internetChecksum(Buffer.alloc(0), 0, 0), 0xffff);
  });

  it('honours offset and length', () => {
    const b = Buffer.from('ffff0001f203f4f5f6f7ffff', 'hex');
    assert.equal(internetChecksum(b, 2, 8), 0x220d);
  });

  it('adds an unfolded initial sum', () => {
    const b = Buffer.from('0001f203f4f5f6f7', 'hex');
    assert.equal(internetChecksum(b, 4, 4, 0x0001 + 0xf203), 0x220d);
    assert.equal(internetChecksum(b, 0, 0, 0x1_0000_0000 + 5), reference(b, 0, 0, 0x1_0000_0005));
  });

  it('verifies to 0 over data that includes its checksum', () => {
    const b = Buffer.from('45000034244e40004001' + '0000' + '0ac801020ac80202', 'hex');
    const c = internetChecksum(b, 0, 20);
    assert.equal(c, 0xfde7); // tcpdump/tshark: 0xfde7 for the captured echo request header
    b.writeUInt16BE(c, 10);
    assert.equal(internetChecksum(b, 0, 20), 0);
  });

  it('agrees with a word-by-word reference on random data up to 64 KiB', () => {
    const rnd = new Prng(1071);
    for (let n = 0; n < 300; n++) {
      const len = n < 290 ? rnd.int(1600) : 65536 - rnd.int(3);
      const b = Buffer.alloc(len + 3);
      if (n % 10 === 0) b.fill(0xff);
      else rnd.fill(b, 0, b.length);
      const off = rnd.int(3);
      const init = rnd.int(0x40000);
      assert.equal(internetChecksum(b, off, len, init), reference(b, off, len, init), `len ${len}`);
    }
  });
});

describe('checksumUpdate16 / checksumUpdate32 (RFC 1624 eqn. 3)', () => {
  it('equal a full recomputation after changing a word or a 32-bit value', () => {
    const rnd = new Prng(1624);
    const b = Buffer.alloc(40);
    for (let n = 0; n < 20000; n++) {
      rnd.fill(b, 0, b.length);
      if (n % 7 === 0) b.fill(0, 0, 30); // mostly-zero data: the +0/-0 corner
      if (n % 11 === 0) b.fill(0xff, 0, 30);
      b.writeUInt16BE(0, 38);
      b.writeUInt16BE(internetChecksum(b, 0, 40), 38);
      const old = b.readUInt16BE(38);
      if (n & 1) {
        const at = rnd.int(19) * 2;
        const oldWord = b.readUInt16BE(at);
        const newWord = n % 5 === 0 ? 0 : n % 3 === 0 ? 0xffff : rnd.int(0x10000);
        b.writeUInt16BE(newWord, at);
        const inc = checksumUpdate16(old, oldWord, newWord);
        b.writeUInt16BE(0, 38);
        assert.equal(inc, internetChecksum(b, 0, 40));
      } else {
        const at = rnd.int(9) * 4;
        const oldValue = b.readUInt32BE(at);
        const newValue = n % 5 === 0 ? 0 : rnd.u32();
        b.writeUInt32BE(newValue, at);
        const inc = checksumUpdate32(old, oldValue, newValue);
        assert.equal(checksumApplyDelta(old, checksumDelta32(oldValue, newValue)), inc);
        b.writeUInt16BE(0, 38);
        assert.equal(inc, internetChecksum(b, 0, 40));
      }
    }
  });

  it('is the identity when nothing changes', () => {
    assert.equal(checksumUpdate16(0x1234, 0xabcd, 0xabcd), 0x1234);
    assert.equal(checksumUpdate32(0x1234, 0xdeadbeef, 0xdeadbeef), 0x1234);
  });
});

describe('pseudoHeaderSum', () => {
  it('sums the 12-byte IPv4 pseudo-header', () => {
    const src = ip('10.200.1.2');
    const dst = ip('10.200.2.2');
    const ph = Buffer.alloc(12);
    ph.writeUInt32BE(src, 0);
    ph.writeUInt32BE(dst, 4);
    ph.writeUInt16BE(17, 8);
    ph.writeUInt16BE(21, 10);
    assert.equal(checksumFold(pseudoHeaderSum(src, dst, 17, 21)), onesComplementSum(ph, 0, 12));
    assert.equal(pseudoHeaderSum(0xffffffff, 0xffffffff, 6, 0xffff), 4 * 0xffff + 6 + 0xffff);
  });
});
