/**
 * Helpers of the conntrack unit tests: packets built with the src/packet builders, a fake
 * clock, a PacketMeta per packet as the forwarder fills it, the hook sequence of a forwarded
 * packet, and an independent checksum check.
 */
import assert from 'node:assert/strict';
import {
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_HEADER_LEN,
  Ipv4View,
  ParseResult,
  emitIcmpErrorPacket,
  emitIpv4Header,
  emitTcp,
  emitUdp,
  internetChecksum,
  ipv4FromString,
  pseudoHeaderSum,
} from '../../../src/packet/index.js';
import { Hook, PacketMeta, type NatRequest } from '../../../src/netfilter/packet-meta.js';
import {
  Conntrack,
  type ConntrackEvent,
  type ConntrackOptions,
} from '../../../src/conntrack/index.js';

export const ip = ipv4FromString;

export const F = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 } as const;

/** A clock the tests move by hand (ms). */
export class FakeClock {
  t = 1_000_000;
  now = (): number => this.t;
  advance(seconds: number): void {
    this.t += seconds * 1000;
  }
}

/** A Conntrack on a fake clock with a deterministic random source, recording events. */
export function makeConntrack(opts: ConntrackOptions = {}): {
  ct: Conntrack;
  clock: FakeClock;
  events: ConntrackEvent[];
  logs: string[];
} {
  const clock = new FakeClock();
  const events: ConntrackEvent[] = [];
  const logs: string[] = [];
  let seed = 12345;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 4294967296;
  };
  const ct = new Conntrack({
    now: clock.now,
    random,
    hashSeed: 7,
    events: (e) => events.push(e),
    log: (l) => logs.push(l),
    ...opts,
  });
  return { ct, clock, events, logs };
}

export interface TcpSpec {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags: number;
  win?: number;
  payload?: number;
  options?: number[];
}

/** An IPv4+TCP packet with correct checksums. */
export function tcp(p: TcpSpec): Buffer {
  const opts = p.options ? Uint8Array.from(p.options) : undefined;
  const hl = 20 + (opts ? (opts.length + 3) & ~3 : 0);
  const payload = p.payload ?? 0;
  const buf = Buffer.alloc(IPV4_HEADER_LEN + hl + payload);
  for (let i = 0; i < payload; i++) buf[IPV4_HEADER_LEN + hl + i] = (i * 7 + 3) & 0xff;
  emitTcp(
    buf,
    IPV4_HEADER_LEN,
    {
      srcPort: p.sport,
      dstPort: p.dport,
      seq: (p.seq ?? 0) >>> 0,
      ack: (p.ack ?? 0) >>> 0,
      flags: p.flags,
      window: p.win ?? 64240,
      options: opts,
    },
    ip(p.src),
    ip(p.dst),
    payload,
  );
  emitIpv4Header(buf, 0, {
    src: ip(p.src),
    dst: ip(p.dst),
    protocol: IPPROTO_TCP,
    ttl: 64,
    id: 1,
    dontFragment: true,
    tos: 0,
    payloadLength: hl + payload,
  });
  return buf;
}

/** An IPv4+UDP packet with a checksum. */
export function udp(src: string, dst: string, sport: number, dport: number, payload = 16): Buffer {
  const buf = Buffer.alloc(IPV4_HEADER_LEN + 8 + payload);
  for (let i = 0; i < payload; i++) buf[IPV4_HEADER_LEN + 8 + i] = (i * 13 + 1) & 0xff;
  emitUdp(buf, IPV4_HEADER_LEN, sport, dport, payload, ip(src), ip(dst));
  emitIpv4Header(buf, 0, {
    src: ip(src),
    dst: ip(dst),
    protocol: IPPROTO_UDP,
    ttl: 64,
    id: 2,
    dontFragment: false,
    tos: 0,
    payloadLength: 8 + payload,
  });
  return buf;
}

/** An ICMP query (echo 8 / reply 0, timestamp 13, info 15, mask 17 ...) with id and seq. */
export function icmp(
  src: string,
  dst: string,
  type: number,
  id: number,
  code = 0,
  seq = 1,
): Buffer {
  const buf = Buffer.alloc(IPV4_HEADER_LEN + 8 + 8);
  const o = IPV4_HEADER_LEN;
  buf[o] = type;
  buf[o + 1] = code;
  buf.writeUInt16BE(id, o + 4);
  buf.writeUInt16BE(seq, o + 6);
  buf.write('pingpong', o + 8, 'latin1');
  const c = internetChecksum(buf, o, 16);
  buf.writeUInt16BE(c, o + 2);
  emitIpv4Header(buf, 0, {
    src: ip(src),
    dst: ip(dst),
    protocol: IPPROTO_ICMP,
    ttl: 64,
    id: 3,
    dontFragment: false,
    tos: 0,
    payloadLength: 16,
  });
  return buf;
}

/** An ICMP error from `from` quoting `original` (as Linux's icmp_send builds it). */
export function icmpError(
  type: number,
  code: number,
  from: string,
  original: Buffer,
  mtu = 0,
): Buffer {
  const v = new Ipv4View();
  assert.equal(v.wrap(original, 0, original.length), ParseResult.Ok);
  const buf = Buffer.alloc(IPV4_HEADER_LEN + 8 + original.length);
  const len = emitIcmpErrorPacket(buf, 0, type, code, v, ip(from), 9, mtu);
  return buf.subarray(0, len);
}

/** A fresh PacketMeta for `buf` at `hook` (the forwarder resets and parses per packet). */
export function meta(
  buf: Buffer,
  hook: number = Hook.PREROUTING,
  inIf = 'eth0',
  outIf = '',
): PacketMeta {
  const m = new PacketMeta();
  m.reset();
  m.hook = hook as PacketMeta['hook'];
  m.inIf = inIf;
  m.outIf = outIf;
  m.parse(buf, 0, buf.length);
  return m;
}

export interface ForwardOptions {
  dnat?: NatRequest | null;
  snat?: NatRequest | null;
  masqAddr?: number;
  partial?: boolean;
  outIf?: string;
}

/**
 * A forwarded packet's conntrack/NAT steps: PREROUTING conntrack + nat (DST), POSTROUTING nat
 * (SRC) + confirm. Rules "match" only for NEW entries (as the nat table is consulted only
 * then). Returns the meta (ctState as seen at FORWARD is in `stateAtForward`).
 */
export function forward(
  ct: Conntrack,
  buf: Buffer,
  o: ForwardOptions = {},
): PacketMeta & { stateAtForward: number; accepted: boolean } {
  const m = meta(buf, Hook.PREROUTING) as PacketMeta & {
    stateAtForward: number;
    accepted: boolean;
  };
  m.accepted = ct.inbound(m);
  if (!m.accepted) return m;
  if (m.ctEntry >= 0 && m.ctState & 2 /* NEW */) {
    assert.ok(ct.setupNat(m, 'DST', o.dnat ?? null));
  }
  assert.ok(ct.natPacket(m, 'DST', o.partial ?? false));
  m.stateAtForward = m.ctState;
  m.hook = Hook.POSTROUTING;
  m.outIf = o.outIf ?? 'eth0';
  if (m.ctEntry >= 0 && m.ctState & 2) {
    m.accepted = ct.setupNat(m, 'SRC', o.snat ?? null, o.masqAddr);
    if (!m.accepted) return m;
  }
  assert.ok(ct.natPacket(m, 'SRC', o.partial ?? false));
  m.accepted = ct.confirm(m);
  return m;
}

export function dnatTo(addr: string, port = 0): NatRequest {
  return {
    kind: 'DNAT',
    minAddr: ip(addr),
    maxAddr: ip(addr),
    minPort: port,
    maxPort: port,
    random: false,
    randomFully: false,
    persistent: false,
  };
}

export function snatTo(
  addr: string,
  maxAddr = addr,
  minPort = 0,
  maxPort = minPort,
  flags: Partial<Pick<NatRequest, 'random' | 'randomFully' | 'persistent'>> = {},
): NatRequest {
  return {
    kind: 'SNAT',
    minAddr: ip(addr),
    maxAddr: ip(maxAddr),
    minPort,
    maxPort,
    random: flags.random ?? false,
    randomFully: flags.randomFully ?? false,
    persistent: flags.persistent ?? false,
  };
}

export function masquerade(
  flags: Partial<Pick<NatRequest, 'random' | 'randomFully'>> = {},
): NatRequest {
  return {
    kind: 'MASQUERADE',
    minAddr: 0,
    maxAddr: 0,
    minPort: 0,
    maxPort: 0,
    random: flags.random ?? false,
    randomFully: flags.randomFully ?? false,
    persistent: false,
  };
}

/** Header fields of an IPv4 packet for assertions. */
export function fields(buf: Buffer): { src: string; dst: string; sport: number; dport: number } {
  const m = new PacketMeta();
  m.parse(buf, 0, buf.length);
  const s = (a: number): string =>
    `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
  return { src: s(m.src), dst: s(m.dst), sport: m.sport, dport: m.dport };
}

/**
 * Independent check: the IP header checksum and the TCP/UDP/ICMP checksum verify when
 * recomputed from scratch (the way a receiver checks them).
 */
export function assertChecksumsValid(buf: Buffer, what = 'packet'): void {
  const ihl = (buf[0] & 15) * 4;
  assert.equal(internetChecksum(buf, 0, ihl), 0, `${what}: IP header checksum`);
  const proto = buf[9];
  const total = buf.readUInt16BE(2);
  const l4Len = total - ihl;
  const src = buf.readUInt32BE(12);
  const dst = buf.readUInt32BE(16);
  if (proto === IPPROTO_TCP || (proto === IPPROTO_UDP && buf.readUInt16BE(ihl + 6) !== 0)) {
    const ph = pseudoHeaderSum(src, dst, proto, l4Len);
    assert.equal(internetChecksum(buf, ihl, l4Len, ph), 0, `${what}: L4 checksum`);
  } else if (proto === IPPROTO_ICMP) {
    assert.equal(internetChecksum(buf, ihl, l4Len), 0, `${what}: ICMP checksum`);
  }
}
