/**
 * hosts — answers from a hosts file and inline entries (CoreDNS plugin/hosts).
 *
 *   hosts [FILE [ZONES...]] {
 *       [INLINE]            IP NAME [NAME...]
 *       ttl SECONDS         default 3600
 *       no_reverse
 *       reload DURATION     default 5s; 0 disables
 *       fallthrough [ZONES...]
 *   }
 *
 * FILE defaults to /etc/hosts (a missing file is a warning, not an error). A, AAAA and
 * PTR (unless no_reverse) are answered, authoritatively. A name that is not there:
 * fallthrough, else SERVFAIL (CoreDNS: no SOA to build an NXDOMAIN); a name that is there
 * with another type: NODATA.
 */
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseDuration, parseKey } from '../corefile.js';
import {
  argError,
  intArg,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
  type Runtime,
} from '../plugin.js';
import {
  canonicalName,
  isSubdomain,
  RCODE,
  replyTo,
  rrA,
  rrAAAA,
  rrPTR,
  TYPE,
  type RR,
} from '../wire.js';
import { Fallthrough, parseFallthrough } from './fallthrough.js';

interface HostsMap {
  v4: Map<string, string[]>;
  v6: Map<string, string[]>;
  /** Address → names (PTR). */
  reverse: Map<string, string[]>;
}

function emptyMap(): HostsMap {
  return { v4: new Map(), v6: new Map(), reverse: new Map() };
}

/** Parses hosts-file text (comments with #) into `into`, names limited to `zones`. */
export function parseHosts(text: string, zones: string[], into: HostsMap = emptyMap()): HostsMap {
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [addr, ...names] = line.split(/\s+/);
    const fam = isIP(addr!.replace(/%.*/, ''));
    if (!fam || names.length === 0) continue;
    const ip = addr!.replace(/%.*/, '');
    for (const n of names) {
      const name = canonicalName(n);
      if (!zones.some((z) => isSubdomain(name, z))) continue;
      const m = fam === 4 ? into.v4 : into.v6;
      const list = m.get(name);
      if (list) {
        if (!list.includes(ip)) list.push(ip);
      } else m.set(name, [ip]);
      const rev = into.reverse.get(ip);
      if (rev) {
        if (!rev.includes(name)) rev.push(name);
      } else into.reverse.set(ip, [name]);
    }
  }
  return into;
}

function reverseToIP(lname: string): string | null {
  if (lname.endsWith('.in-addr.arpa')) {
    const p = lname.slice(0, -'.in-addr.arpa'.length).split('.');
    if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) return null;
    return p.reverse().map(Number).join('.');
  }
  if (lname.endsWith('.ip6.arpa')) {
    const p = lname.slice(0, -'.ip6.arpa'.length).split('.');
    if (p.length !== 32 || p.some((x) => !/^[0-9a-f]$/.test(x))) return null;
    const hex = p.reverse().join('');
    const groups = hex.match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, ''));
    return compressV6(groups);
  }
  return null;
}

function compressV6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export class HostsPlugin implements PluginInstance {
  readonly name = 'hosts';
  private map: HostsMap = emptyMap();
  private fileMtime = -1;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly file: string,
    readonly zones: string[],
    readonly inline: string,
    readonly ttl: number,
    readonly noReverse: boolean,
    readonly reloadMs: number,
    readonly fall: Fallthrough,
  ) {
    this.readFile(true);
  }

  private readFile(force: boolean): void {
    let text = '';
    try {
      const st = statSync(this.file);
      if (!force && st.mtimeMs === this.fileMtime) return;
      this.fileMtime = st.mtimeMs;
      text = readFileSync(this.file, 'utf8');
    } catch {
      if (!force && this.fileMtime === -1) return;
      this.fileMtime = -1;
    }
    const m = parseHosts(this.inline, this.zones);
    this.map = parseHosts(text, this.zones, m);
  }

  entries(): number {
    return this.map.reverse.size;
  }

  start(rt: Runtime): void {
    rt.metrics.hostsEntries.labels().set(this.entries());
    if (this.reloadMs > 0) {
      this.timer = setInterval(() => {
        this.readFile(false);
        rt.metrics.hostsEntries.labels().set(this.entries());
      }, this.reloadMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    const q = req.q.question;
    const lname = q.lname;
    const inZone = this.zones.some((z) => isSubdomain(lname, z));
    let answers: RR[] = [];
    if (q.type === TYPE.PTR) {
      if (!this.noReverse) {
        const ip = reverseToIP(lname);
        const names = ip ? this.map.reverse.get(ip) : undefined;
        if (names) answers = names.map((n) => rrPTR(q.name, this.ttl, n));
      }
      if (!inZone && answers.length === 0) return next(req);
    } else {
      if (!inZone) return next(req);
      if (q.type === TYPE.A) {
        answers = (this.map.v4.get(lname) ?? []).map((ip) => rrA(q.name, this.ttl, ip));
      } else if (q.type === TYPE.AAAA) {
        answers = (this.map.v6.get(lname) ?? []).map((ip) => rrAAAA(q.name, this.ttl, ip));
      }
    }
    if (answers.length === 0 && !this.map.v4.has(lname) && !this.map.v6.has(lname)) {
      if (this.fall.through(lname)) return next(req);
      return RCODE.SERVFAIL;
    }
    const m = replyTo(req.q, this.name);
    m.aa = true;
    m.answer = answers;
    return m;
  }
}

export const hosts: PluginSpec = {
  name: 'hosts',
  once: true,
  setup(d, ctx) {
    const file = d.args[0] ?? '/etc/hosts';
    const zones: string[] = [];
    for (let i = 1; i < d.args.length; i++) {
      try {
        for (const k of parseKey(ctx.file, d.argLines[i] ?? d.line, d.args[i]!)) zones.push(k.zone);
      } catch {
        argError(ctx, d, `hosts: invalid zone '${d.args[i]}'`, i);
      }
    }
    let ttl = 3600;
    let noReverse = false;
    let reloadMs = 5000;
    let fall = new Fallthrough(null);
    const inline: string[] = [];
    for (const p of d.block ?? []) {
      if (isIP(p.name.replace(/%.*/, ''))) {
        if (p.args.length === 0) ctx.error(p.line, `hosts: no names for address ${p.name}`);
        inline.push([p.name, ...p.args].join(' '));
        continue;
      }
      switch (p.name) {
        case 'ttl':
          ttl = intArg(ctx, p, 0, 0, 2 ** 31 - 1, 'hosts: ttl');
          break;
        case 'no_reverse':
          noReverse = true;
          break;
        case 'reload': {
          const ms = p.args.length === 1 ? parseDuration(p.args[0]!) : null;
          if (ms === null) argError(ctx, p, 'hosts: reload: expected a duration', 0);
          reloadMs = ms;
          break;
        }
        case 'fallthrough':
          fall = parseFallthrough(ctx, p);
          break;
        default:
          ctx.error(p.line, `hosts: unknown property '${p.name}'`);
      }
    }
    try {
      statSync(file);
    } catch {
      ctx.logger.warn(`hosts: file '${file}' does not exist`);
    }
    return new HostsPlugin(
      file,
      zones.length ? zones : [...ctx.zones],
      inline.join('\n'),
      ttl,
      noReverse,
      reloadMs,
      fall,
    );
  },
};
