/**
 * forward — sends queries to upstream resolvers (CoreDNS plugin/forward).
 *
 *   forward FROM TO... {
 *       except IGNORED_NAMES...
 *       force_tcp
 *       prefer_udp
 *       expire DURATION                     (accepted: no connection reuse here)
 *       max_fails INTEGER                   default 2
 *       health_check DURATION [no_rec] [domain FQDN]   default 0.5s
 *       policy random|round_robin|sequential           default random
 *       max_concurrent MAX
 *       next RCODE...
 *       failfast_all_unhealthy_upstreams
 *   }
 *
 * TO is `IP[:PORT]`, `dns://IP[:PORT]` or a resolv.conf-style file whose nameservers are
 * used (at most 15 upstreams). A query goes to the upstreams in policy order, skipping
 * those down (max_fails consecutive failures), over UDP, and again over TCP when the
 * answer is truncated (unless prefer_udp) or with force_tcp. A failed upstream is health
 * checked with `. IN NS` every health_check interval until it answers. In kubewire's
 * tests TO is always a lab-internal address.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6, connect } from 'node:net';
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseDuration, parseKey } from '../corefile.js';
import type { Metrics } from '../metrics.js';
import {
  argError,
  intArg,
  PluginError,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
  type Runtime,
} from '../plugin.js';
import {
  decodeMessage,
  encodeQuery,
  isSubdomain,
  RCODE,
  rcodeName,
  TYPE,
  type DnsMessage,
} from '../wire.js';

const MAX_UPSTREAMS = 15;
const TRY_TIMEOUT_MS = 2000;
const TOTAL_TIMEOUT_MS = 5000;

export interface Upstream {
  host: string;
  port: number;
  /** `host:port` (metrics label `to`). */
  label: string;
  fails: number;
  checking: boolean;
}

type Policy = 'random' | 'round_robin' | 'sequential';

export interface ForwardOptions {
  from: string;
  except: string[];
  upstreams: Upstream[];
  forceTcp: boolean;
  preferUdp: boolean;
  maxFails: number;
  healthCheckMs: number;
  healthRecursion: boolean;
  healthDomain: string;
  policy: Policy;
  maxConcurrent: number;
  next: Set<number>;
  failfast: boolean;
}

/** One UDP socket for all upstream queries; answers matched by id and source. */
class UdpClient {
  private sock: Socket | null = null;
  private readonly pending = new Map<number, { key: string; resolve: (b: Buffer) => void }>();

  private socket(): Socket {
    if (this.sock) return this.sock;
    const s = createSocket('udp4');
    s.on('message', (msg, rinfo) => {
      if (msg.length < 2) return;
      const id = msg.readUInt16BE(0);
      const p = this.pending.get(id);
      if (!p || p.key !== `${rinfo.address}:${rinfo.port}`) return;
      this.pending.delete(id);
      p.resolve(msg);
    });
    s.on('error', () => undefined);
    s.unref();
    this.sock = s;
    return s;
  }

  query(
    host: string,
    port: number,
    name: string,
    type: number,
    rd: boolean,
    edns: boolean,
    timeoutMs: number,
  ): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      let id = randomInt(65536);
      for (let n = 0; this.pending.has(id) && n < 100; n++) id = randomInt(65536);
      if (this.pending.has(id)) return reject(new Error('too many outstanding queries'));
      const wire = encodeQuery(id, name, type, {
        rd,
        edns: edns ? { udpSize: 1232, version: 0, do: false, extRcode: 0, options: [] } : null,
      });
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`read udp ${host}:${port}: i/o timeout`));
      }, timeoutMs);
      this.pending.set(id, {
        key: `${host}:${port}`,
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
      });
      this.socket().send(wire, port, host, (err) => {
        if (err) {
          clearTimeout(timer);
          this.pending.delete(id);
          reject(err);
        }
      });
    });
  }

  close(): void {
    this.sock?.close();
    this.sock = null;
  }
}

function tcpQuery(
  host: string,
  port: number,
  name: string,
  type: number,
  rd: boolean,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const id = randomInt(65536);
    const wire = encodeQuery(id, name, type, { rd });
    const s = connect({ host, port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`read tcp ${host}:${port}: i/o timeout`));
    }, timeoutMs);
    s.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(wire.length);
      s.write(Buffer.concat([len, wire]));
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        clearTimeout(timer);
        s.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export class ForwardPlugin implements PluginInstance {
  readonly name = 'forward';
  private readonly udp = new UdpClient();
  private inflight = 0;
  private rr = 0;
  private stopped = false;
  private metrics: Metrics | null = null;

  constructor(readonly opts: ForwardOptions) {}

  start(rt: Runtime): void {
    this.metrics = rt.metrics;
  }

  stop(): void {
    this.stopped = true;
    this.udp.close();
  }

  private match(lname: string): boolean {
    if (!isSubdomain(lname, this.opts.from)) return false;
    return !this.opts.except.some((z) => isSubdomain(lname, z));
  }

  private order(): Upstream[] {
    const list = this.opts.upstreams;
    switch (this.opts.policy) {
      case 'sequential':
        return [...list];
      case 'round_robin': {
        const i = this.rr++ % list.length;
        return [...list.slice(i), ...list.slice(0, i)];
      }
      default: {
        const out = [...list];
        for (let i = out.length - 1; i > 0; i--) {
          const j = randomInt(i + 1);
          [out[i], out[j]] = [out[j]!, out[i]!];
        }
        return out;
      }
    }
  }

  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    if (!this.match(req.q.question.lname)) return next(req);
    if (this.opts.maxConcurrent > 0 && this.inflight >= this.opts.maxConcurrent) {
      this.metrics?.forwardMaxConcurrentRejects.labels().inc();
      throw new PluginError('forward', RCODE.REFUSED, 'concurrent queries exceeded maximum');
    }
    this.inflight++;
    return this.forward(req, next).finally(() => {
      this.inflight--;
    });
  }

  private async forward(req: DnsRequest, next: Handler): Promise<Reply> {
    const deadline = Date.now() + TOTAL_TIMEOUT_MS;
    let candidates = this.order();
    const healthy = candidates.filter(
      (u) => u.fails < this.opts.maxFails || this.opts.maxFails === 0,
    );
    if (healthy.length === 0) {
      if (this.opts.failfast)
        throw new PluginError('forward', RCODE.SERVFAIL, 'no healthy upstream');
      this.metrics?.forwardHealthcheckBroken.labels().inc();
    } else candidates = healthy;
    let lastErr: Error = new Error('no upstream');
    for (const up of candidates) {
      if (Date.now() >= deadline) break;
      try {
        const m = await this.exchange(up, req, Math.min(TRY_TIMEOUT_MS, deadline - Date.now()));
        up.fails = 0;
        if (this.opts.next.has(m.rcode)) return next(req);
        m.id = req.q.id;
        m.question = req.q.question;
        m.plugin = this.name;
        return m;
      } catch (e) {
        lastErr = e as Error;
        up.fails++;
        this.healthCheck(up);
      }
    }
    throw new PluginError('forward', RCODE.SERVFAIL, lastErr.message);
  }

  private async exchange(up: Upstream, req: DnsRequest, timeoutMs: number): Promise<DnsMessage> {
    const q = req.q;
    const t0 = performance.now();
    this.metrics?.forwardRequests.labels(up.label).inc();
    let wire: Buffer;
    if (this.opts.forceTcp) {
      wire = await tcpQuery(up.host, up.port, q.question.name, q.question.type, q.rd, timeoutMs);
    } else {
      wire = await this.udp.query(
        up.host,
        up.port,
        q.question.name,
        q.question.type,
        q.rd,
        true,
        timeoutMs,
      );
      if ((wire[2]! & 0x02) !== 0 && !this.opts.preferUdp) {
        wire = await tcpQuery(up.host, up.port, q.question.name, q.question.type, q.rd, timeoutMs);
      }
    }
    const m = decodeMessage(wire);
    if (this.metrics) {
      const rc = rcodeName(m.rcode);
      this.metrics.forwardResponses.labels(rc, up.label).inc();
      this.metrics.forwardDuration.labels(up.label, rc).observe((performance.now() - t0) / 1000);
    }
    return m;
  }

  /** Probes a failed upstream until it answers (`. IN NS`). */
  private healthCheck(up: Upstream): void {
    if (up.checking || this.stopped || this.opts.healthCheckMs <= 0) return;
    up.checking = true;
    const probe = (): void => {
      if (this.stopped) return;
      this.udp
        .query(
          up.host,
          up.port,
          this.opts.healthDomain,
          TYPE.NS,
          this.opts.healthRecursion,
          false,
          TRY_TIMEOUT_MS,
        )
        .then(() => {
          up.fails = 0;
          up.checking = false;
        })
        .catch(() => {
          this.metrics?.forwardHealthcheckFailures.labels(up.label).inc();
          up.fails++;
          setTimeout(probe, this.opts.healthCheckMs).unref();
        });
    };
    setTimeout(probe, this.opts.healthCheckMs).unref();
  }
}

function parseUpstream(text: string): { host: string; port: number } | null {
  let t = text.replace(/^dns:\/\//, '');
  let port = 53;
  const v6 = /^\[(.+)\](?::(\d+))?$/.exec(t);
  if (v6) {
    if (v6[2]) port = Number(v6[2]);
    return isIPv6(v6[1]!) ? { host: v6[1]!, port } : null;
  }
  if (isIPv6(t)) return { host: t, port };
  const c = t.lastIndexOf(':');
  if (c >= 0) {
    port = Number(t.slice(c + 1));
    t = t.slice(0, c);
    if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  }
  return isIPv4(t) ? { host: t, port } : null;
}

/** Nameservers of a resolv.conf file. */
export function resolvConfNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

export const forward: PluginSpec = {
  name: 'forward',
  setup(d, ctx) {
    if (d.args.length < 2) argError(ctx, d, 'forward: expected FROM TO...');
    let from: string;
    try {
      from = parseKey(ctx.file, d.argLines[0] ?? d.line, d.args[0]!)[0]!.zone;
    } catch {
      return argError(ctx, d, `forward: invalid zone '${d.args[0]}'`, 0);
    }
    const upstreams: Upstream[] = [];
    for (let i = 1; i < d.args.length; i++) {
      const a = d.args[i]!;
      if (/^(tls|https|grpc|quic):\/\//.test(a)) {
        argError(ctx, d, `forward: transport of '${a}' is not supported by kubewire`, i);
      }
      let targets: string[] = [a];
      if (a.startsWith('/') || a.startsWith('.')) {
        const path = a === '/etc/resolv.conf' ? ctx.resolvConf : a;
        let text: string;
        try {
          text = readFileSync(path, 'utf8');
        } catch {
          return argError(ctx, d, `forward: cannot read '${path}'`, i);
        }
        targets = resolvConfNameservers(text);
        if (targets.length === 0) argError(ctx, d, `forward: no nameservers in '${path}'`, i);
      }
      for (const t of targets) {
        const u = parseUpstream(t);
        if (!u) argError(ctx, d, `forward: not an IP address or file: '${t}'`, i);
        upstreams.push({ ...u, label: `${u.host}:${u.port}`, fails: 0, checking: false });
      }
    }
    if (upstreams.length > MAX_UPSTREAMS)
      argError(ctx, d, `forward: more than ${MAX_UPSTREAMS} upstreams`);
    const opts: ForwardOptions = {
      from,
      except: [],
      upstreams,
      forceTcp: false,
      preferUdp: false,
      maxFails: 2,
      healthCheckMs: 500,
      healthRecursion: true,
      healthDomain: '',
      policy: 'random',
      maxConcurrent: 0,
      next: new Set(),
      failfast: false,
    };
    for (const p of d.block ?? []) {
      switch (p.name) {
        case 'except':
          for (let i = 0; i < p.args.length; i++) {
            try {
              for (const k of parseKey(ctx.file, p.argLines[i] ?? p.line, p.args[i]!))
                opts.except.push(k.zone);
            } catch {
              argError(ctx, p, `forward: except: invalid name '${p.args[i]}'`, i);
            }
          }
          break;
        case 'force_tcp':
          opts.forceTcp = true;
          break;
        case 'prefer_udp':
          opts.preferUdp = true;
          break;
        case 'expire':
          if (p.args.length !== 1 || parseDuration(p.args[0]!) === null) {
            argError(ctx, p, 'forward: expire: expected a duration', 0);
          }
          break;
        case 'max_fails':
          opts.maxFails = intArg(ctx, p, 0, 0, 1_000_000, 'forward: max_fails');
          break;
        case 'health_check': {
          const ms = p.args[0] !== undefined ? parseDuration(p.args[0]) : null;
          if (ms === null) argError(ctx, p, 'forward: health_check: expected a duration', 0);
          opts.healthCheckMs = ms;
          for (let i = 1; i < p.args.length; i++) {
            if (p.args[i] === 'no_rec') opts.healthRecursion = false;
            else if (p.args[i] === 'domain' && p.args[i + 1]) {
              opts.healthDomain = p.args[i + 1]!.replace(/\.$/, '');
              i++;
            } else argError(ctx, p, `forward: health_check: unexpected '${p.args[i]}'`, i);
          }
          break;
        }
        case 'policy': {
          const pol = p.args[0];
          if (pol !== 'random' && pol !== 'round_robin' && pol !== 'sequential') {
            argError(ctx, p, 'forward: policy: expected random, round_robin or sequential', 0);
          }
          opts.policy = pol;
          break;
        }
        case 'max_concurrent':
          opts.maxConcurrent = intArg(ctx, p, 0, 1, 1_000_000, 'forward: max_concurrent');
          break;
        case 'next':
          for (let i = 0; i < p.args.length; i++) {
            const rc = (RCODE as Record<string, number>)[p.args[i]!.toUpperCase()];
            if (rc === undefined)
              argError(ctx, p, `forward: next: unknown rcode '${p.args[i]}'`, i);
            opts.next.add(rc);
          }
          break;
        case 'failfast_all_unhealthy_upstreams':
          opts.failfast = true;
          break;
        case 'tls':
        case 'tls_servername':
          ctx.error(p.line, `forward: '${p.name}' is not supported by kubewire`);
          break;
        default:
          ctx.error(p.line, `forward: unknown property '${p.name}'`);
      }
    }
    return new ForwardPlugin(opts);
  },
};
