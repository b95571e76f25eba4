/**
 * pcap capture of an agent interface (what `kubewire pcap` streams, and what
 * tcpdump -r / wireshark read). Classic libpcap format, microsecond stamps.
 * Link types: Ethernet for links with a link layer, RAW (bare IPv4) for tunl0,
 * as tcpdump shows the kernel's tunl0.
 */
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
const SNAPLEN = 262_144;

export function pcapGlobalHeader(linkType: number): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(0xa1b2c3d4, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeInt32LE(0, 8);
  h.writeUInt32LE(0, 12);
  h.writeUInt32LE(SNAPLEN, 16);
  h.writeUInt32LE(linkType, 20);
  return h;
}

/** One record: header and a copy of the frame (the frame's buffer is reused after the batch). */
export function pcapRecord(buf: Buffer, offset: number, length: number, nowMs: number): Buffer {
  const incl = Math.min(length, SNAPLEN);
  const rec = Buffer.allocUnsafe(16 + incl);
  const sec = Math.floor(nowMs / 1000);
  rec.writeUInt32LE(sec, 0);
  rec.writeUInt32LE(Math.floor((nowMs - sec * 1000) * 1000), 4);
  rec.writeUInt32LE(incl, 8);
  rec.writeUInt32LE(length, 12);
  buf.copy(rec, 16, offset, offset + incl);
  return rec;
}

/** Receives copies of an interface's frames while a capture is running; null otherwise. */
export type CaptureHook = ((buf: Buffer, offset: number, length: number) => void) | null;
