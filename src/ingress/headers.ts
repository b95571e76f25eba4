/**
 * Request and response headers on the proxy's hot path, read from and written to the raw
 * flat arrays `[name, value, name, value, …]` Node's parser gives (`req.rawHeaders`,
 * llhttp's response headers) — one pass each, no header object per message.
 *
 * Upstream, as ingress-nginx's template and ngx_http_proxy_module send it: the
 * `proxy_set_header` lines first (Host, X-Request-ID, X-Real-IP, X-Forwarded-*, X-Scheme),
 * then the client's own headers except those replaced, the hop-by-hop ones nginx clears
 * (Connection unless upgrading, Keep-Alive, Proxy, Proxy-Connection, TE, Expect) and the
 * body framing, which the proxy writes itself.
 */

/** What the proxy reads from a request's headers. */
export class RequestHeaders {
  /** First value (as Node's `req.headers` keeps it), or undefined. */
  host: string | undefined = undefined;
  userAgent: string | undefined = undefined;
  referer: string | undefined = undefined;
  contentLength: string | undefined = undefined;
  /** Repeated headers joined with ", " (cookie: "; "), as `req.headers`. */
  requestId: string | undefined = undefined;
  transferEncoding: string | undefined = undefined;
  xForwardedFor: string | undefined = undefined;
  xForwardedPrefix: string | undefined = undefined;
  origin: string | undefined = undefined;
  cookie: string | undefined = undefined;
  upgrade: string | undefined = undefined;
  connection: string | undefined = undefined;
  expect: string | undefined = undefined;
  /** The headers passed upstream unchanged, as `Name: value\r\n` lines in order. */
  passed = '';
  /** Bytes of the header lines (for `$request_length`): name + ": " + value + CRLF each. */
  bytes = 0;
}

const enum H {
  Pass,
  Drop,
  Host,
  UserAgent,
  Referer,
  ContentLength,
  RequestId,
  TransferEncoding,
  XForwardedFor,
  XForwardedPrefix,
  Origin,
  Cookie,
  Upgrade,
  Connection,
  Expect,
}

const REQUEST_HEADERS = new Map<string, H>([
  ['host', H.Host],
  ['user-agent', H.UserAgent],
  ['referer', H.Referer],
  ['content-length', H.ContentLength],
  ['x-request-id', H.RequestId],
  ['transfer-encoding', H.TransferEncoding],
  ['x-forwarded-for', H.XForwardedFor],
  ['x-forwarded-prefix', H.XForwardedPrefix],
  ['origin', H.Origin],
  ['cookie', H.Cookie],
  ['upgrade', H.Upgrade],
  ['connection', H.Connection],
  // replaced by proxy_set_header
  ['x-real-ip', H.Drop],
  ['x-forwarded-host', H.Drop],
  ['x-forwarded-port', H.Drop],
  ['x-forwarded-proto', H.Drop],
  ['x-forwarded-scheme', H.Drop],
  ['x-scheme', H.Drop],
  ['x-original-forwarded-for', H.Drop],
  // hop-by-hop, cleared by nginx
  ['proxy', H.Drop],
  ['proxy-connection', H.Drop],
  ['keep-alive', H.Drop],
  ['te', H.Drop],
  ['expect', H.Expect],
]);
// The spellings clients send, so most names need no toLowerCase.
for (const [k, v] of [...REQUEST_HEADERS]) {
  REQUEST_HEADERS.set(
    k.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase()),
    v,
  );
}
REQUEST_HEADERS.set('X-Request-ID', H.RequestId);
REQUEST_HEADERS.set('X-Real-IP', H.Drop);

function kind(map: Map<string, number>, name: string): number {
  const k = map.get(name);
  if (k !== undefined) return k;
  const lower = name.toLowerCase();
  return lower === name ? 0 : (map.get(lower) ?? 0);
}

const join = (have: string | undefined, v: string): string =>
  have === undefined ? v : `${have}, ${v}`;

/** One pass over `req.rawHeaders`. */
export function scanRequestHeaders(raw: readonly string[]): RequestHeaders {
  const r = new RequestHeaders();
  let passed = '';
  let bytes = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    bytes += name.length + value.length + 4;
    switch (kind(REQUEST_HEADERS, name) as H) {
      case H.Pass:
        passed += `${name}: ${value}\r\n`;
        break;
      case H.Drop:
        break;
      case H.Host:
        r.host ??= value;
        break;
      case H.UserAgent:
        r.userAgent ??= value;
        passed += `${name}: ${value}\r\n`;
        break;
      case H.Referer:
        r.referer ??= value;
        passed += `${name}: ${value}\r\n`;
        break;
      case H.ContentLength:
        r.contentLength ??= value;
        break;
      case H.RequestId:
        r.requestId = join(r.requestId, value);
        break;
      case H.TransferEncoding:
        r.transferEncoding = join(r.transferEncoding, value);
        break;
      case H.XForwardedFor:
        r.xForwardedFor = join(r.xForwardedFor, value);
        break;
      case H.XForwardedPrefix:
        r.xForwardedPrefix = join(r.xForwardedPrefix, value);
        break;
      case H.Origin:
        r.origin = join(r.origin, value);
        passed += `${name}: ${value}\r\n`;
        break;
      case H.Cookie:
        r.cookie = r.cookie === undefined ? value : `${r.cookie}; ${value}`;
        passed += `${name}: ${value}\r\n`;
        break;
      case H.Upgrade:
        r.upgrade = join(r.upgrade, value);
        passed += `${name}: ${value}\r\n`;
        break;
      case H.Connection:
        r.connection = join(r.connection, value);
        break;
      case H.Expect:
        r.expect = join(r.expect, value);
        break;
    }
  }
  r.passed = passed;
  r.bytes = bytes;
  return r;
}

/**
 * The proxy_set_header lines that depend only on the client connection, made once per
 * connection: `X-Real-IP` + `X-Forwarded-For`, and `X-Forwarded-Port` to `X-Scheme`.
 */
export interface ConnectionLines {
  addr: string;
  port: string;
}

export function connectionLines(
  remoteAddr: string,
  serverPort: string,
  scheme: string,
): ConnectionLines {
  return {
    addr: `X-Real-IP: ${remoteAddr}\r\nX-Forwarded-For: ${remoteAddr}\r\n`,
    port:
      `X-Forwarded-Port: ${serverPort}\r\nX-Forwarded-Proto: ${scheme}\r\n` +
      `X-Forwarded-Scheme: ${scheme}\r\nX-Scheme: ${scheme}\r\n`,
  };
}

export interface UpstreamRequest {
  method: string;
  /** The path (and arguments) sent upstream. */
  url: string;
  /** Host header upstream: as received, or upstream-vhost; null: `ip:port` of the endpoint. */
  host: string | null;
  requestId: string;
  /** `$http_host` as received ('' when none). */
  forwardedHost: string;
  /** The client connection's lines (connectionLines). */
  lines: ConnectionLines;
  /** X-Forwarded-Prefix to set (with a rewrite and the annotation), or null. */
  prefix: string | null;
  /** The request body is re-chunked upstream. */
  chunked: boolean;
}

/** The request head for the upstream (request line, headers, empty line). */
export function upstreamRequestHead(
  q: UpstreamRequest,
  h: RequestHeaders,
  endpoint: { ip: string; port: number },
): string {
  let head =
    `${q.method} ${q.url} HTTP/1.1\r\nHost: ${q.host ?? `${endpoint.ip}:${endpoint.port}`}\r\n` +
    `X-Request-ID: ${q.requestId}\r\n${q.lines.addr}X-Forwarded-Host: ${q.forwardedHost}\r\n${q.lines.port}`;
  if (h.xForwardedFor !== undefined && h.xForwardedFor !== '')
    head += `X-Original-Forwarded-For: ${h.xForwardedFor}\r\n`;
  if (q.prefix !== null) head += `X-Forwarded-Prefix: ${q.prefix}\r\n`;
  else if (h.xForwardedPrefix !== undefined)
    head += `X-Forwarded-Prefix: ${h.xForwardedPrefix}\r\n`;
  if (h.passed !== '') head += h.passed;
  if (q.chunked) head += 'Transfer-Encoding: chunked\r\n';
  else if (h.contentLength !== undefined) head += `Content-Length: ${h.contentLength}\r\n`;
  if (h.upgrade !== undefined && h.connection !== undefined)
    head += `Connection: ${h.connection}\r\n`;
  return head + '\r\n';
}

const enum R {
  Pass,
  Drop,
  ContentLength,
}

/** Response headers nginx does not pass: proxy_hide_header defaults and hop-by-hop. */
const RESPONSE_HEADERS = new Map<string, R>([
  ['date', R.Drop],
  ['server', R.Drop],
  ['x-pad', R.Drop],
  ['keep-alive', R.Drop],
  ['connection', R.Drop],
  ['transfer-encoding', R.Drop], // Node frames the body for the client itself
  ['content-length', R.ContentLength],
]);
for (const [k, v] of [...RESPONSE_HEADERS]) {
  RESPONSE_HEADERS.set(
    k.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase()),
    v,
  );
}

export interface ResponseHead {
  /** Flat `[name, value, …]` for `res.writeHead`: `Server: nginx` first. */
  headers: string[];
  /** The upstream's Content-Length, or undefined. */
  contentLength: string | undefined;
}

/**
 * The upstream's response headers as sent to the client. `add`: headers the location adds
 * (CORS replace the upstream's of the same name; Set-Cookie is appended).
 */
export function clientResponseHeaders(
  raw: readonly string[],
  add: readonly [string, string][] | null,
): ResponseHead {
  const out: string[] = ['Server', 'nginx'];
  let contentLength: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const k = kind(RESPONSE_HEADERS, name) as R;
    if (k === R.Drop) continue;
    if (k === R.ContentLength) contentLength ??= raw[i + 1]!;
    if (add !== null && replaced(add, name)) continue;
    out.push(name, raw[i + 1]!);
  }
  if (add !== null) for (const [k, v] of add) out.push(k, v);
  return { headers: out, contentLength };
}

function replaced(add: readonly [string, string][], name: string): boolean {
  const lower = name.toLowerCase();
  for (const [k] of add) if (k === lower && k !== 'set-cookie') return true;
  return false;
}
