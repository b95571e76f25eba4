import { checksumUpdate16, internetChecksum, pseudoHeaderSum } from './checksum.js';
import { ParseResult } from './errors.js';
import { EMPTY_BUFFER, rangeOk } from './internal.js';
import { IPPROTO_UDP, Ipv4View } from './ipv4.js';

export const UDP_HEADER_LEN = 8;
export const UDP_SRC_PORT = 0;
export const UDP_DST_PORT = 2;
export const UDP_LENGTH = 4;
export const UDP_CHECKSUM = 6;

/**
 * Zero-copy view of a UDP datagram. `wrap()` takes the IP payload: header present, length field
 * >= 8 (`Malformed`) and <= the bytes given (`Truncated`); the view's length becomes the length
 * field (extra IP payload is ignored, as Linux trims it).
 *
 * Checksum 0 means "none" on IPv4: it verifies, and incremental updates keep it 0; a computed
 * checksum of 0 is sent as 0xffff (RFC 768).
 */
export class UdpView {
  buf: Buffer = EMPTY_BUFFER;
  offset = 0;
  length = 0;

  wrap(buf: Buffer, offset: number, length: number): ParseResult {
    if (!rangeOk(buf, offset, length) || length < UDP_HEADER_LEN) return ParseResult.Truncated;
    const l = (buf[offset + UDP_LENGTH] << 8) | buf[offset + UDP_LENGTH + 1];
    if (l < UDP_HEADER_LEN) return ParseResult.Malformed;
    if (l > length) return ParseResult.Truncated;
    this.buf = buf;
    this.offset = offset;
    this.length = l;
    return ParseResult.Ok;
  }

  get srcPort(): number {
    return (this.buf[this.offset] << 8) | this.buf[this.offset + 1];
  }
  get dstPort(): number {
    const o = this.offset + UDP_DST_PORT;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  /** The length field (header + data); equals `length` after `wrap()`. */
  get udpLength(): number {
    const o = this.offset + UDP_LENGTH;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get checksum(): number {
    const o = this.offset + UDP_CHECKSUM;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get payloadOffset(): number {
    return this.offset + UDP_HEADER_LEN;
  }
  get payloadLength(): number {
    return this.length - UDP_HEADER_LEN;
  }

  /** True if the checksum is 0 (not used) or verifies over pseudo-header + datagram. */
  verifyChecksum(ip: Ipv4View): boolean {
    if (this.checksum === 0) return true;
    const init = pseudoHeaderSum(ip.src, ip.dst, IPPROTO_UDP, this.length);
    return internetChecksum(this.buf, this.offset, this.length, init) === 0;
  }
  /** Computes the checksum from scratch (0 becomes 0xffff). */
  fillChecksum(ip: Ipv4View): void {
    const b = this.buf;
    const o = this.offset + UDP_CHECKSUM;
    b[o] = 0;
    b[o + 1] = 0;
    const init = pseudoHeaderSum(ip.src, ip.dst, IPPROTO_UDP, this.length);
    const c = internetChecksum(b, this.offset, this.length, init) || 0xffff;
    b[o] = c >>> 8;
    b[o + 1] = c & 0xff;
  }

  private setPort(at: number, port: number): void {
    const b = this.buf;
    const o = this.offset + at;
    const old = (b[o] << 8) | b[o + 1];
    b[o] = (port >>> 8) & 0xff;
    b[o + 1] = port & 0xff;
    const c = this.offset + UDP_CHECKSUM;
    const csum = (b[c] << 8) | b[c + 1];
    if (csum === 0) return;
    const n = checksumUpdate16(csum, old, port & 0xffff) || 0xffff;
    b[c] = n >>> 8;
    b[c + 1] = n & 0xff;
  }
  /** Incremental checksum update (a zero checksum stays zero). */
  setSrcPort(port: number): void {
    this.setPort(UDP_SRC_PORT, port);
  }
  /** Incremental checksum update (a zero checksum stays zero). */
  setDstPort(port: number): void {
    this.setPort(UDP_DST_PORT, port);
  }
}

/**
 * Writes a UDP header in front of `payloadLength` bytes already at `offset + 8` and fills the
 * checksum with the pseudo-header of `srcAddr`/`dstAddr` (0 is sent as 0xffff), or leaves it 0
 * if `withChecksum` is false. Returns 8.
 */
export function emitUdp(
  buf: Buffer,
  offset: number,
  srcPort: number,
  dstPort: number,
  payloadLength: number,
  srcAddr: number,
  dstAddr: number,
  withChecksum = true,
): number {
  const o = offset;
  const len = UDP_HEADER_LEN + payloadLength;
  buf[o] = (srcPort >>> 8) & 0xff;
  buf[o + 1] = srcPort & 0xff;
  buf[o + 2] = (dstPort >>> 8) & 0xff;
  buf[o + 3] = dstPort & 0xff;
  buf[o + 4] = (len >>> 8) & 0xff;
  buf[o + 5] = len & 0xff;
  buf[o + 6] = 0;
  buf[o + 7] = 0;
  if (withChecksum) {
    const init = pseudoHeaderSum(srcAddr, dstAddr, IPPROTO_UDP, len);
    const c = internetChecksum(buf, o, len, init) || 0xffff;
    buf[o + 6] = c >>> 8;
    buf[o + 7] = c & 0xff;
  }
  return UDP_HEADER_LEN;
}
