/**
 * The HTTP(S) proxy: the data path of kubewire's ingress controller. Each request is
 * routed with the compiled table (routes.ts), goes through the location's annotations in
 * the order nginx runs them, and is proxied to one ready endpoint of the backend Service
 * (pod IP:targetPort), round robin, over keep-alive HTTP/1.1. Both sides are driven by
 * Node's llhttp parser directly: server.ts for the clients, upstream.ts for the pooled
 * upstream connections. WebSocket upgrades are tunnelled once the head is sent.
 *
 * Per request, in order (nginx phases: find-config, rewrite, access, content):
 *   400 bad target · server by Host · location by $uri (404 when none) · 413 body size ·
 *   CORS preflight 204 · permanent/temporal redirect · app-root 302 · rewrite to an
 *   absolute URL (302) · ssl-redirect 308 · whitelist 403 · default backend 404 ·
 *   no endpoints 503 · proxy (502 refused, 504 timeout).
 *
 * The hot path reads the request's headers once from the raw `[name, value, …]` array,
 * writes the upstream request head as one string, writes the response head with the first
 * piece of body, and arms no timer of its own.
 */
import { createHash } from 'node:crypto';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import { cidrContains, parseIPv4 } from '../cluster/index.js';
import { preformattedInfo, type Logger } from '../util/log.js';
import {
  formatAccessLog,
  formatAccessLogJson,
  newRequestId,
  seconds,
  timeLocalNow,
  type AccessLogEntry,
} from './access-log.js';
import { defaultTls, type TlsCertificate } from './certs.js';
import {
  clientResponseHeaders,
  connectionLines,
  scanRequestHeaders,
  type ConnectionLines,
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
import {
  HttpServer,
  ServerExchange,
  type ClientConnection,
  type RequestHead,
  type ServerHandler,
} from './server.js';
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

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const HOST_OK = /^[a-z0-9._-]*$/;

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

/** One request: its routing, its upstream side and what the access log prints of it. */
class Exchange extends ServerExchange implements UpstreamExchange {
  /** When the request head was in (for $request_time). */
  readonly startedAt = performance.now();
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
  // The upstream side of a proxied request.
  upstream: Upstream | null = null;
  endpoint: Endpoint | null = null;
  request: UpstreamRequest | null = null;
  upstreamConn: UpstreamConnection | null = null;
  /** No request body (so the request may be sent again). */
  bodiless = true;
  /** The upstream gave no Content-Length: count the body. */
  countBody = false;
  /** The access log line is written (or not wanted). */
  logged = false;

  constructor(
    readonly proxy: IngressProxy,
    conn: ClientConnection,
    head: RequestHead,
  ) {
    super(conn, head);
    this.method = head.method;
    this.originalUrl = head.url;
    const h = scanRequestHeaders(head.rawHeaders);
    this.h = h;
    this.requestId = h.requestId !== undefined && h.requestId !== '' ? h.requestId : newRequestId();
  }

  // ServerExchange: the client side

  start(): void {
    this.proxy.handle(this);
  }

  onBody(chunk: Buffer): boolean {
    const c = this.upstreamConn;
    if (c === null || this.bodiless) return true; // answered already: the body is dropped
    return c.writeBody(chunk, this.request!.chunked);
  }

  onEnd(): void {
    const c = this.upstreamConn;
    if (c !== null && !this.bodiless) c.endBody(this.request!.chunked);
  }

  onDrain(): void {
    this.upstreamConn?.resume();
  }

  onAbort(): void {
    if (this.upstreamConn !== null) {
      this.upstreamConn.destroy();
      this.upstreamConn = null;
    }
    this.proxy.logAccess(this, 499);
  }

  onFinish(): void {
    this.proxy.logAccess(this, this.status);
  }

  /** The status of the response written (for the log). */
  status = 0;

  // UpstreamExchange: the upstream side

  onUpstreamHead(status: number, reason: string, raw: string[]): void {
    this.proxy.upstreamHead(this, status, reason, raw);
  }

  onUpstreamBody(chunk: Buffer): void {
    if (this.countBody) this.bodyBytes += chunk.length;
    if (!this.write(chunk)) this.upstreamConn!.pause();
  }

  onUpstreamEnd(last: Buffer | null): void {
    this.upstreamConn = null;
    if (this.countBody) {
      if (last !== null) this.bodyBytes += last.length;
      this.upstreamLength = appendList(this.upstreamLength, String(this.bodyBytes));
    }
    this.end(last);
  }

  onUpstreamError(err: NodeJS.ErrnoException, timedOut: boolean, stale: boolean): void {
    this.upstreamConn = null;
    this.proxy.upstreamError(this, err, timedOut, stale);
  }

  onUpstreamDrain(): void {
    this.conn.resumeReading();
  }
}

/** The connection's proxy_set_header lines (made on its first proxied request). */
function linesOf(conn: ClientConnection): ConnectionLines {
  return ((conn.context as ConnectionLines | null) ??= connectionLines(
    conn.remoteAddress,
    conn.localPort,
    conn.scheme,
  ));
}

const appendList = (list: string, v: string): string => (list === '' ? v : `${list}, ${v}`);

export class IngressProxy implements ServerHandler {
  private config: IngressConfig;
  private readonly pool: UpstreamPool;
  private readonly contexts = new WeakMap<TlsCertificate, SecureContext>();
  private defaultContext: SecureContext | null = null;
  private readonly servers: HttpServer[] = [];
  private readonly upgraded = new Set<Socket>();
  private readonly opts: Required<Omit<ProxyOptions, 'accessLog' | 'log'>>;
  private httpsPort = 443;
  /** The access log's lines written without pino serializing them again (null: use info). */
  private readonly fastLog: ((jsonMsg: string) => void) | null;
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
    this.fastLog = options.accessLog ? preformattedInfo(options.accessLog) : null;
    this.pool = new UpstreamPool({
      maxIdle: this.opts.upstreamKeepAlive,
      idleTimeoutMs: this.opts.upstreamKeepAliveTimeoutMs,
    });
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
    const server = new HttpServer(this, this.opts, 'http');
    this.servers.push(server);
    return server.listen(port, host);
  }

  async listenHttps(host: string, port: number): Promise<AddressInfo> {
    const fake = defaultTls();
    const server = new HttpServer(this, this.opts, 'https', {
      cert: fake.cert,
      key: fake.key,
      SNICallback: (servername, cb) => cb(null, this.secureContextFor(servername)),
    });
    this.servers.push(server);
    const addr = await server.listen(port, host);
    this.httpsPort = addr.port;
    return addr;
  }

  /**
   * Stops listening. Open connections finish their requests and are closed when idle;
   * after `graceMs` every connection (WebSockets included) is closed.
   */
  async close(graceMs = 1000): Promise<void> {
    const timer = setTimeout(() => {
      for (const u of this.upgraded) u.destroy();
    }, graceMs);
    await Promise.all(this.servers.map((s) => s.close(graceMs)));
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

  /** ServerHandler: a new request. */
  request(conn: ClientConnection, head: RequestHead): ServerExchange {
    return new Exchange(this, conn, head);
  }

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

  handle(ex: Exchange): void {
    const h = ex.h;
    const scheme = ex.conn.scheme;
    // node:http's checks before a request is handed over: Expect, Host (HTTP/1.1).
    if (h.expect !== undefined && ex.head.versionMinor >= 1) {
      if (h.expect.toLowerCase() !== '100-continue') return this.respond(ex, 417);
      ex.writeContinue();
    }
    if (h.host === undefined && ex.head.versionMinor >= 1) return this.respond(ex, 400);
    const r = this.route(ex);
    if (typeof r === 'number') return this.respond(ex, r);
    const { server, location: loc, uri } = r;
    ex.location = loc;
    const s = loc.settings;

    // find-config: client_max_body_size
    if (s.proxyBodySize > 0) {
      const cl = h.contentLength;
      if (cl !== undefined && Number(cl) > s.proxyBodySize) {
        ex.keepAlive = false;
        return this.respond(ex, 413);
      }
    }
    // rewrite phase (ngx_http_rewrite_module directives in template order, then Lua)
    if (s.cors) {
      const ok = originAllowed(s.cors.allowOrigin, h.origin);
      if (ok) {
        const cors = this.corsHeaders(s.cors, h.origin);
        if (ex.method === 'OPTIONS') {
          const out: string[] = [];
          for (const [k, v] of cors) out.push(k, v);
          out.push('content-type', 'text/plain charset=UTF-8', 'content-length', '0');
          ex.status = 204;
          ex.writeHead(204, 'No Content', out, true);
          ex.end();
          return;
        }
        ex.addHeaders = cors;
      }
    }
    if (s.redirect) return this.redirect(ex, s.redirect.code, s.redirect.url);
    if (s.appRoot !== null && uri === '/') {
      return this.redirect(ex, 302, `${scheme}://${h.host ?? ''}${s.appRoot}`);
    }
    let newUri: string | null = null;
    let newArgs = r.args;
    if (loc.rewrite) {
      const m = loc.rewrite.regex.exec(uri);
      if (m) {
        const out = expandTemplate(loc.rewrite.parts, m, (v) => this.variable(v, ex, uri, r.args));
        if (loc.rewrite.redirect) return this.redirect(ex, 302, out);
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
      return this.redirect(ex, 308, `https://${host}${port}${requestUri}`);
    }
    // access phase
    if (s.whitelist) {
      const addr = parseIPv4(ex.conn.remoteAddress);
      if (addr === null || !s.whitelist.some((c) => cidrContains(c, addr)))
        return this.respond(ex, 403);
    }
    // content: proxy_pass
    const upstream = loc.upstream;
    if (upstream === null) {
      ex.upstreamName = DEFAULT_UPSTREAM;
      return this.respond(ex, 404);
    }
    ex.upstreamName = upstream.name;
    ex.upstream = upstream;
    const endpoint = this.pickEndpoint(upstream, loc, ex);
    if (endpoint === null) return this.respond(ex, 503);
    const chunked = h.transferEncoding !== undefined;
    ex.bodiless = !chunked && (h.contentLength === undefined || Number(h.contentLength) === 0);
    ex.request = {
      method: ex.method,
      url: this.upstreamUrl(ex, newUri, newArgs),
      host: s.upstreamVhost ?? h.host ?? null,
      requestId: ex.requestId,
      forwardedHost: h.host ?? '',
      lines: linesOf(ex.conn),
      prefix: newUri !== null ? s.xForwardedPrefix : null,
      chunked,
    };
    this.forward(ex, endpoint, false);
  }

  /** The path upstream: the rewritten URI (escaped) and arguments, or the target as received. */
  private upstreamUrl(ex: Exchange, newUri: string | null, newArgs: string): string {
    if (newUri !== null) return escapeUri(newUri) + (newArgs !== '' ? `?${newArgs}` : '');
    if (ex.originalUrl.charCodeAt(0) === 47) return ex.originalUrl;
    const t = /^https?:\/\/[^/?#]*(.*)$/i.exec(ex.originalUrl);
    return t && t[1] !== '' ? (t[1]!.startsWith('/') ? t[1]! : `/${t[1]}`) : '/';
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
    ex.upstreamConn = conn;
    conn.send(
      ex,
      upstreamRequestHead(ex.request!, ex.h, e),
      !ex.bodiless,
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
    ex.status = status;
    ex.writeHead(status, reason, head.headers, cl !== undefined);
  }

  upstreamError(ex: Exchange, err: NodeJS.ErrnoException, timedOut: boolean, stale: boolean): void {
    if (ex.finished) return;
    const retryable = ex.bodiless && IDEMPOTENT.has(ex.method) && !ex.headersSent;
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
    if (ex.headersSent) {
      // The response is under way: all the client can be told is that it is cut short.
      ex.conn.socket.destroy();
      return;
    }
    this.respond(ex, status);
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
    if (aff.secure || ex.conn.scheme === 'https') cookie += '; Secure';
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
    switch (name) {
      case 'scheme':
        return ex.conn.scheme;
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
        return ex.conn.localPort;
      case 'remote_addr':
        return ex.conn.remoteAddress;
      default:
        return '';
    }
  }

  /** nginx's error page (or an empty redirect body's page) for a status. */
  private respond(ex: Exchange, status: number, location?: string): void {
    const body = errorPage(status);
    ex.bodyBytes = Buffer.byteLength(body);
    ex.status = status;
    // nginx turns keep-alive off after a request it could not parse or route (400).
    if (status === 400) ex.keepAlive = false;
    const headers = ['Content-Type', 'text/html', 'Content-Length', String(ex.bodyBytes)];
    headers.push('Server', 'nginx');
    if (location !== undefined) headers.unshift('Location', location);
    ex.send(status, headers, body);
  }

  private redirect(ex: Exchange, status: number, location: string): void {
    this.respond(ex, status, location);
  }

  // -------------------------------------------------------------------------------------
  // WebSocket: the head goes upstream, then the bytes both ways

  /** ServerHandler: an upgrade request; the socket is ours. */
  upgrade(conn: ClientConnection, head: RequestHead, bodyHead: Buffer): void {
    const ex = new Exchange(this, conn, head);
    const socket = conn.takeSocket();
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
    const scheme = conn.scheme;
    if (scheme === 'http' && (s.forceSslRedirect || (s.sslRedirect && r.server.tls !== null)))
      return fail(308);
    if (s.whitelist) {
      const addr = parseIPv4(conn.remoteAddress);
      if (addr === null || !s.whitelist.some((c) => cidrContains(c, addr))) return fail(403);
    }
    if (loc.upstream === null) return fail(404);
    ex.upstreamName = loc.upstream.name;
    const e = nextEndpoint(loc.upstream);
    if (e === null) return fail(503);
    let url = ex.originalUrl;
    if (loc.rewrite) {
      const m = loc.rewrite.regex.exec(r.uri);
      if (m) {
        const out = expandTemplate(loc.rewrite.parts, m, (v) =>
          this.variable(v, ex, r.uri, r.args),
        );
        url = escapeUri(out) + (r.args !== '' && !out.includes('?') ? `?${r.args}` : '');
      }
    }
    ex.upstreamAddr = `${e.ip}:${e.port}`;
    const upHead = upstreamRequestHead(
      {
        method: ex.method,
        url,
        host: s.upstreamVhost ?? ex.h.host ?? null,
        requestId: ex.requestId,
        forwardedHost: ex.h.host ?? '',
        lines: linesOf(conn),
        prefix: loc.rewrite !== null ? s.xForwardedPrefix : null,
        chunked: false,
      },
      ex.h,
      e,
    );
    const up =
      s.backendProtocol === 'HTTPS'
        ? tlsConnect({ host: e.ip, port: e.port, rejectUnauthorized: false })
        : netConnect({ host: e.ip, port: e.port });
    up.setNoDelay(true);
    // proxy_connect_timeout, then proxy_read_timeout (nginx closes idle WebSockets too).
    up.setTimeout(s.proxyConnectTimeout * 1000);
    up.once(s.backendProtocol === 'HTTPS' ? 'secureConnect' : 'connect', () =>
      up.setTimeout(s.proxyReadTimeout * 1000),
    );
    let answered = false;
    // The status the upstream answered with, for the access log (101 when it switched).
    let upstreamStatus = 101;
    up.once('data', (d: Buffer) => {
      answered = true;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(d.toString('latin1', 0, Math.min(d.length, 16)));
      if (m) upstreamStatus = Number(m[1]);
    });
    up.on('timeout', () =>
      up.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
    );
    up.on('error', (err: NodeJS.ErrnoException) => {
      this.options.log?.warn(
        { err: err.message, code: err.code, upstream: ex.upstreamName },
        'websocket upstream error',
      );
      if (!answered && !ex.logged && socket.writable) fail(502);
      else socket.destroy();
    });
    up.write(upHead, 'latin1');
    if (bodyHead.length > 0) up.write(bodyHead);
    up.pipe(socket);
    socket.pipe(up);
    socket.once('close', () => {
      up.destroy();
      if (!ex.logged) {
        ex.bodyBytes = 0;
        this.logAccess(ex, upstreamStatus);
      }
    });
  }

  /** ServerHandler: a request that could not be parsed, or not in time. */
  clientError(conn: ClientConnection, status: number): void {
    const body = errorPage(status);
    conn.sendRaw(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nServer: nginx\r\nDate: ${new Date().toUTCString()}\r\nContent-Type: text/html\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    if (this.options.accessLog) {
      this.options.accessLog.info(
        formatAccessLog({
          remoteAddr: conn.remoteAddress,
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
    if (ex.logged) return;
    ex.logged = true;
    const log = this.options.accessLog;
    if (!log) return;
    const head = ex.head;
    const entry: AccessLogEntry = {
      remoteAddr: ex.conn.remoteAddress,
      remoteUser: '',
      timeLocal: timeLocalNow(),
      request: `${ex.method} ${ex.originalUrl} HTTP/${head.versionMajor}.${head.versionMinor}`,
      status,
      bodyBytesSent: ex.bodyBytes,
      referer: ex.h.referer ?? '',
      userAgent: ex.h.userAgent ?? '',
      requestLength: this.requestLength(ex),
      requestTime: seconds(performance.now() - ex.startedAt),
      upstreamName: ex.upstreamName,
      alternativeUpstreamName: '',
      upstreamAddr: ex.upstreamAddr,
      upstreamResponseLength: ex.upstreamLength,
      upstreamResponseTime: ex.upstreamTime,
      upstreamStatus: ex.upstreamStatus,
      requestId: ex.requestId,
    };
    if (this.fastLog !== null) this.fastLog(formatAccessLogJson(entry));
    else log.info(formatAccessLog(entry));
  }
}
