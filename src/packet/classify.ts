import { ArpView } from './arp.js';
import { ParseResult } from './errors.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetView } from './ethernet.js';
import { IcmpView } from './icmp.js';
import { IPPROTO_ICMP, IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP, Ipv4View } from './ipv4.js';
import { TcpView } from './tcp.js';
import { UdpView } from './udp.js';

/** The layer a {@link FrameParser} result refers to (where it stopped). */
export const FrameLayer = {
  Ethernet: 0,
  Arp: 1,
  Ipv4: 2,
  /** The IPv4 packet inside IPIP. */
  InnerIpv4: 3,
  Icmp: 4,
  /** The IPv4 packet quoted by an ICMP error. */
  IcmpQuote: 5,
  Udp: 6,
  Tcp: 7,
} as const;
export type FrameLayer = (typeof FrameLayer)[keyof typeof FrameLayer];
export const frameLayerNames: readonly string[] = Object.freeze([
  'ethernet',
  'arp',
  'ipv4',
  'inner-ipv4',
  'icmp',
  'icmp-quote',
  'udp',
  'tcp',
]);

/**
 * Walks a frame Ethernet → ARP | IPv4 → ICMP | UDP | TCP | IPIP (inner IPv4 → ICMP | UDP | TCP)
 * with reusable views: one instance per thread of work, no allocation per frame, no throw.
 *
 * Result and state after `parse()`:
 * - `Ok`: every layer present is valid. `etherType` tells ARP (`arp`) from IPv4 (`ip`); for
 *   IPv4, `tunneled` says whether `inner` holds an IPIP payload; `protocol` is the transport of
 *   the innermost IPv4 packet (`l3`), and `icmp`/`udp`/`tcp` is wrapped for 1/17/6. Other
 *   protocols are `Ok` with no transport view (a router forwards them). For ICMP errors, `quoted`
 *   is the quoted packet (wrapped with `wrapQuoted`).
 * - `Fragmented`: `l3` is valid but is a fragment; no transport header was parsed.
 * - any other reason: `layer` names the layer that failed. IPv4 header checksums are always
 *   verified (`Checksum`), transport checksums when `verifyL4Checksums` is true. Unknown
 *   EtherTypes (IPv6, VLAN, ...) are `Unrecognized`.
 */
export class FrameParser {
  readonly eth = new EthernetView();
  readonly arp = new ArpView();
  readonly ip = new Ipv4View();
  readonly inner = new Ipv4View();
  readonly icmp = new IcmpView();
  readonly quoted = new Ipv4View();
  readonly udp = new UdpView();
  readonly tcp = new TcpView();
  /** Also verify ICMP, UDP and TCP checksums. */
  verifyL4Checksums = true;

  etherType = 0;
  /** Transport protocol of `l3`, or -1 (ARP, failure before IPv4). */
  protocol = -1;
  tunneled = false;
  layer: FrameLayer = FrameLayer.Ethernet;

  /** The innermost IPv4 view: `inner` if tunneled, else `ip`. */
  get l3(): Ipv4View {
    return this.tunneled ? this.inner : this.ip;
  }

  parse(buf: Buffer, offset: number, length: number): ParseResult {
    this.etherType = 0;
    this.protocol = -1;
    this.tunneled = false;
    this.layer = FrameLayer.Ethernet;
    const eth = this.eth;
    let r: ParseResult = eth.wrap(buf, offset, length);
    if (r !== ParseResult.Ok) return r;
    const et = eth.etherType;
    this.etherType = et;
    if (et === ETHERTYPE_ARP) {
      this.layer = FrameLayer.Arp;
      return this.arp.wrap(buf, eth.payloadOffset, eth.payloadLength);
    }
    if (et !== ETHERTYPE_IPV4) return ParseResult.Unrecognized;
    this.layer = FrameLayer.Ipv4;
    const ip = this.ip;
    r = ip.wrap(buf, eth.payloadOffset, eth.payloadLength);
    if (r !== ParseResult.Ok) return r;
    if (!ip.verifyChecksum()) return ParseResult.Checksum;
    if (ip.isFragment) {
      this.protocol = ip.protocol;
      return ParseResult.Fragmented;
    }
    let l3 = ip;
    if (ip.protocol === IPPROTO_IPIP) {
      this.layer = FrameLayer.InnerIpv4;
      l3 = this.inner;
      r = l3.wrap(buf, ip.payloadOffset, ip.payloadLength);
      if (r !== ParseResult.Ok) return r;
      this.tunneled = true;
      if (!l3.verifyChecksum()) return ParseResult.Checksum;
      if (l3.isFragment) {
        this.protocol = l3.protocol;
        return ParseResult.Fragmented;
      }
    }
    const proto = l3.protocol;
    this.protocol = proto;
    return this.parseTransport(l3, proto);
  }

  private parseTransport(l3: Ipv4View, proto: number): ParseResult {
    const buf = l3.buf;
    const off = l3.payloadOffset;
    const len = l3.payloadLength;
    let r: ParseResult;
    if (proto === IPPROTO_TCP) {
      this.layer = FrameLayer.Tcp;
      r = this.tcp.wrap(buf, off, len);
      if (r !== ParseResult.Ok) return r;
      if (this.verifyL4Checksums && !this.tcp.verifyChecksum(l3)) return ParseResult.Checksum;
      return ParseResult.Ok;
    }
    if (proto === IPPROTO_UDP) {
      this.layer = FrameLayer.Udp;
      r = this.udp.wrap(buf, off, len);
      if (r !== ParseResult.Ok) return r;
      if (this.verifyL4Checksums && !this.udp.verifyChecksum(l3)) return ParseResult.Checksum;
      return ParseResult.Ok;
    }
    if (proto === IPPROTO_ICMP) {
      this.layer = FrameLayer.Icmp;
      const icmp = this.icmp;
      r = icmp.wrap(buf, off, len);
      if (r !== ParseResult.Ok) return r;
      if (this.verifyL4Checksums && !icmp.verifyChecksum()) return ParseResult.Checksum;
      if (icmp.isError) {
        this.layer = FrameLayer.IcmpQuote;
        r = this.quoted.wrapQuoted(buf, icmp.embeddedOffset, icmp.embeddedLength);
        if (r !== ParseResult.Ok) return r;
        this.layer = FrameLayer.Icmp;
      }
      return ParseResult.Ok;
    }
    return ParseResult.Ok;
  }
}
