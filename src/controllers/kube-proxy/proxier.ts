/**
 * What kube-proxy's iptables mode programs on one node, as a pure function: services
 * and endpoints in, the `iptables-restore` input of syncProxyRules out (plus the jump
 * rules and chains it ensures with `iptables -I`/`-N`).
 *
 * Reproduces pkg/proxy/iptables/proxier.go of the v1.31/v1.32 era
 * (reference/dataplane.md §1); see README.md beside this file for sources and the
 * decisions where kubewire has to pick (service order, defaults of host-dependent
 * features).
 */
import {
  allServiceEndpointLists,
  cidrContains,
  formatCidr,
  formatIPv4,
  parseIPv4,
  serviceKey,
  type Cidr,
  type ClusterState,
  type ServiceEndpoint,
  type ServicePortEndpoints,
  type ServiceState,
} from '../../cluster/index.js';
import {
  computeProbability,
  endpointChainName,
  isServiceChainName,
  portProtoHash,
  servicePortNameString,
} from './names.js';

// ---------------------------------------------------------------------------------------
// Constants (proxier.go)

export const KUBE_SERVICES = 'KUBE-SERVICES';
export const KUBE_EXTERNAL_SERVICES = 'KUBE-EXTERNAL-SERVICES';
export const KUBE_NODEPORTS = 'KUBE-NODEPORTS';
export const KUBE_POSTROUTING = 'KUBE-POSTROUTING';
export const KUBE_MARK_MASQ = 'KUBE-MARK-MASQ';
export const KUBE_FORWARD = 'KUBE-FORWARD';
export const KUBE_PROXY_FIREWALL = 'KUBE-PROXY-FIREWALL';
export const KUBE_PROXY_CANARY = 'KUBE-PROXY-CANARY';
export const KUBE_FIREWALL = 'KUBE-FIREWALL';

/** Above this many endpoints in total, per-endpoint comments are left out. */
export const LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000;

/** nfacct counter names (pkg/proxy/metrics). */
export const NFACCT_CT_STATE_INVALID_DROPPED = 'ct_state_invalid_dropped_pkts';
export const NFACCT_LOCALHOST_NODEPORT_ACCEPTED = 'localhost_nps_accepted_pkts';

interface JumpChain {
  table: 'filter' | 'nat';
  dstChain: string;
  srcChain: string;
  comment: string;
  extraArgs: readonly string[];
}

const CTSTATE_NEW = ['-m', 'conntrack', '--ctstate', 'NEW'] as const;

/** iptablesJumpChains, then iptablesKubeletJumpChains, in the proxier's order. */
const JUMP_CHAINS: readonly JumpChain[] = [
  {
    table: 'filter',
    dstChain: KUBE_EXTERNAL_SERVICES,
    srcChain: 'INPUT',
    comment: 'kubernetes externally-visible service portals',
    extraArgs: CTSTATE_NEW,
  },
  {
    table: 'filter',
    dstChain: KUBE_EXTERNAL_SERVICES,
    srcChain: 'FORWARD',
    comment: 'kubernetes externally-visible service portals',
    extraArgs: CTSTATE_NEW,
  },
  {
    table: 'filter',
    dstChain: KUBE_NODEPORTS,
    srcChain: 'INPUT',
    comment: 'kubernetes health check service ports',
    extraArgs: [],
  },
  {
    table: 'filter',
    dstChain: KUBE_SERVICES,
    srcChain: 'FORWARD',
    comment: 'kubernetes service portals',
    extraArgs: CTSTATE_NEW,
  },
  {
    table: 'filter',
    dstChain: KUBE_SERVICES,
    srcChain: 'OUTPUT',
    comment: 'kubernetes service portals',
    extraArgs: CTSTATE_NEW,
  },
  {
    table: 'filter',
    dstChain: KUBE_FORWARD,
    srcChain: 'FORWARD',
    comment: 'kubernetes forwarding rules',
    extraArgs: [],
  },
  {
    table: 'filter',
    dstChain: KUBE_PROXY_FIREWALL,
    srcChain: 'INPUT',
    comment: 'kubernetes load balancer firewall',
    extraArgs: CTSTATE_NEW,
  },
  {
    table: 'filter',
    dstChain: KUBE_PROXY_FIREWALL,
    srcChain: 'OUTPUT',
    comment: 'kubernetes load balancer firewall',
    extraArgs: CTSTATE_NEW,
  },
  {
    table: 'filter',
    dstChain: KUBE_PROXY_FIREWALL,
    srcChain: 'FORWARD',
    comment: 'kubernetes load balancer firewall',
    extraArgs: CTSTATE_NEW,
  },
  {
    table: 'nat',
    dstChain: KUBE_SERVICES,
    srcChain: 'OUTPUT',
    comment: 'kubernetes service portals',
    extraArgs: [],
  },
  {
    table: 'nat',
    dstChain: KUBE_SERVICES,
    srcChain: 'PREROUTING',
    comment: 'kubernetes service portals',
    extraArgs: [],
  },
  {
    table: 'nat',
    dstChain: KUBE_POSTROUTING,
    srcChain: 'POSTROUTING',
    comment: 'kubernetes postrouting rules',
    extraArgs: [],
  },
  // kubelet duplicates (pkg/kubelet/kubelet_network_linux.go), no comment.
  { table: 'filter', dstChain: KUBE_FIREWALL, srcChain: 'INPUT', comment: '', extraArgs: [] },
  { table: 'filter', dstChain: KUBE_FIREWALL, srcChain: 'OUTPUT', comment: '', extraArgs: [] },
];

// ---------------------------------------------------------------------------------------
// Public types

export interface KubeProxyOptions {
  /** The node this kube-proxy runs on: endpoints with this nodeName are local. */
  nodeName: string;
  /**
   * The node's IPv4 addresses; [0] is the primary node IP (kube-proxy's nodeIP, used
   * to decide whether loadBalancerSourceRanges admit the node itself). They also stand
   * for the node's interface addresses when nodePortAddresses is set (127.0.0.1 of lo
   * is added implicitly, first).
   */
  nodeIPs: string[];
  /**
   * --cluster-cidr for the ClusterCIDR local-traffic detector: traffic from outside it
   * to a ClusterIP is masqueraded (`! -s <cidr>`), pod traffic to external
   * destinations of eTP=Local services is short-circuited (`-s <cidr>`). '' = no
   * detector (then no such rules, as kube-proxy without --cluster-cidr).
   */
  clusterCIDR: string;
  /** --iptables-masquerade-bit, default 14. */
  masqueradeBit?: number;
  /**
   * The mark text as written. Default: Go's fmt "%#08x" of 1<<masqueradeBit, which is
   * "0x00004000" for bit 14 (iptables-save shows it as 0x4000). Upstream's fake proxier
   * in proxier_test.go sets "0x4000" directly.
   */
  masqueradeMark?: string;
  /** --masquerade-all. */
  masqueradeAll?: boolean;
  /**
   * status.loadBalancer.ingress IPs per "namespace/name". When the map is absent,
   * spec.loadBalancerIP of LoadBalancer Services stands in (until MetalLB assigns).
   */
  loadBalancerIPs?: ReadonlyMap<string, readonly string[]>;
  /** Nodes that are down: their pods' endpoints are not ready. */
  downNodes?: ReadonlySet<string>;
  /**
   * --nodeport-addresses (IPv4 CIDRs, or "primary" for the primary node IP). Default:
   * all local addresses, i.e. `-m addrtype --dst-type LOCAL`.
   */
  nodePortAddresses?: string[];
  /** --iptables-localhost-nodeports, default true (kube-proxy's default). */
  localhostNodePorts?: boolean;
  /** Whether iptables supports MASQUERADE --random-fully (iptables ≥ 1.6.2): default true. */
  randomFully?: boolean;
  /**
   * Whether the nfacct counters could be created (kernel nfnetlink_acct). Default false,
   * so no `-m nfacct` matches are written.
   */
  nfacct?: boolean;
  /** net.netfilter.nf_conntrack_tcp_be_liberal != 0: no INVALID drop rule. Default false. */
  conntrackTCPBeLiberal?: boolean;
  /**
   * Write every Service's chains even when a previous sync is given (kube-proxy's
   * needFullSync: on start, after a failed restore, when its tables were changed behind
   * its back). Default false: a sync on top of `previous` is partial.
   */
  fullSync?: boolean;
}

export interface KubeProxyRules {
  /** `*filter` … `COMMIT\n`: declarations of the chains filled, then their rules. */
  filter: string;
  /** `*nat` … `COMMIT\n`, including `-X` of stale service chains. */
  nat: string;
  /**
   * `*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n`. Not part of the proxier's restore
   * input: kube-proxy's iptables monitor creates the canary with `iptables -N` in
   * mangle, nat and filter (see `ensureChains`). Given for consumers that prefer text.
   */
  mangle: string;
  /**
   * The iptables-restore input of one sync, for `iptables-restore --noflush --counters`:
   * filter then nat, exactly as syncProxyRules writes it.
   */
  restoreText: string;
  /**
   * The jump rules kube-proxy ensures in built-in chains on a full sync, as iptables
   * argv (`-t <table> -I <chain> …`), in the order it inserts them. Each is inserted at
   * the top only when `iptables -C` does not find it.
   */
  jumps: string[][];
  /**
   * Chains kube-proxy ensures exist (`iptables -t <table> -N <chain>` when missing), in
   * order: the canary in mangle, nat and filter (iptables.Monitor), then the target of
   * each jump.
   */
  ensureChains: [table: string, chain: string][];
  /** Chains declared and kept by this sync, in declaration order (stale ones excluded). */
  chains: { nat: string[]; filter: string[] };
  /** Service chains of `previous` that this sync deletes (`-X`), sorted. */
  deletedChains: string[];
  /** Endpoints counted for large-cluster mode, and whether it is on (> 1000). */
  totalEndpoints: number;
  largeClusterMode: boolean;
  /**
   * False for a full sync; true when the chains of unchanged Services were left out of
   * the restore input (they stay as the previous sync wrote them).
   */
  partial: boolean;
  /** Services whose chains this sync writes (all of them on a full sync). */
  writtenServices: number;
  /**
   * Per Service ("namespace/name"): what its chains were computed from, and the nat
   * chains it has, for the next sync to tell unchanged Services and stale chains.
   */
  services: ReadonlyMap<string, KubeProxyServiceRecord>;
  /** The options every Service's chains depend on (a change forces a full sync). */
  syncKey: string;
  /**
   * The cluster state this sync was computed from (kubeProxyRules): the next sync works
   * out only the endpoints of Services that changed since (see allServiceEndpoints).
   */
  syncedState?: ClusterState;
}

/** What a sync leaves for the next one about one Service. */
export interface KubeProxyServiceRecord {
  /** Everything its chains are computed from: equal fingerprints, equal chains. */
  fingerprint: string;
  /** Its SVC/SVL/EXT/FW/SEP chains, in declaration order. */
  chains: string[];
  /**
   * The Service object, endpoints and options its port infos came from: a sync given
   * the same objects (unchanged Services, see allServiceEndpoints' `previous`) takes
   * the port infos and fingerprint over.
   */
  source?: ServicePorts;
}

/** One Service with its endpoints: the input of kubeProxyRulesFor. */
export interface KubeProxyServiceInput {
  service: ServiceState;
  /** As endpointsForService returns them: one entry per Service port. */
  endpoints: readonly ServicePortEndpoints[];
}

// ---------------------------------------------------------------------------------------
// Internal model

interface EndpointInfo {
  ip: string;
  /** "ip:port" (BaseEndpointInfo.String()). */
  str: string;
  local: boolean;
  ready: boolean;
  chain: string;
}

interface PortInfo {
  /** "namespace/name" of the Service. */
  service: string;
  /** All the Service's port infos, with what they came from (for the next sync). */
  source: ServicePorts | null;
  nameString: string;
  protocol: string;
  clusterIP: string;
  port: number;
  nodePort: number;
  healthCheckNodePort: number;
  externalIPs: string[];
  loadBalancerVIPs: string[];
  sourceRanges: Cidr[];
  externalPolicyLocal: boolean;
  internalPolicyLocal: boolean;
  clientIPAffinity: boolean;
  stickyMaxAgeSeconds: number;
  hash: string;
  /** All endpoints of the port, sorted by "ip:port" (byEndpoint), deduplicated. */
  endpoints: EndpointInfo[];
}

interface Resolved {
  nodeName: string;
  nodeIP: number | null;
  localAddresses: number[];
  mark: string;
  masqueradeAll: boolean;
  localDetector: { ifLocal: string; ifNotLocal: string } | null;
  localhostNodePorts: boolean;
  randomFully: boolean;
  nfacct: boolean;
  conntrackTCPBeLiberal: boolean;
  nodePortMatchAll: boolean;
  nodePortCidrs: Cidr[];
}

const LOOPBACK = 0x7f000001; // 127.0.0.1
const NO_ENDPOINTS: readonly ServicePortEndpoints[] = [];

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Go's fmt.Sprintf("%#08x", v): eight zero-padded hex digits after the 0x. */
export function formatMasqueradeMark(bit: number): string {
  return '0x' + (2 ** bit).toString(16).padStart(8, '0');
}

function resolveOptions(opts: KubeProxyOptions): Resolved {
  const nodeIPs = opts.nodeIPs.map(parseIPv4).filter((ip): ip is number => ip !== null);
  const nodeIP = nodeIPs[0] ?? null;
  // NewNodePortAddresses: keep the IPv4 CIDRs; none means 0.0.0.0/0 (match all).
  const cidrs: Cidr[] = [];
  let matchAll = false;
  let containsLoopback = false;
  const given = (opts.nodePortAddresses ?? []).flatMap((text) => {
    if (text === 'primary') return nodeIP === null ? [] : [{ base: nodeIP, prefix: 32 }];
    const c = parseCidrSloppy(text);
    return c === null ? [] : [c];
  });
  if (given.length === 0) given.push({ base: 0, prefix: 0 });
  for (const c of given) {
    if (c.base >>> 24 === 127 || cidrContains(c, LOOPBACK)) containsLoopback = true;
    if (c.prefix === 0) {
      matchAll = true;
      cidrs.length = 0;
      cidrs.push(c);
      break;
    }
    cidrs.push(c);
  }
  const local = [LOOPBACK, ...nodeIPs.filter((ip) => ip !== LOOPBACK)];
  const cidr = opts.clusterCIDR.trim();
  return {
    nodeName: opts.nodeName,
    nodeIP,
    localAddresses: [...new Set(local)],
    mark: opts.masqueradeMark ?? formatMasqueradeMark(opts.masqueradeBit ?? 14),
    masqueradeAll: opts.masqueradeAll ?? false,
    localDetector: cidr === '' ? null : { ifLocal: `-s ${cidr}`, ifNotLocal: `! -s ${cidr}` },
    // NewProxier: localhost NodePorts need nodePortAddresses to include 127.0.0.1.
    localhostNodePorts: (opts.localhostNodePorts ?? true) && containsLoopback,
    randomFully: opts.randomFully ?? true,
    nfacct: opts.nfacct ?? false,
    conntrackTCPBeLiberal: opts.conntrackTCPBeLiberal ?? false,
    nodePortMatchAll: matchAll,
    nodePortCidrs: cidrs,
  };
}

/** apiservice.ExternallyAccessible. */
function serviceExternallyAccessible(svc: ServiceState): boolean {
  return (
    svc.type === 'LoadBalancer' ||
    svc.type === 'NodePort' ||
    (svc.type === 'ClusterIP' && svc.externalIPs.length > 0)
  );
}

function ipv4Strings(list: readonly string[]): string[] {
  return list.flatMap((text) => {
    const ip = parseIPv4(text.trim());
    return ip === null ? [] : [formatIPv4(ip)];
  });
}

/**
 * netutils.ParseCIDRSloppy: "a.b.c.d/n" with host bits allowed and masked off
 * ("203.0.113.5/25" is 203.0.113.0/25); null for anything else (IPv6 included).
 */
function parseCidrSloppy(text: string): Cidr | null {
  const t = text.trim();
  const slash = t.indexOf('/');
  const ip = slash < 0 ? null : parseIPv4(t.slice(0, slash));
  const prefixText = slash < 0 ? '' : t.slice(slash + 1);
  if (ip === null || !/^[0-9]{1,2}$/.test(prefixText) || Number(prefixText) > 32) return null;
  const prefix = Number(prefixText);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { base: (ip & mask) >>> 0, prefix };
}

/** MapCIDRsByIPFamily of the trimmed ranges: the IPv4 ones, as networks. */
function sourceRangesOf(svc: ServiceState): Cidr[] {
  return svc.loadBalancerSourceRanges.flatMap((text) => {
    const c = parseCidrSloppy(text);
    return c === null ? [] : [c];
  });
}

function loadBalancerVIPsOf(svc: ServiceState, opts: KubeProxyOptions): string[] {
  if (opts.loadBalancerIPs !== undefined) {
    return ipv4Strings(opts.loadBalancerIPs.get(serviceKey(svc)) ?? []);
  }
  return svc.type === 'LoadBalancer' && svc.loadBalancerIP !== undefined
    ? ipv4Strings([svc.loadBalancerIP])
    : [];
}

/** The port's endpoints; their chain names are filled in when the chains are written. */
function endpointInfos(list: readonly ServiceEndpoint[], nodeName: string): EndpointInfo[] {
  const out: EndpointInfo[] = [];
  for (const ep of list) {
    // The cluster state holds valid addresses; leave out anything IPv6.
    if (ep.port <= 0 || ep.ip.includes(':')) continue;
    out.push({
      ip: ep.ip,
      str: `${ep.ip}:${ep.port}`,
      local: ep.nodeName !== null && ep.nodeName === nodeName,
      ready: ep.ready,
      chain: '',
    });
  }
  // byEndpoint: sorted by the "ip:port" string, so 10.0.1.10:80 precedes 10.0.1.2:80.
  out.sort((a, b) => cmp(a.str, b.str));
  // EndpointSliceCache keys endpoints by "ip:port"; of duplicates, a ready one is kept.
  let n = 0;
  for (const ep of out) {
    const prev = n > 0 ? out[n - 1]! : null;
    if (prev !== null && prev.str === ep.str) {
      if (!prev.ready && ep.ready) out[n - 1] = ep;
      continue;
    }
    out[n++] = ep;
  }
  out.length = n;
  return out;
}

/** A Service's port infos and fingerprint, and the Service object and endpoints they came from. */
export interface ServicePorts {
  service: ServiceState;
  endpoints: readonly ServicePortEndpoints[];
  nodeName: string;
  loadBalancerVIPs: string[];
  ports: PortInfo[];
  fingerprint: string;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The port infos of every Service (sorted), and each Service's fingerprint. A Service the
 * previous sync saw with the same objects keeps its port infos.
 */
function portInfos(
  inputs: readonly KubeProxyServiceInput[],
  opts: KubeProxyOptions,
  r: Resolved,
  previous: KubeProxyRules | undefined,
): { ports: PortInfo[]; fingerprints: Map<string, string> } {
  const sorted = [...inputs].sort(
    (a, b) => cmp(a.service.namespace, b.service.namespace) || cmp(a.service.name, b.service.name),
  );
  const out: PortInfo[] = [];
  const fingerprints = new Map<string, string>();
  for (const { service: svc, endpoints } of sorted) {
    // ShouldSkipService: headless, no ClusterIP, ExternalName.
    if (svc.type === 'ExternalName' || svc.headless || svc.clusterIP === null) continue;
    const clusterIP = parseIPv4(svc.clusterIP);
    if (clusterIP === null) continue; // not IPv4
    const loadBalancerVIPs = loadBalancerVIPsOf(svc, opts);
    const key = `${svc.namespace}/${svc.name}`;
    const known = previous?.services.get(key)?.source;
    if (
      known !== undefined &&
      known.service === svc &&
      known.endpoints === endpoints &&
      known.nodeName === r.nodeName &&
      sameStrings(known.loadBalancerVIPs, loadBalancerVIPs)
    ) {
      for (const p of known.ports) out.push(p);
      fingerprints.set(key, known.fingerprint);
      continue;
    }
    const first = out.length;
    const externalPolicyLocal =
      serviceExternallyAccessible(svc) && svc.externalTrafficPolicy === 'Local';
    const externalIPs = ipv4Strings(svc.externalIPs);
    const sourceRanges = sourceRangesOf(svc);
    const healthCheckNodePort =
      svc.type === 'LoadBalancer' && externalPolicyLocal ? (svc.healthCheckNodePort ?? 0) : 0;
    const formattedClusterIP = formatIPv4(clusterIP);
    const internalPolicyLocal = svc.internalTrafficPolicy === 'Local';
    const clientIPAffinity = svc.sessionAffinity === 'ClientIP';
    for (const port of svc.ports) {
      const nameString = servicePortNameString(svc.namespace, svc.name, port.name);
      const protocol = port.protocol.toLowerCase();
      const eps = endpoints.find((e) => e.portName === port.name && e.protocol === port.protocol);
      out.push({
        service: key,
        source: null,
        nameString,
        protocol,
        clusterIP: formattedClusterIP,
        port: port.port,
        nodePort: port.nodePort ?? 0,
        healthCheckNodePort,
        externalIPs,
        loadBalancerVIPs,
        sourceRanges,
        externalPolicyLocal,
        internalPolicyLocal,
        clientIPAffinity,
        stickyMaxAgeSeconds: svc.sessionAffinityTimeoutSeconds,
        hash: portProtoHash(nameString, protocol),
        endpoints: endpointInfos(eps?.endpoints ?? [], r.nodeName),
      });
    }
    if (out.length === first) continue;
    const ports = out.slice(first);
    const fingerprint = serviceFingerprint(ports);
    fingerprints.set(key, fingerprint);
    const source: ServicePorts = {
      service: svc,
      endpoints,
      nodeName: r.nodeName,
      loadBalancerVIPs,
      ports,
      fingerprint,
    };
    for (const p of ports) p.source = source;
  }
  return { ports: out, fingerprints };
}

/**
 * proxy.CategorizeEndpoints without topology hints and without terminating endpoints
 * (kubewire has neither): Cluster policy uses the ready endpoints, Local policy the
 * ready endpoints on this node.
 */
function categorize(
  eps: readonly EndpointInfo[],
  usesCluster: boolean,
  usesLocal: boolean,
): { cluster: EndpointInfo[]; local: EndpointInfo[]; all: EndpointInfo[]; hasAny: boolean } {
  let cluster: EndpointInfo[] = [];
  let hasAny = false;
  if (usesCluster) {
    cluster = eps.filter((e) => e.ready);
    hasAny = cluster.length > 0;
  }
  if (!usesLocal) return { cluster, local: [], all: cluster, hasAny };
  if (eps.some((e) => e.ready)) hasAny = true;
  const local = eps.filter((e) => e.ready && e.local);
  // Without topology or terminating endpoints, local ⊆ cluster: the union is cluster.
  return { cluster, local, all: usesCluster ? cluster : local, hasAny };
}

// ---------------------------------------------------------------------------------------
// Generation

const chainLine = (chain: string) => `:${chain} - [0:0]`;

/**
 * The rules of one sync for already-computed endpoints. `previous` is the result of
 * the previous sync on this node: its service chains that are not active any more
 * are flushed and deleted (`-X`), as kube-proxy does after `iptables-save`.
 */
export function kubeProxyRulesFor(
  inputs: readonly KubeProxyServiceInput[],
  opts: KubeProxyOptions,
  previous?: KubeProxyRules,
): KubeProxyRules {
  const r = resolveOptions(opts);
  const mark = r.mark;
  const filterChains = new LineBuffer();
  const filterRules = new LineBuffer();
  const natChains = new LineBuffer();
  const natRules = new LineBuffer();
  const filterChainNames: string[] = [];
  const natChainNames: string[] = [];
  const declareFilter = (c: string) => {
    filterChains.push(chainLine(c));
    filterChainNames.push(c);
  };
  const declareNat = (c: string) => {
    natChains.push(chainLine(c));
    natChainNames.push(c);
  };

  for (const c of [
    KUBE_SERVICES,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FORWARD,
    KUBE_NODEPORTS,
    KUBE_PROXY_FIREWALL,
  ]) {
    declareFilter(c);
  }
  for (const c of [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ]) declareNat(c);

  natRules.push(`-A ${KUBE_POSTROUTING} -m mark ! --mark ${mark}/${mark} -j RETURN`);
  // Clear the mark so a packet re-traversing the stack is not masqueraded twice.
  natRules.push(`-A ${KUBE_POSTROUTING} -j MARK --xor-mark ${mark}`);
  natRules.push(
    `-A ${KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE` +
      (r.randomFully ? ' --random-fully' : ''),
  );
  natRules.push(`-A ${KUBE_MARK_MASQ} -j MARK --or-mark ${mark}`);

  if (r.localhostNodePorts) {
    // Mitigation of route_localnet (issue 90259); kubelet writes the same rule.
    declareFilter(KUBE_FIREWALL);
    filterRules.push(
      `-A ${KUBE_FIREWALL} -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
    );
  }

  const { ports, fingerprints } = portInfos(inputs, opts, r, previous);
  let totalEndpoints = 0;
  for (const p of ports) totalEndpoints += p.endpoints.length;
  const largeClusterMode = totalEndpoints > LARGE_CLUSTER_ENDPOINTS_THRESHOLD;
  const probabilities: string[] = [];
  const probability = (n: number) => (probabilities[n] ??= computeProbability(n));

  // Partial sync (syncProxyRules' tryPartialSync): the SVC/SVL/EXT/FW/SEP chains of a
  // Service whose Service and endpoints are as in the previous sync are left out of the
  // restore input; they stay as they are (and count as active). The top-level chains
  // and the filter table are always written whole.
  const syncKey = [
    r.masqueradeAll,
    opts.clusterCIDR.trim(),
    r.nodeIP ?? '',
    r.nodeName,
    largeClusterMode,
  ].join('|');
  const partial =
    previous !== undefined && !(opts.fullSync ?? false) && previous.syncKey === syncKey;
  const services = new Map<string, KubeProxyServiceRecord>();
  let writtenServices = 0;
  let record: KubeProxyServiceRecord | null = null;
  let keep = false;

  for (const p of ports) {
    const S = p.nameString;
    if (!services.has(p.service)) {
      const fingerprint = fingerprints.get(p.service)!;
      const before = partial ? previous!.services.get(p.service) : undefined;
      keep = before !== undefined && before.fingerprint === fingerprint;
      if (keep) {
        record = before!;
        // The same chains; the objects they came from are this sync's now.
        if (p.source !== null) record.source = p.source;
      } else {
        record = { fingerprint, chains: [], ...(p.source !== null ? { source: p.source } : {}) };
      }
      services.set(p.service, record);
      // Kept: its chains stay as they are, and stay active.
      if (keep) for (const c of record.chains) natChainNames.push(c);
      else writtenServices++;
    }
    // The chains of this port: declared and written, unless the Service is kept.
    const out: LineBuffer | null = keep ? null : natRules;
    const chainOf = (c: string) => {
      if (keep) return;
      declareNat(c);
      record!.chains.push(c);
    };
    if (!keep) for (const ep of p.endpoints) ep.chain = endpointChainName(S, p.protocol, ep.str);
    const proto = `-m ${p.protocol} -p ${p.protocol}`;
    const externallyAccessible =
      p.nodePort !== 0 || p.loadBalancerVIPs.length > 0 || p.externalIPs.length > 0;
    const usesClusterEndpoints = !p.internalPolicyLocal || externallyAccessible;
    const usesLocalEndpoints =
      p.internalPolicyLocal || (p.externalPolicyLocal && externallyAccessible);
    const { cluster, local, all, hasAny } = categorize(
      p.endpoints,
      usesClusterEndpoints,
      usesLocalEndpoints,
    );

    const clusterPolicyChain = 'KUBE-SVC-' + p.hash;
    const localPolicyChain = 'KUBE-SVL-' + p.hash;
    const externalTrafficChain = 'KUBE-EXT-' + p.hash;
    const fwChain = 'KUBE-FW-' + p.hash;
    const usesClusterPolicyChain = cluster.length > 0 && usesClusterEndpoints;
    const usesLocalPolicyChain = local.length > 0 && usesLocalEndpoints;

    let internalTrafficChain = clusterPolicyChain;
    let hasInternalEndpoints = hasAny;
    if (p.internalPolicyLocal) {
      internalTrafficChain = localPolicyChain;
      if (local.length === 0) hasInternalEndpoints = false;
    }
    let externalPolicyChain = clusterPolicyChain;
    let hasExternalEndpoints = hasAny;
    if (p.externalPolicyLocal) {
      externalPolicyChain = localPolicyChain;
      if (local.length === 0) hasExternalEndpoints = false;
    }
    // Based on hasAny, not hasExternalEndpoints: the short-circuit rules for local
    // traffic are needed even without externally usable endpoints.
    const usesExternalTrafficChain = hasAny && externallyAccessible;
    const usesFWChain = hasAny && p.loadBalancerVIPs.length > 0 && p.sourceRanges.length > 0;
    const loadBalancerTrafficChain = usesFWChain ? fwChain : externalTrafficChain;

    let internalFilterTarget = '';
    let internalFilterComment = '';
    let externalFilterTarget = '';
    let externalFilterComment = '';
    if (!hasAny) {
      internalFilterTarget = 'REJECT';
      internalFilterComment = `"${S} has no endpoints"`;
      externalFilterTarget = 'REJECT';
      externalFilterComment = internalFilterComment;
    } else {
      if (!hasInternalEndpoints) {
        internalFilterTarget = 'DROP';
        internalFilterComment = `"${S} has no local endpoints"`;
      }
      if (!hasExternalEndpoints) {
        externalFilterTarget = 'DROP';
        externalFilterComment = `"${S} has no local endpoints"`;
      }
    }

    // ClusterIP.
    const dport = `--dport ${p.port}`;
    if (hasInternalEndpoints) {
      natRules.push(
        `-A ${KUBE_SERVICES} -m comment --comment "${S} cluster IP" ${proto} -d ${p.clusterIP} ${dport} -j ${internalTrafficChain}`,
      );
    } else {
      filterRules.push(
        `-A ${KUBE_SERVICES} -m comment --comment ${internalFilterComment} ${proto} -d ${p.clusterIP} ${dport} -j ${internalFilterTarget}`,
      );
    }

    // externalIPs.
    for (const ip of p.externalIPs) {
      if (hasAny) {
        natRules.push(
          `-A ${KUBE_SERVICES} -m comment --comment "${S} external IP" ${proto} -d ${ip} ${dport} -j ${externalTrafficChain}`,
        );
      }
      if (!hasExternalEndpoints) {
        filterRules.push(
          `-A ${KUBE_EXTERNAL_SERVICES} -m comment --comment ${externalFilterComment} ${proto} -d ${ip} ${dport} -j ${externalFilterTarget}`,
        );
      }
    }

    // Load-balancer ingress.
    for (const ip of p.loadBalancerVIPs) {
      if (hasAny) {
        natRules.push(
          `-A ${KUBE_SERVICES} -m comment --comment "${S} loadbalancer IP" ${proto} -d ${ip} ${dport} -j ${loadBalancerTrafficChain}`,
        );
      }
      if (usesFWChain) {
        filterRules.push(
          `-A ${KUBE_PROXY_FIREWALL} -m comment --comment "${S} traffic not accepted by ${fwChain}" ${proto} -d ${ip} ${dport} -j DROP`,
        );
      }
    }
    if (!hasExternalEndpoints) {
      for (const ip of p.loadBalancerVIPs) {
        filterRules.push(
          `-A ${KUBE_EXTERNAL_SERVICES} -m comment --comment ${externalFilterComment} ${proto} -d ${ip} ${dport} -j ${externalFilterTarget}`,
        );
      }
    }

    // NodePort (not subject to loadBalancerSourceRanges).
    if (p.nodePort !== 0) {
      if (hasAny) {
        if (r.localhostNodePorts && r.nfacct) {
          natRules.push(
            `-A ${KUBE_NODEPORTS} -m comment --comment ${S} ${proto} -d 127.0.0.0/8 --dport ${p.nodePort} -m nfacct --nfacct-name ${NFACCT_LOCALHOST_NODEPORT_ACCEPTED} -j ${externalTrafficChain}`,
          );
        }
        natRules.push(
          `-A ${KUBE_NODEPORTS} -m comment --comment ${S} ${proto} --dport ${p.nodePort} -j ${externalTrafficChain}`,
        );
      }
      if (!hasExternalEndpoints) {
        filterRules.push(
          `-A ${KUBE_EXTERNAL_SERVICES} -m comment --comment ${externalFilterComment} -m addrtype --dst-type LOCAL ${proto} --dport ${p.nodePort} -j ${externalFilterTarget}`,
        );
      }
    }

    // healthCheckNodePort: accepted whether or not there are local endpoints.
    if (p.healthCheckNodePort !== 0) {
      filterRules.push(
        `-A ${KUBE_NODEPORTS} -m comment --comment "${S} health check node port" -m tcp -p tcp --dport ${p.healthCheckNodePort} -j ACCEPT`,
      );
    }

    // Internal traffic: masquerade what does not come from a pod (or everything).
    if (hasInternalEndpoints && out !== null) {
      const args = `-m comment --comment "${S} cluster IP" ${proto} -d ${p.clusterIP} ${dport}`;
      if (r.masqueradeAll) {
        out.push(`-A ${internalTrafficChain} ${args} -j ${KUBE_MARK_MASQ}`);
      } else if (r.localDetector !== null) {
        out.push(
          `-A ${internalTrafficChain} ${args} ${r.localDetector.ifNotLocal} -j ${KUBE_MARK_MASQ}`,
        );
      }
    }

    // External destinations (NodePort, LB IPs, externalIPs).
    if (usesExternalTrafficChain) {
      chainOf(externalTrafficChain);
      if (out !== null) {
        if (!p.externalPolicyLocal) {
          out.push(
            `-A ${externalTrafficChain} -m comment --comment "masquerade traffic for ${S} external destinations" -j ${KUBE_MARK_MASQ}`,
          );
        } else {
          if (r.localDetector !== null) {
            out.push(
              `-A ${externalTrafficChain} -m comment --comment "pod traffic for ${S} external destinations" ${r.localDetector.ifLocal} -j ${clusterPolicyChain}`,
            );
          }
          out.push(
            `-A ${externalTrafficChain} -m comment --comment "masquerade LOCAL traffic for ${S} external destinations" -m addrtype --src-type LOCAL -j ${KUBE_MARK_MASQ}`,
          );
          out.push(
            `-A ${externalTrafficChain} -m comment --comment "route LOCAL traffic for ${S} external destinations" -m addrtype --src-type LOCAL -j ${clusterPolicyChain}`,
          );
        }
        if (hasExternalEndpoints) {
          out.push(`-A ${externalTrafficChain} -j ${externalPolicyChain}`);
        }
      }
    }

    // loadBalancerSourceRanges.
    if (usesFWChain) {
      chainOf(fwChain);
      if (out !== null) {
        const head = `-A ${fwChain} -m comment --comment "${S} loadbalancer IP"`;
        let allowFromNode = false;
        for (const cidr of p.sourceRanges) {
          out.push(`${head} -s ${formatCidr(cidr)} -j ${externalTrafficChain}`);
          if (r.nodeIP !== null && cidrContains(cidr, r.nodeIP)) allowFromNode = true;
        }
        // A request from the node to a VIP that is local to it arrives with the VIP as
        // its source.
        if (allowFromNode) {
          for (const ip of p.loadBalancerVIPs) {
            out.push(`${head} -s ${ip} -j ${externalTrafficChain}`);
          }
        }
        out.push(
          `-A ${fwChain} -m comment --comment "other traffic to ${S} will be dropped by KUBE-PROXY-FIREWALL"`,
        );
      }
    }

    if (usesClusterPolicyChain) {
      chainOf(clusterPolicyChain);
      if (out !== null) {
        writeServiceToEndpointRules(
          out,
          p,
          clusterPolicyChain,
          cluster,
          largeClusterMode,
          probability,
        );
      }
    }
    if (usesLocalPolicyChain) {
      chainOf(localPolicyChain);
      if (out !== null) {
        writeServiceToEndpointRules(out, p, localPolicyChain, local, largeClusterMode, probability);
      }
    }

    // One chain per locally reachable endpoint.
    for (const ep of all) {
      chainOf(ep.chain);
      if (out === null) continue;
      let args = `-A ${ep.chain}`;
      if (!largeClusterMode) args += ` -m comment --comment ${S}`;
      // Hairpin: traffic that loops back to its originator is SNATed.
      out.push(`${args} -s ${ep.ip} -j ${KUBE_MARK_MASQ}`);
      if (p.clientIPAffinity) args += ` -m recent --name ${ep.chain} --set`;
      out.push(`${args} ${proto} -j DNAT --to-destination ${ep.str}`);
    }
  }

  // Stale chains: service chains that existed before and are not active now.
  let deletedChains: string[] = [];
  if (partial) {
    // Only Services that changed or went away can have lost chains.
    for (const [svc, before] of previous!.services) {
      const now = services.get(svc);
      if (now === before) continue;
      const still = new Set(now?.chains ?? []);
      for (const c of before.chains) if (!still.has(c)) deletedChains.push(c);
    }
    deletedChains = deletedChains.filter(isServiceChainName).sort(cmp);
  } else if (previous !== undefined && previous.chains.nat.length > 0) {
    const active = new Set(natChainNames);
    deletedChains = previous.chains.nat
      .filter((c) => !active.has(c) && isServiceChainName(c))
      .sort(cmp);
  }
  for (const c of new Set(deletedChains)) {
    natChains.push(chainLine(c));
    natRules.push(`-X ${c}`);
  }

  // Finally the tail call to KUBE-NODEPORTS: after every other service portal rule.
  const last = `-A ${KUBE_SERVICES} -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"`;
  if (r.nodePortMatchAll) {
    const notLoopback = r.localhostNodePorts ? '' : ' ! -d 127.0.0.0/8';
    natRules.push(`${last} -m addrtype --dst-type LOCAL${notLoopback} -j ${KUBE_NODEPORTS}`);
  } else {
    const seen = new Set<number>();
    for (const ip of r.localAddresses) {
      if (seen.has(ip) || !r.nodePortCidrs.some((c) => cidrContains(c, ip))) continue;
      seen.add(ip);
      if (ip >>> 24 === 127 && !r.localhostNodePorts) continue;
      natRules.push(`${last} -d ${formatIPv4(ip)} -j ${KUBE_NODEPORTS}`);
    }
  }

  if (!r.conntrackTCPBeLiberal) {
    filterRules.push(
      `-A ${KUBE_FORWARD} -m conntrack --ctstate INVALID` +
        (r.nfacct ? ` -m nfacct --nfacct-name ${NFACCT_CT_STATE_INVALID_DROPPED}` : '') +
        ' -j DROP',
    );
  }
  // Forward what was marked for masquerade, even with a FORWARD policy of DROP.
  filterRules.push(
    `-A ${KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`,
  );
  filterRules.push(
    `-A ${KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
  );

  const filter = `*filter\n${filterChains.text()}${filterRules.text()}COMMIT\n`;
  const nat = `*nat\n${natChains.text()}${natRules.text()}COMMIT\n`;
  return {
    filter,
    nat,
    mangle: `*mangle\n${chainLine(KUBE_PROXY_CANARY)}\nCOMMIT\n`,
    restoreText: filter + nat,
    jumps: jumpRules(),
    ensureChains: ensureChains(),
    chains: { nat: natChainNames, filter: filterChainNames },
    deletedChains,
    totalEndpoints,
    largeClusterMode,
    partial,
    writtenServices,
    services,
    syncKey,
  };
}

/**
 * What a Service's chains are computed from (every port's fields and endpoints): equal
 * fingerprints, equal chains (given the same syncKey). Kept until the next sync, so it
 * is joined into one flat string (a string built by concatenation is a tree of pieces,
 * several times larger).
 */
function serviceFingerprint(ports: readonly PortInfo[]): string {
  const list: string[] = [];
  for (const p of ports) {
    if (list.length > 0) list.push('\n');
    list.push(
      p.nameString,
      ' ',
      p.protocol,
      ' ',
      p.clusterIP,
      ` ${p.port} ${p.nodePort} `,
      p.externalIPs.join(','),
      ' ',
      p.loadBalancerVIPs.join(','),
      ' ',
      p.sourceRanges.map(formatCidr).join(','),
      ` ${p.externalPolicyLocal ? 1 : 0}${p.internalPolicyLocal ? 1 : 0}` +
        `${p.clientIPAffinity ? 1 : 0} ${p.stickyMaxAgeSeconds}`,
    );
    for (const ep of p.endpoints) {
      list.push(' ', ep.str, ep.local ? (ep.ready ? 'LR' : 'L') : ep.ready ? 'R' : '');
    }
  }
  return list.join('');
}

/**
 * Lines of restore input (proxyutil.LineBuffer). They are joined in chunks as they come,
 * so each line's pieces die young instead of living, and being copied by the garbage
 * collector, until the whole text is joined.
 */
const LINES_PER_CHUNK = 256;

class LineBuffer {
  private readonly lines: string[] = [];
  private readonly chunks: string[] = [];

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length === LINES_PER_CHUNK) this.flush();
  }

  private flush(): void {
    if (this.lines.length === 0) return;
    this.lines.push('');
    this.chunks.push(this.lines.join('\n'));
    this.lines.length = 0;
  }

  /** The lines, each ending with a newline. */
  text(): string {
    this.flush();
    return this.chunks.join('');
  }
}

function writeServiceToEndpointRules(
  natRules: LineBuffer,
  p: PortInfo,
  svcChain: string,
  endpoints: readonly EndpointInfo[],
  largeClusterMode: boolean,
  probability: (n: number) => string,
): void {
  const comment = (ep: EndpointInfo) =>
    largeClusterMode ? '' : ` -m comment --comment "${p.nameString} -> ${ep.str}"`;
  // Session affinity first: a client seen recently goes back to its endpoint.
  if (p.clientIPAffinity) {
    for (const ep of endpoints) {
      natRules.push(
        `-A ${svcChain}${comment(ep)} -m recent --name ${ep.chain} --rcheck --seconds ${p.stickyMaxAgeSeconds} --reap -j ${ep.chain}`,
      );
    }
  }
  // Then load balancing: endpoint i of n matches with probability 1/(n-i); the last
  // always matches.
  const n = endpoints.length;
  endpoints.forEach((ep, i) => {
    const stat = i < n - 1 ? ` -m statistic --mode random --probability ${probability(n - i)}` : '';
    natRules.push(`-A ${svcChain}${comment(ep)}${stat} -j ${ep.chain}`);
  });
}

/** The jump rules of iptablesJumpChains and iptablesKubeletJumpChains, as argv. */
export function jumpRules(): string[][] {
  return JUMP_CHAINS.map((j) => [
    '-t',
    j.table,
    '-I',
    j.srcChain,
    ...j.extraArgs,
    ...(j.comment !== '' ? ['-m', 'comment', '--comment', j.comment] : []),
    '-j',
    j.dstChain,
  ]);
}

/** The chains kube-proxy ensures with `iptables -N`: the canaries, then jump targets. */
export function ensureChains(): [string, string][] {
  const out: [string, string][] = [
    ['mangle', KUBE_PROXY_CANARY],
    ['nat', KUBE_PROXY_CANARY],
    ['filter', KUBE_PROXY_CANARY],
  ];
  const seen = new Set(out.map(([t, c]) => `${t} ${c}`));
  for (const j of JUMP_CHAINS) {
    const key = `${j.table} ${j.dstChain}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push([j.table, j.dstChain]);
  }
  return out;
}

/**
 * What kube-proxy (iptables mode) on node `opts.nodeName` programs for `state`: the
 * endpoints come from endpointsForService (with `opts.downNodes`).
 */
export function kubeProxyRules(
  state: ClusterState,
  opts: KubeProxyOptions,
  previous?: KubeProxyRules,
): KubeProxyRules {
  const downNodes = opts.downNodes;
  const before = previous?.syncedState;
  const all = allServiceEndpointLists(state, {
    ...(downNodes !== undefined ? { downNodes } : {}),
    ...(before !== undefined ? { previous: before } : {}),
  });
  const inputs = state.services.map((service, i) => ({
    service,
    endpoints: all[i] ?? NO_ENDPOINTS,
  }));
  return { ...kubeProxyRulesFor(inputs, opts, previous), syncedState: state };
}

/**
 * kube-proxy's options on a kubeadm node of `state`: the node's InternalIP, the pod
 * subnet as --cluster-cidr (kubeadm sets clusterCIDR to networking.podSubnet).
 */
export function kubeProxyOptionsFor(state: ClusterState, nodeName: string): KubeProxyOptions {
  const node = state.nodes.find((n) => n.name === nodeName);
  return {
    nodeName,
    nodeIPs: node ? [node.internalIP] : [],
    clusterCIDR: state.config.podSubnet,
    // status.loadBalancer.ingress, as MetalLB's controller assigned it.
    loadBalancerIPs: new Map(
      state.metallb.loadBalancers.map((lb) => [`${lb.namespace}/${lb.name}`, lb.ips]),
    ),
  };
}
