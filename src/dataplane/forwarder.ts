import {
  ETH_HEADER_LEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  EthernetView,
  emitEthernetHeader,
} from '../packet/ethernet.js';
import { ARP_LEN, ARP_OP_REPLY, ARP_OP_REQUEST, ArpView, emitArp } from '../packet/arp.js';
import { IPPROTO_ICMP, IPPROTO_IPIP, Ipv4View, emitIpv4Header } from '../packet/ipv4.js';
import { IPIP_OVERHEAD, ipipEncapsulate } from '../packet/ipip.js';
import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VNET_CSUM_OFFSET,
  VNET_CSUM_START,
  VNET_FLAGS,
  gsoSize,
  moveVnetHeader,
} from './vnet.js';
import { checksumFold, onesComplementSum, pseudoHeaderSum } from '../packet/checksum.js';
import { emitTcp } from '../packet/tcp.js';
import { Verdict, type RejectWith } from '../netfilter/packet-meta.js';
import type { HookPipeline } from './hooks.js';
import type { PacketTracer } from './trace.js';
import {
  ICMP_DEST_UNREACH,
  ICMP_ECHO_REQUEST,
  ICMP_FRAG_NEEDED,
  ICMP_HOST_UNREACH,
  ICMP_NET_UNREACH,
  ICMP_TIME_EXCEEDED,
  IcmpView,
  emitIcmpError,
  icmpErrorAllowed,
  turnEchoRequestIntoReply,
} from '../packet/icmp.js';
import { ParseResult } from '../packet/errors.js';
import { DropCounters, DropReason } from './drops.js';
import type { NetInterface } from './interface.js';
import { TcpGro } from './gro.js';
import { NeighbourTable, UNRESOLVED_QUEUE_MAX, type Neighbour } from './neighbours.js';
import { RouteTable } from './routes.js';
import type { Logger } from '../util/log.js';

const BROADCAST_MAC = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZERO_MAC = Buffer.alloc(6);
/** Linux: ICMP errors quote as much of the original as fits in 576 bytes (RFC 1812 4.3.2.3). */
const ICMP_ERROR_MAX_IP_LEN = 576;
const DEFAULT_TTL = 64;
/** ICMP codes of REJECT --reject-with. */
const REJECT_CODES: Record<RejectWith, number> = {
  'icmp-net-unreachable': 0,
  'icmp-host-unreachable': 1,
  'icmp-proto-unreachable': 2,
  'icmp-port-unreachable': 3,
  'icmp-net-prohibited': 9,
  'icmp-host-prohibited': 10,
  'icmp-admin-prohibited': 13,
  'tcp-reset': 3,
};

/**
 * Bytes at the start of the scratch arena for the segment header template: virtio
 * header, Ethernet, outer IPv4, inner IPv4 and TCP headers with options (10 + 14 + 20 + 60 + 60).
 */
const SEGMENT_TEMPLATE = 192;

/** The gateway address every pod and the node's kernel route through (Calico's 169.254.1.1). */
const GATEWAY_ADDRESS = 0xa9fe0101;

/** What the node does with a packet addressed to one of its own addresses. */
export interface LocalAddress {
  /** The agent answers ICMP echo requests itself. */
  answerEcho: boolean;
  /** Everything else goes to this interface's kernel (the node's root netns), or is dropped. */
  deliverTo: NetInterface | null;
}

/**
 * Linux's ICMP output limiter: a token bucket of net.ipv4.icmp_msgs_per_sec
 * (1000) with a burst of icmp_msgs_burst (50), so a storm of bad packets cannot
 * turn into a storm of ICMP errors.
 */
class IcmpRateLimiter {
  private tokens = 50;
  private lastMs = 0;
  allow(nowMs: number): boolean {
    if (nowMs !== this.lastMs) {
      // Date.now() may step backwards (NTP): that must not drain the bucket.
      if (nowMs > this.lastMs) this.tokens = Math.min(50, this.tokens + (nowMs - this.lastMs));
      this.lastMs = nowMs;
    }
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

/**
 * The node's kernel, for frames: link layer (ARP, MAC checks), IPv4 checks,
 * local delivery, the routing decision, TTL, MTU and neighbour resolution,
 * then transmission on the output interface. Frames are rewritten in place
 * and queued zero-copy; every frame not forwarded is counted by reason.
 *
 * A receive batch is processed by receiveBatch() and all output queued by it
 * is flushed before it returns, so the caller may reuse its buffer.
 */
export class Forwarder {
  readonly routes = new RouteTable();
  readonly neighbours = new NeighbourTable();
  readonly drops = new DropCounters();
  readonly local = new Map<number, LocalAddress>();
  readonly interfaces: NetInterface[] = [];
  /** The address ICMP errors and ARP probes come from when nothing better applies (the node IP). */
  primaryAddress = 0;
  /**
   * Outer sources accepted for IPIP: the other nodes' addresses. Calico's INPUT
   * rule "Allow IPIP packets from Calico hosts"; anything else is dropped.
   */
  readonly tunnelPeers = new Set<number>();
  /** tunl0, when the node has an IPIP overlay. */
  tunnel: NetInterface | null = null;
  /**
   * LoadBalancer addresses this node announces (MetalLB layer 2): ARP requests for them
   * on the underlay are answered with the underlay's MAC. They are not local addresses:
   * as with kube-proxy in iptables mode, packets to them are taken by PREROUTING's DNAT.
   */
  readonly announced = new Set<number>();
  /** Netfilter hooks and conntrack; null runs the bare router (no iptables at all). */
  hooks: HookPipeline | null = null;
  /** Set while `kubewire trace` runs (trace.ts); null otherwise: one check per step. */
  tracer: PacketTracer | null = null;
  private ipId = 1;

  // Reused views: one set for the packet being processed, one for ICMP quoting.
  private readonly eth = new EthernetView();
  private readonly arp = new ArpView();
  private readonly ip = new Ipv4View();
  private readonly icmp = new IcmpView();
  private readonly scratchIp = new Ipv4View();
  private readonly segIp = new Ipv4View();
  /**
   * Bump arena for frames the node originates (ARP replies, ICMP) and segment
   * headers within one batch. Its first SEGMENT_TEMPLATE bytes are not handed
   * out: they hold the headers segmentIntoTunnel copies for every segment.
   */
  private readonly scratch = Buffer.alloc(256 * 1024);
  private scratchUsed = SEGMENT_TEMPLATE;
  private readonly icmpLimiter = new IcmpRateLimiter();
  private nowMs = Date.now();
  /** Set while a receive batch is processed. */
  private inBatch = false;
  /**
   * Milliseconds for conntrack and the rules (the hooks): while a receive batch
   * is processed, the time it started — one clock read per batch instead of one
   * per packet (Linux's conntrack counts in jiffies, as coarse) — else Date.now().
   */
  readonly clock = (): number => (this.inBatch ? this.nowMs : Date.now());
  private internalErrorsLogged = 0;

  /**
   * @param vnetHdr bytes of virtio-net header in front of every frame (10 when the
   *   TAPs are opened with IFF_VNET_HDR for checksum and segmentation offload, else 0).
   *   It travels with the frame: see vnet.ts.
   * @param gro merge consecutive TCP segments into one offloaded frame on the links
   *   into a Linux stack (pods, the node's kernel), as a NIC's GRO would: see gro.ts.
   *   Only with virtio headers.
   */
  constructor(
    private readonly logger: Logger,
    readonly vnetHdr = 0,
    readonly gro = true,
  ) {}

  addInterface(dev: NetInterface): void {
    dev.vnetHdr = this.vnetHdr;
    if (this.gro && this.vnetHdr > 0 && (dev.kind === 'pod' || dev.kind === 'host')) {
      dev.gro = new TcpGro(this.vnetHdr, dev);
    }
    this.interfaces.push(dev);
  }

  removeInterface(dev: NetInterface): void {
    const i = this.interfaces.indexOf(dev);
    if (i >= 0) this.interfaces.splice(i, 1);
    this.routes.deleteByDevice(dev);
    this.neighbours.deleteDevice(dev);
  }

  /** Entry point for a TAP's read batch. Never throws: failures are counted. */
  receiveBatch(inIf: NetInterface, buf: Buffer, offsets: Uint32Array, count: number): void {
    this.nowMs = Date.now();
    this.inBatch = true;
    const v = this.vnetHdr;
    for (let i = 0; i < count; i++) {
      const off = offsets[i * 2]! + v;
      const len = offsets[i * 2 + 1]! - v;
      try {
        this.receiveFrame(inIf, buf, off, len);
      } catch (err) {
        this.drops.count(DropReason.InternalError);
        if (this.internalErrorsLogged++ < 10) {
          this.logger.error({ err, dev: inIf.name }, 'internal error processing a frame');
        }
      }
      if (this.tracer !== null) this.tracer.finish();
    }
    this.inBatch = false;
    this.flush();
  }

  /** Writes every queued frame and resets the scratch arena. */
  flush(): void {
    const ifs = this.interfaces;
    for (let i = 0; i < ifs.length; i++) if (ifs[i]!.dirty) ifs[i]!.flush();
    this.scratchUsed = SEGMENT_TEMPLATE;
  }

  receiveFrame(inIf: NetInterface, buf: Buffer, off: number, len: number): void {
    inIf.counters.rxPackets++;
    inIf.counters.rxBytes += len;
    if (len < 0) return this.drops.count(DropReason.EthTruncated);
    if (inIf.capture !== null) inIf.capture(buf, off, len);
    const eth = this.eth;
    if (eth.wrap(buf, off, len) !== ParseResult.Ok)
      return this.drops.count(DropReason.EthTruncated);
    if (!eth.dstIs(inIf.mac) && !eth.dstIsBroadcast) {
      return this.drops.count(eth.dstIsMulticast ? DropReason.Multicast : DropReason.ForeignMac);
    }
    const type = eth.etherType;
    if (type === ETHERTYPE_IPV4) {
      return this.receiveIpv4(inIf, buf, eth.payloadOffset, eth.payloadLength);
    }
    if (type === ETHERTYPE_ARP)
      return this.receiveArp(inIf, buf, eth.payloadOffset, eth.payloadLength);
    this.drops.count(DropReason.UnsupportedEtherType);
  }

  // ---- ARP ---------------------------------------------------------------

  private receiveArp(inIf: NetInterface, buf: Buffer, off: number, len: number): void {
    const arp = this.arp;
    if (arp.wrap(buf, off, len) !== ParseResult.Ok)
      return this.drops.count(DropReason.ArpMalformed);
    const senderIp = arp.senderIp;
    const targetIp = arp.targetIp;
    const answer = arp.op === ARP_OP_REQUEST && this.answersArpFor(inIf, targetIp);
    // As Linux (arp_accept=0): a request we answer creates the sender's entry; any other
    // ARP only updates an entry that exists.
    if (senderIp !== 0 && (answer || this.neighbours.get(inIf, senderIp) !== undefined)) {
      const waiting = this.neighbours.learn(inIf, senderIp, buf, off + 8, this.nowMs);
      if (waiting) this.releaseQueue(waiting);
    }
    if (!answer) return;
    // Reply to the requester: from our MAC, for the target address.
    const o = this.allocFrame(ETH_HEADER_LEN + ARP_LEN, 0);
    emitEthernetHeader(this.scratch, o, buf.subarray(off + 8, off + 14), inIf.mac, ETHERTYPE_ARP);
    emitArp(
      this.scratch,
      o + ETH_HEADER_LEN,
      ARP_OP_REPLY,
      inIf.mac,
      targetIp,
      buf.subarray(off + 8, off + 14),
      senderIp,
    );
    inIf.enqueue(this.scratch, o, ETH_HEADER_LEN + ARP_LEN);
  }

  /**
   * Calico's proxy ARP: on pod and host links the agent answers every request
   * with its own MAC, except for addresses reached through the asking link
   * itself (a duplicate-address probe for the pod's own IP gets no answer, as
   * Linux's proxy_arp). On the underlay only owned addresses are answered.
   */
  private answersArpFor(inIf: NetInterface, target: number): boolean {
    if (inIf.kind === 'pod' || inIf.kind === 'host') {
      const route = this.routes.lookup(target);
      if (route && route.dev === inIf && route.prefixLen === 32) return false;
      const local = this.local.get(target);
      if (local && local.deliverTo === inIf) return false;
      return true;
    }
    if (inIf.kind === 'underlay') return this.local.has(target) || this.announced.has(target);
    return false;
  }

  // ---- IPv4 --------------------------------------------------------------

  private receiveIpv4(inIf: NetInterface, buf: Buffer, off: number, len: number): void {
    const ip = this.ip;
    const r = ip.wrap(buf, off, len);
    if (r !== ParseResult.Ok) {
      return this.drops.count(
        r === ParseResult.Truncated ? DropReason.Ipv4Truncated : DropReason.Ipv4Malformed,
      );
    }
    if (this.tracer !== null) this.tracer.arrive(inIf, buf, off);
    if (!ip.verifyChecksum()) return this.drops.count(DropReason.Ipv4Checksum);
    if (this.martian(ip)) return;
    // IPIP from a node is decapsulated before the hooks: the inner packet is what they see
    // (as after Calico's INPUT rule that accepts IPIP from its hosts).
    if (ip.protocol === IPPROTO_IPIP && inIf.kind === 'underlay' && this.local.has(ip.dst)) {
      return this.decapsulate(buf);
    }
    if (this.hooks !== null) {
      const partial = this.partialChecksum(buf, off);
      const v =
        inIf.kind === 'host'
          ? this.hooks.localOut(buf, off, ip.totalLength, partial)
          : this.hooks.prerouting(
              inIf.name,
              buf,
              off,
              ip.totalLength,
              off - ETH_HEADER_LEN,
              partial,
              this.checksumTrusted(buf, off),
            );
      if (v !== Verdict.ACCEPT) return this.refuse(inIf, v);
    }
    const local = this.local.get(ip.dst);
    if (local !== undefined) return this.deliverLocal(inIf, local, buf, off);
    // Linux forwards only frames sent to its own MAC (ip_forward: pkt_type PACKET_HOST).
    if (this.eth.dstIsMulticast) return this.drops.count(DropReason.Multicast);
    this.forward(inIf, buf, off);
  }

  /**
   * Addresses ip_route_input_slow() refuses: limited broadcast and multicast
   * destinations are never routed (no multicast routing; nothing local listens),
   * and 0/8, 127/8, multicast or broadcast sources are martians. Counts the drop.
   */
  private martian(ip: Ipv4View): boolean {
    const dst = ip.dst;
    if (dst === 0xffffffff || dst >>> 28 === 0xe) {
      this.drops.count(DropReason.Multicast);
      return true;
    }
    const src = ip.src;
    if (src === 0xffffffff || src >>> 28 === 0xe || src >>> 24 === 0 || src >>> 24 === 127) {
      this.drops.count(DropReason.Martian);
      return true;
    }
    return false;
  }

  /**
   * IPIP to one of our addresses: accepted only from a known node (Calico's
   * INPUT rules), then the inner packet is input on tunl0 as the kernel does
   * after ipip_rcv(). Nothing is copied: the inner packet is re-wrapped in place.
   */
  private decapsulate(buf: Buffer): void {
    const ip = this.ip;
    const tunnel = this.tunnel;
    if (!tunnel || !this.tunnelPeers.has(ip.src))
      return this.drops.count(DropReason.IpipUnknownSource);
    if (ip.isFragment) return this.drops.count(DropReason.Ipv4Fragment);
    const outerOff = ip.offset;
    const innerOff = ip.payloadOffset;
    const innerLen = ip.payloadLength;
    const v = this.vnetHdr;
    if (v > 0) {
      const delta = innerOff - outerOff;
      moveVnetHeader(buf, outerOff - ETH_HEADER_LEN - v, innerOff - ETH_HEADER_LEN - v, -delta);
    }
    tunnel.counters.rxPackets++;
    tunnel.counters.rxBytes += innerLen;
    if (tunnel.capture !== null) tunnel.capture(buf, innerOff, innerLen);
    const r = ip.wrap(buf, innerOff, innerLen);
    if (r !== ParseResult.Ok) {
      return this.drops.count(
        r === ParseResult.Truncated ? DropReason.Ipv4Truncated : DropReason.Ipv4Malformed,
      );
    }
    if (this.tracer !== null) this.tracer.decap(tunnel.name, buf, innerOff);
    if (!ip.verifyChecksum()) return this.drops.count(DropReason.Ipv4Checksum);
    if (ip.protocol === IPPROTO_IPIP) return this.drops.count(DropReason.IpipNested);
    if (this.martian(ip)) return;
    if (this.hooks !== null) {
      const partial = this.partialChecksum(buf, innerOff);
      const macOff = innerOff - ETH_HEADER_LEN;
      const trusted = this.checksumTrusted(buf, innerOff);
      const v = this.hooks.prerouting(
        tunnel.name,
        buf,
        innerOff,
        innerLen,
        macOff,
        partial,
        trusted,
      );
      if (v !== Verdict.ACCEPT) return this.refuse(tunnel, v);
    }
    const local = this.local.get(ip.dst);
    if (local !== undefined) return this.deliverLocal(tunnel, local, buf, innerOff);
    this.forward(tunnel, buf, innerOff);
  }

  private deliverLocal(inIf: NetInterface, local: LocalAddress, buf: Buffer, off: number): void {
    const ip = this.ip;
    if (this.tracer !== null) this.tracer.local(ip.dst);
    if (this.hooks !== null) {
      const v = this.hooks.input(this.partialChecksum(buf, off));
      if (v !== Verdict.ACCEPT) return this.refuse(inIf, v);
    }
    if (local.answerEcho && ip.protocol === IPPROTO_ICMP && !ip.isFragment) {
      const icmp = this.icmp;
      if (
        icmp.wrap(buf, ip.payloadOffset, ip.payloadLength) !== ParseResult.Ok ||
        !icmp.verifyChecksum()
      ) {
        return this.drops.count(DropReason.IcmpMalformed);
      }
      if (icmp.type === ICMP_ECHO_REQUEST) {
        turnEchoRequestIntoReply(ip, icmp);
        ip.setTtl(DEFAULT_TTL);
        return this.output(inIf, buf, off, true);
      }
    }
    const to = local.deliverTo;
    if (!to) return this.drops.count(DropReason.Unreachable);
    // Local delivery: no TTL change; the next hop is the kernel's address itself.
    this.transmit(to, ip.dst, buf, off, ip.totalLength);
  }

  private forward(inIf: NetInterface, buf: Buffer, off: number): void {
    const ip = this.ip;
    const route = this.routes.lookup(ip.dst);
    if (this.tracer !== null) this.tracer.route(ip.dst, route ?? null);
    if (!route) {
      this.sendIcmpError(inIf, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, 0);
      return this.drops.count(DropReason.NoRoute);
    }
    if (route.type !== 'unicast') {
      // blackhole drops silently; unreachable/prohibit answer with ICMP as Linux does.
      if (route.type === 'blackhole') return this.drops.count(DropReason.Blackhole);
      this.sendIcmpError(
        inIf,
        ICMP_DEST_UNREACH,
        route.type === 'prohibit' ? 13 : ICMP_HOST_UNREACH,
        0,
      );
      return this.drops.count(DropReason.Unreachable);
    }
    // What the node's own processes send is output, not forwarded: no TTL decrement.
    const forwarded = inIf.kind !== 'host';
    if (forwarded && ip.ttl <= 1) {
      this.sendIcmpError(inIf, ICMP_TIME_EXCEEDED, 0, 0);
      return this.drops.count(DropReason.TtlExceeded);
    }
    const dev = route.dev!;
    const mtu = route.mtu || dev.mtu;
    if (ip.totalLength > mtu && !this.gsoSegmentsFit(ip, mtu)) {
      if (ip.dontFragment) {
        this.sendIcmpError(inIf, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu);
      }
      return this.drops.count(DropReason.FragNeeded);
    }
    if (forwarded) ip.decrementTtl();
    const hooks = this.hooks;
    if (hooks !== null) {
      let v = forwarded ? hooks.forward(dev.name) : hooks.outputFilter(dev.name);
      if (v === Verdict.ACCEPT) v = hooks.postrouting(dev.name, this.partialChecksum(buf, off));
      if (v !== Verdict.ACCEPT) return this.refuse(inIf, v);
    }
    this.transmit(dev, route.via || ip.dst, buf, off, ip.totalLength);
  }

  /** Whether the packet's L4 checksum is left to the receiver (virtio NEEDS_CSUM). */
  private partialChecksum(buf: Buffer, ipOff: number): boolean {
    const v = this.vnetHdr;
    return v > 0 && (buf[ipOff - ETH_HEADER_LEN - v]! & 1) !== 0;
  }

  /** The kernel vouched for the L4 checksum (virtio NEEDS_CSUM or DATA_VALID): no need to verify it. */
  private checksumTrusted(buf: Buffer, ipOff: number): boolean {
    const v = this.vnetHdr;
    return v > 0 && (buf[ipOff - ETH_HEADER_LEN - v]! & 3) !== 0;
  }

  /** A DROP or REJECT verdict from the hooks: counted, and REJECT answers the sender. */
  private refuse(inIf: NetInterface, verdict: number): void {
    this.hooks?.dropped();
    if (verdict !== Verdict.REJECT) return this.drops.count(DropReason.NetfilterDrop);
    this.drops.count(DropReason.NetfilterReject);
    const how = this.hooks!.result.rejectWith;
    if (how === 'tcp-reset') return this.sendTcpReset(inIf);
    this.sendIcmpError(inIf, ICMP_DEST_UNREACH, REJECT_CODES[how], 0);
  }

  /**
   * REJECT --reject-with tcp-reset, as nf_send_reset(): from the address and port
   * the packet was sent to; no reset for a reset; seq/ack per RFC 793.
   */
  private sendTcpReset(inIf: NetInterface): void {
    const orig = this.ip;
    if (orig.protocol !== 6 || orig.isFragment) return;
    const t = orig.payloadOffset;
    const b = orig.buf;
    if (orig.payloadLength < 20) return;
    const flags = b[t + 13]!;
    if ((flags & 0x04) !== 0) return;
    if (!this.icmpLimiter.allow(this.nowMs)) return;
    const dataOff = (b[t + 12]! >>> 4) * 4;
    const segLen =
      orig.payloadLength -
      dataOff +
      ((flags & 0x02) !== 0 ? 1 : 0) +
      ((flags & 0x01) !== 0 ? 1 : 0);
    const hasAck = (flags & 0x10) !== 0;
    const o = this.allocFrame(ETH_HEADER_LEN + 40, IPIP_OVERHEAD);
    const ipOff = o + ETH_HEADER_LEN;
    emitIpv4Header(this.scratch, ipOff, {
      src: orig.dst,
      dst: orig.src,
      protocol: 6,
      ttl: DEFAULT_TTL,
      id: 0,
      dontFragment: true,
      tos: 0,
      payloadLength: 20,
    });
    emitTcp(
      this.scratch,
      ipOff + 20,
      {
        srcPort: b.readUInt16BE(t + 2),
        dstPort: b.readUInt16BE(t),
        seq: hasAck ? b.readUInt32BE(t + 8) : 0,
        ack: hasAck ? 0 : (b.readUInt32BE(t + 4) + segLen) >>> 0,
        flags: hasAck ? 0x04 : 0x14,
        window: 0,
      },
      orig.dst,
      orig.src,
      0,
    );
    if (this.scratchIp.wrap(this.scratch, ipOff, 40) !== ParseResult.Ok) return;
    this.output(inIf, this.scratch, ipOff, false);
  }

  /**
   * A GSO packet (a TCP segment of up to 64 KiB the kernel offloaded to us) is
   * sent as segments of gso_size: what must fit the MTU is one segment's
   * headers plus gso_size, as Linux's skb_gso_validate_network_len.
   */
  private gsoSegmentsFit(ip: Ipv4View, mtu: number): boolean {
    if (this.vnetHdr === 0) return false;
    const seg = gsoSize(ip.buf, ip.offset - ETH_HEADER_LEN - this.vnetHdr);
    if (seg === 0 || ip.protocol !== 6) return false;
    const tcpHeaderLen = (ip.buf[ip.payloadOffset + 12]! >>> 4) * 4;
    return ip.headerLength + tcpHeaderLen + seg <= mtu;
  }

  /**
   * Routes and sends a packet the node itself originates (echo replies, ICMP
   * errors) whose IPv4 header is at `off` in `buf` with room for a link header
   * before it. `viaInput` is the link it answers, used when no route exists.
   */
  private output(fallback: NetInterface, buf: Buffer, off: number, wrapped: boolean): void {
    const ip = wrapped ? this.ip : this.scratchIp;
    const local = this.local.get(ip.dst);
    if (local !== undefined) {
      if (!local.deliverTo) return this.drops.count(DropReason.Unreachable);
      return this.transmit(local.deliverTo, ip.dst, buf, off, ip.totalLength);
    }
    const route = this.routes.lookup(ip.dst);
    if (!route || route.type !== 'unicast') {
      // No route back: answer on the link the request came in on (as to a directly attached peer).
      if (fallback.kind === 'pod' || fallback.kind === 'host') {
        return this.transmit(fallback, ip.dst, buf, off, ip.totalLength);
      }
      return this.drops.count(DropReason.NoRoute);
    }
    this.transmit(route.dev!, route.via || ip.dst, buf, off, ip.totalLength);
  }

  /** Link-layer output: resolves the next hop's MAC, writes the Ethernet header and queues. */
  private transmit(
    dev: NetInterface,
    nextHop: number,
    buf: Buffer,
    ipOff: number,
    ipLen: number,
  ): void {
    if (!dev.up) return this.drops.count(DropReason.InterfaceDown);
    if (dev.kind === 'tunnel') return this.encapsulate(dev, nextHop, buf, ipOff, ipLen);
    const n = this.neighbours.get(dev, nextHop);
    if (this.tracer !== null) this.tracer.out(dev, nextHop, n, buf, ipOff);
    const frameOff = ipOff - ETH_HEADER_LEN;
    if (
      n !== undefined &&
      n.mac !== null &&
      (n.state === 'PERMANENT' || n.state === 'REACHABLE' || n.state === 'STALE')
    ) {
      emitEthernetHeader(buf, frameOff, n.mac, dev.mac, ETHERTYPE_IPV4);
      dev.enqueue(buf, frameOff, ipLen + ETH_HEADER_LEN);
      return;
    }
    this.queueForResolution(dev, nextHop, buf, ipOff, ipLen);
  }

  /**
   * tunl0 output: wraps the packet in an outer IPv4 header (node IP → the
   * remote node, protocol 4, TTL 64, DF and TOS copied) written into the
   * headroom in front of it, then routes the outer packet on the underlay.
   */
  private encapsulate(
    tunnel: NetInterface,
    remote: number,
    buf: Buffer,
    ipOff: number,
    ipLen: number,
  ): void {
    const inner = this.scratchIp;
    if (inner.wrap(buf, ipOff, ipLen) !== ParseResult.Ok)
      return this.drops.count(DropReason.Ipv4Malformed);
    const v = this.vnetHdr;
    if (v > 0 && inner.protocol === 6) {
      const mss = gsoSize(buf, ipOff - ETH_HEADER_LEN - v);
      if (mss > 0) return this.segmentIntoTunnel(tunnel, remote, buf, ipOff, ipLen, mss);
    }
    if (tunnel.capture !== null) tunnel.capture(buf, ipOff, ipLen);
    this.ipId = (this.ipId + 1) & 0xffff;
    if (ipOff - IPIP_OVERHEAD - ETH_HEADER_LEN - v < 0)
      return this.drops.count(DropReason.InternalError);
    // The virtio header moves out of the way first: the outer IP header overwrites its old place.
    if (v > 0) {
      const to = ipOff - IPIP_OVERHEAD - ETH_HEADER_LEN - v;
      moveVnetHeader(buf, ipOff - ETH_HEADER_LEN - v, to, IPIP_OVERHEAD);
    }
    if (this.tracer !== null) this.tracer.encap(tunnel.name, this.primaryAddress, remote);
    const outerOff = ipipEncapsulate(inner, this.primaryAddress, remote, this.ipId, DEFAULT_TTL);
    if (outerOff < ETH_HEADER_LEN) return this.drops.count(DropReason.InternalError);
    tunnel.counters.txPackets++;
    tunnel.counters.txBytes += ipLen;
    const route = this.routes.lookup(remote);
    if (!route || route.type !== 'unicast' || route.dev!.kind === 'tunnel') {
      return this.drops.count(DropReason.NoRoute);
    }
    this.transmit(route.dev!, route.via || remote, buf, outerOff, ipLen + IPIP_OVERHEAD);
  }

  /**
   * Software TCP segmentation before IPIP: the kernel cannot take an offloaded
   * segment that is also IPIP-encapsulated from us (virtio has no GSO type for
   * it, and the underlay veth would try to segment it and drop it), so a GSO
   * packet bound for tunl0 is cut here into gso_size segments, as the kernel's
   * tcp_gso_segment would: IP id + k, sequence + k·mss, FIN/PSH only on the
   * last, CWR only on the first. Each segment keeps checksum offload (the TCP
   * checksum field holds the pseudo-header sum; the receiving kernel completes it),
   * so no payload is summed here.
   *
   * The outer route and next hop are the same for every segment, so they are
   * resolved once; each segment is then its headers — copied from a template
   * in the scratch arena, with lengths, IDs, sequence, flags and checksums set
   * from sums computed once — followed by its payload, left where it is and
   * written gathered with the headers: nothing is allocated and no payload is
   * copied per segment. Anything unusual (no route, neighbour not resolved, link
   * down, tunl0 captured) takes the general path, segment by segment.
   */
  private segmentIntoTunnel(
    tunnel: NetInterface,
    remote: number,
    buf: Buffer,
    ipOff: number,
    ipLen: number,
    mss: number,
  ): void {
    const ihl = (buf[ipOff]! & 0x0f) * 4;
    const tcpOff = ipOff + ihl;
    const tcpLen = (buf[tcpOff + 12]! >>> 4) * 4;
    const hdrLen = ihl + tcpLen;
    const payload = ipLen - hdrLen;
    if (payload <= 0 || tcpLen < 20) return this.drops.count(DropReason.Ipv4Malformed);
    const route = this.routes.lookup(remote);
    const dev = route?.dev;
    if (
      route === undefined ||
      route.type !== 'unicast' ||
      dev === undefined ||
      dev === null ||
      dev.kind === 'tunnel' ||
      !dev.up ||
      tunnel.capture !== null
    ) {
      return this.segmentEach(tunnel, remote, buf, ipOff, ipLen, mss);
    }
    const n = this.neighbours.get(dev, route.via || remote);
    if (
      n === undefined ||
      n.mac === null ||
      (n.state !== 'PERMANENT' && n.state !== 'REACHABLE' && n.state !== 'STALE')
    ) {
      return this.segmentEach(tunnel, remote, buf, ipOff, ipLen, mss);
    }
    const v = this.vnetHdr;
    const s = this.scratch;
    // The template: virtio header (checksum offload of the inner TCP), Ethernet header to the
    // next hop, outer IPv4 header (as ipipEncapsulate: TOS and DF of the inner, TTL 64), and the
    // inner headers, with total lengths, IDs and checksums zero: those are set per segment.
    const e = v;
    const o = e + ETH_HEADER_LEN;
    const i = o + IPIP_OVERHEAD;
    const t = i + ihl;
    const headLen = ETH_HEADER_LEN + IPIP_OVERHEAD + hdrLen;
    s.fill(0, 0, v);
    s[VNET_FLAGS] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    s.writeUInt16LE(ETH_HEADER_LEN + IPIP_OVERHEAD + ihl, VNET_CSUM_START);
    s.writeUInt16LE(16, VNET_CSUM_OFFSET);
    emitEthernetHeader(s, e, n.mac, dev.mac, ETHERTYPE_IPV4);
    buf.copy(s, i, ipOff, ipOff + hdrLen);
    emitIpv4Header(s, o, {
      src: this.primaryAddress,
      dst: remote,
      protocol: IPPROTO_IPIP,
      ttl: DEFAULT_TTL,
      id: 0,
      dontFragment: (s[i + 6]! & 0x40) !== 0,
      tos: s[i + 1]!,
      payloadLength: 0,
    });
    s.fill(0, o + 2, o + 6);
    s.fill(0, o + 10, o + 12);
    const outerSum = onesComplementSum(s, o, IPIP_OVERHEAD);
    const id0 = (s[i + 4]! << 8) | s[i + 5]!;
    s.fill(0, i + 2, i + 6);
    s.fill(0, i + 10, i + 12);
    const innerSum = onesComplementSum(s, i, ihl);
    const seq0 = s.readUInt32BE(t + 4);
    const flags0 = s[t + 13]!;
    const pseudo = pseudoHeaderSum(s.readUInt32BE(i + 12), s.readUInt32BE(i + 16), 6, 0);
    let outerId = this.ipId;
    for (let done = 0, k = 0; done < payload; done += mss, k++) {
      const size = Math.min(mss, payload - done);
      const f = this.allocFrame(headLen, 0);
      s.copyWithin(f - v, 0, v + headLen);
      const fo = f + ETH_HEADER_LEN;
      outerId = (outerId + 1) & 0xffff;
      const outerLen = IPIP_OVERHEAD + hdrLen + size;
      s[fo + 2] = outerLen >>> 8;
      s[fo + 3] = outerLen & 0xff;
      s[fo + 4] = outerId >>> 8;
      s[fo + 5] = outerId & 0xff;
      const oc = ~checksumFold(outerSum + outerLen + outerId) & 0xffff;
      s[fo + 10] = oc >>> 8;
      s[fo + 11] = oc & 0xff;
      const fi = fo + IPIP_OVERHEAD;
      const innerLen = hdrLen + size;
      const innerId = (id0 + k) & 0xffff;
      s[fi + 2] = innerLen >>> 8;
      s[fi + 3] = innerLen & 0xff;
      s[fi + 4] = innerId >>> 8;
      s[fi + 5] = innerId & 0xff;
      const ic = ~checksumFold(innerSum + innerLen + innerId) & 0xffff;
      s[fi + 10] = ic >>> 8;
      s[fi + 11] = ic & 0xff;
      const ft = fi + ihl;
      const seq = (seq0 + done) >>> 0;
      s[ft + 4] = seq >>> 24;
      s[ft + 5] = (seq >>> 16) & 0xff;
      s[ft + 6] = (seq >>> 8) & 0xff;
      s[ft + 7] = seq & 0xff;
      let flags = flags0;
      if (done + size < payload) flags &= ~(0x01 | 0x08); // FIN, PSH only on the last segment
      if (k > 0) flags &= ~0x80; // CWR only on the first
      s[ft + 13] = flags;
      const partial = checksumFold(pseudo + tcpLen + size);
      s[ft + 16] = partial >>> 8;
      s[ft + 17] = partial & 0xff;
      tunnel.counters.txPackets++;
      tunnel.counters.txBytes += innerLen;
      dev.queueHeadAndPayload(s, f, headLen, buf, ipOff + hdrLen + done, size);
    }
    this.ipId = outerId;
  }

  /**
   * segmentIntoTunnel's general path: each segment copied whole into the scratch
   * arena and sent through encapsulate() (capture, route, neighbour resolution).
   */
  private segmentEach(
    tunnel: NetInterface,
    remote: number,
    buf: Buffer,
    ipOff: number,
    ipLen: number,
    mss: number,
  ): void {
    const ihl = (buf[ipOff]! & 0x0f) * 4;
    const tcpOff = ipOff + ihl;
    const tcpLen = (buf[tcpOff + 12]! >>> 4) * 4;
    const hdrLen = ihl + tcpLen;
    const payload = ipLen - hdrLen;
    const id0 = (buf[ipOff + 4]! << 8) | buf[ipOff + 5]!;
    const seq0 = buf.readUInt32BE(tcpOff + 4);
    const flags0 = buf[tcpOff + 13]!;
    const src = buf.readUInt32BE(ipOff + 12);
    const dst = buf.readUInt32BE(ipOff + 16);
    const v = this.vnetHdr;
    const seg = this.segIp;
    for (let done = 0, k = 0; done < payload; done += mss, k++) {
      const n = Math.min(mss, payload - done);
      const o = this.allocFrame(ETH_HEADER_LEN + hdrLen + n, IPIP_OVERHEAD);
      const ip = o + ETH_HEADER_LEN;
      const scratch = this.scratch;
      buf.copy(scratch, ip, ipOff, ipOff + hdrLen);
      buf.copy(scratch, ip + hdrLen, ipOff + hdrLen + done, ipOff + hdrLen + done + n);
      const total = hdrLen + n;
      scratch[ip + 2] = total >>> 8;
      scratch[ip + 3] = total & 0xff;
      const id = (id0 + k) & 0xffff;
      scratch[ip + 4] = id >>> 8;
      scratch[ip + 5] = id & 0xff;
      const t = ip + ihl;
      scratch.writeUInt32BE((seq0 + done) >>> 0, t + 4);
      let flags = flags0;
      if (done + n < payload) flags &= ~(0x01 | 0x08); // FIN, PSH only on the last segment
      if (k > 0) flags &= ~0x80; // CWR only on the first
      scratch[t + 13] = flags;
      const partial = checksumFold(pseudoHeaderSum(src, dst, 6, tcpLen + n));
      scratch[t + 16] = partial >>> 8;
      scratch[t + 17] = partial & 0xff;
      const h = o - v;
      scratch[h + VNET_FLAGS] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      scratch.writeUInt16LE(ETH_HEADER_LEN + ihl, h + VNET_CSUM_START);
      scratch.writeUInt16LE(16, h + VNET_CSUM_OFFSET);
      if (seg.wrap(scratch, ip, total) !== ParseResult.Ok) {
        return this.drops.count(DropReason.InternalError);
      }
      seg.fillChecksum();
      this.encapsulate(tunnel, remote, scratch, ip, total);
    }
  }

  private queueForResolution(
    dev: NetInterface,
    nextHop: number,
    buf: Buffer,
    ipOff: number,
    ipLen: number,
  ): void {
    const n = this.neighbours.resolve(dev, nextHop);
    if (n.queue.length >= UNRESOLVED_QUEUE_MAX)
      return this.drops.count(DropReason.NeighbourQueueFull);
    // The packet must outlive this batch: keep a copy with room for the link header.
    // (with the virtio header, which carries the packet's offload state)
    const head = ETH_HEADER_LEN + this.vnetHdr;
    const copy = Buffer.allocUnsafe(ipLen + head);
    buf.copy(copy, 0, ipOff - head, ipOff + ipLen);
    n.queue.push(copy);
    if (n.probes === 0) {
      n.probes = 1;
      n.updatedAtMs = this.nowMs;
      this.sendArpProbe(n);
    }
  }

  private releaseQueue(n: Neighbour): void {
    const queue = n.queue;
    n.queue = [];
    for (const pkt of queue) {
      const v = this.vnetHdr;
      emitEthernetHeader(pkt, v, n.mac!, n.dev.mac, ETHERTYPE_IPV4);
      n.dev.enqueue(pkt, v, pkt.length - v);
    }
  }

  sendArpProbe(n: Neighbour): void {
    const o = this.allocFrame(ETH_HEADER_LEN + ARP_LEN, 0);
    const senderIp = n.dev.kind === 'underlay' || n.dev.kind === 'host' ? this.primaryAddress : 0;
    emitEthernetHeader(this.scratch, o, BROADCAST_MAC, n.dev.mac, ETHERTYPE_ARP);
    emitArp(this.scratch, o + ETH_HEADER_LEN, ARP_OP_REQUEST, n.dev.mac, senderIp, ZERO_MAC, n.ip);
    n.dev.enqueue(this.scratch, o, ETH_HEADER_LEN + ARP_LEN);
  }

  /**
   * One gratuitous burst for an address this node takes over, as MetalLB's speaker sends
   * it: a broadcast ARP request and a broadcast ARP reply, both with sender and target
   * address = the address, sender MAC = the interface's, target MAC = broadcast.
   */
  sendGratuitousArp(dev: NetInterface, addr: number): void {
    for (const op of [ARP_OP_REQUEST, ARP_OP_REPLY]) {
      const o = this.allocFrame(ETH_HEADER_LEN + ARP_LEN, 0);
      emitEthernetHeader(this.scratch, o, BROADCAST_MAC, dev.mac, ETHERTYPE_ARP);
      emitArp(this.scratch, o + ETH_HEADER_LEN, op, dev.mac, addr, BROADCAST_MAC, addr);
      dev.enqueue(this.scratch, o, ETH_HEADER_LEN + ARP_LEN);
    }
    this.flush();
  }

  /** The 1 s maintenance tick: ARP retries, failures (ICMP host unreachable), ageing. */
  tick(nowMs = Date.now()): void {
    this.nowMs = nowMs;
    const failed = this.neighbours.tick(nowMs, (n) => this.sendArpProbe(n));
    for (const n of failed) {
      for (const pkt of n.queue) {
        this.drops.count(DropReason.NeighbourFailed);
        if (this.ip.wrap(pkt, ETH_HEADER_LEN, pkt.length - ETH_HEADER_LEN) === ParseResult.Ok) {
          this.sendIcmpError(n.dev, ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, 0);
        }
      }
    }
    this.flush();
  }

  // ---- ICMP errors ---------------------------------------------------------

  /**
   * Answers the packet in this.ip with an ICMP error from the node, as Linux's
   * icmp_send(): never about an ICMP error, a fragment other than the first,
   * or a broadcast; rate limited; quoting up to 576 bytes in total.
   */
  private sendIcmpError(inIf: NetInterface, type: number, code: number, mtu: number): void {
    const orig = this.ip;
    if (!icmpErrorAllowed(orig)) return;
    if (!this.icmpLimiter.allow(this.nowMs)) return;
    const quoted = Math.min(orig.totalLength, ICMP_ERROR_MAX_IP_LEN - 20 - 8);
    // Room in front for the outer IP header, should it leave through tunl0.
    const o = this.allocFrame(ETH_HEADER_LEN + 20 + 8 + quoted, IPIP_OVERHEAD);
    const ipOff = o + ETH_HEADER_LEN;
    const icmpLen = emitIcmpError(this.scratch, ipOff + 20, type, code, orig, mtu);
    emitIpv4Header(this.scratch, ipOff, {
      // To the node's own kernel the error comes from its gateway: Linux drops packets
      // whose source is one of its own addresses (martian), and the node IP is one.
      src: this.local.has(orig.src) ? GATEWAY_ADDRESS : this.primaryAddress,
      dst: orig.src,
      protocol: IPPROTO_ICMP,
      ttl: DEFAULT_TTL,
      id: 0,
      dontFragment: false,
      tos: (orig.tos & 0x1e) | 0xc0, // Linux: RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL
      payloadLength: icmpLen,
    });
    if (this.scratchIp.wrap(this.scratch, ipOff, 20 + icmpLen) !== ParseResult.Ok) return;
    this.output(inIf, this.scratch, ipOff, false);
  }

  /**
   * Room in the scratch arena for a frame the node originates: `headroom` free
   * bytes, a zeroed virtio header (no offloads), then the frame; returns the
   * frame's offset.
   */
  private allocFrame(frameLen: number, headroom: number): number {
    const v = this.vnetHdr;
    if (this.scratchUsed + headroom + v + frameLen > this.scratch.length) this.flush();
    const o = this.scratchUsed + headroom + v;
    this.scratchUsed = o + frameLen;
    for (let i = o - v; i < o; i++) this.scratch[i] = 0;
    return o;
  }
}
