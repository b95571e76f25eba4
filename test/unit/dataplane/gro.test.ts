/**
 * GRO at transmit to a pod (src/dataplane/gro.ts): which consecutive TCP segments merge into
 * one offloaded frame and what ends a merged packet, as Linux's tcp_gro_receive and
 * inet_gro_receive decide; and the merged frame itself — virtio header, IPv4 header, partial
 * TCP checksum — checked by cutting it up again as the kernel's tcp_gso_segment would and
 * comparing with the segments that went in, byte for byte.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GRO_MAX_SEGS, TcpGro, type GroOutput } from '../../../src/dataplane/gro.js';
import { VNET_HDR_LEN } from '../../../src/dataplane/vnet.js';
import { checksumFold, internetChecksum, pseudoHeaderSum } from '../../../src/packet/checksum.js';
import { Forwarder } from '../../../src/dataplane/forwarder.js';
import { CALI_MAC, W1, ip, makeInterface, silentLogger } from './helpers.js';

const V = VNET_HDR_LEN;
const ETH = 14;
const REMOTE_POD = ip('192.168.8.193');
const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const PSH = 0x08;
const ACK = 0x10;
const URG = 0x20;
const ECE = 0x40;
const CWR = 0x80;
/** NOP NOP timestamps, as Linux sends on an established connection. */
const TS_OPTIONS = Buffer.from([1, 1, 8, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0]);

type Csum = 'partial' | 'valid' | 'none';

interface Seg {
  src?: number;
  dst?: number;
  sport?: number;
  dport?: number;
  seq: number;
  ack?: number;
  flags?: number;
  window?: number;
  options?: Buffer;
  payload: number;
  id?: number;
  ttl?: number;
  tos?: number;
  df?: boolean;
  /** IP header options (bytes, a multiple of 4). */
  ipOptions?: Buffer;
  /** Fragment bits and offset besides DF (MF = 0x2000). */
  frag?: number;
  protocol?: number;
  csum?: Csum;
  /** Break the TCP checksum (for csum 'none'). */
  badCsum?: boolean;
  /** Bytes of Ethernet padding after the IP packet. */
  pad?: number;
  /** A GSO frame already (gso_size). */
  gso?: number;
}

/** A frame as it reaches transmit: virtio header + Ethernet + IPv4 + TCP + payload. */
function segment(s: Seg): Buffer {
  const opts = s.options ?? TS_OPTIONS;
  const ipOpts = s.ipOptions ?? Buffer.alloc(0);
  const ihl = 20 + ipOpts.length;
  const thl = 20 + opts.length;
  const ipLen = ihl + thl + s.payload;
  const f = Buffer.alloc(V + ETH + ipLen + (s.pad ?? 0));
  const e = V;
  CALI_MAC.copy(f, e + 6);
  W1.podAMac.copy(f, e);
  f.writeUInt16BE(0x0800, e + 12);
  const i = e + ETH;
  const src = s.src ?? REMOTE_POD;
  const dst = s.dst ?? W1.podA;
  f[i] = 0x40 | (ihl / 4);
  f[i + 1] = s.tos ?? 0;
  f.writeUInt16BE(ipLen, i + 2);
  f.writeUInt16BE(s.id ?? 0x100, i + 4);
  f.writeUInt16BE(((s.df ?? true) ? 0x4000 : 0) | (s.frag ?? 0), i + 6);
  f[i + 8] = s.ttl ?? 63;
  f[i + 9] = s.protocol ?? 6;
  f.writeUInt32BE(src, i + 12);
  f.writeUInt32BE(dst, i + 16);
  ipOpts.copy(f, i + 20);
  f.writeUInt16BE(internetChecksum(f, i, ihl), i + 10);
  const t = i + ihl;
  f.writeUInt16BE(s.sport ?? 5201, t);
  f.writeUInt16BE(s.dport ?? 40000, t + 2);
  f.writeUInt32BE(s.seq >>> 0, t + 4);
  f.writeUInt32BE(s.ack ?? 777, t + 8);
  f[t + 12] = (thl / 4) << 4;
  f[t + 13] = s.flags ?? ACK;
  f.writeUInt16BE(s.window ?? 502, t + 14);
  opts.copy(f, t + 20);
  for (let k = 0; k < s.payload; k++) f[t + thl + k] = (s.seq + k) & 0xff;
  const csum = s.csum ?? 'partial';
  const pseudo = pseudoHeaderSum(src, dst, 6, thl + s.payload);
  if (csum === 'partial') {
    f[0] = 1; // NEEDS_CSUM
    f.writeUInt16LE(ETH + ihl, 6);
    f.writeUInt16LE(16, 8);
    f.writeUInt16BE(checksumFold(pseudo), t + 16);
  } else {
    f[0] = csum === 'valid' ? 2 : 0; // DATA_VALID or nothing
    f.writeUInt16BE(internetChecksum(f, t, thl + s.payload, pseudo) ^ (s.badCsum ? 1 : 0), t + 16);
  }
  if (s.gso) {
    f[1] = 1;
    f.writeUInt16LE(ETH + ihl + thl, 2);
    f.writeUInt16LE(s.gso, 4);
  }
  return f;
}

/** One out frame: bytes (virtio header first) and whether it was gathered. */
interface Out {
  bytes: Buffer;
  gathered: boolean;
  /** Where its first part lay in the batch buffer (the held segment's Ethernet header). */
  offset: number;
}

/**
 * Lays the frames out in one buffer as a TAP read arena does (headroom before each), offers
 * them to one GRO context in order — queueing what it declines itself, as the interface
 * does — flushes, and returns what went out.
 */
function run(frames: Buffer[], opts: { buffers?: 'one' | 'each' } = {}): Out[] {
  const out: Out[] = [];
  const output: GroOutput = {
    queueFrame(buf, off, len) {
      out.push({
        bytes: Buffer.from(buf.subarray(off - V, off + len)),
        gathered: false,
        offset: off,
      });
    },
    queueGathered(buf, off, len, pairs, parts) {
      const pieces = [buf.subarray(off - V, off + len)];
      for (let k = 0; k < parts; k++) {
        pieces.push(buf.subarray(pairs[2 * k]!, pairs[2 * k]! + pairs[2 * k + 1]!));
      }
      out.push({ bytes: Buffer.concat(pieces), gathered: true, offset: off });
    },
  };
  const gro = new TcpGro(V, output);
  const place = (list: Buffer[]) => {
    const arena = Buffer.alloc(list.reduce((n, f) => n + f.length + 64, 64));
    let at = 64;
    const offs: number[] = [];
    for (const f of list) {
      f.copy(arena, at);
      offs.push(at + V);
      at += f.length + 64;
    }
    return { arena, offs };
  };
  const lay =
    opts.buffers === 'each'
      ? frames.map((f) => {
          const p = place([f]);
          return { buf: p.arena, off: p.offs[0]!, len: f.length - V };
        })
      : (() => {
          const p = place(frames);
          return frames.map((f, k) => ({ buf: p.arena, off: p.offs[k]!, len: f.length - V }));
        })();
  for (const { buf, off, len } of lay) {
    if (!gro.receive(buf, off, len)) output.queueFrame(buf, off, len);
  }
  gro.flush();
  assert.equal(gro.holding, false);
  return out;
}

/** What a NIC (or skb_checksum_help) does with NEEDS_CSUM: completes the checksum (a copy, virtio header zeroed). */
function complete(frame: Buffer): Buffer {
  const f = Buffer.from(frame);
  if ((f[0]! & 1) !== 0) {
    const start = V + f.readUInt16LE(6);
    const at = start + f.readUInt16LE(8);
    f.writeUInt16BE(internetChecksum(f, start, f.length - start), at);
  }
  f.fill(0, 0, V);
  return f;
}

/**
 * The kernel's tcp_gso_segment (with inet_gso_segment) on a GSO frame: segments of gso_size,
 * IP ID + k, sequence + k·mss, CWR only on the first, PSH and FIN only on the last, each
 * checksum completed. A non-GSO frame is only completed. Virtio headers come out zeroed.
 */
function resegment(frame: Buffer): Buffer[] {
  const gsoType = frame[1]!;
  if (gsoType === 0) return [complete(frame)];
  assert.equal(gsoType & 0x7f, 1, 'GSO_TCPV4');
  assert.equal(frame[0], 1, 'a GSO frame needs NEEDS_CSUM');
  const mss = frame.readUInt16LE(4);
  const i = V + ETH;
  const ihl = (frame[i]! & 0x0f) * 4;
  const t = i + ihl;
  const thl = (frame[t + 12]! >>> 4) * 4;
  assert.equal(frame.readUInt16LE(2), ETH + ihl + thl, 'hdr_len');
  assert.equal(frame.readUInt16LE(6), ETH + ihl, 'csum_start');
  assert.equal(frame.readUInt16LE(8), 16, 'csum_offset');
  const payload = frame.length - t - thl;
  const src = frame.readUInt32BE(i + 12);
  const dst = frame.readUInt32BE(i + 16);
  assert.equal(frame.readUInt16BE(i + 2), frame.length - V - ETH, 'IP total length');
  assert.equal(internetChecksum(frame, i, ihl), 0, 'merged IP header checksum');
  assert.equal(
    frame.readUInt16BE(t + 16),
    checksumFold(pseudoHeaderSum(src, dst, 6, thl + payload)),
    'TCP checksum field = pseudo-header sum of the merged length',
  );
  const segs: Buffer[] = [];
  const id0 = frame.readUInt16BE(i + 4);
  const seq0 = frame.readUInt32BE(t + 4);
  const flags0 = frame[t + 13]!;
  for (let done = 0, k = 0; done < payload; done += mss, k++) {
    const n = Math.min(mss, payload - done);
    const s = Buffer.alloc(V + ETH + ihl + thl + n);
    frame.copy(s, V, V, t + thl);
    frame.copy(s, V + ETH + ihl + thl, t + thl + done, t + thl + done + n);
    s.writeUInt16BE(ihl + thl + n, i + 2);
    s.writeUInt16BE((id0 + k) & 0xffff, i + 4);
    s.writeUInt16BE(0, i + 10);
    s.writeUInt16BE(internetChecksum(s, i, ihl), i + 10);
    s.writeUInt32BE((seq0 + done) >>> 0, t + 4);
    let flags = flags0;
    if (done + n < payload) flags &= ~(FIN | PSH);
    if (k > 0) flags &= ~CWR;
    s[t + 13] = flags;
    s.writeUInt16BE(0, t + 16);
    s.writeUInt16BE(internetChecksum(s, t, thl + n, pseudoHeaderSum(src, dst, 6, thl + n)), t + 16);
    segs.push(s);
  }
  return segs;
}

/** The flow of a frame: protocol, addresses and (for TCP/UDP without fragments) ports. */
function flowOf(f: Buffer): string {
  const i = V + ETH;
  if (f.readUInt16BE(V + 12) !== 0x0800) return 'not IPv4';
  const t = i + (f[i]! & 0x0f) * 4;
  const ports = (f.readUInt16BE(i + 6) & 0x1fff) === 0 ? f.readUInt32BE(t) : -1;
  return `${f[i + 9]} ${f.readUInt32BE(i + 12)} ${f.readUInt32BE(i + 16)} ${ports}`;
}

/**
 * What went out, cut back into segments, must be what came in (checksums completed), in
 * the same order within each flow (frames of other flows may pass a held packet).
 */
function assertLossless(input: Buffer[], out: Out[], opts: { fixedIds?: boolean } = {}): void {
  const back = out.flatMap((o) => resegment(o.bytes));
  const expected = input.map(complete);
  assert.equal(back.length, expected.length, 'segments out = segments in');
  const byFlow = (list: Buffer[]) => {
    const m = new Map<string, Buffer[]>();
    for (const f of list) m.set(flowOf(f), [...(m.get(flowOf(f)) ?? []), f]);
    return m;
  };
  const want = byFlow(expected);
  const got = byFlow(back);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), 'the same flows');
  for (const [flow, frames] of want) {
    got.get(flow)!.forEach((b, k) => {
      const e = Buffer.from(frames[k]!);
      if (opts.fixedIds) {
        // A fixed-ID flow comes back with incrementing IDs (virtio has no FIXEDID flag): fine
        // for DF packets; compare everything else.
        b.writeUInt16BE(e.readUInt16BE(V + ETH + 4), V + ETH + 4);
        b.writeUInt16BE(0, V + ETH + 10);
        b.writeUInt16BE(internetChecksum(b, V + ETH, 20), V + ETH + 10);
      }
      assert.deepEqual(b, e, `flow ${flow}, segment ${k}`);
    });
  }
}

/** n consecutive segments of `size` bytes from `seq`, IDs incrementing from `id`. */
function stream(n: number, size: number, over: Partial<Seg> = {}): Seg[] {
  const seq0 = over.seq ?? 1000;
  const id0 = over.id ?? 0x100;
  return Array.from({ length: n }, (_, k) => ({
    ...over,
    seq: (seq0 + k * size) >>> 0,
    id: (id0 + k) & 0xffff,
    payload: size,
  }));
}

const sizes = (out: Out[]) => out.map((o) => (o.gathered ? resegment(o.bytes).length : 1));

describe('GRO: what merges', () => {
  it('consecutive segments of a flow become one GSO frame; the last may be shorter', () => {
    const segs = [...stream(5, 1388), { seq: 1000 + 5 * 1388, id: 0x105, payload: 700 }];
    const input = segs.map(segment);
    const out = run(input);
    assert.equal(out.length, 1);
    const [m] = out;
    assert.ok(m?.gathered);
    const f = m.bytes;
    assert.equal(f[0], 1, 'NEEDS_CSUM');
    assert.equal(f[1], 1, 'GSO_TCPV4');
    assert.equal(f.readUInt16LE(2), ETH + 20 + 32, 'hdr_len');
    assert.equal(f.readUInt16LE(4), 1388, 'gso_size = the first payload');
    assert.equal(f.readUInt16LE(6), ETH + 20, 'csum_start');
    assert.equal(f.readUInt16LE(8), 16, 'csum_offset');
    assert.equal(f.readUInt16BE(V + ETH + 2), 20 + 32 + 5 * 1388 + 700);
    assert.equal(f.readUInt16BE(V + ETH + 4), 0x100, 'the first IP ID');
    assert.equal(f.length, V + ETH + 20 + 32 + 5 * 1388 + 700);
    assertLossless(input, out);
  });

  it('the merged TCP checksum completes to a correct one (as the pod kernel would)', () => {
    const input = stream(4, 1000, { csum: 'none' }).map(segment);
    const [m] = run(input);
    assert.ok(m?.gathered);
    const done = complete(m.bytes);
    const t = V + ETH + 20;
    const len = done.length - t;
    assert.equal(internetChecksum(done, t, len, pseudoHeaderSum(REMOTE_POD, W1.podA, 6, len)), 0);
  });

  for (const csum of ['partial', 'valid', 'none'] as const) {
    it(`segments with checksum state '${csum}' merge`, () => {
      const input = stream(3, 500, { csum }).map(segment);
      const out = run(input);
      assert.deepEqual(sizes(out), [3]);
      assertLossless(input, out);
    });
  }

  it('a bad checksum without offload information is not merged: it goes up alone', () => {
    const segs = stream(5, 500, { csum: 'none' });
    segs[2] = { ...segs[2]!, badCsum: true };
    const input = segs.map(segment);
    const out = run(input);
    assert.deepEqual(sizes(out), [2, 1, 2]);
    assert.equal(out[1]!.gathered, false);
    assert.deepEqual(out[1]!.bytes, input[2], 'untouched');
  });

  it('the sequence number may wrap inside a merged packet', () => {
    const input = stream(4, 1000, { seq: 0xfffff800 }).map(segment);
    const out = run(input);
    assert.deepEqual(sizes(out), [4]);
    assertLossless(input, out);
  });

  it('PSH on the last segment: merged, carried to the merged header, ends the packet', () => {
    const segs = stream(6, 1000);
    segs[3] = { ...segs[3]!, flags: ACK | PSH };
    const input = segs.map(segment);
    const out = run(input);
    assert.deepEqual(sizes(out), [4, 2]);
    assert.equal(out[0]!.bytes[V + ETH + 20 + 13], ACK | PSH);
    assert.equal(out[1]!.bytes[V + ETH + 20 + 13], ACK);
    assertLossless(input, out);
  });

  it('FIN on the last segment is merged too, and ends the packet', () => {
    const segs = stream(3, 1000);
    segs[2] = { ...segs[2]!, flags: ACK | FIN | PSH };
    const input = segs.map(segment);
    const out = run(input);
    assert.deepEqual(sizes(out), [3]);
    assert.equal(out[0]!.bytes[V + ETH + 20 + 13], ACK | FIN | PSH);
    assertLossless(input, out);
  });

  it('CWR on the first segment: merged, with the ECN bit of the GSO type', () => {
    const segs = stream(3, 1000);
    segs[0] = { ...segs[0]!, flags: ACK | CWR };
    const input = segs.map(segment);
    const out = run(input);
    assert.deepEqual(sizes(out), [3]);
    assert.equal(out[0]!.bytes[1], 0x81, 'GSO_TCPV4 | GSO_ECN');
    assertLossless(input, out);
  });

  it('fixed IP IDs merge when DF is set; not without DF', () => {
    const fixed = stream(4, 800).map((s) => ({ ...s, id: 0 }));
    const input = fixed.map(segment);
    const out = run(input);
    assert.deepEqual(sizes(out), [4]);
    assertLossless(input, out, { fixedIds: true });
    const noDf = fixed.map((s) => segment({ ...s, df: false }));
    assert.deepEqual(sizes(run(noDf)), [1, 1, 1, 1]);
    // Without DF, incrementing IDs merge (as Linux).
    const inc = stream(4, 800, { df: false }).map(segment);
    assert.deepEqual(sizes(run(inc)), [4]);
    assertLossless(inc, run(inc));
  });

  it('IDs that neither increment nor stay fixed end the packet', () => {
    // The IDs jump at the third segment (and increment from there).
    const segs = stream(4, 800).map((s, k) => (k < 2 ? s : { ...s, id: 0x7777 + k }));
    assert.deepEqual(sizes(run(segs.map(segment))), [2, 2]);
    // A lone odd ID between incrementing ones: it cannot join, nor can the next join it.
    const odd = stream(4, 800).map((s, k) => (k === 2 ? { ...s, id: 0x7777 } : s));
    assert.deepEqual(sizes(run(odd.map(segment))), [2, 1, 1]);
    // Fixed for two segments, then incrementing: the flow was decided to be fixed-ID.
    const mixed = [0, 0, 1].map((id, k) => segment({ seq: 1000 + k * 800, id, payload: 800 }));
    assert.deepEqual(sizes(run(mixed)), [2, 1]);
  });

  it('the merged packet stays below 64 KiB', () => {
    const input = stream(50, 1448).map(segment);
    const out = run(input);
    // 45 segments: 20 + 32 + 45 × 1448 = 65212 bytes; a 46th would make 66660.
    assert.deepEqual(sizes(out), [45, 5]);
    assert.ok(out.every((o) => o.bytes.length - V - ETH <= 65535));
    assertLossless(input, out);
  });

  it(`at most ${GRO_MAX_SEGS} segments merge (one writev part each)`, () => {
    const input = stream(100, 100).map(segment);
    const out = run(input);
    assert.deepEqual(sizes(out), [GRO_MAX_SEGS, 100 - GRO_MAX_SEGS]);
    assertLossless(input, out);
  });

  it('a packet of one segment goes out untouched', () => {
    const input = [segment({ seq: 5, payload: 300 })];
    const out = run(input);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.gathered, false);
    assert.deepEqual(out[0]!.bytes, input[0]);
  });

  it('segments in different buffers are not merged (the merged frame is gathered from one)', () => {
    const input = stream(3, 500).map(segment);
    assert.deepEqual(sizes(run(input, { buffers: 'each' })), [1, 1, 1]);
  });
});

describe('GRO: what ends a packet', () => {
  // [what, the change, applied to the 4th of 6 segments only or from the 4th on, packets' sizes]
  const cases: [string, (s: Seg) => Seg, 'only' | 'on', number[]][] = [
    ['a sequence gap', (s) => ({ ...s, seq: s.seq + 1 }), 'on', [3, 3]],
    ['a retransmission (sequence back)', (s) => ({ ...s, seq: s.seq - 1000 }), 'on', [3, 3]],
    ['another ACK number', (s) => ({ ...s, ack: 778 }), 'on', [3, 3]],
    ['another window', (s) => ({ ...s, window: 501 }), 'on', [3, 3]],
    ['ECE appearing', (s) => ({ ...s, flags: ACK | ECE }), 'on', [3, 3]],
    [
      'CWR on a later segment (it starts the next packet)',
      (s) => ({ ...s, flags: ACK | CWR }),
      'only',
      [3, 3],
    ],
    ['URG: goes up alone', (s) => ({ ...s, flags: ACK | URG }), 'only', [3, 1, 2]],
    ['RST: goes up alone', (s) => ({ ...s, flags: ACK | RST }), 'only', [3, 1, 2]],
    ['SYN: goes up alone', (s) => ({ ...s, flags: SYN | ACK }), 'only', [3, 1, 2]],
    [
      'another timestamp (options differ)',
      (s) => ({ ...s, options: Buffer.from([1, 1, 8, 10, 0, 0, 0x10, 1, 0, 0, 0x20, 0]) }),
      'on',
      [3, 3],
    ],
    ['options of another length', (s) => ({ ...s, options: Buffer.alloc(0) }), 'on', [3, 3]],
    ['a larger segment', (s) => ({ ...s, payload: 1001 }), 'only', [3, 1, 2]],
    ['another TTL', (s) => ({ ...s, ttl: 62 }), 'on', [3, 3]],
    ['another TOS', (s) => ({ ...s, tos: 0x10 }), 'on', [3, 3]],
    ['DF cleared', (s) => ({ ...s, df: false }), 'on', [3, 3]],
    ['another source port (another flow)', (s) => ({ ...s, sport: 5202 }), 'on', [3, 3]],
    [
      'another source address (another flow)',
      (s) => ({ ...s, src: ip('192.168.8.194') }),
      'on',
      [3, 3],
    ],
    ['a pure ACK (no payload): goes up alone', (s) => ({ ...s, payload: 0 }), 'only', [3, 1, 2]],
    [
      'IP options: no candidate',
      (s) => ({ ...s, ipOptions: Buffer.from([1, 1, 1, 0]) }),
      'only',
      [3, 1, 2],
    ],
    ['a fragment (MF): no candidate', (s) => ({ ...s, frag: 0x2000 }), 'only', [3, 1, 2]],
    [
      'UDP (another flow): passes the held packet, which goes on',
      (s) => ({ ...s, protocol: 17 }),
      'only',
      [1, 3, 2],
    ],
    ['Ethernet padding: no candidate', (s) => ({ ...s, pad: 6 }), 'only', [3, 1, 2]],
    ['a GSO frame: not merged further', (s) => ({ ...s, gso: 500 }), 'only', [3, 1, 2]],
  ];
  for (const [what, change, scope, expected] of cases) {
    it(what, () => {
      const segs = stream(6, 1000).map((s, k) =>
        k === 3 || (scope === 'on' && k > 3) ? change(s) : s,
      );
      const input = segs.map(segment);
      const out = run(input);
      assert.deepEqual(sizes(out), expected);
      // Order kept: a segment that goes up alone comes out where it went in, untouched (one
      // of another flow before the held packet).
      if (expected[1] === 1) assert.deepEqual(out[1]!.bytes, input[3]);
      if (expected[0] === 1) assert.deepEqual(out[0]!.bytes, input[3]);
      if (scope === 'on' || (expected[0] !== 1 && expected[1] !== 1)) assertLossless(input, out);
    });
  }

  it('frames of other flows GRO does not hold pass the held packet without ending it', () => {
    const data = stream(6, 1000);
    const ackOther = { seq: 9, payload: 0, sport: 6000, dport: 7000 };
    const input = [
      ...data.slice(0, 2),
      { ...ackOther },
      data[2]!,
      { seq: 1, payload: 40, protocol: 17 },
      { ...ackOther, src: ip('192.168.8.200') },
      ...data.slice(3),
    ].map(segment);
    const arp = Buffer.alloc(V + 42);
    arp.writeUInt16BE(0x0806, V + 12);
    const out = run([...input.slice(0, 4), arp, ...input.slice(4)]);
    assert.deepEqual(
      out.map((o) => (o.gathered ? `merged ${resegment(o.bytes).length}` : flowOf(o.bytes))),
      [flowOf(input[2]!), 'not IPv4', flowOf(input[4]!), flowOf(input[5]!), 'merged 6'],
    );
  });

  it('anything else of the held flow ends the held packet first', () => {
    const data = stream(4, 1000);
    // A later fragment of the flow's addresses (no ports to tell): the held packet goes first.
    const frag = segment({ seq: 0, payload: 100, frag: 0x0010 });
    const out = run([...data.slice(0, 2).map(segment), frag, ...data.slice(2).map(segment)]);
    assert.deepEqual(sizes(out), [2, 1, 2]);
    assert.deepEqual(out[1]!.bytes, frag);
  });

  it('a smaller segment is merged as the last one', () => {
    const segs = stream(6, 1000);
    segs[3] = { ...segs[3]!, payload: 400 };
    for (let k = 4; k < 6; k++) segs[k] = { ...segs[k]!, seq: segs[3]!.seq + 400 + (k - 4) * 1000 };
    const input = segs.map(segment);
    const out = run(input);
    assert.deepEqual(sizes(out), [4, 2]);
    assertLossless(input, out);
  });

  it('interleaved flows: each run merges, nothing is reordered', () => {
    const a = stream(6, 1000);
    const b = stream(6, 1000, { sport: 6000, seq: 50_000 });
    const input = [...a.slice(0, 3), ...b.slice(0, 4), ...a.slice(3), ...b.slice(4)].map(segment);
    const out = run(input);
    assert.deepEqual(sizes(out), [3, 4, 3, 2]);
    assertLossless(input, out);
  });
});

describe('GRO: random streams come back whole', () => {
  it('2,000 segments with random changes: resegmenting the output gives the input', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let totalIn = 0;
    let totalOut = 0;
    for (let round = 0; round < 40; round++) {
      const input: Buffer[] = [];
      let seq = rnd(1 << 30) * 4;
      let id = rnd(0x10000);
      let ack = 1;
      for (let k = 0; k < 50; k++) {
        const size = rnd(10) === 0 ? 1 + rnd(1400) : 1000;
        const s: Seg = {
          seq,
          id,
          ack,
          payload: size,
          csum: (['partial', 'valid', 'none'] as const)[rnd(3)],
        };
        const r = rnd(30);
        if (r === 0) s.flags = ACK | PSH;
        else if (r === 1) s.flags = ACK | CWR;
        else if (r === 2) s.ack = ++ack;
        else if (r === 3) s.sport = 9999;
        else if (r === 4) s.seq = seq + 7;
        else if (r === 5) s.payload = 0;
        input.push(segment(s));
        seq = (s.seq + s.payload) >>> 0;
        id = (id + 1) & 0xffff;
      }
      const out = run(input);
      assertLossless(input, out);
      totalIn += input.length;
      totalOut += out.length;
    }
    assert.ok(totalOut < totalIn / 2, `merged: ${totalIn} segments in, ${totalOut} frames out`);
  });
});

describe('GRO in the forwarder', () => {
  /** worker-2 → worker-1 IPIP frames carrying consecutive segments for pod A, in one read batch. */
  function ipipBatch(n: number, size: number): { arena: Buffer; offsets: Uint32Array } {
    const frames = stream(n, size).map((s) => {
      const inner = segment({ ...s, ttl: 64 }).subarray(V + ETH);
      const f = Buffer.alloc(V + ETH + 20 + inner.length);
      f[0] = 1;
      f.writeUInt16LE(ETH + 20 + 20, 6);
      f.writeUInt16LE(16, 8);
      W1.eth0Mac.copy(f, V);
      W1.worker2Mac.copy(f, V + 6);
      f.writeUInt16BE(0x0800, V + 12);
      const o = V + ETH;
      f[o] = 0x45;
      f.writeUInt16BE(20 + inner.length, o + 2);
      f.writeUInt16BE(0x4000, o + 6);
      f[o + 8] = 64;
      f[o + 9] = 4;
      f.writeUInt32BE(W1.worker2, o + 12);
      f.writeUInt32BE(W1.nodeIp, o + 16);
      f.writeUInt16BE(internetChecksum(f, o, 20), o + 10);
      inner.copy(f, o + 20);
      return f;
    });
    const arena = Buffer.alloc(frames.reduce((a, f) => a + f.length + 64, 64));
    const offsets = new Uint32Array(2 * n);
    let at = 64;
    frames.forEach((f, k) => {
      f.copy(arena, at);
      offsets[2 * k] = at;
      offsets[2 * k + 1] = f.length;
      at += f.length + 64;
    });
    return { arena, offsets };
  }

  function lab(gro = true) {
    const fwd = new Forwarder(silentLogger, V, gro);
    fwd.primaryAddress = W1.nodeIp;
    const a = makeInterface(2, 'cali1234567890a', 'pod', CALI_MAC, 1480);
    const e = makeInterface(4, 'eth0', 'underlay', W1.eth0Mac, 1500);
    const t = makeInterface(5, 'tunl0', 'tunnel', Buffer.alloc(6), 1480);
    for (const x of [a, e, t]) fwd.addInterface(x.dev);
    fwd.tunnel = t.dev;
    fwd.local.set(W1.nodeIp, { answerEcho: true, deliverTo: null });
    fwd.tunnelPeers.add(W1.worker2);
    fwd.routes.add({ dst: W1.podA, prefixLen: 32, dev: a.dev, scope: 'link' });
    fwd.neighbours.setPermanent(a.dev, W1.podA, W1.podAMac);
    return { fwd, a, e, t };
  }

  it('segments decapsulated from one read batch reach the pod as one offloaded frame', () => {
    const { fwd, a, e, t } = lab();
    const { arena, offsets } = ipipBatch(20, 1388);
    fwd.receiveBatch(e.dev, arena, offsets, 20);
    const out = a.sink.take();
    assert.equal(out.length, 1, JSON.stringify(fwd.drops.toJSON()));
    assert.equal(a.sink.batches, 1, 'one write call');
    const segs = resegment(out[0]!);
    assert.equal(segs.length, 20);
    segs.forEach((s, k) => {
      assert.equal(s[V + ETH + 8], 63, 'TTL decremented on every segment');
      assert.equal(s.readUInt32BE(V + ETH + 20 + 4), 1000 + k * 1388);
    });
    assert.equal(t.dev.counters.rxPackets, 20, 'tunl0 received every segment');
    assert.equal(a.dev.counters.txPackets, 1);
    assert.equal(a.dev.counters.txBytes, 20 + 32 + 20 * 1388 + ETH);
    assert.deepEqual(a.dev.gro?.counters, { mergedPackets: 1, mergedSegments: 20 });
  });

  it('without GRO every segment is written', () => {
    const { fwd, a, e } = lab(false);
    const { arena, offsets } = ipipBatch(20, 1388);
    fwd.receiveBatch(e.dev, arena, offsets, 20);
    assert.equal(a.sink.take().length, 20);
    assert.equal(a.dev.gro, null);
  });

  it('GRO is only on links into a Linux stack, and only with virtio headers', () => {
    const { fwd, e, t } = lab();
    assert.equal(e.dev.gro, null);
    assert.equal(t.dev.gro, null);
    const plain = new Forwarder(silentLogger, 0);
    const p = makeInterface(9, 'cali0', 'pod', CALI_MAC, 1480);
    plain.addInterface(p.dev);
    assert.equal(p.dev.gro, null);
    void fwd;
  });
});
