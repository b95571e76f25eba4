/**
 * The HTTP(S) proxy: the data path of kubewire's ingress controller. Each request is
 * routed with the compiled table (routes.ts), goes through the location's annotations in
 * the order nginx runs them, and is proxied with http-proxy-3 to one ready endpoint of the
 * backend Service (pod IP:targetPort), round robin, over keep-alive HTTP/1.1.
 *
 * Per request, in order (nginx phases: find-config, rewrite, access, content):
 *   400 bad target · server by Host · location by $uri (404 when none) · 413 body size ·
 *   CORS preflight 204 · permanent/temporal redirect · app-root 302 · rewrite to an
 *   absolute URL (302) · ssl-redirect 308 · whitelist 403 · default backend 404 ·
 *   no endpoints 503 · proxy (502 refused, 504 timeout).
 */
import {
  createServer as createHttpServer,
  Agent as HttpAgent,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
  type ClientRequest,
} from 'node:http';
import {
  createServer as createHttpsServer,
  Agent as HttpsAgent,
  type Server as HttpsServer,
} from 'node:https';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Socket, AddressInfo } from 'node:net';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import { cidrContains, parseIPv4 } from '../cluster/index.js';
import type { Logger } from '../util/log.js';
import { formatAccessLog, newRequestId, seconds, timeLocalNow } from './access-log.js';
import { defaultTls, type TlsCertificate } from './certs.js';
import {
  DEFAULT_UPSTREAM,
  findLocation,
  findServer,
  nextEndpoint,
  type IngressConfig,
  type Location,
  type Server,
  type Upstream,
} from './routes.js';
import type { Endpoint } from './backends.js';
import { escapeUri, expandTemplate, parseTarget } from './uri.js';

export interface ProxyOptions {
  /** Access log (one line per request); null: none. */
  accessLog: Logger | null;
  /** Error log (proxy errors, reload notes). */
  log?: Logger | null;
  /** client_header_timeout (ms), default 60 s. */
  headersTimeoutMs?: number;
  /** Whole-request receive limit (ms), default 60 s (client_body_timeout). */
  requestTimeoutMs?: number;
  /** keepalive_timeout (ms), default 75 s. */
  keepAliveTimeoutMs?: number;
  /** Total request-header bytes (large_client_header_buffers 4 8k), default 32 KiB. */
  maxHeaderSize?: number;
  /** Idle upstream connections kept per endpoint (upstream-keepalive-connections 320). */
  upstreamKeepAlive?: number;
}

const STATUS_TEXT: Record<number, string> = {
  204: 'No Content',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Time-out',
  413: 'Request Entity Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Temporarily Unavailable',
  504: 'Gateway Time-out',
};

/** nginx's built-in error page (server_tokens off, as ingress-nginx sets it). */
export function errorPage(status: number): string {
  const title = `${status} ${STATUS_TEXT[status] ?? ''}`.trim();
  return `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
}

const ctxKey = Symbol('kubewire.ingress.ctx');

interface RequestContext {
  start: number;
  /** The request target as received (for the log's "$request"). */
  originalUrl: string;
  requestId: string;
  upstreamName: string;
  upstreamAddr: string;
  upstreamStatus: string;
  upstreamTime: string;
  upstreamLength: string;
  upstreamStart: number;
  bodyBytes: number;
  location: Location | null;
  /** Response headers to add (CORS, affinity cookie). */
  addHeaders: [string, string][] | null;
  timedOut: boolean;
  attempts: number;
}

type Req = IncomingMessage & { [ctxKey]?: RequestContext };

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const HOST_OK = /^[a-z0-9._-]*$/;

function stripV4Mapped(a: string | undefined): string {
  if (!a) return '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Host header → lowercase name without port or trailing dot; null when invalid (400). */
export function hostName(header: string): string | null {
  let h = header.toLowerCase();
  if (h.startsWith('[')) return h; // IPv6 literal: matches no server name
  const colon = h.lastIndexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (!HOST_OK.test(h) || h.includes('..') || h.startsWith('.')) return null;
  return h;
}

const stickyKeys = new Map<string, string>();

/** The affinity cookie's value for an endpoint: md5 of `ip:port` (session-cookie-hash md5). */
function stickyKey(e: Endpoint): string {
  const k = `${e.ip}:${e.port}`;
  let v = stickyKeys.get(k);
  if (v === undefined) {
    v = createHash('md5').update(k).digest('hex');
    stickyKeys.set(k, v);
  }
  return v;
}

function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function originAllowed(allow: readonly string[], origin: string | undefined): boolean {
  if (allow.length === 1 && allow[0] === '*') return true;
  if (!origin) return false;
  const o = origin.toLowerCase();
  return allow.some((a) => {
    const p = a.toLowerCase();
    if (!p.includes('*')) return p === o;
    const star = p.indexOf('*.');
    return (
      o.startsWith(p.slice(0, star)) && o.endsWith(p.slice(star + 1)) && o.length > p.length - 1
    );
  });
}

export class IngressProxy {
  private config: IngressConfig;
  private readonly proxy: ProxyServer;
  private readonly httpAgent: HttpAgent;
  private readonly httpsAgent: HttpsAgent;
  private readonly contexts = new WeakMap<TlsCertificate, SecureContext>();
  private defaultContext: SecureContext | null = null;
  private readonly servers: (HttpServer | HttpsServer)[] = [];
  private readonly upgraded = new Set<Duplex>();
  private readonly opts: Required<Omit<ProxyOptions, 'accessLog' | 'log'>>;
  private httpsPort = 443;

  constructor(
    config: IngressConfig,
    private readonly options: ProxyOptions,
  ) {
    this.config = config;
    this.opts = {
      headersTimeoutMs: options.headersTimeoutMs ?? 60_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
      keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 75_000,
      maxHeaderSize: options.maxHeaderSize ?? 32 * 1024,
      upstreamKeepAlive: options.upstreamKeepAlive ?? 320,
    };
    const agentOpts = {
      keepAlive: true,
      maxFreeSockets: this.opts.upstreamKeepAlive,
      timeout: 60_000,
    };
    this.httpAgent = new HttpAgent(agentOpts);
    this.httpsAgent = new HttpsAgent({ ...agentOpts, rejectUnauthorized: false });
    this.proxy = createProxyServer({ xfwd: false, toProxy: true, ws: true });
    this.proxy.on('proxyReq', (proxyReq, req) => this.onProxyReq(proxyReq, req as Req));
    this.proxy.on('proxyReqWs', (proxyReq, req) => this.onProxyReq(proxyReq, req as Req));
    this.proxy.on('proxyRes', (proxyRes, req) => this.onProxyRes(proxyRes, req as Req));
    this.proxy.on('error', (err, req, res) =>
      this.onProxyError(err as NodeJS.ErrnoException, req as Req, res),
    );
  }

  /** Swaps the routing table; requests in flight finish with the one they started with. */
  setConfig(config: IngressConfig): void {
    this.config = config;
  }

  get current(): IngressConfig {
    return this.config;
  }

  // -------------------------------------------------------------------------------------
  // Listening

  async listenHttp(host: string, port: number): Promise<AddressInfo> {
    const server = createHttpServer({
      maxHeaderSize: this.opts.maxHeaderSize,
      headersTimeout: this.opts.headersTimeoutMs,
      requestTimeout: this.opts.requestTimeoutMs,
      keepAliveTimeout: this.opts.keepAliveTimeoutMs,
      connectionsCheckingInterval: this.checkInterval(),
    });
    return this.listen(server, host, port);
  }

  async listenHttps(host: string, port: number): Promise<AddressInfo> {
    const fake = defaultTls();
    const server = createHttpsServer({
      maxHeaderSize: this.opts.maxHeaderSize,
      headersTimeout: this.opts.headersTimeoutMs,
      requestTimeout: this.opts.requestTimeoutMs,
      keepAliveTimeout: this.opts.keepAliveTimeoutMs,
      connectionsCheckingInterval: this.checkInterval(),
      cert: fake.cert,
      key: fake.key,
      SNICallback: (servername, cb) => cb(null, this.secureContextFor(servername)),
    });
    server.on('tlsClientError', () => undefined);
    const addr = await this.listen(server, host, port);
    this.httpsPort = addr.port;
    return addr;
  }

  /** How often Node checks the header and request timeouts of open connections. */
  private checkInterval(): number {
    return Math.max(50, Math.min(1000, Math.floor(this.opts.headersTimeoutMs / 4)));
  }

  private listen(
    server: HttpServer | HttpsServer,
    host: string,
    port: number,
  ): Promise<AddressInfo> {
    server.on('request', (req, res) => this.handle(req, res));
    server.on('upgrade', (req, socket, head) => this.handleUpgrade(req, socket, head));
    server.on('clientError', (err, socket) =>
      this.onClientError(err as NodeJS.ErrnoException, socket),
    );
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  /**
   * Stops listening. Open connections finish their requests and are closed when idle;
   * after `graceMs` every connection (WebSockets included) is closed.
   */
  async close(graceMs = 1000): Promise<void> {
    const timer = setTimeout(() => {
      for (const s of this.servers) s.closeAllConnections();
      for (const u of this.upgraded) u.destroy();
    }, graceMs);
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeIdleConnections();
          }),
      ),
    );
    clearTimeout(timer);
    for (const u of this.upgraded) u.destroy();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** The certificate for an SNI name: the server's, else the default (fake) one. */
  secureContextFor(servername: string): SecureContext {
    const server = findServer(this.config, servername.toLowerCase());
    const tls = server.tls;
    if (tls !== null && tls !== 'default') {
      let ctx = this.contexts.get(tls);
      if (!ctx) {
        ctx = createSecureContext({ cert: tls.cert, key: tls.key });
        this.contexts.set(tls, ctx);
      }
      return ctx;
    }
    if (!this.defaultContext) {
      const fake = defaultTls();
      this.defaultContext = createSecureContext({ cert: fake.cert, key: fake.key });
    }
    return this.defaultContext;
  }

  // -------------------------------------------------------------------------------------
  // Requests

  private newContext(req: Req): RequestContext {
    const incoming = req.headers['x-request-id'];
    const ctx: RequestContext = {
      start: performance.now(),
      originalUrl: req.url ?? '',
      requestId: typeof incoming === 'string' && incoming !== '' ? incoming : newRequestId(),
      upstreamName: '',
      upstreamAddr: '',
      upstreamStatus: '',
      upstreamTime: '',
      upstreamLength: '',
      upstreamStart: 0,
      bodyBytes: 0,
      location: null,
      addHeaders: null,
      timedOut: false,
      attempts: 0,
    };
    req[ctxKey] = ctx;
    return ctx;
  }

  /** Routes a request: the server and location, or an early status. */
  private route(
    req: Req,
  ): { server: Server; location: Location; uri: string; args: string } | number {
    const target = parseTarget(req.url ?? '/');
    if (target === null) return 400;
    const host = hostName(target.host ?? req.headers.host ?? '');
    if (host === null) return 400;
    const server = findServer(this.config, host);
    const location = findLocation(server, target.uri);
    if (location === null) return 404;
    return { server, location, uri: target.uri, args: target.args };
  }

  handle(req: Req, res: ServerResponse): void {
    const ctx = this.newContext(req);
    res.on('close', () => this.logAccess(req, res, ctx));
    const r = this.route(req);
    if (typeof r === 'number') return this.respond(res, ctx, r);
    const { server, location: loc, uri } = r;
    ctx.location = loc;
    const s = loc.settings;
    const encrypted = (req.socket as TLSSocket).encrypted === true;
    const scheme = encrypted ? 'https' : 'http';

    // find-config: client_max_body_size
    if (s.proxyBodySize > 0) {
      const cl = req.headers['content-length'];
      if (cl !== undefined && Number(cl) > s.proxyBodySize) {
        res.setHeader('connection', 'close');
        return this.respond(res, ctx, 413);
      }
    }
    // rewrite phase (ngx_http_rewrite_module directives in template order, then Lua)
    if (s.cors) {
      const ok = originAllowed(s.cors.allowOrigin, req.headers.origin);
      if (ok) {
        const h = this.corsHeaders(s.cors, req.headers.origin);
        if (req.method === 'OPTIONS') {
          for (const [k, v] of h) res.setHeader(k, v);
          res.setHeader('content-type', 'text/plain charset=UTF-8');
          res.setHeader('content-length', '0');
          res.statusCode = 204;
          res.end();
          return;
        }
        ctx.addHeaders = h;
      }
    }
    if (s.redirect) return this.redirect(res, ctx, s.redirect.code, s.redirect.url);
    if (s.appRoot !== null && uri === '/') {
      return this.redirect(res, ctx, 302, `${scheme}://${req.headers.host ?? ''}${s.appRoot}`);
    }
    let newUri: string | null = null;
    let newArgs = r.args;
    if (loc.rewrite) {
      const m = loc.rewrite.regex.exec(uri);
      if (m) {
        const out = expandTemplate(loc.rewrite.parts, m, (v) =>
          this.variable(v, req, scheme, uri, r.args),
        );
        if (loc.rewrite.redirect) return this.redirect(res, ctx, 302, out);
        const q = out.indexOf('?');
        if (q >= 0) {
          newUri = out.slice(0, q);
          const given = out.slice(q + 1);
          newArgs = out.endsWith('?')
            ? given.slice(0, -1)
            : r.args !== ''
              ? given !== ''
                ? `${given}&${r.args}`
                : r.args
              : given;
        } else newUri = out;
      }
    }
    if (scheme === 'http' && (s.forceSslRedirect || (s.sslRedirect && server.tls !== null))) {
      let requestUri = req.url ?? '/';
      if (!s.preserveTrailingSlash && requestUri.endsWith('/'))
        requestUri = requestUri.slice(0, -1);
      const host = hostName(req.headers.host ?? '') ?? '';
      const port = s.usePortInRedirects && this.httpsPort !== 443 ? `:${this.httpsPort}` : '';
      return this.redirect(res, ctx, 308, `https://${host}${port}${requestUri}`);
    }
    // access phase
    if (s.whitelist) {
      const addr = parseIPv4(stripV4Mapped(req.socket.remoteAddress));
      if (addr === null || !s.whitelist.some((c) => cidrContains(c, addr)))
        return this.respond(res, ctx, 403);
    }
    // content: proxy_pass
    const upstream = loc.upstream;
    if (upstream === null) {
      ctx.upstreamName = DEFAULT_UPSTREAM;
      return this.respond(res, ctx, 404);
    }
    ctx.upstreamName = upstream.name;
    const endpoint = this.pickEndpoint(upstream, loc, req, ctx, encrypted);
    if (endpoint === null) return this.respond(res, ctx, 503);
    if (newUri !== null) req.url = escapeUri(newUri) + (newArgs !== '' ? `?${newArgs}` : '');
    else if (req.url !== undefined && req.url.charCodeAt(0) !== 47) {
      const t = /^https?:\/\/[^/?#]*(.*)$/i.exec(req.url);
      req.url = t && t[1] !== '' ? (t[1]!.startsWith('/') ? t[1]! : `/${t[1]}`) : '/';
    }
    this.setProxyHeaders(req, loc, scheme, ctx, newUri !== null);
    this.forward(req, res, upstream, endpoint, loc, ctx);
  }

  private forward(
    req: Req,
    res: ServerResponse,
    upstream: Upstream,
    e: Endpoint,
    loc: Location,
    ctx: RequestContext,
  ): void {
    ctx.attempts++;
    const addr = `${e.ip}:${e.port}`;
    ctx.upstreamAddr = ctx.upstreamAddr === '' ? addr : `${ctx.upstreamAddr}, ${addr}`;
    ctx.upstreamStart = performance.now();
    const https = loc.settings.backendProtocol === 'HTTPS';
    const retryBody = ctx.attempts > 1 ? { buffer: Readable.from([]) } : {};
    this.proxy.web(
      req,
      res,
      {
        target: { protocol: https ? 'https:' : 'http:', host: e.ip, port: e.port },
        agent: https ? this.httpsAgent : this.httpAgent,
        secure: false,
        ...retryBody,
      },
      (err) => this.onWebError(err as NodeJS.ErrnoException, req, res, upstream, loc, ctx),
    );
  }

  private onWebError(
    err: NodeJS.ErrnoException,
    req: Req,
    res: ServerResponse,
    upstream: Upstream,
    loc: Location,
    ctx: RequestContext,
  ): void {
    const status = ctx.timedOut ? 504 : 502;
    this.addUpstreamResult(ctx, status === 504 ? '504' : '502');
    // proxy_next_upstream error timeout (tries ≤ 3), only for requests without a body.
    const bodiless = !req.headers['content-length'] && !req.headers['transfer-encoding'];
    if (
      !res.headersSent &&
      !ctx.timedOut &&
      err.code === 'ECONNREFUSED' &&
      bodiless &&
      IDEMPOTENT.has(req.method ?? '') &&
      ctx.attempts < Math.min(3, upstream.endpoints.length)
    ) {
      const next = nextEndpoint(upstream);
      if (next) return this.forward(req, res, upstream, next, loc, ctx);
    }
    this.options.log?.warn(
      { err: err.message, code: err.code, upstream: upstream.name, addr: ctx.upstreamAddr },
      'upstream error',
    );
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.respond(res, ctx, status);
  }

  private addUpstreamResult(ctx: RequestContext, status: string): void {
    const t = seconds(performance.now() - ctx.upstreamStart);
    ctx.upstreamStatus = ctx.upstreamStatus === '' ? status : `${ctx.upstreamStatus}, ${status}`;
    ctx.upstreamTime = ctx.upstreamTime === '' ? t : `${ctx.upstreamTime}, ${t}`;
    ctx.upstreamLength = ctx.upstreamLength === '' ? '0' : `${ctx.upstreamLength}, 0`;
  }

  private pickEndpoint(
    u: Upstream,
    loc: Location,
    req: Req,
    ctx: RequestContext,
    encrypted: boolean,
  ): Endpoint | null {
    const aff = loc.settings.affinity;
    if (aff === null || u.endpoints.length === 0) return nextEndpoint(u);
    const want = cookieValue(req.headers.cookie, aff.cookieName);
    if (want !== null) {
      const e = u.endpoints.find((x) => stickyKey(x) === want);
      if (e) return e;
    }
    const e = nextEndpoint(u)!;
    let cookie = `${aff.cookieName}=${stickyKey(e)}; Path=${aff.path ?? loc.path}; HttpOnly`;
    if (aff.expires !== null)
      cookie += `; Expires=${new Date(Date.now() + aff.expires * 1000).toUTCString()}`;
    if (aff.maxAge !== null) cookie += `; Max-Age=${aff.maxAge}`;
    if (aff.secure || encrypted) cookie += '; Secure';
    if (aff.sameSite !== null) cookie += `; SameSite=${aff.sameSite}`;
    (ctx.addHeaders ??= []).push(['set-cookie', cookie]);
    return e;
  }

  private corsHeaders(
    c: NonNullable<Location['settings']['cors']>,
    origin: string | undefined,
  ): [string, string][] {
    const star = c.allowOrigin.length === 1 && c.allowOrigin[0] === '*';
    const h: [string, string][] = [['access-control-allow-origin', star ? '*' : (origin ?? '')]];
    if (c.allowCredentials) h.push(['access-control-allow-credentials', 'true']);
    h.push(
      ['access-control-allow-methods', c.allowMethods],
      ['access-control-allow-headers', c.allowHeaders],
    );
    if (c.exposeHeaders !== '') h.push(['access-control-expose-headers', c.exposeHeaders]);
    h.push(['access-control-max-age', String(c.maxAge)]);
    return h;
  }

  private variable(name: string, req: Req, scheme: string, uri: string, args: string): string {
    switch (name) {
      case 'scheme':
        return scheme;
      case 'host':
        return hostName(req.headers.host ?? '') ?? '';
      case 'http_host':
        return req.headers.host ?? '';
      case 'request_uri':
        return req.url ?? '';
      case 'uri':
        return uri;
      case 'args':
        return args;
      case 'is_args':
        return args !== '' ? '?' : '';
      case 'server_port':
        return String(req.socket.localPort ?? '');
      case 'remote_addr':
        return stripV4Mapped(req.socket.remoteAddress);
      default:
        return '';
    }
  }

  /** proxy_set_header as ingress-nginx's template sets them. */
  private setProxyHeaders(
    req: Req,
    loc: Location,
    scheme: string,
    ctx: RequestContext,
    rewritten: boolean,
  ): void {
    const h = req.headers;
    const remote = stripV4Mapped(req.socket.remoteAddress);
    const bestHost = h.host ?? '';
    const originalXff = h['x-forwarded-for'];
    if (loc.settings.upstreamVhost !== null) h.host = loc.settings.upstreamVhost;
    h['x-request-id'] = ctx.requestId;
    h['x-real-ip'] = remote;
    h['x-forwarded-for'] = remote;
    h['x-forwarded-host'] = bestHost;
    h['x-forwarded-port'] = String(req.socket.localPort ?? '');
    h['x-forwarded-proto'] = scheme;
    h['x-forwarded-scheme'] = scheme;
    h['x-scheme'] = scheme;
    if (originalXff !== undefined && originalXff !== '')
      h['x-original-forwarded-for'] = originalXff;
    else delete h['x-original-forwarded-for'];
    if (rewritten && loc.settings.xForwardedPrefix !== null)
      h['x-forwarded-prefix'] = loc.settings.xForwardedPrefix;
    delete h.proxy;
    delete h['proxy-connection'];
    delete h['keep-alive'];
    if (!h.upgrade) delete h.connection;
  }

  private onProxyReq(proxyReq: ClientRequest, req: Req): void {
    const ctx = req[ctxKey];
    if (!ctx || !ctx.location) return;
    const s = ctx.location.settings;
    const socket = proxyReq.socket as Socket | null;
    if (socket && socket.connecting) {
      const timer = setTimeout(() => {
        ctx.timedOut = true;
        proxyReq.destroy();
      }, s.proxyConnectTimeout * 1000);
      socket.once('connect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    }
    proxyReq.setTimeout(s.proxyReadTimeout * 1000, () => {
      ctx.timedOut = true;
      proxyReq.destroy();
    });
  }

  private onProxyRes(proxyRes: IncomingMessage, req: Req): void {
    const ctx = req[ctxKey];
    const h = proxyRes.headers;
    // proxy_hide_header defaults; hop-by-hop headers of the upstream connection.
    h.server = 'nginx';
    delete h.date;
    delete h['x-pad'];
    delete h['keep-alive'];
    delete h.connection;
    if (!ctx) return;
    ctx.upstreamStatus =
      ctx.upstreamStatus === ''
        ? String(proxyRes.statusCode)
        : `${ctx.upstreamStatus}, ${proxyRes.statusCode}`;
    const t = seconds(performance.now() - ctx.upstreamStart);
    ctx.upstreamTime = ctx.upstreamTime === '' ? t : `${ctx.upstreamTime}, ${t}`;
    const cl = h['content-length'];
    if (cl !== undefined) {
      ctx.bodyBytes = Number(cl);
      ctx.upstreamLength = ctx.upstreamLength === '' ? cl : `${ctx.upstreamLength}, ${cl}`;
    } else {
      proxyRes.on('data', (chunk: Buffer) => {
        ctx.bodyBytes += chunk.length;
      });
      proxyRes.on('end', () => {
        ctx.upstreamLength =
          ctx.upstreamLength === ''
            ? String(ctx.bodyBytes)
            : `${ctx.upstreamLength}, ${ctx.bodyBytes}`;
      });
    }
    if (ctx.addHeaders) {
      for (const [k, v] of ctx.addHeaders) {
        const have = h[k];
        if (k === 'set-cookie') h[k] = [...(Array.isArray(have) ? have : have ? [have] : []), v];
        else h[k] = v;
      }
    }
  }

  private onProxyError(err: NodeJS.ErrnoException, req: Req, res: unknown): void {
    // Errors of proxy.ws without a callback, and stray errors: never crash the proxy.
    this.options.log?.warn({ err: err.message, code: err.code, url: req.url }, 'proxy error');
    if (
      res &&
      typeof (res as Duplex).destroy === 'function' &&
      !(res as ServerResponse).headersSent
    ) {
      (res as Duplex).destroy();
    }
  }

  private respond(res: ServerResponse, ctx: RequestContext, status: number): void {
    const body = errorPage(status);
    ctx.bodyBytes = Buffer.byteLength(body);
    res.statusCode = status;
    // nginx turns keep-alive off after a request it could not parse or route (400).
    if (status === 400) res.shouldKeepAlive = false;
    res.setHeader('Content-Type', 'text/html');
    res.setHeader('Content-Length', ctx.bodyBytes);
    res.setHeader('Server', 'nginx');
    res.end(body);
  }

  private redirect(
    res: ServerResponse,
    ctx: RequestContext,
    status: number,
    location: string,
  ): void {
    res.setHeader('Location', location);
    this.respond(res, ctx, status);
  }

  // -------------------------------------------------------------------------------------
  // WebSocket and malformed requests

  private handleUpgrade(req: Req, socket: Duplex, head: Buffer): void {
    const ctx = this.newContext(req);
    socket.on('error', () => undefined);
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
    const fail = (status: number): void => {
      const body = errorPage(status);
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      this.logRaw(req, status, Buffer.byteLength(body), ctx);
    };
    const r = this.route(req);
    if (typeof r === 'number') return fail(r);
    const loc = r.location;
    ctx.location = loc;
    const encrypted = (req.socket as TLSSocket).encrypted === true;
    const scheme = encrypted ? 'https' : 'http';
    const s = loc.settings;
    if (scheme === 'http' && (s.forceSslRedirect || (s.sslRedirect && r.server.tls !== null)))
      return fail(308);
    if (s.whitelist) {
      const addr = parseIPv4(stripV4Mapped(req.socket.remoteAddress));
      if (addr === null || !s.whitelist.some((c) => cidrContains(c, addr))) return fail(403);
    }
    if (loc.upstream === null) return fail(404);
    ctx.upstreamName = loc.upstream.name;
    const e = nextEndpoint(loc.upstream);
    if (e === null) return fail(503);
    if (loc.rewrite) {
      const m = loc.rewrite.regex.exec(r.uri);
      if (m) {
        const out = expandTemplate(loc.rewrite.parts, m, (v) =>
          this.variable(v, req, scheme, r.uri, r.args),
        );
        req.url = escapeUri(out) + (r.args !== '' && !out.includes('?') ? `?${r.args}` : '');
      }
    }
    ctx.upstreamAddr = `${e.ip}:${e.port}`;
    this.setProxyHeaders(req, loc, scheme, ctx, loc.rewrite !== null);
    const https = s.backendProtocol === 'HTTPS';
    this.proxy.ws(
      req,
      socket,
      head,
      { target: { protocol: https ? 'https:' : 'http:', host: e.ip, port: e.port }, secure: false },
      (err) => {
        this.options.log?.warn(
          { err: (err as Error).message, upstream: ctx.upstreamName },
          'websocket upstream error',
        );
        if (socket.writable && !(socket as Socket).bytesWritten) fail(502);
        else socket.destroy();
      },
    );
    socket.once('close', () => this.logRaw(req, 101, 0, ctx));
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const busy = (socket as unknown as { _httpMessage?: unknown })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || busy) {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 431
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 408
          : 400;
    const body = errorPage(status);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nServer: nginx\r\nDate: ${new Date().toUTCString()}\r\nContent-Type: text/html\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    if (this.options.accessLog) {
      const s = socket as Socket;
      this.options.accessLog.info(
        formatAccessLog({
          remoteAddr: stripV4Mapped(s.remoteAddress),
          remoteUser: '',
          timeLocal: timeLocalNow(),
          request: '',
          status,
          bodyBytesSent: Buffer.byteLength(body),
          referer: '',
          userAgent: '',
          requestLength: 0,
          requestTime: '0.000',
          upstreamName: '',
          alternativeUpstreamName: '',
          upstreamAddr: '',
          upstreamResponseLength: '',
          upstreamResponseTime: '',
          upstreamStatus: '',
          requestId: newRequestId(),
        }),
      );
    }
  }

  // -------------------------------------------------------------------------------------
  // Access log

  private requestLength(req: IncomingMessage, url: string): number {
    let n = (req.method?.length ?? 0) + url.length + 13; // "M U HTTP/1.1\r\n"
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) n += raw[i]!.length + raw[i + 1]!.length + 4;
    const cl = req.headers['content-length'];
    return n + 2 + (cl !== undefined ? Number(cl) || 0 : 0);
  }

  private logRaw(req: Req, status: number, bytes: number, ctx: RequestContext): void {
    if (!this.options.accessLog) return;
    ctx.bodyBytes = bytes;
    this.writeLog(req, status, ctx);
  }

  private logAccess(req: Req, res: ServerResponse, ctx: RequestContext): void {
    if (!this.options.accessLog) return;
    this.writeLog(req, res.writableFinished ? res.statusCode : 499, ctx);
  }

  private writeLog(req: Req, status: number, ctx: RequestContext): void {
    const ua = req.headers['user-agent'];
    const ref = req.headers.referer;
    this.options.accessLog!.info(
      formatAccessLog({
        remoteAddr: stripV4Mapped(req.socket.remoteAddress),
        remoteUser: '',
        timeLocal: timeLocalNow(),
        request: `${req.method} ${ctx.originalUrl} HTTP/${req.httpVersion}`,
        status,
        bodyBytesSent: ctx.bodyBytes,
        referer: ref ?? '',
        userAgent: ua ?? '',
        requestLength: this.requestLength(req, ctx.originalUrl),
        requestTime: seconds(performance.now() - ctx.start),
        upstreamName: ctx.upstreamName,
        alternativeUpstreamName: '',
        upstreamAddr: ctx.upstreamAddr,
        upstreamResponseLength: ctx.upstreamLength,
        upstreamResponseTime: ctx.upstreamTime,
        upstreamStatus: ctx.upstreamStatus,
        requestId: ctx.requestId,
      }),
    );
  }
}
