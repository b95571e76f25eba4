import { readIpv4, writeIpv4 } from './addr.js';
import { checksumUpdate16, checksumUpdate32, internetChecksum } from './checksum.js';
import { ParseResult } from './errors.js';
import { EMPTY_BUFFER, rangeOk } from './internal.js';

/** Length of an IPv4 header without options (the builder never emits options). */
export const IPV4_HEADER_LEN = 20;
/** Largest IPv4 header (IHL 15). */
export const IPV4_MAX_HEADER_LEN = 60;

export const IPV4_VER_IHL = 0;
export const IPV4_TOS = 1;
export const IPV4_TOTAL_LEN = 2;
export const IPV4_ID = 4;
export const IPV4_FLAGS_FRAG = 6;
export const IPV4_TTL = 8;
export const IPV4_PROTO = 9;
export const IPV4_CHECKSUM = 10;
export const IPV4_SRC = 12;
export const IPV4_DST = 16;
export const IPV4_OPTIONS = 20;

export const IPV4_FLAG_RESERVED = 0x8000;
export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
export const IPV4_FRAG_OFFSET_MASK = 0x1fff;

export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** IP option types (RFC 791 and friends). */
export const IPOPT_END = 0;
export const IPOPT_NOOP = 1;
export const IPOPT_RR = 7;
export const IPOPT_TS = 68;
export const IPOPT_LSRR = 131;
export const IPOPT_SSRR = 137;
export const IPOPT_RA = 148;

/** Default TTL of Linux (net.ipv4.ip_default_ttl). */
export const IPV4_DEFAULT_TTL = 64;

/**
 * Checks the TLV layout of an options area: END stops (the rest is padding), NOOP is one byte,
 * every other option has a length byte >= 2 that stays inside the area. Option semantics
 * (pointers of RR/TS, source routes) are not interpreted.
 */
function optionsWellFormed(buf: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const t = buf[i];
    if (t === IPOPT_END) return true;
    if (t === IPOPT_NOOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return false;
    const l = buf[i + 1];
    if (l < 2 || i + l > end) return false;
    i += l;
  }
  return true;
}

/**
 * Zero-copy view of an IPv4 packet. Reusable; `wrap()` returns a {@link ParseResult} and never
 * throws. After `Ok`, `length` is the packet's total length (Ethernet padding trimmed) and every
 * getter stays inside `[offset, offset + length)`. Checksums are not verified by `wrap()`: call
 * {@link Ipv4View.verifyChecksum}. Setters update the header checksum incrementally (RFC 1624)
 * and leave transport checksums alone (see `natRewriteSrc`/`natRewriteDst` for those).
 */
export class Ipv4View {
  buf: Buffer = EMPTY_BUFFER;
  offset = 0;
  length = 0;

  /**
   * Version 4, IHL >= 5, header within `length`, total length within [IHL*4, length], options
   * well-formed. Otherwise `Truncated` (buffer too short) or `Malformed`.
   */
  wrap(buf: Buffer, offset: number, length: number): ParseResult {
    return this.check(buf, offset, length, false);
  }

  /**
   * Like `wrap()` for a packet quoted in an ICMP error, which is usually cut short: the header
   * must be complete, but the total length may exceed `length`. The view's length becomes
   * min(total length, length); `payloadLength` is what is actually present.
   */
  wrapQuoted(buf: Buffer, offset: number, length: number): ParseResult {
    return this.check(buf, offset, length, true);
  }

  private check(buf: Buffer, offset: number, length: number, quoted: boolean): ParseResult {
    if (!rangeOk(buf, offset, length) || length < IPV4_HEADER_LEN) return ParseResult.Truncated;
    const vihl = buf[offset];
    if (vihl >>> 4 !== 4) return ParseResult.Malformed;
    const hl = (vihl & 0x0f) << 2;
    if (hl < IPV4_HEADER_LEN) return ParseResult.Malformed;
    if (hl > length) return ParseResult.Truncated;
    let total = (buf[offset + IPV4_TOTAL_LEN] << 8) | buf[offset + IPV4_TOTAL_LEN + 1];
    if (total < hl) return ParseResult.Malformed;
    if (total > length) {
      if (!quoted) return ParseResult.Truncated;
      total = length;
    }
    if (hl > IPV4_HEADER_LEN && !optionsWellFormed(buf, offset + IPV4_OPTIONS, offset + hl)) {
      return ParseResult.Malformed;
    }
    this.buf = buf;
    this.offset = offset;
    this.length = total;
    return ParseResult.Ok;
  }

  /** True if the header checksum verifies. */
  verifyChecksum(): boolean {
    return internetChecksum(this.buf, this.offset, this.headerLength) === 0;
  }
  /** Recomputes the header checksum from scratch. */
  fillChecksum(): void {
    const b = this.buf;
    const o = this.offset;
    b[o + IPV4_CHECKSUM] = 0;
    b[o + IPV4_CHECKSUM + 1] = 0;
    const c = internetChecksum(b, o, this.headerLength);
    b[o + IPV4_CHECKSUM] = c >>> 8;
    b[o + IPV4_CHECKSUM + 1] = c & 0xff;
  }

  get version(): number {
    return this.buf[this.offset] >>> 4;
  }
  /** Header length in bytes (IHL * 4), 20..60. */
  get headerLength(): number {
    return (this.buf[this.offset] & 0x0f) << 2;
  }
  get tos(): number {
    return this.buf[this.offset + IPV4_TOS];
  }
  get dscp(): number {
    return this.buf[this.offset + IPV4_TOS] >>> 2;
  }
  get ecn(): number {
    return this.buf[this.offset + IPV4_TOS] & 3;
  }
  /** The total length field (for a quoted packet it may exceed `length`). */
  get totalLength(): number {
    const o = this.offset + IPV4_TOTAL_LEN;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get id(): number {
    const o = this.offset + IPV4_ID;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  /** The 16-bit flags + fragment offset word as on the wire. */
  get flagsAndFragment(): number {
    const o = this.offset + IPV4_FLAGS_FRAG;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get dontFragment(): boolean {
    return (this.buf[this.offset + IPV4_FLAGS_FRAG] & 0x40) !== 0;
  }
  get moreFragments(): boolean {
    return (this.buf[this.offset + IPV4_FLAGS_FRAG] & 0x20) !== 0;
  }
  /** Fragment offset in bytes (the field times 8), as tcpdump prints it. */
  get fragmentOffset(): number {
    return (this.flagsAndFragment & IPV4_FRAG_OFFSET_MASK) << 3;
  }
  /** MF set or fragment offset non-zero: the transport payload is incomplete. */
  get isFragment(): boolean {
    return (this.flagsAndFragment & (IPV4_FLAG_MF | IPV4_FRAG_OFFSET_MASK)) !== 0;
  }
  get ttl(): number {
    return this.buf[this.offset + IPV4_TTL];
  }
  get protocol(): number {
    return this.buf[this.offset + IPV4_PROTO];
  }
  get checksum(): number {
    const o = this.offset + IPV4_CHECKSUM;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get src(): number {
    return readIpv4(this.buf, this.offset + IPV4_SRC);
  }
  get dst(): number {
    return readIpv4(this.buf, this.offset + IPV4_DST);
  }
  get optionsOffset(): number {
    return this.offset + IPV4_OPTIONS;
  }
  get optionsLength(): number {
    return this.headerLength - IPV4_HEADER_LEN;
  }
  get payloadOffset(): number {
    return this.offset + this.headerLength;
  }
  /** Bytes of payload present in the view (total length - header length, unless quoted). */
  get payloadLength(): number {
    return this.length - this.headerLength;
  }

  /**
   * Source port of a TCP/UDP (or any port-carrying) payload: its first 16-bit word. -1 when
   * fewer than 4 payload bytes are present or this is a non-first fragment. Works on quoted
   * packets inside ICMP errors, whose transport header is cut to 8 bytes.
   */
  get payloadSrcPort(): number {
    if (this.payloadLength < 4 || this.fragmentOffset !== 0) return -1;
    const o = this.payloadOffset;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  /** Destination port counterpart of {@link payloadSrcPort} (payload bytes 2..3). */
  get payloadDstPort(): number {
    if (this.payloadLength < 4 || this.fragmentOffset !== 0) return -1;
    const o = this.payloadOffset + 2;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }

  /**
   * Offset in `buf` of the first option of `type`, or -1. Walks the options area as `wrap()`
   * validated it.
   */
  findOption(type: number): number {
    const b = this.buf;
    const end = this.offset + this.headerLength;
    let i = this.offset + IPV4_OPTIONS;
    while (i < end) {
      const t = b[i];
      if (t === type) return i;
      if (t === IPOPT_END) return -1;
      if (t === IPOPT_NOOP) i++;
      else {
        const l = b[i + 1];
        if (l < 2) return -1;
        i += l;
      }
    }
    return -1;
  }

  /** Replaces the 16-bit header word at `field` and updates the checksum incrementally. */
  private updateWord(field: number, word: number): void {
    const b = this.buf;
    const o = this.offset + field;
    const old = (b[o] << 8) | b[o + 1];
    b[o] = word >>> 8;
    b[o + 1] = word & 0xff;
    const c = this.offset + IPV4_CHECKSUM;
    const sum = checksumUpdate16((b[c] << 8) | b[c + 1], old, word);
    b[c] = sum >>> 8;
    b[c + 1] = sum & 0xff;
  }

  private updateAddress(field: number, a: number): void {
    const b = this.buf;
    const o = this.offset + field;
    const old = readIpv4(b, o);
    writeIpv4(b, o, a);
    const c = this.offset + IPV4_CHECKSUM;
    const sum = checksumUpdate32((b[c] << 8) | b[c + 1], old, a >>> 0);
    b[c] = sum >>> 8;
    b[c + 1] = sum & 0xff;
  }

  /**
   * TTL - 1 with incremental checksum update (as Linux's ip_decrease_ttl). No-op at TTL 0; the
   * forwarding path checks TTL <= 1 first and answers with ICMP time exceeded.
   */
  decrementTtl(): void {
    const o = this.offset + IPV4_TTL;
    const ttl = this.buf[o];
    if (ttl === 0) return;
    const proto = this.buf[o + 1];
    this.updateWord(IPV4_TTL, ((ttl - 1) << 8) | proto);
  }
  setTtl(ttl: number): void {
    this.updateWord(IPV4_TTL, ((ttl & 0xff) << 8) | this.buf[this.offset + IPV4_PROTO]);
  }
  setTos(tos: number): void {
    this.updateWord(IPV4_VER_IHL, (this.buf[this.offset] << 8) | (tos & 0xff));
  }
  setId(id: number): void {
    this.updateWord(IPV4_ID, id & 0xffff);
  }
  setDontFragment(df: boolean): void {
    const w = this.flagsAndFragment;
    this.updateWord(IPV4_FLAGS_FRAG, df ? w | IPV4_FLAG_DF : w & ~IPV4_FLAG_DF);
  }
  /** Sets the source address; updates the header checksum only. */
  setSrc(a: number): void {
    this.updateAddress(IPV4_SRC, a);
  }
  /** Sets the destination address; updates the header checksum only. */
  setDst(a: number): void {
    this.updateAddress(IPV4_DST, a);
  }
  /** Swaps source and destination in place; the header checksum is unchanged by a swap. */
  swapAddresses(): void {
    const b = this.buf;
    const s = this.offset + IPV4_SRC;
    for (let i = 0; i < 4; i++) {
      const t = b[s + i];
      b[s + i] = b[s + 4 + i];
      b[s + 4 + i] = t;
    }
  }
}

/** A header to emit: always 20 bytes (no options), fragment offset 0, MF clear. */
export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  id: number;
  dontFragment: boolean;
  tos: number;
  /** Bytes after the header; total length = 20 + payloadLength. */
  payloadLength: number;
}

/** Writes a 20-byte IPv4 header with its checksum; returns 20. */
export function emitIpv4Header(buf: Buffer, offset: number, repr: Ipv4Repr): number {
  const o = offset;
  const total = IPV4_HEADER_LEN + repr.payloadLength;
  buf[o] = 0x45;
  buf[o + IPV4_TOS] = repr.tos & 0xff;
  buf[o + IPV4_TOTAL_LEN] = total >>> 8;
  buf[o + IPV4_TOTAL_LEN + 1] = total & 0xff;
  buf[o + IPV4_ID] = (repr.id >>> 8) & 0xff;
  buf[o + IPV4_ID + 1] = repr.id & 0xff;
  buf[o + IPV4_FLAGS_FRAG] = repr.dontFragment ? 0x40 : 0;
  buf[o + IPV4_FLAGS_FRAG + 1] = 0;
  buf[o + IPV4_TTL] = repr.ttl & 0xff;
  buf[o + IPV4_PROTO] = repr.protocol & 0xff;
  buf[o + IPV4_CHECKSUM] = 0;
  buf[o + IPV4_CHECKSUM + 1] = 0;
  writeIpv4(buf, o + IPV4_SRC, repr.src);
  writeIpv4(buf, o + IPV4_DST, repr.dst);
  const c = internetChecksum(buf, o, IPV4_HEADER_LEN);
  buf[o + IPV4_CHECKSUM] = c >>> 8;
  buf[o + IPV4_CHECKSUM + 1] = c & 0xff;
  return IPV4_HEADER_LEN;
}

/** Reads a view into a new {@link Ipv4Repr} (allocates: for tests and slow paths). */
export function parseIpv4Repr(view: Ipv4View): Ipv4Repr {
  return {
    src: view.src,
    dst: view.dst,
    protocol: view.protocol,
    ttl: view.ttl,
    id: view.id,
    dontFragment: view.dontFragment,
    tos: view.tos,
    payloadLength: view.payloadLength,
  };
}
