/**
 * The access log in ingress-nginx's default `log-format-upstream`
 * (internal/ingress/controller/config/config.go logFormatUpstream):
 *
 *   $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
 *   "$http_referer" "$http_user_agent" $request_length $request_time
 *   [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr
 *   $upstream_response_length $upstream_response_time $upstream_status $req_id
 *
 * Lines go through pino as the `msg` of one JSON object per request.
 */
import { randomBytes } from 'node:crypto';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** `$time_local`: `23/Nov/2024:14:32:01 +0000`. */
export function formatTimeLocal(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const abs = Math.abs(off);
  return (
    `${pad2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ` +
    `${sign}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`
  );
}

let cachedSecond = -1;
let cachedTime = '';

/** `$time_local` of now, formatted once per second. */
export function timeLocalNow(): string {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  if (sec !== cachedSecond) {
    cachedSecond = sec;
    cachedTime = formatTimeLocal(new Date(now));
  }
  return cachedTime;
}

let idPool = Buffer.alloc(0);
let idOffset = 0;

/** `$request_id`: 16 random bytes in hex, as nginx makes it. */
export function newRequestId(): string {
  if (idOffset + 16 > idPool.length) {
    idPool = randomBytes(4096);
    idOffset = 0;
  }
  const id = idPool.toString('hex', idOffset, idOffset + 16);
  idOffset += 16;
  return id;
}

/** Seconds with millisecond resolution, as nginx prints `$request_time` (`%T.%03M`). */
export function seconds(ms: number): string {
  const n = Math.round(ms > 0 ? ms : 0);
  const frac = n % 1000;
  return `${(n - frac) / 1000}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

export interface AccessLogEntry {
  remoteAddr: string;
  remoteUser: string;
  timeLocal: string;
  request: string;
  status: number;
  bodyBytesSent: number;
  referer: string;
  userAgent: string;
  requestLength: number;
  requestTime: string;
  upstreamName: string;
  alternativeUpstreamName: string;
  upstreamAddr: string;
  upstreamResponseLength: string;
  upstreamResponseTime: string;
  upstreamStatus: string;
  requestId: string;
}

const dash = (s: string): string => (s === '' ? '-' : s);

/** Printable ASCII other than `"` and `\`: nothing to escape (a loop: cheaper than a regex). */
function plain(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** Variables escape `"`, `\` and non-printable bytes as nginx does (\xXX, escape=default). */
function escapeLog(s: string): string {
  if (plain(s)) return s;
  let out = '';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch === '"' || ch === '\\' || c < 0x20 || c >= 0x7f) {
      for (const b of Buffer.from(ch, 'utf8'))
        out += `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`;
    } else out += ch;
  }
  return out;
}

/** escapeLog, then (json) as a JSON string's contents: only the `\` of \xXX needs it. */
function escapeField(s: string, json: boolean): string {
  const e = escapeLog(s);
  return json && e !== s ? e.replaceAll('\\', '\\\\') : e;
}

function line(e: AccessLogEntry, json: boolean): string {
  const q = json ? '\\"' : '"';
  return (
    `${e.remoteAddr} - ${dash(escapeField(e.remoteUser, json))} [${e.timeLocal}] ` +
    `${q}${escapeField(e.request, json)}${q} ${e.status} ${e.bodyBytesSent} ` +
    `${q}${dash(escapeField(e.referer, json))}${q} ${q}${dash(escapeField(e.userAgent, json))}${q} ` +
    `${e.requestLength} ${e.requestTime} [${e.upstreamName}] [${e.alternativeUpstreamName}] ` +
    `${dash(e.upstreamAddr)} ${dash(e.upstreamResponseLength)} ${dash(e.upstreamResponseTime)} ` +
    `${dash(e.upstreamStatus)} ${escapeField(e.requestId, json)}`
  );
}

/** The line in ingress-nginx's `log-format-upstream`. */
export function formatAccessLog(e: AccessLogEntry): string {
  return line(e, false);
}

/** The same line as the contents of a JSON string (for a pre-serialized pino line). */
export function formatAccessLogJson(e: AccessLogEntry): string {
  return line(e, true);
}
