/**
 * Services: the checks of the API server's ValidateService that span several fields, its
 * defaults (SetDefaults_Service), and deterministic ClusterIP and NodePort allocation.
 * Endpoints are derived in endpoints.ts.
 *
 * The allocators follow pkg/registry/core/service/ipallocator and portallocator: a
 * bitmap over the range, with the lower part (the "static band") left for addresses and
 * ports that manifests ask for, and automatic allocation starting in the upper part
 * (KEP-3070, KEP-3668). Where Kubernetes starts the scan at a random offset, kubewire
 * starts at a hash of the Service's name, so the result is a pure function of the
 * manifests and a Service keeps its address when others come and go.
 */
import type { PathSegment } from './errors.js';
import { compareStrings, stableHash32 } from './hash.js';
import {
  formatCidr,
  formatIPv4,
  isIPv4,
  looksLikeIPv6,
  parseCidr,
  parseCidrStrict,
  parseIPv4,
  prefixSize,
} from './ip.js';
import { derivedUid } from './naming.js';
import { isDns1123Subdomain, type ServiceInput } from './schemas.js';
import type {
  ServicePortState,
  ServiceProtocol,
  ServiceState,
  ServiceType,
} from './service-types.js';

// ---------------------------------------------------------------------------------------
// Constants

/** The API server's default --service-node-port-range. */
export const SERVICE_NODE_PORT_RANGE = { min: 30000, max: 32767 } as const;
/** core/v1 DefaultClientIPServiceAffinitySeconds (3 hours). */
export const DEFAULT_SESSION_AFFINITY_TIMEOUT = 10800;
/** core/v1 MaxClientIPServiceAffinitySeconds (1 day). */
export const MAX_SESSION_AFFINITY_TIMEOUT = 86400;
/** kubeadm's API server secure port: the targetPort of the `kubernetes` Service. */
export const API_SERVER_PORT = 6443;
/** The Service the API server maintains for itself. */
export const KUBERNETES_SERVICE = { namespace: 'default', name: 'kubernetes' } as const;
/** The cluster DNS Service kubeadm's CoreDNS addon creates. */
export const CLUSTER_DNS_SERVICE = { namespace: 'kube-system', name: 'kube-dns' } as const;
/** Node labels that mark a control-plane node (kubeadm; `master` before v1.24). */
export const CONTROL_PLANE_LABELS = [
  'node-role.kubernetes.io/control-plane',
  'node-role.kubernetes.io/master',
] as const;

/** `<namespace>/<name>`, the key of a Service in maps and messages. */
export function serviceKey(svc: { namespace: string; name: string }): string {
  return `${svc.namespace}/${svc.name}`;
}

type Spec = NonNullable<ServiceInput['spec']>;
type Report = (path: PathSegment[], detail: string) => void;

/** spec.clusterIP, or spec.clusterIPs[0] when clusterIP is unset; undefined for "allocate". */
function requestedClusterIP(spec: Spec): string | undefined {
  if (spec.clusterIP !== undefined && spec.clusterIP !== '') return spec.clusterIP;
  const first = spec.clusterIPs?.[0];
  return first !== undefined && first !== '' ? first : undefined;
}

function clusterIPPath(spec: Spec): PathSegment[] {
  return spec.clusterIP !== undefined && spec.clusterIP !== ''
    ? ['spec', 'clusterIP']
    : spec.clusterIPs !== undefined && spec.clusterIPs.length > 0
      ? ['spec', 'clusterIPs', 0]
      : ['spec', 'clusterIP'];
}

/** apiservice.ExternallyAccessible: NodePort, LoadBalancer, or ClusterIP with externalIPs. */
function externallyAccessible(type: ServiceType, spec: Spec): boolean {
  return (
    type === 'NodePort' ||
    type === 'LoadBalancer' ||
    (type === 'ClusterIP' && (spec.externalIPs ?? []).length > 0)
  );
}

function inNodePortRange(port: number): boolean {
  return port >= SERVICE_NODE_PORT_RANGE.min && port <= SERVICE_NODE_PORT_RANGE.max;
}

const NODE_PORT_RANGE_TEXT = `${SERVICE_NODE_PORT_RANGE.min}-${SERVICE_NODE_PORT_RANGE.max}`;

/** ValidateNonSpecialIP plus kubewire's IPv4-only rule; null when the address is usable. */
function externalIPProblem(ip: string): string | null {
  if (looksLikeIPv6(ip)) return `IPv6 address ${ip} is not supported (kubewire emulates IPv4)`;
  const v = parseIPv4(ip);
  if (v === null) return `${JSON.stringify(ip)} is not an IPv4 address`;
  if (v === 0) return 'may not be unspecified (0.0.0.0)';
  if (v >>> 24 === 127) return 'may not be in the loopback range (127.0.0.0/8)';
  if (v >>> 16 === 0xa9fe) return 'may not be in the link-local range (169.254.0.0/16)';
  if (v >>> 8 === 0xe00000) return 'may not be in the link-local multicast range (224.0.0.0/24)';
  return null;
}

// ---------------------------------------------------------------------------------------
// Checks within one Service (ValidateService), run after the schema

/**
 * The rules of ValidateService that involve more than one field. `err` refuses the
 * Service; `warn` notes something kubewire ignores.
 */
export function checkService(svc: ServiceInput, err: Report, warn: Report): void {
  const spec: Spec = svc.spec ?? {};
  const type: ServiceType = spec.type ?? 'ClusterIP';
  const ports = spec.ports ?? [];
  const requested = requestedClusterIP(spec);
  const headless = requested === 'None';

  if (ports.length === 0 && !headless && type !== 'ExternalName') {
    err(
      ['spec', 'ports'],
      'required: a Service needs at least one port (unless it is headless or ExternalName)',
    );
  }

  // clusterIP and clusterIPs (kubewire keeps the IPv4 primary only).
  const ips = spec.clusterIPs ?? [];
  if (spec.clusterIP !== undefined && spec.clusterIP !== '' && ips.length > 0) {
    if (ips[0] !== spec.clusterIP) {
      err(['spec', 'clusterIPs', 0], `must match spec.clusterIP (${spec.clusterIP})`);
    }
  }
  ips.forEach((ip, i) => {
    if (i === 0) {
      if (ip !== '' && ip !== 'None' && !isIPv4(ip)) {
        err(
          ['spec', 'clusterIPs', 0],
          looksLikeIPv6(ip)
            ? `IPv6 address ${ip} is not supported (kubewire emulates IPv4)`
            : `${JSON.stringify(ip)} is not an IPv4 address, "None" or empty`,
        );
      }
    } else if (i === 1 && looksLikeIPv6(ip)) {
      warn(['spec', 'clusterIPs', 1], `IPv6 address ${ip} ignored (kubewire emulates IPv4)`);
    } else if (i === 1) {
      err(['spec', 'clusterIPs', 1], 'the second address of a dual-stack Service must be IPv6');
    } else {
      err(['spec', 'clusterIPs', i], 'at most two addresses are allowed (one per IP family)');
    }
  });

  if ((type === 'NodePort' || type === 'LoadBalancer') && headless) {
    err(clusterIPPath(spec), `may not be "None" for ${type} services`);
  }
  if (type === 'ExternalName') {
    if (requested !== undefined) {
      err(clusterIPPath(spec), 'may not be set for ExternalName services');
    }
    if (spec.ipFamilies !== undefined) {
      err(['spec', 'ipFamilies'], 'may not be set for ExternalName services');
    }
    if (spec.ipFamilyPolicy !== undefined) {
      err(['spec', 'ipFamilyPolicy'], 'may not be set for ExternalName services');
    }
    // The value (a CNAME) may end with a dot to mark it fully qualified.
    const cname = (spec.externalName ?? '').replace(/\.$/, '');
    if (cname === '') {
      err(
        ['spec', 'externalName'],
        'required for type ExternalName (the DNS name the Service is an alias for)',
      );
    } else if (!isDns1123Subdomain(cname)) {
      err(
        ['spec', 'externalName'],
        `${JSON.stringify(spec.externalName)} is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.')`,
      );
    }
  } else {
    const families = spec.ipFamilies;
    if (families !== undefined && !families.includes('IPv4')) {
      err(['spec', 'ipFamilies'], 'IPv6-only Services are not supported (kubewire emulates IPv4)');
    } else if (families?.includes('IPv6')) {
      warn(['spec', 'ipFamilies'], 'IPv6 ignored (kubewire emulates IPv4)');
    }
    if (spec.ipFamilyPolicy === 'RequireDualStack') {
      warn(
        ['spec', 'ipFamilyPolicy'],
        'RequireDualStack: kubewire emulates IPv4, the Service gets an IPv4 address only',
      );
    }
  }

  // Ports: names, duplicates, node ports.
  const names = new Map<string, number>();
  const pairs = new Map<string, number>();
  const nodePorts = new Map<string, number>();
  ports.forEach((p, i) => {
    const protocol = p.protocol ?? 'TCP';
    const name = p.name ?? '';
    if (name === '' && ports.length > 1) {
      err(['spec', 'ports', i, 'name'], 'required when the Service has more than one port');
    } else if (name !== '') {
      const j = names.get(name);
      if (j !== undefined) {
        err(
          ['spec', 'ports', i, 'name'],
          `duplicate port name ${JSON.stringify(name)} (also spec.ports[${j}])`,
        );
      } else names.set(name, i);
    }
    const pair = `${p.port}/${protocol}`;
    const k = pairs.get(pair);
    if (k !== undefined)
      err(['spec', 'ports', i], `duplicate port ${pair} (also spec.ports[${k}])`);
    else pairs.set(pair, i);

    const nodePort = p.nodePort ?? 0;
    if (nodePort === 0) return;
    const path = ['spec', 'ports', i, 'nodePort'];
    if (type === 'ClusterIP') {
      err(path, "may not be used when `type` is 'ClusterIP'");
    } else if (type === 'ExternalName') {
      warn(path, 'ignored for an ExternalName Service');
    } else if (!inNodePortRange(nodePort)) {
      err(path, `${nodePort} is outside the NodePort range ${NODE_PORT_RANGE_TEXT}`);
    } else {
      const key = `${nodePort}/${protocol}`;
      const j = nodePorts.get(key);
      if (j !== undefined) err(path, `duplicate nodePort ${key} (also spec.ports[${j}])`);
      else nodePorts.set(key, i);
    }
  });

  if (spec.sessionAffinity === 'ClientIP') {
    const t = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
    if (t !== undefined && (t <= 0 || t > MAX_SESSION_AFFINITY_TIMEOUT)) {
      err(
        ['spec', 'sessionAffinityConfig', 'clientIP', 'timeoutSeconds'],
        `must be greater than 0 and at most ${MAX_SESSION_AFFINITY_TIMEOUT}, got ${t}`,
      );
    }
  }

  (spec.externalIPs ?? []).forEach((ip, i) => {
    const why = externalIPProblem(ip);
    if (why !== null) err(['spec', 'externalIPs', i], why);
  });

  const lbOnly = "may only be used when `type` is 'LoadBalancer'";
  const ranges = spec.loadBalancerSourceRanges ?? [];
  if (ranges.length > 0 && type !== 'LoadBalancer')
    err(['spec', 'loadBalancerSourceRanges'], lbOnly);
  ranges.forEach((text, i) => {
    // Space padding is allowed ("a historical accident"), and so are host bits.
    const r = parseCidrStrict(text.trim());
    if (r.ok || r.reason === 'host-bits') return;
    const path = ['spec', 'loadBalancerSourceRanges', i];
    if (r.reason === 'ipv6')
      warn(path, `IPv6 range ${text.trim()} ignored (kubewire emulates IPv4)`);
    else err(path, `${JSON.stringify(text)} is not a CIDR such as 203.0.113.0/24`);
  });
  if (spec.allocateLoadBalancerNodePorts !== undefined && type !== 'LoadBalancer') {
    err(['spec', 'allocateLoadBalancerNodePorts'], lbOnly);
  }
  if (spec.loadBalancerClass !== undefined && type !== 'LoadBalancer') {
    err(['spec', 'loadBalancerClass'], lbOnly);
  }

  if (!externallyAccessible(type, spec) && spec.externalTrafficPolicy !== undefined) {
    err(
      ['spec', 'externalTrafficPolicy'],
      'may only be set for externally-accessible services (type NodePort or LoadBalancer, or with externalIPs)',
    );
  }
  const healthCheckNodePort = spec.healthCheckNodePort ?? 0;
  if (healthCheckNodePort !== 0) {
    if (type !== 'LoadBalancer' || spec.externalTrafficPolicy !== 'Local') {
      err(
        ['spec', 'healthCheckNodePort'],
        "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
      );
    } else if (!inNodePortRange(healthCheckNodePort)) {
      err(
        ['spec', 'healthCheckNodePort'],
        `${healthCheckNodePort} is outside the NodePort range ${NODE_PORT_RANGE_TEXT}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------
// Defaults

function sortedRecord(record: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(record ?? {}).sort(compareStrings)) out[key] = record![key]!;
  return out;
}

/** The ServiceState of a manifest, with the API server's defaults; nothing allocated yet. */
function serviceStateOf(namespace: string, name: string, svc: ServiceInput): ServiceState {
  const spec: Spec = svc.spec ?? {};
  const type: ServiceType = spec.type ?? 'ClusterIP';
  const headless = type !== 'ExternalName' && requestedClusterIP(spec) === 'None';
  const ports: ServicePortState[] = (spec.ports ?? []).map((p) => ({
    name: p.name ?? '',
    protocol: (p.protocol ?? 'TCP') as ServiceProtocol,
    port: p.port,
    targetPort:
      p.targetPort === undefined || p.targetPort === 0 || p.targetPort === ''
        ? p.port
        : p.targetPort,
    nodePort: null,
    ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}),
  }));
  const selector = spec.selector ?? {};
  const ranges = (spec.loadBalancerSourceRanges ?? []).flatMap((text) => {
    const r = parseCidrStrict(text.trim());
    if (r.ok) return [formatCidr(r.cidr)];
    return r.reason === 'host-bits' ? [r.network!] : [];
  });
  return {
    namespace,
    name,
    uid: derivedUid('Service', namespace, name),
    type,
    clusterIP: null,
    headless,
    ...(type === 'ExternalName' ? { externalName: spec.externalName! } : {}),
    ports,
    // An empty selector is no selector (the API round-trips {} as nil).
    selector: Object.keys(selector).length > 0 ? sortedRecord(selector) : null,
    sessionAffinity: spec.sessionAffinity ?? 'None',
    sessionAffinityTimeoutSeconds:
      spec.sessionAffinity === 'ClientIP'
        ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_SESSION_AFFINITY_TIMEOUT)
        : DEFAULT_SESSION_AFFINITY_TIMEOUT,
    externalTrafficPolicy: spec.externalTrafficPolicy ?? 'Cluster',
    internalTrafficPolicy: spec.internalTrafficPolicy ?? 'Cluster',
    publishNotReadyAddresses: spec.publishNotReadyAddresses ?? false,
    externalIPs: [...(spec.externalIPs ?? [])],
    ...(spec.loadBalancerIP !== undefined && spec.loadBalancerIP !== ''
      ? { loadBalancerIP: spec.loadBalancerIP }
      : {}),
    ...(spec.loadBalancerClass !== undefined ? { loadBalancerClass: spec.loadBalancerClass } : {}),
    loadBalancerSourceRanges: ranges,
    healthCheckNodePort: null,
    labels: sortedRecord(svc.metadata.labels),
    annotations: sortedRecord(svc.metadata.annotations),
  };
}

/**
 * The `kubernetes` Service as the API server creates it when it is missing
 * (pkg/controlplane/controller/kubernetesservice): ClusterIP, the first address of the
 * service subnet, port 443 named https to the API server's 6443, no selector.
 */
function implicitKubernetesService(): ServiceState {
  const { namespace, name } = KUBERNETES_SERVICE;
  return {
    namespace,
    name,
    uid: derivedUid('Service', namespace, name),
    type: 'ClusterIP',
    clusterIP: null,
    headless: false,
    ports: [
      { name: 'https', protocol: 'TCP', port: 443, targetPort: API_SERVER_PORT, nodePort: null },
    ],
    selector: null,
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: DEFAULT_SESSION_AFFINITY_TIMEOUT,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    publishNotReadyAddresses: false,
    externalIPs: [],
    loadBalancerSourceRanges: [],
    healthCheckNodePort: null,
    labels: { component: 'apiserver', provider: 'kubernetes' },
    annotations: {},
  };
}

// ---------------------------------------------------------------------------------------
// The allocators

/**
 * `min(max(min, size/step), max)`, 0 when size <= min: the size of the static band at the
 * bottom of the range (ipallocator and portallocator `calculateRangeOffset`).
 */
export function staticBandSize(size: number, min: number, max: number, step: number): number {
  if (size <= min) return 0;
  return Math.min(Math.max(Math.floor(size / step), min), max);
}

/**
 * A bitmap over offsets 0..size-1 with the allocation order of
 * `randomScanStrategyWithOffset`: scan the upper band [band, size) from a start point,
 * wrapping; then the lower band [0, band). The start is a hash instead of a random number.
 */
class BandAllocator<Owner> {
  readonly owners = new Map<number, Owner>();

  constructor(
    readonly size: number,
    readonly band: number,
    /** Offsets never handed out automatically (they may still be claimed explicitly). */
    readonly reserved: ReadonlySet<number> = new Set(),
  ) {}

  owner(offset: number): Owner | undefined {
    return this.owners.get(offset);
  }

  claim(offset: number, owner: Owner): void {
    this.owners.set(offset, owner);
  }

  next(hash: number, owner: Owner): number | null {
    const free = (at: number): boolean => !this.owners.has(at) && !this.reserved.has(at);
    const upper = this.size - this.band;
    for (let i = 0; i < upper; i++) {
      const at = this.band + ((hash + i) % upper);
      if (free(at)) {
        this.claim(at, owner);
        return at;
      }
    }
    for (let i = 0; i < this.band; i++) {
      const at = (hash + i) % this.band;
      if (free(at)) {
        this.claim(at, owner);
        return at;
      }
    }
    return null;
  }
}

/** A problem with one input Service: `index` into the inputs, a field path, the text. */
export interface ServiceProblem {
  index: number;
  path: PathSegment[];
  detail: string;
}

export interface ServiceInputEntry {
  namespace: string;
  name: string;
  value: ServiceInput;
}

export interface ServicesResult {
  /** Every Service, sorted by namespace then name, the implicit `kubernetes` included. */
  services: ServiceState[];
  problems: ServiceProblem[];
}

interface NodePortOwner {
  service: string;
  /** The Service port number, or null for the health check node port. */
  port: number | null;
}

/**
 * Defaults and allocation for the Services of a cluster. `inputs` are valid Services
 * (checkService passed), unique by namespace/name.
 *
 * ClusterIPs, in this order:
 * 1. `default/kubernetes` gets the first address of the subnet (added when missing);
 * 2. addresses the manifests give are honoured (refused outside the subnet, on its
 *    network or broadcast address, or when another Service has them);
 * 3. `kube-system/kube-dns` without one gets the tenth address (kubeadm's cluster DNS);
 * 4. the others, in (namespace, name) order, hash `<ns>/<name>` into the upper band of the
 *    subnet and probe linearly to a free address, then the lower band; the first and
 *    tenth addresses are never handed out this way.
 *
 * NodePorts (NodePort and LoadBalancer Services): given ones are honoured (refused when
 * another Service, or another port number of the same Service, has them); the others
 * hash `<ns>/<name>/<port name or number>/<protocol>` into 30000-32767 the same way. Ports
 * of one Service with the same number (53/UDP and 53/TCP) share one node port, as
 * `initNodePorts` does. `allocateLoadBalancerNodePorts: false` allocates none (given ones
 * are kept). healthCheckNodePort (LoadBalancer + Local) hashes `<ns>/<name>/healthCheckNodePort`.
 */
export function buildServices(
  inputs: readonly ServiceInputEntry[],
  serviceSubnet: string,
): ServicesResult {
  const problems: ServiceProblem[] = [];
  const order = inputs
    .map((_, i) => i)
    .sort(
      (a, b) =>
        compareStrings(inputs[a]!.namespace, inputs[b]!.namespace) ||
        compareStrings(inputs[a]!.name, inputs[b]!.name),
    );
  const states = inputs.map((e) => serviceStateOf(e.namespace, e.name, e.value));
  const isKubernetes = (e: { namespace: string; name: string }) =>
    e.namespace === KUBERNETES_SERVICE.namespace && e.name === KUBERNETES_SERVICE.name;
  const isClusterDNS = (e: { namespace: string; name: string }) =>
    e.namespace === CLUSTER_DNS_SERVICE.namespace && e.name === CLUSTER_DNS_SERVICE.name;

  // ClusterIPs. Offset i is the address base + 1 + i (the network address is skipped).
  const cidr = parseCidr(serviceSubnet)!;
  const cidrSize = prefixSize(cidr.prefix);
  const usable = Math.max(0, cidrSize - 2);
  const first = 0;
  const tenth = 9;
  const ips = new BandAllocator<string>(
    usable,
    Math.min(staticBandSize(cidrSize, 16, 256, 16), usable),
    new Set([first, tenth]),
  );
  const addressAt = (offset: number) => formatIPv4(cidr.base + 1 + offset);
  const kubernetesIP = addressAt(first);
  const dnsIP = addressAt(tenth);

  const kubernetesIndex = order.find((i) => isKubernetes(inputs[i]!));
  if (kubernetesIndex !== undefined) {
    const spec: Spec = inputs[kubernetesIndex]!.value.spec ?? {};
    const requested = requestedClusterIP(spec);
    const type = spec.type ?? 'ClusterIP';
    if (type === 'ExternalName' || (requested !== undefined && requested !== kubernetesIP)) {
      problems.push({
        index: kubernetesIndex,
        path: type === 'ExternalName' ? ['spec', 'type'] : clusterIPPath(spec),
        detail: `the kubernetes Service in default always has the first address of the service subnet (${kubernetesIP})`,
      });
    }
    states[kubernetesIndex]!.clusterIP = kubernetesIP;
    states[kubernetesIndex]!.headless = false;
  } else {
    const implicit = implicitKubernetesService();
    implicit.clusterIP = kubernetesIP;
    states.push(implicit);
  }
  if (usable > first) ips.claim(first, serviceKey(KUBERNETES_SERVICE));

  const wantsClusterIP = (i: number): boolean => {
    const s = states[i]!;
    return !isKubernetes(s) && s.type !== 'ExternalName' && !s.headless;
  };
  const automatic: number[] = [];
  for (const i of order) {
    if (!wantsClusterIP(i)) continue;
    const spec: Spec = inputs[i]!.value.spec ?? {};
    const requested = requestedClusterIP(spec);
    if (requested === undefined) {
      automatic.push(i);
      continue;
    }
    const path = clusterIPPath(spec);
    const addr = parseIPv4(requested)!;
    const offset = addr - cidr.base - 1;
    let why: string | null = null;
    if (addr === cidr.base) why = 'is the network address of';
    else if (offset === usable) why = 'is the broadcast address of';
    else if (offset < 0 || offset > usable) why = 'is not in';
    if (why !== null) {
      problems.push({
        index: i,
        path,
        detail: `${requested} ${why} the service subnet ${serviceSubnet} (kubeadm networking.serviceSubnet)`,
      });
      continue;
    }
    const holder = ips.owner(offset);
    if (holder !== undefined) {
      problems.push({
        index: i,
        path,
        detail: `${requested} is already allocated to Service ${holder}`,
      });
      continue;
    }
    ips.claim(offset, serviceKey(inputs[i]!));
    states[i]!.clusterIP = requested;
  }
  for (const i of automatic) {
    const key = serviceKey(inputs[i]!);
    if (isClusterDNS(inputs[i]!) && usable > tenth) {
      const holder = ips.owner(tenth);
      if (holder !== undefined) {
        problems.push({
          index: i,
          path: ['spec', 'clusterIP'],
          detail: `kube-dns gets the cluster DNS address ${dnsIP} when it names none, but Service ${holder} has it`,
        });
      } else {
        ips.claim(tenth, key);
        states[i]!.clusterIP = dnsIP;
      }
      continue;
    }
    const offset = ips.next(stableHash32(key), key);
    if (offset === null) {
      problems.push({
        index: i,
        path: ['spec', 'clusterIP'],
        detail: `no free address in the service subnet ${serviceSubnet}`,
      });
    } else states[i]!.clusterIP = addressAt(offset);
  }

  // NodePorts. Offset i is port 30000 + i.
  const { min, max } = SERVICE_NODE_PORT_RANGE;
  const portCount = max - min + 1;
  const nodePorts = new BandAllocator<NodePortOwner>(
    portCount,
    staticBandSize(portCount, 16, 128, 32),
  );
  const exposesNodePorts = (i: number) =>
    states[i]!.type === 'NodePort' || states[i]!.type === 'LoadBalancer';
  const needsHealthCheck = (i: number) =>
    states[i]!.type === 'LoadBalancer' && states[i]!.externalTrafficPolicy === 'Local';
  const describe = (owner: NodePortOwner, key: string): string =>
    owner.service !== key
      ? `Service ${owner.service}${owner.port === null ? ' (its healthCheckNodePort)' : ''}`
      : owner.port === null
        ? 'spec.healthCheckNodePort of this Service'
        : `port ${owner.port} of this Service`;
  const claimNodePort = (i: number, nodePort: number, port: number | null, path: PathSegment[]) => {
    const key = serviceKey(inputs[i]!);
    const holder = nodePorts.owner(nodePort - min);
    if (holder !== undefined && (holder.service !== key || holder.port !== port)) {
      problems.push({
        index: i,
        path,
        detail: `nodePort ${nodePort} is already allocated to ${describe(holder, key)}`,
      });
      return false;
    }
    nodePorts.claim(nodePort - min, { service: key, port });
    return true;
  };

  // Given node ports first, in (namespace, name) order.
  for (const i of order) {
    const spec: Spec = inputs[i]!.value.spec ?? {};
    if (exposesNodePorts(i)) {
      (spec.ports ?? []).forEach((p, j) => {
        const np = p.nodePort ?? 0;
        if (np === 0) return;
        if (claimNodePort(i, np, p.port, ['spec', 'ports', j, 'nodePort'])) {
          states[i]!.ports[j]!.nodePort = np;
        }
      });
    }
    const hc = spec.healthCheckNodePort ?? 0;
    if (needsHealthCheck(i) && hc !== 0) {
      if (claimNodePort(i, hc, null, ['spec', 'healthCheckNodePort'])) {
        states[i]!.healthCheckNodePort = hc;
      }
    }
  }
  // Then the automatic ones.
  for (const i of order) {
    const spec: Spec = inputs[i]!.value.spec ?? {};
    const key = serviceKey(inputs[i]!);
    const state = states[i]!;
    if (exposesNodePorts(i)) {
      const allocate = state.type === 'NodePort' || spec.allocateLoadBalancerNodePorts !== false;
      const given = spec.ports ?? [];
      const byNumber = new Map<number, number>();
      state.ports.forEach((p, j) => {
        if ((given[j]!.nodePort ?? 0) !== 0) {
          if (!byNumber.has(p.port) && p.nodePort !== null) byNumber.set(p.port, p.nodePort);
          return;
        }
        if (!allocate) return;
        // findRequestedNodePort: a port with the same number that names its node port.
        const shared =
          byNumber.get(p.port) ??
          given.find((q) => q.port === p.port && (q.nodePort ?? 0) !== 0)?.nodePort;
        if (shared !== undefined) {
          p.nodePort = shared;
          byNumber.set(p.port, shared);
          return;
        }
        const seed = `${key}/${p.name !== '' ? p.name : p.port}/${p.protocol}`;
        const offset = nodePorts.next(stableHash32(seed), { service: key, port: p.port });
        if (offset === null) {
          problems.push({
            index: i,
            path: ['spec', 'ports', j, 'nodePort'],
            detail: `no free node port in ${NODE_PORT_RANGE_TEXT}`,
          });
          return;
        }
        p.nodePort = min + offset;
        byNumber.set(p.port, p.nodePort);
      });
    }
    if (needsHealthCheck(i) && (spec.healthCheckNodePort ?? 0) === 0) {
      const offset = nodePorts.next(stableHash32(`${key}/healthCheckNodePort`), {
        service: key,
        port: null,
      });
      if (offset === null) {
        problems.push({
          index: i,
          path: ['spec', 'healthCheckNodePort'],
          detail: `no free node port in ${NODE_PORT_RANGE_TEXT}`,
        });
      } else state.healthCheckNodePort = min + offset;
    }
  }

  states.sort((a, b) => compareStrings(a.namespace, b.namespace) || compareStrings(a.name, b.name));
  return { services: states, problems };
}
