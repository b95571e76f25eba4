/**
 * `kubewire trace`: follows matching packets through the node — the interface
 * they came in on, every netfilter rule they hit (as iptables -S prints it),
 * their conntrack state and entry, the NAT applied, the routing decision, IPIP
 * encapsulation, the interface out, or the reason they were dropped.
 *
 * The forwarder and the hook pipeline call a PacketTracer only while one is
 * installed (a null check otherwise). While a matching packet is processed
 * the tracer also turns on the rule engine's per-rule callback and the drop
 * counters' callback, so packets that do not match cost one filter test and
 * nothing else. A packet matches when its 5-tuple matches the filter as it
 * arrives (the inner packet for IPIP), or — tested at conntrack — when the
 * original or reply tuple of its connection does, so replies that are un-NATed
 * later are traced too (from their conntrack step on).
 */
import { ipv4ToString, macToString } from '../packet/addr.js';
import { CtState, hookNames, type HookResult, type PacketMeta } from '../netfilter/packet-meta.js';
import type { TraceEvent } from '../netfilter/netfilter.js';
import { formatConntrackEntry, type ConntrackEntryView } from '../conntrack/format.js';
import { DropReason, dropReasonNames, type DropCounters } from './drops.js';
import type { NetInterface } from './interface.js';
import type { Neighbour } from './neighbours.js';
import { formatRoute, type Route } from './routes.js';
import type { TraceFilter } from './trace-filter.js';

/** The IPv4 packet at one point of its way. */
export interface PacketSummary {
  proto: number;
  src: string;
  dst: string;
  /** TCP/UDP ports, -1 without. */
  sport: number;
  dport: number;
  /** TCP flags as tcpdump prints them (S, S., P., F., R., .). */
  flags?: string;
  icmpType?: number;
  icmpCode?: number;
  /** IPv4 total length and TTL. */
  len: number;
  ttl: number;
  /** The inner packet of IPIP. */
  inner?: PacketSummary;
}

export type TraceStep =
  /** Received on `dev`; `local`: sent by the node's own processes (the host link). */
  | { step: 'in'; dev: string; local: boolean }
  /** IPIP from `outerSrc` to us, decapsulated; the inner packet is input on `tunnel`. */
  | { step: 'decap'; outerSrc: string; outerDst: string; tunnel: string; inner: PacketSummary }
  /** A rule that matched; `verdict` when it ended the traversal of its table. */
  | {
      step: 'rule';
      hook: string;
      table: string;
      chain: string;
      num: number;
      rule: string;
      verdict?: string;
    }
  /** The end of a built-in chain: its policy applied. */
  | { step: 'policy'; hook: string; table: string; chain: string; policy: string }
  | {
      step: 'conntrack';
      hook: string;
      /** NEW, ESTABLISHED, RELATED, INVALID or UNTRACKED. */
      state: string;
      dir: 'original' | 'reply';
      /** The entry as `conntrack -L` prints it (null: none). */
      entry: string | null;
      /** true: the matched connection (not the packet) made it traced. */
      byConnection?: boolean;
      /** Conntrack refused the packet (table full). */
      dropped?: boolean;
    }
  /** NAT applied: DNAT / SNAT on a connection's first packets, un-DNAT / un-SNAT on replies. */
  | {
      step: 'nat';
      hook: string;
      kind: 'DNAT' | 'SNAT' | 'un-DNAT' | 'un-SNAT';
      before: string;
      after: string;
    }
  /** Conntrack confirmed the new entry (as the table now holds it), or refused it (clash). */
  | { step: 'confirm'; hook: string; entry: string | null; ok: boolean }
  /** The routing decision: the route matched (`ip route` format), null when none. */
  | { step: 'route'; dst: string; route: string | null }
  /** Addressed to the node itself: local delivery. */
  | { step: 'local'; addr: string }
  /** tunl0: IPIP encapsulation with these outer addresses. */
  | { step: 'encap'; dev: string; outerSrc: string; outerDst: string }
  /** Queued on `dev` for `nextHop` (`mac` null: waiting for ARP). */
  | { step: 'out'; dev: string; nextHop: string; mac: string | null; packet: PacketSummary }
  | { step: 'drop'; reason: string; rejectWith?: string };

export interface TracedPacket {
  /** 1, 2, … per trace session. */
  seq: number;
  /** Milliseconds since the epoch (with microseconds). */
  time: number;
  node: string;
  /** The packet as it arrived (the inner packet for IPIP). */
  packet: PacketSummary;
  steps: TraceStep[];
  /** Matching packets not shown before this one (the reader was too slow). */
  lost?: number;
}

/** What the tracer reads of a conntrack entry (src/conntrack's Conntrack). */
export interface TraceConnections {
  protocol(e: number): number;
  origSrc(e: number): number;
  origDst(e: number): number;
  origSport(e: number): number;
  origDport(e: number): number;
  replySrc(e: number): number;
  replyDst(e: number): number;
  replySport(e: number): number;
  replyDport(e: number): number;
  get(e: number): ConntrackEntryView | null;
}

export interface PacketTracerOptions {
  node: string;
  filter: TraceFilter;
  /** Stop after this many packets; 0 for no limit. */
  count: number;
  /** The hook pipeline's packet state and table result (read at rule and drop events). */
  meta: PacketMeta | null;
  result: HookResult | null;
  connections: TraceConnections | null;
  drops: DropCounters;
  /** Turns the rule engine's per-rule callback on (while a traced packet is processed) and off. */
  ruleTrace: (fn: ((ev: TraceEvent) => void) | null) => void;
  emit: (packet: TracedPacket) => void;
  /** Called once, after the `count`th packet was emitted. */
  done: () => void;
  /** Milliseconds since the epoch. Default: performance.timeOrigin + performance.now(). */
  now?: () => number;
}

const CT_STATE_NAMES: Array<[number, string]> = [
  [CtState.INVALID, 'INVALID'],
  [CtState.NEW, 'NEW'],
  [CtState.ESTABLISHED, 'ESTABLISHED'],
  [CtState.RELATED, 'RELATED'],
  [CtState.UNTRACKED, 'UNTRACKED'],
];

export function ctStateName(state: number): string {
  for (const [bit, name] of CT_STATE_NAMES) if ((state & bit) !== 0) return name;
  return 'INVALID';
}

/** tcpdump's order and letters: F S R P . U E W. */
export function tcpFlagsText(flags: number): string {
  const letters = ['F', 'S', 'R', 'P', '.', 'U', 'E', 'W'];
  let s = '';
  for (let i = 0; i < 8; i++) if ((flags & (1 << i)) !== 0) s += letters[i];
  return s === '' ? 'none' : s;
}

/** The packet whose IPv4 header is at `off` (allocates: trace only). */
export function summarizePacket(buf: Uint8Array, off: number, depth = 0): PacketSummary {
  const ihl = (buf[off]! & 0x0f) * 4;
  const len = (buf[off + 2]! << 8) | buf[off + 3]!;
  const proto = buf[off + 9]!;
  const rd = (o: number) =>
    ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
  const s: PacketSummary = {
    proto,
    src: ipv4ToString(rd(off + 12)),
    dst: ipv4ToString(rd(off + 16)),
    sport: -1,
    dport: -1,
    len,
    ttl: buf[off + 8]!,
  };
  const fragOff = ((buf[off + 6]! << 8) | buf[off + 7]!) & 0x1fff;
  const l4 = off + ihl;
  const l4Len = Math.min(len, buf.length - off) - ihl;
  if (fragOff !== 0) return s;
  if ((proto === 6 || proto === 17) && l4Len >= 4) {
    s.sport = (buf[l4]! << 8) | buf[l4 + 1]!;
    s.dport = (buf[l4 + 2]! << 8) | buf[l4 + 3]!;
    if (proto === 6 && l4Len >= 14) s.flags = tcpFlagsText(buf[l4 + 13]!);
  } else if (proto === 1 && l4Len >= 2) {
    s.icmpType = buf[l4]!;
    s.icmpCode = buf[l4 + 1]!;
  } else if (proto === 4 && depth === 0 && l4Len >= 20) {
    s.inner = summarizePacket(buf, l4, 1);
  }
  return s;
}

function endpoint(addr: number, port: number): string {
  return port >= 0 ? `${ipv4ToString(addr)}:${port}` : ipv4ToString(addr);
}

export class PacketTracer {
  /** A matching packet is being processed. */
  active = false;
  private seq = 0;
  private finished = false;
  private steps: TraceStep[] = [];
  private packet: PacketSummary | null = null;
  private time = 0;
  /** The last packet that arrived (numbers only: kept for every packet). */
  private lastIn: NetInterface | null = null;
  private lastSrc = 0;
  private lastDst = 0;
  /** Set when the last packet was IPIP, decapsulated on this tunnel. */
  private decapTunnel: string | null = null;
  private natSrc = 0;
  private natDst = 0;
  private natSport = -1;
  private natDport = -1;
  private readonly onRule = (ev: TraceEvent) => this.rule(ev);
  private readonly onDrop = (reason: DropReason) => this.drop(reason);
  private readonly now: () => number;

  constructor(private readonly o: PacketTracerOptions) {
    this.now = o.now ?? (() => performance.timeOrigin + performance.now());
  }

  /** An IPv4 packet arrived on `inIf` (header at `off`). */
  arrive(inIf: NetInterface, buf: Uint8Array, off: number): void {
    if (this.active) this.finish();
    this.lastIn = inIf;
    this.decapTunnel = null;
    const src = readU32(buf, off + 12);
    const dst = readU32(buf, off + 16);
    this.lastSrc = src;
    this.lastDst = dst;
    if (this.matchesPacket(buf, off, src, dst)) this.start(buf, off);
  }

  /** The IPIP packet that arrived was decapsulated: the inner packet is at `off`. */
  decap(tunnel: string, buf: Uint8Array, off: number): void {
    this.decapTunnel = tunnel;
    if (this.active) {
      this.steps.push(this.decapStep(tunnel, buf, off));
      return;
    }
    if (this.matchesPacket(buf, off, readU32(buf, off + 12), readU32(buf, off + 16)))
      this.start(buf, off);
  }

  /** Conntrack looked the packet up (`ok` false: it refused it). */
  conntrack(meta: PacketMeta, ok: boolean): void {
    let byConnection = false;
    if (!this.active) {
      const c = this.o.connections;
      const e = meta.ctEntry;
      if (c === null || e < 0) return;
      const f = this.o.filter.matches;
      const proto = c.protocol(e);
      if (
        !f(c.origSrc(e), c.origDst(e), proto, c.origSport(e), c.origDport(e)) &&
        !f(c.replySrc(e), c.replyDst(e), proto, c.replySport(e), c.replyDport(e))
      ) {
        return;
      }
      this.start(meta.buf, meta.ipOff);
      byConnection = true;
    }
    const step: TraceStep = {
      step: 'conntrack',
      hook: hookNames[meta.hook],
      state: ctStateName(meta.ctState),
      dir: meta.ctDir === 1 ? 'reply' : 'original',
      entry: this.describe(meta.ctEntry),
    };
    if (byConnection) step.byConnection = true;
    if (!ok) step.dropped = true;
    this.steps.push(step);
  }

  /** Before conntrack rewrites the packet for NAT (only called while active). */
  beforeNat(meta: PacketMeta): void {
    this.natSrc = meta.src;
    this.natDst = meta.dst;
    this.natSport = meta.sport;
    this.natDport = meta.dport;
  }

  /** After the rewrite: a step when the packet changed. */
  afterNat(meta: PacketMeta, manip: 'SRC' | 'DST'): void {
    const hook = hookNames[meta.hook];
    const reply = meta.ctDir === 1;
    if (manip === 'DST') {
      if (meta.dst === this.natDst && meta.dport === this.natDport) return;
      this.steps.push({
        step: 'nat',
        hook,
        kind: reply ? 'un-SNAT' : 'DNAT',
        before: endpoint(this.natDst, this.natDport),
        after: endpoint(meta.dst, meta.dport),
      });
    } else {
      if (meta.src === this.natSrc && meta.sport === this.natSport) return;
      this.steps.push({
        step: 'nat',
        hook,
        kind: reply ? 'un-DNAT' : 'SNAT',
        before: endpoint(this.natSrc, this.natSport),
        after: endpoint(meta.src, meta.sport),
      });
    }
  }

  /** Conntrack's confirmation at the end of POSTROUTING / INPUT. */
  confirm(meta: PacketMeta, ok: boolean, entry: number): void {
    if (!this.active || (meta.ctState & CtState.NEW) === 0 || entry < 0) return;
    this.steps.push({
      step: 'confirm',
      hook: hookNames[meta.hook],
      entry: ok ? this.describe(entry) : null,
      ok,
    });
  }

  route(dst: number, route: Route | null): void {
    if (!this.active) return;
    this.steps.push({
      step: 'route',
      dst: ipv4ToString(dst),
      route: route === null ? null : formatRoute(route),
    });
  }

  local(addr: number): void {
    if (!this.active) return;
    this.steps.push({ step: 'local', addr: ipv4ToString(addr) });
  }

  encap(dev: string, outerSrc: number, outerDst: number): void {
    if (!this.active) return;
    this.steps.push({
      step: 'encap',
      dev,
      outerSrc: ipv4ToString(outerSrc),
      outerDst: ipv4ToString(outerDst),
    });
  }

  out(
    dev: NetInterface,
    nextHop: number,
    n: Neighbour | undefined,
    buf: Uint8Array,
    off: number,
  ): void {
    if (!this.active) return;
    const resolved =
      n !== undefined &&
      n.mac !== null &&
      (n.state === 'PERMANENT' || n.state === 'REACHABLE' || n.state === 'STALE');
    this.steps.push({
      step: 'out',
      dev: dev.name,
      nextHop: ipv4ToString(nextHop),
      mac: resolved ? macToString(n.mac!) : null,
      packet: summarizePacket(buf, off),
    });
  }

  /** The packet is done with: emits its record when it was traced. */
  finish(): void {
    if (!this.active) return;
    this.active = false;
    this.o.ruleTrace(null);
    this.o.drops.onDrop = null;
    const p: TracedPacket = {
      seq: this.seq,
      time: this.time,
      node: this.o.node,
      packet: this.packet!,
      steps: this.steps,
    };
    this.steps = [];
    this.packet = null;
    this.o.emit(p);
    if (this.o.count > 0 && this.seq >= this.o.count && !this.finished) {
      this.finished = true;
      this.o.done();
    }
  }

  /** Whether the session has traced its `count` packets (it traces no more). */
  get complete(): boolean {
    return this.finished;
  }

  // ---- internals

  private matchesPacket(buf: Uint8Array, off: number, src: number, dst: number): boolean {
    if (this.finished) return false;
    const proto = buf[off + 9]!;
    let sport = -1;
    let dport = -1;
    if (proto === 6 || proto === 17) {
      const fragOff = ((buf[off + 6]! << 8) | buf[off + 7]!) & 0x1fff;
      const l4 = off + (buf[off]! & 0x0f) * 4;
      if (fragOff === 0 && l4 + 4 <= buf.length) {
        sport = (buf[l4]! << 8) | buf[l4 + 1]!;
        dport = (buf[l4 + 2]! << 8) | buf[l4 + 3]!;
      }
    }
    return this.o.filter.matches(src, dst, proto, sport, dport);
  }

  private start(buf: Uint8Array, off: number): void {
    if (this.finished) return;
    this.active = true;
    this.seq++;
    this.time = this.now();
    this.steps = [];
    const inIf = this.lastIn;
    this.steps.push({
      step: 'in',
      dev: inIf?.name ?? '?',
      local: inIf?.kind === 'host',
    });
    this.packet = summarizePacket(buf, off);
    // Matched on the inner packet of IPIP: the decapsulation is its second step.
    if (this.decapTunnel !== null) this.steps.push(this.decapStep(this.decapTunnel, buf, off));
    this.o.ruleTrace(this.onRule);
    this.o.drops.onDrop = this.onDrop;
  }

  private decapStep(tunnel: string, buf: Uint8Array, off: number): TraceStep {
    return {
      step: 'decap',
      outerSrc: ipv4ToString(this.lastSrc),
      outerDst: ipv4ToString(this.lastDst),
      tunnel,
      inner: summarizePacket(buf, off),
    };
  }

  private rule(ev: TraceEvent): void {
    const hook = this.o.meta ? hookNames[this.o.meta.hook] : '';
    if (ev.rule.startsWith('-P ')) {
      this.steps.push({
        step: 'policy',
        hook,
        table: ev.table,
        chain: ev.chain,
        policy: ev.verdict ?? 'ACCEPT',
      });
      return;
    }
    const step: TraceStep = {
      step: 'rule',
      hook,
      table: ev.table,
      chain: ev.chain,
      num: ev.ruleNum,
      rule: ev.rule,
    };
    if (ev.verdict !== undefined) step.verdict = ev.verdict;
    this.steps.push(step);
  }

  private drop(reason: DropReason): void {
    const step: TraceStep = { step: 'drop', reason: dropReasonNames[reason]! };
    if (reason === DropReason.NetfilterReject && this.o.result)
      step.rejectWith = this.o.result.rejectWith;
    this.steps.push(step);
  }

  private describe(e: number): string | null {
    if (e < 0 || this.o.connections === null) return null;
    const v = this.o.connections.get(e);
    return v === null ? null : formatConntrackEntry(v);
  }
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
