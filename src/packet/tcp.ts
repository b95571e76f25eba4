import { checksumUpdate16, internetChecksum, pseudoHeaderSum } from './checksum.js';
import { ParseResult } from './errors.js';
import { EMPTY_BUFFER, rangeOk } from './internal.js';
import { IPPROTO_TCP, Ipv4View } from './ipv4.js';

export const TCP_HEADER_LEN = 20;
export const TCP_MAX_HEADER_LEN = 60;
/** Field offsets. */
export const TCP_OFF_SRC_PORT = 0;
export const TCP_OFF_DST_PORT = 2;
export const TCP_OFF_SEQ = 4;
export const TCP_OFF_ACK = 8;
export const TCP_OFF_DATA_OFFSET = 12;
export const TCP_OFF_FLAGS = 13;
export const TCP_OFF_WINDOW = 14;
export const TCP_OFF_CHECKSUM = 16;
export const TCP_OFF_URGENT = 18;
export const TCP_OFF_OPTIONS = 20;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;
/** The flag bits by name. */
export const TcpFlags = {
  FIN: TCP_FIN,
  SYN: TCP_SYN,
  RST: TCP_RST,
  PSH: TCP_PSH,
  ACK: TCP_ACK,
  URG: TCP_URG,
  ECE: TCP_ECE,
  CWR: TCP_CWR,
} as const;

/** Option kinds. */
export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WINDOW = 3;
export const TCPOPT_SACK_PERM = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;

/**
 * Zero-copy view of a TCP segment. `wrap()` takes the IP payload: 20-byte header present, data
 * offset >= 5 (`Malformed`) and within the bytes given (`Truncated`). Options are kept as bytes
 * (`optionsOffset`/`optionsLength`) and not validated; {@link TcpView.findOption} walks them
 * defensively. The view's length is the whole segment (the checksum covers it all).
 */
export class TcpView {
  buf: Buffer = EMPTY_BUFFER;
  offset = 0;
  length = 0;

  wrap(buf: Buffer, offset: number, length: number): ParseResult {
    if (!rangeOk(buf, offset, length) || length < TCP_HEADER_LEN) return ParseResult.Truncated;
    const hl = (buf[offset + TCP_OFF_DATA_OFFSET] >>> 4) << 2;
    if (hl < TCP_HEADER_LEN) return ParseResult.Malformed;
    if (hl > length) return ParseResult.Truncated;
    this.buf = buf;
    this.offset = offset;
    this.length = length;
    return ParseResult.Ok;
  }

  get srcPort(): number {
    return (this.buf[this.offset] << 8) | this.buf[this.offset + 1];
  }
  get dstPort(): number {
    const o = this.offset + TCP_OFF_DST_PORT;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  /** Sequence number, unsigned. */
  get seq(): number {
    const b = this.buf;
    const o = this.offset + TCP_OFF_SEQ;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }
  /** Acknowledgment number, unsigned. */
  get ack(): number {
    const b = this.buf;
    const o = this.offset + TCP_OFF_ACK;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }
  /** Data offset field in 32-bit words (5..15). */
  get dataOffset(): number {
    return this.buf[this.offset + TCP_OFF_DATA_OFFSET] >>> 4;
  }
  /** Header length in bytes (data offset * 4). */
  get headerLength(): number {
    return (this.buf[this.offset + TCP_OFF_DATA_OFFSET] >>> 4) << 2;
  }
  /** The eight flag bits CWR..FIN (byte 13). */
  get flags(): number {
    return this.buf[this.offset + TCP_OFF_FLAGS];
  }
  get syn(): boolean {
    return (this.buf[this.offset + TCP_OFF_FLAGS] & TCP_SYN) !== 0;
  }
  get fin(): boolean {
    return (this.buf[this.offset + TCP_OFF_FLAGS] & TCP_FIN) !== 0;
  }
  get rst(): boolean {
    return (this.buf[this.offset + TCP_OFF_FLAGS] & TCP_RST) !== 0;
  }
  get ackFlag(): boolean {
    return (this.buf[this.offset + TCP_OFF_FLAGS] & TCP_ACK) !== 0;
  }
  get window(): number {
    const o = this.offset + TCP_OFF_WINDOW;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get checksum(): number {
    const o = this.offset + TCP_OFF_CHECKSUM;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get urgentPointer(): number {
    const o = this.offset + TCP_OFF_URGENT;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  get optionsOffset(): number {
    return this.offset + TCP_OFF_OPTIONS;
  }
  get optionsLength(): number {
    return this.headerLength - TCP_HEADER_LEN;
  }
  get payloadOffset(): number {
    return this.offset + this.headerLength;
  }
  get payloadLength(): number {
    return this.length - this.headerLength;
  }

  /**
   * Offset in `buf` of the first option of `kind` (its kind byte), or -1. Stops at EOL or at a
   * malformed option (length < 2 or past the header), as Linux's tcp_parse_options does.
   */
  findOption(kind: number): number {
    const b = this.buf;
    const end = this.offset + this.headerLength;
    let i = this.offset + TCP_OFF_OPTIONS;
    while (i < end) {
      const k = b[i];
      if (k === TCPOPT_EOL) return -1;
      if (k === TCPOPT_NOP) {
        i++;
        continue;
      }
      if (i + 1 >= end) return -1;
      const l = b[i + 1];
      if (l < 2 || i + l > end) return -1;
      if (k === kind) return i;
      i += l;
    }
    return -1;
  }
  /** MSS option value, or -1 if absent or of the wrong length. */
  get mss(): number {
    const i = this.findOption(TCPOPT_MSS);
    if (i < 0 || this.buf[i + 1] !== 4) return -1;
    return (this.buf[i + 2] << 8) | this.buf[i + 3];
  }
  /** Window scale shift, or -1 if absent or of the wrong length. */
  get windowScale(): number {
    const i = this.findOption(TCPOPT_WINDOW);
    if (i < 0 || this.buf[i + 1] !== 3) return -1;
    return this.buf[i + 2];
  }

  /** True if the checksum over pseudo-header + segment verifies. */
  verifyChecksum(ip: Ipv4View): boolean {
    const init = pseudoHeaderSum(ip.src, ip.dst, IPPROTO_TCP, this.length);
    return internetChecksum(this.buf, this.offset, this.length, init) === 0;
  }
  /** Computes the checksum from scratch. */
  fillChecksum(ip: Ipv4View): void {
    const b = this.buf;
    const o = this.offset + TCP_OFF_CHECKSUM;
    b[o] = 0;
    b[o + 1] = 0;
    const init = pseudoHeaderSum(ip.src, ip.dst, IPPROTO_TCP, this.length);
    const c = internetChecksum(b, this.offset, this.length, init);
    b[o] = c >>> 8;
    b[o + 1] = c & 0xff;
  }

  private updateWord(at: number, word: number): void {
    const b = this.buf;
    const o = this.offset + at;
    const old = (b[o] << 8) | b[o + 1];
    b[o] = (word >>> 8) & 0xff;
    b[o + 1] = word & 0xff;
    const c = this.offset + TCP_OFF_CHECKSUM;
    const n = checksumUpdate16((b[c] << 8) | b[c + 1], old, word & 0xffff);
    b[c] = n >>> 8;
    b[c + 1] = n & 0xff;
  }
  /** Incremental checksum update. */
  setSrcPort(port: number): void {
    this.updateWord(TCP_OFF_SRC_PORT, port);
  }
  /** Incremental checksum update. */
  setDstPort(port: number): void {
    this.updateWord(TCP_OFF_DST_PORT, port);
  }
  /** Incremental checksum update (e.g. for MSS clamping of a window or flag rewrite). */
  setWindow(window: number): void {
    this.updateWord(TCP_OFF_WINDOW, window);
  }
}

/** A TCP header to emit. */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** Flag bits (`TcpFlags`). */
  flags: number;
  window: number;
  urgentPointer?: number;
  /** Raw option bytes, written as is and padded with EOL (0) to a multiple of 4 (max 40). */
  options?: Uint8Array;
}

/**
 * Writes a TCP header in front of `payloadLength` bytes already in place after it and fills the
 * checksum with the pseudo-header of `srcAddr`/`dstAddr`. Returns the header length.
 */
export function emitTcp(
  buf: Buffer,
  offset: number,
  repr: TcpRepr,
  srcAddr: number,
  dstAddr: number,
  payloadLength: number,
): number {
  const o = offset;
  const opts = repr.options;
  const optLen = opts ? (opts.length + 3) & ~3 : 0;
  if (optLen > TCP_MAX_HEADER_LEN - TCP_HEADER_LEN) throw new RangeError('TCP options too long');
  const hl = TCP_HEADER_LEN + optLen;
  buf[o] = (repr.srcPort >>> 8) & 0xff;
  buf[o + 1] = repr.srcPort & 0xff;
  buf[o + 2] = (repr.dstPort >>> 8) & 0xff;
  buf[o + 3] = repr.dstPort & 0xff;
  buf[o + 4] = repr.seq >>> 24;
  buf[o + 5] = (repr.seq >>> 16) & 0xff;
  buf[o + 6] = (repr.seq >>> 8) & 0xff;
  buf[o + 7] = repr.seq & 0xff;
  buf[o + 8] = repr.ack >>> 24;
  buf[o + 9] = (repr.ack >>> 16) & 0xff;
  buf[o + 10] = (repr.ack >>> 8) & 0xff;
  buf[o + 11] = repr.ack & 0xff;
  buf[o + TCP_OFF_DATA_OFFSET] = (hl >>> 2) << 4;
  buf[o + TCP_OFF_FLAGS] = repr.flags & 0xff;
  buf[o + TCP_OFF_WINDOW] = (repr.window >>> 8) & 0xff;
  buf[o + TCP_OFF_WINDOW + 1] = repr.window & 0xff;
  buf[o + TCP_OFF_CHECKSUM] = 0;
  buf[o + TCP_OFF_CHECKSUM + 1] = 0;
  const urg = repr.urgentPointer ?? 0;
  buf[o + TCP_OFF_URGENT] = (urg >>> 8) & 0xff;
  buf[o + TCP_OFF_URGENT + 1] = urg & 0xff;
  if (opts) {
    for (let i = 0; i < opts.length; i++) buf[o + TCP_OFF_OPTIONS + i] = opts[i];
    for (let i = opts.length; i < optLen; i++) buf[o + TCP_OFF_OPTIONS + i] = TCPOPT_EOL;
  }
  const len = hl + payloadLength;
  const init = pseudoHeaderSum(srcAddr, dstAddr, IPPROTO_TCP, len);
  const c = internetChecksum(buf, o, len, init);
  buf[o + TCP_OFF_CHECKSUM] = c >>> 8;
  buf[o + TCP_OFF_CHECKSUM + 1] = c & 0xff;
  return hl;
}
