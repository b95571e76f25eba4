/**
 * The virtio-net header that TAP devices opened with IFF_VNET_HDR put in front
 * of every frame (struct virtio_net_hdr, 10 bytes, little-endian on these
 * machines). It is how the kernel and the agent exchange offloaded packets: a
 * TCP segment of up to 64 KiB (GSO) with a partial checksum, instead of forty
 * MTU-sized frames — one read and one write instead of forty of each.
 *
 * The forwarder keeps the header just before the Ethernet header of each frame
 * and moves it with the frame when IPIP headers are added or removed.
 */
export const VNET_HDR_LEN = 10;

export const VNET_FLAGS = 0;
export const VNET_GSO_TYPE = 1;
export const VNET_HDR_LEN_FIELD = 2;
export const VNET_GSO_SIZE = 4;
export const VNET_CSUM_START = 6;
export const VNET_CSUM_OFFSET = 8;

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/** TUNSETOFFLOAD bits the agent accepts: checksum offload and TCP segmentation offload. */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const AGENT_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

/** The GSO segment size of the frame whose header is at `hdr`, or 0 when it is not a GSO frame. */
export function gsoSize(buf: Buffer, hdr: number): number {
  if ((buf[hdr + VNET_GSO_TYPE]! & 0x7f) === VIRTIO_NET_HDR_GSO_NONE) return 0;
  return buf[hdr + VNET_GSO_SIZE]! | (buf[hdr + VNET_GSO_SIZE + 1]! << 8);
}

/**
 * Moves the header from `from` to `to` (both header offsets) as the frame's
 * start moves by `to - from` bytes relative to its transport header — the
 * checksum start and header length, counted from the frame start, change by
 * the opposite amount.
 */
export function moveVnetHeader(buf: Buffer, from: number, to: number, frameGrowth: number): void {
  buf.copyWithin(to, from, from + VNET_HDR_LEN);
  const flags = buf[to + VNET_FLAGS]!;
  const gso = buf[to + VNET_GSO_TYPE]! & 0x7f;
  if ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) addLe16(buf, to + VNET_CSUM_START, frameGrowth);
  if (gso !== VIRTIO_NET_HDR_GSO_NONE) addLe16(buf, to + VNET_HDR_LEN_FIELD, frameGrowth);
}

function addLe16(buf: Buffer, off: number, delta: number): void {
  const v = (buf[off]! | (buf[off + 1]! << 8)) + delta;
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
}
