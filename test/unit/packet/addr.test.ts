import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAC_BROADCAST,
  ipv4FromString,
  ipv4InPrefix,
  ipv4ToString,
  macEquals,
  macFromString,
  macToString,
  parseCidr,
  prefixMask,
  readIpv4,
  writeIpv4,
} from '../../../src/packet/index.js';

describe('IPv4 addresses', () => {
  it('parse to unsigned 32-bit numbers and format back', () => {
    assert.equal(ipv4FromString('10.1.110.102'), 0x0a016e66);
    assert.equal(ipv4FromString('255.255.255.255'), 0xffffffff);
    assert.equal(ipv4FromString('192.168.8.222'), 0xc0a808de);
    assert.equal(ipv4FromString('0.0.0.0'), 0);
    for (const s of ['192.168.165.196', '10.96.0.10', '255.255.255.255', '0.0.0.0', '1.2.3.4']) {
      assert.equal(ipv4ToString(ipv4FromString(s)), s);
    }
  });

  it('reject bad input', () => {
    for (const s of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.2.3.4',
      '1.2.3.-4',
      ' 1.2.3.4',
      '1.2.3.4 ',
      '1..3.4',
      '0x1.2.3.4',
      '1.2.3.4/24',
    ]) {
      assert.throws(() => ipv4FromString(s), /invalid IPv4/, s);
    }
  });

  it('read and write big-endian', () => {
    const b = Buffer.alloc(6);
    writeIpv4(b, 1, 0xc0a808de);
    assert.equal(b.toString('hex'), '00c0a808de00');
    assert.equal(readIpv4(b, 1), 0xc0a808de);
  });
});

describe('prefixes', () => {
  it('prefixMask', () => {
    assert.equal(prefixMask(24), 0xffffff00);
    assert.equal(prefixMask(26), 0xffffffc0);
    assert.equal(prefixMask(0), 0);
    assert.equal(prefixMask(32), 0xffffffff);
    assert.equal(prefixMask(1), 0x80000000);
    assert.throws(() => prefixMask(33), RangeError);
    assert.throws(() => prefixMask(-1), RangeError);
    assert.throws(() => prefixMask(1.5), RangeError);
  });

  it('parseCidr keeps host bits and checks the length', () => {
    assert.deepEqual(parseCidr('192.168.104.64/26'), { addr: 0xc0a86840, prefixLen: 26 });
    assert.deepEqual(parseCidr('10.1.110.102/24'), { addr: 0x0a016e66, prefixLen: 24 });
    assert.deepEqual(parseCidr('0.0.0.0/0'), { addr: 0, prefixLen: 0 });
    for (const s of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/024', '10.0.0/8', 'x/8']) {
      assert.throws(() => parseCidr(s), /invalid/, s);
    }
  });

  it('ipv4InPrefix', () => {
    const block = ipv4FromString('192.168.8.192');
    assert.ok(ipv4InPrefix(ipv4FromString('192.168.8.222'), block, 26));
    assert.ok(!ipv4InPrefix(ipv4FromString('192.168.9.1'), block, 26));
    assert.ok(ipv4InPrefix(0xffffffff, 0, 0));
    assert.ok(ipv4InPrefix(0xc0a808de, 0xc0a808de, 32));
    assert.ok(!ipv4InPrefix(0xc0a808df, 0xc0a808de, 32));
  });
});

describe('MAC addresses', () => {
  it('parse and format', () => {
    const m = macFromString('EE:ee:ee:ee:ee:ee');
    assert.equal(m.toString('hex'), 'eeeeeeeeeeee');
    assert.equal(macToString(m), 'ee:ee:ee:ee:ee:ee');
    assert.equal(macToString(Buffer.from('0002000ac80102', 'hex'), 1), '02:00:0a:c8:01:02');
    assert.ok(macEquals(MAC_BROADCAST, 0, macFromString('ff:ff:ff:ff:ff:ff')));
  });

  it('reject bad input', () => {
    for (const s of [
      '',
      'ee:ee:ee:ee:ee',
      'ee-ee-ee-ee-ee-ee',
      'eeee.eeee.eeee',
      'gg:ee:ee:ee:ee:ee',
    ]) {
      assert.throws(() => macFromString(s), /invalid MAC/, s);
    }
  });
});
