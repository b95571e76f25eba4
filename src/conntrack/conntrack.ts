/**
 * Connection tracking with NAT bindings, after Linux's nf_conntrack / nf_nat (6.1): the entry
 * table (struct of typed arrays, see {@link CtStore}), the TCP, UDP, ICMP and generic
 * trackers, RELATED ICMP errors, NAT binding with Linux's tuple selection, packet rewriting,
 * confirmation, expiry, the table limit with early drop, and conntrack-tools' views.
 *
 * How the forwarder drives it, per packet (one {@link PacketMeta}, `reset()` per packet):
 *
 * 1. PREROUTING (after raw) or OUTPUT: `inbound(meta)` — attach or create the entry; false =
 *    drop (table full). Sets ctEntry/ctDir/ctState/ctStatus.
 * 2. At each nat hook (DST at PREROUTING/OUTPUT, SRC at POSTROUTING/INPUT): for a NEW entry
 *    whose manip is not yet bound, run the nat table and call `setupNat(meta, manip, req)`
 *    (`req` null when no rule matched: the null binding); then, for every tracked packet,
 *    `natPacket(meta, manip, partialChecksum)`.
 * 3. End of POSTROUTING / INPUT: `confirm(meta)` — false = drop (insert clash).
 *    A packet dropped before that: `discard(meta)` (or just reset the meta for the next
 *    packet: the unconfirmed entry is reclaimed then).
 * 4. Every second: `tick(now)`.
 */
import {
  checksumFold,
  internetChecksum,
  ipv4FromString,
  pseudoHeaderSum,
} from '../packet/index.js';
import { CtState, Hook, type NatRequest, type PacketMeta } from '../netfilter/packet-meta.js';
import {
  type ConntrackEntryView,
  type ConntrackEvent,
  type ConntrackEventType,
  type ConntrackStats,
  type ConntrackTupleView,
} from './format.js';
import { MANIP_DST, MANIP_SRC, natManipPacket } from './manip.js';
import {
  B_PROTO,
  B_TCPSTATE,
  CtStore,
  D_EXPIRES,
  D_STAMP,
  H_OUTIF,
  H_STATUS,
  ST_ASSURED,
  ST_CONFIRMED,
  ST_DST_NAT,
  ST_DST_NAT_DONE,
  ST_DYING,
  ST_EXPECTED,
  ST_MASQ,
  ST_NAT_DONE_MASK,
  ST_NAT_MASK,
  ST_SEEN_REPLY,
  ST_SRC_NAT,
  ST_SRC_NAT_DONE,
  ST_USED,
  W_MARK,
  W_SRCNEXT,
  hashWords,
  nodeBase,
} from './store.js';
import {
  EV_ASSURED,
  EV_PROTOINFO,
  T_RETRANS,
  T_UNACK,
  TCP_INVALID,
  TCP_KILL,
  TCP_REPEAT,
  type TcpConfig,
  tcpEvents,
  tcpMalformed,
  tcpNew,
  tcpPacket,
  tcpStateNames,
} from './tcp.js';
import { type ConntrackTimeouts, KUBE_PROXY_TIMEOUTS, resolveTimeouts } from './timeouts.js';

export interface ConntrackOptions {
  /** nf_conntrack_max (default 262144). Unconfirmed entries count too, as in Linux. */
  maxEntries?: number;
  /** Overrides of Linux's default timeouts (seconds); see {@link KUBE_PROXY_TIMEOUTS}. */
  timeouts?: Partial<ConntrackTimeouts>;
  /** nf_conntrack_tcp_loose (default true): pick up TCP connections mid-stream. */
  tcpLoose?: boolean;
  /** nf_conntrack_tcp_be_liberal (default false): only out-of-window RSTs are INVALID. */
  tcpBeLiberal?: boolean;
  /** nf_conntrack_tcp_max_retrans (default 3). */
  tcpMaxRetrans?: number;
  /** nf_conntrack_tcp_ignore_invalid_rst (default false). */
  tcpIgnoreInvalidRst?: boolean;
  /** nf_conntrack_tcp_no_window_check (default false). */
  tcpNoWindowCheck?: boolean;
  /**
   * nf_conntrack_checksum (default true): verify TCP/UDP/ICMP checksums at PREROUTING unless
   * the caller says the packet's checksum is trusted (see {@link Conntrack.inbound}).
   */
  checksum?: boolean;
  /** Clock in ms (default Date.now); tick(now) must use the same clock. */
  now?: () => number;
  /** Random source in [0, 1) for NAT port selection (default Math.random). */
  random?: () => number;
  /** ctnetlink events (NEW / UPDATE / DESTROY) and, without `log`, LOG lines. */
  events?: (e: ConntrackEvent) => void;
  /** Kernel log lines ("nf_conntrack: table full, dropping packet", rate-limited). */
  log?: (line: string) => void;
  /** Entries the expiry sweep visits per tick at most (default: 1/8 of the table, 16K..256K). */
  gcBudget?: number;
  /** Expired entries the sweep removes per tick at most (default 16384; the rest stay invisible). */
  gcExpireBudget?: number;
  /** Hash seed (default random). */
  hashSeed?: number;
}

/**
 * The conntrack settings kube-proxy applies with its default flags: nf_conntrack_max =
 * max(32768 × cores, 131072), established 24 h, close_wait 1 h.
 */
export function kubeProxyConntrackOptions(cores = 1): ConntrackOptions {
  return { maxEntries: Math.max(32768 * cores, 131072), timeouts: { ...KUBE_PROXY_TIMEOUTS } };
}

/** conntrack-tools' filters (`-L`/`-D`): all given fields must match. Addresses as numbers or dotted quads. */
export interface ConntrackFilter {
  /** -p: number or name (tcp, udp, icmp). */
  proto?: number | string;
  /** -s / --orig-src. */
  src?: number | string;
  /** -d / --orig-dst. */
  dst?: number | string;
  /** -r / --reply-src. */
  replySrc?: number | string;
  /** -q / --reply-dst. */
  replyDst?: number | string;
  /** --sport / --orig-port-src, --dport / --orig-port-dst. */
  sport?: number;
  dport?: number;
  /** --reply-port-src, --reply-port-dst. */
  replySport?: number;
  replyDport?: number;
  /** -m mark[/mask]. */
  mark?: number;
  markMask?: number;
  /** -n [ip]: source-NATed (to `ip`); -g [ip]: destination-NATed (to `ip`); -j: either. */
  snat?: boolean | number | string;
  dnat?: boolean | number | string;
  anyNat?: boolean | number | string;
  /** --state (TCP state name, e.g. ESTABLISHED). */
  state?: string;
  /** -u: CtStatus bits that must all be set (ASSURED 4, SEEN_REPLY 2, ...). */
  status?: number;
  /** -u UNREPLIED. */
  unreplied?: boolean;
}

// NAT range flags (NF_NAT_RANGE_*).
const R_MAP_IPS = 1;
const R_PROTO_SPECIFIED = 2;
const R_PROTO_RANDOM = 4;
const R_PERSISTENT = 8;
const R_PROTO_RANDOM_FULLY = 16;
const R_RANDOM_ALL = R_PROTO_RANDOM | R_PROTO_RANDOM_FULLY;

// Events raised while handling one packet.
const EV_REPLY = 4;
const EV_MARK = 8;

const ICMP_INV = new Int16Array(256).fill(-1);
ICMP_INV[8] = 0;
ICMP_INV[0] = 8;
ICMP_INV[13] = 14;
ICMP_INV[14] = 13;
ICMP_INV[15] = 16;
ICMP_INV[16] = 15;
ICMP_INV[17] = 18;
ICMP_INV[18] = 17;

function icmpIsError(t: number): boolean {
  return t === 3 || t === 4 || t === 5 || t === 11 || t === 12;
}

function icmpValidNew(t: number): boolean {
  return t === 8 || t === 13 || t === 15 || t === 17;
}

const SLOTS = 4;

/** `net_ratelimit()` defaults: 10 messages per 5 s. */
const RATELIMIT_BURST = 10;
const RATELIMIT_INTERVAL_MS = 5000;

function addrOf(v: number | string): number {
  return typeof v === 'string' ? ipv4FromString(v) : v >>> 0;
}

function natTarget(v: boolean | number | string | undefined): number | boolean | undefined {
  if (v === undefined || typeof v === 'boolean') return v;
  return addrOf(v);
}

export class Conntrack {
  private readonly s: CtStore;
  readonly maxEntries: number;
  readonly timeouts: Readonly<ConntrackTimeouts>;
  private readonly tcpCfg: TcpConfig;
  private readonly udpMs: number;
  private readonly udpStreamMs: number;
  private readonly icmpMs: number;
  private readonly greMs: number;
  private readonly greStreamMs: number;
  private readonly genericMs: number;
  private readonly checksum: boolean;
  private readonly nowFn: () => number;
  private readonly randFn: () => number;
  private readonly eventsFn: ((e: ConntrackEvent) => void) | null;
  private readonly logFn: ((line: string) => void) | null;
  private readonly gcBudget: number;
  private readonly gcExpireBudget: number;

  private readonly st = {
    found: 0,
    invalid: 0,
    insert: 0,
    insert_failed: 0,
    drop: 0,
    early_drop: 0,
    error: 0,
  };

  // Entries to reclaim once the packet that references them is done (per PacketMeta).
  private readonly slotMeta: (PacketMeta | null)[] = new Array<PacketMeta | null>(SLOTS).fill(null);
  private readonly slotEntry = new Int32Array(SLOTS).fill(-1);
  private readonly slotTick = new Float64Array(SLOTS);

  // Non-first fragments follow the entry of their first fragment (a small direct-mapped cache).
  private readonly fcKey = new Int32Array(64);
  private readonly fcSrc = new Int32Array(64);
  private readonly fcDst = new Int32Array(64);
  private readonly fcEntry = new Int32Array(64).fill(-1);
  private readonly fcDir = new Uint8Array(64);
  private readonly fcState = new Uint8Array(64);
  private readonly fcUntil = new Float64Array(64);

  private readonly ifNames: string[] = [];
  private readonly ifIndex = new Map<string, number>();

  private gcCursor = 0;
  private tickNo = 0;
  private curNow = 0;
  private rlWindow = -Infinity;
  private rlCount = 0;
  private rlSuppressed = 0;

  // NAT scratch: the range being applied and the tuple being built (original direction).
  private rFlags = 0;
  private rMinAddr = 0;
  private rMaxAddr = 0;
  private rMinPort = 0;
  private rMaxPort = 0;
  private tSrc = 0;
  private tDst = 0;
  private tSp = 0;
  private tDp = 0;

  constructor(opts: ConntrackOptions = {}) {
    const max = opts.maxEntries ?? 262144;
    if (!Number.isInteger(max) || max < 1 || max > 1 << 26) {
      throw new RangeError(`conntrack maxEntries must be an integer in 1..${1 << 26}, got ${max}`);
    }
    this.maxEntries = max;
    this.timeouts = Object.freeze(resolveTimeouts(opts.timeouts));
    const t = this.timeouts;
    const ms = new Float64Array(12);
    ms[0] = t.tcpSynSent * 1000;
    ms[1] = t.tcpSynSent * 1000;
    ms[2] = t.tcpSynRecv * 1000;
    ms[3] = t.tcpEstablished * 1000;
    ms[4] = t.tcpFinWait * 1000;
    ms[5] = t.tcpCloseWait * 1000;
    ms[6] = t.tcpLastAck * 1000;
    ms[7] = t.tcpTimeWait * 1000;
    ms[8] = t.tcpClose * 1000;
    ms[9] = t.tcpSynSent2 * 1000;
    ms[T_RETRANS] = t.tcpMaxRetrans * 1000;
    ms[T_UNACK] = t.tcpUnacknowledged * 1000;
    this.tcpCfg = {
      beLiberal: opts.tcpBeLiberal ?? false,
      loose: opts.tcpLoose ?? true,
      maxRetrans: opts.tcpMaxRetrans ?? 3,
      ignoreInvalidRst: opts.tcpIgnoreInvalidRst ?? false,
      noWindowCheck: opts.tcpNoWindowCheck ?? false,
      timeoutMs: ms,
    };
    this.udpMs = t.udp * 1000;
    this.udpStreamMs = t.udpStream * 1000;
    this.icmpMs = t.icmp * 1000;
    this.greMs = t.gre * 1000;
    this.greStreamMs = t.greStream * 1000;
    this.genericMs = t.generic * 1000;
    this.checksum = opts.checksum ?? true;
    this.nowFn = opts.now ?? Date.now;
    this.randFn = opts.random ?? Math.random;
    this.eventsFn = opts.events ?? null;
    this.logFn = opts.log ?? null;
    this.gcBudget = opts.gcBudget ?? 0;
    this.gcExpireBudget = opts.gcExpireBudget ?? 16384;
    const seed = opts.hashSeed ?? Math.floor(this.randFn() * 0x100000000);
    this.s = new CtStore(max, seed);
  }

  // ---------------------------------------------------------------- packet path

  /**
   * At PREROUTING (after raw) or OUTPUT: finds or creates the entry of meta's packet and sets
   * meta.ctEntry, ctDir, ctState (NEW / ESTABLISHED / RELATED / INVALID / UNTRACKED, plus the
   * SNAT/DNAT virtual bits) and ctStatus. New entries stay unconfirmed until {@link confirm}.
   *
   * `l4ChecksumTrusted`: the transport checksum needs no verification (a virtio header with
   * NEEDS_CSUM or DATA_VALID; Linux's CHECKSUM_PARTIAL / UNNECESSARY). Otherwise, at
   * PREROUTING with the `checksum` option, a bad checksum makes the packet INVALID; a
   * partial checksum (the field equals the folded pseudo-header sum) is recognised either way.
   *
   * A packet that already carries a conntrack reference (ctEntry >= 0, or UNTRACKED) is left
   * alone, as nf_conntrack_in() does for looped-back packets: reset the meta per packet.
   *
   * Returns false when the packet must be dropped (table full and nothing to early-drop).
   */
  inbound(meta: PacketMeta, l4ChecksumTrusted = false): boolean {
    if (meta.notrack) {
      meta.ctState = CtState.UNTRACKED;
      meta.ctEntry = -1;
      meta.ctStatus = 0;
      meta.ctDir = 0;
      return true;
    }
    if (meta.ctEntry >= 0 || (meta.ctState & CtState.UNTRACKED) !== 0) return true;
    this.releaseSlot(meta);
    const now = this.nowFn();
    this.curNow = now;
    if (meta.fragOff !== 0) return this.fragment(meta, now);

    const b = meta.buf;
    const ipOff = meta.ipOff;
    const ihl = (b[ipOff] & 0x0f) << 2;
    const l4 = ipOff + ihl;
    const l4Len = meta.ipLen - ihl;
    const proto = meta.proto;
    const verify =
      this.checksum && meta.hook === Hook.PREROUTING && !l4ChecksumTrusted && !meta.moreFragments;
    let ports = 0;
    let replyPorts = 0;
    let invertible = true;
    if (proto === 6) {
      if (meta.sport < 0 || tcpMalformed(b, l4, l4Len)) return this.invalid(meta);
      if (verify && !l4ChecksumOk(b, ipOff, l4, l4Len, 6)) return this.invalid(meta);
      ports = (meta.sport << 16) | meta.dport;
      replyPorts = (meta.dport << 16) | meta.sport;
    } else if (proto === 17) {
      if (meta.sport < 0) return this.invalid(meta);
      const ulen = (b[l4 + 4] << 8) | b[l4 + 5];
      if (ulen > l4Len || ulen < 8) return this.invalid(meta);
      if (verify && (b[l4 + 6] | b[l4 + 7]) !== 0 && !l4ChecksumOk(b, ipOff, l4, l4Len, 17)) {
        return this.invalid(meta);
      }
      ports = (meta.sport << 16) | meta.dport;
      replyPorts = (meta.dport << 16) | meta.sport;
    } else if (proto === 1) {
      const type = meta.icmpType;
      if (type < 0) return this.icmpErrorInvalid(meta);
      if (verify && internetChecksum(b, l4, l4Len) !== 0) return this.icmpErrorInvalid(meta);
      if (type > 18) return this.icmpErrorInvalid(meta);
      if (icmpIsError(type)) return this.icmpRelated(meta, l4, now);
      ports = (meta.icmpId << 16) | (type << 8) | meta.icmpCode;
      const inv = ICMP_INV[type];
      invertible = inv >= 0;
      replyPorts = (meta.icmpId << 16) | ((inv & 0xff) << 8) | meta.icmpCode;
    }

    const s = this.s;
    const src = meta.src | 0;
    const dst = meta.dst | 0;
    for (let attempt = 0; attempt < 4; attempt++) {
      const node = this.findLive(src, dst, ports, proto, now);
      let e: number;
      let dir: number;
      let isNew = false;
      if (node < 0) {
        // init_conntrack(): the tuple must be invertible.
        if (!invertible) return this.invalid(meta);
        e = this.allocEntry(src, dst, ports, proto, now);
        if (e < 0) {
          this.setNoCt(meta, CtState.INVALID);
          return false;
        }
        s.i32[16 * e] = src;
        s.i32[16 * e + 1] = dst;
        s.i32[16 * e + 2] = ports;
        s.i32[16 * e + 4] = dst;
        s.i32[16 * e + 5] = src;
        s.i32[16 * e + 6] = replyPorts;
        s.u8[e * 64 + B_PROTO] = proto;
        isNew = true;
        dir = 0;
        if (
          (proto === 6 && !tcpNew(s, e, b, l4, l4Len, this.tcpCfg.loose)) ||
          (proto === 1 && !icmpValidNew(meta.icmpType))
        ) {
          s.free(e);
          return this.invalid(meta);
        }
      } else {
        e = node >> 1;
        dir = node & 1;
      }
      const status0 = s.u16[e * 32 + H_STATUS];
      const ctState =
        dir === 1 || (status0 & ST_SEEN_REPLY) !== 0
          ? CtState.ESTABLISHED
          : (status0 & ST_EXPECTED) !== 0
            ? CtState.RELATED
            : CtState.NEW;
      let ev = 0;
      let kill = false;
      if (proto === 6) {
        const r = tcpPacket(s, e, dir, b, l4, l4Len, this.tcpCfg, now);
        if (r === TCP_INVALID) {
          if (isNew) s.free(e);
          return this.invalid(meta);
        }
        if (r === TCP_REPEAT) {
          // A SYN reopening a closed/aborted connection: kill it and start over.
          this.destroy(e);
          continue;
        }
        ev = tcpEvents;
        kill = r === TCP_KILL;
      } else if (proto === 17) {
        const st = s.u16[e * 32 + H_STATUS];
        if ((st & ST_CONFIRMED) === 0) s.f64[e * 8 + D_STAMP] = now + 2000;
        if ((st & ST_SEEN_REPLY) !== 0) {
          let extra = this.udpMs;
          let stream = false;
          if (now > s.f64[e * 8 + D_STAMP]) {
            extra = this.udpStreamMs;
            stream = (st & ST_ASSURED) === 0;
          }
          s.f64[e * 8 + D_EXPIRES] = now + extra;
          if (stream) {
            s.u16[e * 32 + H_STATUS] = st | ST_ASSURED;
            ev |= EV_ASSURED;
          }
        } else {
          s.f64[e * 8 + D_EXPIRES] = now + this.udpMs;
        }
      } else if (proto === 1) {
        s.f64[e * 8 + D_EXPIRES] = now + this.icmpMs;
      } else if (proto === 47) {
        // nf_conntrack_gre_packet(): stream timeout and ASSURED once a reply was seen.
        const st = s.u16[e * 32 + H_STATUS];
        if ((st & ST_SEEN_REPLY) !== 0) {
          s.f64[e * 8 + D_EXPIRES] = now + this.greStreamMs;
          if ((st & ST_ASSURED) === 0) {
            s.u16[e * 32 + H_STATUS] = st | ST_ASSURED;
            ev |= EV_ASSURED;
          }
        } else {
          s.f64[e * 8 + D_EXPIRES] = now + this.greMs;
        }
      } else {
        s.f64[e * 8 + D_EXPIRES] = now + this.genericMs;
      }
      if (kill) this.killDeferred(e, meta);
      if (dir === 1 && (s.u16[e * 32 + H_STATUS] & ST_SEEN_REPLY) === 0) {
        s.u16[e * 32 + H_STATUS] |= ST_SEEN_REPLY;
        ev |= EV_REPLY;
      }
      const status = s.u16[e * 32 + H_STATUS];
      meta.ctEntry = e;
      meta.ctDir = dir as 0 | 1;
      meta.ctState = ctState | natStateBits(status);
      meta.ctStatus = status & 15;
      if (isNew) this.setSlot(meta, e);
      else if (ev !== 0 && this.eventsFn !== null && !kill && (status & ST_CONFIRMED) !== 0) {
        this.emit('UPDATE', e, now, ev);
      }
      if (meta.moreFragments) this.rememberFragment(meta, e, dir, ctState, now);
      return true;
    }
    return this.invalid(meta);
  }

  /**
   * At a nat hook, for a NEW (unconfirmed) entry whose `manip` is not bound yet: binds NAT per
   * the request, or the null binding (`req` null: no rule matched) that fixes the manip type.
   * `manip` SRC at POSTROUTING/INPUT, DST at PREROUTING/OUTPUT. `addr`: for MASQUERADE the
   * output interface's address (meta.outIf is remembered for {@link flushMasquerade}); for
   * REDIRECT at PREROUTING the input interface's primary address (OUTPUT uses 127.0.0.1).
   * Port selection per nf_nat's get_unique_tuple(): keep the tuple when its reply is free,
   * else (SRC) reuse the mapping of the same source, else pick a port in the range: by default
   * 1..511 / 600..1023 / 1024..65535 after the original port's class, from a random offset;
   * --random / --random-fully skip keeping the port. Returns false when the packet must be
   * dropped (MASQUERADE/REDIRECT without an address).
   */
  setupNat(meta: PacketMeta, manip: 'SRC' | 'DST', req: NatRequest | null, addr?: number): boolean {
    const e = meta.ctEntry;
    if (e < 0) return true;
    const s = this.s;
    const status = s.u16[e * 32 + H_STATUS];
    if ((status & ST_CONFIRMED) !== 0) return true;
    const m = manip === 'SRC' ? MANIP_SRC : MANIP_DST;
    if ((status & (m === MANIP_SRC ? ST_SRC_NAT_DONE : ST_DST_NAT_DONE)) !== 0) return true;
    this.curNow = this.nowFn();
    let masq = false;
    if (req === null || (req.kind === 'MASQUERADE' && s.i32[16 * e] === 0)) {
      this.nullRange(e, m);
    } else {
      let f = 0;
      let minA = 0;
      let maxA = 0;
      if (req.kind === 'MASQUERADE') {
        const a = (addr ?? 0) >>> 0;
        if (a === 0) return false; // "<if> ate my IP address"
        f = R_MAP_IPS;
        minA = maxA = a;
        masq = true;
      } else if (req.kind === 'REDIRECT') {
        const a = meta.hook === Hook.OUTPUT ? 0x7f000001 : (addr ?? req.minAddr) >>> 0;
        if (a === 0) return false;
        f = R_MAP_IPS;
        minA = maxA = a;
      } else if (req.minAddr !== 0 || req.maxAddr !== 0) {
        f = R_MAP_IPS;
        minA = req.minAddr >>> 0;
        maxA = (req.maxAddr || req.minAddr) >>> 0;
      }
      let minP = 0;
      let maxP = 0;
      if (req.minPort !== 0 || req.maxPort !== 0) {
        f |= R_PROTO_SPECIFIED;
        minP = req.minPort & 0xffff;
        maxP = (req.maxPort || req.minPort) & 0xffff;
      }
      if (req.random) f |= R_PROTO_RANDOM;
      if (req.randomFully) f |= R_PROTO_RANDOM_FULLY;
      if (req.persistent) f |= R_PERSISTENT;
      this.rFlags = f;
      this.rMinAddr = minA;
      this.rMaxAddr = maxA;
      this.rMinPort = minP;
      this.rMaxPort = maxP;
    }
    this.setupInfo(e, m);
    if (masq) {
      s.u16[e * 32 + H_STATUS] |= ST_MASQ;
      s.u16[e * 32 + H_OUTIF] = this.internIf(meta.outIf);
    }
    meta.ctState =
      (meta.ctState & ~(CtState.SNAT | CtState.DNAT)) | natStateBits(s.u16[e * 32 + H_STATUS]);
    return true;
  }

  /**
   * At every nat hook, for every tracked packet (nf_nat_packet): when the entry has NAT of
   * this manip type for the packet's direction, rewrites the packet in place so that its
   * tuple becomes the inverse of the other direction's tuple; RELATED ICMP errors get their
   * quoted packet translated too (nf_nat_icmp_reply_translation). Then refreshes meta's L3/L4
   * fields. `partialChecksum`: the transport checksum is CHECKSUM_PARTIAL (virtio NEEDS_CSUM),
   * see manip.ts. Returns false when the packet must be dropped (an ICMP redirect about a
   * NATed connection, or a header too short to rewrite).
   */
  natPacket(meta: PacketMeta, manip: 'SRC' | 'DST', partialChecksum: boolean): boolean {
    const e = meta.ctEntry;
    if (e < 0) return true;
    const s = this.s;
    const status = s.u16[e * 32 + H_STATUS];
    const dir = meta.ctDir;
    const m = manip === 'SRC' ? MANIP_SRC : MANIP_DST;
    let bit = m === MANIP_SRC ? ST_SRC_NAT : ST_DST_NAT;
    if (dir === 1) bit ^= ST_NAT_MASK;
    if ((meta.ctState & CtState.RELATED) !== 0 && meta.proto === 1 && meta.fragOff === 0) {
      return this.icmpReplyTranslation(meta, e, dir, m, bit, partialChecksum);
    }
    if ((status & bit) === 0) return true;
    // Target = inverse of the other direction's tuple.
    const o = 2 * e + (dir ^ 1);
    const proto = s.u8[e * 64 + B_PROTO];
    const op = s.i32[nodeBase(o) + 2];
    let port = -1;
    if (proto === 6 || proto === 17) port = m === MANIP_SRC ? op & 0xffff : op >>> 16;
    else if (proto === 1) port = op >>> 16;
    const addr = m === MANIP_SRC ? s.i32[nodeBase(o) + 1] : s.i32[nodeBase(o)];
    if (!natManipPacket(meta.buf, meta.ipOff, meta.ipLen, m, addr, port, partialChecksum)) {
      return false;
    }
    meta.parse(meta.buf, meta.ipOff, meta.ipLen);
    return true;
  }

  /**
   * At the end of POSTROUTING / INPUT (__nf_conntrack_confirm): inserts the packet's
   * unconfirmed entry into the table and reports it (NEW event). False when the packet must be
   * dropped: an entry with the same original or reply tuple exists (insert_failed).
   */
  confirm(meta: PacketMeta): boolean {
    const e = meta.ctEntry;
    if (e < 0) return true;
    const s = this.s;
    const status = s.u16[e * 32 + H_STATUS];
    if ((status & ST_CONFIRMED) !== 0) return true;
    this.clearSlot(meta, e);
    const now = this.nowFn();
    if (
      (status & ST_DYING) !== 0 ||
      this.findLive(
        s.i32[16 * e],
        s.i32[16 * e + 1],
        s.i32[16 * e + 2],
        s.u8[e * 64 + B_PROTO],
        now,
      ) >= 0 ||
      this.findLive(
        s.i32[16 * e + 4],
        s.i32[16 * e + 5],
        s.i32[16 * e + 6],
        s.u8[e * 64 + B_PROTO],
        now,
      ) >= 0
    ) {
      this.st.insert_failed++;
      this.st.drop++;
      this.freeEntry(e);
      meta.ctEntry = -1;
      return false;
    }
    s.u16[e * 32 + H_STATUS] = status | ST_CONFIRMED;
    s.insert(e);
    this.st.insert++;
    meta.ctStatus |= ST_CONFIRMED;
    if (this.eventsFn !== null) this.emit('NEW', e, now, EV_PROTOINFO);
    return true;
  }

  /** The packet was dropped before confirm: forgets its unconfirmed entry now. */
  discard(meta: PacketMeta): void {
    const e = meta.ctEntry;
    if (e < 0) return;
    const st = this.s.u16[e * 32 + H_STATUS];
    if ((st & ST_USED) !== 0 && (st & (ST_CONFIRMED | ST_DYING)) !== ST_CONFIRMED) {
      this.clearSlot(meta, e);
      this.freeEntry(e);
    }
    meta.ctEntry = -1;
  }

  /**
   * Periodic maintenance (call every second): reclaims entries of packets that never came
   * back, and sweeps a bounded slice of the table for expired entries (DESTROY events),
   * removing at most `gcExpireBudget` of them per call.
   * Lookups treat expired entries as gone, so the sweep only frees memory and reports.
   */
  tick(nowMs?: number): void {
    const now = nowMs ?? this.nowFn();
    this.tickNo++;
    for (let i = 0; i < SLOTS; i++) {
      if (this.slotMeta[i] !== null && this.tickNo - this.slotTick[i] >= 2) {
        const e = this.slotEntry[i];
        this.slotMeta[i] = null;
        this.slotEntry[i] = -1;
        this.reclaim(e);
      }
    }
    const s = this.s;
    const hw = s.highWater;
    if (hw === 0) return;
    const budget =
      this.gcBudget > 0 ? this.gcBudget : Math.min(262144, Math.max(16384, Math.ceil(hw / 8)));
    let c = this.gcCursor < hw ? this.gcCursor : 0;
    let expire = this.gcExpireBudget;
    for (let n = budget < hw ? budget : hw; n > 0; n--) {
      if (
        (s.u16[c * 32 + H_STATUS] & (ST_CONFIRMED | ST_DYING)) === ST_CONFIRMED &&
        s.f64[c * 8 + D_EXPIRES] <= now
      ) {
        // Like Linux's gc worker, bound the work of one run: lookups already ignore
        // expired entries, the next ticks collect the rest.
        if (expire-- === 0) break;
        this.destroy(c);
      }
      if (++c >= hw) c = 0;
    }
    this.gcCursor = c;
  }

  // ---------------------------------------------------------------- table operations

  /** conntrack -L [filter]: confirmed, unexpired entries. */
  list(filter: ConntrackFilter = {}): ConntrackEntryView[] {
    const out: ConntrackEntryView[] = [];
    this.scan(filter, (e, now) => out.push(this.view(e, now, true, true, true, 1)));
    return out;
  }

  /** conntrack -D filter: deletes matching entries (DESTROY events); returns how many. */
  delete(filter: ConntrackFilter): number {
    let n = 0;
    this.scan(filter, (e) => {
      this.destroy(e);
      n++;
    });
    return n;
  }

  /** conntrack -F (or -D with a filter): returns how many entries were deleted. */
  flush(filter: ConntrackFilter = {}): number {
    return this.delete(filter);
  }

  /** Entries in the table (conntrack -C; unconfirmed ones in flight are not counted). */
  count(): number {
    return this.s.confirmed;
  }

  /** conntrack -S counters, plus `entries`. */
  stats(): ConntrackStats {
    return {
      entries: this.s.confirmed,
      found: this.st.found,
      invalid: this.st.invalid,
      insert: this.st.insert,
      insert_failed: this.st.insert_failed,
      drop: this.st.drop,
      early_drop: this.st.early_drop,
      error: this.st.error,
      search_restart: 0,
      clash_resolve: 0,
      chaintoolong: 0,
    };
  }

  /** Bytes held by the table's typed arrays. */
  memoryBytes(): number {
    return this.s.byteSize();
  }

  /**
   * MASQUERADE's device/address notifier: forgets the connections masqueraded out of
   * `ifName` (all of them, or those masqueraded to `addr` when given). Returns how many.
   */
  flushMasquerade(ifName: string, addr?: number): number {
    const idx = this.ifIndex.get(ifName);
    if (idx === undefined) return 0;
    const s = this.s;
    const a = addr === undefined ? -1 : addr | 0;
    let n = 0;
    for (let e = 0; e < s.highWater; e++) {
      const st = s.u16[e * 32 + H_STATUS];
      if ((st & (ST_CONFIRMED | ST_DYING | ST_MASQ)) !== (ST_CONFIRMED | ST_MASQ)) continue;
      if (s.u16[e * 32 + H_OUTIF] !== idx) continue;
      if (a !== -1 && s.i32[16 * e + 5] !== a) continue;
      this.destroy(e);
      n++;
    }
    return n;
  }

  /** Non-allocating lookup of a tuple (either direction); the entry handle or -1. For ICMP, `sport` is the id and `dport` is type << 8 | code. */
  lookup(src: number, dst: number, sport: number, dport: number, proto: number): number {
    const node = this.findLive(src | 0, dst | 0, (sport << 16) | dport | 0, proto, this.nowFn());
    return node < 0 ? -1 : node >> 1;
  }

  // ---------------------------------------------------------------- entry accessors

  /** A snapshot of entry `e` as `conntrack -L` shows it, or null if it is not in the table. */
  get(e: number): ConntrackEntryView | null {
    if (e < 0 || e >= this.s.highWater || (this.s.u16[e * 32 + H_STATUS] & ST_USED) === 0)
      return null;
    return this.view(e, this.nowFn(), true, true, true, 1);
  }

  /** Connection mark (CONNMARK, -m connmark). */
  getMark(e: number): number {
    return this.s.u32[e * 16 + W_MARK];
  }

  /** Sets the connection mark; reports an UPDATE event when it changes on a confirmed entry. */
  setMark(e: number, mark: number): void {
    const m = mark >>> 0;
    if (this.s.u32[e * 16 + W_MARK] === m) return;
    this.s.u32[e * 16 + W_MARK] = m;
    if (this.eventsFn !== null && (this.s.u16[e * 32 + H_STATUS] & ST_CONFIRMED) !== 0) {
      this.emit('UPDATE', e, this.nowFn(), EV_MARK);
    }
  }

  /** Tuple fields of entry `e` (-m conntrack --ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst …). */
  origSrc(e: number): number {
    return this.s.i32[16 * e] >>> 0;
  }
  origDst(e: number): number {
    return this.s.i32[16 * e + 1] >>> 0;
  }
  replySrc(e: number): number {
    return this.s.i32[16 * e + 4] >>> 0;
  }
  replyDst(e: number): number {
    return this.s.i32[16 * e + 5] >>> 0;
  }
  /** Ports (TCP/UDP), -1 for other protocols (--ctorigsrcport …). */
  origSport(e: number): number {
    return this.portOf(2 * e, true);
  }
  origDport(e: number): number {
    return this.portOf(2 * e, false);
  }
  replySport(e: number): number {
    return this.portOf(2 * e + 1, true);
  }
  replyDport(e: number): number {
    return this.portOf(2 * e + 1, false);
  }
  protocol(e: number): number {
    return this.s.u8[e * 64 + B_PROTO];
  }
  /** CtStatus bits (--ctstatus), plus SRC_NAT 16 / DST_NAT 32 for convenience. */
  status(e: number): number {
    return this.s.u16[e * 32 + H_STATUS] & 63;
  }
  /** TCP state name ('' for other protocols). */
  tcpState(e: number): string {
    return this.s.u8[e * 64 + B_PROTO] === 6 ? tcpStateNames[this.s.u8[e * 64 + B_TCPSTATE]] : '';
  }
  /** Seconds left (--ctexpire). */
  expiresIn(e: number): number {
    return Math.max(0, Math.floor((this.s.f64[e * 8 + D_EXPIRES] - this.nowFn()) / 1000));
  }

  // ---------------------------------------------------------------- internals

  private portOf(node: number, src: boolean): number {
    const p = this.s.u8[(node >> 1) * 64 + B_PROTO];
    if (p !== 6 && p !== 17) return -1;
    return src ? this.s.i32[nodeBase(node) + 2] >>> 16 : this.s.i32[nodeBase(node) + 2] & 0xffff;
  }

  private invalid(meta: PacketMeta): boolean {
    this.st.invalid++;
    this.setNoCt(meta, CtState.INVALID);
    return true;
  }

  private icmpErrorInvalid(meta: PacketMeta): boolean {
    this.st.error++;
    this.setNoCt(meta, CtState.INVALID);
    return true;
  }

  private setNoCt(meta: PacketMeta, state: number): void {
    meta.ctState = state;
    meta.ctEntry = -1;
    meta.ctStatus = 0;
    meta.ctDir = 0;
  }

  /** Lookup that treats (and collects) expired entries as gone. */
  private findLive(src: number, dst: number, ports: number, proto: number, now: number): number {
    const s = this.s;
    const node = s.find(src, dst, ports, proto);
    if (node < 0) return -1;
    if (s.f64[(node >> 1) * 8 + D_EXPIRES] <= now) {
      this.destroy(node >> 1);
      return -1;
    }
    return node;
  }

  /** Removes `e` from the tables (DESTROY event if it was confirmed) and frees it. */
  private destroy(e: number): void {
    const s = this.s;
    const st = s.u16[e * 32 + H_STATUS];
    if ((st & (ST_CONFIRMED | ST_DYING)) === ST_CONFIRMED) {
      s.unhash(e);
      if (this.eventsFn !== null) this.emit('DESTROY', e, this.curNow, 0);
    }
    this.freeEntry(e);
  }

  /** nf_ct_kill() of an entry the current packet still uses: unhashed now, freed later. */
  private killDeferred(e: number, meta: PacketMeta): void {
    const s = this.s;
    const st = s.u16[e * 32 + H_STATUS];
    if ((st & (ST_CONFIRMED | ST_DYING)) === ST_CONFIRMED) {
      s.unhash(e);
      if (this.eventsFn !== null) this.emit('DESTROY', e, this.curNow, 0);
    }
    s.unlinkSrc(e);
    s.u16[e * 32 + H_STATUS] |= ST_DYING;
    this.setSlot(meta, e);
  }

  private freeEntry(e: number): void {
    this.s.unlinkSrc(e);
    this.s.free(e);
  }

  /** Frees a slot's entry if it is still garbage (unconfirmed, or dying). */
  private reclaim(e: number): void {
    if (e < 0) return;
    const st = this.s.u16[e * 32 + H_STATUS];
    if ((st & ST_USED) !== 0 && (st & (ST_CONFIRMED | ST_DYING)) !== ST_CONFIRMED) {
      this.freeEntry(e);
    }
  }

  private releaseSlot(meta: PacketMeta): void {
    const sm = this.slotMeta;
    for (let i = 0; i < SLOTS; i++) {
      if (sm[i] === meta) {
        const e = this.slotEntry[i];
        sm[i] = null;
        this.slotEntry[i] = -1;
        this.reclaim(e);
        return;
      }
    }
  }

  private setSlot(meta: PacketMeta, e: number): void {
    const sm = this.slotMeta;
    let free = -1;
    for (let i = 0; i < SLOTS; i++) {
      if (sm[i] === meta) {
        const old = this.slotEntry[i];
        if (old !== e) this.reclaim(old);
        this.slotEntry[i] = e;
        this.slotTick[i] = this.tickNo;
        return;
      }
      if (free < 0 && sm[i] === null) free = i;
    }
    if (free < 0) {
      // More packets in flight than slots: the oldest one's entry is reclaimed now.
      free = 0;
      for (let i = 1; i < SLOTS; i++) if (this.slotTick[i] < this.slotTick[free]) free = i;
      this.reclaim(this.slotEntry[free]);
    }
    sm[free] = meta;
    this.slotEntry[free] = e;
    this.slotTick[free] = this.tickNo;
  }

  private clearSlot(meta: PacketMeta, e: number): void {
    for (let i = 0; i < SLOTS; i++) {
      if (this.slotMeta[i] === meta && this.slotEntry[i] === e) {
        this.slotMeta[i] = null;
        this.slotEntry[i] = -1;
        return;
      }
    }
  }

  /** __nf_conntrack_alloc(): enforces nf_conntrack_max with early drop. -1 = drop. */
  private allocEntry(src: number, dst: number, ports: number, proto: number, now: number): number {
    const s = this.s;
    if (s.allocated >= this.maxEntries) {
      if (
        !this.earlyDrop(s.bucketOf(src, dst, ports, proto), now) ||
        s.allocated >= this.maxEntries
      ) {
        this.st.drop++;
        this.logRateLimited('nf_conntrack: table full, dropping packet', now);
        return -1;
      }
    }
    const e = s.alloc();
    if (e < 0) {
      this.st.drop++;
      return -1;
    }
    return e;
  }

  /**
   * early_drop(): from the new tuple's bucket, over up to 8 consecutive buckets, deletes every
   * unassured entry of the first bucket that has any (expired entries met on the way are
   * collected). True when room was made.
   */
  private earlyDrop(bucket: number, now: number): boolean {
    const s = this.s;
    const victims: number[] = [];
    let reclaimed = 0;
    for (let i = 0; i < 8; i++) {
      victims.length = 0;
      const expired: number[] = [];
      let n = s.buckets[(bucket + i) & s.bucketMask];
      while (n >= 0) {
        const e = n >> 1;
        if (s.f64[e * 8 + D_EXPIRES] <= now) {
          if (!expired.includes(e)) expired.push(e);
        } else if ((s.u16[e * 32 + H_STATUS] & ST_ASSURED) === 0 && !victims.includes(e)) {
          victims.push(e);
        }
        n = s.i32[nodeBase(n) + 3];
      }
      for (const e of expired) this.destroy(e);
      reclaimed += expired.length;
      if (victims.length > 0) {
        for (const e of victims) this.destroy(e);
        this.st.early_drop += victims.length;
        return true;
      }
    }
    return reclaimed > 0;
  }

  private logRateLimited(msg: string, now: number): void {
    if (now - this.rlWindow >= RATELIMIT_INTERVAL_MS) {
      if (this.rlSuppressed > 0) {
        this.logLine(`net_ratelimit: ${this.rlSuppressed} callbacks suppressed`);
      }
      this.rlWindow = now;
      this.rlCount = 0;
      this.rlSuppressed = 0;
    }
    if (this.rlCount < RATELIMIT_BURST) {
      this.rlCount++;
      this.logLine(msg);
    } else {
      this.rlSuppressed++;
    }
  }

  private logLine(line: string): void {
    if (this.logFn !== null) this.logFn(line);
    else if (this.eventsFn !== null) this.eventsFn({ type: 'LOG', message: line });
  }

  private internIf(name: string): number {
    let i = this.ifIndex.get(name);
    if (i === undefined) {
      this.ifNames.push(name);
      i = this.ifNames.length;
      this.ifIndex.set(name, i);
    }
    return i;
  }

  // ---- ICMP errors

  /** nf_conntrack_inet_error(): RELATED to the connection of the quoted packet, or INVALID. */
  private icmpRelated(meta: PacketMeta, l4: number, now: number): boolean {
    const b = meta.buf;
    const inner = l4 + 8;
    const avail = meta.ipOff + meta.ipLen - inner;
    if (avail < 20 || b[inner] >>> 4 !== 4) return this.icmpErrorInvalid(meta);
    const ihl = (b[inner] & 0x0f) << 2;
    if (ihl < 20 || ihl > avail) return this.icmpErrorInvalid(meta);
    if ((((b[inner + 6] << 8) | b[inner + 7]) & 0x1fff) !== 0) return this.icmpErrorInvalid(meta);
    const iproto = b[inner + 9];
    const isrc = rd32i(b, inner + 12);
    const idst = rd32i(b, inner + 16);
    const il4 = inner + ihl;
    const il4Len = avail - ihl;
    let invPorts = 0;
    if (iproto === 6 || iproto === 17) {
      if (il4Len < 4) return this.icmpErrorInvalid(meta);
      invPorts = (((b[il4 + 2] << 8) | b[il4 + 3]) << 16) | (b[il4] << 8) | b[il4 + 1];
    } else if (iproto === 1) {
      if (il4Len < 8) return this.icmpErrorInvalid(meta);
      const inv = ICMP_INV[b[il4]];
      if (inv < 0) return this.icmpErrorInvalid(meta);
      invPorts = (((b[il4 + 4] << 8) | b[il4 + 5]) << 16) | (inv << 8) | b[il4 + 1];
    }
    // The quoted packet went the other way: look up its inverse.
    const node = this.findLive(idst, isrc, invPorts, iproto, now);
    if (node < 0) return this.icmpErrorInvalid(meta);
    const s = this.s;
    // The error must travel to the destination of the direction it matched.
    if ((meta.dst | 0) !== s.i32[nodeBase(node) + 1]) return this.icmpErrorInvalid(meta);
    const e = node >> 1;
    const status = s.u16[e * 32 + H_STATUS];
    meta.ctEntry = e;
    meta.ctDir = (node & 1) as 0 | 1;
    meta.ctState = CtState.RELATED | natStateBits(status);
    meta.ctStatus = status & 15;
    return true;
  }

  /** nf_nat_icmp_reply_translation(). */
  private icmpReplyTranslation(
    meta: PacketMeta,
    e: number,
    dir: number,
    m: number,
    bit: number,
    partial: boolean,
  ): boolean {
    const s = this.s;
    const b = meta.buf;
    const ipOff = meta.ipOff;
    const end = ipOff + meta.ipLen;
    const l4 = ipOff + ((b[ipOff] & 0x0f) << 2);
    if (end - l4 < 8 + 20) return false;
    const status = s.u16[e * 32 + H_STATUS];
    if (b[l4] === 5) {
      // Redirects about NATed connections would make the ends talk around us.
      if ((status & ST_NAT_DONE_MASK) !== ST_NAT_DONE_MASK) return false;
      if ((status & ST_NAT_MASK) !== 0) return false;
    }
    if ((status & bit) === 0) return true;
    const o = 2 * e + (dir ^ 1);
    const proto = s.u8[e * 64 + B_PROTO];
    const op = s.i32[nodeBase(o) + 2];
    // The quoted packet travelled in the other direction: give it that direction's tuple.
    const innerM = m ^ 1;
    let port = -1;
    if (proto === 6 || proto === 17) port = innerM === MANIP_SRC ? op >>> 16 : op & 0xffff;
    else if (proto === 1) port = op >>> 16;
    const inner = l4 + 8;
    const innerAddr = innerM === MANIP_SRC ? s.i32[nodeBase(o)] : s.i32[nodeBase(o) + 1];
    if (!natManipPacket(b, inner, end - inner, innerM, innerAddr, port, false)) return false;
    if (!partial) {
      b[l4 + 2] = 0;
      b[l4 + 3] = 0;
      const c = internetChecksum(b, l4, end - l4);
      b[l4 + 2] = c >>> 8;
      b[l4 + 3] = c & 0xff;
    }
    // The outer header: as the reply to (or the original of) the other direction.
    const outerAddr = m === MANIP_SRC ? s.i32[nodeBase(o) + 1] : s.i32[nodeBase(o)];
    natManipPacket(b, ipOff, meta.ipLen, m, outerAddr, -1, partial);
    meta.parse(b, ipOff, meta.ipLen);
    return true;
  }

  // ---- fragments

  private fragSlot(src: number, dst: number, key: number): number {
    return hashWords(this.s.seed, src, dst, key, 0) & 63;
  }

  private rememberFragment(
    meta: PacketMeta,
    e: number,
    dir: number,
    state: number,
    now: number,
  ): void {
    const src = meta.src | 0;
    const dst = meta.dst | 0;
    const key = (meta.ipId << 8) | meta.proto;
    const i = this.fragSlot(src, dst, key);
    this.fcSrc[i] = src;
    this.fcDst[i] = dst;
    this.fcKey[i] = key;
    this.fcEntry[i] = e;
    this.fcDir[i] = dir;
    this.fcState[i] = state;
    this.fcUntil[i] = now + 30000; // ipfrag_time
  }

  /** A non-first fragment: the entry of its first fragment (Linux tracks the reassembled packet). */
  private fragment(meta: PacketMeta, now: number): boolean {
    const src = meta.src | 0;
    const dst = meta.dst | 0;
    const key = (meta.ipId << 8) | meta.proto;
    const i = this.fragSlot(src, dst, key);
    const e = this.fcEntry[i];
    const s = this.s;
    if (
      e >= 0 &&
      this.fcSrc[i] === src &&
      this.fcDst[i] === dst &&
      this.fcKey[i] === key &&
      this.fcUntil[i] > now &&
      (s.u16[e * 32 + H_STATUS] & (ST_USED | ST_DYING)) === ST_USED &&
      s.u8[e * 64 + B_PROTO] === meta.proto &&
      s.i32[nodeBase(2 * e + this.fcDir[i])] === src &&
      s.i32[nodeBase(2 * e + this.fcDir[i]) + 1] === dst
    ) {
      const status = s.u16[e * 32 + H_STATUS];
      meta.ctEntry = e;
      meta.ctDir = this.fcDir[i] as 0 | 1;
      meta.ctState = this.fcState[i] | natStateBits(status);
      meta.ctStatus = status & 15;
      return true;
    }
    return this.invalid(meta);
  }

  // ---- NAT binding (nf_nat_core.c)

  private nullRange(e: number, m: number): void {
    // __nf_nat_alloc_null_binding(): map to the address the reply already expects.
    const a = (m === MANIP_SRC ? this.s.i32[16 * e + 5] : this.s.i32[16 * e + 4]) >>> 0;
    this.rFlags = R_MAP_IPS;
    this.rMinAddr = a;
    this.rMaxAddr = a;
    this.rMinPort = 0;
    this.rMaxPort = 0;
  }

  /** nf_nat_setup_info() with the range in the r* scratch fields. */
  private setupInfo(e: number, m: number): void {
    const s = this.s;
    const r = 2 * e + 1;
    const proto = s.u8[e * 64 + B_PROTO];
    const rp = s.i32[nodeBase(r) + 2];
    // The current original tuple: the inverse of the reply (earlier manips included).
    const cSrc = s.i32[nodeBase(r) + 1];
    const cDst = s.i32[nodeBase(r)];
    let cSp = 0;
    let cDp = 0;
    if (proto === 6 || proto === 17) {
      cSp = rp & 0xffff;
      cDp = rp >>> 16;
    } else if (proto === 1) {
      cSp = rp >>> 16;
      cDp = s.i32[16 * e + 2] & 0xffff;
    }
    this.getUniqueTuple(e, m, proto, cSrc, cDst, cSp, cDp);
    if (this.tSrc !== cSrc || this.tDst !== cDst || this.tSp !== cSp || this.tDp !== cDp) {
      // Alter the reply tuple so that replies are recognised.
      s.i32[nodeBase(r)] = this.tDst;
      s.i32[nodeBase(r) + 1] = this.tSrc;
      if (proto === 6 || proto === 17) s.i32[nodeBase(r) + 2] = (this.tDp << 16) | this.tSp;
      else if (proto === 1) s.i32[nodeBase(r) + 2] = (this.tSp << 16) | (rp & 0xffff);
      s.u16[e * 32 + H_STATUS] |= m === MANIP_SRC ? ST_SRC_NAT : ST_DST_NAT;
    }
    if (m === MANIP_SRC) s.linkSrc(e);
    s.u16[e * 32 + H_STATUS] |= m === MANIP_SRC ? ST_SRC_NAT_DONE : ST_DST_NAT_DONE;
  }

  private getUniqueTuple(
    e: number,
    m: number,
    proto: number,
    cSrc: number,
    cDst: number,
    cSp: number,
    cDp: number,
  ): void {
    const f = this.rFlags;
    // 1) SRC: keep the tuple if in range and free, else reuse the mapping of the same source.
    if (m === MANIP_SRC && (f & R_RANDOM_ALL) === 0) {
      if (this.inRange(cSrc, cSp, proto)) {
        if (!this.usedTuple(cSrc, cDst, cSp, cDp, proto)) {
          this.setT(cSrc, cDst, cSp, cDp);
          return;
        }
      } else if (this.findAppropriateSrc(e, proto, cSrc, cDst, cSp, cDp)) {
        if (!this.usedTuple(this.tSrc, this.tDst, this.tSp, this.tDp, proto)) return;
      }
    }
    // 2) Pick an address of the range (hash of source and destination).
    this.setT(cSrc, cDst, cSp, cDp);
    this.findBestIps(m);
    // 3) Keep the port if in range and unique ...
    if ((f & R_RANDOM_ALL) === 0) {
      if ((f & R_PROTO_SPECIFIED) !== 0) {
        if (
          this.l4InRange(m, proto) &&
          (this.rMinPort === this.rMaxPort ||
            !this.usedTuple(this.tSrc, this.tDst, this.tSp, this.tDp, proto))
        ) {
          return;
        }
      } else if (!this.usedTuple(this.tSrc, this.tDst, this.tSp, this.tDp, proto)) {
        return;
      }
    }
    // ... else let the protocol find a unique one.
    this.uniqueL4(m, proto);
  }

  private setT(src: number, dst: number, sp: number, dp: number): void {
    this.tSrc = src;
    this.tDst = dst;
    this.tSp = sp;
    this.tDp = dp;
  }

  /** in_range() of a source manip: address in the range, and the port if one was given. */
  private inRange(src: number, sp: number, proto: number): boolean {
    if ((this.rFlags & R_MAP_IPS) !== 0) {
      const a = src >>> 0;
      if (a < this.rMinAddr || a > this.rMaxAddr) return false;
    }
    if ((this.rFlags & R_PROTO_SPECIFIED) === 0) return true;
    if (proto !== 6 && proto !== 17 && proto !== 1) return true;
    return sp >= this.rMinPort && sp <= this.rMaxPort;
  }

  private l4InRange(m: number, proto: number): boolean {
    let p: number;
    if (proto === 1) p = this.tSp;
    else if (proto === 6 || proto === 17) p = m === MANIP_SRC ? this.tSp : this.tDp;
    else return true;
    return p >= this.rMinPort && p <= this.rMaxPort;
  }

  /** nf_nat_used_tuple(): is the reply of this original tuple taken by another entry? */
  private usedTuple(src: number, dst: number, sp: number, dp: number, proto: number): boolean {
    let ports = 0;
    if (proto === 6 || proto === 17) ports = (dp << 16) | sp;
    else if (proto === 1) {
      const inv = ICMP_INV[dp >>> 8];
      if (inv < 0) return false;
      ports = (sp << 16) | (inv << 8) | (dp & 0xff);
    }
    if (this.findLive(dst, src, ports, proto, this.curNow) >= 0) {
      this.st.found++;
      return true;
    }
    return false;
  }

  /** find_appropriate_src(): an existing connection from the same source:port, its mapping. */
  private findAppropriateSrc(
    e: number,
    proto: number,
    cSrc: number,
    cDst: number,
    cSp: number,
    cDp: number,
  ): boolean {
    const s = this.s;
    let ct = s.srcBuckets[s.srcBucketOf(cSrc, cSp, proto)];
    while (ct >= 0) {
      if (
        ct !== e &&
        s.u8[ct * 64 + B_PROTO] === proto &&
        s.i32[16 * ct] === cSrc &&
        s.i32[16 * ct + 2] >>> 16 === cSp
      ) {
        const rp = s.i32[16 * ct + 6];
        const src = s.i32[16 * ct + 5];
        const sp = proto === 6 || proto === 17 ? rp & 0xffff : proto === 1 ? rp >>> 16 : 0;
        if (this.inRange(src, sp, proto)) {
          this.setT(src, cDst, sp, cDp);
          return true;
        }
      }
      ct = s.i32[ct * 16 + W_SRCNEXT];
    }
    return false;
  }

  /** find_best_ips_proto(): an address of the range chosen by a hash of the addresses. */
  private findBestIps(m: number): void {
    if ((this.rFlags & R_MAP_IPS) === 0) return;
    let a: number;
    if (this.rMinAddr === this.rMaxAddr) a = this.rMinAddr;
    else {
      const j =
        hashWords(0, this.tSrc, (this.rFlags & R_PERSISTENT) !== 0 ? 0 : this.tDst, 0, 0) >>> 0;
      const dist = this.rMaxAddr - this.rMinAddr + 1;
      a = this.rMinAddr + Math.floor((j * dist) / 4294967296);
    }
    if (m === MANIP_SRC) this.tSrc = a | 0;
    else this.tDst = a | 0;
  }

  private rand16(): number {
    return Math.floor(this.randFn() * 65536) & 0xffff;
  }

  /** nf_nat_l4proto_unique_tuple(). */
  private uniqueL4(m: number, proto: number): void {
    const f = this.rFlags;
    let keySrc: boolean;
    let min: number;
    let size: number;
    if (proto === 1) {
      keySrc = true;
      if ((f & R_PROTO_SPECIFIED) === 0) {
        min = 0;
        size = 65536;
      } else {
        min = this.rMinPort;
        size = this.rMaxPort - this.rMinPort + 1;
      }
    } else if (proto === 6 || proto === 17) {
      keySrc = m === MANIP_SRC;
      if ((f & R_PROTO_SPECIFIED) === 0) {
        if (m === MANIP_DST) return; // can't change the port of a destination rewrite
        const port = this.tSp;
        if (port < 1024) {
          // Loose convention: ports below 512 are for credential passing.
          if (port < 512) {
            min = 1;
            size = 511;
          } else {
            min = 600;
            size = 1023 - 600 + 1;
          }
        } else {
          min = 1024;
          size = 65535 - 1024 + 1;
        }
      } else {
        let lo = this.rMinPort;
        let hi = this.rMaxPort;
        if (hi < lo) [lo, hi] = [hi, lo];
        min = lo;
        size = hi - lo + 1;
      }
    } else {
      return;
    }
    let off = (f & R_RANDOM_ALL) !== 0 || m !== MANIP_DST ? this.rand16() : 0;
    let attempts = size < 128 ? size : 128;
    for (;;) {
      for (let i = 0; i < attempts; i++, off = (off + 1) & 0xffff) {
        const k = min + (off % size);
        if (keySrc) this.tSp = k;
        else this.tDp = k;
        if (!this.usedTuple(this.tSrc, this.tDst, this.tSp, this.tDp, proto)) return;
      }
      if (attempts >= size || attempts < 16) return;
      attempts = attempts >>> 1;
      off = this.rand16();
    }
  }

  // ---- views, filters, events

  private tupleView(node: number, proto: number): ConntrackTupleView {
    const s = this.s;
    const p = s.i32[nodeBase(node) + 2];
    const v: ConntrackTupleView = {
      src: s.i32[nodeBase(node)] >>> 0,
      dst: s.i32[nodeBase(node) + 1] >>> 0,
      sport: -1,
      dport: -1,
      type: -1,
      code: -1,
      id: -1,
    };
    if (proto === 6 || proto === 17) {
      v.sport = p >>> 16;
      v.dport = p & 0xffff;
    } else if (proto === 1) {
      v.type = (p >>> 8) & 0xff;
      v.code = p & 0xff;
      v.id = p >>> 16;
    }
    return v;
  }

  private view(
    e: number,
    now: number,
    withTimeout: boolean,
    withState: boolean,
    withMark: boolean,
    use: number | null,
  ): ConntrackEntryView {
    const s = this.s;
    const proto = s.u8[e * 64 + B_PROTO];
    const st = s.u16[e * 32 + H_STATUS];
    const orig = this.tupleView(2 * e, proto);
    const reply = this.tupleView(2 * e + 1, proto);
    const mark = s.u32[e * 16 + W_MARK];
    return {
      id: e,
      proto,
      timeout: withTimeout
        ? Math.max(0, Math.floor((s.f64[e * 8 + D_EXPIRES] - now) / 1000))
        : null,
      tcpState: proto === 6 && withState ? tcpStateNames[s.u8[e * 64 + B_TCPSTATE]] : null,
      orig,
      reply,
      status: st & 15,
      seenReply: (st & ST_SEEN_REPLY) !== 0,
      assured: (st & ST_ASSURED) !== 0,
      snat: orig.src !== reply.dst,
      dnat: orig.dst !== reply.src,
      mark: withMark || mark !== 0 ? mark : null,
      use,
    };
  }

  /** ctnetlink_conntrack_event(): what an event carries depends on its type and causes. */
  private emit(type: ConntrackEventType, e: number, now: number, ev: number): void {
    const fn = this.eventsFn;
    if (fn === null) return;
    const entry =
      type === 'DESTROY'
        ? this.view(e, now, false, true, false, null)
        : this.view(
            e,
            now,
            true,
            type === 'NEW' || (ev & EV_PROTOINFO) !== 0,
            (ev & EV_MARK) !== 0,
            null,
          );
    fn({ type, entry });
  }

  private scan(filter: ConntrackFilter, fn: (e: number, now: number) => void): void {
    const s = this.s;
    const now = this.nowFn();
    this.curNow = now;
    const f = compileFilter(filter);
    const hw = s.highWater;
    for (let e = 0; e < hw; e++) {
      const st = s.u16[e * 32 + H_STATUS];
      if ((st & (ST_CONFIRMED | ST_DYING)) !== ST_CONFIRMED) continue;
      if (s.f64[e * 8 + D_EXPIRES] <= now) {
        this.destroy(e);
        continue;
      }
      if (this.matches(e, f)) fn(e, now);
    }
  }

  private matches(e: number, f: CompiledFilter): boolean {
    const s = this.s;
    const proto = s.u8[e * 64 + B_PROTO];
    const o = 2 * e;
    const r = o + 1;
    if (f.proto >= 0 && proto !== f.proto) return false;
    if (f.src >= 0 && s.i32[nodeBase(o)] >>> 0 !== f.src) return false;
    if (f.dst >= 0 && s.i32[nodeBase(o) + 1] >>> 0 !== f.dst) return false;
    if (f.replySrc >= 0 && s.i32[nodeBase(r)] >>> 0 !== f.replySrc) return false;
    if (f.replyDst >= 0 && s.i32[nodeBase(r) + 1] >>> 0 !== f.replyDst) return false;
    if (f.sport >= 0 && this.portOf(o, true) !== f.sport) return false;
    if (f.dport >= 0 && this.portOf(o, false) !== f.dport) return false;
    if (f.replySport >= 0 && this.portOf(r, true) !== f.replySport) return false;
    if (f.replyDport >= 0 && this.portOf(r, false) !== f.replyDport) return false;
    if (f.mark >= 0 && (s.u32[e * 16 + W_MARK] & f.markMask) >>> 0 !== (f.mark & f.markMask) >>> 0)
      return false;
    if (f.state !== null && (proto !== 6 || tcpStateNames[s.u8[e * 64 + B_TCPSTATE]] !== f.state))
      return false;
    const st = s.u16[e * 32 + H_STATUS];
    if ((st & f.status) !== f.status) return false;
    if (f.unreplied && (st & ST_SEEN_REPLY) !== 0) return false;
    if (f.snat !== undefined || f.dnat !== undefined) {
      const isSnat = s.i32[nodeBase(o)] !== s.i32[nodeBase(r) + 1];
      const isDnat = s.i32[nodeBase(o) + 1] !== s.i32[nodeBase(r)];
      const hasSnat =
        f.snat !== undefined &&
        isSnat &&
        (typeof f.snat !== 'number' || s.i32[nodeBase(r) + 1] >>> 0 === f.snat);
      const hasDnat =
        f.dnat !== undefined &&
        isDnat &&
        (typeof f.dnat !== 'number' || s.i32[nodeBase(r)] >>> 0 === f.dnat);
      if (f.any) return hasSnat || hasDnat;
      if (f.snat !== undefined && f.dnat !== undefined) return hasSnat && hasDnat;
      if (f.snat !== undefined) return hasSnat;
      return hasDnat;
    }
    return true;
  }
}

interface CompiledFilter {
  proto: number;
  src: number;
  dst: number;
  replySrc: number;
  replyDst: number;
  sport: number;
  dport: number;
  replySport: number;
  replyDport: number;
  mark: number;
  markMask: number;
  state: string | null;
  status: number;
  unreplied: boolean;
  snat: number | true | undefined;
  dnat: number | true | undefined;
  any: boolean;
}

const PROTO_BY_NAME: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, gre: 47, sctp: 132 };

function compileFilter(f: ConntrackFilter): CompiledFilter {
  let proto = -1;
  if (typeof f.proto === 'number') proto = f.proto;
  else if (typeof f.proto === 'string') {
    const p = PROTO_BY_NAME[f.proto.toLowerCase()] ?? Number(f.proto);
    if (!Number.isInteger(p)) throw new Error(`unknown protocol ${JSON.stringify(f.proto)}`);
    proto = p;
  }
  const a = (v: number | string | undefined): number => (v === undefined ? -1 : addrOf(v));
  const nat = (v: number | boolean | undefined): number | true | undefined =>
    v === undefined || v === false ? undefined : v;
  let snat = nat(natTarget(f.snat));
  let dnat = nat(natTarget(f.dnat));
  const anyNat = nat(natTarget(f.anyNat));
  if (anyNat !== undefined) {
    snat = anyNat;
    dnat = anyNat;
  }
  return {
    proto,
    src: a(f.src),
    dst: a(f.dst),
    replySrc: a(f.replySrc),
    replyDst: a(f.replyDst),
    sport: f.sport ?? -1,
    dport: f.dport ?? -1,
    replySport: f.replySport ?? -1,
    replyDport: f.replyDport ?? -1,
    mark: f.mark === undefined ? -1 : f.mark >>> 0,
    markMask: f.markMask === undefined ? 0xffffffff : f.markMask >>> 0,
    state: f.state === undefined ? null : f.state.toUpperCase(),
    status: (f.status ?? 0) & 15,
    unreplied: f.unreplied ?? false,
    snat,
    dnat,
    any: anyNat !== undefined,
  };
}

function natStateBits(status: number): number {
  return (
    ((status & ST_SRC_NAT) !== 0 ? CtState.SNAT : 0) |
    ((status & ST_DST_NAT) !== 0 ? CtState.DNAT : 0)
  );
}

function rd32i(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

/**
 * nf_checksum() of a TCP/UDP segment: true if the full checksum verifies, or if the field
 * holds the folded pseudo-header sum of a CHECKSUM_PARTIAL packet (left for the receiver).
 */
function l4ChecksumOk(
  b: Uint8Array,
  ipOff: number,
  l4: number,
  l4Len: number,
  proto: number,
): boolean {
  const src = rd32i(b, ipOff + 12) >>> 0;
  const dst = rd32i(b, ipOff + 16) >>> 0;
  const ph = pseudoHeaderSum(src, dst, proto, l4Len);
  if (internetChecksum(b, l4, l4Len, ph) === 0) return true;
  const at = l4 + (proto === 6 ? 16 : 6);
  return ((b[at] << 8) | b[at + 1]) === checksumFold(ph);
}
