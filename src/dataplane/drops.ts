/**
 * Every frame the agent does not forward or deliver is counted under one of
 * these reasons (shown by `kubewire stats` and exported as metrics). Indexes
 * into a Float64Array so counting costs one increment on the data path.
 */
export const DropReason = {
  EthTruncated: 0,
  ForeignMac: 1,
  Multicast: 2,
  UnsupportedEtherType: 3,
  ArpMalformed: 4,
  Ipv4Truncated: 5,
  Ipv4Malformed: 6,
  Ipv4Checksum: 7,
  TtlExceeded: 8,
  NoRoute: 9,
  Blackhole: 10,
  Unreachable: 11,
  FragNeeded: 12,
  NeighbourFailed: 13,
  NeighbourQueueFull: 14,
  InterfaceDown: 15,
  IcmpMalformed: 16,
  InternalError: 17,
  Ipv4Fragment: 18,
  Martian: 19,
  IpipUnknownSource: 20,
  IpipNested: 21,
  NetfilterDrop: 22,
  NetfilterReject: 23,
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

export const dropReasonNames: readonly string[] = [
  'eth-truncated',
  'foreign-mac',
  'multicast',
  'unsupported-ethertype',
  'arp-malformed',
  'ipv4-truncated',
  'ipv4-malformed',
  'ipv4-checksum',
  'ttl-exceeded',
  'no-route',
  'blackhole',
  'unreachable',
  'frag-needed',
  'neighbour-failed',
  'neighbour-queue-full',
  'interface-down',
  'icmp-malformed',
  'internal-error',
  'ipv4-fragment',
  'martian-source',
  'ipip-unknown-source',
  'ipip-nested',
  'netfilter-drop',
  'netfilter-reject',
];

export class DropCounters {
  readonly counts = new Float64Array(dropReasonNames.length);
  /** Set by `kubewire trace` while a traced packet is processed: sees why it was dropped. */
  onDrop: ((reason: DropReason) => void) | null = null;

  count(reason: DropReason): void {
    this.counts[reason]!++;
    if (this.onDrop !== null) this.onDrop(reason);
  }

  total(): number {
    let sum = 0;
    for (const c of this.counts) sum += c;
    return sum;
  }

  /** Non-zero counters by name, for display and metrics. */
  toJSON(): Record<string, number> {
    const out: Record<string, number> = {};
    this.counts.forEach((c, i) => {
      if (c > 0) out[dropReasonNames[i]!] = c;
    });
    return out;
  }
}
