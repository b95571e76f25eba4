import { macCopy, macEquals, readIpv4, writeIpv4 } from './addr.js';
import { ParseResult } from './errors.js';
import { EMPTY_BUFFER, rangeOk } from './internal.js';

/** ARP for Ethernet/IPv4 (RFC 826): the only hardware/protocol pair supported. */
export const ARP_LEN = 28;
export const ARP_HTYPE = 0;
export const ARP_PTYPE = 2;
export const ARP_HLEN = 4;
export const ARP_PLEN = 5;
export const ARP_OPER = 6;
export const ARP_SHA = 8;
export const ARP_SPA = 14;
export const ARP_THA = 18;
export const ARP_TPA = 24;

export const ARP_HTYPE_ETHERNET = 1;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

/**
 * Zero-copy view of an Ethernet/IPv4 ARP packet. `wrap()` accepts only hardware type 1,
 * protocol 0x0800, lengths 6/4 and operation request/reply (anything else: `Unrecognized`).
 * The view's length is 28; Ethernet padding after it is ignored.
 */
export class ArpView {
  buf: Buffer = EMPTY_BUFFER;
  offset = 0;
  length = 0;

  wrap(buf: Buffer, offset: number, length: number): ParseResult {
    if (!rangeOk(buf, offset, length) || length < ARP_LEN) return ParseResult.Truncated;
    const o = offset;
    if (
      buf[o] !== 0 ||
      buf[o + 1] !== ARP_HTYPE_ETHERNET ||
      buf[o + 2] !== 0x08 ||
      buf[o + 3] !== 0x00 ||
      buf[o + ARP_HLEN] !== 6 ||
      buf[o + ARP_PLEN] !== 4 ||
      buf[o + ARP_OPER] !== 0 ||
      (buf[o + ARP_OPER + 1] !== ARP_OP_REQUEST && buf[o + ARP_OPER + 1] !== ARP_OP_REPLY)
    ) {
      return ParseResult.Unrecognized;
    }
    this.buf = buf;
    this.offset = offset;
    this.length = ARP_LEN;
    return ParseResult.Ok;
  }

  get op(): number {
    return this.buf[this.offset + ARP_OPER + 1];
  }
  setOp(op: number): void {
    this.buf[this.offset + ARP_OPER] = 0;
    this.buf[this.offset + ARP_OPER + 1] = op;
  }

  /** Offset of the sender hardware address in `buf`. */
  get senderMacOffset(): number {
    return this.offset + ARP_SHA;
  }
  /** Offset of the target hardware address in `buf`. */
  get targetMacOffset(): number {
    return this.offset + ARP_THA;
  }
  get senderIp(): number {
    return readIpv4(this.buf, this.offset + ARP_SPA);
  }
  get targetIp(): number {
    return readIpv4(this.buf, this.offset + ARP_TPA);
  }
  /** Gratuitous ARP: sender and target protocol address equal. */
  get isGratuitous(): boolean {
    return this.senderIp === this.targetIp;
  }

  senderMacIs(mac: Uint8Array): boolean {
    return macEquals(this.buf, this.offset + ARP_SHA, mac);
  }
  copySenderMacTo(target: Uint8Array, off: number): void {
    macCopy(target, off, this.buf, this.offset + ARP_SHA);
  }
  copyTargetMacTo(target: Uint8Array, off: number): void {
    macCopy(target, off, this.buf, this.offset + ARP_THA);
  }

  setSenderMac(mac: Uint8Array): void {
    macCopy(this.buf, this.offset + ARP_SHA, mac);
  }
  setTargetMac(mac: Uint8Array): void {
    macCopy(this.buf, this.offset + ARP_THA, mac);
  }
  setSenderIp(a: number): void {
    writeIpv4(this.buf, this.offset + ARP_SPA, a);
  }
  setTargetIp(a: number): void {
    writeIpv4(this.buf, this.offset + ARP_TPA, a);
  }

  /**
   * Turns a request into the reply "target IP is-at `mac`" in place: op 2, the old sender
   * becomes the target, `mac` and the requested address become the sender. The Ethernet
   * header is the caller's (destination = requester, source = `mac`).
   */
  turnRequestIntoReply(mac: Uint8Array): void {
    const b = this.buf;
    const o = this.offset;
    const requested = readIpv4(b, o + ARP_TPA);
    macCopy(b, o + ARP_THA, b, o + ARP_SHA);
    for (let i = 0; i < 4; i++) b[o + ARP_TPA + i] = b[o + ARP_SPA + i];
    macCopy(b, o + ARP_SHA, mac);
    writeIpv4(b, o + ARP_SPA, requested);
    b[o + ARP_OPER + 1] = ARP_OP_REPLY;
  }
}

/** Writes a 28-byte Ethernet/IPv4 ARP packet; returns 28. */
export function emitArp(
  buf: Buffer,
  offset: number,
  op: number,
  senderMac: Uint8Array,
  senderIp: number,
  targetMac: Uint8Array,
  targetIp: number,
): number {
  const o = offset;
  buf[o] = 0;
  buf[o + 1] = ARP_HTYPE_ETHERNET;
  buf[o + 2] = 0x08;
  buf[o + 3] = 0x00;
  buf[o + ARP_HLEN] = 6;
  buf[o + ARP_PLEN] = 4;
  buf[o + ARP_OPER] = op >>> 8;
  buf[o + ARP_OPER + 1] = op & 0xff;
  macCopy(buf, o + ARP_SHA, senderMac);
  writeIpv4(buf, o + ARP_SPA, senderIp);
  macCopy(buf, o + ARP_THA, targetMac);
  writeIpv4(buf, o + ARP_TPA, targetIp);
  return ARP_LEN;
}
