import { checksumUpdate16, internetChecksum } from './checksum.js';
import { ParseResult } from './errors.js';
import { EMPTY_BUFFER, rangeOk } from './internal.js';
import {
  IPPROTO_ICMP,
  IPV4_DEFAULT_TTL,
  IPV4_FRAG_OFFSET_MASK,
  IPV4_HEADER_LEN,
  Ipv4View,
  emitIpv4Header,
} from './ipv4.js';

export const ICMP_HEADER_LEN = 8;
export const ICMP_TYPE = 0;
export const ICMP_CODE = 1;
export const ICMP_CHECKSUM = 2;
/** Identifier (echo) / unused + next-hop MTU (frag needed) / pointer (param problem). */
export const ICMP_REST = 4;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETER_PROB = 12;
export const ICMP_TIMESTAMP = 13;
export const ICMP_TIMESTAMP_REPLY = 14;
/** Types above this are unknown to Linux (NR_ICMP_TYPES). */
export const ICMP_MAX_KNOWN_TYPE = 18;

/** Destination unreachable codes. */
export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROT_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
export const ICMP_NET_PROHIBITED = 9;
export const ICMP_HOST_PROHIBITED = 10;
export const ICMP_ADMIN_PROHIBITED = 13;
/** Time exceeded codes. */
export const ICMP_EXC_TTL = 0;
export const ICMP_EXC_FRAGTIME = 1;

/**
 * Most bytes of the offending packet an ICMP error quotes: Linux's icmp_send() fills the error
 * up to 576 bytes of IP (RFC 1812 4.3.2.3): 576 - 20 (IP header, no options) - 8 (ICMP header).
 */
export const ICMP_ERROR_MAX_QUOTE = 576 - IPV4_HEADER_LEN - ICMP_HEADER_LEN;

/** ICMP types that are errors (they quote an IP packet). */
export function icmpTypeIsError(type: number): boolean {
  return (
    type === ICMP_DEST_UNREACH ||
    type === ICMP_SOURCE_QUENCH ||
    type === ICMP_REDIRECT ||
    type === ICMP_TIME_EXCEEDED ||
    type === ICMP_PARAMETER_PROB
  );
}

/**
 * Zero-copy view of an ICMP message. `wrap()` takes the IP payload and only checks the 8-byte
 * header is present; the type is not interpreted (routers forward every type). For errors, the
 * quoted packet is at `embeddedOffset`/`embeddedLength`; wrap it with `Ipv4View.wrapQuoted()`.
 */
export class IcmpView {
  buf: Buffer = EMPTY_BUFFER;
  offset = 0;
  length = 0;

  wrap(buf: Buffer, offset: number, length: number): ParseResult {
    if (!rangeOk(buf, offset, length) || length < ICMP_HEADER_LEN) return ParseResult.Truncated;
    this.buf = buf;
    this.offset = offset;
    this.length = length;
    return ParseResult.Ok;
  }

  /** Checksum over the whole message verifies. */
  verifyChecksum(): boolean {
    return internetChecksum(this.buf, this.offset, this.length) === 0;
  }
  fillChecksum(): void {
    const b = this.buf;
    const o = this.offset + ICMP_CHECKSUM;
    b[o] = 0;
    b[o + 1] = 0;
    const c = internetChecksum(b, this.offset, this.length);
    b[o] = c >>> 8;
    b[o + 1] = c & 0xff;
  }

  get type(): number {
    return this.buf[this.offset + ICMP_TYPE];
  }
  get code(): number {
    return this.buf[this.offset + ICMP_CODE];
  }
  get checksum(): number {
    const o = this.offset + ICMP_CHECKSUM;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get isError(): boolean {
    return icmpTypeIsError(this.buf[this.offset + ICMP_TYPE]);
  }
  /** Echo (and timestamp) identifier. */
  get identifier(): number {
    const o = this.offset + ICMP_REST;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get sequence(): number {
    const o = this.offset + ICMP_REST + 2;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  /** Next-hop MTU of a "fragmentation needed" error (RFC 1191); 0 from old routers. */
  get nextHopMtu(): number {
    const o = this.offset + ICMP_REST + 2;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  /** Pointer of a parameter problem. */
  get pointer(): number {
    return this.buf[this.offset + ICMP_REST];
  }
  /** Gateway address of a redirect (unsigned). */
  get gateway(): number {
    const o = this.offset + ICMP_REST;
    const b = this.buf;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }
  /** Start of the data after the 8-byte header (the quoted packet of an error). */
  get embeddedOffset(): number {
    return this.offset + ICMP_HEADER_LEN;
  }
  get embeddedLength(): number {
    return this.length - ICMP_HEADER_LEN;
  }
  get payloadOffset(): number {
    return this.offset + ICMP_HEADER_LEN;
  }
  get payloadLength(): number {
    return this.length - ICMP_HEADER_LEN;
  }

  private updateWord(at: number, word: number): void {
    const b = this.buf;
    const o = this.offset + at;
    const old = (b[o] << 8) | b[o + 1];
    b[o] = word >>> 8;
    b[o + 1] = word & 0xff;
    const c = this.offset + ICMP_CHECKSUM;
    const sum = checksumUpdate16((b[c] << 8) | b[c + 1], old, word);
    b[c] = sum >>> 8;
    b[c + 1] = sum & 0xff;
  }
  /** Incremental checksum update. */
  setType(type: number): void {
    this.updateWord(ICMP_TYPE, ((type & 0xff) << 8) | this.code);
  }
  /** Incremental checksum update. */
  setCode(code: number): void {
    this.updateWord(ICMP_TYPE, (this.type << 8) | (code & 0xff));
  }
  /** Incremental checksum update (ICMP echo NAT rewrites the identifier like a port). */
  setIdentifier(id: number): void {
    this.updateWord(ICMP_REST, id & 0xffff);
  }
  /** Incremental checksum update. */
  setSequence(seq: number): void {
    this.updateWord(ICMP_REST + 2, seq & 0xffff);
  }
}

/**
 * Writes an ICMP error message quoting `original` (a wrapped IPv4 packet, as received, before
 * any TTL decrement) and fills its checksum; returns the ICMP length.
 *
 * Quote length follows Linux's icmp_send(): as much of the original packet as fits in a 576-byte
 * IP datagram, i.e. min(original.length, {@link ICMP_ERROR_MAX_QUOTE}) bytes — not just the
 * RFC 792 minimum of header + 8 bytes. Bytes 4..7 are zero except for `type` 3 code 4 (frag
 * needed), where bytes 6..7 carry `mtu`, and for parameter problem, where byte 4 is `mtu`'s
 * low byte used as the pointer. `buf` must have room for 8 + quote bytes at `offset`.
 */
export function emitIcmpError(
  buf: Buffer,
  offset: number,
  type: number,
  code: number,
  original: Ipv4View,
  mtu = 0,
): number {
  const quote = original.length < ICMP_ERROR_MAX_QUOTE ? original.length : ICMP_ERROR_MAX_QUOTE;
  const o = offset;
  buf[o + ICMP_TYPE] = type;
  buf[o + ICMP_CODE] = code;
  buf[o + ICMP_CHECKSUM] = 0;
  buf[o + ICMP_CHECKSUM + 1] = 0;
  buf[o + 4] = 0;
  buf[o + 5] = 0;
  buf[o + 6] = 0;
  buf[o + 7] = 0;
  if (type === ICMP_DEST_UNREACH && code === ICMP_FRAG_NEEDED) {
    buf[o + 6] = (mtu >>> 8) & 0xff;
    buf[o + 7] = mtu & 0xff;
  } else if (type === ICMP_PARAMETER_PROB) {
    buf[o + 4] = mtu & 0xff;
  }
  original.buf.copy(buf, o + ICMP_HEADER_LEN, original.offset, original.offset + quote);
  const len = ICMP_HEADER_LEN + quote;
  const c = internetChecksum(buf, o, len);
  buf[o + ICMP_CHECKSUM] = c >>> 8;
  buf[o + ICMP_CHECKSUM + 1] = c & 0xff;
  return len;
}

/**
 * Writes a whole IPv4 packet carrying an ICMP error about `original`, as Linux's icmp_send()
 * builds it: source `src` (the address of the interface the original came in on), destination
 * the original's source, TOS = (original TOS & 0x1e) | 0xc0 (precedence "internetwork
 * control"), TTL 64, DF clear, identifier `id`. Returns the IP total length. `buf` must not
 * overlap the original packet.
 */
export function emitIcmpErrorPacket(
  buf: Buffer,
  offset: number,
  type: number,
  code: number,
  original: Ipv4View,
  src: number,
  id: number,
  mtu = 0,
): number {
  const icmpLen = emitIcmpError(buf, offset + IPV4_HEADER_LEN, type, code, original, mtu);
  emitIpv4Header(buf, offset, {
    src,
    dst: original.src,
    protocol: IPPROTO_ICMP,
    ttl: IPV4_DEFAULT_TTL,
    id,
    dontFragment: false,
    tos: (original.tos & 0x1e) | 0xc0,
    payloadLength: icmpLen,
  });
  return IPV4_HEADER_LEN + icmpLen;
}

/**
 * Whether an ICMP error may be sent about `original`, by the checks of Linux's __icmp_send()
 * and RFC 1812 4.3.2.7 that need only the packet: not about a non-first fragment; not about an
 * ICMP error or a packet of unknown ICMP type; not to a source that is 0.0.0.0, 127/8,
 * multicast or limited broadcast; not about a packet sent to multicast or limited broadcast.
 * The caller adds what needs more context: link-layer broadcast, subnet broadcast, rate limits.
 */
export function icmpErrorAllowed(original: Ipv4View): boolean {
  if ((original.flagsAndFragment & IPV4_FRAG_OFFSET_MASK) !== 0) return false;
  const s = original.src;
  const d = original.dst;
  if (s === 0 || s >>> 24 === 127 || s >>> 28 === 0xe || s === 0xffffffff) return false;
  if (d >>> 28 === 0xe || d === 0xffffffff) return false;
  if (original.protocol === IPPROTO_ICMP) {
    if (original.payloadLength < 1) return false;
    const t = original.buf[original.payloadOffset];
    if (t > ICMP_MAX_KNOWN_TYPE || icmpTypeIsError(t)) return false;
  }
  return true;
}

/**
 * Turns an echo request into its reply in place: swaps the IP addresses (header checksum
 * unchanged by a swap), sets type 0 and the TTL with incremental checksum updates. Identifier,
 * sequence, data, IP id, DF and options are kept (Linux would pick a new IP id, clear DF and
 * process options; set those with `setId`/`setDontFragment` if it matters). The Ethernet
 * header is the caller's.
 */
export function turnEchoRequestIntoReply(
  ip: Ipv4View,
  icmp: IcmpView,
  ttl = IPV4_DEFAULT_TTL,
): void {
  ip.swapAddresses();
  if (ip.ttl !== ttl) ip.setTtl(ttl);
  icmp.setType(ICMP_ECHO_REPLY);
}
