import { readIpv4, writeIpv4 } from './addr.js';
import { checksumApplyDelta, checksumDelta32, checksumUpdate16 } from './checksum.js';
import {
  ICMP_CHECKSUM,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_REST,
  ICMP_TIMESTAMP,
  ICMP_TIMESTAMP_REPLY,
} from './icmp.js';
import {
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_CHECKSUM,
  IPV4_DST,
  IPV4_FRAG_OFFSET_MASK,
  IPV4_SRC,
  Ipv4View,
} from './ipv4.js';
import { TCP_OFF_CHECKSUM } from './tcp.js';
import { UDP_CHECKSUM } from './udp.js';

/**
 * NAT rewrites in place with incremental checksums (RFC 1624), as Linux's nf_nat_ipv4_manip_pkt
 * and the l4proto manip functions do:
 *
 * - the IPv4 header checksum is updated for the address;
 * - TCP: checksum updated for the address (pseudo-header) and the port;
 * - UDP: same, except that a zero checksum ("none") stays zero and a result of zero is written
 *   as 0xffff;
 * - ICMP query messages (echo, timestamp): the identifier plays the port's role (as in
 *   conntrack's ICMP tuples), its change goes into the ICMP checksum; the address does not (ICMP
 *   has no pseudo-header). ICMP errors and other protocols: IP header only.
 * - Non-first fragments carry no transport header: IP header only. A first fragment is rewritten
 *   fully (its checksum covers the whole datagram, which the incremental update keeps correct).
 *
 * `newPort` < 0 keeps the port. The view must be wrapped; a transport header cut short (fewer
 * bytes than its checksum field) is left alone. Allocation-free.
 */
export function natRewriteSrc(ip: Ipv4View, newAddr: number, newPort: number): void {
  rewriteTransport(ip, replaceAddress(ip, IPV4_SRC, newAddr), newPort, 0);
}

/** Destination counterpart of {@link natRewriteSrc}. */
export function natRewriteDst(ip: Ipv4View, newAddr: number, newPort: number): void {
  rewriteTransport(ip, replaceAddress(ip, IPV4_DST, newAddr), newPort, 2);
}

/**
 * Writes the address and fixes the IP header checksum; returns the RFC 1624 delta of the change
 * for the transport checksum, or -1 if the address did not change. Small enough to be inlined,
 * so the (often heap-boxed) 32-bit address never crosses a call: only the 16-bit delta does.
 */
function replaceAddress(ip: Ipv4View, field: number, addr: number): number {
  const b = ip.buf;
  const a = ip.offset + field;
  const oldAddr = readIpv4(b, a);
  const newAddr = addr >>> 0;
  if (oldAddr === newAddr) return -1;
  writeIpv4(b, a, newAddr);
  const delta = checksumDelta32(oldAddr, newAddr);
  const c = ip.offset + IPV4_CHECKSUM;
  const n = checksumApplyDelta((b[c] << 8) | b[c + 1], delta);
  b[c] = n >>> 8;
  b[c + 1] = n & 0xff;
  return delta;
}

function rewriteTransport(ip: Ipv4View, delta: number, newPort: number, portField: number): void {
  if ((ip.flagsAndFragment & IPV4_FRAG_OFFSET_MASK) !== 0) return;
  const b = ip.buf;
  const p = ip.payloadOffset;
  const plen = ip.payloadLength;
  const proto = ip.protocol;
  let csumAt: number;
  if (proto === IPPROTO_TCP) {
    if (plen < TCP_OFF_CHECKSUM + 2) return;
    csumAt = p + TCP_OFF_CHECKSUM;
  } else if (proto === IPPROTO_UDP) {
    if (plen < UDP_CHECKSUM + 2) return;
    csumAt = p + UDP_CHECKSUM;
  } else if (proto === IPPROTO_ICMP) {
    if (newPort < 0 || plen < 8) return;
    const t = b[p];
    if (
      t !== ICMP_ECHO_REQUEST &&
      t !== ICMP_ECHO_REPLY &&
      t !== ICMP_TIMESTAMP &&
      t !== ICMP_TIMESTAMP_REPLY
    ) {
      return;
    }
    const id = p + ICMP_REST;
    const oldId = (b[id] << 8) | b[id + 1];
    b[id] = (newPort >>> 8) & 0xff;
    b[id + 1] = newPort & 0xff;
    const c = p + ICMP_CHECKSUM;
    const n = checksumUpdate16((b[c] << 8) | b[c + 1], oldId, newPort & 0xffff);
    b[c] = n >>> 8;
    b[c + 1] = n & 0xff;
    return;
  } else {
    return;
  }
  let csum = (b[csumAt] << 8) | b[csumAt + 1];
  const udpNoChecksum = proto === IPPROTO_UDP && csum === 0;
  if (!udpNoChecksum && delta >= 0) csum = checksumApplyDelta(csum, delta);
  if (newPort >= 0) {
    const q = p + portField;
    const oldPort = (b[q] << 8) | b[q + 1];
    b[q] = (newPort >>> 8) & 0xff;
    b[q + 1] = newPort & 0xff;
    if (!udpNoChecksum) csum = checksumUpdate16(csum, oldPort, newPort & 0xffff);
  }
  if (udpNoChecksum) return;
  if (csum === 0 && proto === IPPROTO_UDP) csum = 0xffff;
  b[csumAt] = csum >>> 8;
  b[csumAt + 1] = csum & 0xff;
}
