/**
 * src/ingress: an ingress-nginx-compatible HTTP(S) proxy. Manifests (Ingress, IngressClass,
 * Service, pods, Secrets) → routing table → proxy to the pods' addresses.
 */
export {
  parseAnnotations,
  parseNginxSize,
  DEFAULT_SETTINGS,
  type LocationSettings,
  type CorsConfig,
  type AffinityConfig,
} from './annotations.js';
export { BackendResolver, type Endpoint, type ResolvedBackend } from './backends.js';
export {
  certificateCoversHost,
  defaultCertificate,
  defaultTls,
  parseTls,
  selfSignedCertificate,
  tlsFromSecret,
  type PemPair,
  type TlsCertificate,
} from './certs.js';
export { formatRoutes, routesJson } from './conf.js';
export {
  compileIngress,
  compileIngressFromPaths,
  IngressController,
  type CompiledIngress,
  type ControllerOptions,
} from './controller.js';
export {
  readIngresses,
  readManualEndpoints,
  type IngressObject,
  type IngressPath,
  type IngressRule,
  type IngressTLS,
  type ManualEndpoints,
  type PathType,
  type ServiceBackendRef,
} from './model.js';
export { errorPage, IngressProxy, type ProxyOptions } from './proxy.js';
export {
  classDecision,
  explainRoute,
  compileRoutes,
  findLocation,
  findServer,
  nextEndpoint,
  DEFAULT_SERVER,
  DEFAULT_UPSTREAM,
  type CompileOptions,
  type IngressConfig,
  type RouteExplanation,
  type Location,
  type Server,
  type Upstream,
} from './routes.js';
export { normalizePath, parseTarget, escapeUri } from './uri.js';
