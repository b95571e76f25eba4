import {
  checksumFold,
  checksumUpdate16,
  internetChecksum,
  pseudoHeaderSum,
} from '../packet/checksum.js';
import { EMPTY_BUFFER } from '../packet/internal.js';
import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VNET_CSUM_OFFSET,
  VNET_CSUM_START,
  VNET_FLAGS,
  VNET_GSO_SIZE,
  VNET_GSO_TYPE,
  VNET_HDR_LEN_FIELD,
} from './vnet.js';

/**
 * Generic receive offload for TCP over IPv4, where the agent hands frames to a
 * Linux stack through a TAP with virtio-net headers (a pod, or the node's own
 * kernel): consecutive segments of one TCP flow become one GSO frame
 * (VIRTIO_NET_HDR_GSO_TCPV4 with a partial checksum), so the receiving kernel
 * gets one 64 KiB segment — one write(2) and one pass through its TCP stack,
 * and one ACK, instead of ~45 of each. What may merge follows Linux's
 * dev_gro_receive → inet_gro_receive → tcp4_gro_receive → tcp_gro_receive
 * (net/core/gro.c, net/ipv4/af_inet.c, net/ipv4/tcp_offload.c):
 *
 * - a candidate is a frame that is not already GSO, IPv4 without options, not
 *   a fragment (only DF may be set), TCP, whose IP total length is exactly what
 *   follows the Ethernet header (no padding), with a header that fits, and a
 *   checksum that is partial (NEEDS_CSUM), validated (DATA_VALID) or, with no
 *   offload information, verifies;
 * - a candidate joins the held packet when it is of the same flow (addresses,
 *   ports; same Ethernet header) and: same TTL, TOS and DF; IP ID incrementing
 *   by one per segment, or fixed when DF is set (decided at the second
 *   segment, inet_gro_flush); same ACK number; the same data offset, flags and
 *   window except CWR, PSH and FIN, and no CWR on it; identical options (byte
 *   for byte: timestamps included); its sequence number right after the held
 *   data; a payload of 1..gso_size bytes (gso_size = the first segment's
 *   payload); and the merged IP packet stays below 64 KiB;
 * - after joining, a payload shorter than gso_size or PSH/FIN ends the packet
 *   (PSH and FIN are carried over to the merged header); a segment of the flow
 *   that cannot join ends the held packet and starts a new one unless it has
 *   no payload or carries URG, PSH, RST, SYN or FIN, in which case it goes out
 *   alone, after the held packet;
 * - anything else of the held flow (a fragment, IP options, a bad checksum…)
 *   ends the held packet and goes out after it; frames of other flows that GRO
 *   does not hold (pure ACKs, UDP, ICMP, ARP) go out at once and leave the held
 *   packet be, as in Linux, where they go up during the poll and the held
 *   packets at its end. Within a flow the order is always kept.
 *
 * Differences from Linux, all on the side of merging less: one flow is held per
 * output interface (Linux holds up to 8 per hash bucket of a NAPI context), so
 * a segment of another flow that could be held ends the held packet and takes
 * its place; segments must lie in the same buffer (one read arena), as the
 * merged frame is written gathered from them; at most {@link GRO_MAX_SEGS}
 * segments merge; already offloaded (GSO) frames are never merged further. The merged frame carries what tcp_gro_complete and
 * inet_gro_complete write: the new IP total length and header checksum, the TCP
 * checksum field set to the pseudo-header sum (the receiver completes it), and
 * a virtio header with NEEDS_CSUM, GSO_TCPV4 (+ ECN when the first segment has
 * CWR), gso_size and hdr_len. A packet that ends with a single segment goes out
 * untouched.
 *
 * Where it sits: Linux runs GRO in the NIC's NAPI poll, before netfilter, so
 * its hooks, conntrack and rule counters see one packet per merged GSO packet
 * — a number that depends on interrupt timing. Here GRO runs at transmit to the
 * pod, after every hook: netfilter and conntrack see each segment exactly as
 * they would without GRO (rule packet counters and conntrack packet counts are
 * per segment, the byte counts are the same either way, and TCP window
 * tracking sees every segment), and the only thing that changes is what the
 * receiving kernel gets.
 */

const ETH_LEN = 14;
const IP_LEN = 20;
const TCP_LEN = 20;
/** skb_gro_receive: the merged packet (from the IP header) must stay below GRO_LEGACY_MAX_SIZE. */
export const GRO_MAX_IP_LEN = 65535;
/**
 * Segments per merged frame, each a part of one gathered write: 64 segments of the
 * underlay's 1440-byte MSS would exceed 64 KiB, so this only bites for small segments.
 */
export const GRO_MAX_SEGS = 64;

const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_PSH = 0x08;
const TCP_URG = 0x20;
const TCP_CWR = 0x80;
/** tcp_gro_receive: a segment with any of these is never held; merged, it ends the packet. */
const FLUSH_FLAGS = TCP_URG | TCP_PSH | TCP_RST | TCP_SYN | TCP_FIN;
/** The bits of TCP bytes 12..15 (data offset, flags, window) that may differ: CWR, PSH, FIN. */
const WORD_MAY_DIFFER = (TCP_CWR | TCP_PSH | TCP_FIN) << 16;

/** Where a GRO context sends frames: the transmit queue of its interface. */
export interface GroOutput {
  /** Queues the frame at `buf[off, off + len)` as it is (its virtio header just before it). */
  queueFrame(buf: Buffer, off: number, len: number): void;
  /**
   * Queues one frame made of `buf[off, off + len)` (virtio header before it) followed by the
   * `parts` (start, length) pairs of `pairs`, also in `buf`.
   */
  queueGathered(buf: Buffer, off: number, len: number, pairs: Uint32Array, parts: number): void;
}

/** Counters of one GRO context (what `ethtool -S` would call rx_gro_*). */
export interface GroCounters {
  /** Packets sent out merged (two segments or more). */
  mergedPackets: number;
  /** Segments those packets were made of. */
  mergedSegments: number;
}

/** Reads 4 bytes big-endian as a signed 32-bit integer (for comparisons only). */
function word32(b: Buffer, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

/**
 * The GRO state of one output interface: at most one held packet, kept as the
 * first segment's frame (left where it is) and the (start, length) of each
 * later segment's payload. Nothing is copied or allocated per segment; the
 * merged headers are written over the first segment's when the packet is sent.
 * The caller must flush() before the buffers the held segments lie in are
 * reused (the forwarder flushes at the end of every receive batch).
 */
export class TcpGro {
  readonly counters: GroCounters = { mergedPackets: 0, mergedSegments: 0 };
  /** Segments in the held packet; 0 when nothing is held. */
  private segs = 0;
  private buf: Buffer = EMPTY_BUFFER;
  /** The first segment's Ethernet header and frame length. */
  private off = 0;
  private len = 0;
  /** (start, length) of the payload of segments 2..segs. */
  private readonly pairs = new Uint32Array(2 * (GRO_MAX_SEGS - 1));
  /** IP total length of the packet as merged so far. */
  private ipLen = 0;
  /** The first segment's payload length: the gso_size of the merged packet. */
  private mss = 0;
  private nextSeq = 0;
  private src = 0;
  private dst = 0;
  private ports = 0;
  private ack = 0;
  /** TCP bytes 12..15 of the first segment without the bits that may differ. */
  private word = 0;
  private ttl = 0;
  private tos = 0;
  private df = 0;
  private ipId = 0;
  private fixedId = false;
  private tcpHdrLen = 0;
  /** PSH and FIN of later segments, for the merged header. */
  private addFlags = 0;

  constructor(
    private readonly vnetHdr: number,
    private readonly out: GroOutput,
  ) {}

  /** Whether a packet is held (the interface has something to flush). */
  get holding(): boolean {
    return this.segs > 0;
  }

  /**
   * Offers the frame at `buf[off, off + len)` (its Ethernet header; the virtio
   * header is the `vnetHdr` bytes before it) for transmission. Returns true when
   * GRO took it (held or merged); false when the caller must queue it itself —
   * anything held was queued first, so the interface's order is kept.
   */
  receive(buf: Buffer, off: number, len: number): boolean {
    const h = off - this.vnetHdr;
    const ip = off + ETH_LEN;
    if (
      len < ETH_LEN + IP_LEN + TCP_LEN ||
      buf[h + VNET_GSO_TYPE] !== VIRTIO_NET_HDR_GSO_NONE ||
      buf[off + 12] !== 0x08 ||
      buf[off + 13] !== 0x00 ||
      buf[ip] !== 0x45 ||
      buf[ip + 9] !== 6 ||
      ((buf[ip + 2]! << 8) | buf[ip + 3]!) !== len - ETH_LEN ||
      (buf[ip + 6]! & 0xbf) !== 0 ||
      buf[ip + 7] !== 0
    ) {
      return this.pass(buf, off, len);
    }
    const t = ip + IP_LEN;
    const tcpHdrLen = (buf[t + 12]! >>> 4) << 2;
    const tcpLen = len - ETH_LEN - IP_LEN;
    const payload = tcpLen - tcpHdrLen;
    if (tcpHdrLen < TCP_LEN || payload < 0 || !this.checksumOk(buf, h, ip, t, tcpLen)) {
      return this.pass(buf, off, len);
    }
    const flags = buf[t + 13]!;
    const holdable = payload > 0 && (flags & FLUSH_FLAGS) === 0;
    if (this.segs > 0) {
      if (!this.sameFlow(buf, ip, t)) {
        // Another flow: Linux would hold both; one is held here, so the newer one takes over.
        if (!holdable) return false;
        this.flush();
      } else if (this.joins(buf, off, ip, t, tcpHdrLen, payload, flags)) {
        const k = (this.segs - 1) * 2;
        this.pairs[k] = t + tcpHdrLen;
        this.pairs[k + 1] = payload;
        this.segs++;
        this.ipLen += payload;
        this.nextSeq = (this.nextSeq + payload) >>> 0;
        this.addFlags |= flags & (TCP_PSH | TCP_FIN);
        if (payload < this.mss || (flags & FLUSH_FLAGS) !== 0) this.flush();
        return true;
      } else {
        this.flush();
      }
    }
    if (!holdable) return false;
    this.hold(buf, off, len, ip, t, tcpHdrLen, payload);
    return true;
  }

  /** Sends the held packet, merged if it has more than one segment. */
  flush(): void {
    const segs = this.segs;
    if (segs === 0) return;
    this.segs = 0;
    const buf = this.buf;
    const off = this.off;
    if (segs === 1) {
      this.out.queueFrame(buf, off, this.len);
      return;
    }
    const ip = off + ETH_LEN;
    const t = ip + IP_LEN;
    // inet_gro_complete: the total length, and the header checksum after it.
    const ipLen = this.ipLen;
    const oldLen = (buf[ip + 2]! << 8) | buf[ip + 3]!;
    buf[ip + 2] = ipLen >>> 8;
    buf[ip + 3] = ipLen & 0xff;
    const ipCsum = checksumUpdate16((buf[ip + 10]! << 8) | buf[ip + 11]!, oldLen, ipLen);
    buf[ip + 10] = ipCsum >>> 8;
    buf[ip + 11] = ipCsum & 0xff;
    // tcp4_gro_complete / tcp_gro_complete: flags of the last segments, checksum left partial.
    const flags = buf[t + 13]! | this.addFlags;
    buf[t + 13] = flags;
    const partial = checksumFold(
      pseudoHeaderSum(this.src >>> 0, this.dst >>> 0, 6, ipLen - IP_LEN),
    );
    buf[t + 16] = partial >>> 8;
    buf[t + 17] = partial & 0xff;
    const h = off - this.vnetHdr;
    buf[h + VNET_FLAGS] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    buf[h + VNET_GSO_TYPE] =
      VIRTIO_NET_HDR_GSO_TCPV4 | ((flags & TCP_CWR) !== 0 ? VIRTIO_NET_HDR_GSO_ECN : 0);
    writeLe16(buf, h + VNET_HDR_LEN_FIELD, ETH_LEN + IP_LEN + this.tcpHdrLen);
    writeLe16(buf, h + VNET_GSO_SIZE, this.mss);
    writeLe16(buf, h + VNET_CSUM_START, ETH_LEN + IP_LEN);
    writeLe16(buf, h + VNET_CSUM_OFFSET, 16);
    this.counters.mergedPackets++;
    this.counters.mergedSegments += segs;
    this.out.queueGathered(buf, off, this.len, this.pairs, segs - 1);
  }

  /**
   * A frame that is no candidate goes out now. If it may belong to the held
   * flow (IPv4, TCP, the same addresses, and the same ports or no ports to
   * tell: a later fragment), the held packet goes first, so the flow keeps
   * its order; a frame of another flow passes it, as in Linux, where packets
   * GRO does not hold go up at once while those it holds wait for the end
   * of the poll.
   */
  private pass(buf: Buffer, off: number, len: number): false {
    if (this.segs === 0) return false;
    const ip = off + ETH_LEN;
    if (
      len >= ETH_LEN + IP_LEN &&
      buf[off + 12] === 0x08 &&
      buf[off + 13] === 0x00 &&
      buf[ip + 9] === 6 &&
      word32(buf, ip + 12) === this.src &&
      word32(buf, ip + 16) === this.dst
    ) {
      const t = ip + ((buf[ip]! & 0x0f) << 2);
      const laterFragment = ((buf[ip + 6]! & 0x1f) | buf[ip + 7]!) !== 0;
      if (laterFragment || t + 4 > off + len || word32(buf, t) === this.ports) this.flush();
    }
    return false;
  }

  /** Whether the candidate is of the held flow (addresses and ports). */
  private sameFlow(buf: Buffer, ip: number, t: number): boolean {
    return (
      word32(buf, ip + 12) === this.src &&
      word32(buf, ip + 16) === this.dst &&
      word32(buf, t) === this.ports
    );
  }

  /**
   * tcp4_gro_receive's skb_gro_checksum_validate: a partial checksum (NEEDS_CSUM, for
   * this TCP header) or one the kernel validated (DATA_VALID) is taken as it is; without
   * either the checksum must verify, else the segment goes up alone (and is dropped there).
   */
  private checksumOk(buf: Buffer, h: number, ip: number, t: number, tcpLen: number): boolean {
    const f = buf[h + VNET_FLAGS]!;
    if ((f & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
      return (
        (buf[h + VNET_CSUM_START]! | (buf[h + VNET_CSUM_START + 1]! << 8)) === ETH_LEN + IP_LEN &&
        (buf[h + VNET_CSUM_OFFSET]! | (buf[h + VNET_CSUM_OFFSET + 1]! << 8)) === 16
      );
    }
    if ((f & VIRTIO_NET_HDR_F_DATA_VALID) !== 0) return true;
    const src = word32(buf, ip + 12) >>> 0;
    const dst = word32(buf, ip + 16) >>> 0;
    return internetChecksum(buf, t, tcpLen, pseudoHeaderSum(src, dst, 6, tcpLen)) === 0;
  }

  /** Whether a segment of the held flow can join the held packet (every rule above). */
  private joins(
    buf: Buffer,
    off: number,
    ip: number,
    t: number,
    tcpHdrLen: number,
    payload: number,
    flags: number,
  ): boolean {
    const first = this.buf;
    if (buf !== first) return false;
    // dev_gro_receive compares the Ethernet header too.
    const f = this.off;
    for (let i = 0; i < 12; i++) if (buf[off + i] !== first[f + i]) return false;
    // inet_gro_flush: TTL, TOS and DF as the first; the IP ID fixed or incrementing.
    if (buf[ip + 8] !== this.ttl || buf[ip + 1] !== this.tos) return false;
    const df = buf[ip + 6]! & 0x40;
    if (df !== this.df) return false;
    const idOffset = (((buf[ip + 4]! << 8) | buf[ip + 5]!) - this.ipId) & 0xffff;
    if (this.segs === 1 && df !== 0 && idOffset === 0) this.fixedId = true;
    if (idOffset !== (this.fixedId ? 0 : this.segs)) return false;
    // tcp_gro_receive.
    if ((flags & TCP_CWR) !== 0) return false;
    if ((word32(buf, t + 12) & ~WORD_MAY_DIFFER) !== this.word) return false;
    if (word32(buf, t + 8) !== this.ack) return false;
    const ft = f + ETH_LEN + IP_LEN;
    for (let i = TCP_LEN; i < tcpHdrLen; i++) if (buf[t + i] !== first[ft + i]) return false;
    if (payload === 0 || payload > this.mss) return false;
    if (word32(buf, t + 4) >>> 0 !== this.nextSeq) return false;
    return this.ipLen + payload <= GRO_MAX_IP_LEN && this.segs < GRO_MAX_SEGS;
  }

  private hold(
    buf: Buffer,
    off: number,
    len: number,
    ip: number,
    t: number,
    tcpHdrLen: number,
    payload: number,
  ): void {
    this.segs = 1;
    this.buf = buf;
    this.off = off;
    this.len = len;
    this.ipLen = len - ETH_LEN;
    this.mss = payload;
    this.nextSeq = ((word32(buf, t + 4) >>> 0) + payload) >>> 0;
    this.src = word32(buf, ip + 12);
    this.dst = word32(buf, ip + 16);
    this.ports = word32(buf, t);
    this.ack = word32(buf, t + 8);
    this.word = word32(buf, t + 12) & ~WORD_MAY_DIFFER;
    this.ttl = buf[ip + 8]!;
    this.tos = buf[ip + 1]!;
    this.df = buf[ip + 6]! & 0x40;
    this.ipId = (buf[ip + 4]! << 8) | buf[ip + 5]!;
    this.fixedId = false;
    this.tcpHdrLen = tcpHdrLen;
    this.addFlags = 0;
  }
}

function writeLe16(buf: Buffer, off: number, v: number): void {
  buf[off] = v & 0xff;
  buf[off + 1] = v >>> 8;
}
