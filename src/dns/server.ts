/**
 * The DNS server: builds one plugin chain per server block from a parsed Corefile, binds
 * a UDP and a TCP listener per port, routes each query to the block with the longest
 * matching zone, and writes the chain's answer (EDNS echoed, truncated to the client's
 * size over UDP). HTTP listeners (health, ready, prometheus) are shared per address.
 *
 * Requests the chain cannot see: a packet shorter than a header or with QR set is
 * dropped; other opcodes get NOTIMP, malformed queries FORMERR, EDNS versions above 0
 * BADVERS, classes other than IN NOTIMP, names outside every zone REFUSED.
 */
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import {
  createServer as createTcpServer,
  isIPv6,
  type Server as TcpServer,
  type Socket as TcpSocket,
} from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../util/log.js';
import { CorefileError, type Corefile, type Directive, type ServerBlock } from './corefile.js';
import type { DnsClusterView } from './kubernetes/view.js';
import type { Metrics } from './metrics.js';
import {
  PluginError,
  type DnsRequest,
  type Handler,
  type HttpHandler,
  type MaybePromise,
  type PluginInstance,
  type Reply,
  type Runtime,
  type ServerHooks,
  type SetupContext,
} from './plugin.js';
import { KNOWN_UNSUPPORTED, PLUGIN_ORDER, PLUGINS } from './plugins/index.js';
import {
  CLASS,
  decodeMessage,
  encodeMessage,
  encodeQuery,
  errorReply,
  fqdn,
  isParseError,
  isSubdomain,
  MAX_MSG_SIZE,
  MIN_UDP_SIZE,
  ParseFail,
  parseQuery,
  RCODE,
  supportedOptions,
  type DnsMessage,
  type Edns,
  type Query,
} from './wire.js';
import { listenUdp, type DnsUdpListener, type UdpIo } from './udp.js';

export interface ServerOptions {
  corefile: Corefile;
  /** The Corefile text (reload compares it). */
  text: string;
  logger: Logger;
  metrics: Metrics;
  /** Standalone `--listen`: every server block is served on this address instead. */
  listen?: { host: string; port: number };
  /** Address DNS listeners bind to without `listen` (default 0.0.0.0). */
  bindHost?: string;
  /** Host for HTTP addresses written `:PORT` (default: all interfaces). */
  httpHost?: string;
  /** Path read for `forward . /etc/resolv.conf`. */
  resolvConf?: string;
  /** This server's addresses (NS records). */
  localIPs?: string[];
  onReload?: () => void;
  onFatal?: (message: string) => void;
  readCorefile?: () => Promise<string | null>;
  /**
   * UDP I/O: `auto` (default) batches with recvmmsg/sendmmsg when the kubewire_udp addon
   * loads and falls back to node:dgram; `batched` requires the addon; `dgram` never uses it.
   */
  udpIo?: UdpIo;
}

interface Chain {
  zone: string;
  port: number;
  server: string;
  handler: Handler;
  instances: PluginInstance[];
}

interface Listener {
  port: number;
  host: string;
  /** Chains for this port, longest zone first. */
  chains: Chain[];
  udp: DnsUdpListener | null;
  tcp: TcpServer | null;
  boundPort: number;
}

interface HttpEntry {
  server: HttpServer;
  routes: Map<string, HttpHandler>;
  port: number;
}

const noNextPlugin: Handler = () => RCODE.SERVFAIL;
const MAX_LOOKUP_DEPTH = 8;
const TCP_IDLE_MS = 10_000;

function rcodeOf(e: unknown): number {
  return e instanceof PluginError ? e.rcode : RCODE.SERVFAIL;
}

export class DnsServer implements ServerHooks {
  readonly listeners: Listener[] = [];
  readonly instances: PluginInstance[] = [];
  private readonly http = new Map<string, HttpEntry>();
  private readonly tcpSockets = new Set<TcpSocket>();
  private started = false;
  private readonly runtime: Runtime;

  private constructor(readonly opts: ServerOptions) {
    this.runtime = {
      logger: opts.logger,
      metrics: opts.metrics,
      corefileText: opts.text,
      instances: () => this.instances,
      dnsAddresses: () =>
        this.listeners.flatMap((l) =>
          l.chains.map((c) => ({ address: l.host, port: l.boundPort, zone: c.zone })),
        ),
      query: (zone, name, type) => this.probe(zone, name, type),
      requestReload: () => opts.onReload?.(),
      fatal: (message) => {
        opts.logger.fatal({ plugin: 'loop' }, message);
        opts.onFatal?.(message);
      },
      http: (address, path, handler) => this.httpRoute(address, path, handler),
      readCorefile: () => (opts.readCorefile ? opts.readCorefile() : Promise.resolve(null)),
    };
  }

  /** Sets up every plugin of every block. Throws CorefileError (with the line) on the first problem. */
  static build(opts: ServerOptions): DnsServer {
    const s = new DnsServer(opts);
    const seen = new Map<string, number>();
    for (const block of opts.corefile.blocks) {
      const chainsOfBlock = s.setupBlock(block);
      for (const c of chainsOfBlock) {
        const port = opts.listen ? opts.listen.port : c.port;
        const key = `${c.zone}|${port}`;
        if (seen.has(key)) {
          throw new CorefileError(
            opts.corefile.file,
            block.line,
            `cannot serve dns://${fqdn(c.zone)}:${c.port} - it is already defined`,
          );
        }
        seen.set(key, block.line);
        let l = s.listeners.find((x) => x.port === port);
        if (!l) {
          l = {
            port,
            host: opts.listen ? opts.listen.host : (opts.bindHost ?? '0.0.0.0'),
            chains: [],
            udp: null,
            tcp: null,
            boundPort: port,
          };
          s.listeners.push(l);
        }
        l.chains.push(c);
      }
    }
    for (const l of s.listeners) l.chains.sort((a, b) => b.zone.length - a.zone.length);
    return s;
  }

  private setupBlock(block: ServerBlock): Chain[] {
    const file = this.opts.corefile.file;
    const zones = [...new Set(block.keys.map((k) => k.zone))];
    const first = block.keys[0]!;
    const server = `dns://:${this.opts.listen ? this.opts.listen.port : first.port}`;
    const ctx: SetupContext = {
      file,
      block,
      zones,
      server,
      logger: this.opts.logger,
      metrics: this.opts.metrics,
      httpHost: this.opts.httpHost ?? '',
      resolvConf: this.opts.resolvConf ?? '/etc/resolv.conf',
      localIPs: this.opts.localIPs ?? [],
      error: (line, detail) => {
        throw new CorefileError(file, line, detail);
      },
    };
    const byName = new Map<string, Directive[]>();
    for (const d of block.directives) {
      if (!PLUGINS.has(d.name)) {
        if (KNOWN_UNSUPPORTED.has(d.name)) {
          ctx.error(d.line, `plugin '${d.name}' is not supported by kubewire`);
        }
        ctx.error(d.line, `Unknown directive '${d.name}'`);
      }
      const list = byName.get(d.name);
      if (list) list.push(d);
      else byName.set(d.name, [d]);
    }
    const instances: PluginInstance[] = [];
    for (const name of PLUGIN_ORDER) {
      const ds = byName.get(name);
      if (!ds) continue;
      const spec = PLUGINS.get(name)!;
      if (spec.once && ds.length > 1) {
        ctx.error(
          ds[1]!.line,
          `plugin/${name}: this plugin can only be used once per Server Block`,
        );
      }
      const made = ds.map((d) => spec.setup(d, ctx));
      if (spec.merge && made.length > 1) instances.push(spec.merge(made));
      else instances.push(...made);
    }
    this.instances.push(...instances);
    let handler: Handler = noNextPlugin;
    for (let i = instances.length - 1; i >= 0; i--) {
      const inst = instances[i]!;
      if (!inst.serve) continue;
      const next = handler;
      // Bound once: the step closures share one feedback vector, and a property load of
      // `serve` there would see every plugin class (megamorphic, a stub-cache probe per step).
      const serve = inst.serve.bind(inst);
      handler = (req) => serve(req, next);
    }
    for (const z of zones) {
      for (const inst of instances) {
        this.opts.metrics.pluginEnabled.labels(server, fqdn(z), '', inst.name).set(1);
      }
    }
    return block.keys
      .filter((k, i, all) => all.findIndex((o) => o.zone === k.zone && o.port === k.port) === i)
      .map((k) => ({ zone: k.zone, port: k.port, server, handler, instances }));
  }

  /** Hands a new cluster state to every plugin. */
  setState(view: DnsClusterView): void {
    for (const inst of this.instances) inst.onState?.(view);
  }

  // -------------------------------------------------------------------------------------
  // Queries

  private route(l: Listener, lname: string): Chain | null {
    for (const c of l.chains) if (isSubdomain(lname, c.zone)) return c;
    return null;
  }

  /**
   * Answers one query packet; null when nothing is to be sent. Synchronous unless a
   * plugin waits (forward, upstream look-ups). `borrowed` (the batched UDP listener): the
   * query's bytes are valid only during the call, and a synchronous answer may be a view of
   * the encoder's scratch buffer that the caller copies before the next query.
   */
  handle(
    wire: Buffer,
    proto: 'udp' | 'tcp',
    remoteAddress: string,
    remotePort: number,
    listener: Listener | null = this.listeners[0] ?? null,
    borrowed = false,
  ): MaybePromise<Buffer | null> {
    const q = parseQuery(wire);
    if (isParseError(q)) {
      if (q.fail === ParseFail.Drop) return null;
      const m = errorReply(q, q.fail === ParseFail.FormErr ? RCODE.FORMERR : RCODE.NOTIMP);
      return encodeMessage(m, MIN_UDP_SIZE, null, borrowed).wire;
    }
    const edns = q.edns;
    if (edns && edns.version !== 0) {
      const m = errorReply(q, RCODE.BADVERS);
      const opt: Edns = {
        udpSize: edns.udpSize,
        version: 0,
        do: edns.do,
        extRcode: 0,
        options: [],
      };
      return encodeMessage(m, MIN_UDP_SIZE, opt, borrowed).wire;
    }
    const chain = listener ? this.route(listener, q.question.lname) : null;
    if (q.question.class !== CLASS.IN || chain === null) {
      const m = errorReply(q, chain === null ? RCODE.REFUSED : RCODE.NOTIMP);
      return this.encode(q, proto, m, borrowed).wire;
    }
    const req: DnsRequest = {
      q,
      proto,
      family: remoteAddress.includes(':') ? 6 : 4,
      remoteAddress,
      remotePort,
      localAddress: listener!.host,
      localPort: listener!.boundPort,
      zone: chain.zone,
      server: chain.server,
      start: performance.now(),
      srv: this,
      depth: 0,
      after: null,
    };
    let r: MaybePromise<Reply>;
    try {
      r = chain.handler(req);
    } catch (e) {
      r = rcodeOf(e);
    }
    if (r instanceof Promise) {
      // The answer waits: the question's bytes must outlive the caller's buffer.
      const question = q.question;
      if (borrowed && question.wire !== undefined) question.wire = Buffer.from(question.wire);
      return r.then(
        (x) => this.finish(req, x),
        (e: unknown) => this.finish(req, rcodeOf(e)),
      );
    }
    return this.finish(req, r, borrowed);
  }

  private encode(
    q: Query,
    proto: 'udp' | 'tcp',
    m: DnsMessage,
    view = false,
  ): { wire: Buffer; truncated: boolean } {
    const e = q.edns;
    const opt: Edns | null = e
      ? {
          udpSize: e.udpSize,
          version: 0,
          do: e.do,
          extRcode: 0,
          options: e.options.length ? supportedOptions(e.options) : e.options,
        }
      : null;
    const max =
      proto === 'tcp' ? MAX_MSG_SIZE : e ? Math.max(MIN_UDP_SIZE, e.udpSize) : MIN_UDP_SIZE;
    return encodeMessage(m, max, opt, view);
  }

  private finish(req: DnsRequest, r: Reply, view = false): Buffer {
    let m = typeof r === 'number' ? errorReply(req.q, r) : r;
    m.id = req.q.id;
    let out: { wire: Buffer; truncated: boolean };
    try {
      out = this.encode(req.q, req.proto, m, view);
    } catch (e) {
      this.opts.logger.error({ err: e }, 'dns: cannot encode the response');
      m = errorReply(req.q, RCODE.SERVFAIL);
      out = this.encode(req.q, req.proto, m, view);
    }
    if (out.truncated) m.tc = true;
    const after = req.after;
    if (after !== null) for (let i = 0; i < after.length; i++) after[i]!(req, m, out.wire.length);
    return out.wire;
  }

  /** Resolves a name through the chain of the zone it falls in (upstream.Lookup). */
  lookup(req: DnsRequest, name: string, type: number): Promise<DnsMessage | null> {
    if (req.depth >= MAX_LOOKUP_DEPTH) return Promise.resolve(null);
    const lname = name.toLowerCase().replace(/\.$/, '');
    const listener = this.listeners.find((l) => l.boundPort === req.localPort) ?? this.listeners[0];
    const chain = listener ? this.route(listener, lname) : null;
    if (!chain) return Promise.resolve(null);
    const q: Query = {
      id: 0,
      opcode: 0,
      rd: true,
      cd: false,
      ad: false,
      question: { name: name.replace(/\.$/, ''), lname, type, class: CLASS.IN },
      edns: null,
      size: 0,
    };
    const sub: DnsRequest = { ...req, q, zone: chain.zone, depth: req.depth + 1, after: null };
    return Promise.resolve()
      .then(() => chain.handler(sub))
      .then(
        (r) => (typeof r === 'number' ? null : r),
        () => null,
      );
  }

  /** Sends a real query to our own UDP listener for `zone` (the loop probe). */
  private probe(zone: string, name: string, type: number): Promise<DnsMessage | null> {
    const l = this.listeners.find((x) => x.chains.some((c) => c.zone === zone));
    if (!l || !l.udp) return Promise.resolve(null);
    const host = l.host === '0.0.0.0' ? '127.0.0.1' : l.host === '::' ? '::1' : l.host;
    return new Promise((resolve) => {
      const s = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
      const id = Math.floor(Math.random() * 65536);
      const timer = setTimeout(() => {
        s.close();
        resolve(null);
      }, 2000);
      s.on('message', (msg) => {
        clearTimeout(timer);
        s.close();
        try {
          resolve(decodeMessage(msg));
        } catch {
          resolve(null);
        }
      });
      s.on('error', () => {
        clearTimeout(timer);
        s.close();
        resolve(null);
      });
      s.send(encodeQuery(id, name, type), l.boundPort, host);
    });
  }

  // -------------------------------------------------------------------------------------
  // Listeners

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    try {
      for (const l of this.listeners) await this.bind(l);
      for (const inst of this.instances) await inst.start?.(this.runtime);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Binds UDP and TCP on one port; with port 0, retries until both get the same free port. */
  private async bind(l: Listener): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.bindOnce(l);
        return;
      } catch (e) {
        const inUse = (e as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (l.udp) {
          const u = l.udp;
          l.udp = null;
          await u.close();
        }
        if (!(inUse && l.port === 0 && attempt < 20)) throw e;
      }
    }
  }

  private async bindOnce(l: Listener): Promise<void> {
    l.udp = await listenUdp(
      l.host,
      l.port,
      (wire, address, port, borrowed) => this.answerUdp(l, wire, address, port, borrowed),
      { io: this.opts.udpIo ?? 'auto', logger: this.opts.logger },
    );
    l.boundPort = l.udp.port;
    const tcp = createTcpServer((conn) => this.onTcp(conn, l));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(l.boundPort, l.host, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    tcp.on('error', (e) => this.opts.logger.warn({ err: e }, 'dns: tcp listener error'));
    l.tcp = tcp;
  }

  /** One UDP query: a failure in the chain is counted (coredns_panics_total) and logged. */
  private answerUdp(
    l: Listener,
    wire: Buffer,
    address: string,
    port: number,
    borrowed: boolean,
  ): MaybePromise<Buffer | null> {
    try {
      return this.handle(wire, 'udp', address, port, l, borrowed);
    } catch (e) {
      this.opts.metrics.panics.labels().inc();
      this.opts.logger.error({ err: e }, 'dns: query handling failed');
      return null;
    }
  }

  private onTcp(conn: TcpSocket, l: Listener): void {
    this.tcpSockets.add(conn);
    conn.setNoDelay(true);
    conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
    conn.on('close', () => this.tcpSockets.delete(conn));
    conn.on('error', () => conn.destroy());
    let buf: Buffer = Buffer.alloc(0);
    const remote = conn.remoteAddress ?? '';
    const port = conn.remotePort ?? 0;
    const send = (b: Buffer | null): void => {
      if (!b || conn.destroyed) return;
      const len = Buffer.allocUnsafe(2);
      len.writeUInt16BE(b.length);
      conn.write(Buffer.concat([len, b]));
    };
    conn.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) break;
        const msg = buf.subarray(2, 2 + n);
        buf = buf.subarray(2 + n);
        let out: MaybePromise<Buffer | null>;
        try {
          out = this.handle(Buffer.from(msg), 'tcp', remote.replace(/^::ffff:/, ''), port, l);
        } catch {
          conn.destroy();
          return;
        }
        if (out === null) {
          conn.destroy();
          return;
        }
        if (out instanceof Promise) out.then(send, () => conn.destroy());
        else send(out);
      }
    });
  }

  private async httpRoute(
    address: string,
    path: string,
    handler: HttpHandler,
  ): Promise<{ port: number }> {
    let host: string;
    let port: number;
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
    if (m) {
      host = m[1] ?? m[2] ?? '';
      port = Number(m[3]);
    } else {
      throw new Error(`invalid HTTP address '${address}'`);
    }
    if (host === '') host = this.opts.httpHost ?? '';
    if (host === 'localhost') host = '127.0.0.1';
    const key = `${host}:${port}`;
    let e = this.http.get(key);
    if (!e) {
      const routes = new Map<string, HttpHandler>();
      const server = createHttpServer((req, res) => {
        const url = (req.url ?? '/').split('?')[0]!;
        const h = routes.get(url);
        if (!h) {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('404 page not found\n');
          return;
        }
        Promise.resolve(h(req.method ?? 'GET', url)).then(
          (r) => {
            res.writeHead(r.status, { 'content-type': r.type ?? 'text/plain; charset=utf-8' });
            res.end(r.body);
          },
          () => {
            res.writeHead(500);
            res.end();
          },
        );
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host === '' ? undefined : host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const addr = server.address();
      e = { server, routes, port: typeof addr === 'object' && addr ? addr.port : port };
      this.http.set(key, e);
    }
    e.routes.set(path, handler);
    return { port: e.port };
  }

  /**
   * Bound addresses: DNS (UDP and TCP share the port; `udp` says how UDP is read and written)
   * and HTTP listeners by path.
   */
  addresses(): {
    dns: { host: string; port: number; udp: 'batched' | 'dgram' | null }[];
    http: Record<string, number>;
  } {
    const http: Record<string, number> = {};
    for (const e of this.http.values()) for (const p of e.routes.keys()) http[p] = e.port;
    return {
      dns: this.listeners.map((l) => ({ host: l.host, port: l.boundPort, udp: l.udp?.io ?? null })),
      http,
    };
  }

  async stop(): Promise<void> {
    for (const inst of this.instances) {
      try {
        await inst.stop?.();
      } catch {
        // stopping continues
      }
    }
    for (const c of this.tcpSockets) c.destroy();
    for (const l of this.listeners) {
      if (l.udp) {
        const u = l.udp;
        l.udp = null;
        await u.close();
      }
      if (l.tcp) {
        const t = l.tcp;
        l.tcp = null;
        await new Promise<void>((r) => t.close(() => r()));
      }
    }
    for (const e of this.http.values()) {
      e.server.closeAllConnections();
      await new Promise<void>((r) => e.server.close(() => r()));
    }
    this.http.clear();
    this.started = false;
  }
}
