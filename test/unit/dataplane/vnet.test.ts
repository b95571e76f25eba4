/**
 * The forwarder with virtio-net headers (how the agent runs its TAPs): offloaded
 * segments cross a node whole, IPIP moves the header with the frame, and a GSO
 * segment bound for tunl0 is cut in software into MSS-sized segments.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Forwarder } from '../../../src/dataplane/forwarder.js';
import { VNET_HDR_LEN } from '../../../src/dataplane/vnet.js';
import {
  ETH_HEADER_LEN,
  emitEthernetHeader,
  emitIpv4Header,
  ipv4FromString,
} from '../../../src/packet/index.js';
import { pseudoHeaderSum, checksumFold, internetChecksum } from '../../../src/packet/checksum.js';
import { CALI_MAC, HEADROOM, W1, makeInterface, mac, silentLogger } from './helpers.js';

const ip = ipv4FromString;
const REMOTE_POD = ip('192.168.8.193');

function lab() {
  const fwd = new Forwarder(silentLogger, VNET_HDR_LEN);
  fwd.primaryAddress = W1.nodeIp;
  const a = makeInterface(2, 'cali1234567890a', 'pod', CALI_MAC, 1480);
  const b = makeInterface(3, 'calib0b0b0b0b0b', 'pod', CALI_MAC, 1480);
  const e = makeInterface(4, 'eth0', 'underlay', W1.eth0Mac, 1500);
  const t = makeInterface(5, 'tunl0', 'tunnel', Buffer.alloc(6), 1480);
  for (const x of [a, b, e, t]) fwd.addInterface(x.dev);
  fwd.tunnel = t.dev;
  fwd.local.set(W1.nodeIp, { answerEcho: true, deliverTo: null });
  fwd.tunnelPeers.add(W1.worker2);
  fwd.routes.add({ dst: W1.podA, prefixLen: 32, dev: a.dev, scope: 'link' });
  fwd.routes.add({ dst: W1.podB, prefixLen: 32, dev: b.dev, scope: 'link' });
  fwd.neighbours.setPermanent(a.dev, W1.podA, W1.podAMac);
  fwd.neighbours.setPermanent(b.dev, W1.podB, W1.podBMac);
  fwd.routes.add({ dst: ip('10.1.110.0'), prefixLen: 24, dev: e.dev, proto: 'kernel' });
  fwd.neighbours.setPermanent(e.dev, W1.worker2, W1.worker2Mac);
  fwd.routes.add({
    dst: ip('192.168.8.192'),
    prefixLen: 26,
    dev: t.dev,
    via: W1.worker2,
    onlink: true,
  });
  return { fwd, a, b, e };
}

interface TcpOpts {
  dst: number;
  payload: number;
  gsoSize: number;
  flags?: number;
}

/** A frame as a pod's kernel hands it over with offloads: virtio header + Ethernet + IPv4 + TCP. */
function offloadedTcp(o: TcpOpts): Buffer {
  const tcpLen = 32;
  const ipLen = 20 + tcpLen + o.payload;
  const f = Buffer.alloc(VNET_HDR_LEN + ETH_HEADER_LEN + ipLen);
  const v = 0;
  f[v] = 1; // NEEDS_CSUM
  f[v + 1] = o.gsoSize ? 1 : 0; // GSO_TCPV4
  f.writeUInt16LE(ETH_HEADER_LEN + 20 + tcpLen, v + 2);
  f.writeUInt16LE(o.gsoSize, v + 4);
  f.writeUInt16LE(ETH_HEADER_LEN + 20, v + 6);
  f.writeUInt16LE(16, v + 8);
  const e = VNET_HDR_LEN;
  emitEthernetHeader(f, e, CALI_MAC, W1.podAMac, 0x0800);
  const i = e + ETH_HEADER_LEN;
  emitIpv4Header(f, i, {
    src: W1.podA,
    dst: o.dst,
    protocol: 6,
    ttl: 64,
    id: 0x1000,
    dontFragment: true,
    tos: 0,
    payloadLength: tcpLen + o.payload,
  });
  const t = i + 20;
  f.writeUInt16BE(40000, t);
  f.writeUInt16BE(8080, t + 2);
  f.writeUInt32BE(0xfffff000, t + 4); // the sequence wraps during the segment
  f.writeUInt32BE(1, t + 8);
  f[t + 12] = (tcpLen / 4) << 4;
  f[t + 13] = o.flags ?? 0x18 | 0x01 | 0x80; // PSH ACK FIN CWR
  f.writeUInt16BE(502, t + 14);
  for (let k = 0; k < o.payload; k++) f[t + tcpLen + k] = k & 0xff;
  const partial = checksumFold(pseudoHeaderSum(W1.podA, o.dst, 6, tcpLen + o.payload));
  f.writeUInt16BE(partial, t + 16);
  return f;
}

/** Feeds raw TAP reads (virtio header included) as one batch. */
function feedRaw(
  fwd: Forwarder,
  dev: Parameters<Forwarder['receiveBatch']>[0],
  frame: Buffer,
): void {
  const arena = Buffer.alloc(HEADROOM + frame.length + 8);
  frame.copy(arena, HEADROOM);
  fwd.receiveBatch(dev, arena, Uint32Array.of(HEADROOM, frame.length), 1);
}

describe('forwarding with virtio-net headers', () => {
  test('an offloaded 64 KiB segment crosses the node whole, header and all', () => {
    const { fwd, a, b } = lab();
    const frame = offloadedTcp({ dst: W1.podB, payload: 60_000, gsoSize: 1428 });
    feedRaw(fwd, a.dev, frame);
    const [out] = b.sink.take();
    assert.ok(out);
    assert.equal(out.length, frame.length);
    assert.deepEqual(
      out.subarray(0, VNET_HDR_LEN),
      frame.subarray(0, VNET_HDR_LEN),
      'virtio header kept',
    );
    assert.equal(out[VNET_HDR_LEN + ETH_HEADER_LEN + 8], 63, 'TTL decremented');
    assert.deepEqual(out.subarray(VNET_HDR_LEN, VNET_HDR_LEN + 6), W1.podBMac);
    assert.equal(fwd.drops.total(), 0);
  });

  test('an offloaded segment whose segments exceed the MTU gets frag needed (DF)', () => {
    const { fwd, a, b } = lab();
    feedRaw(fwd, a.dev, offloadedTcp({ dst: W1.podB, payload: 20_000, gsoSize: 1460 }));
    assert.equal(b.sink.take().length, 0);
    const [icmp] = a.sink.take();
    assert.ok(icmp);
    const i = VNET_HDR_LEN + ETH_HEADER_LEN;
    assert.deepEqual([icmp[i + 20], icmp[i + 21]], [3, 4], 'ICMP frag needed');
    assert.equal(icmp.readUInt16BE(i + 26), 1480, 'next-hop MTU');
  });

  test('a GSO segment entering tunl0 is cut into MSS segments, each IPIP-encapsulated with checksum offload', () => {
    const { fwd, a, e } = lab();
    const mss = 1000;
    const payload = 2500;
    feedRaw(fwd, a.dev, offloadedTcp({ dst: REMOTE_POD, payload, gsoSize: mss }));
    const segs = e.sink.take();
    assert.equal(segs.length, 3);
    let seq = 0xfffff000;
    segs.forEach((s, k) => {
      const n = Math.min(mss, payload - k * mss);
      // virtio header: checksum offload, no GSO, checksum start past both IP headers.
      assert.equal(s[0], 1);
      assert.equal(s[1], 0);
      assert.equal(s.readUInt16LE(6), ETH_HEADER_LEN + 20 + 20);
      assert.equal(s.readUInt16LE(8), 16);
      const outer = VNET_HDR_LEN + ETH_HEADER_LEN;
      assert.deepEqual(s.subarray(VNET_HDR_LEN, VNET_HDR_LEN + 6), W1.worker2Mac);
      assert.equal(s[outer + 9], 4, 'IPIP');
      assert.equal(s.readUInt32BE(outer + 12), W1.nodeIp);
      assert.equal(s.readUInt32BE(outer + 16), W1.worker2);
      assert.equal(internetChecksum(s, outer, 20), 0, 'outer header checksum');
      const inner = outer + 20;
      assert.equal(s.readUInt16BE(inner + 2), 20 + 32 + n, 'inner total length');
      assert.equal(s.readUInt16BE(inner + 4), 0x1000 + k, 'IP id + k');
      assert.equal(s[inner + 8], 63, 'inner TTL decremented once');
      assert.equal(internetChecksum(s, inner, 20), 0, 'inner header checksum');
      const t = inner + 20;
      assert.equal(s.readUInt32BE(t + 4), seq, 'sequence');
      seq = (seq + n) >>> 0;
      const last = k === segs.length - 1;
      assert.equal(s[t + 13]! & 0x01, last ? 0x01 : 0, 'FIN on the last only');
      assert.equal(s[t + 13]! & 0x08, last ? 0x08 : 0, 'PSH on the last only');
      assert.equal(s[t + 13]! & 0x80, k === 0 ? 0x80 : 0, 'CWR on the first only');
      assert.equal(
        s.readUInt16BE(t + 16),
        checksumFold(pseudoHeaderSum(W1.podA, REMOTE_POD, 6, 32 + n)),
      );
      // Payload bytes continue where the previous segment stopped.
      assert.equal(s[t + 32], (k * mss) & 0xff);
      assert.equal(s.length, VNET_HDR_LEN + ETH_HEADER_LEN + 20 + 20 + 32 + n);
    });
    assert.equal(fwd.drops.total(), 0);
  });

  test('segments are headers from the scratch arena gathered with their payload, left in place', () => {
    const { fwd, a, e } = lab();
    feedRaw(fwd, a.dev, offloadedTcp({ dst: REMOTE_POD, payload: 5000, gsoSize: 1400 }));
    assert.equal(e.sink.batches, 1, 'one write call for every segment');
    assert.equal(e.sink.sent.length, 4);
    // General path (tunl0 captured): every segment copied whole and encapsulated.
    const other = lab();
    const captured: number[] = [];
    other.fwd.tunnel!.capture = (_b, _o, l) => captured.push(l);
    feedRaw(
      other.fwd,
      other.a.dev,
      offloadedTcp({ dst: REMOTE_POD, payload: 5000, gsoSize: 1400 }),
    );
    assert.deepEqual(
      captured,
      [1452, 1452, 1452, 852].map((n) => n + 0),
    );
    assert.deepEqual(e.sink.take(), other.e.sink.take(), 'the same bytes either way');
    assert.equal(fwd.tunnel!.counters.txPackets, 4);
    assert.equal(fwd.tunnel!.counters.txBytes, 4 * 52 + 5000);
    assert.deepEqual(fwd.tunnel!.counters, other.fwd.tunnel!.counters);
    assert.deepEqual(e.dev.counters, other.e.dev.counters);
  });

  test('segments wait for the next hop when it is not resolved yet', () => {
    const { fwd, a, e } = lab();
    fwd.neighbours.deleteDevice(e.dev);
    feedRaw(fwd, a.dev, offloadedTcp({ dst: REMOTE_POD, payload: 3000, gsoSize: 1400 }));
    const [probe] = e.sink.take();
    assert.ok(probe);
    assert.equal(probe.readUInt16BE(VNET_HDR_LEN + 12), 0x0806, 'ARP probe for worker-2');
    assert.equal(fwd.neighbours.get(e.dev, W1.worker2)?.queue.length, 3, 'segments queued');
  });

  test('decapsulation moves the virtio header to the inner frame', () => {
    const { fwd, a, e } = lab();
    // worker-2 sends an IPIP frame carrying a checksum-offloaded segment for pod A.
    const inner = offloadedTcp({ dst: W1.podA, payload: 100, gsoSize: 0 });
    const innerIp = inner.subarray(VNET_HDR_LEN + ETH_HEADER_LEN);
    innerIp.writeUInt32BE(REMOTE_POD, 12);
    innerIp.writeUInt16BE(0, 10);
    innerIp.writeUInt16BE(internetChecksum(innerIp, 0, 20), 10);
    const f = Buffer.alloc(VNET_HDR_LEN + ETH_HEADER_LEN + 20 + innerIp.length);
    inner.copy(f, 0, 0, VNET_HDR_LEN);
    f.writeUInt16LE(ETH_HEADER_LEN + 20 + 20, 6); // csum start as the sender's kernel set it
    emitEthernetHeader(f, VNET_HDR_LEN, W1.eth0Mac, W1.worker2Mac, 0x0800);
    emitIpv4Header(f, VNET_HDR_LEN + ETH_HEADER_LEN, {
      src: W1.worker2,
      dst: W1.nodeIp,
      protocol: 4,
      ttl: 64,
      id: 9,
      dontFragment: true,
      tos: 0,
      payloadLength: innerIp.length,
    });
    innerIp.copy(f, VNET_HDR_LEN + ETH_HEADER_LEN + 20);
    feedRaw(fwd, e.dev, f);
    const [out] = a.sink.take();
    assert.ok(out, JSON.stringify(fwd.drops.toJSON()));
    assert.equal(out[0], 1);
    assert.equal(
      out.readUInt16LE(6),
      ETH_HEADER_LEN + 20,
      'checksum start back to the inner layout',
    );
    assert.deepEqual(out.subarray(VNET_HDR_LEN, VNET_HDR_LEN + 6), W1.podAMac);
    assert.equal(out.length, VNET_HDR_LEN + ETH_HEADER_LEN + innerIp.length);
  });

  test('frames the node originates carry a zeroed virtio header', () => {
    const { fwd, a } = lab();
    const arp = Buffer.alloc(VNET_HDR_LEN + 42);
    emitEthernetHeader(arp, VNET_HDR_LEN, mac('ff:ff:ff:ff:ff:ff'), W1.podAMac, 0x0806);
    const p = VNET_HDR_LEN + ETH_HEADER_LEN;
    arp.writeUInt16BE(1, p);
    arp.writeUInt16BE(0x0800, p + 2);
    arp[p + 4] = 6;
    arp[p + 5] = 4;
    arp.writeUInt16BE(1, p + 6);
    W1.podAMac.copy(arp, p + 8);
    arp.writeUInt32BE(W1.podA, p + 14);
    arp.writeUInt32BE(ip('169.254.1.1'), p + 24);
    feedRaw(fwd, a.dev, arp);
    const [reply] = a.sink.take();
    assert.ok(reply);
    assert.deepEqual(reply.subarray(0, VNET_HDR_LEN), Buffer.alloc(VNET_HDR_LEN));
    assert.equal(reply.readUInt16BE(VNET_HDR_LEN + 12), 0x0806);
  });
});
