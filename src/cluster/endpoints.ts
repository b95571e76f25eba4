/**
 * Service endpoints, derived as the EndpointSlice controller derives them
 * (pkg/controller/endpointslice, staging/src/k8s.io/endpointslice), plus the API server's
 * own endpoints for the `kubernetes` Service. Pure: the cluster state and the set of
 * nodes that are down go in, plain data comes out.
 */
import { compareStrings } from './hash.js';
import { parseIPv4 } from './ip.js';
import { matchesMapSelector, type Labels } from './selectors.js';
import {
  API_SERVER_PORT,
  CONTROL_PLANE_LABELS,
  KUBERNETES_SERVICE,
  serviceKey,
} from './services.js';
import type { ServiceEndpoint, ServicePortEndpoints, ServiceState } from './service-types.js';
import type { ClusterState, NodeState, PodState } from './state.js';

export interface EndpointOptions {
  /**
   * Nodes that are down (node agent unreachable). Their pods stay endpoints but are not
   * ready, as after the node lifecycle controller marks them NotReady.
   */
  downNodes?: ReadonlySet<string>;
}

export interface AllEndpointsOptions extends EndpointOptions {
  /**
   * A state whose endpoints were computed before (allServiceEndpoints with the same
   * downNodes), built before this one (buildClusterState's `previous`): only the Services
   * that changed, or select a pod that changed, are worked out again; the others keep
   * their arrays. The result is the same with or without it.
   */
  previous?: ClusterState;
}

/**
 * The last endpoints computed for each state (for a later state's `previous`), one entry
 * per state.services element.
 */
const COMPUTED = new WeakMap<
  ClusterState,
  { down: ReadonlySet<string>; lists: ServicePortEndpoints[][] }
>();

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function byKey(
  a: { namespace: string; name: string },
  b: { namespace: string; name: string },
): number {
  return compareStrings(a.namespace, b.namespace) || compareStrings(a.name, b.name);
}

/**
 * Walks two lists sorted by namespace and name; calls `changed` with every object that is
 * in only one of them, or whose object differs (both versions). Shared objects are skipped
 * by identity.
 */
function diffSorted<T extends { namespace: string; name: string }>(
  before: readonly T[],
  after: readonly T[],
  changed: (x: T) => void,
): void {
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    const a = before[i];
    const b = after[j];
    if (a === b) {
      i++;
      j++;
    } else if (a === undefined) {
      changed(b!);
      j++;
    } else if (b === undefined) {
      changed(a);
      i++;
    } else {
      const c = byKey(a, b);
      if (c <= 0) {
        changed(a);
        i++;
      }
      if (c >= 0) {
        changed(b);
        j++;
      }
    }
  }
}

/** The pods of one namespace: a range of state.pods (sorted by namespace, then name). */
function namespacePods(pods: readonly PodState[], namespace: string): NamespacePods {
  let lo = 0;
  let hi = pods.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareStrings(pods[mid]!.namespace, namespace) < 0) lo = mid + 1;
    else hi = mid;
  }
  const ns = new NamespacePods();
  for (let k = lo; k < pods.length && pods[k]!.namespace === namespace; k++) ns.pods.push(pods[k]!);
  return ns;
}

/**
 * The endpoints of state.services from those computed for an earlier state, or null when
 * they cannot be used (none computed for it, other down nodes, other nodes).
 */
function endpointsSince(
  state: ClusterState,
  previous: ClusterState,
  down: ReadonlySet<string>,
): ServicePortEndpoints[][] | null {
  const before = COMPUTED.get(previous);
  if (before === undefined || !sameSet(before.down, down)) return null;
  // The API server's endpoints (and a pod's readiness) depend on the nodes.
  if (JSON.stringify(previous.nodes) !== JSON.stringify(state.nodes)) return null;
  // Pods added, removed or changed, by namespace (old and new versions).
  const changedPods = new Map<string, PodState[]>();
  diffSorted(previous.pods, state.pods, (pod) => {
    const list = changedPods.get(pod.namespace);
    if (list === undefined) changedPods.set(pod.namespace, [pod]);
    else list.push(pod);
  });
  const pods = new Map<string, NamespacePods>();
  const out: ServicePortEndpoints[][] = [];
  // Both lists of Services are sorted by namespace and name: walked side by side.
  const was = previous.services;
  let i = 0;
  for (const svc of state.services) {
    while (i < was.length && byKey(was[i]!, svc) < 0) i++;
    const same = i < was.length && was[i] === svc;
    const touched = changedPods.get(svc.namespace);
    const affected =
      !same ||
      (touched !== undefined &&
        svc.selector !== null &&
        touched.some((pod) => matchesMapSelector(svc.selector!, pod.labels)));
    if (!affected) {
      out.push(before.lists[i]!);
      continue;
    }
    let ns = pods.get(svc.namespace);
    if (ns === undefined) pods.set(svc.namespace, (ns = namespacePods(state.pods, svc.namespace)));
    const inNs = ns;
    out.push(endpointsFrom(state, svc, (selector) => inNs.candidates(selector), down));
  }
  return out;
}

const NO_NODES: ReadonlySet<string> = new Set();

/** Sorted by IP (numerically), then port, then pod namespace and name. */
function sortEndpoints(list: ServiceEndpoint[]): ServiceEndpoint[] {
  const n = list.length;
  if (n < 2) return list;
  const ips = list.map((ep) => parseIPv4(ep.ip)!);
  const before = (i: number, j: number): boolean => {
    const a = list[i]!;
    const b = list[j]!;
    return (
      (ips[i]! - ips[j]! ||
        a.port - b.port ||
        compareStrings(a.podNamespace, b.podNamespace) ||
        compareStrings(a.podName, b.podName)) < 0
    );
  };
  if (n <= 16) {
    // A Service's few endpoints: an insertion sort in place (stable, as Array.sort).
    for (let i = 1; i < n; i++) {
      for (let j = i; j > 0 && before(j, j - 1); j--) {
        const e = list[j]!;
        list[j] = list[j - 1]!;
        list[j - 1] = e;
        const ip = ips[j]!;
        ips[j] = ips[j - 1]!;
        ips[j - 1] = ip;
      }
    }
    return list;
  }
  const order = list.map((_, i) => i);
  order.sort((i, j) => (before(i, j) ? -1 : before(j, i) ? 1 : 0));
  return order.map((i) => list[i]!);
}

/**
 * podutil.FindPort: a number is used as is; a name is looked up among the pod's container
 * ports with that name and the Service port's protocol. null when the pod has none.
 */
export function resolveTargetPort(
  pod: PodState,
  targetPort: number | string,
  protocol: string,
): number | null {
  if (typeof targetPort === 'number') return targetPort;
  for (const c of pod.containers) {
    for (const p of c.ports) {
      if (p.name === targetPort && p.protocol === protocol) return p.containerPort;
    }
  }
  return null;
}

/** The nodes the API server runs on: control-plane nodes, or the first node when none is. */
export function apiServerNodes(nodes: readonly NodeState[]): NodeState[] {
  const cp = nodes.filter((n) => CONTROL_PLANE_LABELS.some((l) => l in n.labels));
  return cp.length > 0 ? cp : nodes.slice(0, 1);
}

function apiServerEndpoints(
  state: ClusterState,
  svc: ServiceState,
  down: ReadonlySet<string>,
): ServicePortEndpoints[] {
  const nodes = apiServerNodes(state.nodes);
  return svc.ports.map((p) => ({
    portName: p.name,
    protocol: p.protocol,
    servicePort: p.port,
    endpoints: sortEndpoints(
      nodes.map((n) => ({
        ip: n.internalIP,
        port: typeof p.targetPort === 'number' ? p.targetPort : API_SERVER_PORT,
        nodeName: n.name,
        // kubeadm runs the API server as the static pod kube-apiserver-<node>.
        podNamespace: 'kube-system',
        podName: `kube-apiserver-${n.name}`,
        ready: !down.has(n.name),
      })),
    ),
  }));
}

function podEndpoints(
  svc: ServiceState,
  candidates: readonly PodState[],
  down: ReadonlySet<string>,
): ServicePortEndpoints[] {
  const selector = svc.selector!;
  const pods: PodState[] = [];
  for (const p of candidates) {
    if (
      p.namespace === svc.namespace &&
      p.ip !== null && // ShouldPodBeInEndpoints: no IP (Pending), no endpoint
      matchesMapSelector(selector, p.labels)
    ) {
      pods.push(p);
    }
  }
  const endpoint = (pod: PodState, port: number): ServiceEndpoint => {
    const ep: ServiceEndpoint = {
      ip: pod.ip!,
      port,
      nodeName: pod.nodeName,
      podNamespace: pod.namespace,
      podName: pod.name,
      ready:
        svc.publishNotReadyAddresses ||
        (pod.phase === 'Running' && (pod.nodeName === null || !down.has(pod.nodeName))),
    };
    if (pod.hostname !== undefined && pod.subdomain === svc.name) ep.hostname = pod.hostname;
    return ep;
  };
  if (svc.ports.length === 0) {
    // A headless Service without ports still publishes its addresses (for DNS).
    return [
      {
        portName: '',
        protocol: 'TCP',
        servicePort: 0,
        endpoints: sortEndpoints(pods.map((pod) => endpoint(pod, 0))),
      },
    ];
  }
  return svc.ports.map((p) => {
    const list: ServiceEndpoint[] = [];
    for (const pod of pods) {
      const port = resolveTargetPort(pod, p.targetPort, p.protocol);
      if (port !== null) list.push(endpoint(pod, port));
    }
    return {
      portName: p.name,
      protocol: p.protocol,
      servicePort: p.port,
      endpoints: sortEndpoints(list),
    };
  });
}

function endpointsFrom(
  state: ClusterState,
  svc: ServiceState,
  pods: (selector: Labels) => readonly PodState[],
  down: ReadonlySet<string>,
): ServicePortEndpoints[] {
  if (svc.type === 'ExternalName') return [];
  if (svc.selector === null) {
    const isKubernetes =
      svc.namespace === KUBERNETES_SERVICE.namespace && svc.name === KUBERNETES_SERVICE.name;
    return isKubernetes ? apiServerEndpoints(state, svc, down) : [];
  }
  return podEndpoints(svc, pods(svc.selector), down);
}

/**
 * The pods of one namespace, with an index by label built on first use: the pods a
 * selector can match are those carrying its rarest `key: value` (in their order).
 */
class NamespacePods {
  readonly pods: PodState[] = [];
  /** label key → value → pods carrying it (a key is indexed when a selector first uses it). */
  private readonly byLabel = new Map<string, Map<string, PodState[]>>();

  private index(key: string): Map<string, PodState[]> {
    let values = this.byLabel.get(key);
    if (values === undefined) {
      values = new Map();
      for (const pod of this.pods) {
        if (!Object.hasOwn(pod.labels, key)) continue;
        const v = pod.labels[key]!;
        const list = values.get(v);
        if (list) list.push(pod);
        else values.set(v, [pod]);
      }
      this.byLabel.set(key, values);
    }
    return values;
  }

  candidates(selector: Labels): readonly PodState[] {
    let best: readonly PodState[] = this.pods;
    for (const k in selector) {
      const list = this.index(k).get(selector[k]!);
      if (list === undefined) return [];
      if (list.length < best.length) best = list;
    }
    return best;
  }
}

/**
 * The endpoints of one Service, one entry per Service port (in spec order), as the
 * EndpointSlice controller publishes them and kube-proxy reads them:
 *
 * - ExternalName Services have none. So have Services without a selector, except
 *   `default/kubernetes`, whose endpoints are the API server: the InternalIP of every
 *   control-plane node (or of the first node when none is labelled) with the Service
 *   port's targetPort (6443).
 * - Pods of the Service's namespace matching the selector, with an IP (Pending pods
 *   have none). hostNetwork pods count, with the node's IP.
 * - A named targetPort is resolved per pod (container port of that name and protocol);
 *   a pod without it is left out of that port.
 * - `ready` is false for a pod that is not Running or whose node is in `downNodes`;
 *   such endpoints are kept (consumers skip them). With publishNotReadyAddresses every
 *   endpoint is ready.
 * - `hostname` is set when the pod's spec.subdomain is the Service's name.
 * - Headless Services have endpoints like the others; one without ports gets a single
 *   entry with servicePort 0 and endpoint port 0, so DNS still sees its addresses.
 *
 * Endpoints are sorted by IP, then port, then pod.
 */
export function endpointsForService(
  state: ClusterState,
  svc: ServiceState,
  opts: EndpointOptions = {},
): ServicePortEndpoints[] {
  return endpointsFrom(state, svc, () => state.pods, opts.downNodes ?? NO_NODES);
}

/**
 * endpointsForService for every Service, keyed by `<namespace>/<name>`, in the order of
 * state.services (sorted by namespace, then name).
 */
export function allServiceEndpoints(
  state: ClusterState,
  opts: AllEndpointsOptions = {},
): Map<string, ServicePortEndpoints[]> {
  const lists = allServiceEndpointLists(state, opts);
  const out = new Map<string, ServicePortEndpoints[]>();
  state.services.forEach((svc, i) => out.set(serviceKey(svc), lists[i]!));
  return out;
}

/**
 * allServiceEndpoints as a list: element i holds the endpoints of state.services[i]
 * (no "namespace/name" keys to build and look up). Computed once per state and down nodes.
 */
export function allServiceEndpointLists(
  state: ClusterState,
  opts: AllEndpointsOptions = {},
): ServicePortEndpoints[][] {
  const down = opts.downNodes ?? NO_NODES;
  const known = COMPUTED.get(state);
  if (known !== undefined && sameSet(known.down, down)) return known.lists;
  const since = opts.previous !== undefined ? endpointsSince(state, opts.previous, down) : null;
  const lists = since ?? allEndpointsOf(state, down);
  COMPUTED.set(state, { down: new Set(down), lists });
  return lists;
}

function allEndpointsOf(state: ClusterState, down: ReadonlySet<string>): ServicePortEndpoints[][] {
  const byNamespace = new Map<string, NamespacePods>();
  for (const pod of state.pods) {
    let ns = byNamespace.get(pod.namespace);
    if (ns === undefined) byNamespace.set(pod.namespace, (ns = new NamespacePods()));
    ns.pods.push(pod);
  }
  const none = new NamespacePods();
  return state.services.map((svc) => {
    const ns = byNamespace.get(svc.namespace) ?? none;
    return endpointsFrom(state, svc, (selector) => ns.candidates(selector), down);
  });
}
