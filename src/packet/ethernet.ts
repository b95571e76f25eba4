import { macCopy, macEquals } from './addr.js';
import { ParseResult } from './errors.js';
import { EMPTY_BUFFER, rangeOk } from './internal.js';

/** Ethernet II header: destination MAC, source MAC, EtherType. No 802.1Q tags, no FCS. */
export const ETH_HEADER_LEN = 14;
export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;

/** Minimum Ethernet frame without FCS; shorter frames are padded on the wire (not by us). */
export const ETH_MIN_FRAME = 60;

/**
 * Zero-copy view of an Ethernet II frame. Reusable: `wrap()` re-points it at another frame
 * without allocating. After a failed `wrap()` the view must not be used.
 */
export class EthernetView {
  buf: Buffer = EMPTY_BUFFER;
  offset = 0;
  length = 0;

  /** Checks that the 14-byte header is present. Any EtherType is accepted. */
  wrap(buf: Buffer, offset: number, length: number): ParseResult {
    if (!rangeOk(buf, offset, length) || length < ETH_HEADER_LEN) return ParseResult.Truncated;
    this.buf = buf;
    this.offset = offset;
    this.length = length;
    return ParseResult.Ok;
  }

  get etherType(): number {
    const o = this.offset + ETH_TYPE;
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  setEtherType(t: number): void {
    const o = this.offset + ETH_TYPE;
    this.buf[o] = t >>> 8;
    this.buf[o + 1] = t & 0xff;
  }

  /** Offset of the destination MAC in `buf`. */
  get dstOffset(): number {
    return this.offset + ETH_DST;
  }
  /** Offset of the source MAC in `buf`. */
  get srcOffset(): number {
    return this.offset + ETH_SRC;
  }

  dstIs(mac: Uint8Array): boolean {
    return macEquals(this.buf, this.offset + ETH_DST, mac);
  }
  srcIs(mac: Uint8Array): boolean {
    return macEquals(this.buf, this.offset + ETH_SRC, mac);
  }
  get dstIsBroadcast(): boolean {
    const b = this.buf;
    const o = this.offset;
    return (b[o] & b[o + 1] & b[o + 2] & b[o + 3] & b[o + 4] & b[o + 5]) === 0xff;
  }
  /** Group bit set (includes broadcast). */
  get dstIsMulticast(): boolean {
    return (this.buf[this.offset] & 1) === 1;
  }
  /** Group bit of the source set: invalid source, Linux drops such frames. */
  get srcIsMulticast(): boolean {
    return (this.buf[this.offset + ETH_SRC] & 1) === 1;
  }

  setDst(mac: Uint8Array): void {
    macCopy(this.buf, this.offset + ETH_DST, mac);
  }
  setSrc(mac: Uint8Array): void {
    macCopy(this.buf, this.offset + ETH_SRC, mac);
  }
  copySrcTo(target: Uint8Array, off: number): void {
    macCopy(target, off, this.buf, this.offset + ETH_SRC);
  }
  copyDstTo(target: Uint8Array, off: number): void {
    macCopy(target, off, this.buf, this.offset + ETH_DST);
  }
  /** Swaps source and destination MAC in place (for replies). */
  swapAddresses(): void {
    const b = this.buf;
    const d = this.offset + ETH_DST;
    const s = this.offset + ETH_SRC;
    for (let i = 0; i < 6; i++) {
      const t = b[d + i];
      b[d + i] = b[s + i];
      b[s + i] = t;
    }
  }

  get payloadOffset(): number {
    return this.offset + ETH_HEADER_LEN;
  }
  /** Bytes after the header, including any trailing padding of short frames. */
  get payloadLength(): number {
    return this.length - ETH_HEADER_LEN;
  }
}

/** Writes an Ethernet II header; returns the bytes written (14). */
export function emitEthernetHeader(
  buf: Buffer,
  offset: number,
  dst: Uint8Array,
  src: Uint8Array,
  etherType: number,
): number {
  macCopy(buf, offset + ETH_DST, dst);
  macCopy(buf, offset + ETH_SRC, src);
  buf[offset + ETH_TYPE] = etherType >>> 8;
  buf[offset + ETH_TYPE + 1] = etherType & 0xff;
  return ETH_HEADER_LEN;
}
