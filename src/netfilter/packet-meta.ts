/**
 * What the netfilter engine and connection tracking know about the packet being
 * processed: one reusable object per agent, filled by the forwarder at each hook
 * (no allocation per packet). Matches read it; conntrack fills the ct* fields;
 * NAT and MARK write through it.
 *
 * Contract between src/dataplane (fills it), src/netfilter (evaluates rules on it)
 * and src/conntrack (tracks connections, rewrites packets for NAT).
 */

/** Netfilter hooks, in Linux's numbering (NF_INET_*). */
export const Hook = {
  PREROUTING: 0,
  INPUT: 1,
  FORWARD: 2,
  OUTPUT: 3,
  POSTROUTING: 4,
} as const;
export type Hook = (typeof Hook)[keyof typeof Hook];
export const hookNames = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const;

/** -m conntrack --ctstate bits (and -m state --state). SNAT/DNAT are the virtual states. */
export const CtState = {
  INVALID: 1,
  NEW: 2,
  ESTABLISHED: 4,
  RELATED: 8,
  UNTRACKED: 16,
  SNAT: 32,
  DNAT: 64,
} as const;

/** -m conntrack --ctstatus bits. */
export const CtStatus = {
  EXPECTED: 1,
  SEEN_REPLY: 2,
  ASSURED: 4,
  CONFIRMED: 8,
} as const;

/** Conntrack direction of the packet. */
export const CtDir = { ORIGINAL: 0, REPLY: 1 } as const;

/** -m addrtype types (the subset a node needs). */
export const AddrType = {
  UNSPEC: 1,
  UNICAST: 2,
  LOCAL: 4,
  BROADCAST: 8,
  ANYCAST: 16,
  MULTICAST: 32,
  BLACKHOLE: 64,
  UNREACHABLE: 128,
  PROHIBIT: 256,
} as const;

/** How the engine learns address types (-m addrtype) and interface addresses (MASQUERADE). */
export interface NodeAddressing {
  /** AddrType bits of an address as seen from this node (LOCAL for its own addresses, …). */
  addressType(addr: number): number;
  /** The primary IPv4 address of an interface, for MASQUERADE (0 when it has none). */
  interfaceAddress(ifName: string): number;
}

export class PacketMeta {
  hook: Hook = Hook.PREROUTING;
  /** Input interface name ('' for locally generated packets). */
  inIf = '';
  /** Output interface name ('' before the routing decision, and at PREROUTING/INPUT). */
  outIf = '';

  /** The IPv4 packet: header at ipOff, ipLen bytes (its total length). */
  buf: Buffer = Buffer.alloc(0);
  ipOff = 0;
  ipLen = 0;
  /** Offset of the Ethernet header of the frame it arrived in, or -1 (for LOG's MAC=). */
  macOff = -1;

  src = 0;
  dst = 0;
  proto = 0;
  /** TCP/UDP ports, -1 when there are none (other protocols, non-first fragments). */
  sport = -1;
  dport = -1;
  /** ICMP type and code, -1 when not ICMP. */
  icmpType = -1;
  icmpCode = -1;
  /** ICMP echo identifier (conntrack's "port" for ICMP), -1 otherwise. */
  icmpId = -1;
  tcpFlags = 0;
  /** Fragment offset in bytes (non-zero: not the first fragment, no L4 header). */
  fragOff = 0;
  moreFragments = false;
  ttl = 0;
  tos = 0;
  ipId = 0;

  /** nfmark (MARK target, -m mark). */
  mark = 0;

  /** Conntrack results, set by conntrack at PREROUTING/OUTPUT. */
  ctState = 0;
  ctStatus = 0;
  ctDir: 0 | 1 = 0;
  /** Conntrack's handle of the entry (an index into its tables), -1 when untracked/invalid. */
  ctEntry = -1;
  /** Set by raw-table NOTRACK / CT --notrack. */
  notrack = false;

  /**
   * Refreshes the L3/L4 fields from the packet bytes, e.g. after the forwarder wraps
   * a new packet, or after NAT rewrote addresses/ports. Does not touch mark/ct fields.
   */
  parse(buf: Buffer, ipOff: number, ipLen: number): void {
    this.buf = buf;
    this.ipOff = ipOff;
    this.ipLen = ipLen;
    const b = buf;
    const ihl = (b[ipOff]! & 0x0f) * 4;
    this.tos = b[ipOff + 1]!;
    this.ipId = (b[ipOff + 4]! << 8) | b[ipOff + 5]!;
    const frag = ((b[ipOff + 6]! << 8) | b[ipOff + 7]!) >>> 0;
    this.fragOff = (frag & 0x1fff) * 8;
    this.moreFragments = (frag & 0x2000) !== 0;
    this.ttl = b[ipOff + 8]!;
    this.proto = b[ipOff + 9]!;
    this.src =
      ((b[ipOff + 12]! << 24) | (b[ipOff + 13]! << 16) | (b[ipOff + 14]! << 8) | b[ipOff + 15]!) >>>
      0;
    this.dst =
      ((b[ipOff + 16]! << 24) | (b[ipOff + 17]! << 16) | (b[ipOff + 18]! << 8) | b[ipOff + 19]!) >>>
      0;
    this.sport = -1;
    this.dport = -1;
    this.icmpType = -1;
    this.icmpCode = -1;
    this.icmpId = -1;
    this.tcpFlags = 0;
    if (this.fragOff !== 0) return;
    const l4 = ipOff + ihl;
    const l4Len = ipLen - ihl;
    if (this.proto === 6 && l4Len >= 20) {
      this.sport = (b[l4]! << 8) | b[l4 + 1]!;
      this.dport = (b[l4 + 2]! << 8) | b[l4 + 3]!;
      this.tcpFlags = b[l4 + 13]!;
    } else if (this.proto === 17 && l4Len >= 8) {
      this.sport = (b[l4]! << 8) | b[l4 + 1]!;
      this.dport = (b[l4 + 2]! << 8) | b[l4 + 3]!;
    } else if (this.proto === 1 && l4Len >= 8) {
      this.icmpType = b[l4]!;
      this.icmpCode = b[l4 + 1]!;
      this.icmpId = (b[l4 + 4]! << 8) | b[l4 + 5]!;
    }
  }

  /** Clears per-packet state before a new packet enters the stack. */
  reset(): void {
    this.mark = 0;
    this.ctState = 0;
    this.ctStatus = 0;
    this.ctDir = 0;
    this.ctEntry = -1;
    this.notrack = false;
    this.inIf = '';
    this.outIf = '';
    this.macOff = -1;
  }
}

/** Verdicts of a hook traversal. */
export const Verdict = { ACCEPT: 0, DROP: 1, REJECT: 2 } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** REJECT --reject-with kinds. */
export type RejectWith =
  | 'icmp-net-unreachable'
  | 'icmp-host-unreachable'
  | 'icmp-port-unreachable'
  | 'icmp-proto-unreachable'
  | 'icmp-net-prohibited'
  | 'icmp-host-prohibited'
  | 'icmp-admin-prohibited'
  | 'tcp-reset';

/** A NAT target's request, for conntrack to bind on a NEW connection. */
export interface NatRequest {
  kind: 'DNAT' | 'SNAT' | 'MASQUERADE' | 'REDIRECT';
  /** Address range (inclusive), 0/0 for MASQUERADE (conntrack uses the output interface's address). */
  minAddr: number;
  maxAddr: number;
  /** Port range (inclusive), 0/0 to keep the port when possible. */
  minPort: number;
  maxPort: number;
  random: boolean;
  randomFully: boolean;
  persistent: boolean;
}

/** The result of traversing one table at one hook. Reused; read it before the next call. */
export class HookResult {
  verdict: Verdict = Verdict.ACCEPT;
  rejectWith: RejectWith = 'icmp-port-unreachable';
  /** Set by a NAT target (only in the nat table). */
  nat: NatRequest | null = null;

  reset(): void {
    this.verdict = Verdict.ACCEPT;
    this.rejectWith = 'icmp-port-unreachable';
    this.nat = null;
  }
}
