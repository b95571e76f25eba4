/**
 * Small helpers with libxtables' exact parsing and printing rules: strtoul with
 * base 0 (hex and octal accepted), dotted quads with iptables' zero completion,
 * host/network/mask parsing, %-Ns padding, xtables_save_string quoting.
 */
import { ParameterProblem } from './errors.js';

/** xtables_strtoul_base(s, NULL, …, min, max, 0): strict, base 0, no sign, no trailing garbage. */
export function strtoui(s: string, min = 0, max = 0xffffffff): number | null {
  const fast = plainDecimal(s, 0, s.length);
  if (fast >= 0) return fast < min || fast > max ? null : fast;
  const r = strtoulPrefix(s);
  if (r === null || r.end !== s.length) return null;
  if (r.value < min || r.value > max) return null;
  return r.value;
}

/**
 * The value of s[from, to) when it is a plain decimal number of 1–9 digits without a
 * leading zero (or "0"): what base 0 reads the same way. -1 for anything else.
 */
function plainDecimal(s: string, from: number, to: number): number {
  const len = to - from;
  if (len < 1 || len > 9) return -1;
  let v = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9 || (d === 0 && i === from && len > 1)) return -1;
    v = v * 10 + d;
  }
  return v;
}

/**
 * strtoumax(s, &end, 0) semantics: leading whitespace, optional '+', then 0x… hex,
 * 0… octal or decimal. Returns the value and the index where parsing stopped, or
 * null when no digits were consumed (or a '-' sign is present, which libxtables rejects).
 */
export function strtoulPrefix(s: string): { value: number; end: number } | null {
  let i = 0;
  while (i < s.length && /\s/.test(s[i]!)) i++;
  if (s[i] === '-') return null;
  if (s[i] === '+') i++;
  let base = 10;
  const start = i;
  if (s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && isHex(s[i + 2])) {
    base = 16;
    i += 2;
  } else if (s[i] === '0') {
    base = 8;
  }
  let value = 0;
  let digits = 0;
  for (; i < s.length; i++) {
    const d = digitValue(s[i]!);
    if (d < 0 || d >= base) break;
    value = value * base + d;
    digits++;
  }
  if (digits === 0) return start === i ? null : { value: 0, end: i };
  if (value > 0xffffffffffff) value = Infinity; // ERANGE-like: rejected by max checks
  return { value, end: i };
}

function isHex(c: string | undefined): boolean {
  return c !== undefined && /[0-9a-fA-F]/.test(c);
}

function digitValue(c: string): number {
  const code = c.charCodeAt(0);
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  if (code >= 65 && code <= 70) return code - 55;
  return -1;
}

export function ipToString(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/** Prefix length of a contiguous mask, or -1. */
export function maskToCidr(mask: number): number {
  mask >>>= 0;
  if (mask === 0) return 0;
  const inv = ~mask >>> 0;
  if ((inv & (inv + 1)) !== 0) return -1;
  return 32 - Math.log2(inv + 1);
}

export function cidrToMask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** save_ipv4_addr's mask: "32", prefix length, or dotted for non-contiguous masks. */
export function maskToSaveString(mask: number): string {
  const c = maskToCidr(mask);
  return c >= 0 ? String(c) : ipToString(mask);
}

/** xtables_ipmask_to_numeric: "" for /32, "/N", or "/a.b.c.d". */
export function maskToListString(mask: number): string {
  const c = maskToCidr(mask);
  if (c === 32) return '';
  return c >= 0 ? `/${c}` : `/${ipToString(mask)}`;
}

/**
 * "a.b.c.d" with four plain decimal parts (no sign, no leading zero) of at most 255, as
 * inet_pton(AF_INET) reads it; -1 for anything else.
 */
export function dottedQuad(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let a = 0;
  let from = 0;
  for (let part = 0; part < 4; part++) {
    const to = part < 3 ? s.indexOf('.', from) : n;
    if (to < 0) return -1;
    const v = plainDecimal(s, from, to);
    if (v < 0 || v > 255) return -1;
    a = a * 256 + v;
    from = to + 1;
  }
  return a;
}

/** __numeric_to_ipaddr: 1–4 dotted parts (base 0 each), missing trailing parts are 0. */
export function numericToIp(dotted: string, isMask = false): number | null {
  // The common case: four plain decimal parts of at most 255.
  const quad = dottedQuad(dotted);
  if (quad >= 0) return quad;
  const parts = dotted.slice(0, 19).split('.');
  if (parts.length > 4) {
    // strncpy to 19 chars then 3 strchr('.') then the rest must be one number
    const rest = parts.slice(3).join('.');
    parts.length = 3;
    parts.push(rest);
  }
  if (parts.length < 4 && isMask) return null;
  const bytes: number[] = [];
  for (const p of parts) {
    const v = strtoui(p, 0, 255);
    if (v === null) return null;
    bytes.push(v);
  }
  while (bytes.length < 4) bytes.push(0);
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

/** inet_aton-style fallback getaddrinfo accepts ("0x0a000001", "167772161", "10.1" = 10.0.0.1). */
function inetAton(s: string): number | null {
  const parts = s.split('.');
  if (parts.length === 0 || parts.length > 4) return null;
  const vals: number[] = [];
  for (const p of parts) {
    const r = strtoulPrefix(p);
    if (r === null || r.end !== p.length || p.length === 0 || /^\s|^\+/.test(p)) return null;
    vals.push(r.value);
  }
  const last = vals.pop()!;
  const lastMax = [0xffffffff, 0xffffff, 0xffff, 0xff][vals.length]!;
  if (last > lastMax || vals.some((v) => v > 255)) return null;
  let a = 0;
  vals.forEach((v, i) => (a |= v << (24 - 8 * i)));
  return (a | last) >>> 0;
}

/** Names resolvable without DNS: the /etc/hosts of a node. */
const HOSTS: Record<string, number> = { localhost: 0x7f000001 };

/** Host name or address as xtables resolves it (numeric first, then the hosts table). */
export function resolveHost(name: string): number | null {
  const n = numericToIp(name);
  if (n !== null) return n;
  const h = HOSTS[name.toLowerCase()];
  if (h !== undefined) return h;
  return inetAton(name);
}

/** Reverse lookup as -L without -n does it (only the hosts table; no DNS). */
export function ipToName(a: number): string {
  for (const [name, addr] of Object.entries(HOSTS)) if (addr === a) return name;
  return ipToString(a);
}

/** parse_ipmask: dotted mask or prefix length (base 0, 0–32); undefined → /32. */
export function parseMask(mask: string | undefined): number {
  if (mask === undefined) return 0xffffffff;
  const dotted = numericToIp(mask, true);
  if (dotted !== null) return dotted;
  const bits = strtoui(mask, 0, 32);
  if (bits === null) throw new ParameterProblem(`invalid mask \`${mask}' specified`);
  return cidrToMask(bits);
}

const ANY_ADDRESS: ReadonlyArray<{ addr: number; mask: number }> = Object.freeze([
  Object.freeze({ addr: 0, mask: 0 }),
]);

/** xtables_ipparse_multiple: "a[/m][,b[/m]…]" → address/mask pairs, address &= mask. */
export function parseHostNetworkMasks(spec: string): ReadonlyArray<{ addr: number; mask: number }> {
  if (spec === '0.0.0.0/0') return ANY_ADDRESS;
  // The usual case: one dotted quad, with or without a plain prefix length.
  if (spec.indexOf(',') < 0) {
    const slash = spec.lastIndexOf('/');
    const addr = dottedQuad(slash >= 0 ? spec.slice(0, slash) : spec);
    const bits = slash >= 0 ? plainDecimal(spec, slash + 1, spec.length) : 32;
    if (addr >= 0 && bits >= 0 && bits <= 32) {
      const mask = cidrToMask(bits);
      return mask === 0 ? ANY_ADDRESS : [{ addr: (addr & mask) >>> 0, mask }];
    }
  }
  const out: Array<{ addr: number; mask: number }> = [];
  for (const item of spec.split(',')) {
    const slash = item.lastIndexOf('/');
    const host = slash >= 0 ? item.slice(0, slash) : item;
    const mask = parseMask(slash >= 0 ? item.slice(slash + 1) : undefined);
    if (mask === 0) {
      out.push({ addr: 0, mask: 0 });
      continue;
    }
    const addr = resolveHost(host);
    if (addr === null) throw new ParameterProblem(`host/network \`${host}' not found`);
    out.push({ addr: (addr & mask) >>> 0, mask });
  }
  return out;
}

/**
 * A copy of s that does not keep a larger string alive: a word of a restore input is a
 * slice of the whole input, which stays in memory as long as the slice does (V8 copies
 * substrings shorter than 13 characters anyway).
 */
export function detached(s: string): string {
  if (s.length < 13) return s;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return s;
  return Buffer.from(s, 'latin1').toString('latin1');
}

/** printf("%-Ns", s) */
export function padRight(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** printf("%Ns", s) */
export function padLeft(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

const NO_QUOTE = /^[_\-0-9a-zA-Z]+$/;

/** xtables_save_string: " value" when safe, else ` "…"` with ", \ and ' backslash-escaped. */
export function saveString(value: string): string {
  if (NO_QUOTE.test(value)) return ` ${value}`;
  return ` "${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

/** C printf("%.11f", x) for 0 ≤ x ≤ 1. */
export function fixed11(x: number): string {
  return x.toFixed(11);
}

/** Interface name as iptables stores it: at most 15 characters. */
export const IFNAMSIZ = 16;
