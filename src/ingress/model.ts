/**
 * Ingress objects as ingress-nginx reads them: networking.k8s.io/v1, and the older
 * extensions/v1beta1 and networking.k8s.io/v1beta1 forms (serviceName / servicePort,
 * spec.backend), converted to one model. Invalid objects are refused with file, document
 * and field named (ManifestError), as the API server would refuse them.
 *
 * The documents are read here rather than from ClusterState because the cluster model
 * keeps only networking.k8s.io/v1 Ingresses, and without their origin.
 */
import {
  formatFieldPath,
  ManifestError,
  type ManifestDocument,
  type PathSegment,
} from '../cluster/index.js';

export type PathType = 'Exact' | 'Prefix' | 'ImplementationSpecific';

/** A Service backend: `service.name` + `service.port.{number|name}`. */
export interface ServiceBackendRef {
  service: string;
  port: number | string;
}

/** Where an object came from, for messages. */
export interface ObjectOrigin {
  file: string;
  documentIndex: number;
  /** [] for a document, ['items', i] for an item of a List. */
  pathPrefix: PathSegment[];
  locate?: (path: readonly PathSegment[]) => number | undefined;
}

export interface IngressPath {
  /** As written ('' when absent). */
  path: string;
  pathType: PathType;
  /** null: a `resource` backend (not supported: served by the default backend). */
  backend: ServiceBackendRef | null;
  /** Field path of this path entry, e.g. ['spec','rules',0,'http','paths',1]. */
  field: PathSegment[];
}

export interface IngressRule {
  /** '' when absent (the catch-all server). */
  host: string;
  /** null when the rule has no `http`. */
  paths: IngressPath[] | null;
}

export interface IngressTLS {
  hosts: string[];
  secretName: string;
}

export interface IngressObject {
  namespace: string;
  name: string;
  apiVersion: string;
  /** metadata.creationTimestamp when given (ingress-nginx orders Ingresses by it). */
  creationTimestamp: string | null;
  ingressClassName: string | null;
  annotations: Record<string, string>;
  defaultBackend: ServiceBackendRef | null;
  rules: IngressRule[];
  tls: IngressTLS[];
  origin: ObjectOrigin;
}

export const INGRESS_API_VERSIONS = [
  'networking.k8s.io/v1',
  'networking.k8s.io/v1beta1',
  'extensions/v1beta1',
];

/** Hand-written endpoints of Services without a selector (v1 Endpoints, EndpointSlice). */
export interface ManualEndpoints {
  namespace: string;
  service: string;
  /** One entry per port: name ('' unnamed), port, and the ready addresses. */
  ports: { name: string; port: number; addresses: string[] }[];
}

// ---------------------------------------------------------------------------------------
// Documents

interface Located {
  object: Record<string, unknown>;
  origin: ObjectOrigin;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every object of the documents, `kind: List` expanded. */
export function objectsOf(docs: readonly ManifestDocument[]): Located[] {
  const out: Located[] = [];
  for (const doc of docs) {
    if (!isObject(doc.object)) continue;
    const base: ObjectOrigin = {
      file: doc.file,
      documentIndex: doc.index,
      pathPrefix: [],
      ...(doc.locate ? { locate: doc.locate } : {}),
    };
    if (doc.object.kind === 'List' && Array.isArray(doc.object.items)) {
      doc.object.items.forEach((item, i) => {
        if (isObject(item))
          out.push({ object: item, origin: { ...base, pathPrefix: ['items', i] } });
      });
    } else out.push({ object: doc.object, origin: base });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Validation (k8s.io/kubernetes pkg/apis/networking/validation)

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

/** A rule or TLS host: a DNS subdomain, or `*.` + one, never an IP address. */
export function hostProblem(host: string): string | null {
  if (IPV4.test(host) || host.includes(':'))
    return `${JSON.stringify(host)} must be a DNS name, not an IP address`;
  const bare = host.startsWith('*.') ? host.slice(2) : host;
  if (!isDnsSubdomain(bare)) {
    return host.includes('*')
      ? `${JSON.stringify(host)} is not a valid wildcard host (a wildcard is '*.' followed by a DNS subdomain, e.g. '*.example.com')`
      : `${JSON.stringify(host)} is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.')`;
  }
  return null;
}

const INVALID_PATH_SEQUENCES = ['//', '/./', '/../', '%2f', '%2F'];
const INVALID_PATH_SUFFIXES = ['/..', '/.'];

class Checker {
  readonly errors: ManifestError[] = [];
  constructor(
    private readonly origin: ObjectOrigin,
    private readonly kind: string,
    private readonly namespace: string | undefined,
    private readonly objectName: string | undefined,
  ) {}

  err(path: PathSegment[], detail: string): void {
    const full = [...this.origin.pathPrefix, ...path];
    const line = this.origin.locate?.(full);
    this.errors.push(
      new ManifestError({
        file: this.origin.file,
        documentIndex: this.origin.documentIndex,
        kind: this.kind,
        ...(this.namespace !== undefined ? { namespace: this.namespace } : {}),
        ...(this.objectName !== undefined ? { objectName: this.objectName } : {}),
        fieldPath: formatFieldPath(full),
        detail,
        ...(line !== undefined ? { line } : {}),
      }),
    );
  }

  string(v: unknown, path: PathSegment[], required: boolean): string | undefined {
    if (v === undefined || v === null) {
      if (required) this.err(path, 'required field is missing');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.err(path, `expected a string, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  object(v: unknown, path: PathSegment[], required: boolean): Record<string, unknown> | undefined {
    if (v === undefined || v === null) {
      if (required) this.err(path, 'required field is missing');
      return undefined;
    }
    if (!isObject(v)) {
      this.err(path, `expected a map, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  list(v: unknown, path: PathSegment[]): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.err(path, `expected a list, got ${describe(v)}`);
      return [];
    }
    return v;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

function portProblem(v: number): string | null {
  return Number.isInteger(v) && v >= 1 && v <= 65535
    ? null
    : `must be between 1 and 65535, got ${v}`;
}

function portNameProblem(s: string): string | null {
  return s.length <= 15 && IANA_SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes('--')
    ? null
    : `${JSON.stringify(s)} is not a valid port name (at most 15 lowercase letters, digits and '-', with at least one letter)`;
}

function readBackend(
  c: Checker,
  v: unknown,
  path: PathSegment[],
  legacy: boolean,
): ServiceBackendRef | null | undefined {
  const b = c.object(v, path, true);
  if (!b) return undefined;
  if (legacy) {
    if (b.resource !== undefined && b.serviceName === undefined) return null;
    const service = c.string(b.serviceName, [...path, 'serviceName'], true);
    const port = b.servicePort;
    if (port === undefined || port === null) {
      c.err([...path, 'servicePort'], 'required field is missing');
      return undefined;
    }
    if (service !== undefined && !DNS1123_LABEL.test(service)) {
      c.err(
        [...path, 'serviceName'],
        `${JSON.stringify(service)} is not a valid Service name (DNS-1035 label)`,
      );
    }
    if (typeof port === 'number') {
      const p = portProblem(port);
      if (p) c.err([...path, 'servicePort'], p);
      return service !== undefined && !p ? { service, port } : undefined;
    }
    if (typeof port === 'string') {
      if (/^\d+$/.test(port))
        return service !== undefined ? { service, port: Number(port) } : undefined;
      const p = portNameProblem(port);
      if (p) c.err([...path, 'servicePort'], p);
      return service !== undefined && !p ? { service, port } : undefined;
    }
    c.err([...path, 'servicePort'], `expected a port number or name, got ${describe(port)}`);
    return undefined;
  }
  const hasService = b.service !== undefined && b.service !== null;
  const hasResource = b.resource !== undefined && b.resource !== null;
  if (hasService && hasResource) {
    c.err(path, 'cannot set both service and resource backends');
    return undefined;
  }
  if (hasResource) return null;
  if (!hasService) {
    c.err(
      [...path, 'service'],
      'required field is missing (one of service or resource must be set)',
    );
    return undefined;
  }
  const svc = c.object(b.service, [...path, 'service'], true);
  if (!svc) return undefined;
  const service = c.string(svc.name, [...path, 'service', 'name'], true);
  if (service !== undefined && !DNS1123_LABEL.test(service)) {
    c.err(
      [...path, 'service', 'name'],
      `${JSON.stringify(service)} is not a valid Service name (DNS-1035 label)`,
    );
  }
  const port = c.object(svc.port, [...path, 'service', 'port'], true);
  if (!port) return undefined;
  const hasNumber = port.number !== undefined && port.number !== null;
  const hasName = port.name !== undefined && port.name !== null;
  if (hasNumber === hasName) {
    c.err([...path, 'service', 'port'], 'exactly one of number or name must be set');
    return undefined;
  }
  if (hasNumber) {
    if (typeof port.number !== 'number') {
      c.err(
        [...path, 'service', 'port', 'number'],
        `expected an integer, got ${describe(port.number)}`,
      );
      return undefined;
    }
    const p = portProblem(port.number);
    if (p) c.err([...path, 'service', 'port', 'number'], p);
    return service !== undefined && !p ? { service, port: port.number } : undefined;
  }
  const pname = c.string(port.name, [...path, 'service', 'port', 'name'], true);
  if (pname === undefined) return undefined;
  const p = portNameProblem(pname);
  if (p) c.err([...path, 'service', 'port', 'name'], p);
  return service !== undefined && !p ? { service, port: pname } : undefined;
}

function readPath(
  c: Checker,
  v: unknown,
  field: PathSegment[],
  legacy: boolean,
): IngressPath | undefined {
  const p = c.object(v, field, true);
  if (!p) return undefined;
  let pathType: PathType = 'ImplementationSpecific';
  if (p.pathType === undefined || p.pathType === null) {
    if (!legacy)
      c.err(
        [...field, 'pathType'],
        'required field is missing (Exact, Prefix or ImplementationSpecific)',
      );
  } else if (
    p.pathType === 'Exact' ||
    p.pathType === 'Prefix' ||
    p.pathType === 'ImplementationSpecific'
  ) {
    pathType = p.pathType;
  } else {
    c.err(
      [...field, 'pathType'],
      `expected one of Exact, Prefix, ImplementationSpecific, got ${describe(p.pathType)}`,
    );
  }
  const path = c.string(p.path, [...field, 'path'], false) ?? '';
  if (pathType === 'Exact' || pathType === 'Prefix') {
    if (!path.startsWith('/'))
      c.err(
        [...field, 'path'],
        `${JSON.stringify(path)} must be an absolute path (start with '/')`,
      );
    else {
      for (const bad of INVALID_PATH_SEQUENCES) {
        if (path.includes(bad)) c.err([...field, 'path'], `must not contain '${bad}'`);
      }
      for (const bad of INVALID_PATH_SUFFIXES) {
        if (path.endsWith(bad)) c.err([...field, 'path'], `cannot end with '${bad}'`);
      }
    }
  } else if (path !== '' && !path.startsWith('/')) {
    c.err([...field, 'path'], `${JSON.stringify(path)} must be an absolute path (start with '/')`);
  }
  const backend = readBackend(c, p.backend, [...field, 'backend'], legacy);
  if (backend === undefined) return undefined;
  return { path, pathType, backend, field };
}

/**
 * Reads and validates every Ingress of the documents (all three apiVersions). Returns the
 * valid ones, the problems (one ManifestError per field) and warnings.
 */
export function readIngresses(docs: readonly ManifestDocument[]): {
  ingresses: IngressObject[];
  errors: ManifestError[];
  warnings: string[];
} {
  const ingresses: IngressObject[] = [];
  const errors: ManifestError[] = [];
  const warnings: string[] = [];
  const seen = new Map<string, ObjectOrigin>();
  for (const { object, origin } of objectsOf(docs)) {
    if (object.kind !== 'Ingress') continue;
    const apiVersion = String(object.apiVersion ?? '');
    if (!INGRESS_API_VERSIONS.includes(apiVersion)) continue;
    const legacy = apiVersion !== 'networking.k8s.io/v1';
    const meta = isObject(object.metadata) ? object.metadata : {};
    const name = typeof meta.name === 'string' ? meta.name : undefined;
    const namespace = typeof meta.namespace === 'string' ? meta.namespace : 'default';
    const c = new Checker(origin, 'Ingress', namespace, name);
    if (name === undefined) c.err(['metadata', 'name'], 'required field is missing');
    else if (!isDnsSubdomain(name))
      c.err(['metadata', 'name'], `${JSON.stringify(name)} is not a valid DNS-1123 subdomain`);
    const annotations: Record<string, string> = {};
    const rawAnn = c.object(meta.annotations, ['metadata', 'annotations'], false) ?? {};
    for (const [k, v] of Object.entries(rawAnn)) {
      if (v === null || v === undefined) continue;
      if (typeof v !== 'string')
        c.err(['metadata', 'annotations', k], `expected a string, got ${describe(v)} (quote it)`);
      else annotations[k] = v;
    }
    const spec = c.object(object.spec, ['spec'], false) ?? {};
    let ingressClassName: string | null = null;
    const icn = c.string(spec.ingressClassName, ['spec', 'ingressClassName'], false);
    if (icn !== undefined) {
      if (!isDnsSubdomain(icn))
        c.err(
          ['spec', 'ingressClassName'],
          `${JSON.stringify(icn)} is not a valid DNS-1123 subdomain`,
        );
      ingressClassName = icn;
    }
    const dbField = legacy ? 'backend' : 'defaultBackend';
    let defaultBackend: ServiceBackendRef | null = null;
    if (spec[dbField] !== undefined && spec[dbField] !== null) {
      const b = readBackend(c, spec[dbField], ['spec', dbField], legacy);
      if (b) defaultBackend = b;
    }
    const rules: IngressRule[] = [];
    c.list(spec.rules, ['spec', 'rules']).forEach((r, i) => {
      const rule = c.object(r, ['spec', 'rules', i], true);
      if (!rule) return;
      const host = c.string(rule.host, ['spec', 'rules', i, 'host'], false) ?? '';
      if (host !== '') {
        const p = hostProblem(host);
        if (p) c.err(['spec', 'rules', i, 'host'], p);
      }
      const http = c.object(rule.http, ['spec', 'rules', i, 'http'], false);
      if (!http) {
        rules.push({ host, paths: null });
        return;
      }
      const rawPaths = c.list(http.paths, ['spec', 'rules', i, 'http', 'paths']);
      if (rawPaths.length === 0)
        c.err(['spec', 'rules', i, 'http', 'paths'], 'must have at least 1 item');
      const paths: IngressPath[] = [];
      rawPaths.forEach((p, j) => {
        const parsed = readPath(c, p, ['spec', 'rules', i, 'http', 'paths', j], legacy);
        if (parsed) paths.push(parsed);
      });
      rules.push({ host, paths });
    });
    if (rules.length === 0 && spec[dbField] === undefined) {
      c.err(['spec'], `either \`${dbField}\` or \`rules\` must be specified`);
    }
    const tls: IngressTLS[] = [];
    c.list(spec.tls, ['spec', 'tls']).forEach((t, i) => {
      const entry = c.object(t, ['spec', 'tls', i], true);
      if (!entry) return;
      const hosts: string[] = [];
      c.list(entry.hosts, ['spec', 'tls', i, 'hosts']).forEach((h, j) => {
        const host = c.string(h, ['spec', 'tls', i, 'hosts', j], true);
        if (host === undefined) return;
        const p = hostProblem(host);
        if (p) c.err(['spec', 'tls', i, 'hosts', j], p);
        hosts.push(host);
      });
      const secretName = c.string(entry.secretName, ['spec', 'tls', i, 'secretName'], false) ?? '';
      if (secretName !== '' && !isDnsSubdomain(secretName)) {
        c.err(
          ['spec', 'tls', i, 'secretName'],
          `${JSON.stringify(secretName)} is not a valid Secret name`,
        );
      }
      tls.push({ hosts, secretName });
    });
    if (name !== undefined) {
      const key = `${namespace}/${name}`;
      const first = seen.get(key);
      if (first) {
        c.err(
          ['metadata', 'name'],
          `duplicate Ingress ${key} (first defined in ${first.file} document ${first.documentIndex})`,
        );
      } else seen.set(key, origin);
    }
    if (c.errors.length > 0) {
      errors.push(...c.errors);
      continue;
    }
    const ts = meta.creationTimestamp;
    ingresses.push({
      namespace,
      name: name!,
      apiVersion,
      creationTimestamp: typeof ts === 'string' ? ts : ts instanceof Date ? ts.toISOString() : null,
      ingressClassName,
      annotations,
      defaultBackend,
      rules,
      tls,
      origin,
    });
  }
  return { ingresses, errors, warnings };
}

/**
 * Hand-written endpoints: v1 Endpoints (subsets[].addresses/ports) and
 * discovery.k8s.io/v1 EndpointSlices (label kubernetes.io/service-name). They give
 * Services without a selector their addresses, as in Kubernetes; kubewire's standalone
 * proxy uses them to reach programs on loopback.
 */
export function readManualEndpoints(docs: readonly ManifestDocument[]): ManualEndpoints[] {
  const byService = new Map<string, ManualEndpoints>();
  const entry = (namespace: string, service: string): ManualEndpoints => {
    const key = `${namespace}/${service}`;
    let e = byService.get(key);
    if (!e) byService.set(key, (e = { namespace, service, ports: [] }));
    return e;
  };
  const addPort = (e: ManualEndpoints, name: string, port: number, addresses: string[]): void => {
    const have = e.ports.find((p) => p.name === name && p.port === port);
    if (have) have.addresses.push(...addresses.filter((a) => !have.addresses.includes(a)));
    else e.ports.push({ name, port, addresses: [...addresses] });
  };
  for (const { object } of objectsOf(docs)) {
    const meta = isObject(object.metadata) ? object.metadata : {};
    const namespace = typeof meta.namespace === 'string' ? meta.namespace : 'default';
    if (
      object.kind === 'Endpoints' &&
      object.apiVersion === 'v1' &&
      typeof meta.name === 'string'
    ) {
      const e = entry(namespace, meta.name);
      for (const subset of Array.isArray(object.subsets) ? object.subsets : []) {
        if (!isObject(subset)) continue;
        const addrs = (Array.isArray(subset.addresses) ? subset.addresses : [])
          .map((a) => (isObject(a) && typeof a.ip === 'string' ? a.ip : null))
          .filter((a): a is string => a !== null);
        for (const p of Array.isArray(subset.ports) ? subset.ports : []) {
          if (isObject(p) && typeof p.port === 'number') {
            addPort(e, typeof p.name === 'string' ? p.name : '', p.port, addrs);
          }
        }
      }
    } else if (object.kind === 'EndpointSlice' && object.apiVersion === 'discovery.k8s.io/v1') {
      const labels = isObject(meta.labels) ? meta.labels : {};
      const svc = labels['kubernetes.io/service-name'];
      if (typeof svc !== 'string') continue;
      const e = entry(namespace, svc);
      const addrs: string[] = [];
      for (const ep of Array.isArray(object.endpoints) ? object.endpoints : []) {
        if (!isObject(ep)) continue;
        const cond = isObject(ep.conditions) ? ep.conditions : {};
        if (cond.ready === false) continue;
        for (const a of Array.isArray(ep.addresses) ? ep.addresses : []) {
          if (typeof a === 'string') addrs.push(a);
        }
      }
      for (const p of Array.isArray(object.ports) ? object.ports : []) {
        if (isObject(p) && typeof p.port === 'number') {
          addPort(e, typeof p.name === 'string' ? p.name : '', p.port, addrs);
        }
      }
    }
  }
  return [...byService.values()];
}
