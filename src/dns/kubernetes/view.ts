/**
 * What the DNS reads of the cluster: Services with their endpoints, pods, namespaces, the
 * domain and the Corefile of the `coredns` ConfigMap. Built from a ClusterState with
 * src/cluster's own endpoint derivation (endpointsForService), so the DNS sees the same
 * endpoints as kube-proxy.
 */
import {
  allServiceEndpoints,
  serviceKey,
  type ClusterState,
  type ServicePortEndpoints,
  type ServiceState,
} from '../../cluster/index.js';

export interface DnsService {
  svc: ServiceState;
  endpoints: ServicePortEndpoints[];
}

export interface DnsPod {
  namespace: string;
  name: string;
  ip: string;
}

export interface DnsClusterView {
  dnsDomain: string;
  clusterDNSIP: string;
  namespaces: string[];
  pods: DnsPod[];
  services: DnsService[];
  /** `data.Corefile` of ConfigMap kube-system/coredns, or null. */
  corefile: string | null;
  /** Unix seconds of the last change: the SOA serial (CoreDNS: the API's last modification). */
  modified: number;
}

export interface ViewOptions {
  downNodes?: ReadonlySet<string>;
  /** SOA serial; defaults to now. */
  modified?: number;
}

/** The coredns ConfigMap's Corefile in a cluster state (kube-system/coredns, key Corefile). */
export function corefileFromState(state: ClusterState): string | null {
  for (const cm of state.configMaps) {
    const meta = (cm as { metadata?: { name?: string; namespace?: string } }).metadata;
    if (meta?.name === 'coredns' && (meta.namespace ?? 'default') === 'kube-system') {
      const data = (cm as { data?: Record<string, unknown> }).data;
      const text = data?.['Corefile'];
      return typeof text === 'string' ? text : null;
    }
  }
  return null;
}

export function viewFromClusterState(state: ClusterState, opts: ViewOptions = {}): DnsClusterView {
  const endpoints = allServiceEndpoints(state, opts.downNodes ? { downNodes: opts.downNodes } : {});
  return {
    dnsDomain: state.config.dnsDomain,
    clusterDNSIP: state.config.clusterDNSIP,
    namespaces: [...state.namespaces],
    pods: state.pods
      .filter((p) => p.ip !== null && p.phase === 'Running')
      .map((p) => ({ namespace: p.namespace, name: p.name, ip: p.ip! })),
    services: state.services.map((svc) => ({
      svc,
      endpoints: endpoints.get(serviceKey(svc)) ?? [],
    })),
    corefile: corefileFromState(state),
    modified: opts.modified ?? Math.floor(Date.now() / 1000),
  };
}
