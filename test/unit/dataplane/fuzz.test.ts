import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ARP_OP_REPLY,
  ARP_OP_REQUEST,
  ArpView,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETH_HEADER_LEN,
  IPPROTO_ICMP,
  IPPROTO_IPIP,
  IPPROTO_UDP,
  ParseResult,
  emitEthernetHeader,
  emitIpv4Header,
  macEquals,
} from '../../../src/packet/index.js';
import { DropReason, dropReasonNames } from '../../../src/dataplane/drops.js';
import type { Forwarder } from '../../../src/dataplane/forwarder.js';
import {
  FRAME_AUX,
  FRAME_CONTINUES,
  NetInterface,
  type FrameSink,
} from '../../../src/dataplane/interface.js';
import {
  CALI_MAC,
  HEADROOM,
  Prng,
  W1,
  arpFrame,
  checksum,
  echoRequest,
  icmpMessage,
  ip,
  ipv4Frame,
  tcpSyn,
  udpFrame,
  worker1,
  type IpOpts,
} from './helpers.js';

/**
 * A million frames through Forwarder.receiveBatch, in batches of 64 on one interface each:
 * random bytes, and mutations of valid ARP, ICMP, TCP, UDP and IPIP frames (bit flips, byte
 * writes, truncation, extension, corrupted version/IHL/total length/TTL/protocol/fragment
 * fields and EtherTypes, with the header checksums sometimes repaired so that mutations reach
 * the deeper layers). Deterministic (seeded).
 *
 * Checks: no exception escapes and the internal-error counter stays 0; every frame written
 * is well-formed (IPv4: total length = frame length - 14 and a header checksum that verifies;
 * ARP: 42 bytes that parse); and every frame fed is accounted for exactly, batch by batch:
 *
 *   fed = drops of received frames + frames sent from the receive arena (forwarded,
 *         delivered, echo replies: in place) + ARP frames consumed + frames left waiting
 *         for a neighbour
 *
 * where drops of frames the node generated itself (ICMP errors that cannot be routed or
 * queued) are told apart by watching the drop counters around sendIcmpError, and packets
 * waiting for a neighbour by watching NeighbourTable.resolve outside of it. Ticks run
 * between batches; at the end the waiting packets are failed by ticks and each is counted as
 * neighbour-failed. ICMP errors the node sends must verify and stay within 576 bytes.
 */
const N = 1_000_000;
const BATCH = 64;
const SEED = 0x6b77_6475;
const MAX_FRAME = 1514;
const SLOT = HEADROOM + MAX_FRAME + 2 * 64; // room for extension mutations

const WORKER2_POD = ip('192.168.8.222');
const STRANGER = ip('10.1.110.50');
const W2 = { mac: W1.worker2Mac, ip: W1.worker2 };

interface Base {
  frame: Buffer;
  /** Offset of the (outer) IPv4 header, or -1 (ARP). */
  ipOff: number;
  /** Offset of the inner IPv4 header of IPIP, or -1. */
  innerOff: number;
}

function ipipFrame(outerSrc: number, inner: Buffer, outerMac = W2.mac): Buffer {
  const pkt = inner.subarray(ETH_HEADER_LEN);
  const f = Buffer.alloc(ETH_HEADER_LEN + 20 + pkt.length);
  emitEthernetHeader(f, 0, W1.eth0Mac, outerMac, ETHERTYPE_IPV4);
  emitIpv4Header(f, ETH_HEADER_LEN, {
    src: outerSrc,
    dst: W1.nodeIp,
    protocol: IPPROTO_IPIP,
    ttl: 64,
    id: 0x1234,
    dontFragment: true,
    tos: 0,
    payloadLength: pkt.length,
  });
  pkt.copy(f, ETH_HEADER_LEN + 20);
  return f;
}

function base(frame: Buffer): Base {
  const isIp = frame.readUInt16BE(12) === ETHERTYPE_IPV4;
  const isIpip = isIp && frame[ETH_HEADER_LEN + 9] === IPPROTO_IPIP;
  return { frame, ipOff: isIp ? ETH_HEADER_LEN : -1, innerOff: isIpip ? ETH_HEADER_LEN + 20 : -1 };
}

function data(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + 5) & 0xff));
}

/** The valid frames each link sees, on worker-1 of the reference lab. */
function baseFrames(): { pod: Base[]; host: Base[]; underlay: Base[] } {
  const Z = Buffer.alloc(6);
  const A: Pick<IpOpts, 'src' | 'srcMac' | 'dstMac'> = {
    src: W1.podA,
    srcMac: W1.podAMac,
    dstMac: CALI_MAC,
  };
  const K: Pick<IpOpts, 'src' | 'srcMac' | 'dstMac'> = {
    src: W1.nodeIp,
    srcMac: W1.kernelMac,
    dstMac: CALI_MAC,
  };
  const fromW2Pod: Pick<IpOpts, 'src' | 'srcMac' | 'dstMac'> = {
    src: WORKER2_POD,
    srcMac: Z,
    dstMac: Z,
  };
  const pod = [
    arpFrame(ARP_OP_REQUEST, W1.podAMac, W1.podA, Z, ip('169.254.1.1')),
    arpFrame(ARP_OP_REQUEST, W1.podAMac, W1.podA, Z, W1.podA),
    arpFrame(ARP_OP_REQUEST, W1.podAMac, 0, Z, W1.podB),
    arpFrame(ARP_OP_REPLY, W1.podAMac, W1.podA, CALI_MAC, ip('169.254.1.1')),
    echoRequest({ ...A, dst: W1.podB }),
    echoRequest({ ...A, dst: W1.nodeIp }),
    echoRequest({ ...A, dst: W1.tunlIp }, 7, 9, 1400),
    echoRequest({ ...A, dst: ip('8.8.8.8') }),
    echoRequest({ ...A, dst: WORKER2_POD, ttl: 1 }),
    udpFrame({ ...A, dst: W1.podB }, 40000, 53, data(40)),
    udpFrame({ ...A, dst: W1.client }, 40001, 8080, data(200)),
    udpFrame({ ...A, dst: WORKER2_POD }, 40002, 53, data(60)),
    udpFrame({ ...A, dst: ip('192.168.104.70') }, 40003, 53, data(20)),
    udpFrame({ ...A, dst: ip('172.16.1.1') }, 40004, 53, data(20)),
    udpFrame({ ...A, dst: W1.podB, ttl: 1 }, 33434, 33435, data(32)),
    udpFrame({ ...A, dst: WORKER2_POD }, 40005, 9, data(1480 - 28)),
    tcpSyn({ ...A, dst: W1.podB }, 40006, 80),
    tcpSyn({ ...A, dst: W1.nodeIp }, 40007, 10250),
    tcpSyn({ ...A, dst: WORKER2_POD }, 40008, 80),
    ipv4Frame(
      { ...A, dst: W1.podB },
      IPPROTO_ICMP,
      icmpMessage(3, 3, 0, udpFrame({ src: W1.podB, dst: W1.podA }, 1, 2, data(8)).subarray(14)),
    ),
  ];
  const host = [
    arpFrame(ARP_OP_REQUEST, W1.kernelMac, W1.nodeIp, Z, ip('169.254.1.1')),
    arpFrame(ARP_OP_REQUEST, W1.kernelMac, W1.nodeIp, Z, W1.nodeIp),
    tcpSyn({ ...K, dst: W1.podA }, 50000, 8080),
    udpFrame({ ...K, dst: WORKER2_POD }, 50001, 53, data(1500 - 28)),
    udpFrame({ ...K, dst: W1.podB, ttl: 1 }, 50002, 33434, data(24)),
    echoRequest({ ...K, dst: W1.client }),
  ];
  const underlay = [
    arpFrame(ARP_OP_REQUEST, W2.mac, W2.ip, Z, W1.nodeIp),
    arpFrame(ARP_OP_REQUEST, W2.mac, W2.ip, Z, ip('10.1.110.108')),
    arpFrame(ARP_OP_REPLY, W2.mac, W2.ip, W1.eth0Mac, W1.nodeIp, W1.eth0Mac),
    arpFrame(ARP_OP_REPLY, W2.mac, STRANGER, W1.eth0Mac, W1.nodeIp, W1.eth0Mac),
    ipipFrame(W2.ip, echoRequest({ ...fromW2Pod, dst: W1.podA })),
    ipipFrame(W2.ip, echoRequest({ ...fromW2Pod, dst: W1.nodeIp })),
    ipipFrame(W2.ip, tcpSyn({ ...fromW2Pod, dst: W1.podB }, 60000, 80)),
    ipipFrame(W2.ip, udpFrame({ ...fromW2Pod, dst: W1.podB, ttl: 1 }, 60001, 53, data(30))),
    ipipFrame(W2.ip, udpFrame({ ...fromW2Pod, dst: ip('192.168.104.99') }, 60002, 53, data(30))),
    ipipFrame(STRANGER, echoRequest({ ...fromW2Pod, dst: W1.podA })),
    ipipFrame(W2.ip, ipipFrame(W2.ip, echoRequest({ ...fromW2Pod, dst: W1.podA }))),
    udpFrame(
      { src: W1.client, dst: W1.podB, srcMac: W1.routerMac, dstMac: W1.eth0Mac },
      40000,
      80,
      data(100),
    ),
    tcpSyn({ src: W2.ip, dst: W1.nodeIp, srcMac: W2.mac, dstMac: W1.eth0Mac }, 179, 179),
    echoRequest({ src: STRANGER, dst: W1.nodeIp, srcMac: W2.mac, dstMac: W1.eth0Mac }),
  ];
  return { pod: pod.map(base), host: host.map(base), underlay: underlay.map(base) };
}

function repairIpChecksum(buf: Buffer, off: number): void {
  const ihl = (buf[off]! & 15) * 4;
  if (ihl < 20 || off + ihl > buf.length) return;
  buf[off + 10] = 0;
  buf[off + 11] = 0;
  const c = checksum(buf, off, ihl);
  buf[off + 10] = c >>> 8;
  buf[off + 11] = c & 0xff;
}

/** Copies a random base frame (or random bytes) to `arena[off]`, mutated; returns its length. */
function makeFrame(
  rng: Prng,
  bases: Base[],
  dev: NetInterface,
  arena: Buffer,
  off: number,
): number {
  const kind = rng.int(100);
  if (kind < 8) {
    // Random bytes, half of them behind a header that passes the MAC check.
    const len = rng.int(rng.int(2) ? 120 : MAX_FRAME + 1);
    rng.fill(arena, off, len);
    if (len >= 14 && rng.int(2)) {
      dev.mac.copy(arena, off);
      arena.writeUInt16BE([ETHERTYPE_IPV4, ETHERTYPE_ARP, rng.int(0x10000)][rng.int(3)]!, off + 12);
      if (len >= 15 && rng.int(2)) arena[off + 14] = 0x45;
    }
    return len;
  }
  const b = bases[rng.int(bases.length)]!;
  let len = b.frame.length;
  b.frame.copy(arena, off);
  if (kind < 16) return len; // valid
  const ipOff = b.ipOff >= 0 ? off + b.ipOff : -1;
  const innerOff = b.innerOff >= 0 ? off + b.innerOff : -1;
  // Where header mutations land: the inner header of IPIP half the time.
  const hdr = innerOff >= 0 && rng.int(2) ? innerOff : ipOff;
  const repair = (): void => {
    if (rng.int(4) === 0) return;
    if (innerOff >= 0) repairIpChecksum(arena, innerOff);
    if (ipOff >= 0) repairIpChecksum(arena, ipOff);
  };
  if (kind < 36) {
    // Bit flips, anywhere.
    for (let n = 1 + rng.int(rng.int(2) ? 3 : 16); n > 0; n--) {
      const bit = rng.int(len * 8);
      arena[off + (bit >>> 3)]! ^= 1 << (bit & 7);
    }
    if (rng.int(2)) repair();
  } else if (kind < 46) {
    // Byte writes past the Ethernet header.
    for (let n = 1 + rng.int(4); n > 0; n--) {
      arena[off + 14 + rng.int(Math.max(1, len - 14))] = rng.u32() & 0xff;
    }
    if (rng.int(2)) repair();
  } else if (kind < 56) {
    len = rng.int(len); // truncation
  } else if (kind < 61) {
    const extra = 1 + rng.int(64); // extension (Ethernet padding, or junk after the packet)
    rng.fill(arena, off + len, extra);
    len = Math.min(len + extra, MAX_FRAME + 64);
  } else if (kind < 66) {
    arena.writeUInt16BE(rng.int(4) ? rng.int(0x10000) : 0x86dd, off + 12); // EtherType
  } else if (kind < 90 && hdr >= 0) {
    // One IPv4 header field set to something else, checksum usually repaired.
    switch (rng.int(8)) {
      case 0:
        arena.writeUInt16BE(rng.int(2) ? rng.int(0x10000) : rng.int(80), hdr + 2); // total length
        break;
      case 1:
        arena[hdr] = (arena[hdr]! & 0xf0) | rng.int(16); // IHL
        break;
      case 2:
        arena[hdr] = (rng.int(16) << 4) | (arena[hdr]! & 15); // version
        break;
      case 3:
        arena[hdr + 8] = rng.int(3); // TTL 0..2
        break;
      case 4:
        arena[hdr + 9] = [IPPROTO_ICMP, IPPROTO_IPIP, IPPROTO_UDP, 6, rng.int(256)][rng.int(5)]!;
        break;
      case 5:
        arena.writeUInt16BE(rng.u32() & 0xffff, hdr + 6); // flags + fragment offset
        break;
      case 6:
        arena.writeUInt32BE(rng.u32(), hdr + (rng.int(2) ? 12 : 16)); // an address
        break;
      default:
        arena[hdr + 1] = rng.u32() & 0xff; // TOS
    }
    repair();
  } else if (b.ipOff < 0) {
    // ARP fields: hardware/protocol type and lengths, operation.
    const f = [0, 1, 2, 3, 4, 5, 6, 7][rng.int(8)]!;
    arena[off + 14 + f] = rng.int(3) ? rng.int(4) : rng.u32() & 0xff;
  } else {
    // Transport bytes after the header, checksums of the headers repaired.
    const l4 = hdr + (arena[hdr]! & 15) * 4;
    if (l4 < off + len) arena[l4 + rng.int(off + len - l4)] = rng.u32() & 0xff;
    repair();
  }
  return len;
}

/** Checks each frame written and tells the ones sent in place from the receive arena. */
class CheckingSink implements FrameSink {
  arena: Buffer | null = null;
  inPlace = 0;
  frames = 0;
  generatedIcmp = 0;
  readonly arp = new ArpView();

  constructor(
    private readonly dev: NetInterface,
    /** The forwarder's arena for frames it originates (ARP, ICMP errors). */
    private readonly scratch: Buffer,
  ) {}

  writeBatch(first: Buffer, offsets: Uint32Array, count: number, aux?: Buffer): number {
    for (let i = 0; i < count; i++) {
      let o = offsets[i * 2]!;
      let buf = first;
      if (o >= FRAME_AUX) {
        assert.ok(aux, 'a pair in a second buffer that was not given');
        buf = aux;
        o -= FRAME_AUX;
      }
      const l = offsets[i * 2 + 1]!;
      assert.ok(l < FRAME_CONTINUES, 'no gathered frames without virtio headers');
      this.check(buf, o, l);
      if (buf === this.arena) this.inPlace++;
      else if (buf === this.scratch && buf.readUInt16BE(o + 12) === ETHERTYPE_IPV4) {
        this.checkGenerated(buf, o + 14, l - 14);
      }
    }
    this.frames += count;
    return count;
  }

  /** An ICMP error of the node's (maybe inside IPIP): valid checksum, at most 576 bytes. */
  private checkGenerated(buf: Buffer, o: number, l: number): void {
    if (buf[o + 9] === IPPROTO_IPIP) {
      o += 20;
      l -= 20;
    }
    const bad = (why: string) =>
      new Error(`${this.dev.name}: ${why}: ${buf.toString('hex', o, o + Math.min(l, 64))}`);
    if (buf[o] !== 0x45 || buf[o + 9] !== IPPROTO_ICMP) throw bad('not ICMP');
    if (checksum(buf, o, 20) !== 0) throw bad('inner header checksum');
    if (l > 576) throw bad('longer than 576 bytes');
    const type = buf[o + 20]!;
    if (type !== 3 && type !== 11) throw bad(`ICMP type ${type}`);
    if (checksum(buf, o + 20, l - 20) !== 0) throw bad('ICMP checksum');
    this.generatedIcmp++;
  }

  write(): boolean {
    throw new Error('the forwarder writes in batches');
  }

  private check(buf: Buffer, o: number, l: number): void {
    if (l < ETH_HEADER_LEN) throw new Error(`${this.dev.name}: runt frame of ${l} bytes`);
    if (!macEquals(buf, o + 6, this.dev.mac))
      throw new Error(`${this.dev.name}: foreign source MAC`);
    const type = buf.readUInt16BE(o + 12);
    if (type === ETHERTYPE_ARP) {
      if (l !== 42 || this.arp.wrap(buf, o + 14, 28) !== ParseResult.Ok) {
        throw new Error(`${this.dev.name}: bad ARP frame ${buf.toString('hex', o, o + l)}`);
      }
      return;
    }
    if (type !== ETHERTYPE_IPV4) throw new Error(`${this.dev.name}: EtherType ${type}`);
    const ihl = (buf[o + 14]! & 15) * 4;
    if (buf[o + 14]! >>> 4 !== 4 || ihl < 20 || 14 + ihl > l) {
      throw new Error(`${this.dev.name}: bad IPv4 header ${buf.toString('hex', o, o + 34)}`);
    }
    if (buf.readUInt16BE(o + 16) !== l - 14) {
      throw new Error(
        `${this.dev.name}: frame length ${l} for IP total length ${buf.readUInt16BE(o + 16)}`,
      );
    }
    if (checksum(buf, o + 14, ihl) !== 0) {
      throw new Error(
        `${this.dev.name}: bad header checksum ${buf.toString('hex', o, o + 14 + ihl)}`,
      );
    }
  }
}

interface Hooks {
  /** Drops counted while the node was generating an ICMP error (not drops of received frames). */
  generatedDrops: number;
  /** Packets of received frames handed to neighbour resolution (queued or refused: queue full). */
  resolveCalls: number;
  /** Queue-full drops of packets the node generated. */
  generatedQueueFull: number;
}

/** Watches the two places where packets the node generates can be dropped or queued. */
function hook(fwd: Forwarder): Hooks {
  const h: Hooks = { generatedDrops: 0, resolveCalls: 0, generatedQueueFull: 0 };
  const internals = fwd as unknown as Record<string, unknown>;
  const send = internals.sendIcmpError;
  assert.equal(typeof send, 'function', 'Forwarder.sendIcmpError (hooked by this test) exists');
  let inIcmp = false;
  internals.sendIcmpError = function (this: Forwarder, ...args: unknown[]): void {
    const before = fwd.drops.total();
    const qf = fwd.drops.counts[DropReason.NeighbourQueueFull]!;
    inIcmp = true;
    try {
      (send as (...a: unknown[]) => void).apply(this, args);
    } finally {
      inIcmp = false;
    }
    h.generatedDrops += fwd.drops.total() - before;
    h.generatedQueueFull += fwd.drops.counts[DropReason.NeighbourQueueFull]! - qf;
  };
  const resolve = fwd.neighbours.resolve.bind(fwd.neighbours);
  fwd.neighbours.resolve = (dev, addr) => {
    if (!inIcmp) h.resolveCalls++;
    return resolve(dev, addr);
  };
  return h;
}

describe('forwarder fuzz', () => {
  it(`${N.toLocaleString('en')} random and mutated frames: no crash, every frame accounted for`, () => {
    const lab = worker1();
    const { fwd } = lab;
    // worker-1 with its overlay: tunl0, worker-2's block through it, the underlay subnet with
    // the other nodes and the router as permanent neighbours, a route that is unreachable.
    const tunl0 = new NetInterface(5, 'tunl0', 'tunnel', Buffer.alloc(6), 1480, null);
    fwd.addInterface(tunl0);
    fwd.tunnel = tunl0;
    fwd.tunnelPeers.add(W1.worker2);
    fwd.tunnelPeers.add(ip('10.1.110.108'));
    fwd.routes.add({
      dst: ip('192.168.8.192'),
      prefixLen: 26,
      dev: tunl0,
      via: W1.worker2,
      onlink: true,
      proto: 'bird',
    });
    fwd.routes.add({ dst: ip('10.1.110.0'), prefixLen: 24, dev: lab.eth0, proto: 'kernel' });
    fwd.neighbours.setPermanent(lab.eth0, W1.worker2, W1.worker2Mac);
    fwd.neighbours.setPermanent(lab.eth0, ip('10.1.110.108'), W1.worker2Mac);
    fwd.routes.add({ dst: ip('172.16.0.0'), prefixLen: 12, type: 'unreachable' });

    const links = [lab.caliA, lab.caliB, lab.host, lab.eth0];
    const scratch = (fwd as unknown as { scratch: Buffer }).scratch;
    assert.ok(Buffer.isBuffer(scratch), 'Forwarder.scratch (read by this test) exists');
    const sinks = links.map((dev) => {
      const s = new CheckingSink(dev, scratch);
      dev.sink = s;
      return s;
    });
    const bases = baseFrames();
    const basesOf = (dev: NetInterface): Base[] =>
      dev.kind === 'pod' ? bases.pod : dev.kind === 'host' ? bases.host : bases.underlay;
    const hooks = hook(fwd);

    const rng = new Prng(SEED);
    const arena = Buffer.alloc(BATCH * SLOT);
    const offsets = new Uint32Array(BATCH * 2);
    const arpView = new ArpView();
    let fed = 0;
    let arpConsumed = 0;
    let clock = Date.now();
    const started = clock;
    for (let batch = 0; fed < N; batch++) {
      // Between batches, as the agent's timers would: the 1 s tick (on a clock of its own,
      // ahead of Date.now(): the forwarder must not mind), and pod B's link going down and up.
      if (batch % 300 === 299) fwd.tick((clock += 1000));
      if (batch % 500 === 0) lab.caliB.up = rng.int(8) !== 0;
      const dev = links[rng.int(links.length)]!;
      const frames = basesOf(dev);
      const count = Math.min(BATCH, N - fed);
      let batchArp = 0;
      for (let i = 0; i < count; i++) {
        const o = i * SLOT + HEADROOM;
        const len = makeFrame(rng, frames, dev, arena, o);
        offsets[i * 2] = o;
        offsets[i * 2 + 1] = len;
        // What the forwarder must consume as ARP: for us (or broadcast), and well-formed.
        if (
          len >= 14 &&
          arena.readUInt16BE(o + 12) === ETHERTYPE_ARP &&
          (macEquals(arena, o, dev.mac) || arena.readUIntBE(o, 6) === 0xffffffffffff) &&
          arpView.wrap(arena, o + 14, len - 14) === ParseResult.Ok
        ) {
          batchArp++;
        }
      }
      const before = {
        drops: fwd.drops.total(),
        generated: hooks.generatedDrops,
        resolves: hooks.resolveCalls,
        rxQueueFull: fwd.drops.counts[DropReason.NeighbourQueueFull]! - hooks.generatedQueueFull,
        inPlace: sinks.reduce((n, s) => n + s.inPlace, 0),
      };
      for (const s of sinks) s.arena = arena;
      fwd.receiveBatch(dev, arena, offsets, count);
      for (const s of sinks) s.arena = null;
      fed += count;
      arpConsumed += batchArp;

      const rxDrops = fwd.drops.total() - before.drops - (hooks.generatedDrops - before.generated);
      const rxQueueFull =
        fwd.drops.counts[DropReason.NeighbourQueueFull]! -
        hooks.generatedQueueFull -
        before.rxQueueFull;
      const waiting = hooks.resolveCalls - before.resolves - rxQueueFull;
      const inPlace = sinks.reduce((n, s) => n + s.inPlace, 0) - before.inPlace;
      if (rxDrops + inPlace + batchArp + waiting !== count) {
        assert.fail(
          `batch ${batch} on ${dev.name}: ${count} frames fed, but ${rxDrops} dropped + ` +
            `${inPlace} sent in place + ${batchArp} ARP + ${waiting} waiting`,
        );
      }
    }
    const elapsed = Date.now() - started;

    assert.equal(fwd.drops.counts[DropReason.InternalError], 0, 'no internal errors');
    const rx = links.reduce((n, d) => n + d.counters.rxPackets, 0);
    assert.equal(rx, N, 'rx counters = frames fed');
    const tx = links.reduce((n, d) => n + d.counters.txPackets, 0);
    assert.equal(
      tx,
      sinks.reduce((n, s) => n + s.frames, 0),
      'tx counters = frames written',
    );
    // Waiting packets released onto a link that is down are refused by it, not dropped by
    // the forwarder; nothing else is.
    assert.equal(lab.caliA.counters.txDropped + lab.host.counters.txDropped, 0);

    // Packets still waiting for a neighbour fail after three probes, each counted.
    lab.caliB.up = true;
    const waitingNow = fwd.neighbours.all().reduce((n, e) => n + e.queue.length, 0);
    const failedBefore = fwd.drops.counts[DropReason.NeighbourFailed]!;
    for (let k = 1; k <= 4; k++) fwd.tick((clock += 1000));
    assert.equal(
      fwd.neighbours.all().reduce((n, e) => n + e.queue.length, 0),
      0,
    );
    assert.equal(fwd.drops.counts[DropReason.NeighbourFailed]! - failedBefore, waitingNow);

    const drops = fwd.drops.toJSON();
    const summary = {
      frames: N,
      ms: elapsed,
      arpConsumed,
      sentInPlace: sinks.reduce((n, s) => n + s.inPlace, 0),
      written: tx,
      icmpErrors: sinks.reduce((n, s) => n + s.generatedIcmp, 0),
      waitingForNeighbour: waitingNow,
      drops,
    };
    console.log(JSON.stringify(summary));
    // A mix of outcomes: every reason the topology can produce from received frames shows up.
    const expected = [
      'eth-truncated',
      'foreign-mac',
      'multicast',
      'unsupported-ethertype',
      'arp-malformed',
      'ipv4-truncated',
      'ipv4-malformed',
      'ipv4-checksum',
      'ttl-exceeded',
      'no-route',
      'blackhole',
      'unreachable',
      'frag-needed',
      'icmp-malformed',
      'martian-source',
      'ipv4-fragment',
      'ipip-unknown-source',
      'ipip-nested',
      'neighbour-failed',
      'interface-down',
    ];
    for (const name of expected) assert.ok((drops[name] ?? 0) > 0, `some ${name} drops`);
    assert.ok(summary.sentInPlace > N / 10, 'a good part is forwarded');
    assert.ok(arpConsumed > N / 50, 'and ARP consumed');
    assert.ok(summary.icmpErrors > 1000, 'and ICMP errors sent');
    assert.deepEqual(
      Object.keys(drops).filter((k) => !expected.includes(k) && k !== 'neighbour-queue-full'),
      [],
      'no other reason',
    );
    assert.ok(dropReasonNames.includes('internal-error'));
  });
});
