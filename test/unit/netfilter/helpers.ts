/** Packet builders and a Netfilter factory for the netfilter unit tests. */
import { Netfilter, type NetfilterOptions } from '../../../src/netfilter/netfilter.js';
import {
  AddrType,
  Hook,
  HookResult,
  PacketMeta,
  type NodeAddressing,
} from '../../../src/netfilter/packet-meta.js';
import { IptablesError } from '../../../src/netfilter/errors.js';

export function ip(s: string): number {
  const p = s.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export interface Ipv4Opts {
  src: string;
  dst: string;
  proto: number;
  payload: Buffer;
  ttl?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** Fragment offset in 8-byte units. */
  frag?: number;
  tos?: number;
  options?: Buffer;
}

export function ipv4(o: Ipv4Opts): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const ihl = 20 + opts.length;
  const b = Buffer.alloc(ihl + o.payload.length);
  b[0] = 0x40 | (ihl / 4);
  b[1] = o.tos ?? 0;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(o.id ?? 0, 4);
  b.writeUInt16BE((o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | (o.frag ?? 0), 6);
  b[8] = o.ttl ?? 64;
  b[9] = o.proto;
  b.writeUInt32BE(ip(o.src), 12);
  b.writeUInt32BE(ip(o.dst), 16);
  opts.copy(b, 20);
  o.payload.copy(b, ihl);
  return b;
}

export interface TcpOpts {
  sport: number;
  dport: number;
  /** TCP flag byte (default SYN). */
  flags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  urg?: number;
  options?: Buffer;
  /** Reserved bits + AE (the low nibble of byte 12). */
  res?: number;
}

export const SYN = 0x02;
export const ACK = 0x10;
export const FIN = 0x01;
export const RST = 0x04;
export const PSH = 0x08;

export function tcp(o: TcpOpts): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const len = 20 + opts.length;
  const b = Buffer.alloc(len);
  b.writeUInt16BE(o.sport, 0);
  b.writeUInt16BE(o.dport, 2);
  b.writeUInt32BE(o.seq ?? 0, 4);
  b.writeUInt32BE(o.ack ?? 0, 8);
  b[12] = ((len / 4) << 4) | (o.res ?? 0);
  b[13] = o.flags ?? SYN;
  b.writeUInt16BE(o.window ?? 64240, 14);
  b.writeUInt16BE(o.urg ?? 0, 18);
  opts.copy(b, 20);
  return b;
}

export function udp(sport: number, dport: number, payload = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt16BE(b.length, 4);
  payload.copy(b, 8);
  return b;
}

export function icmp(type: number, code: number, rest: Buffer): Buffer {
  const b = Buffer.alloc(4 + rest.length);
  b[0] = type;
  b[1] = code;
  rest.copy(b, 4);
  return b;
}

export function echo(type: number, id: number, seq: number): Buffer {
  const r = Buffer.alloc(4 + 8);
  r.writeUInt16BE(id, 0);
  r.writeUInt16BE(seq, 2);
  return icmp(type, 0, r);
}

export function mac(s: string): Buffer {
  return Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
}

export function ethernet(dst: string, src: string, payload: Buffer): Buffer {
  return Buffer.concat([mac(dst), mac(src), Buffer.from([0x08, 0x00]), payload]);
}

export interface MetaOpts {
  hook?: number;
  inIf?: string;
  outIf?: string;
  /** Ethernet header before the packet (buf = frame, macOff 0). */
  eth?: { dst: string; src: string };
  mark?: number;
  ctState?: number;
  ctStatus?: number;
  ctDir?: 0 | 1;
}

export function meta(packet: Buffer, o: MetaOpts = {}): PacketMeta {
  const m = new PacketMeta();
  m.reset();
  let buf = packet;
  let off = 0;
  if (o.eth) {
    buf = ethernet(o.eth.dst, o.eth.src, packet);
    off = 14;
    m.macOff = 0;
  }
  m.parse(buf, off, packet.length);
  m.hook = (o.hook ?? Hook.PREROUTING) as PacketMeta['hook'];
  m.inIf = o.inIf ?? '';
  m.outIf = o.outIf ?? '';
  m.mark = o.mark ?? 0;
  m.ctState = o.ctState ?? 0;
  m.ctStatus = o.ctStatus ?? 0;
  m.ctDir = o.ctDir ?? 0;
  return m;
}

/** A TCP SYN from src:sport to dst:dport. */
export function syn(
  src: string,
  sport: number,
  dst: string,
  dport: number,
  o: MetaOpts = {},
): PacketMeta {
  return meta(ipv4({ src, dst, proto: 6, payload: tcp({ sport, dport }) }), o);
}

export function udpMeta(
  src: string,
  sport: number,
  dst: string,
  dport: number,
  o: MetaOpts = {},
): PacketMeta {
  return meta(ipv4({ src, dst, proto: 17, payload: udp(sport, dport) }), o);
}

/** Addressing of a node: local addresses, interface addresses. */
export function addressing(
  local: Record<string, string> = {},
): NodeAddressing & { locals: Set<number> } {
  const locals = new Set(Object.values(local).map(ip));
  return {
    locals,
    addressType: (a: number) => (locals.has(a) ? AddrType.LOCAL : AddrType.UNICAST),
    interfaceAddress: (name: string) => (local[name] !== undefined ? ip(local[name]) : 0),
  };
}

export interface TestNf {
  nf: Netfilter;
  logs: Array<{ line: string; level: number | undefined }>;
  clock: { now: number };
}

export function makeNf(
  opts: Partial<NetfilterOptions> = {},
  local: Record<string, string> = {},
): TestNf {
  const logs: Array<{ line: string; level: number | undefined }> = [];
  const clock = { now: 1_000_000 };
  const nf = new Netfilter({
    addressing: addressing(local),
    log: (line, level) => logs.push({ line, level }),
    now: () => clock.now,
    saveDate: () => new Date(2026, 10, 5, 9, 8, 7),
    ...opts,
  });
  return { nf, logs, clock };
}

export function run(
  nf: Netfilter,
  table: 'raw' | 'mangle' | 'nat' | 'filter',
  m: PacketMeta,
): HookResult {
  const r = new HookResult();
  r.reset();
  nf.evaluate(table, m, r);
  return r;
}

/** Runs a command, returning its error instead of throwing. */
export function tryCommand(
  nf: Netfilter,
  argv: string[],
): { out: string; err: string; code: number } {
  try {
    return { out: nf.command(argv), err: '', code: 0 };
  } catch (e) {
    if (!(e instanceof IptablesError)) throw e;
    return { out: '', err: e.stderr, code: e.exitCode };
  }
}

/** Splits "iptables -t nat -A …" style strings into argv (double quotes group words). */
export function argv(s: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) out.push(m[1] ?? m[2]!);
  return out;
}
