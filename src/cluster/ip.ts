/**
 * IPv4 address and CIDR arithmetic on unsigned 32-bit integers.
 *
 * Pure helpers shared by validation, IPAM and (later) the controllers. Addresses are
 * plain `number`s in [0, 2^32); every result is normalised with `>>> 0`.
 */

/** An IPv4 prefix: `base` is the network address (host bits zero), `prefix` 0..32. */
export interface Cidr {
  base: number;
  prefix: number;
}

/** Parses dotted-quad IPv4 ("10.1.110.108"). Leading zeros are refused, as Go's net.ParseIP does. */
export function parseIPv4(text: string): number | null {
  const n = text.length;
  let value = 0;
  let parts = 0;
  let i = 0;
  while (parts < 4) {
    // One octet: "0" or [1-9][0-9]{0,2}, at most 255.
    const start = i;
    let octet = 0;
    while (i < n) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      octet = octet * 10 + d;
      i++;
    }
    const len = i - start;
    if (len === 0 || len > 3 || (len > 1 && text.charCodeAt(start) === 48) || octet > 255)
      return null;
    value = value * 256 + octet;
    parts++;
    if (parts < 4) {
      if (i >= n || text.charCodeAt(i) !== 46 /* . */) return null;
      i++;
    }
  }
  return i === n ? value >>> 0 : null;
}

export function isIPv4(text: string): boolean {
  return parseIPv4(text) !== null;
}

/** True for text that looks like an IPv6 address (contains a colon). */
export function looksLikeIPv6(text: string): boolean {
  return text.includes(':');
}

export function formatIPv4(value: number): string {
  const v = value >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Number of addresses in a prefix of this length. */
export function prefixSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

export type CidrParse =
  | { ok: true; cidr: Cidr }
  | { ok: false; reason: 'syntax' | 'ipv6' | 'host-bits'; network?: string };

/**
 * Parses "a.b.c.d/n". Host bits must be zero: "192.168.1.1/16" is refused with
 * `reason: 'host-bits'` and the network that was probably meant.
 */
export function parseCidrStrict(text: string): CidrParse {
  if (looksLikeIPv6(text)) return { ok: false, reason: 'ipv6' };
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, reason: 'syntax' };
  const addr = parseIPv4(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (addr === null || !/^(0|[1-9][0-9]?)$/.test(prefixText))
    return { ok: false, reason: 'syntax' };
  const prefix = Number(prefixText);
  if (prefix > 32) return { ok: false, reason: 'syntax' };
  const base = (addr & prefixMask(prefix)) >>> 0;
  if (base !== addr) {
    return { ok: false, reason: 'host-bits', network: formatCidr({ base, prefix }) };
  }
  return { ok: true, cidr: { base, prefix } };
}

/** Parses a CIDR, returning null on any problem (see parseCidrStrict for the reason). */
export function parseCidr(text: string): Cidr | null {
  const r = parseCidrStrict(text);
  return r.ok ? r.cidr : null;
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.base)}/${cidr.prefix}`;
}

export function cidrContains(cidr: Cidr, addr: number): boolean {
  return (addr & prefixMask(cidr.prefix)) >>> 0 === cidr.base;
}

/** True when `inner` lies entirely inside `outer`. */
export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, inner.base);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContainsCidr(a, b) || cidrContainsCidr(b, a);
}

/** The last address of the prefix (its broadcast address). */
export function cidrLast(cidr: Cidr): number {
  return (cidr.base + prefixSize(cidr.prefix) - 1) >>> 0;
}

/** The prefix of length `prefix` containing `addr`. */
export function enclosingCidr(addr: number, prefix: number): Cidr {
  return { base: (addr & prefixMask(prefix)) >>> 0, prefix };
}

/** Checks a text CIDR for containment of a text address; false if either does not parse. */
export function cidrTextContains(cidrText: string, addrText: string): boolean {
  const cidr = parseCidr(cidrText);
  const addr = parseIPv4(addrText);
  return cidr !== null && addr !== null && cidrContains(cidr, addr);
}
