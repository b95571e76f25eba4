/**
 * Services and their ready endpoints, as the ingress controller sees them: it proxies to
 * the pods' addresses directly (ingress-nginx's Lua balancer), not to the ClusterIP.
 *
 * The Services come from ClusterState (`services: ServiceState[]`, contract in
 * src/cluster/service-types.ts) and their endpoints from `endpointsForService` of
 * src/cluster. Services without a selector take hand-written Endpoints / EndpointSlices.
 * Until src/cluster exports them, this module derives both itself from the raw Service
 * objects and the pods (the two places marked "fallback" below).
 */
import * as cluster from '../cluster/index.js';
import type { ClusterState, PodState } from '../cluster/index.js';
import type {
  ServiceEndpoint,
  ServicePortEndpoints,
  ServicePortState,
  ServiceState,
} from '../cluster/service-types.js';
import type { ManualEndpoints, ServiceBackendRef } from './model.js';

export interface Endpoint {
  ip: string;
  port: number;
}

export interface ResolvedBackend {
  /** ingress-nginx's upstream name: `<namespace>-<service>-<port>`. */
  upstream: string;
  namespace: string;
  service: string;
  port: number | string;
  /** Ready endpoints, sorted (ip, port). */
  endpoints: Endpoint[];
  /** Why there are none, when there are none. */
  problem: string | null;
}

type EndpointsFn = (
  state: ClusterState,
  svc: ServiceState,
  opts?: { downNodes?: ReadonlySet<string> | readonly string[] },
) => ServicePortEndpoints[];

/** src/cluster's endpointsForService, once it exists. */
const clusterEndpointsForService = (cluster as unknown as { endpointsForService?: EndpointsFn })
  .endpointsForService;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Fallback: a raw v1 Service object → the ServiceState fields the ingress needs. */
function serviceFromRaw(raw: Record<string, unknown>): ServiceState {
  const meta = (isRecord(raw.metadata) ? raw.metadata : {}) as Record<string, unknown>;
  const spec = (isRecord(raw.spec) ? raw.spec : {}) as Record<string, unknown>;
  const ports: ServicePortState[] = (Array.isArray(spec.ports) ? spec.ports : [])
    .filter(isRecord)
    .map((p) => ({
      name: typeof p.name === 'string' ? p.name : '',
      protocol: (p.protocol as ServicePortState['protocol']) ?? 'TCP',
      port: Number(p.port),
      targetPort:
        typeof p.targetPort === 'number' || typeof p.targetPort === 'string'
          ? /^\d+$/.test(String(p.targetPort))
            ? Number(p.targetPort)
            : p.targetPort
          : Number(p.port),
      nodePort: typeof p.nodePort === 'number' ? p.nodePort : null,
    }));
  const selector =
    isRecord(spec.selector) && Object.keys(spec.selector).length > 0
      ? (spec.selector as Record<string, string>)
      : null;
  const clusterIP = typeof spec.clusterIP === 'string' ? spec.clusterIP : null;
  return {
    namespace: typeof meta.namespace === 'string' ? meta.namespace : 'default',
    name: String(meta.name),
    uid: '',
    type: (spec.type as ServiceState['type']) ?? 'ClusterIP',
    clusterIP: clusterIP === 'None' ? null : clusterIP,
    headless: clusterIP === 'None',
    ...(typeof spec.externalName === 'string' ? { externalName: spec.externalName } : {}),
    ports,
    selector,
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    publishNotReadyAddresses: spec.publishNotReadyAddresses === true,
    externalIPs: [],
    loadBalancerSourceRanges: [],
    healthCheckNodePort: null,
    labels: {},
    annotations: {},
  };
}

/** The Services of the state, whichever form src/cluster keeps them in. */
export function servicesOf(state: ClusterState): ServiceState[] {
  return (state.services as unknown[]).map((s) =>
    isRecord(s) && 'spec' in s ? serviceFromRaw(s) : (s as ServiceState),
  );
}

/** Fallback for endpointsForService: ready pods selected by the Service, per port. */
function podEndpoints(state: ClusterState, svc: ServiceState): ServicePortEndpoints[] {
  const selector = svc.selector;
  const pods: PodState[] =
    selector === null
      ? []
      : state.pods.filter(
          (p) =>
            p.namespace === svc.namespace &&
            p.ip !== null &&
            p.phase === 'Running' &&
            Object.entries(selector).every(([k, v]) => p.labels[k] === v),
        );
  return svc.ports.map((sp) => {
    const endpoints: ServiceEndpoint[] = [];
    for (const pod of pods) {
      let port: number | null = null;
      if (typeof sp.targetPort === 'number') port = sp.targetPort;
      else {
        for (const c of pod.containers) {
          const cp = c.ports.find((x) => x.name === sp.targetPort && x.protocol === sp.protocol);
          if (cp) {
            port = cp.containerPort;
            break;
          }
        }
      }
      if (port === null) continue;
      endpoints.push({
        ip: pod.ip!,
        port,
        nodeName: pod.nodeName,
        podNamespace: pod.namespace,
        podName: pod.name,
        ready: true,
      });
    }
    return { portName: sp.name, protocol: sp.protocol, servicePort: sp.port, endpoints };
  });
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  const pa = a.ip.split('.').map(Number);
  const pb = b.ip.split('.').map(Number);
  for (let i = 0; i < 4; i++) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return a.port - b.port;
}

/** Looks up Services and endpoints for Ingress backends. */
export class BackendResolver {
  private readonly services = new Map<string, ServiceState>();
  private readonly manual = new Map<string, ManualEndpoints>();
  private readonly cache = new Map<string, ServicePortEndpoints[]>();

  constructor(
    private readonly state: ClusterState,
    manual: readonly ManualEndpoints[],
    private readonly downNodes: readonly string[] = [],
  ) {
    for (const s of servicesOf(state)) this.services.set(`${s.namespace}/${s.name}`, s);
    for (const m of manual) this.manual.set(`${m.namespace}/${m.service}`, m);
  }

  service(namespace: string, name: string): ServiceState | undefined {
    return this.services.get(`${namespace}/${name}`);
  }

  private portEndpoints(svc: ServiceState): ServicePortEndpoints[] {
    const key = `${svc.namespace}/${svc.name}`;
    let eps = this.cache.get(key);
    if (eps) return eps;
    if (svc.selector === null) {
      const m = this.manual.get(key);
      eps = svc.ports.map((sp) => {
        // Endpoints ports are matched to Service ports by name (Kubernetes' rule).
        const mp = m?.ports.find((p) => p.name === sp.name) ?? (svc.ports.length === 1 ? m?.ports[0] : undefined);
        return {
          portName: sp.name,
          protocol: sp.protocol,
          servicePort: sp.port,
          endpoints: (mp?.addresses ?? []).map((ip) => ({
            ip,
            port: mp!.port,
            nodeName: null,
            podNamespace: '',
            podName: '',
            ready: true,
          })),
        };
      });
    } else if (clusterEndpointsForService) {
      eps = clusterEndpointsForService(this.state, svc, { downNodes: this.downNodes });
    } else {
      eps = podEndpoints(this.state, svc);
    }
    this.cache.set(key, eps);
    return eps;
  }

  /**
   * The endpoints of one Ingress backend. A port matches a Service port by number, by
   * name, or by its targetPort (ingress-nginx controller.go serviceEndpoints).
   */
  resolve(namespace: string, ref: ServiceBackendRef): ResolvedBackend {
    const upstream = `${namespace}-${ref.service}-${ref.port}`;
    const base = { upstream, namespace, service: ref.service, port: ref.port };
    const svc = this.service(namespace, ref.service);
    if (!svc) return { ...base, endpoints: [], problem: `Service ${namespace}/${ref.service} not found` };
    if (svc.type === 'ExternalName') {
      return { ...base, endpoints: [], problem: `Service ${namespace}/${ref.service} is of type ExternalName (not supported by kubewire's ingress)` };
    }
    const wanted = String(ref.port);
    const ports = svc.ports.filter(
      (p) => String(p.port) === wanted || String(p.targetPort) === wanted || p.name === wanted,
    );
    if (ports.length === 0) {
      return { ...base, endpoints: [], problem: `Service ${namespace}/${ref.service} has no port ${wanted}` };
    }
    const all = this.portEndpoints(svc);
    const seen = new Set<string>();
    const endpoints: Endpoint[] = [];
    for (const sp of ports) {
      const pe = all.find((e) => e.portName === sp.name && e.servicePort === sp.port);
      for (const e of pe?.endpoints ?? []) {
        if (!e.ready && !svc.publishNotReadyAddresses) continue;
        const k = `${e.ip}:${e.port}`;
        if (seen.has(k)) continue;
        seen.add(k);
        endpoints.push({ ip: e.ip, port: e.port });
      }
    }
    endpoints.sort(compareEndpoints);
    return {
      ...base,
      endpoints,
      problem: endpoints.length === 0 ? `Service ${namespace}/${ref.service} does not have any active Endpoint` : null,
    };
  }
}
