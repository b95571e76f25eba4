import { writeIpv4 } from './addr.js';
import { internetChecksum } from './checksum.js';
import { ParseResult } from './errors.js';
import {
  IPPROTO_IPIP,
  IPV4_CHECKSUM,
  IPV4_DST,
  IPV4_FLAGS_FRAG,
  IPV4_HEADER_LEN,
  IPV4_ID,
  IPV4_PROTO,
  IPV4_SRC,
  IPV4_TOS,
  IPV4_TOTAL_LEN,
  IPV4_TTL,
  Ipv4View,
} from './ipv4.js';

/**
 * IPIP (IPv4 in IPv4, RFC 2003, protocol 4) — Calico's overlay.
 *
 * Zero-copy encapsulation: frames are received/built with headroom (at least
 * {@link IPIP_OVERHEAD} bytes, plus 14 for the new Ethernet header) in front of the inner IPv4
 * packet, and the outer header is written into that headroom. Decapsulation is a re-wrap of the
 * outer payload; nothing is copied in either direction.
 */
export const IPIP_OVERHEAD = IPV4_HEADER_LEN;

/**
 * Writes a 20-byte outer IPv4 header at `inner.offset - 20` in `inner.buf`, covering the inner
 * packet (its `length`, i.e. total length); returns the outer header's offset, or -1 if there is
 * no headroom or the result would exceed 65535 bytes.
 *
 * Field choices follow Linux's ipip tunnel with the defaults of Calico's `tunl0` (ttl inherit,
 * tos inherit, pmtudisc): TTL = `ttl` if non-zero, else the inner TTL; TOS copied from the
 * inner header; DF copied from the inner header; `id` as given (the caller's counter).
 */
export function ipipEncapsulate(
  inner: Ipv4View,
  src: number,
  dst: number,
  id: number,
  ttl = 0,
): number {
  const b = inner.buf;
  const i = inner.offset;
  const o = i - IPV4_HEADER_LEN;
  const total = IPV4_HEADER_LEN + inner.length;
  if (o < 0 || total > 0xffff) return -1;
  b[o] = 0x45;
  b[o + IPV4_TOS] = b[i + IPV4_TOS];
  b[o + IPV4_TOTAL_LEN] = total >>> 8;
  b[o + IPV4_TOTAL_LEN + 1] = total & 0xff;
  b[o + IPV4_ID] = (id >>> 8) & 0xff;
  b[o + IPV4_ID + 1] = id & 0xff;
  b[o + IPV4_FLAGS_FRAG] = b[i + IPV4_FLAGS_FRAG] & 0x40;
  b[o + IPV4_FLAGS_FRAG + 1] = 0;
  b[o + IPV4_TTL] = ttl !== 0 ? ttl & 0xff : b[i + IPV4_TTL];
  b[o + IPV4_PROTO] = IPPROTO_IPIP;
  b[o + IPV4_CHECKSUM] = 0;
  b[o + IPV4_CHECKSUM + 1] = 0;
  writeIpv4(b, o + IPV4_SRC, src);
  writeIpv4(b, o + IPV4_DST, dst);
  const c = internetChecksum(b, o, IPV4_HEADER_LEN);
  b[o + IPV4_CHECKSUM] = c >>> 8;
  b[o + IPV4_CHECKSUM + 1] = c & 0xff;
  return o;
}

/**
 * Points `inner` at the packet carried by the IPIP packet `outer` (which must be wrapped).
 * `Unrecognized` if `outer` is not protocol 4, `Fragmented` if it is a fragment (Linux reassembles
 * first; we do not), otherwise the result of `inner.wrap()` (trailing bytes after the inner
 * total length are trimmed, as the kernel does).
 */
export function ipipDecapsulate(outer: Ipv4View, inner: Ipv4View): ParseResult {
  if (outer.protocol !== IPPROTO_IPIP) return ParseResult.Unrecognized;
  if (outer.isFragment) return ParseResult.Fragmented;
  return inner.wrap(outer.buf, outer.payloadOffset, outer.payloadLength);
}
