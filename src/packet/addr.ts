/**
 * Address helpers. On the hot path an IPv4 address is an unsigned 32-bit number (host order
 * value of the big-endian wire bytes, always normalised with `>>> 0`) and a MAC address is six
 * bytes in a Uint8Array/Buffer. The string conversions below are for configuration, logs and
 * tests, not for per-packet use.
 */

const DOTTED_OCTET = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Parses dotted-quad IPv4 (`10.1.110.102`). Strict: exactly four decimal octets 0..255, no
 * leading zeros (which inet_aton would read as octal), no whitespace. Throws on bad input.
 */
export function ipv4FromString(s: string): number {
  const parts = s.split('.');
  if (parts.length !== 4) throw new Error(`invalid IPv4 address: ${JSON.stringify(s)}`);
  let a = 0;
  for (const p of parts) {
    if (!DOTTED_OCTET.test(p)) throw new Error(`invalid IPv4 address: ${JSON.stringify(s)}`);
    const v = Number(p);
    if (v > 255) throw new Error(`invalid IPv4 address: ${JSON.stringify(s)}`);
    a = a * 256 + v;
  }
  return a >>> 0;
}

/** Formats an unsigned 32-bit address as dotted quad. */
export function ipv4ToString(a: number): string {
  return `${(a >>> 24) & 0xff}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/** Reads a big-endian IPv4 address at `off` (no bounds check: callers hold a checked view). */
export function readIpv4(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

/** Writes a big-endian IPv4 address at `off`. */
export function writeIpv4(buf: Uint8Array, off: number, a: number): void {
  buf[off] = a >>> 24;
  buf[off + 1] = (a >>> 16) & 0xff;
  buf[off + 2] = (a >>> 8) & 0xff;
  buf[off + 3] = a & 0xff;
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** Parses `ee:ee:ee:ee:ee:ee` (colon-separated, either case) into a new 6-byte Buffer. */
export function macFromString(s: string): Buffer {
  if (!MAC_RE.test(s)) throw new Error(`invalid MAC address: ${JSON.stringify(s)}`);
  const m = Buffer.allocUnsafe(6);
  for (let i = 0; i < 6; i++) m[i] = parseInt(s.slice(i * 3, i * 3 + 2), 16);
  return m;
}

const HEX = '0123456789abcdef';

/** Formats 6 bytes at `off` (default 0) as lower-case colon-separated hex. */
export function macToString(m: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    const b = m[off + i];
    if (i) s += ':';
    s += HEX[b >>> 4] + HEX[b & 15];
  }
  return s;
}

/** True if the 6 bytes at `a[aOff]` equal those at `b[bOff]`. */
export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff = 0): boolean {
  return (
    a[aOff] === b[bOff] &&
    a[aOff + 1] === b[bOff + 1] &&
    a[aOff + 2] === b[bOff + 2] &&
    a[aOff + 3] === b[bOff + 3] &&
    a[aOff + 4] === b[bOff + 4] &&
    a[aOff + 5] === b[bOff + 5]
  );
}

/** Copies 6 bytes from `src[srcOff]` to `dst[dstOff]`. */
export function macCopy(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff = 0): void {
  dst[dstOff] = src[srcOff];
  dst[dstOff + 1] = src[srcOff + 1];
  dst[dstOff + 2] = src[srcOff + 2];
  dst[dstOff + 3] = src[srcOff + 3];
  dst[dstOff + 4] = src[srcOff + 4];
  dst[dstOff + 5] = src[srcOff + 5];
}

/** ff:ff:ff:ff:ff:ff. Do not mutate. */
export const MAC_BROADCAST: Buffer = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/** 00:00:00:00:00:00 (the unknown target MAC of an ARP request). Do not mutate. */
export const MAC_ZERO: Buffer = Buffer.alloc(6);

/** Netmask of a prefix length as an unsigned number: 24 -> 0xffffff00, 0 -> 0, 32 -> 0xffffffff. */
export function prefixMask(len: number): number {
  if (!(len >= 0 && len <= 32) || (len | 0) !== len) {
    throw new RangeError(`invalid prefix length: ${len}`);
  }
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** True if `addr` lies in `prefix/prefixLen`. */
export function ipv4InPrefix(addr: number, prefix: number, prefixLen: number): boolean {
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  return (addr & mask) >>> 0 === (prefix & mask) >>> 0;
}

/**
 * Parses `a.b.c.d/len`. The address is returned as written (host bits are kept, so
 * `10.1.110.102/24` is an interface address); use `addr & prefixMask(len)` for the network.
 * Throws on bad input, including a missing `/len`.
 */
export function parseCidr(s: string): { addr: number; prefixLen: number } {
  const slash = s.indexOf('/');
  if (slash < 0) throw new Error(`invalid CIDR (no prefix length): ${JSON.stringify(s)}`);
  const lenStr = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]?)$/.test(lenStr) || Number(lenStr) > 32) {
    throw new Error(`invalid CIDR prefix length: ${JSON.stringify(s)}`);
  }
  return { addr: ipv4FromString(s.slice(0, slash)), prefixLen: Number(lenStr) };
}
