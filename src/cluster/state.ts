/**
 * The cluster state: a pure function of the manifests. Every agent computes it on its
 * own and gets the same bytes (JSON.stringify) whatever the order of files and
 * documents: objects are sorted before use, names and placements are derived by hashing.
 */
import { ManifestError, ManifestErrors, type PathSegment } from './errors.js';
import { compareStrings } from './hash.js';
import {
  cidrContainsCidr,
  cidrsOverlap,
  formatCidr,
  formatIPv4,
  isIPv4,
  parseCidr,
  parseIPv4,
  type Cidr,
} from './ip.js';
import { recordedBlockOf } from './ipam-blocks.js';
import {
  runIpam,
  type IpamNode,
  type IpamPod,
  type IpamPool,
  type IpamRecordedBlock,
  type IpipMode,
} from './ipam.js';
import type { ManifestDocument } from './load.js';
import {
  daemonPodName,
  derivedUid,
  netnsNameForPod,
  podTemplateHash,
  replicaPodName,
  replicaSetName,
  vethNameForWorkload,
} from './naming.js';
import {
  checkNamedNode,
  daemonSetTolerations,
  feasibleNodes,
  spreadIndex,
  unfitReason,
  UNSCHEDULABLE_TAINT,
  type SchedulingConstraints,
  type Taint,
  type Toleration,
} from './scheduling.js';
import { IP_ADDRS_ANNOTATION, parseIpAddrsAnnotation, type PodSpecInput } from './schemas.js';
import {
  parseCalicoSelector,
  type LabelSelector,
  type Labels,
  type NodeSelectorTerm,
} from './selectors.js';
import type { ServiceState } from './service-types.js';
import { buildServices } from './services.js';
import {
  ALLOCATIONS_CONFIG_MAP,
  allocateLoadBalancers,
  findPoolOverlap,
  formatRange,
  LEGACY_CONFIG_MAP,
  legacyConfigOf,
  METALLB_NAMESPACE,
  poolOf,
  type L2AdvertisementState,
  type LoadBalancerStatus,
  type MetalLBPool,
  type PoolInput,
} from './metallb.js';
import type { IPAddressPoolInput, L2AdvertisementInput } from './schemas.js';
import {
  makeError,
  makeWarning,
  sortWarnings,
  validateDocuments,
  type Entry,
  type Ident,
  type Origin,
  type RawObject,
  type CachedDocument,
  type Warning,
} from './validate.js';

export type { IpipMode } from './ipam.js';
export type { Taint, Toleration, TaintEffect } from './scheduling.js';
export type { RawObject } from './validate.js';

// ---------------------------------------------------------------------------------------
// State types (plain JSON data)

export interface ClusterConfig {
  /** IPv4 pod subnet (kubeadm networking.podSubnet; default 192.168.0.0/16, Calico's pool). */
  podSubnet: string;
  /** IPv4 service subnet (kubeadm networking.serviceSubnet; default 10.96.0.0/12). */
  serviceSubnet: string;
  /** Cluster DNS domain (kubeadm networking.dnsDomain; default cluster.local). */
  dnsDomain: string;
  /** kubeadm clusterName (default "kubernetes"). */
  clusterName: string;
  /** First address of the service subnet: the `kubernetes` Service's ClusterIP. */
  kubernetesServiceIP: string;
  /** Tenth address of the service subnet: kubeadm's cluster DNS (kube-dns) ClusterIP. */
  clusterDNSIP: string;
  /** Whether a ClusterConfiguration was given or the defaults apply. */
  source: 'ClusterConfiguration' | 'default';
}

export interface PoolState {
  name: string;
  cidr: string;
  blockSize: number;
  ipipMode: IpipMode;
  natOutgoing: boolean;
  /** Calico selector text ("all()" when absent). */
  nodeSelector: string;
  disabled: boolean;
  /** "manifest", or "default" for the pool calico-node would create. */
  source: 'manifest' | 'default';
}

export interface NodeAddress {
  type: string;
  address: string;
}

export interface NodeState {
  name: string;
  /** Labels, with the kubelet's well-known ones added when absent (hostname, os, arch). */
  labels: Labels;
  annotations: Labels;
  internalIP: string;
  addresses: NodeAddress[];
  /** spec.taints, plus node.kubernetes.io/unschedulable:NoSchedule when spec.unschedulable. */
  taints: Taint[];
  unschedulable: boolean;
  /** The IPv4 spec.podCIDR (or podCIDRs[0]) as given, or null. */
  podCIDR: string | null;
  /** Affine IPAM blocks in claim order; the first IPIP block holds the tunnel address. */
  blocks: string[];
  /** tunl0 address: first address of the node's first block in an IPIP pool; else null. */
  tunnelAddress: string | null;
  /** ipipMode of the pool of the tunnel block; 'Never' without one. */
  ipipMode: IpipMode;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  hostPort?: number;
}

export interface EnvVar {
  name: string;
  /** Absent when the manifest used valueFrom (not emulated). */
  value?: string;
}

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env: EnvVar[];
  ports: ContainerPort[];
  /** Kept as written in the manifest. */
  readinessProbe?: unknown;
}

export interface DnsConfig {
  nameservers?: string[];
  searches?: string[];
  options?: { name: string; value?: string }[];
}

export interface PodOwner {
  kind: 'Deployment' | 'DaemonSet';
  name: string;
}

export interface PodState {
  namespace: string;
  name: string;
  uid: string;
  nodeName: string | null;
  phase: 'Pending' | 'Running';
  pendingReason?: string;
  ip: string | null;
  /** True when the address lies in another node's block (Calico's borrowed address). */
  borrowed?: boolean;
  labels: Labels;
  annotations: Labels;
  owner?: PodOwner;
  /** Replica index, for Deployment pods. */
  ownerIndex?: number;
  hostNetwork: boolean;
  hostname?: string;
  subdomain?: string;
  dnsPolicy: 'ClusterFirst' | 'ClusterFirstWithHostNet' | 'Default' | 'None';
  dnsConfig?: DnsConfig;
  restartPolicy: 'Always' | 'OnFailure' | 'Never';
  nodeSelector: Labels;
  tolerations: Toleration[];
  containers: ContainerSpec[];
  vethName: string;
  netnsName: string;
}

export interface MetalLBState {
  ipAddressPools: RawObject[];
  l2Advertisements: RawObject[];
  /** Every pool, from IPAddressPools and the legacy ConfigMap, in name order. */
  pools: MetalLBPool[];
  /** L2Advertisements, plus one for every layer2 pool of the legacy ConfigMap. */
  advertisements: L2AdvertisementState[];
  /** The controller's status for every LoadBalancer Service it handles. */
  loadBalancers: LoadBalancerStatus[];
}

export interface ClusterState {
  config: ClusterConfig;
  pools: PoolState[];
  nodes: NodeState[];
  namespaces: string[];
  pods: PodState[];
  /** Services with defaults and allocated addresses, `default/kubernetes` always included. */
  services: ServiceState[];
  configMaps: RawObject[];
  secrets: RawObject[];
  ingresses: RawObject[];
  ingressClasses: RawObject[];
  networkPolicies: RawObject[];
  metallb: MetalLBState;
  warnings: string[];
}

// ---------------------------------------------------------------------------------------
// Defaults

export const DEFAULT_POD_SUBNET = '192.168.0.0/16';
export const DEFAULT_SERVICE_SUBNET = '10.96.0.0/12';
export const DEFAULT_DNS_DOMAIN = 'cluster.local';
export const DEFAULT_POOL_NAME = 'default-ipv4-ippool';
export const DEFAULT_BLOCK_SIZE = 26;
/** Namespaces every cluster has. */
export const BUILTIN_NAMESPACES = ['default', 'kube-node-lease', 'kube-public', 'kube-system'];

// ---------------------------------------------------------------------------------------
// Helpers

function sortedRecord(record: Record<string, string> | undefined): Labels {
  const out: Labels = {};
  for (const key of Object.keys(record ?? {}).sort(compareStrings)) out[key] = record![key]!;
  return out;
}

function byNamespaceName<T extends { namespace: string | undefined; name: string; origin: Origin }>(
  a: T,
  b: T,
): number {
  return (
    compareStrings(a.namespace ?? '', b.namespace ?? '') ||
    compareStrings(a.name, b.name) ||
    compareStrings(a.origin.file, b.origin.file) ||
    a.origin.documentIndex - b.origin.documentIndex ||
    compareStrings(JSON.stringify(a.origin.pathPrefix), JSON.stringify(b.origin.pathPrefix))
  );
}

function identOf(entry: Entry<unknown>): Ident {
  return {
    kind: entry.kind,
    ...(entry.namespace !== undefined ? { namespace: entry.namespace } : {}),
    ...(entry.name !== '' ? { name: entry.name } : {}),
  };
}

function firstIPv4Cidr(text: string | undefined): string | undefined {
  return text
    ?.split(',')
    .map((p) => p.trim())
    .find((p) => parseCidr(p) !== null);
}

/** kubelet's well-known labels, added when the Node object does not set them. */
function withKubeletLabels(name: string, labels: Labels): Labels {
  return sortedRecord({
    'beta.kubernetes.io/arch': 'amd64',
    'beta.kubernetes.io/os': 'linux',
    'kubernetes.io/arch': 'amd64',
    'kubernetes.io/hostname': name,
    'kubernetes.io/os': 'linux',
    ...labels,
  });
}

/** One pod to place: from a Pod, a Deployment replica or a DaemonSet node. */
interface PodIntent {
  namespace: string;
  name: string;
  /** "<namespace>/<name>" (one string for every lookup by pod). */
  key: string;
  /** The raw object of the document the pod comes from (Pod, Deployment or DaemonSet). */
  source: object;
  /** Where scheduling put it (set by the scheduling step). */
  place?: { node: string | null; reason?: string };
  labels: Labels;
  annotations: Labels;
  spec: PodSpecInput;
  owner?: { kind: 'Deployment' | 'DaemonSet'; name: string };
  ownerIndex?: number;
  /** Fixed node: spec.nodeName of a Pod, or the DaemonSet's node. */
  nodeName?: string;
  tolerations: Toleration[];
  origin: Origin;
  ident: Ident;
  annotationsPath: PathSegment[];
}

function constraintsOf(spec: PodSpecInput, tolerations: Toleration[]): SchedulingConstraints {
  const terms =
    spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  return {
    nodeSelector: spec.nodeSelector ?? {},
    ...(terms !== undefined ? { affinityTerms: terms as NodeSelectorTerm[] } : {}),
    tolerations,
  };
}

function containersOf(spec: PodSpecInput): ContainerSpec[] {
  return spec.containers.map((c) => ({
    name: c.name,
    image: c.image,
    ...(c.command !== undefined ? { command: [...c.command] } : {}),
    ...(c.args !== undefined ? { args: [...c.args] } : {}),
    env: (c.env ?? []).map((e) => ({
      name: e.name,
      ...(e.value !== undefined ? { value: e.value } : {}),
    })),
    ports: (c.ports ?? []).map((p) => ({
      ...(p.name !== undefined ? { name: p.name } : {}),
      containerPort: p.containerPort,
      protocol: p.protocol ?? 'TCP',
      ...(p.hostPort !== undefined ? { hostPort: p.hostPort } : {}),
    })),
    ...(c.readinessProbe !== undefined
      ? { readinessProbe: structuredClone(c.readinessProbe) }
      : {}),
  }));
}

function tolerationsOf(spec: PodSpecInput): Toleration[] {
  return (spec.tolerations ?? []).map((t) => ({
    ...(t.key !== undefined ? { key: t.key } : {}),
    ...(t.operator !== undefined ? { operator: t.operator } : {}),
    ...(t.value !== undefined ? { value: t.value } : {}),
    ...(t.effect !== undefined ? { effect: t.effect } : {}),
    ...(t.tolerationSeconds !== undefined ? { tolerationSeconds: t.tolerationSeconds } : {}),
  }));
}

function sameToleration(a: Toleration, b: Toleration): boolean {
  return (
    a.key === b.key &&
    (a.operator ?? 'Equal') === (b.operator ?? 'Equal') &&
    (a.value ?? '') === (b.value ?? '') &&
    a.effect === b.effect
  );
}

// ---------------------------------------------------------------------------------------
// The builder

/** What a build leaves for the next build (see BuildOptions.previous). */
interface BuildMemo {
  documents: Map<string, CachedDocument>;
}

/**
 * pod-template-hash by template object, and the first-attempt replica names by Deployment
 * document: the validated form of an unchanged document is the same object from build to
 * build (see BuildOptions.previous).
 */
const TEMPLATE_HASHES = new WeakMap<object, string>();
const REPLICA_NAMES = new WeakMap<object, string[]>();
/**
 * The pods made from each validated Pod or Deployment document (its raw object), by
 * replica index: an unchanged document's pods, when the build before made them.
 */
const SOURCE_PODS = new WeakMap<object, PodState[]>();

/** The Service made from each validated Service document (its raw object), last. */
const SOURCE_SERVICES = new WeakMap<object, ServiceState>();

/**
 * Whether two Services made from the same document got the same allocations (everything
 * else in a ServiceState comes from its document and the service subnet).
 */
function sameAllocations(a: ServiceState, b: ServiceState): boolean {
  if (
    a.clusterIP !== b.clusterIP ||
    a.headless !== b.headless ||
    a.healthCheckNodePort !== b.healthCheckNodePort ||
    a.ports.length !== b.ports.length
  ) {
    return false;
  }
  for (let i = 0; i < a.ports.length; i++)
    if (a.ports[i]!.nodePort !== b.ports[i]!.nodePort) return false;
  return true;
}

function previousPod(intent: PodIntent): PodState | undefined {
  if (intent.owner?.kind === 'DaemonSet') return undefined;
  return SOURCE_PODS.get(intent.source)?.[intent.ownerIndex ?? 0];
}

function templateHashOf(template: unknown): string {
  if (typeof template !== 'object' || template === null) return podTemplateHash(template);
  let hash = TEMPLATE_HASHES.get(template);
  if (hash === undefined) TEMPLATE_HASHES.set(template, (hash = podTemplateHash(template)));
  return hash;
}

/** The memo of each state's build (not part of the state's data). */
const BUILD_MEMOS = new WeakMap<ClusterState, BuildMemo>();

export interface BuildOptions {
  /**
   * The state built before from (mostly) the same manifests: documents whose text is
   * unchanged are not validated again. The result is the same with or without it.
   */
  previous?: ClusterState;
}

/**
 * Builds the cluster state from manifest documents. Throws ManifestErrors listing every
 * invalid object (validation, duplicates, conflicting blocks or pinned addresses).
 */
export function buildClusterState(
  docs: readonly ManifestDocument[],
  opts: BuildOptions = {},
): ClusterState {
  const previousMemo = opts.previous !== undefined ? BUILD_MEMOS.get(opts.previous) : undefined;
  const memo: BuildMemo = { documents: new Map() };
  const { catalog, errors, warnings } = validateDocuments(docs, {
    previous: previousMemo?.documents,
    current: memo.documents,
  });
  const validationFailed = errors.length > 0;
  const err = (entry: Entry<unknown>, path: PathSegment[], detail: string): void => {
    errors.push(makeError(entry.origin, identOf(entry), path, detail));
  };
  const warn = (entry: Entry<unknown> | null, path: PathSegment[], detail: string): void => {
    warnings.push(makeWarning(entry?.origin ?? null, entry ? identOf(entry) : {}, path, detail));
  };

  // Sort every kind and refuse duplicates.
  for (const list of Object.values(catalog) as Entry<unknown>[][]) {
    list.sort(byNamespaceName);
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1]!;
      const cur = list[i]!;
      if (cur.kind === 'ClusterConfiguration') {
        const first = list[0]!;
        err(
          cur,
          [],
          `only one ClusterConfiguration is allowed (another is in ${first.origin.file} document ${first.origin.documentIndex})`,
        );
      } else if (prev.namespace === cur.namespace && prev.name === cur.name) {
        err(
          cur,
          ['metadata', 'name'],
          `duplicate ${cur.kind} ${cur.namespace !== undefined ? `${cur.namespace}/` : ''}${cur.name} (also in ${prev.origin.file} document ${prev.origin.documentIndex})`,
        );
      }
    }
  }
  const unique = <T>(list: Entry<T>[]): Entry<T>[] =>
    list.filter(
      (e, i) => i === 0 || e.name !== list[i - 1]!.name || e.namespace !== list[i - 1]!.namespace,
    );

  // Cluster configuration.
  const cc = catalog.clusterConfigurations[0];
  const net = cc?.value.networking;
  const podSubnet = firstIPv4Cidr(net?.podSubnet) ?? DEFAULT_POD_SUBNET;
  const serviceSubnet = firstIPv4Cidr(net?.serviceSubnet) ?? DEFAULT_SERVICE_SUBNET;
  const serviceCidr = parseCidr(serviceSubnet)!;
  const podCidr = parseCidr(podSubnet)!;
  if (cc && cidrsOverlap(podCidr, serviceCidr)) {
    err(
      cc,
      ['networking', 'serviceSubnet'],
      `${serviceSubnet} overlaps the pod subnet ${podSubnet}`,
    );
  }
  const config: ClusterConfig = {
    podSubnet,
    serviceSubnet,
    dnsDomain: net?.dnsDomain ?? DEFAULT_DNS_DOMAIN,
    clusterName: cc?.value.clusterName ?? 'kubernetes',
    kubernetesServiceIP: formatIPv4(serviceCidr.base + 1),
    clusterDNSIP: formatIPv4(serviceCidr.base + 10),
    source: cc ? 'ClusterConfiguration' : 'default',
  };

  // IP pools.
  const pools: PoolState[] = [];
  const ipamPools: IpamPool[] = [];
  const poolEntries = unique(catalog.ipPools);
  for (const entry of poolEntries) {
    const spec = entry.value.spec;
    const cidr = parseCidr(spec.cidr);
    if (!cidr) {
      warn(entry, ['spec', 'cidr'], `IPv6 pool ${spec.cidr} skipped (kubewire emulates IPv4)`);
      continue;
    }
    const clash = ipamPools.find((p) => cidrsOverlap(p.cidr, cidr));
    if (clash) {
      err(
        entry,
        ['spec', 'cidr'],
        `${spec.cidr} overlaps IP pool ${clash.name} (${formatCidr(clash.cidr)})`,
      );
      continue;
    }
    if (cidrsOverlap(cidr, serviceCidr)) {
      err(entry, ['spec', 'cidr'], `${spec.cidr} overlaps the service subnet ${serviceSubnet}`);
      continue;
    }
    const selectorText = spec.nodeSelector?.trim() || 'all()';
    const pool: PoolState = {
      name: entry.name,
      cidr: formatCidr(cidr),
      blockSize: spec.blockSize ?? DEFAULT_BLOCK_SIZE,
      ipipMode: spec.ipipMode ?? 'Never',
      natOutgoing: spec.natOutgoing ?? false,
      nodeSelector: selectorText,
      disabled: spec.disabled ?? false,
      source: 'manifest',
    };
    pools.push(pool);
    ipamPools.push({
      name: pool.name,
      cidr,
      blockSize: pool.blockSize,
      ipipMode: pool.ipipMode,
      disabled: pool.disabled,
      selector: parseCalicoSelector(selectorText),
    });
  }
  if (poolEntries.length === 0) {
    // What calico-node does at startup with no pool: CALICO_IPV4POOL_CIDR (the pod
    // subnet), IPIP Always, natOutgoing true, /26 blocks (node/pkg/lifecycle/startup).
    const pool: PoolState = {
      name: DEFAULT_POOL_NAME,
      cidr: podSubnet,
      blockSize: DEFAULT_BLOCK_SIZE,
      ipipMode: 'Always',
      natOutgoing: true,
      nodeSelector: 'all()',
      disabled: false,
      source: 'default',
    };
    pools.push(pool);
    ipamPools.push({
      name: pool.name,
      cidr: podCidr,
      blockSize: pool.blockSize,
      ipipMode: 'Always',
      disabled: false,
      selector: { op: 'all' },
    });
  }

  // IPAM blocks (recorded allocations). Checked against the pools only when every object
  // is valid, as IPAM itself: a broken pool would make every block look misplaced.
  const recordedBlocks: IpamRecordedBlock[] = [];
  const blockEntryByName = new Map<string, Entry<unknown>>();
  for (const entry of validationFailed ? [] : unique(catalog.ipamBlocks)) {
    const spec = entry.value.spec;
    const cidr = parseCidr(spec.cidr);
    if (!cidr) {
      warn(entry, ['spec', 'cidr'], `IPv6 block ${spec.cidr} skipped (kubewire emulates IPv4)`);
      continue;
    }
    if (spec.deleted) continue; // being deleted by Calico: holds nothing
    const pool = ipamPools.find((p) => cidrContainsCidr(p.cidr, cidr));
    if (!pool) {
      const list = ipamPools.map((p) => `${p.name} ${formatCidr(p.cidr)}`).join(', ');
      err(entry, ['spec', 'cidr'], `${spec.cidr} is not inside any IP pool (${list || 'none'})`);
      continue;
    }
    if (cidr.prefix !== pool.blockSize) {
      err(
        entry,
        ['spec', 'cidr'],
        `a /${cidr.prefix} block, but IP pool ${pool.name} has blockSize ${pool.blockSize}`,
      );
      continue;
    }
    const clash = recordedBlocks.find((b) => cidrsOverlap(b.cidr, cidr));
    if (clash) {
      err(
        entry,
        ['spec', 'cidr'],
        `block ${spec.cidr} is also recorded by IPAMBlock ${clash.name}`,
      );
      continue;
    }
    recordedBlocks.push(recordedBlockOf(entry.name, cidr, spec));
    blockEntryByName.set(entry.name, entry);
  }

  // Nodes.
  const nodeEntries = unique(catalog.nodes);
  const nodeByIP = new Map<string, string>();
  const nodes: NodeState[] = nodeEntries.map((entry) => {
    const node = entry.value;
    const internal = node.status.addresses.find(
      (a) => a.type === 'InternalIP' && isIPv4(a.address),
    )!;
    const other = nodeByIP.get(internal.address);
    if (other !== undefined) {
      const index = node.status.addresses.indexOf(internal);
      err(
        entry,
        ['status', 'addresses', index, 'address'],
        `InternalIP ${internal.address} is also node ${other}'s`,
      );
    }
    nodeByIP.set(internal.address, entry.name);
    const taints: Taint[] = (node.spec?.taints ?? []).map((t) => ({
      key: t.key,
      ...(t.value !== undefined && t.value !== '' ? { value: t.value } : {}),
      effect: t.effect,
    }));
    const unschedulable = node.spec?.unschedulable ?? false;
    if (unschedulable && !taints.some((t) => t.key === UNSCHEDULABLE_TAINT.key)) {
      taints.push({ ...UNSCHEDULABLE_TAINT });
    }
    const podCIDR = [node.spec?.podCIDR, ...(node.spec?.podCIDRs ?? [])].find(
      (c) => c !== undefined && parseCidr(c) !== null,
    );
    return {
      name: entry.name,
      labels: withKubeletLabels(entry.name, node.metadata.labels ?? {}),
      annotations: sortedRecord(node.metadata.annotations),
      internalIP: internal.address,
      addresses: node.status.addresses.map((a) => ({ type: a.type, address: a.address })),
      taints,
      unschedulable,
      podCIDR: podCIDR ?? null,
      blocks: [],
      tunnelAddress: null,
      ipipMode: 'Never',
    };
  });
  const nodeEntryByName = new Map(nodeEntries.map((e) => [e.name, e]));

  // Namespaces.
  const declared = new Set(unique(catalog.namespaces).map((e) => e.name));
  const namespaces = new Set([...BUILTIN_NAMESPACES, ...declared]);
  const namespaced: Entry<unknown>[] = [
    ...catalog.pods,
    ...catalog.deployments,
    ...catalog.daemonSets,
    ...catalog.services,
    ...catalog.configMaps,
    ...catalog.secrets,
    ...catalog.ingresses,
    ...catalog.networkPolicies,
    ...catalog.ipAddressPools,
    ...catalog.l2Advertisements,
  ];
  for (const entry of namespaced) {
    const ns = entry.namespace!;
    if (!namespaces.has(ns)) {
      namespaces.add(ns);
      warnings.push(
        makeWarning(
          null,
          {},
          [],
          `namespace ${ns} is used but not declared (no Namespace object); assumed to exist`,
        ),
      );
    }
  }

  // Pod intents: bare Pods first (their names are taken as given), then Deployment
  // replicas, then DaemonSet pods; generated names skip names already taken.
  const intents: PodIntent[] = [];
  const taken = new Set<string>();
  for (const entry of unique(catalog.pods)) {
    const pod = entry.value;
    const key = `${entry.namespace}/${entry.name}`;
    taken.add(key);
    intents.push({
      namespace: entry.namespace!,
      name: entry.name,
      key,
      source: entry.raw,
      labels: sortedRecord(pod.metadata.labels),
      annotations: sortedRecord(pod.metadata.annotations),
      spec: pod.spec,
      ...(pod.spec.nodeName !== undefined ? { nodeName: pod.spec.nodeName } : {}),
      tolerations: tolerationsOf(pod.spec),
      origin: entry.origin,
      ident: identOf(entry),
      annotationsPath: ['metadata', 'annotations'],
    });
  }
  /** The first name `make` gives that is free in the namespace, and its key. */
  const freeName = (
    ns: string,
    make: (attempt: number) => string,
  ): { name: string; key: string } => {
    for (let attempt = 0; ; attempt++) {
      const name = make(attempt);
      const key = `${ns}/${name}`;
      if (!taken.has(key)) {
        taken.add(key);
        return { name, key };
      }
    }
  };
  for (const entry of unique(catalog.deployments)) {
    const d = entry.value;
    const ns = entry.namespace!;
    const rawTemplate = ((entry.raw.spec as Record<string, unknown>).template ?? {}) as unknown;
    const hash = templateHashOf(rawTemplate);
    const rs = replicaSetName(entry.name, hash);
    const labels = sortedRecord({ ...d.spec.template.metadata?.labels, 'pod-template-hash': hash });
    const annotations = sortedRecord(d.spec.template.metadata?.annotations);
    const replicas = d.spec.replicas ?? 1;
    // The names of the replicas (first attempts), kept with the document's validated form.
    let names = REPLICA_NAMES.get(entry.raw);
    if (names === undefined) REPLICA_NAMES.set(entry.raw, (names = []));
    // What the replicas share (the pods copy what they keep).
    const owner = { kind: 'Deployment' as const, name: entry.name };
    const tolerations = tolerationsOf(d.spec.template.spec);
    const ident = identOf(entry);
    const annotationsPath = ['spec', 'template', 'metadata', 'annotations'];
    for (let i = 0; i < replicas; i++) {
      const { name, key } = freeName(ns, (attempt) => {
        if (attempt !== 0) return replicaPodName(rs, i, attempt);
        return (names[i] ??= replicaPodName(rs, i, 0));
      });
      intents.push({
        namespace: ns,
        name,
        key,
        source: entry.raw,
        labels,
        annotations,
        spec: d.spec.template.spec,
        owner,
        ownerIndex: i,
        ...(d.spec.template.spec.nodeName !== undefined
          ? { nodeName: d.spec.template.spec.nodeName }
          : {}),
        tolerations,
        origin: entry.origin,
        ident,
        annotationsPath,
      });
    }
  }
  for (const entry of unique(catalog.daemonSets)) {
    const d = entry.value;
    const ns = entry.namespace!;
    const spec = d.spec.template.spec;
    const rawTemplate = ((entry.raw.spec as Record<string, unknown>).template ?? {}) as unknown;
    const hash = templateHashOf(rawTemplate);
    const labels = sortedRecord({
      ...d.spec.template.metadata?.labels,
      'controller-revision-hash': hash,
      'pod-template-generation': '1',
    });
    const tolerations = tolerationsOf(spec);
    for (const t of daemonSetTolerations(spec.hostNetwork ?? false)) {
      if (!tolerations.some((have) => sameToleration(have, t))) tolerations.push(t);
    }
    const constraints = constraintsOf(spec, tolerations);
    for (const node of nodes) {
      if (unfitReason(constraints, node) !== null) continue;
      const { name, key } = freeName(ns, (attempt) =>
        daemonPodName(ns, entry.name, node.name, attempt),
      );
      intents.push({
        namespace: ns,
        name,
        key,
        source: entry.raw,
        labels,
        annotations: sortedRecord(d.spec.template.metadata?.annotations),
        spec,
        owner: { kind: 'DaemonSet', name: entry.name },
        nodeName: node.name,
        tolerations,
        origin: entry.origin,
        ident: identOf(entry),
        annotationsPath: ['spec', 'template', 'metadata', 'annotations'],
      });
    }
  }

  // Scheduling. The replicas of a Deployment share their spec (hence their constraints
  // and feasible nodes) and their spread group: both are worked out once per spec.
  const feasible = new Map<PodSpecInput, { ok: NodeState[]; reason: string; spread: number }>();
  for (const intent of intents) {
    if (intent.nodeName !== undefined) {
      const why =
        intent.owner?.kind === 'DaemonSet'
          ? null
          : checkNamedNode(constraintsOf(intent.spec, intent.tolerations), intent.nodeName, nodes);
      intent.place = why === null ? { node: intent.nodeName } : { node: null, reason: why };
      continue;
    }
    let f = feasible.get(intent.spec);
    if (f === undefined) {
      const { nodes: ok, reason } = feasibleNodes(
        constraintsOf(intent.spec, intent.tolerations),
        nodes,
      );
      // spreadIndex(key, i, n) is (spread + i) % n.
      const spread = spreadIndex(
        `${intent.namespace}/${intent.owner?.name ?? intent.name}`,
        0,
        2 ** 32,
      );
      f = { ok, reason, spread };
      feasible.set(intent.spec, f);
    }
    if (f.ok.length === 0) {
      intent.place = { node: null, reason: f.reason };
      continue;
    }
    intent.place = { node: f.ok[(f.spread + (intent.ownerIndex ?? 0)) % f.ok.length]!.name };
  }

  // IPAM (only when every object is valid: a broken pool would make every pin look wrong).
  const ipamNodes: IpamNode[] = nodes.map((n) => ({
    name: n.name,
    labels: n.labels,
    podCIDR: n.podCIDR !== null ? parseCidr(n.podCIDR) : null,
  }));
  const ipamPods: IpamPod[] = [];
  for (const intent of intents) {
    if (intent.spec.hostNetwork) continue;
    const key = intent.key;
    const pin = intent.annotations[IP_ADDRS_ANNOTATION];
    const parsed = pin !== undefined ? parseIpAddrsAnnotation(pin) : null;
    ipamPods.push({
      key,
      nodeName: intent.place!.node,
      pinnedIP: parsed !== null && 'ip' in parsed ? parseIPv4(parsed.ip) : null,
      order: [
        intent.owner?.kind === 'DaemonSet' ? 0 : 1,
        intent.ownerIndex ?? 0,
        intent.namespace,
        intent.owner?.name ?? intent.name,
        intent.name,
      ],
      ...(intent.owner?.kind === 'Deployment'
        ? { owner: `${intent.namespace}/${intent.owner.name}` }
        : {}),
    });
  }
  const ipam = validationFailed ? null : runIpam(ipamPools, ipamNodes, ipamPods, recordedBlocks);
  if (ipam) {
    const intentByKey = new Map<string, PodIntent>();
    if (ipam.problems.length > 0) for (const intent of intents) intentByKey.set(intent.key, intent);
    for (const problem of ipam.problems) {
      if (problem.type === 'node') {
        const entry = nodeEntryByName.get(problem.node)!;
        const field =
          entry.value.spec?.podCIDR !== undefined ? ['spec', 'podCIDR'] : ['spec', 'podCIDRs', 0];
        err(entry, field, problem.detail);
      } else {
        const intent = intentByKey.get(problem.pod)!;
        const who = intent.owner ? `pod ${problem.pod}: ` : '';
        errors.push(
          makeError(
            intent.origin,
            intent.ident,
            [...intent.annotationsPath, IP_ADDRS_ANNOTATION],
            who + problem.detail,
          ),
        );
      }
    }
    for (const w of ipam.nodeWarnings) {
      const entry = nodeEntryByName.get(w.node)!;
      warn(entry, [], w.detail);
    }
    for (const w of ipam.blockWarnings) {
      warn(blockEntryByName.get(w.block)!, ['spec', 'affinity'], w.detail);
    }
    for (const node of nodes) {
      const r = ipam.nodes.get(node.name)!;
      node.blocks = r.blocks.map((b: Cidr) => formatCidr(b));
      node.tunnelAddress = r.tunnelAddress !== null ? formatIPv4(r.tunnelAddress) : null;
      node.ipipMode = r.ipipMode;
    }
  }

  // Services: defaults, ClusterIPs and NodePorts. Skipped when the ClusterConfiguration
  // is invalid, since every address would be checked against the wrong subnet.
  const serviceEntries = unique(catalog.services);
  const services = buildServices(
    serviceEntries.map((e) => ({ namespace: e.namespace!, name: e.name, value: e.value })),
    serviceSubnet,
  );
  if (!errors.some((e) => e.kind === 'ClusterConfiguration')) {
    for (const problem of services.problems) {
      err(serviceEntries[problem.index]!, problem.path, problem.detail);
    }
  }
  // A Service made from the same validated document object as in an earlier build, with
  // the same addresses and ports allocated, is the same Service: its object is taken over
  // (consumers can tell unchanged Services by identity).
  if (serviceEntries.length > 0) {
    const sourceOf = new Map<string, object>();
    for (const e of serviceEntries) sourceOf.set(`${e.namespace!}/${e.name}`, e.raw);
    const list = services.services;
    for (let i = 0; i < list.length; i++) {
      const svc = list[i]!;
      const source = sourceOf.get(`${svc.namespace}/${svc.name}`);
      if (source === undefined) continue;
      const prev = SOURCE_SERVICES.get(source);
      if (prev !== undefined && sameAllocations(prev, svc)) list[i] = prev;
      else SOURCE_SERVICES.set(source, svc);
    }
  }

  // MetalLB: pools (an overlap is refused as MetalLB's webhook refuses it), then the
  // controller's assignments.
  const metallbPools: MetalLBPool[] = [];
  const poolEntry = new Map<string, Entry<unknown>>();
  for (const entry of unique(catalog.ipAddressPools)) {
    const pool = poolOf({
      kind: 'IPAddressPool',
      name: entry.name,
      labels: labelsOfRaw(entry.raw),
      spec: (entry.value as unknown as IPAddressPoolInput).spec as PoolInput['spec'],
    });
    metallbPools.push(pool);
    poolEntry.set(pool.name, entry);
  }
  const advertisements: L2AdvertisementState[] = unique(catalog.l2Advertisements).map((e) => {
    const spec = (e.value as unknown as L2AdvertisementInput).spec ?? {};
    return {
      name: e.name,
      pools: spec.ipAddressPools ?? [],
      poolSelectors: (spec.ipAddressPoolSelectors ?? []) as LabelSelector[],
      nodeSelectors: (spec.nodeSelectors ?? []) as LabelSelector[],
      serviceSelectors: (spec.serviceSelectors ?? []) as LabelSelector[],
    };
  });
  let recordedLbIPs = new Map<string, string[]>();
  for (const entry of unique(catalog.configMaps)) {
    if (entry.namespace !== METALLB_NAMESPACE) continue;
    const data = (entry.raw as { data?: Record<string, string> }).data;
    if (entry.name === ALLOCATIONS_CONFIG_MAP) {
      recordedLbIPs = recordedLoadBalancerIPs(data);
      continue;
    }
    if (entry.name !== LEGACY_CONFIG_MAP) continue;
    const legacy = legacyConfigOf(data);
    for (const p of legacy.problems) err(entry, p.path, p.detail);
    for (const w of legacy.warnings) warn(entry, w.path, w.detail);
    for (const pool of legacy.pools) {
      if (poolEntry.has(pool.name)) {
        err(entry, ['data', 'config'], `pool "${pool.name}" is also an IPAddressPool`);
        continue;
      }
      metallbPools.push(pool);
      poolEntry.set(pool.name, entry);
      if (pool.protocol === 'layer2') {
        advertisements.push({
          name: `${LEGACY_CONFIG_MAP}/${pool.name}`,
          pools: [pool.name],
          poolSelectors: [],
          nodeSelectors: [],
          serviceSelectors: [],
        });
      }
    }
  }
  metallbPools.sort((a, b) => compareStrings(a.name, b.name));
  const overlap = findPoolOverlap(metallbPools);
  if (overlap !== null) {
    err(
      poolEntry.get(overlap.pool.name)!,
      overlap.pool.source === 'ConfigMap' ? ['data', 'config'] : ['spec', 'addresses'],
      `CIDR ${JSON.stringify(formatRange(overlap.range))} in pool ${JSON.stringify(overlap.pool.name)} overlaps with pool ${JSON.stringify(overlap.other.name)}`,
    );
  }

  if (errors.length > 0) throw new ManifestErrors(errors);
  const loadBalancers = allocateLoadBalancers(services.services, metallbPools, recordedLbIPs);

  // Pods.
  const nodeByName = new Map(nodes.map((n) => [n.name, n]));
  // The previous state's pods: a pod made from the same validated document object (an
  // unchanged document, see BuildOptions.previous), with the same name, replica index,
  // node and address, is the same pod: its object is taken over. Otherwise the names
  // derived from namespace and name alone are.
  const pods: PodState[] = intents.map((intent) => {
    const place = intent.place!;
    const key = intent.key;
    let ip: string | null = null;
    let borrowed = false;
    let pendingReason = place.reason;
    if (place.node !== null) {
      if (intent.spec.hostNetwork) ip = nodeByName.get(place.node)!.internalIP;
      else {
        const r = ipam!.pods.get(key);
        if (r && 'ip' in r) {
          ip = formatIPv4(r.ip);
          borrowed = r.borrowed;
        } else pendingReason = r?.pending ?? 'IPAM: no address';
      }
    }
    const prev = opts.previous !== undefined ? previousPod(intent) : undefined;
    if (
      prev !== undefined &&
      prev.name === intent.name &&
      prev.namespace === intent.namespace &&
      prev.ownerIndex === intent.ownerIndex &&
      prev.nodeName === place.node &&
      prev.ip === ip &&
      (prev.borrowed ?? false) === borrowed &&
      prev.pendingReason === (ip === null ? pendingReason : undefined)
    ) {
      return prev;
    }
    const spec = intent.spec;
    const pod: PodState = {
      namespace: intent.namespace,
      name: intent.name,
      uid: derivedUid('Pod', intent.namespace, intent.name),
      nodeName: place.node,
      phase: ip !== null ? 'Running' : 'Pending',
      ...(ip === null && pendingReason !== undefined ? { pendingReason } : {}),
      ip,
      ...(borrowed ? { borrowed: true } : {}),
      labels: { ...intent.labels },
      annotations: { ...intent.annotations },
      ...(intent.owner ? { owner: { kind: intent.owner.kind, name: intent.owner.name } } : {}),
      ...(intent.ownerIndex !== undefined ? { ownerIndex: intent.ownerIndex } : {}),
      hostNetwork: spec.hostNetwork ?? false,
      ...(spec.hostname !== undefined ? { hostname: spec.hostname } : {}),
      ...(spec.subdomain !== undefined ? { subdomain: spec.subdomain } : {}),
      dnsPolicy: spec.dnsPolicy ?? 'ClusterFirst',
      ...(spec.dnsConfig !== undefined ? { dnsConfig: dnsConfigOf(spec.dnsConfig) } : {}),
      restartPolicy: spec.restartPolicy ?? 'Always',
      nodeSelector: sortedRecord(spec.nodeSelector),
      tolerations: intent.tolerations.map((t) => ({ ...t })),
      containers: containersOf(spec),
      vethName: vethNameForWorkload(intent.namespace, intent.name),
      netnsName: netnsNameForPod(intent.namespace, intent.name),
    };
    if (intent.owner?.kind !== 'DaemonSet') {
      let made = SOURCE_PODS.get(intent.source);
      if (made === undefined) SOURCE_PODS.set(intent.source, (made = []));
      made[intent.ownerIndex ?? 0] = pod;
    }
    return pod;
  });
  pods.sort((a, b) => compareStrings(a.namespace, b.namespace) || compareStrings(a.name, b.name));

  const rawList = (list: Entry<RawObject>[]): RawObject[] =>
    unique(list).map((e) => e.raw as RawObject);
  const state: ClusterState = {
    config,
    pools: pools.sort((a, b) => compareStrings(a.name, b.name)),
    nodes,
    namespaces: [...namespaces].sort(compareStrings),
    pods,
    services: services.services,
    configMaps: rawList(catalog.configMaps),
    secrets: rawList(catalog.secrets),
    ingresses: rawList(catalog.ingresses),
    ingressClasses: rawList(catalog.ingressClasses),
    networkPolicies: rawList(catalog.networkPolicies),
    metallb: {
      ipAddressPools: rawList(catalog.ipAddressPools),
      l2Advertisements: rawList(catalog.l2Advertisements),
      pools: metallbPools,
      advertisements,
      loadBalancers,
    },
    warnings: sortWarnings(warnings as Warning[]),
  };
  BUILD_MEMOS.set(state, memo);
  return state;
}

function dnsConfigOf(cfg: NonNullable<PodSpecInput['dnsConfig']>): DnsConfig {
  return {
    ...(cfg.nameservers !== undefined ? { nameservers: [...cfg.nameservers] } : {}),
    ...(cfg.searches !== undefined ? { searches: [...cfg.searches] } : {}),
    ...(cfg.options !== undefined
      ? {
          options: cfg.options.map((o) => ({
            name: o.name,
            ...(o.value !== undefined ? { value: o.value } : {}),
          })),
        }
      : {}),
  };
}

export { ManifestError, ManifestErrors };

function labelsOfRaw(raw: Record<string, unknown>): Labels {
  const labels = (raw.metadata as { labels?: unknown } | undefined)?.labels;
  return typeof labels === 'object' && labels !== null ? (labels as Labels) : {};
}

/** The ConfigMap kubewire keeps the assigned addresses in: `<namespace>.<name>: ip[,ip]`. */
function recordedLoadBalancerIPs(data: Record<string, string> | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [key, value] of Object.entries(data ?? {})) {
    const dot = key.indexOf('.');
    if (dot <= 0) continue;
    out.set(
      `${key.slice(0, dot)}/${key.slice(dot + 1)}`,
      value
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== ''),
    );
  }
  return out;
}
