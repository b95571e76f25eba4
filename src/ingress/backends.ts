/**
 * Services and their ready endpoints, as the ingress controller sees them: it proxies to
 * the pods' addresses directly (ingress-nginx's Lua balancer), not to the ClusterIP.
 *
 * The Services come from ClusterState (`services: ServiceState[]`) and their endpoints
 * from src/cluster's `endpointsForService`. Services without a selector take
 * hand-written Endpoints / EndpointSlices from the manifests, as in Kubernetes.
 */
import { endpointsForService, type ClusterState } from '../cluster/index.js';
import type { ServicePortEndpoints, ServiceState } from '../cluster/service-types.js';
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

  private readonly downNodes: ReadonlySet<string>;

  constructor(
    private readonly state: ClusterState,
    manual: readonly ManualEndpoints[],
    downNodes: readonly string[] = [],
  ) {
    this.downNodes = new Set(downNodes);
    for (const s of state.services) this.services.set(`${s.namespace}/${s.name}`, s);
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
        // Endpoints ports are matched to Service ports by name (Kubernetes' rule); every
        // subset with that port name contributes its addresses.
        const ports = (m?.ports ?? []).filter((p) => p.name === sp.name || svc.ports.length === 1);
        return {
          portName: sp.name,
          protocol: sp.protocol,
          servicePort: sp.port,
          endpoints: ports.flatMap((mp) =>
            mp.addresses.map((ip) => ({
              ip,
              port: mp.port,
              nodeName: null,
              podNamespace: '',
              podName: '',
              ready: true,
            })),
          ),
        };
      });
    } else {
      eps = endpointsForService(this.state, svc, { downNodes: this.downNodes });
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
    if (!svc)
      return { ...base, endpoints: [], problem: `Service ${namespace}/${ref.service} not found` };
    if (svc.type === 'ExternalName') {
      return {
        ...base,
        endpoints: [],
        problem: `Service ${namespace}/${ref.service} is of type ExternalName (not supported by kubewire's ingress)`,
      };
    }
    const wanted = String(ref.port);
    const ports = svc.ports.filter(
      (p) => String(p.port) === wanted || String(p.targetPort) === wanted || p.name === wanted,
    );
    if (ports.length === 0) {
      return {
        ...base,
        endpoints: [],
        problem: `Service ${namespace}/${ref.service} has no port ${wanted}`,
      };
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
      problem:
        endpoints.length === 0
          ? `Service ${namespace}/${ref.service} does not have any active Endpoint`
          : null,
    };
  }
}
