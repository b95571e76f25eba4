/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * Conventions: a *sum* is an unfolded or folded one's-complement accumulator (a plain
 * non-negative integer); a *checksum* is the final 16-bit value as it appears on the wire
 * (folded and complemented). All values are host-order numbers of big-endian 16-bit words.
 */

/** Folds a non-negative integer sum (< 2^53) to 16 bits with end-around carry; not complemented. */
export function checksumFold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * One's-complement sum of `length` bytes at `offset` as big-endian 16-bit words (a trailing odd
 * byte is padded with zero), plus `initial`. Returned folded to 16 bits, not complemented.
 */
export function onesComplementSum(
  buf: Uint8Array,
  offset: number,
  length: number,
  initial = 0,
): number {
  // Sum high and low bytes separately: fewer shifts, and no overflow below 2^32 for 64 KiB.
  let hi = 0;
  let lo = 0;
  let i = offset;
  const end = offset + (length & ~1);
  for (; i < end; i += 2) {
    hi += buf[i];
    lo += buf[i + 1];
  }
  if (length & 1) hi += buf[i];
  return checksumFold(hi * 256 + lo + initial);
}

/**
 * The Internet checksum of `length` bytes at `offset`: the complement of the folded
 * one's-complement sum, 16 bits. `initial` is an extra (unfolded) sum, e.g. from
 * {@link pseudoHeaderSum}. Over a region that contains a correct checksum the result is 0.
 */
export function internetChecksum(
  buf: Uint8Array,
  offset: number,
  length: number,
  initial = 0,
): number {
  return ~onesComplementSum(buf, offset, length, initial) & 0xffff;
}

/**
 * RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` — the checksum after one 16-bit word covered by it
 * changed from `oldWord` to `newWord`. Exact: equals a full recomputation for any data that is
 * not all zeros.
 */
export function checksumUpdate16(oldCsum: number, oldWord: number, newWord: number): number {
  let s = (~oldCsum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** {@link checksumUpdate16} for a 32-bit value (two words), e.g. an IPv4 address. */
export function checksumUpdate32(oldCsum: number, oldValue: number, newValue: number): number {
  let s =
    (~oldCsum & 0xffff) +
    (~(oldValue >>> 16) & 0xffff) +
    (~oldValue & 0xffff) +
    (newValue >>> 16) +
    (newValue & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * The folded sum `~m + m'` of RFC 1624 eqn. 3 for a 32-bit value changing from `oldValue` to
 * `newValue`: one small number (0..0xffff) that {@link checksumApplyDelta} applies to every
 * checksum covering the value (IP header, and TCP/UDP via the pseudo-header). Lets NAT code
 * pass a small integer instead of addresses between functions.
 */
export function checksumDelta32(oldValue: number, newValue: number): number {
  let s =
    (~(oldValue >>> 16) & 0xffff) + (~oldValue & 0xffff) + (newValue >>> 16) + (newValue & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}

/** `~(~HC + delta)`: applies a {@link checksumDelta32} to a checksum. */
export function checksumApplyDelta(oldCsum: number, delta: number): number {
  let s = (~oldCsum & 0xffff) + delta;
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * Unfolded sum of the TCP/UDP IPv4 pseudo-header (source, destination, zero + protocol, L4
 * length), to pass as `initial` to {@link internetChecksum}.
 */
export function pseudoHeaderSum(src: number, dst: number, proto: number, l4Length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + l4Length;
}
