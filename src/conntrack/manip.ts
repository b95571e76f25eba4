/**
 * In-place NAT rewriting of IPv4 packets, as Linux's `nf_nat_ipv4_manip_pkt()` and the
 * per-protocol `*_manip_pkt()` of net/netfilter/nf_nat_proto.c, with both kinds of transport
 * checksum a packet may carry:
 *
 * - a full checksum (CHECKSUM_NONE / COMPLETE): RFC 1624 incremental updates for the
 *   pseudo-header address and for the port (`csum_replace4`, `inet_proto_csum_replace2`);
 * - a partial one (CHECKSUM_PARTIAL: a virtio-net header with NEEDS_CSUM, the L4 checksum
 *   field holding only the folded pseudo-header sum, *not* complemented, for the receiver or
 *   the NIC to complete): `inet_proto_csum_replace4(..., pseudohdr=true)` adds the address
 *   delta to the non-complemented field, and port changes leave it alone (ports are not in
 *   the pseudo-header; whoever completes the checksum sums the rewritten ports).
 *
 * The IPv4 header checksum is always a full one. Allocation-free.
 */
import { checksumApplyDelta, checksumDelta32, checksumUpdate16 } from '../packet/index.js';

/**
 * Adds a {@link checksumDelta32} to a CHECKSUM_PARTIAL transport checksum field (a folded,
 * non-complemented pseudo-header sum): Linux's `~csum_fold(csum_add(csum_sub(
 * csum_unfold(*sum), from), to))`. Returns the new 16-bit field.
 */
export function partialChecksumAddDelta(field: number, delta: number): number {
  let s = (field & 0xffff) + delta;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Manip types (enum nf_nat_manip_type). */
export const MANIP_SRC = 0;
export const MANIP_DST = 1;

function isIcmpQuery(t: number): boolean {
  // echo, echo reply, timestamp (+reply), info request (+reply), address mask (+reply)
  return t === 8 || t === 0 || t === 13 || t === 14 || t === 15 || t === 16 || t === 17 || t === 18;
}

/**
 * Rewrites the source (`manip` {@link MANIP_SRC}) or destination address of the IPv4 packet at
 * `ipOff` to `newAddr`, and its transport "port" to `newPort` (TCP/UDP port; ICMP query
 * identifier; ignored for other protocols; < 0 keeps it), fixing the checksums.
 *
 * `len` is the number of bytes present from `ipOff` (for a packet quoted inside an ICMP error,
 * everything up to the end of the outer packet). As in Linux, a TCP header cut short (fewer
 * than 20 bytes present, e.g. the 8 bytes an ICMP error must quote) gets its port rewritten but
 * not its checksum; a non-first fragment gets the IP header only. Returns false when the
 * transport header is too short to rewrite at all (Linux drops such a packet).
 */
export function natManipPacket(
  b: Uint8Array,
  ipOff: number,
  len: number,
  manip: number,
  newAddr: number,
  newPort: number,
  partial: boolean,
): boolean {
  const ihl = (b[ipOff] & 0x0f) << 2;
  const at = ipOff + (manip === MANIP_SRC ? 12 : 16);
  const oldAddr = ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
  const nAddr = newAddr >>> 0;
  const delta = oldAddr === nAddr ? -1 : checksumDelta32(oldAddr, nAddr);
  const fragOff = ((b[ipOff + 6] << 8) | b[ipOff + 7]) & 0x1fff;
  if (fragOff === 0) {
    const proto = b[ipOff + 9];
    const l4 = ipOff + ihl;
    const l4Len = len - ihl;
    if (proto === 6 || proto === 17) {
      if (l4Len < 8) return false;
      const pAt = l4 + (manip === MANIP_SRC ? 0 : 2);
      const oldPort = (b[pAt] << 8) | b[pAt + 1];
      const port = newPort < 0 ? oldPort : newPort & 0xffff;
      b[pAt] = port >>> 8;
      b[pAt + 1] = port & 0xff;
      const cAt = l4 + (proto === 6 ? 16 : 6);
      const haveCsum = proto === 6 ? l4Len >= 20 : l4Len >= 8;
      if (haveCsum) {
        let c = (b[cAt] << 8) | b[cAt + 1];
        if (proto === 6 || c !== 0 || partial) {
          if (partial) {
            if (delta >= 0) c = partialChecksumAddDelta(c, delta);
          } else {
            if (delta >= 0) c = checksumApplyDelta(c, delta);
            if (port !== oldPort) c = checksumUpdate16(c, oldPort, port);
          }
          if (proto === 17 && c === 0) c = 0xffff; // CSUM_MANGLED_0
          b[cAt] = c >>> 8;
          b[cAt + 1] = c & 0xff;
        }
      }
    } else if (proto === 1) {
      if (l4Len < 8) return false;
      if (newPort >= 0 && isIcmpQuery(b[l4])) {
        const oldId = (b[l4 + 4] << 8) | b[l4 + 5];
        const id = newPort & 0xffff;
        b[l4 + 4] = id >>> 8;
        b[l4 + 5] = id & 0xff;
        if (!partial && id !== oldId) {
          const c = checksumUpdate16((b[l4 + 2] << 8) | b[l4 + 3], oldId, id);
          b[l4 + 2] = c >>> 8;
          b[l4 + 3] = c & 0xff;
        }
      }
    }
  }
  if (delta >= 0) {
    b[at] = nAddr >>> 24;
    b[at + 1] = (nAddr >>> 16) & 0xff;
    b[at + 2] = (nAddr >>> 8) & 0xff;
    b[at + 3] = nAddr & 0xff;
    const hc = ipOff + 10;
    const c = checksumApplyDelta((b[hc] << 8) | b[hc + 1], delta);
    b[hc] = c >>> 8;
    b[hc + 1] = c & 0xff;
  }
  return true;
}
