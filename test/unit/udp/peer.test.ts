/**
 * Peer addresses in the addon's 8-word format and UDP options: pure, no addon needed. The
 * IPv6 texts are those libuv's inet_ntop (Node's dgram rinfo.address) writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  copyPeer,
  formatIPv6,
  parseIPv6,
  peerAddress,
  peerFamily,
  peerPort,
  UDP_PEER_WORDS,
  writePeer,
} from '../../../src/udp/peer.js';
import {
  DEFAULT_UDP_MAX_BATCH,
  DEFAULT_UDP_SLOT_BYTES,
  resolveUdpOptions,
  type UdpOpenOptions,
} from '../../../src/udp/index.js';

describe('IPv6 text (libuv inet_ntop)', () => {
  const table: [string, string][] = [
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::1', 'fe80::1'],
    ['::ffff:127.0.0.1', '::ffff:127.0.0.1'],
    ['::ffff:7f00:1', '::ffff:127.0.0.1'],
    ['::1.2.3.4', '::1.2.3.4'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:DB8::A', '2001:db8::a'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['0:0:1:0:0:0:0:1', '0:0:1::1'],
    ['fd00:10:96::a', 'fd00:10:96::a'],
  ];
  for (const [input, want] of table) {
    it(`${input} → ${want}`, () => assert.equal(formatIPv6(parseIPv6(input)), want));
  }
});

describe('peers', () => {
  it('round-trip through the 8-word format', () => {
    const peers = new Uint32Array(4 * UDP_PEER_WORDS);
    writePeer(peers, 0, '10.96.0.10', 53);
    writePeer(peers, 1, '::1', 5353);
    writePeer(peers, 2, 'fe80::1%3', 1);
    writePeer(peers, 3, '::ffff:10.1.0.89', 65535);
    assert.deepEqual(
      [0, 1, 2, 3].map((i) => [peerFamily(peers, i), peerAddress(peers, i), peerPort(peers, i)]),
      [
        [4, '10.96.0.10', 53],
        [6, '::1', 5353],
        [6, 'fe80::1%3', 1],
        [6, '::ffff:10.1.0.89', 65535],
      ],
    );
    // IPv4 bytes sit in network order in word 4 (bytes 16..19 of the peer).
    assert.deepEqual([...new Uint8Array(peers.buffer, 16, 4)], [10, 96, 0, 10]);
  });

  it('copyPeer copies all eight words; the IPv4 text follows the bytes, not a stale cache', () => {
    const a = new Uint32Array(UDP_PEER_WORDS);
    const b = new Uint32Array(3 * UDP_PEER_WORDS);
    writePeer(a, 0, '192.168.8.207', 40000);
    copyPeer(a, 0, b, 2);
    assert.equal(peerAddress(b, 2), '192.168.8.207');
    assert.equal(peerPort(b, 2), 40000);
    writePeer(b, 2, '192.168.8.208', 40000);
    assert.equal(peerAddress(b, 2), '192.168.8.208');
  });

  it('refuses what is not an address', () => {
    const peers = new Uint32Array(UDP_PEER_WORDS);
    assert.throws(() => writePeer(peers, 0, 'localhost', 53), TypeError);
    assert.throws(() => writePeer(peers, 0, 'fe80::1%eth0', 53), TypeError);
    assert.throws(() => writePeer(peers, 0, '10.0.0.1', 70000), RangeError);
    assert.throws(() => writePeer(peers, 1, '10.0.0.1', 53), RangeError);
  });

  it('an unknown family has no text', () => {
    assert.equal(peerAddress(new Uint32Array(UDP_PEER_WORDS), 0), '');
  });
});

describe('resolveUdpOptions', () => {
  it('defaults', () => {
    assert.deepEqual(resolveUdpOptions({ host: '127.0.0.1' }), {
      host: '127.0.0.1',
      port: 0,
      maxBatch: DEFAULT_UDP_MAX_BATCH,
      slotBytes: DEFAULT_UDP_SLOT_BYTES,
      recvBufferSize: 0,
      sendBufferSize: 0,
    });
  });

  it('refuses bad values', () => {
    const bad: [UdpOpenOptions, ErrorConstructor][] = [
      [{ host: 'localhost' }, TypeError],
      [{ host: '127.0.0.1', port: 65536 }, RangeError],
      [{ host: '127.0.0.1', maxBatch: 0 }, RangeError],
      [{ host: '127.0.0.1', maxBatch: 1025 }, RangeError],
      [{ host: '127.0.0.1', slotBytes: 11 }, RangeError],
      [{ host: '127.0.0.1', slotBytes: 65537 }, RangeError],
      [{ host: '127.0.0.1', slotBytes: 1.5 }, TypeError],
      [{ host: '::1', recvBufferSize: -1 }, RangeError],
    ];
    for (const [o, type] of bad) assert.throws(() => resolveUdpOptions(o), type, JSON.stringify(o));
  });
});
