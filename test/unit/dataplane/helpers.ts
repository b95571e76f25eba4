/**
 * Shared pieces of the dataplane unit tests: a recording FrameSink, fake interfaces, a small
 * worker-1 topology with the reference lab's addresses, frame builders (on the src/packet
 * builders) and an independent checksum for verifying what the forwarder writes.
 */
import assert from 'node:assert/strict';
import { pino } from 'pino';
import {
  ARP_OP_REQUEST,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETH_HEADER_LEN,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_HEADER_LEN,
  TCP_HEADER_LEN,
  UDP_HEADER_LEN,
  emitArp,
  emitEthernetHeader,
  emitIpv4Header,
  emitTcp,
  emitUdp,
  ipv4FromString,
  macFromString,
} from '../../../src/packet/index.js';
import { DropCounters, DropReason, dropReasonNames } from '../../../src/dataplane/drops.js';
import { Forwarder } from '../../../src/dataplane/forwarder.js';
import {
  FRAME_AUX,
  FRAME_CONTINUES,
  NetInterface,
  type FrameSink,
  type InterfaceKind,
} from '../../../src/dataplane/interface.js';

export const ip = ipv4FromString;
export const mac = macFromString;

export const silentLogger = pino({ level: 'silent' });

/** One frame a sink received: a copy of its bytes, and the buffer it was written from. */
export interface SentFrame {
  bytes: Buffer;
  from: Buffer;
  offset: number;
}

/** A FrameSink that keeps a copy of every frame written (the caller reuses its buffers). */
export class RecordingSink implements FrameSink {
  readonly sent: SentFrame[] = [];
  batches = 0;
  /** Frames accepted per writeBatch call (the rest are refused, as on EAGAIN). */
  accept = Infinity;
  /** Throw from writeBatch (as a TAP does on an unexpected errno). */
  fail = false;

  /**
   * Gathered frames (pairs with FRAME_CONTINUES) are recorded whole, as the TAP writes them;
   * pairs with FRAME_AUX are read from `aux`.
   */
  writeBatch(buf: Buffer, offsets: Uint32Array, count: number, aux?: Buffer): number {
    this.batches++;
    if (this.fail) throw new Error('sink failure');
    const first = buf;
    let frames = 0;
    for (let i = 0; i < count; i++) {
      let o = offsets[i * 2]!;
      const l = offsets[i * 2 + 1]!;
      buf = first;
      if (o >= FRAME_AUX) {
        assert.ok(aux, 'a pair in a second buffer that was not given');
        buf = aux;
        o -= FRAME_AUX;
      }
      if (l >= FRAME_CONTINUES) {
        assert.ok(i > 0, 'a continuation pair first');
        const last = this.sent[this.sent.length - 1]!;
        const part = buf.subarray(o, o + l - FRAME_CONTINUES);
        assert.equal(part.length, l - FRAME_CONTINUES, 'part inside the buffer');
        last.bytes = Buffer.concat([last.bytes, part]);
        continue;
      }
      if (frames === this.accept) break;
      frames++;
      this.sent.push({ bytes: Buffer.from(buf.subarray(o, o + l)), from: buf, offset: o });
    }
    return frames;
  }

  write(buf: Buffer, offset = 0, length = buf.length - offset): boolean {
    this.sent.push({
      bytes: Buffer.from(buf.subarray(offset, offset + length)),
      from: buf,
      offset,
    });
    return true;
  }

  /** The frames' bytes, and forgets them. */
  take(): Buffer[] {
    return this.sent.splice(0).map((f) => f.bytes);
  }
}

export function makeInterface(
  index: number,
  name: string,
  kind: InterfaceKind,
  macAddr: Buffer,
  mtu: number,
): { dev: NetInterface; sink: RecordingSink } {
  const sink = new RecordingSink();
  return { dev: new NetInterface(index, name, kind, macAddr, mtu, sink), sink };
}

/** Calico's MAC on the host side of every pod link (and the host link). */
export const CALI_MAC = mac('ee:ee:ee:ee:ee:ee');

/**
 * worker-1 of the reference lab: node IP 10.1.110.102 (underlay eth0), block
 * 192.168.104.64/26 (blackhole; tunl0's 192.168.104.64 is local), pods .65 and .66 on
 * caliA/caliB, the node's own kernel on the host link, worker-2's block via the router.
 */
export const W1 = {
  nodeIp: ip('10.1.110.102'),
  tunlIp: ip('192.168.104.64'),
  podA: ip('192.168.104.65'),
  podB: ip('192.168.104.66'),
  worker2: ip('10.1.110.107'),
  router: ip('10.1.110.1'),
  client: ip('10.1.0.89'),
  podAMac: mac('0a:58:c0:a8:68:41'),
  podBMac: mac('0a:58:c0:a8:68:42'),
  kernelMac: mac('02:00:00:00:00:01'),
  eth0Mac: mac('02:42:0a:01:6e:66'),
  worker2Mac: mac('02:42:0a:01:6e:6b'),
  routerMac: mac('02:42:0a:01:6e:01'),
} as const;

export interface Lab {
  fwd: Forwarder;
  caliA: NetInterface;
  caliB: NetInterface;
  host: NetInterface;
  eth0: NetInterface;
  sinks: Map<NetInterface, RecordingSink>;
  sinkA: RecordingSink;
  sinkB: RecordingSink;
  sinkHost: RecordingSink;
  sinkEth0: RecordingSink;
}

/**
 * The worker-1 forwarder. Routes: pods /32 dev caliX scope link, own block blackhole, the
 * client's 10.1.0.0/24 via the router (permanent neighbour) and, with `underlaySubnet`, 10.1.110.0/24 dev eth0 (whose
 * other addresses must be resolved).
 */
export function worker1(opts: { underlaySubnet?: boolean; podMtu?: number } = {}): Lab {
  const fwd = new Forwarder(silentLogger);
  fwd.primaryAddress = W1.nodeIp;
  const podMtu = opts.podMtu ?? 1480;
  const a = makeInterface(2, 'cali1234567890a', 'pod', CALI_MAC, podMtu);
  const b = makeInterface(3, 'calib0b0b0b0b0b', 'pod', CALI_MAC, podMtu);
  const h = makeInterface(1, 'kubewire0', 'host', CALI_MAC, 1500);
  const e = makeInterface(4, 'eth0', 'underlay', W1.eth0Mac, 1500);
  for (const x of [h, a, b, e]) fwd.addInterface(x.dev);
  fwd.local.set(W1.nodeIp, { answerEcho: true, deliverTo: h.dev });
  fwd.local.set(W1.tunlIp, { answerEcho: true, deliverTo: h.dev });
  fwd.neighbours.setPermanent(h.dev, W1.nodeIp, W1.kernelMac);
  fwd.neighbours.setPermanent(h.dev, W1.tunlIp, W1.kernelMac);
  fwd.routes.add({ dst: W1.podA, prefixLen: 32, dev: a.dev, scope: 'link' });
  fwd.routes.add({ dst: W1.podB, prefixLen: 32, dev: b.dev, scope: 'link' });
  fwd.neighbours.setPermanent(a.dev, W1.podA, W1.podAMac);
  fwd.neighbours.setPermanent(b.dev, W1.podB, W1.podBMac);
  fwd.routes.add({ dst: ip('192.168.104.64'), prefixLen: 26, type: 'blackhole', proto: 'bird' });
  fwd.routes.add({ dst: ip('10.1.0.0'), prefixLen: 24, dev: e.dev, via: W1.router });
  fwd.neighbours.setPermanent(e.dev, W1.router, W1.routerMac);
  if (opts.underlaySubnet) {
    fwd.routes.add({ dst: ip('10.1.110.0'), prefixLen: 24, dev: e.dev, proto: 'kernel' });
  }
  const sinks = new Map<NetInterface, RecordingSink>([
    [a.dev, a.sink],
    [b.dev, b.sink],
    [h.dev, h.sink],
    [e.dev, e.sink],
  ]);
  return {
    fwd,
    caliA: a.dev,
    caliB: b.dev,
    host: h.dev,
    eth0: e.dev,
    sinks,
    sinkA: a.sink,
    sinkB: b.sink,
    sinkHost: h.sink,
    sinkEth0: e.sink,
  };
}

/** Headroom the TAP leaves in front of every frame of its arena (src/tap TAP_FRAME_HEADROOM). */
export const HEADROOM = 64;

/**
 * Feeds frames to the forwarder as one receive batch, laid out as the TAP's arena: each frame
 * 8-byte aligned with HEADROOM writable bytes in front of it.
 */
export function feed(fwd: Forwarder, dev: NetInterface, ...frames: Buffer[]): Buffer {
  const arena = Buffer.alloc(frames.reduce((n, f) => n + HEADROOM + ((f.length + 7) & ~7), 0));
  const offsets = new Uint32Array(frames.length * 2);
  let o = HEADROOM;
  frames.forEach((f, i) => {
    f.copy(arena, o);
    offsets[i * 2] = o;
    offsets[i * 2 + 1] = f.length;
    o += ((f.length + 7) & ~7) + HEADROOM;
  });
  fwd.receiveBatch(dev, arena, offsets, frames.length);
  return arena;
}

/** Every sink's frames, by interface name; forgets them. */
export function takeAll(lab: Lab): Record<string, Buffer[]> {
  const out: Record<string, Buffer[]> = {};
  for (const [dev, sink] of lab.sinks) {
    const frames = sink.take();
    if (frames.length) out[dev.name] = frames;
  }
  return out;
}

/** Asserts the drop counters are exactly `expected` (by DropReason key), every other one 0. */
export function expectDrops(
  drops: DropCounters,
  expected: Partial<Record<keyof typeof DropReason, number>>,
): void {
  const want: Record<string, number> = {};
  for (const [k, v] of Object.entries(expected)) {
    if (v) want[dropReasonNames[DropReason[k as keyof typeof DropReason]]!] = v;
  }
  assert.deepEqual(drops.toJSON(), want);
}

// ---- frame builders ---------------------------------------------------------

export interface IpOpts {
  src: number;
  dst: number;
  ttl?: number;
  id?: number;
  df?: boolean;
  tos?: number;
  dstMac?: Uint8Array;
  srcMac?: Uint8Array;
}

/** Ethernet + 20-byte IPv4 header in front of `l4` (already complete, checksums included). */
export function ipv4Frame(o: IpOpts, protocol: number, l4: Buffer): Buffer {
  const f = Buffer.alloc(ETH_HEADER_LEN + IPV4_HEADER_LEN + l4.length);
  emitEthernetHeader(f, 0, o.dstMac ?? CALI_MAC, o.srcMac ?? W1.podAMac, ETHERTYPE_IPV4);
  emitIpv4Header(f, ETH_HEADER_LEN, {
    src: o.src,
    dst: o.dst,
    protocol,
    ttl: o.ttl ?? 64,
    id: o.id ?? 0x1234,
    dontFragment: o.df ?? true,
    tos: o.tos ?? 0,
    payloadLength: l4.length,
  });
  l4.copy(f, ETH_HEADER_LEN + IPV4_HEADER_LEN);
  return f;
}

/** An ICMP message (type, code, 4 bytes of rest, data) with its checksum. */
export function icmpMessage(type: number, code: number, rest: number, data: Buffer): Buffer {
  const m = Buffer.alloc(8 + data.length);
  m[0] = type;
  m[1] = code;
  m.writeUInt32BE(rest >>> 0, 4);
  data.copy(m, 8);
  m.writeUInt16BE(checksum(m, 0, m.length), 2);
  return m;
}

/** A ping as iputils sends it: 56 bytes of data. */
export function echoRequest(o: IpOpts, ident = 0x1fcd, seq = 1, dataLen = 56): Buffer {
  const data = Buffer.alloc(dataLen);
  for (let i = 0; i < dataLen; i++) data[i] = (i + 0x10) & 0xff;
  return ipv4Frame(o, IPPROTO_ICMP, icmpMessage(8, 0, (ident << 16) | seq, data));
}

export function udpFrame(o: IpOpts, sport: number, dport: number, payload: Buffer): Buffer {
  const l4 = Buffer.alloc(UDP_HEADER_LEN + payload.length);
  payload.copy(l4, UDP_HEADER_LEN);
  emitUdp(l4, 0, sport, dport, payload.length, o.src, o.dst);
  return ipv4Frame(o, IPPROTO_UDP, l4);
}

export function tcpSyn(o: IpOpts, sport: number, dport: number): Buffer {
  const opts = Buffer.from([2, 4, 0x05, 0xb4, 4, 2, 1, 3, 3, 7]); // MSS 1460, SACK ok, wscale 7
  const l4 = Buffer.alloc(TCP_HEADER_LEN + 12);
  emitTcp(
    l4,
    0,
    {
      srcPort: sport,
      dstPort: dport,
      seq: 0x01020304,
      ack: 0,
      flags: 0x02,
      window: 64240,
      options: opts,
    },
    o.src,
    o.dst,
    0,
  );
  return ipv4Frame(o, IPPROTO_TCP, l4);
}

export function arpFrame(
  op: number,
  senderMac: Uint8Array,
  senderIp: number,
  targetMac: Uint8Array,
  targetIp: number,
  ethDst: Uint8Array = op === ARP_OP_REQUEST ? Buffer.alloc(6, 0xff) : CALI_MAC,
): Buffer {
  const f = Buffer.alloc(ETH_HEADER_LEN + 28);
  emitEthernetHeader(f, 0, ethDst, senderMac, ETHERTYPE_ARP);
  emitArp(f, ETH_HEADER_LEN, op, senderMac, senderIp, targetMac, targetIp);
  return f;
}

// ---- independent checks -----------------------------------------------------

/** The Internet checksum, written out plainly (not the implementation under test). */
export function checksum(b: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < len; i += 2) sum += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** Decoded fields of an Ethernet + IPv4 frame, with both checksums recomputed from scratch. */
export interface Decoded {
  dstMac: string;
  srcMac: string;
  etherType: number;
  ihl: number;
  tos: number;
  totalLength: number;
  id: number;
  df: boolean;
  ttl: number;
  protocol: number;
  src: string;
  dst: string;
  headerChecksumOk: boolean;
  /** For ICMP: the checksum over the whole message verifies. */
  icmpChecksumOk: boolean;
  /** IP payload. */
  payload: Buffer;
}

function macStr(b: Uint8Array, o: number): string {
  return Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

export function ipStr(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

export function decode(f: Buffer): Decoded {
  const o = ETH_HEADER_LEN;
  const ihl = (f[o]! & 15) * 4;
  const totalLength = f.readUInt16BE(o + 2);
  assert.equal(f.length, ETH_HEADER_LEN + totalLength, 'frame length = 14 + IP total length');
  const payload = f.subarray(o + ihl, o + totalLength);
  const protocol = f[o + 9]!;
  return {
    dstMac: macStr(f, 0),
    srcMac: macStr(f, 6),
    etherType: f.readUInt16BE(12),
    ihl,
    tos: f[o + 1]!,
    totalLength,
    id: f.readUInt16BE(o + 4),
    df: (f[o + 6]! & 0x40) !== 0,
    ttl: f[o + 8]!,
    protocol,
    src: ipStr(f.readUInt32BE(o + 12)),
    dst: ipStr(f.readUInt32BE(o + 16)),
    headerChecksumOk: checksum(f, o, ihl) === 0,
    icmpChecksumOk: protocol === IPPROTO_ICMP && checksum(payload, 0, payload.length) === 0,
    payload,
  };
}

/** Deterministic PRNG (mulberry32). */
export class Prng {
  constructor(private state: number) {}
  u32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }
  fill(buf: Uint8Array, offset: number, length: number): void {
    for (let i = 0; i < length; i++) buf[offset + i] = this.u32() & 0xff;
  }
}
