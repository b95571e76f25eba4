/**
 * Read-only views of conntrack entries and their text forms as conntrack-tools prints them
 * (libnetfilter_conntrack `__snprintf_conntrack_default()`): `conntrack -L` lines, `conntrack -E`
 * event lines and the `conntrack -S` statistics line.
 */
import { ipv4ToString } from '../packet/index.js';

/** One direction's tuple. For ICMP, `sport`/`dport` are -1 and type/code/id are set. */
export interface ConntrackTupleView {
  src: number;
  dst: number;
  /** TCP/UDP ports, -1 for other protocols. */
  sport: number;
  dport: number;
  /** ICMP type, code and identifier, -1 for other protocols. */
  type: number;
  code: number;
  id: number;
}

/** A snapshot of one entry (allocated on demand: for listing, events and tests). */
export interface ConntrackEntryView {
  /** The entry's handle (PacketMeta.ctEntry). */
  id: number;
  proto: number;
  /** Seconds until expiry; null when not reported (DESTROY events). */
  timeout: number | null;
  /** TCP state name; null for other protocols or when not reported. */
  tcpState: string | null;
  orig: ConntrackTupleView;
  reply: ConntrackTupleView;
  /** CtStatus bits: EXPECTED 1, SEEN_REPLY 2, ASSURED 4, CONFIRMED 8. */
  status: number;
  seenReply: boolean;
  assured: boolean;
  /** Virtual states: orig src != reply dst (SNAT), orig dst != reply src (DNAT). */
  snat: boolean;
  dnat: boolean;
  /** Connection mark; null when not reported (events with mark 0). */
  mark: number | null;
  /** Reference count as `conntrack -L` shows it; null in events. */
  use: number | null;
}

export type ConntrackEventType = 'NEW' | 'UPDATE' | 'DESTROY';

/** What the `events` callback receives: ctnetlink events, and the rate-limited kernel log. */
export type ConntrackEvent =
  { type: ConntrackEventType; entry: ConntrackEntryView } | { type: 'LOG'; message: string };

const PROTO_NAMES: Record<number, string> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  33: 'dccp',
  47: 'gre',
  58: 'icmpv6',
  132: 'sctp',
  136: 'udplite',
};

/** conntrack-tools' protocol name ("unknown" for protocols it has no name for). */
export function conntrackProtoName(proto: number): string {
  return PROTO_NAMES[proto] ?? 'unknown';
}

function tupleText(t: ConntrackTupleView, proto: number): string {
  let s = `src=${ipv4ToString(t.src)} dst=${ipv4ToString(t.dst)} `;
  if (proto === 6 || proto === 17) {
    s += `sport=${t.sport} dport=${t.dport} `;
  } else if (proto === 47) {
    // GRE without a PPTP helper: keys are 0.
    s += 'srckey=0x0 dstkey=0x0 ';
  } else if (proto === 1) {
    s += `type=${t.type} code=${t.code} id=${t.id} `;
  }
  return s;
}

function body(v: ConntrackEntryView): string {
  let s = `${conntrackProtoName(v.proto).padEnd(8)} ${v.proto} `;
  if (v.timeout !== null) s += `${v.timeout} `;
  if (v.tcpState !== null) s += `${v.tcpState} `;
  s += tupleText(v.orig, v.proto);
  if (!v.seenReply) s += '[UNREPLIED] ';
  s += tupleText(v.reply, v.proto);
  if (v.assured) s += '[ASSURED] ';
  if (v.mark !== null) s += `mark=${v.mark} `;
  if (v.use !== null) s += `use=${v.use} `;
  return s.slice(0, -1);
}

/**
 * One `conntrack -L` line, e.g.
 * `tcp      6 86397 ESTABLISHED src=192.168.104.65 dst=10.96.23.229 sport=40000 dport=3306
 * src=192.168.8.223 dst=192.168.104.65 sport=3306 dport=40000 [ASSURED] mark=0 use=1`.
 */
export function formatConntrackEntry(v: ConntrackEntryView): string {
  return body(v);
}

/** One `conntrack -E` line: `%9s ` of [NEW] / [UPDATE] / [DESTROY], then the entry. */
export function formatConntrackEvent(ev: ConntrackEvent): string {
  if (ev.type === 'LOG') return ev.message;
  return `${`[${ev.type}]`.padStart(9)} ${body(ev.entry)}`;
}

/** Counters of `conntrack -S` (per-CPU in Linux; one CPU here) plus `entries`. */
export interface ConntrackStats {
  entries: number;
  found: number;
  invalid: number;
  insert: number;
  insert_failed: number;
  drop: number;
  early_drop: number;
  error: number;
  search_restart: number;
  clash_resolve: number;
  chaintoolong: number;
}

/** The `conntrack -S` line: `cpu=0 found=0 invalid=3 insert=0 ...`. */
export function formatConntrackStats(s: ConntrackStats): string {
  return (
    `cpu=0 found=${s.found} invalid=${s.invalid} insert=${s.insert} ` +
    `insert_failed=${s.insert_failed} drop=${s.drop} early_drop=${s.early_drop} ` +
    `error=${s.error} search_restart=${s.search_restart} clash_resolve=${s.clash_resolve} ` +
    `chaintoolong=${s.chaintoolong}`
  );
}
