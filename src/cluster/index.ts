/**
 * src/cluster: manifests → validated objects → cluster state. Pure, except the loader
 * (load.ts), which reads files.
 */
export {
  listManifestFiles,
  loadManifests,
  MANIFEST_EXTENSIONS,
  parseManifestText,
  type ManifestDocument,
} from './load.js';
export {
  formatFieldPath,
  ManifestError,
  ManifestErrors,
  type ManifestErrorInit,
  type PathSegment,
} from './errors.js';
export {
  BUILTIN_NAMESPACES,
  buildClusterState,
  type BuildOptions,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_DNS_DOMAIN,
  DEFAULT_POD_SUBNET,
  DEFAULT_POOL_NAME,
  DEFAULT_SERVICE_SUBNET,
  type ClusterConfig,
  type ClusterState,
  type ContainerPort,
  type ContainerSpec,
  type DnsConfig,
  type EnvVar,
  type IpipMode,
  type MetalLBState,
  type NodeAddress,
  type NodeState,
  type PodOwner,
  type PodState,
  type PoolState,
  type RawObject,
  type Taint,
  type TaintEffect,
  type Toleration,
} from './state.js';
export {
  IPAM_BLOCK_API_VERSION,
  IPAM_MANIFEST_HEADER,
  ipamBlockName,
  ipamBlocksFor,
  renderIpamManifest,
} from './ipam-blocks.js';
export { derivedUid, netnsNameForPod, podTemplateHash, vethNameForWorkload } from './naming.js';
export {
  isEmptyLabelSelector,
  matchesCalicoSelector,
  matchesLabelSelector,
  matchesMapSelector,
  parseCalicoSelector,
  CalicoSelectorError,
  type CalicoSelector,
  type LabelSelector,
  type LabelSelectorRequirement,
  type Labels,
} from './selectors.js';
export {
  cidrContains,
  cidrTextContains,
  formatCidr,
  formatIPv4,
  parseCidr,
  parseIPv4,
  type Cidr,
} from './ip.js';
export { IP_ADDRS_ANNOTATION } from './schemas.js';
export {
  ALLOCATIONS_CONFIG_MAP,
  advertisementsFor,
  allocateLoadBalancers,
  electAnnouncer,
  electionKey,
  formatRange,
  isMetalLBService,
  METALLB_NAMESPACE,
  parseAddressEntry,
  renderAllocationsManifest,
  type ElectionNode,
  type ElectionResult,
  type L2AdvertisementState,
  type LoadBalancerStatus,
  type MetalLBPool,
  type ServiceEvent,
} from './metallb.js';
export type {
  ServiceEndpoint,
  ServicePortEndpoints,
  ServicePortState,
  ServiceProtocol,
  ServiceState,
  ServiceType,
} from './service-types.js';
export {
  API_SERVER_PORT,
  CLUSTER_DNS_SERVICE,
  CONTROL_PLANE_LABELS,
  DEFAULT_SESSION_AFFINITY_TIMEOUT,
  KUBERNETES_SERVICE,
  MAX_SESSION_AFFINITY_TIMEOUT,
  SERVICE_NODE_PORT_RANGE,
  serviceKey,
} from './services.js';
export {
  allServiceEndpoints,
  allServiceEndpointLists,
  type AllEndpointsOptions,
  apiServerNodes,
  endpointsForService,
  resolveTargetPort,
  type EndpointOptions,
} from './endpoints.js';
