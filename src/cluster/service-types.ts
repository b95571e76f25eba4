/**
 * Services and their endpoints, as kube-proxy, the cluster DNS and the ingress
 * controller consume them. Plain JSON data, derived purely from the manifests
 * (plus the set of nodes that are down, which removes their pods' endpoints).
 *
 * Producers: src/cluster/services.ts (validation, ClusterIP/NodePort allocation) and
 * src/cluster/endpoints.ts (EndpointSlice-like derivation: endpointsForService,
 * allServiceEndpoints). Consumers: src/controllers (kube-proxy), src/dns, src/ingress.
 */

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
export type ServiceProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface ServicePortState {
  /** Port name ('' when the Service has a single unnamed port). */
  name: string;
  protocol: ServiceProtocol;
  port: number;
  /** Number, or the name of a container port resolved per pod. Defaults to `port`. */
  targetPort: number | string;
  /** Allocated or given (30000–32767) for NodePort and LoadBalancer Services; null otherwise. */
  nodePort: number | null;
  appProtocol?: string;
}

export interface ServiceState {
  namespace: string;
  name: string;
  uid: string;
  type: ServiceType;
  /** Allocated from the service subnet or given; null for headless and ExternalName Services. */
  clusterIP: string | null;
  /** spec.clusterIP: None. */
  headless: boolean;
  externalName?: string;
  ports: ServicePortState[];
  /** null: no selector (endpoints are managed by hand; kubewire then has none). */
  selector: Record<string, string> | null;
  sessionAffinity: 'None' | 'ClientIP';
  /** sessionAffinityConfig.clientIP.timeoutSeconds, default 10800. */
  sessionAffinityTimeoutSeconds: number;
  externalTrafficPolicy: 'Cluster' | 'Local';
  internalTrafficPolicy: 'Cluster' | 'Local';
  publishNotReadyAddresses: boolean;
  externalIPs: string[];
  loadBalancerIP?: string;
  /** spec.loadBalancerClass (type LoadBalancer); MetalLB leaves Services of another class alone. */
  loadBalancerClass?: string;
  loadBalancerSourceRanges: string[];
  /** For type LoadBalancer with externalTrafficPolicy Local. */
  healthCheckNodePort: number | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface ServiceEndpoint {
  /** Pod IP. */
  ip: string;
  /** The resolved target port on this pod. */
  port: number;
  nodeName: string | null;
  podNamespace: string;
  podName: string;
  /**
   * Ready per the pod's state (running, on a node that is up); always true when the
   * Service has publishNotReadyAddresses. Not-ready endpoints are listed too.
   */
  ready: boolean;
  /** Pod spec.hostname when spec.subdomain equals the Service's name (DNS <hostname>.<svc>...). */
  hostname?: string;
}

/**
 * The endpoints of one Service port, sorted by IP then port. A headless Service without
 * ports has one entry with portName '' and servicePort 0 (endpoint ports 0).
 */
export interface ServicePortEndpoints {
  portName: string;
  protocol: ServiceProtocol;
  servicePort: number;
  endpoints: ServiceEndpoint[];
}
