/**
 * cache — a response cache in front of the plugins after it (CoreDNS plugin/cache).
 *
 *   cache [TTL] [ZONES...] {
 *       success CAPACITY [TTL] [MINTTL]
 *       denial CAPACITY [TTL] [MINTTL]
 *       serve_stale [DURATION] [immediate|verify]
 *       servfail DURATION
 *       disable success|denial [ZONES...]
 *       keepttl
 *       prefetch AMOUNT [[DURATION] [PERCENTAGE%]]   (accepted; no prefetching is done)
 *   }
 *
 * Entries are keyed by lower-cased name, type and the DO and CD bits. Successful answers
 * live min(record TTLs) seconds, denials (NXDOMAIN, NODATA) the SOA's min(TTL, MINIMUM),
 * both within [MINTTL, TTL] (defaults 5 s and 3600 s / 1800 s); SERVFAIL 5 s. A hit
 * returns every record with the remaining TTL (unless keepttl). Capacity defaults to
 * 9984 per kind; when full, the oldest entry goes. serve_stale answers an expired entry
 * (TTL 0) within DURATION (default 1 h) and refreshes it in the background (`immediate`),
 * or first tries a refresh (`verify`).
 */
import { parseKey, parseDuration, type Directive } from '../corefile.js';
import type { CounterSeries, Metrics } from '../metrics.js';
import {
  argError,
  intArg,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
  type SetupContext,
} from '../plugin.js';
import {
  fqdn,
  isSubdomain,
  newSectionCache,
  RCODE,
  TYPE,
  type DnsMessage,
  type RR,
  type SectionCache,
} from '../wire.js';

type Kind = 'success' | 'denial';

interface KindConfig {
  capacity: number;
  maxTTL: number;
  minTTL: number;
  disabled: string[] | null;
}

interface CacheSeries {
  requests: CounterSeries;
  misses: CounterSeries;
  hitSuccess: CounterSeries;
  hitDenial: CounterSeries;
  stale: CounterSeries;
}

interface Entry {
  msg: DnsMessage;
  key: string;
  tk: number;
  /** Lower-cased question name when stored (owner names equal to it take the client's case). */
  lname: string;
  stored: number;
  ttl: number;
  kind: Kind | 'servfail';
  /** The records as last served (remaining TTL, client's case). */
  view?: {
    ttl: number | null;
    qname: string;
    answer: RR[];
    authority: RR[];
    additional: RR[];
    sections: SectionCache;
  };
}

const DEFAULT_CAPACITY = 9984;

export class CachePlugin implements PluginInstance {
  readonly name = 'cache';
  /** Entries per kind in insertion order (capacity, eviction), by full key. */
  private readonly success = new Map<string, Entry>();
  private readonly denial = new Map<string, Entry>();
  /** The same entries by type key, then lower-cased name (the look-up path). */
  private readonly index = new Map<number, Map<string, Entry>>();
  private readonly seriesByServer = new Map<string, CacheSeries>();
  private readonly zonesLabel: string;
  private readonly refreshing = new Set<string>();

  constructor(
    readonly zones: string[],
    readonly cfg: Record<Kind, KindConfig>,
    readonly servfailMs: number,
    readonly staleMs: number,
    readonly verifyStale: boolean,
    readonly keepTTL: boolean,
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {
    this.zonesLabel = zones.map(fqdn).join(',');
    const entries = metrics.cacheEntries;
    const prev = entries.collect;
    entries.collect = () => {
      prev?.();
      entries.labels('', 'success', this.zonesLabel, '').set(this.success.size);
      entries.labels('', 'denial', this.zonesLabel, '').set(this.denial.size);
    };
  }

  /** Type, DO and CD of a query as one number (the first level of the look-up). */
  private static typeKey(req: DnsRequest): number {
    const q = req.q;
    return q.question.type * 4 + (q.edns !== null && q.edns.do ? 2 : 0) + (q.cd ? 1 : 0);
  }

  private series(server: string): CacheSeries {
    let s = this.seriesByServer.get(server);
    if (!s) {
      const m = this.metrics;
      const z = this.zonesLabel;
      s = {
        requests: m.cacheRequests.labels(server, z, ''),
        misses: m.cacheMisses.labels(server, z, ''),
        hitSuccess: m.cacheHits.labels(server, 'success', z, ''),
        hitDenial: m.cacheHits.labels(server, 'denial', z, ''),
        stale: m.cacheServedStale.labels(server, z, ''),
      };
      this.seriesByServer.set(server, s);
    }
    return s;
  }

  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    const lname = req.q.question.lname;
    if (!this.zones.some((z) => isSubdomain(lname, z))) return next(req);
    const tk = CachePlugin.typeKey(req);
    const m = this.metrics.enabled ? this.series(req.server) : null;
    if (m) m.requests.value++;
    const e = this.index.get(tk)?.get(lname);
    if (e) {
      const age = (this.now() - e.stored) / 1000;
      const left = Math.floor(e.ttl - age);
      if (left > 0) {
        if (m) (e.kind === 'success' ? m.hitSuccess : m.hitDenial).value++;
        return this.fromEntry(req, e, this.keepTTL ? null : left);
      }
      const expiredMs = (age - e.ttl) * 1000;
      if (this.staleMs > 0 && expiredMs <= this.staleMs) {
        const key = `${lname}\u0000${tk}`;
        if (this.verifyStale) {
          return this.refresh(req, next, key, tk, e);
        }
        if (m) m.stale.value++;
        if (!this.refreshing.has(key)) {
          this.refreshing.add(key);
          void Promise.resolve()
            .then(() => next({ ...req, after: null }))
            .then((r) => this.store(key, tk, r))
            .catch(() => undefined)
            .finally(() => this.refreshing.delete(key));
        }
        return this.fromEntry(req, e, 0);
      }
      this.remove(e);
    }
    if (m) m.misses.value++;
    const key = `${lname}\u0000${tk}`;
    const r = next(req);
    if (r instanceof Promise) {
      return r.then((reply) => {
        this.store(key, tk, reply);
        return reply;
      });
    }
    this.store(key, tk, r);
    return r;
  }

  /** serve_stale verify: try the plugins first; serve the stale entry if they fail. */
  private refresh(
    req: DnsRequest,
    next: Handler,
    key: string,
    tk: number,
    e: Entry,
  ): MaybePromise<Reply> {
    const fallback = (): Reply => {
      this.metrics.cacheServedStale.labels(req.server, this.zonesLabel, '').inc();
      return this.fromEntry(req, e, 0);
    };
    const use = (r: Reply): Reply => {
      if (typeof r === 'number' || r.rcode === RCODE.SERVFAIL) return fallback();
      this.store(key, tk, r);
      return r;
    };
    try {
      const r = next(req);
      return r instanceof Promise ? r.then(use, fallback) : use(r);
    } catch {
      return fallback();
    }
  }

  private fromEntry(req: DnsRequest, e: Entry, ttl: number | null): DnsMessage {
    const q = req.q;
    const qname = q.question.name;
    // Records are rebuilt only when the remaining TTL or the client's case changes; the
    // arrays are shared between replies (plugins replace them, never mutate them).
    let v = e.view;
    if (v === undefined || v.ttl !== ttl || v.qname !== qname) {
      const fix = (list: RR[]): RR[] =>
        list.map((rr) => {
          const name =
            rr.name.length === e.lname.length && rr.name.toLowerCase() === e.lname
              ? qname
              : rr.name;
          return { ...rr, name, ttl: ttl === null ? rr.ttl : Math.min(rr.ttl, ttl) };
        });
      v = {
        ttl,
        qname,
        answer: fix(e.msg.answer),
        authority: fix(e.msg.authority),
        additional: fix(e.msg.additional),
        sections: newSectionCache(),
      };
      e.view = v;
    }
    const src = e.msg;
    return {
      id: q.id,
      opcode: q.opcode,
      qr: true,
      aa: src.aa,
      tc: false,
      rd: q.rd,
      ra: src.ra,
      ad: src.ad && !!q.edns?.do,
      cd: q.cd,
      rcode: src.rcode,
      question: q.question,
      answer: v.answer,
      authority: v.authority,
      additional: v.additional,
      plugin: 'cache',
      sections: v.sections,
    };
  }

  private remove(e: Entry): void {
    (e.kind === 'success' ? this.success : this.denial).delete(e.key);
    this.index.get(e.tk)?.delete(e.lname);
  }

  private store(key: string, tk: number, r: Reply): void {
    if (typeof r === 'number' || r.tc || !r.question) return;
    let kind: Kind | 'servfail';
    if (r.rcode === RCODE.NOERROR && r.answer.length > 0) kind = 'success';
    else if (r.rcode === RCODE.NXDOMAIN || (r.rcode === RCODE.NOERROR && r.answer.length === 0)) {
      kind = 'denial';
    } else if (r.rcode === RCODE.SERVFAIL) kind = 'servfail';
    else return;
    const lname = r.question.lname;
    let ttl: number;
    if (kind === 'servfail') {
      if (this.servfailMs <= 0) return;
      ttl = this.servfailMs / 1000;
    } else {
      const c = this.cfg[kind];
      if (
        c.disabled &&
        (c.disabled.length === 0 || c.disabled.some((z) => isSubdomain(lname, z)))
      ) {
        return;
      }
      let msgTTL = Infinity;
      if (kind === 'success') {
        for (const rr of r.answer) msgTTL = Math.min(msgTTL, rr.ttl);
        for (const rr of r.authority) msgTTL = Math.min(msgTTL, rr.ttl);
      } else {
        for (const rr of r.authority) {
          if (rr.type === TYPE.SOA) {
            const minimum = rr.rdata.readUInt32BE(rr.rdata.length - 4);
            msgTTL = Math.min(msgTTL, rr.ttl, minimum);
          }
        }
        if (msgTTL === Infinity) msgTTL = c.minTTL;
      }
      ttl = Math.min(Math.max(msgTTL, c.minTTL), c.maxTTL);
    }
    if (ttl <= 0) return;
    const map = kind === 'success' ? this.success : this.denial;
    const cap = kind === 'success' ? this.cfg.success.capacity : this.cfg.denial.capacity;
    if (!map.has(key) && map.size >= cap) {
      const oldest = map.values().next().value;
      if (oldest !== undefined) this.remove(oldest);
      if (this.metrics.enabled) {
        this.metrics.cacheEvictions
          .labels('', kind === 'success' ? 'success' : 'denial', this.zonesLabel, '')
          .inc();
      }
    }
    const old = this.index.get(tk)?.get(lname);
    if (old) this.remove(old);
    const entry: Entry = { msg: r, key, tk, lname, stored: this.now(), ttl, kind };
    map.set(key, entry);
    let byName = this.index.get(tk);
    if (!byName) {
      byName = new Map();
      this.index.set(tk, byName);
    }
    byName.set(lname, entry);
  }

  /** Entries per kind (tests, metrics). */
  sizes(): { success: number; denial: number } {
    return { success: this.success.size, denial: this.denial.size };
  }
}

function zoneList(ctx: SetupContext, d: Directive, from: number): string[] {
  const zones: string[] = [];
  for (let i = from; i < d.args.length; i++) {
    try {
      for (const k of parseKey(ctx.file, d.argLines[i] ?? d.line, d.args[i]!)) zones.push(k.zone);
    } catch {
      argError(ctx, d, `cache: invalid zone '${d.args[i]}'`, i);
    }
  }
  return zones;
}

export const cache: PluginSpec = {
  name: 'cache',
  once: true,
  setup(d, ctx) {
    let i = 0;
    const cfg: Record<Kind, KindConfig> = {
      success: { capacity: DEFAULT_CAPACITY, maxTTL: 3600, minTTL: 5, disabled: null },
      denial: { capacity: DEFAULT_CAPACITY, maxTTL: 1800, minTTL: 5, disabled: null },
    };
    if (d.args[0] !== undefined && /^\d+$/.test(d.args[0])) {
      const ttl = intArg(ctx, d, 0, 0, 2 ** 31, 'cache: TTL');
      cfg.success.maxTTL = ttl;
      cfg.denial.maxTTL = ttl;
      i = 1;
    }
    const zones = d.args.length > i ? zoneList(ctx, d, i) : [...ctx.zones];
    let servfail = 5000;
    let stale = 0;
    let verify = false;
    let keepttl = false;
    for (const p of d.block ?? []) {
      switch (p.name) {
        case 'success':
        case 'denial': {
          if (p.args.length < 1 || p.args.length > 3) {
            argError(ctx, p, `cache: ${p.name}: expected CAPACITY [TTL] [MINTTL]`);
          }
          const c = cfg[p.name];
          const capacity = intArg(ctx, p, 0, 1, 2 ** 31, `cache: ${p.name} capacity`);
          c.capacity = Math.max(256, Math.floor(capacity / 256) * 256);
          if (p.args[1] !== undefined)
            c.maxTTL = intArg(ctx, p, 1, 0, 2 ** 31, `cache: ${p.name} TTL`);
          if (p.args[2] !== undefined)
            c.minTTL = intArg(ctx, p, 2, 0, 2 ** 31, `cache: ${p.name} MINTTL`);
          break;
        }
        case 'serve_stale': {
          stale = 3600_000;
          if (p.args[0] !== undefined) {
            const ms = parseDuration(p.args[0]);
            if (ms === null || ms < 0)
              argError(ctx, p, `cache: serve_stale: invalid duration '${p.args[0]}'`, 0);
            stale = ms;
          }
          if (p.args[1] !== undefined) {
            if (p.args[1] !== 'immediate' && p.args[1] !== 'verify') {
              argError(ctx, p, "cache: serve_stale: expected 'immediate' or 'verify'", 1);
            }
            verify = p.args[1] === 'verify';
          }
          break;
        }
        case 'servfail': {
          const ms = p.args.length === 1 ? parseDuration(p.args[0]!) : null;
          if (ms === null || ms > 300_000)
            argError(ctx, p, 'cache: servfail: expected a duration up to 5m', 0);
          servfail = ms;
          break;
        }
        case 'disable': {
          const kind = p.args[0];
          if (kind !== 'success' && kind !== 'denial') {
            argError(ctx, p, "cache: disable: expected 'success' or 'denial'", 0);
          }
          cfg[kind].disabled = zoneList(ctx, p, 1);
          break;
        }
        case 'keepttl':
          keepttl = true;
          break;
        case 'prefetch':
          if (p.args.length < 1) argError(ctx, p, 'cache: prefetch: expected AMOUNT');
          intArg(ctx, p, 0, 1, 2 ** 31, 'cache: prefetch amount');
          ctx.logger.warn(
            { line: p.line },
            'cache: prefetch is accepted but not implemented by kubewire',
          );
          break;
        default:
          ctx.error(p.line, `cache: unknown property '${p.name}'`);
      }
    }
    return new CachePlugin(zones, cfg, servfail, stale, verify, keepttl, ctx.metrics);
  },
};
