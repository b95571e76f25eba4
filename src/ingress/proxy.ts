/**
 * The HTTP(S) proxy: the data path of kubewire's ingress controller. Each request is
 * routed with the compiled table (routes.ts), goes through the location's annotations in
 * the order nginx runs them, and is proxied to one ready endpoint of the backend Service
 * (pod IP:targetPort), round robin, over keep-alive HTTP/1.1 (upstream.ts: pooled
 * connections driven by Node's llhttp parser directly). WebSocket upgrades go through
 * http-proxy-3.
 *
 * Per request, in order (nginx phases: find-config, rewrite, access, content):
 *   400 bad target · server by Host · location by $uri (404 when none) · 413 body size ·
 *   CORS preflight 204 · permanent/temporal redirect · app-root 302 · rewrite to an
 *   absolute URL (302) · ssl-redirect 308 · whitelist 403 · default backend 404 ·
 *   no endpoints 503 · proxy (502 refused, 504 timeout).
 *
 * The hot path reads the request's headers once from `req.rawHeaders` (never building
 * `req.headers`), writes the upstream request head as one string, hands the response
 * headers to `res.writeHead` as a flat array, and arms no timer of its own.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
  type ClientRequest,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createHash } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Socket, AddressInfo } from 'node:net';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import { cidrContains, parseIPv4 } from '../cluster/index.js';
import type { Logger } from '../util/log.js';
import { formatAccessLog, newRequestId, seconds, timeLocalNow } from './access-log.js';
import { defaultTls, type TlsCertificate } from './certs.js';
import {
  clientResponseHeaders,
  scanRequestHeaders,
  upstreamRequestHead,
  type RequestHeaders,
  type UpstreamRequest,
} from './headers.js';
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
import { UpstreamPool, type UpstreamConnection, type UpstreamExchange } from './upstream.js';
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
  /** Idle upstream connections close after this (upstream-keepalive-timeout), 60 s. */
  upstreamKeepAliveTimeoutMs?: number;
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

const kExchange = Symbol('kubewire.ingress.exchange');

type Req = IncomingMessage & { [kExchange]?: Exchange };
type Res = ServerResponse & { [kExchange]?: Exchange };

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

/** One request from the client's to the access log's point of view (nginx's `$` variables). */
class Exchange implements UpstreamExchange {
  readonly start = performance.now();
  readonly method: string;
  /** The request target as received (for the log's "$request"). */
  readonly originalUrl: string;
  readonly h: RequestHeaders;
  readonly requestId: string;
  upstreamName = '';
  upstreamAddr = '';
  upstreamStatus = '';
  upstreamTime = '';
  upstreamLength = '';
  upstreamStart = 0;
  bodyBytes = 0;
  location: Location | null = null;
  /** Response headers to add (CORS, affinity cookie). */
  addHeaders: [string, string][] | null = null;
  attempts = 0;
  /** The WebSocket path's timeout (http-proxy-3). */
  timedOut = false;
  // The upstream side of a proxied request.
  upstream: Upstream | null = null;
  endpoint: Endpoint | null = null;
  request: UpstreamRequest | null = null;
  conn: UpstreamConnection | null = null;
  /** No request body (so the request may be sent again). */
  bodiless = true;
  /** The upstream gave no Content-Length: count the body. */
  countBody = false;

  constructor(
    readonly proxy: IngressProxy,
    readonly req: IncomingMessage,
    readonly res: ServerResponse | null,
    readonly scheme: 'http' | 'https',
  ) {
    this.method = req.method ?? 'GET';
    this.originalUrl = req.url ?? '';
    const h = scanRequestHeaders(req.rawHeaders);
    this.h = h;
    this.requestId = h.requestId !== undefined && h.requestId !== '' ? h.requestId : newRequestId();
  }

  onUpstreamHead(status: number, reason: string, raw: string[]): void {
    this.proxy.upstreamHead(this, status, reason, raw);
  }

  onUpstreamBody(chunk: Buffer): void {
    if (this.countBody) this.bodyBytes += chunk.length;
    const res = this.res!;
    if (!res.write(chunk)) {
      const c = this.conn!;
      c.pause();
      res.once('drain', () => c.resume());
    }
  }

  onUpstreamEnd(last: Buffer | null): void {
    this.conn = null;
    if (this.countBody) {
      if (last !== null) this.bodyBytes += last.length;
      this.upstreamLength = appendList(this.upstreamLength, String(this.bodyBytes));
    }
    if (last !== null) this.res!.end(last);
    else this.res!.end();
  }

  onUpstreamError(err: NodeJS.ErrnoException, timedOut: boolean, stale: boolean): void {
    this.conn = null;
    this.proxy.upstreamError(this, err, timedOut, stale);
  }
}

const appendList = (list: string, v: string): string => (list === '' ? v : `${list}, ${v}`);

/** res 'close': the access log line; a client gone mid-response drops its upstream. */
function onResponseClose(this: Res): void {
  const ex = this[kExchange];
  if (ex === undefined) return;
  if (ex.conn !== null) {
    ex.conn.destroy();
    ex.conn = null;
  }
  ex.proxy.logAccess(ex, this.writableFinished ? this.statusCode : 499);
}

export class IngressProxy {
  private config: IngressConfig;
  /** WebSocket upgrades only. */
  private readonly wsProxy: ProxyServer;
  private readonly pool: UpstreamPool;
  private readonly contexts = new WeakMap<TlsCertificate, SecureContext>();
  private defaultContext: SecureContext | null = null;
  private readonly servers: (HttpServer | HttpsServer)[] = [];
  private readonly upgraded = new Set<Duplex>();
  private readonly opts: Required<Omit<ProxyOptions, 'accessLog' | 'log'>>;
  private httpsPort = 443;
  /** Host header as received → server (null: invalid, 400); emptied on a reload. */
  private readonly hostCache = new Map<string, Server | null>();

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
      upstreamKeepAliveTimeoutMs: options.upstreamKeepAliveTimeoutMs ?? 60_000,
    };
    this.pool = new UpstreamPool({
      maxIdle: this.opts.upstreamKeepAlive,
      idleTimeoutMs: this.opts.upstreamKeepAliveTimeoutMs,
    });
    this.wsProxy = createProxyServer({ xfwd: false, toProxy: true, ws: true });
    this.wsProxy.on('proxyReqWs', (proxyReq, req) => this.onProxyReqWs(proxyReq, req as Req));
    this.wsProxy.on('error', (err, req, res) =>
      this.onProxyError(err as NodeJS.ErrnoException, req as Req, res),
    );
  }

  /** Swaps the routing table; requests in flight finish with the one they started with. */
  setConfig(config: IngressConfig): void {
    this.config = config;
    this.hostCache.clear();
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
    return this.listen(server, 'http', host, port);
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
    const addr = await this.listen(server, 'https', host, port);
    this.httpsPort = addr.port;
    return addr;
  }

  /** How often Node checks the header and request timeouts of open connections. */
  private checkInterval(): number {
    return Math.max(50, Math.min(1000, Math.floor(this.opts.headersTimeoutMs / 4)));
  }

  private listen(
    server: HttpServer | HttpsServer,
    scheme: 'http' | 'https',
    host: string,
    port: number,
  ): Promise<AddressInfo> {
    server.on('request', (req: IncomingMessage, res: ServerResponse) =>
      this.handle(req, res, scheme),
    );
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.handleUpgrade(req, socket, head, scheme),
    );
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
    this.pool.destroy();
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

  /** The server for a Host header as received (cached per value); null: invalid. */
  private serverFor(hostHeader: string): Server | null {
    let server = this.hostCache.get(hostHeader);
    if (server === undefined) {
      const host = hostName(hostHeader);
      server = host === null ? null : findServer(this.config, host);
      if (this.hostCache.size >= 1024) this.hostCache.clear();
      this.hostCache.set(hostHeader, server);
    }
    return server;
  }

  /** Routes a request: the server and location, or an early status. */
  private route(
    ex: Exchange,
  ): { server: Server; location: Location; uri: string; args: string } | number {
    const target = parseTarget(ex.originalUrl || '/');
    if (target === null) return 400;
    let server: Server | null;
    if (target.host === null) server = this.serverFor(ex.h.host ?? '');
    else {
      // absolute-form target: its host wins over the Host header
      const host = hostName(target.host);
      server = host === null ? null : findServer(this.config, host);
    }
    if (server === null) return 400;
    const location = findLocation(server, target.uri);
    if (location === null) return 404;
    return { server, location, uri: target.uri, args: target.args };
  }

  handle(req: IncomingMessage, res: Res, scheme: 'http' | 'https'): void {
    const ex = new Exchange(this, req, res, scheme);
    res[kExchange] = ex;
    res.once('close', onResponseClose);
    const r = this.route(ex);
    if (typeof r === 'number') return this.respond(res, ex, r);
    const { server, location: loc, uri } = r;
    ex.location = loc;
    const s = loc.settings;
    const h = ex.h;

    // find-config: client_max_body_size
    if (s.proxyBodySize > 0) {
      const cl = h.contentLength;
      if (cl !== undefined && Number(cl) > s.proxyBodySize) {
        res.setHeader('connection', 'close');
        return this.respond(res, ex, 413);
      }
    }
    // rewrite phase (ngx_http_rewrite_module directives in template order, then Lua)
    if (s.cors) {
      const ok = originAllowed(s.cors.allowOrigin, h.origin);
      if (ok) {
        const cors = this.corsHeaders(s.cors, h.origin);
        if (ex.method === 'OPTIONS') {
          for (const [k, v] of cors) res.setHeader(k, v);
          res.setHeader('content-type', 'text/plain charset=UTF-8');
          res.setHeader('content-length', '0');
          res.statusCode = 204;
          res.end();
          return;
        }
        ex.addHeaders = cors;
      }
    }
    if (s.redirect) return this.redirect(res, ex, s.redirect.code, s.redirect.url);
    if (s.appRoot !== null && uri === '/') {
      return this.redirect(res, ex, 302, `${scheme}://${h.host ?? ''}${s.appRoot}`);
    }
    let newUri: string | null = null;
    let newArgs = r.args;
    if (loc.rewrite) {
      const m = loc.rewrite.regex.exec(uri);
      if (m) {
        const out = expandTemplate(loc.rewrite.parts, m, (v) => this.variable(v, ex, uri, r.args));
        if (loc.rewrite.redirect) return this.redirect(res, ex, 302, out);
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
      let requestUri = ex.originalUrl || '/';
      if (!s.preserveTrailingSlash && requestUri.endsWith('/'))
        requestUri = requestUri.slice(0, -1);
      const host = hostName(h.host ?? '') ?? '';
      const port = s.usePortInRedirects && this.httpsPort !== 443 ? `:${this.httpsPort}` : '';
      return this.redirect(res, ex, 308, `https://${host}${port}${requestUri}`);
    }
    // access phase
    if (s.whitelist) {
      const addr = parseIPv4(stripV4Mapped(req.socket.remoteAddress));
      if (addr === null || !s.whitelist.some((c) => cidrContains(c, addr)))
        return this.respond(res, ex, 403);
    }
    // content: proxy_pass
    const upstream = loc.upstream;
    if (upstream === null) {
      ex.upstreamName = DEFAULT_UPSTREAM;
      return this.respond(res, ex, 404);
    }
    ex.upstreamName = upstream.name;
    ex.upstream = upstream;
    const endpoint = this.pickEndpoint(upstream, loc, ex);
    if (endpoint === null) return this.respond(res, ex, 503);
    let url: string;
    if (newUri !== null) url = escapeUri(newUri) + (newArgs !== '' ? `?${newArgs}` : '');
    else if (ex.originalUrl.charCodeAt(0) !== 47) {
      const t = /^https?:\/\/[^/?#]*(.*)$/i.exec(ex.originalUrl);
      url = t && t[1] !== '' ? (t[1]!.startsWith('/') ? t[1]! : `/${t[1]}`) : '/';
    } else url = ex.originalUrl;
    const chunked = h.transferEncoding !== undefined;
    ex.bodiless = !chunked && (h.contentLength === undefined || Number(h.contentLength) === 0);
    ex.request = {
      method: ex.method,
      url,
      host: s.upstreamVhost ?? h.host ?? null,
      requestId: ex.requestId,
      remoteAddr: stripV4Mapped(req.socket.remoteAddress),
      forwardedHost: h.host ?? '',
      serverPort: String(req.socket.localPort ?? ''),
      scheme,
      prefix: newUri !== null ? s.xForwardedPrefix : null,
      chunked,
    };
    this.forward(ex, endpoint, false);
  }

  /** Sends the request to an endpoint; `again`: on a new connection after a stale one. */
  private forward(ex: Exchange, e: Endpoint, again: boolean): void {
    const s = ex.location!.settings;
    if (!again) {
      ex.attempts++;
      ex.upstreamAddr = appendList(ex.upstreamAddr, `${e.ip}:${e.port}`);
      ex.upstreamStart = performance.now();
    }
    ex.endpoint = e;
    const conn = this.pool.acquire(
      e,
      s.backendProtocol === 'HTTPS',
      s.proxyConnectTimeout * 1000,
      again,
    );
    ex.conn = conn;
    const body = ex.bodiless ? null : ex.req;
    conn.send(
      ex,
      upstreamRequestHead(ex.request!, ex.h, e),
      body,
      ex.request!.chunked,
      s.proxyReadTimeout * 1000,
    );
  }

  /** The upstream's status line and headers: the client's response starts. */
  upstreamHead(ex: Exchange, status: number, reason: string, raw: string[]): void {
    ex.upstreamStatus = appendList(ex.upstreamStatus, String(status));
    ex.upstreamTime = appendList(ex.upstreamTime, seconds(performance.now() - ex.upstreamStart));
    const head = clientResponseHeaders(raw, ex.addHeaders);
    const cl = head.contentLength;
    if (cl !== undefined) {
      ex.bodyBytes = Number(cl);
      ex.upstreamLength = appendList(ex.upstreamLength, cl);
    } else ex.countBody = true;
    const res = ex.res!;
    if (res.destroyed) return;
    try {
      res.writeHead(status, reason, head.headers);
    } catch (err) {
      // A header Node refuses to send (it would be refused by nginx as well): 502.
      ex.conn?.destroy();
      ex.conn = null;
      this.options.log?.warn(
        { err: (err as Error).message, upstream: ex.upstreamName },
        'invalid upstream response',
      );
      if (!res.headersSent) this.respond(res, ex, 502);
      else res.destroy();
    }
  }

  upstreamError(ex: Exchange, err: NodeJS.ErrnoException, timedOut: boolean, stale: boolean): void {
    const res = ex.res!;
    if (res.destroyed) return;
    const retryable = ex.bodiless && IDEMPOTENT.has(ex.method) && !res.headersSent;
    // A keep-alive connection the upstream closed while idle: once more on a new one.
    if (stale && retryable) return this.forward(ex, ex.endpoint!, true);
    const status = timedOut ? 504 : 502;
    this.addUpstreamResult(ex, status === 504 ? '504' : '502');
    // proxy_next_upstream error timeout (tries ≤ 3), only for requests without a body.
    const upstream = ex.upstream!;
    if (
      retryable &&
      !timedOut &&
      err.code === 'ECONNREFUSED' &&
      ex.attempts < Math.min(3, upstream.endpoints.length)
    ) {
      const next = nextEndpoint(upstream);
      if (next) return this.forward(ex, next, false);
    }
    this.options.log?.warn(
      { err: err.message, code: err.code, upstream: upstream.name, addr: ex.upstreamAddr },
      'upstream error',
    );
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.respond(res, ex, status);
  }

  private addUpstreamResult(ex: Exchange, status: string): void {
    ex.upstreamStatus = appendList(ex.upstreamStatus, status);
    ex.upstreamTime = appendList(ex.upstreamTime, seconds(performance.now() - ex.upstreamStart));
    ex.upstreamLength = appendList(ex.upstreamLength, '0');
  }

  private pickEndpoint(u: Upstream, loc: Location, ex: Exchange): Endpoint | null {
    const aff = loc.settings.affinity;
    if (aff === null || u.endpoints.length === 0) return nextEndpoint(u);
    const want = cookieValue(ex.h.cookie, aff.cookieName);
    if (want !== null) {
      const e = u.endpoints.find((x) => stickyKey(x) === want);
      if (e) return e;
    }
    const e = nextEndpoint(u)!;
    let cookie = `${aff.cookieName}=${stickyKey(e)}; Path=${aff.path ?? loc.path}; HttpOnly`;
    if (aff.expires !== null)
      cookie += `; Expires=${new Date(Date.now() + aff.expires * 1000).toUTCString()}`;
    if (aff.maxAge !== null) cookie += `; Max-Age=${aff.maxAge}`;
    if (aff.secure || ex.scheme === 'https') cookie += '; Secure';
    if (aff.sameSite !== null) cookie += `; SameSite=${aff.sameSite}`;
    (ex.addHeaders ??= []).push(['set-cookie', cookie]);
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

  private variable(name: string, ex: Exchange, uri: string, args: string): string {
    const req = ex.req;
    switch (name) {
      case 'scheme':
        return ex.scheme;
      case 'host':
        return hostName(ex.h.host ?? '') ?? '';
      case 'http_host':
        return ex.h.host ?? '';
      case 'request_uri':
        return ex.originalUrl;
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

  private respond(res: ServerResponse, ex: Exchange, status: number): void {
    const body = errorPage(status);
    ex.bodyBytes = Buffer.byteLength(body);
    res.statusCode = status;
    // nginx turns keep-alive off after a request it could not parse or route (400).
    if (status === 400) res.shouldKeepAlive = false;
    res.setHeader('Content-Type', 'text/html');
    res.setHeader('Content-Length', ex.bodyBytes);
    res.setHeader('Server', 'nginx');
    res.end(body);
  }

  private redirect(res: ServerResponse, ex: Exchange, status: number, location: string): void {
    res.setHeader('Location', location);
    this.respond(res, ex, status);
  }

  // -------------------------------------------------------------------------------------
  // WebSocket (http-proxy-3) and malformed requests

  /** proxy_set_header as ingress-nginx's template sets them, on `req.headers` (WebSocket). */
  private setProxyHeaders(req: Req, loc: Location, ex: Exchange, rewritten: boolean): void {
    const h = req.headers;
    const remote = stripV4Mapped(req.socket.remoteAddress);
    const bestHost = h.host ?? '';
    const originalXff = h['x-forwarded-for'];
    if (loc.settings.upstreamVhost !== null) h.host = loc.settings.upstreamVhost;
    h['x-request-id'] = ex.requestId;
    h['x-real-ip'] = remote;
    h['x-forwarded-for'] = remote;
    h['x-forwarded-host'] = bestHost;
    h['x-forwarded-port'] = String(req.socket.localPort ?? '');
    h['x-forwarded-proto'] = ex.scheme;
    h['x-forwarded-scheme'] = ex.scheme;
    h['x-scheme'] = ex.scheme;
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

  private onProxyReqWs(proxyReq: ClientRequest, req: Req): void {
    const ex = req[kExchange];
    if (!ex || !ex.location) return;
    const s = ex.location.settings;
    const socket = proxyReq.socket as Socket | null;
    if (socket && socket.connecting) {
      const timer = setTimeout(() => {
        ex.timedOut = true;
        proxyReq.destroy();
      }, s.proxyConnectTimeout * 1000);
      socket.once('connect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    }
    proxyReq.setTimeout(s.proxyReadTimeout * 1000, () => {
      ex.timedOut = true;
      proxyReq.destroy();
    });
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

  private handleUpgrade(req: Req, socket: Duplex, head: Buffer, scheme: 'http' | 'https'): void {
    const ex = new Exchange(this, req, null, scheme);
    req[kExchange] = ex;
    socket.on('error', () => undefined);
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
    const fail = (status: number): void => {
      const body = errorPage(status);
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      ex.bodyBytes = Buffer.byteLength(body);
      this.logAccess(ex, status);
    };
    const r = this.route(ex);
    if (typeof r === 'number') return fail(r);
    const loc = r.location;
    ex.location = loc;
    const s = loc.settings;
    if (scheme === 'http' && (s.forceSslRedirect || (s.sslRedirect && r.server.tls !== null)))
      return fail(308);
    if (s.whitelist) {
      const addr = parseIPv4(stripV4Mapped(req.socket.remoteAddress));
      if (addr === null || !s.whitelist.some((c) => cidrContains(c, addr))) return fail(403);
    }
    if (loc.upstream === null) return fail(404);
    ex.upstreamName = loc.upstream.name;
    const e = nextEndpoint(loc.upstream);
    if (e === null) return fail(503);
    if (loc.rewrite) {
      const m = loc.rewrite.regex.exec(r.uri);
      if (m) {
        const out = expandTemplate(loc.rewrite.parts, m, (v) =>
          this.variable(v, ex, r.uri, r.args),
        );
        req.url = escapeUri(out) + (r.args !== '' && !out.includes('?') ? `?${r.args}` : '');
      }
    }
    ex.upstreamAddr = `${e.ip}:${e.port}`;
    this.setProxyHeaders(req, loc, ex, loc.rewrite !== null);
    const https = s.backendProtocol === 'HTTPS';
    this.wsProxy.ws(
      req,
      socket,
      head,
      { target: { protocol: https ? 'https:' : 'http:', host: e.ip, port: e.port }, secure: false },
      (err) => {
        this.options.log?.warn(
          { err: (err as Error).message, upstream: ex.upstreamName },
          'websocket upstream error',
        );
        if (socket.writable && !(socket as Socket).bytesWritten) fail(502);
        else socket.destroy();
      },
    );
    socket.once('close', () => {
      ex.bodyBytes = 0;
      this.logAccess(ex, 101);
    });
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

  /** `$request_length`: request line, header lines, empty line and body. */
  private requestLength(ex: Exchange): number {
    const cl = ex.h.contentLength;
    return (
      ex.method.length +
      ex.originalUrl.length +
      13 + // " " " HTTP/1.1\r\n"
      ex.h.bytes +
      2 +
      (cl !== undefined ? Number(cl) || 0 : 0)
    );
  }

  logAccess(ex: Exchange, status: number): void {
    const log = this.options.accessLog;
    if (!log) return;
    const req = ex.req;
    log.info(
      formatAccessLog({
        remoteAddr: stripV4Mapped(req.socket.remoteAddress),
        remoteUser: '',
        timeLocal: timeLocalNow(),
        request: `${ex.method} ${ex.originalUrl} HTTP/${req.httpVersion}`,
        status,
        bodyBytesSent: ex.bodyBytes,
        referer: ex.h.referer ?? '',
        userAgent: ex.h.userAgent ?? '',
        requestLength: this.requestLength(ex),
        requestTime: seconds(performance.now() - ex.start),
        upstreamName: ex.upstreamName,
        alternativeUpstreamName: '',
        upstreamAddr: ex.upstreamAddr,
        upstreamResponseLength: ex.upstreamLength,
        upstreamResponseTime: ex.upstreamTime,
        upstreamStatus: ex.upstreamStatus,
        requestId: ex.requestId,
      }),
    );
  }
}
