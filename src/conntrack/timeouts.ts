/**
 * Conntrack timeouts in seconds, named after the `net.netfilter.nf_conntrack_*_timeout_*`
 * sysctls (Documentation/networking/nf_conntrack-sysctl.rst; `tcp_timeouts[]`,
 * `udp_timeouts[]`, `nf_ct_icmp_timeout`, `nf_ct_generic_timeout` in the kernel sources).
 */
export interface ConntrackTimeouts {
  /** nf_conntrack_tcp_timeout_syn_sent (also NONE: the timeout of a brand-new entry). */
  tcpSynSent: number;
  tcpSynRecv: number;
  tcpEstablished: number;
  tcpFinWait: number;
  tcpCloseWait: number;
  tcpLastAck: number;
  tcpTimeWait: number;
  tcpClose: number;
  /** SYN_SENT2 (simultaneous open); no sysctl of its own, same default as syn_sent. */
  tcpSynSent2: number;
  /** nf_conntrack_tcp_timeout_max_retrans: cap after tcp_max_retrans retransmissions. */
  tcpMaxRetrans: number;
  /** nf_conntrack_tcp_timeout_unacknowledged: cap while data is unacknowledged. */
  tcpUnacknowledged: number;
  /** nf_conntrack_udp_timeout: unreplied, or replied within the first 2 s. */
  udp: number;
  /** nf_conntrack_udp_timeout_stream: replied and still active after 2 s. */
  udpStream: number;
  /** nf_conntrack_gre_timeout: GRE (keys 0, no PPTP helper) until a reply is seen. */
  gre: number;
  /** nf_conntrack_gre_timeout_stream: GRE after a reply. */
  greStream: number;
  /** nf_conntrack_icmp_timeout. */
  icmp: number;
  /** nf_conntrack_generic_timeout: every other protocol. */
  generic: number;
}

/** Linux's defaults (6.x). */
export const LINUX_DEFAULT_TIMEOUTS: Readonly<ConntrackTimeouts> = Object.freeze({
  tcpSynSent: 120,
  tcpSynRecv: 60,
  tcpEstablished: 432000,
  tcpFinWait: 120,
  tcpCloseWait: 60,
  tcpLastAck: 30,
  tcpTimeWait: 120,
  tcpClose: 10,
  tcpSynSent2: 120,
  tcpMaxRetrans: 300,
  tcpUnacknowledged: 300,
  udp: 30,
  udpStream: 120,
  gre: 30,
  greStream: 180,
  icmp: 30,
  generic: 600,
});

/**
 * What kube-proxy writes at start-up with its default flags
 * (`--conntrack-tcp-timeout-established=24h`, `--conntrack-tcp-timeout-close-wait=1h`;
 * the UDP flags default to 0, "leave the kernel value").
 */
export const KUBE_PROXY_TIMEOUTS: Readonly<Partial<ConntrackTimeouts>> = Object.freeze({
  tcpEstablished: 86400,
  tcpCloseWait: 3600,
});

/** Defaults overlaid with `overrides`; throws on a negative or non-finite value. */
export function resolveTimeouts(overrides?: Partial<ConntrackTimeouts>): ConntrackTimeouts {
  const t: ConntrackTimeouts = { ...LINUX_DEFAULT_TIMEOUTS, ...(overrides ?? {}) };
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new RangeError(`conntrack timeout ${k} must be a non-negative number, got ${v}`);
    }
  }
  return t;
}
