/**
 * MetalLB, layer-2 mode, as pure functions of the cluster state: the address pools and
 * L2 advertisements (metallb.io/v1beta1 objects, or the legacy `config` ConfigMap in
 * metallb-system), the controller's address allocation for LoadBalancer Services, and
 * the speakers' election of the one node that announces each address.
 *
 * Sources (metallb/metallb @ 7938d3f8): internal/allocator/allocator.go (pools,
 * sharing, avoidBuggyIPs, pool priority), controller/service.go (requested addresses,
 * annotations, events), speaker/layer2_controller.go (ShouldAnnounce: candidates,
 * sha256(node#ip) ordering). Where MetalLB is not deterministic (Go map order over
 * pools, informer order over Services) kubewire fixes an order; see README.md.
 */
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { compareStrings } from './hash.js';
import { formatIPv4, parseIPv4 } from './ip.js';
import { matchesLabelSelector, type LabelSelector, type Labels } from './selectors.js';
import type { ServiceState } from './service-types.js';

export const METALLB_NAMESPACE = 'metallb-system';
/** The ConfigMap MetalLB read its configuration from before v0.13 (`config` key in data). */
export const LEGACY_CONFIG_MAP = 'config';
/** Where kubewire records the addresses it assigned (Service status, in the real cluster). */
export const ALLOCATIONS_CONFIG_MAP = 'kubewire-loadbalancer-ips';
export const EXCLUDE_FROM_LB_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers';

const ANNOTATION = {
  addressPool: ['metallb.io/address-pool', 'metallb.universe.tf/address-pool'],
  loadBalancerIPs: ['metallb.io/loadBalancerIPs', 'metallb.universe.tf/loadBalancerIPs'],
  allowSharedIP: ['metallb.io/allow-shared-ip', 'metallb.universe.tf/allow-shared-ip'],
} as const;

export interface AddressRange {
  first: number;
  last: number;
}

export interface MetalLBPool {
  name: string;
  /** Where it was declared: an IPAddressPool, or an address-pool of the legacy ConfigMap. */
  source: 'IPAddressPool' | 'ConfigMap';
  ranges: AddressRange[];
  autoAssign: boolean;
  avoidBuggyIPs: boolean;
  /** serviceAllocation.priority: lower is preferred; 0 = none (after every prioritised pool). */
  priority: number;
  /** serviceAllocation: null when the pool serves every Service. */
  serviceAllocation: { namespaces: string[]; serviceSelectors: LabelSelector[] } | null;
  labels: Labels;
  /** Legacy pools may say `protocol: bgp`; those are allocated but never announced here. */
  protocol: 'layer2' | 'bgp';
}

export interface L2AdvertisementState {
  name: string;
  /** Pool names; with poolSelectors both empty the advertisement covers every pool. */
  pools: string[];
  poolSelectors: LabelSelector[];
  nodeSelectors: LabelSelector[];
  serviceSelectors: LabelSelector[];
}

export interface ServiceEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  from: 'metallb-controller' | 'metallb-speaker';
}

/** What MetalLB's controller writes into a LoadBalancer Service's status. */
export interface LoadBalancerStatus {
  namespace: string;
  name: string;
  /** status.loadBalancer.ingress[].ip; empty while pending. */
  ips: string[];
  /** The pool the addresses came from (the ip-allocated-from-pool annotation). */
  pool: string | null;
  /** The controller's events for this Service (IPAllocated, AllocationFailed, …). */
  events: ServiceEvent[];
}

// ---------------------------------------------------------------------------------------
// Addresses

export type AddressParse =
  { ok: true; range: AddressRange } | { ok: false; ipv6: boolean; detail: string };

/**
 * One entry of IPAddressPool.spec.addresses: a CIDR ("10.1.110.0/24", host bits
 * allowed as Go's net.ParseCIDR allows them) or a range ("10.1.110.105-10.1.110.110").
 */
export function parseAddressEntry(text: string): AddressParse {
  if (text.includes(':')) return { ok: false, ipv6: true, detail: `IPv6 ${text}` };
  const dash = text.indexOf('-');
  if (dash >= 0) {
    const a = text.slice(0, dash).trim();
    const b = text.slice(dash + 1).trim();
    const first = parseIPv4(a);
    const last = parseIPv4(b);
    if (first === null || last === null) {
      return { ok: false, ipv6: false, detail: `invalid IP range ${JSON.stringify(text)}` };
    }
    if (first > last) {
      return {
        ok: false,
        ipv6: false,
        detail: `invalid IP range ${JSON.stringify(text)}: start IP ${JSON.stringify(a)} is after the end IP ${JSON.stringify(b)}`,
      };
    }
    return { ok: true, range: { first, last } };
  }
  const slash = text.indexOf('/');
  if (slash < 0) {
    return {
      ok: false,
      ipv6: false,
      detail: `invalid CIDR ${JSON.stringify(text)}: expected a CIDR (10.1.110.0/24) or a range (10.1.110.105-10.1.110.110)`,
    };
  }
  const base = parseIPv4(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  const prefix = /^[0-9]{1,2}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (base === null || !(prefix >= 0 && prefix <= 32)) {
    return { ok: false, ipv6: false, detail: `invalid CIDR ${JSON.stringify(text)}` };
  }
  const size = 2 ** (32 - prefix);
  const first = base - (base % size);
  return { ok: true, range: { first, last: first + size - 1 } };
}

/** ipConfusesBuggyFirmwares: IPv4 addresses ending in .0 or .255. */
export function isBuggyIP(ip: number): boolean {
  const last = ip & 255;
  return last === 0 || last === 255;
}

// ---------------------------------------------------------------------------------------
// Configuration

export interface PoolInput {
  kind: 'IPAddressPool';
  name: string;
  labels: Labels;
  spec: {
    addresses: string[];
    autoAssign?: boolean | undefined;
    avoidBuggyIPs?: boolean | undefined;
    serviceAllocation?:
      | {
          priority?: number | undefined;
          namespaces?: string[] | undefined;
          serviceSelectors?: LabelSelector[] | undefined;
        }
      | undefined;
  };
}

/** The pool an IPAddressPool declares (addresses already validated; IPv6 entries skipped). */
export function poolOf(input: PoolInput): MetalLBPool {
  const ranges: AddressRange[] = [];
  for (const a of input.spec.addresses) {
    const r = parseAddressEntry(a);
    if (r.ok) ranges.push(r.range);
  }
  const sa = input.spec.serviceAllocation;
  return {
    name: input.name,
    source: 'IPAddressPool',
    ranges,
    autoAssign: input.spec.autoAssign ?? true,
    avoidBuggyIPs: input.spec.avoidBuggyIPs ?? false,
    priority: sa?.priority ?? 0,
    serviceAllocation:
      sa && ((sa.namespaces?.length ?? 0) > 0 || (sa.serviceSelectors?.length ?? 0) > 0)
        ? { namespaces: sa.namespaces ?? [], serviceSelectors: sa.serviceSelectors ?? [] }
        : null,
    labels: input.labels,
    protocol: 'layer2',
  };
}

export interface LegacyConfig {
  pools: MetalLBPool[];
  problems: { path: (string | number)[]; detail: string }[];
  warnings: { path: (string | number)[]; detail: string }[];
}

/**
 * The legacy ConfigMap `config` in metallb-system (MetalLB before v0.13): data.config is
 * YAML with `address-pools: [{name, protocol, addresses, auto-assign, avoid-buggy-ips}]`.
 * Each layer2 pool is a pool plus an advertisement for every node, as MetalLB's
 * configmaptocrs converter turns it into an IPAddressPool and an L2Advertisement.
 */
export function legacyConfigOf(data: Record<string, string> | undefined): LegacyConfig {
  const out: LegacyConfig = { pools: [], problems: [], warnings: [] };
  const text = data?.config;
  if (text === undefined) {
    out.problems.push({ path: ['data', 'config'], detail: 'required: the MetalLB configuration' });
    return out;
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    out.problems.push({ path: ['data', 'config'], detail: `not YAML: ${(err as Error).message}` });
    return out;
  }
  if (doc === null || doc === undefined) return out;
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    out.problems.push({ path: ['data', 'config'], detail: 'expected a mapping' });
    return out;
  }
  const pools = (doc as Record<string, unknown>)['address-pools'];
  if (pools === undefined) return out;
  if (!Array.isArray(pools)) {
    out.problems.push({ path: ['data', 'config', 'address-pools'], detail: 'expected a list' });
    return out;
  }
  const names = new Set<string>();
  pools.forEach((p: unknown, i) => {
    const at = (...rest: (string | number)[]) => ['data', 'config', 'address-pools', i, ...rest];
    if (typeof p !== 'object' || p === null || Array.isArray(p)) {
      out.problems.push({ path: at(), detail: 'expected a mapping' });
      return;
    }
    const o = p as Record<string, unknown>;
    const name = o.name;
    if (typeof name !== 'string' || name === '') {
      out.problems.push({ path: at('name'), detail: 'required: the pool name' });
      return;
    }
    if (names.has(name)) {
      out.problems.push({ path: at('name'), detail: `duplicate definition of pool "${name}"` });
      return;
    }
    names.add(name);
    const protocol = o.protocol;
    if (protocol !== 'layer2' && protocol !== 'bgp') {
      out.problems.push({
        path: at('protocol'),
        detail: `unknown protocol ${JSON.stringify(protocol)}: expected layer2 or bgp`,
      });
      return;
    }
    if (protocol === 'bgp') {
      out.warnings.push({
        path: at('protocol'),
        detail: `pool "${name}": BGP is not emulated; its addresses are assigned but never announced`,
      });
    }
    const addresses = o.addresses;
    if (!Array.isArray(addresses) || addresses.length === 0) {
      out.problems.push({ path: at('addresses'), detail: 'required: at least one CIDR or range' });
      return;
    }
    const ranges: AddressRange[] = [];
    addresses.forEach((a: unknown, j) => {
      const r = typeof a === 'string' ? parseAddressEntry(a) : null;
      if (r === null) {
        out.problems.push({ path: at('addresses', j), detail: 'expected a string' });
      } else if (r.ok) ranges.push(r.range);
      else if (r.ipv6) {
        out.warnings.push({
          path: at('addresses', j),
          detail: `${r.detail} ignored (kubewire emulates IPv4)`,
        });
      } else out.problems.push({ path: at('addresses', j), detail: r.detail });
    });
    for (const [key, field] of [
      ['auto-assign', 'autoAssign'],
      ['avoid-buggy-ips', 'avoidBuggyIPs'],
    ] as const) {
      if (o[key] !== undefined && typeof o[key] !== 'boolean') {
        out.problems.push({ path: at(key), detail: `expected true or false (${field})` });
      }
    }
    out.pools.push({
      name,
      source: 'ConfigMap',
      ranges,
      autoAssign: o['auto-assign'] !== false,
      avoidBuggyIPs: o['avoid-buggy-ips'] === true,
      priority: 0,
      serviceAllocation: null,
      labels: {},
      protocol,
    });
  });
  return out;
}

/** The first pair of overlapping pools, in name order, or null. */
export function findPoolOverlap(
  pools: readonly MetalLBPool[],
): { pool: MetalLBPool; other: MetalLBPool; range: AddressRange } | null {
  const sorted = [...pools].sort((a, b) => compareStrings(a.name, b.name));
  for (let i = 0; i < sorted.length; i++) {
    for (let j = 0; j < i; j++) {
      for (const r of sorted[i]!.ranges) {
        for (const s of sorted[j]!.ranges) {
          if (r.first <= s.last && s.first <= r.last) {
            return { pool: sorted[i]!, other: sorted[j]!, range: r };
          }
        }
      }
    }
  }
  return null;
}

export function formatRange(r: AddressRange): string {
  return r.first === r.last ? formatIPv4(r.first) : `${formatIPv4(r.first)}-${formatIPv4(r.last)}`;
}

// ---------------------------------------------------------------------------------------
// Allocation (the controller)

function annotation(svc: ServiceState, names: readonly string[]): string | undefined {
  for (const n of names) if (svc.annotations[n] !== undefined) return svc.annotations[n];
  return undefined;
}

/** The Services MetalLB's controller handles: LoadBalancer, no (other) loadBalancerClass. */
export function isMetalLBService(svc: ServiceState): boolean {
  return svc.type === 'LoadBalancer' && svc.loadBalancerClass === undefined;
}

/** k8salloc.BackendKey: with externalTrafficPolicy Local, the selector; else "". */
function backendKey(svc: ServiceState): string {
  if (svc.externalTrafficPolicy !== 'Local') return '';
  return Object.keys(svc.selector ?? {})
    .sort(compareStrings)
    .map((k) => `${k}=${svc.selector![k]}`)
    .join(',');
}

/** Go's %q of a []net.IP: ["10.1.110.105"]. */
function quoteIPs(ips: readonly number[]): string {
  return `[${ips.map((ip) => JSON.stringify(formatIPv4(ip))).join(' ')}]`;
}

interface IPUse {
  sharing: string;
  backend: string;
  services: Set<string>;
  /** "TCP/80" → service key. */
  ports: Map<string, string>;
}

/** allocator.Allocator: addresses in use, with their sharing keys and ports. */
class Allocator {
  private readonly inUse = new Map<number, IPUse>();
  readonly byService = new Map<string, { ips: number[]; pool: MetalLBPool }>();

  constructor(private readonly pools: readonly MetalLBPool[]) {}

  /** poolFor: the pool (in name order) holding every address, avoidBuggyIPs respected. */
  poolFor(ips: readonly number[]): MetalLBPool | null {
    for (const p of this.pools) {
      const all = ips.every(
        (ip) =>
          !(p.avoidBuggyIPs && isBuggyIP(ip)) &&
          p.ranges.some((r) => r.first <= ip && ip <= r.last),
      );
      if (all) return p;
    }
    return null;
  }

  compatible(pool: MetalLBPool, svc: ServiceState): boolean {
    const sa = pool.serviceAllocation;
    if (sa === null) return true;
    if (sa.namespaces.length > 0 && !sa.namespaces.includes(svc.namespace)) return false;
    if (sa.serviceSelectors.length > 0) {
      return sa.serviceSelectors.some((s) => matchesLabelSelector(s, svc.labels));
    }
    return true;
  }

  private checkSharing(key: string, ip: number, svc: ServiceState): string | null {
    const use = this.inUse.get(ip);
    if (use === undefined) return null;
    const sharing = annotation(svc, ANNOTATION.allowSharedIP) ?? '';
    const backend = backendKey(svc);
    const problem =
      use.sharing === ''
        ? 'existing service does not allow sharing'
        : sharing === ''
          ? 'new service does not allow sharing'
          : sharing !== use.sharing
            ? `sharing key ${JSON.stringify(sharing)} does not match existing sharing key ${JSON.stringify(use.sharing)}`
            : backend !== use.backend
              ? `backend key ${JSON.stringify(backend)} does not match existing sharing key ${JSON.stringify(use.backend)}`
              : null;
    if (problem !== null) {
      const others = [...use.services].filter((s) => s !== key);
      if (others.length > 0) {
        return `can't change sharing key for ${JSON.stringify(key)}, address also in use by ${others.join(',')}`;
      }
    }
    for (const p of svc.ports) {
      const port = `${p.protocol}/${p.port}`;
      const owner = use.ports.get(port);
      if (owner !== undefined && owner !== key) {
        return `port ${port} is already in use on ${JSON.stringify(formatIPv4(ip))}`;
      }
    }
    return null;
  }

  /** Assign: the given addresses, if configuration and sharing allow. Returns the error. */
  assign(key: string, svc: ServiceState, ips: number[]): string | null {
    const pool = this.poolFor(ips);
    if (pool === null) return `${quoteIPs(ips)} is not allowed in config`;
    if (!this.compatible(pool, svc)) return `pool ${pool.name} not compatible for ip assignment`;
    if (ips.length > 1) return `more than one IPv4 address ${quoteIPs(ips)}`;
    for (const ip of ips) {
      const why = this.checkSharing(key, ip, svc);
      if (why !== null) return why;
    }
    const sharing = annotation(svc, ANNOTATION.allowSharedIP) ?? '';
    for (const ip of ips) {
      let use = this.inUse.get(ip);
      if (use === undefined) {
        use = { sharing, backend: backendKey(svc), services: new Set(), ports: new Map() };
        this.inUse.set(ip, use);
      }
      use.services.add(key);
      for (const p of svc.ports) use.ports.set(`${p.protocol}/${p.port}`, key);
    }
    this.byService.set(key, { ips, pool });
    return null;
  }

  /** getFreeIPsFromPool + Assign: the first usable address of the pool, in range order. */
  allocateFromPool(key: string, svc: ServiceState, pool: MetalLBPool): number[] | null {
    for (const r of pool.ranges) {
      for (let ip = r.first; ip <= r.last; ip++) {
        if (pool.avoidBuggyIPs && isBuggyIP(ip)) continue;
        if (this.checkSharing(key, ip, svc) !== null) continue;
        if (this.assign(key, svc, [ip]) === null) return [ip];
      }
    }
    return null;
  }

  /** Allocate: pools pinned to the Service first (by priority), then every auto-assign pool. */
  allocate(key: string, svc: ServiceState): number[] | null {
    const pinned = this.pools
      .filter((p) => p.autoAssign && p.serviceAllocation !== null && this.compatible(p, svc))
      .sort(byPriority);
    const open = this.pools.filter((p) => p.autoAssign && p.serviceAllocation === null);
    for (const pool of [...pinned, ...open.sort(byPriority)]) {
      const ips = this.allocateFromPool(key, svc, pool);
      if (ips !== null) return ips;
    }
    return null;
  }
}

/** sortPools: prioritised pools (lower first) before pools without a priority; then by name. */
function byPriority(a: MetalLBPool, b: MetalLBPool): number {
  const pa = a.priority > 0 ? a.priority : Infinity;
  const pb = b.priority > 0 ? b.priority : Infinity;
  return pa - pb || compareStrings(a.name, b.name);
}

/** Requested addresses: the loadBalancerIPs annotation or spec.loadBalancerIP. */
function desiredIPs(svc: ServiceState): { ips: number[] } | { error: string } | null {
  const text = annotation(svc, ANNOTATION.loadBalancerIPs);
  if (text === undefined && svc.loadBalancerIP === undefined) return null;
  if (text !== undefined && svc.loadBalancerIP !== undefined) {
    return {
      error: `service can not have both ${ANNOTATION.loadBalancerIPs[0]} and svc.Spec.LoadBalancerIP`,
    };
  }
  if (text !== undefined) {
    const ips: number[] = [];
    for (const part of text.split(',')) {
      const ip = parseIPv4(part.trim());
      if (ip === null) {
        return { error: `invalid ${ANNOTATION.loadBalancerIPs[0]}: ${JSON.stringify(text)}` };
      }
      ips.push(ip);
    }
    return { ips };
  }
  const ip = parseIPv4(svc.loadBalancerIP!);
  if (ip === null)
    return { error: `invalid spec.loadBalancerIP ${JSON.stringify(svc.loadBalancerIP)}` };
  return { ips: [ip] };
}

/**
 * The controller's assignments for every LoadBalancer Service it handles. Deterministic:
 * Services that ask for addresses go first, then those with a recorded assignment (the
 * status the lab keeps, so a running Service keeps its address when others come and go),
 * then the rest, each group in namespace/name order.
 */
export function allocateLoadBalancers(
  services: readonly ServiceState[],
  pools: readonly MetalLBPool[],
  recorded: ReadonlyMap<string, readonly string[]> = new Map(),
): LoadBalancerStatus[] {
  const sortedPools = [...pools].sort((a, b) => compareStrings(a.name, b.name));
  const alloc = new Allocator(sortedPools);
  const candidates = services
    .filter(isMetalLBService)
    .sort((a, b) => compareStrings(a.namespace, b.namespace) || compareStrings(a.name, b.name));
  const results = new Map<string, LoadBalancerStatus>();
  const keyOf = (svc: ServiceState) => `${svc.namespace}/${svc.name}`;
  const fail = (svc: ServiceState, reason: string, message: string) => {
    results.set(keyOf(svc), {
      namespace: svc.namespace,
      name: svc.name,
      ips: [],
      pool: null,
      events: [{ type: 'Warning', reason, message, from: 'metallb-controller' }],
    });
  };
  const done = (svc: ServiceState, ips: number[]) => {
    const a = alloc.byService.get(keyOf(svc))!;
    results.set(keyOf(svc), {
      namespace: svc.namespace,
      name: svc.name,
      ips: ips.map(formatIPv4),
      pool: a.pool.name,
      events: [
        {
          type: 'Normal',
          reason: 'IPAllocated',
          message: `Assigned IP ${quoteIPs(ips)}`,
          from: 'metallb-controller',
        },
      ],
    });
  };
  const failAllocation = (svc: ServiceState, why: string) =>
    fail(
      svc,
      'AllocationFailed',
      `Failed to allocate IP for ${JSON.stringify(keyOf(svc))}: ${why}`,
    );

  // convergeBalancer with no pools: the Service stays pending, without an event.
  const deferred: ServiceState[] = [];
  for (const svc of candidates) {
    if (sortedPools.length === 0) {
      results.set(keyOf(svc), {
        namespace: svc.namespace,
        name: svc.name,
        ips: [],
        pool: null,
        events: [],
      });
      continue;
    }
    const desired = desiredIPs(svc);
    if (desired === null) {
      deferred.push(svc);
      continue;
    }
    if ('error' in desired) {
      fail(svc, 'LoadBalancerFailed', `invalid requested loadbalancer IPs: ${desired.error}`);
      continue;
    }
    const why = alloc.assign(keyOf(svc), svc, desired.ips);
    if (why !== null) {
      failAllocation(svc, why);
      continue;
    }
    const pool = annotation(svc, ANNOTATION.addressPool);
    if (pool !== undefined && pool !== '' && alloc.byService.get(keyOf(svc))!.pool.name !== pool) {
      alloc.byService.delete(keyOf(svc));
      failAllocation(
        svc,
        `requested loadBalancer IP(s) ${quoteIPs(desired.ips)} is not compatible with requested address pool ${pool}`,
      );
      continue;
    }
    done(svc, desired.ips);
  }
  // Recorded assignments that are still valid are kept; the others are dropped and the
  // Service gets a new address below, as the controller clears a status it cannot honour.
  const fresh: ServiceState[] = [];
  for (const svc of deferred) {
    const ips = (recorded.get(keyOf(svc)) ?? [])
      .map(parseIPv4)
      .filter((ip): ip is number => ip !== null);
    const pool = annotation(svc, ANNOTATION.addressPool);
    if (ips.length > 0 && alloc.assign(keyOf(svc), svc, ips) === null) {
      if (
        pool === undefined ||
        pool === '' ||
        alloc.byService.get(keyOf(svc))!.pool.name === pool
      ) {
        done(svc, ips);
        continue;
      }
      alloc.byService.delete(keyOf(svc));
    }
    fresh.push(svc);
  }
  for (const svc of fresh) {
    const poolName = annotation(svc, ANNOTATION.addressPool);
    if (poolName !== undefined && poolName !== '') {
      const pool = sortedPools.find((p) => p.name === poolName);
      if (pool === undefined) {
        failAllocation(svc, `unknown pool ${JSON.stringify(poolName)}`);
        continue;
      }
      const ips = alloc.allocateFromPool(keyOf(svc), svc, pool);
      if (ips === null) failAllocation(svc, `no available IPs in pool ${pool.name}`);
      else done(svc, ips);
      continue;
    }
    const ips = alloc.allocate(keyOf(svc), svc);
    if (ips === null) failAllocation(svc, 'no available IPs');
    else done(svc, ips);
  }
  return candidates.map((svc) => results.get(keyOf(svc))!);
}

// ---------------------------------------------------------------------------------------
// Announcement (the speakers)

export interface ElectionNode {
  name: string;
  labels: Labels;
  /** A live speaker: the node's agent is up (memberlist member). */
  live: boolean;
  /** The node hosts a ready (serving) endpoint of the Service. */
  hasReadyEndpoint: boolean;
}

export type ElectionResult =
  | { node: string; candidates: string[] }
  | { node: null; reason: 'noActiveEndpoints' | 'noAdvertisement' | 'noAvailableNodes' };

/** The advertisements that apply to a pool and a Service (l2AdsForService). */
export function advertisementsFor(
  ads: readonly L2AdvertisementState[],
  pool: MetalLBPool,
  svc: ServiceState,
): L2AdvertisementState[] {
  if (pool.protocol !== 'layer2') return [];
  return ads.filter((ad) => {
    const all = ad.pools.length === 0 && ad.poolSelectors.length === 0;
    const poolOk =
      all ||
      ad.pools.includes(pool.name) ||
      ad.poolSelectors.some((s) => matchesLabelSelector(s, pool.labels));
    if (!poolOk) return false;
    return (
      ad.serviceSelectors.length === 0 ||
      ad.serviceSelectors.some((s) => matchesLabelSelector(s, svc.labels))
    );
  });
}

/** sha256(node + "#" + ip), compared bytewise: the speakers' stateless ordering. */
export function electionKey(node: string, ip: string): Buffer {
  return createHash('sha256').update(`${node}#${ip}`).digest();
}

/**
 * ShouldAnnounce, evaluated for every node at once: the node that announces the
 * Service's first address, or why nobody does. Every agent computes the same answer
 * from the same manifests and the same view of which speakers are live.
 */
export function electAnnouncer(
  svc: ServiceState,
  ip: string,
  ads: readonly L2AdvertisementState[],
  nodes: readonly ElectionNode[],
): ElectionResult {
  if (!nodes.some((n) => n.hasReadyEndpoint)) return { node: null, reason: 'noActiveEndpoints' };
  if (ads.length === 0) return { node: null, reason: 'noAdvertisement' };
  let candidates = nodes.filter(
    (n) =>
      n.live &&
      !(EXCLUDE_FROM_LB_LABEL in n.labels) &&
      ads.some(
        (ad) =>
          ad.nodeSelectors.length === 0 ||
          ad.nodeSelectors.some((s) => matchesLabelSelector(s, n.labels)),
      ),
  );
  if (svc.externalTrafficPolicy === 'Local')
    candidates = candidates.filter((n) => n.hasReadyEndpoint);
  if (candidates.length === 0) return { node: null, reason: 'noAvailableNodes' };
  const keyed = candidates.map((n) => ({ name: n.name, key: electionKey(n.name, ip) }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return { node: keyed[0]!.name, candidates: keyed.map((k) => k.name) };
}

/**
 * The ConfigMap in which the lab records the controller's assignments (what the API
 * server keeps as each Service's status), so that a running Service keeps its address
 * when other Services come and go. Written next to the manifests by `kubewire up`,
 * `apply` and `delete`.
 */
export function renderAllocationsManifest(loadBalancers: readonly LoadBalancerStatus[]): string {
  const data: Record<string, string> = {};
  for (const lb of loadBalancers) {
    if (lb.ips.length > 0) data[`${lb.namespace}.${lb.name}`] = lb.ips.join(',');
  }
  const lines = [
    '# Written by kubewire: the LoadBalancer addresses MetalLB assigned (the Services',
    '# status.loadBalancer.ingress). Keeps them stable across changes; do not edit.',
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata:',
    `  name: ${ALLOCATIONS_CONFIG_MAP}`,
    `  namespace: ${METALLB_NAMESPACE}`,
  ];
  const keys = Object.keys(data).sort(compareStrings);
  if (keys.length === 0) lines.push('data: {}');
  else {
    lines.push('data:');
    for (const k of keys) lines.push(`  ${k}: ${JSON.stringify(data[k])}`);
  }
  return lines.join('\n') + '\n';
}
