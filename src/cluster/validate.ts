/**
 * Manifest documents → validated, typed objects (one pass, every problem collected).
 * Cross-object rules (duplicates, overlaps, IPAM) are checked later by buildClusterState.
 */
import type { z } from 'zod';
import { formatFieldPath, formatLocation, ManifestError, type PathSegment } from './errors.js';
import { compareStrings } from './hash.js';
import { parseCidrStrict } from './ip.js';
import type { ManifestDocument } from './load.js';
import * as S from './schemas.js';
import { parseAddressEntry } from './metallb.js';
import { isEmptyLabelSelector, matchesLabelSelector } from './selectors.js';
import { checkService } from './services.js';

/** Where an object came from: its document, and its path inside it (for List items). */
export interface Origin {
  file: string;
  documentIndex: number;
  /** Path of the object inside the document: [] for a document, ['items', 3] for a List item. */
  pathPrefix: PathSegment[];
  line?: number;
  locate?: (path: readonly PathSegment[]) => number | undefined;
}

/** Identity of an object in messages: `(Deployment default/web)`. */
export interface Ident {
  kind?: string;
  namespace?: string;
  name?: string;
}

/** A validated object. `raw` is the document with nulls removed and namespace defaulted. */
export interface Entry<T> {
  origin: Origin;
  kind: string;
  apiVersion: string;
  /** metadata.namespace (defaulted to "default") for namespaced kinds; undefined otherwise. */
  namespace: string | undefined;
  name: string;
  value: T;
  raw: Record<string, unknown>;
}

/** A warning with a sort key. */
export interface Warning {
  file: string;
  documentIndex: number;
  text: string;
}

export function makeError(
  origin: Origin,
  ident: Ident,
  path: readonly PathSegment[],
  detail: string,
): ManifestError {
  const full = [...origin.pathPrefix, ...path];
  const line = origin.locate?.(full) ?? origin.line;
  return new ManifestError({
    file: origin.file,
    documentIndex: origin.documentIndex,
    ...(ident.kind !== undefined ? { kind: ident.kind } : {}),
    ...(ident.namespace !== undefined ? { namespace: ident.namespace } : {}),
    ...(ident.name !== undefined ? { objectName: ident.name } : {}),
    fieldPath: formatFieldPath(full),
    detail,
    ...(line !== undefined ? { line } : {}),
  });
}

export function makeWarning(
  origin: Origin | null,
  ident: Ident,
  path: readonly PathSegment[],
  detail: string,
): Warning {
  if (origin === null) return { file: '', documentIndex: 0, text: detail };
  const where = formatLocation({
    file: origin.file,
    documentIndex: origin.documentIndex,
    ...(ident.kind !== undefined ? { kind: ident.kind } : {}),
    ...(ident.namespace !== undefined ? { namespace: ident.namespace } : {}),
    ...(ident.name !== undefined ? { objectName: ident.name } : {}),
  });
  const field = formatFieldPath([...origin.pathPrefix, ...path]);
  return {
    file: origin.file,
    documentIndex: origin.documentIndex,
    text: `${where}: ${field ? `${field}: ` : ''}${detail}`,
  };
}

export function sortWarnings(warnings: readonly Warning[]): string[] {
  const sorted = [...warnings].sort(
    (a, b) =>
      compareStrings(a.file, b.file) ||
      a.documentIndex - b.documentIndex ||
      compareStrings(a.text, b.text),
  );
  return [...new Set(sorted.map((w) => w.text))];
}

// ---------------------------------------------------------------------------------------
// Kinds

export type RawObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
};

interface KindSpec {
  apiVersions: string[];
  /** true: namespaced; false: cluster-scoped; null: no metadata (kubeadm config). */
  namespaced: boolean | null;
  schema: z.ZodType;
}

const V1 = ['v1'];
const APPS = ['apps/v1'];
const NET = ['networking.k8s.io/v1'];
const METALLB = ['metallb.io/v1beta1'];

export const KINDS: Record<string, KindSpec> = {
  ClusterConfiguration: {
    apiVersions: ['kubeadm.k8s.io/v1beta3', 'kubeadm.k8s.io/v1beta4'],
    namespaced: null,
    schema: S.clusterConfigurationSchema,
  },
  Node: { apiVersions: V1, namespaced: false, schema: S.nodeSchema },
  IPPool: {
    apiVersions: ['crd.projectcalico.org/v1', 'projectcalico.org/v3'],
    namespaced: false,
    schema: S.ipPoolSchema,
  },
  IPAMBlock: {
    apiVersions: ['crd.projectcalico.org/v1', 'projectcalico.org/v3'],
    namespaced: false,
    schema: S.ipamBlockSchema,
  },
  Namespace: { apiVersions: V1, namespaced: false, schema: S.namespaceSchema },
  Pod: { apiVersions: V1, namespaced: true, schema: S.podSchema },
  Deployment: { apiVersions: APPS, namespaced: true, schema: S.deploymentSchema },
  DaemonSet: { apiVersions: APPS, namespaced: true, schema: S.daemonSetSchema },
  Service: { apiVersions: V1, namespaced: true, schema: S.serviceSchema },
  ConfigMap: { apiVersions: V1, namespaced: true, schema: S.configMapSchema },
  Secret: { apiVersions: V1, namespaced: true, schema: S.secretSchema },
  Ingress: { apiVersions: NET, namespaced: true, schema: S.ingressSchema },
  IngressClass: { apiVersions: NET, namespaced: false, schema: S.ingressClassSchema },
  NetworkPolicy: { apiVersions: NET, namespaced: true, schema: S.networkPolicySchema },
  IPAddressPool: { apiVersions: METALLB, namespaced: true, schema: S.ipAddressPoolSchema },
  L2Advertisement: { apiVersions: METALLB, namespaced: true, schema: S.l2AdvertisementSchema },
};

/** The validated objects of a set of manifests, by kind, in input order. */
export interface Catalog {
  clusterConfigurations: Entry<S.ClusterConfigurationInput>[];
  nodes: Entry<S.NodeInput>[];
  ipPools: Entry<S.IPPoolInput>[];
  ipamBlocks: Entry<S.IPAMBlockInput>[];
  namespaces: Entry<S.NamespaceInput>[];
  pods: Entry<S.PodInput>[];
  deployments: Entry<S.DeploymentInput>[];
  daemonSets: Entry<S.DaemonSetInput>[];
  services: Entry<S.ServiceInput>[];
  configMaps: Entry<RawObject>[];
  secrets: Entry<RawObject>[];
  ingresses: Entry<RawObject>[];
  ingressClasses: Entry<RawObject>[];
  networkPolicies: Entry<RawObject>[];
  ipAddressPools: Entry<RawObject>[];
  l2Advertisements: Entry<RawObject>[];
}

const CATALOG_KEY: Record<string, keyof Catalog> = {
  ClusterConfiguration: 'clusterConfigurations',
  Node: 'nodes',
  IPPool: 'ipPools',
  IPAMBlock: 'ipamBlocks',
  Namespace: 'namespaces',
  Pod: 'pods',
  Deployment: 'deployments',
  DaemonSet: 'daemonSets',
  Service: 'services',
  ConfigMap: 'configMaps',
  Secret: 'secrets',
  Ingress: 'ingresses',
  IngressClass: 'ingressClasses',
  NetworkPolicy: 'networkPolicies',
  IPAddressPool: 'ipAddressPools',
  L2Advertisement: 'l2Advertisements',
};

function emptyCatalog(): Catalog {
  return {
    clusterConfigurations: [],
    nodes: [],
    ipPools: [],
    ipamBlocks: [],
    namespaces: [],
    pods: [],
    deployments: [],
    daemonSets: [],
    services: [],
    configMaps: [],
    secrets: [],
    ingresses: [],
    ingressClasses: [],
    networkPolicies: [],
    ipAddressPools: [],
    l2Advertisements: [],
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Removes null-valued keys (the API server decodes `field: null` as an absent field). */
export function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = dropNulls(v);
  return out;
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return `a ${typeof v}`;
}

// ---------------------------------------------------------------------------------------
// Per-kind checks that need more than one field

type Check = (
  entry: Entry<never>,
  err: (path: PathSegment[], detail: string) => void,
  warn: (path: PathSegment[], detail: string) => void,
) => void;

function checkPodSpec(
  spec: S.PodSpecInput,
  annotations: Record<string, string> | undefined,
  base: PathSegment[],
  annotationsPath: PathSegment[],
  warn: (path: PathSegment[], detail: string) => void,
): void {
  spec.containers.forEach((c, i) => {
    (c.env ?? []).forEach((e, j) => {
      if (e.valueFrom !== undefined) {
        warn(
          [...base, 'containers', i, 'env', j, 'valueFrom'],
          `ignored (kubewire takes env values only); ${e.name} is ${e.value === undefined ? 'unset' : 'set from value'}`,
        );
      }
    });
  });
  if (spec.hostNetwork && annotations?.[S.IP_ADDRS_ANNOTATION] !== undefined) {
    warn(
      [...annotationsPath, S.IP_ADDRS_ANNOTATION],
      'ignored for a hostNetwork pod (it uses the node IP)',
    );
  }
}

function checkWorkloadSelector(
  selector: S.LabelSelectorInput,
  labels: Record<string, string> | undefined,
  err: (path: PathSegment[], detail: string) => void,
): void {
  if (isEmptyLabelSelector(selector)) {
    err(['spec', 'selector'], 'empty selector is invalid: it must match the template labels');
  } else if (!matchesLabelSelector(selector, labels ?? {})) {
    err(['spec', 'template', 'metadata', 'labels'], '`selector` does not match template `labels`');
  }
}

const CHECKS: Record<string, Check> = {
  Pod: (entry, _err, warn) => {
    const pod = entry.value as S.PodInput;
    checkPodSpec(pod.spec, pod.metadata.annotations, ['spec'], ['metadata', 'annotations'], warn);
  },
  Deployment: (entry, err, warn) => {
    const d = entry.value as S.DeploymentInput;
    checkWorkloadSelector(d.spec.selector, d.spec.template.metadata?.labels, err);
    const t = d.spec.template;
    checkPodSpec(
      t.spec,
      t.metadata?.annotations,
      ['spec', 'template', 'spec'],
      ['spec', 'template', 'metadata', 'annotations'],
      warn,
    );
  },
  DaemonSet: (entry, err, warn) => {
    const d = entry.value as S.DaemonSetInput;
    checkWorkloadSelector(d.spec.selector, d.spec.template.metadata?.labels, err);
    const t = d.spec.template;
    checkPodSpec(
      t.spec,
      t.metadata?.annotations,
      ['spec', 'template', 'spec'],
      ['spec', 'template', 'metadata', 'annotations'],
      warn,
    );
  },
  Service: (entry, err, warn) => checkService(entry.value as S.ServiceInput, err, warn),
  Node: (entry, err, warn) => {
    const spec = (entry.value as S.NodeInput).spec;
    if (
      spec?.podCIDR !== undefined &&
      spec.podCIDRs !== undefined &&
      spec.podCIDRs[0] !== spec.podCIDR
    ) {
      err(['spec', 'podCIDRs', 0], `must match spec.podCIDR (${spec.podCIDR})`);
    }
    const cidr = spec?.podCIDR ?? spec?.podCIDRs?.[0];
    const r = cidr === undefined ? null : parseCidrStrict(cidr);
    if (r !== null && !r.ok && r.reason === 'ipv6') {
      const field = spec?.podCIDR !== undefined ? ['spec', 'podCIDR'] : ['spec', 'podCIDRs', 0];
      warn(field, `IPv6 pod CIDR ${cidr} ignored (kubewire emulates IPv4)`);
    }
  },
  IPPool: (entry, err, warn) => {
    const spec = (entry.value as S.IPPoolInput).spec;
    const r = parseCidrStrict(spec.cidr);
    if (!r.ok) return; // IPv6: the builder skips the pool with a warning
    const blockSize = spec.blockSize ?? 26;
    if (blockSize < 20 || blockSize > 32) {
      err(['spec', 'blockSize'], `IPv4 block size must be between 20 and 32, got ${blockSize}`);
    } else if (blockSize < r.cidr.prefix) {
      err(['spec', 'blockSize'], `block size /${blockSize} is larger than the pool ${spec.cidr}`);
    }
    if (spec.vxlanMode !== undefined && spec.vxlanMode !== 'Never') {
      warn(['spec', 'vxlanMode'], `${spec.vxlanMode} ignored (kubewire emulates IPIP only)`);
    }
  },
  IPAddressPool: (entry, err, warn) => {
    const spec = (entry.value as S.IPAddressPoolInput).spec;
    spec.addresses.forEach((text, i) => {
      const r = parseAddressEntry(text);
      if (r.ok) return;
      if (r.ipv6) warn(['spec', 'addresses', i], `${r.detail} ignored (kubewire emulates IPv4)`);
      else err(['spec', 'addresses', i], r.detail);
    });
  },
  IPAMBlock: (entry, err) => {
    const spec = (entry.value as S.IPAMBlockInput).spec;
    const r = parseCidrStrict(spec.cidr);
    if (!r.ok) return; // IPv6: the builder skips the block with a warning
    if (spec.affinity !== undefined) {
      const host = spec.affinity.startsWith(S.IPAM_BLOCK_AFFINITY_PREFIX)
        ? spec.affinity.slice(S.IPAM_BLOCK_AFFINITY_PREFIX.length)
        : null;
      if (host === null || !S.isDns1123Subdomain(host)) {
        err(
          ['spec', 'affinity'],
          `expected "host:<node name>", got ${JSON.stringify(spec.affinity)}`,
        );
      }
    }
    if (r.cidr.prefix < 20) {
      err(['spec', 'cidr'], `IPv4 block size must be between 20 and 32, got /${r.cidr.prefix}`);
      return;
    }
    const size = 2 ** (32 - r.cidr.prefix);
    if (spec.allocations.length !== size) {
      err(
        ['spec', 'allocations'],
        `expected ${size} entries (one per address of the /${r.cidr.prefix} block), got ${spec.allocations.length}`,
      );
    }
    const attributes = spec.attributes?.length ?? 0;
    spec.allocations.forEach((a, i) => {
      if (a !== null && a >= attributes) {
        err(
          ['spec', 'allocations', i],
          `attribute index ${a} is out of range (spec.attributes has ${attributes} entr${attributes === 1 ? 'y' : 'ies'})`,
        );
      }
    });
    (spec.unallocated ?? []).forEach((u, i) => {
      if (u >= size) {
        err(
          ['spec', 'unallocated', i],
          `ordinal ${u} is out of range (the block has ${size} addresses, 0-${size - 1})`,
        );
      } else if (u < spec.allocations.length && spec.allocations[u] !== null) {
        err(['spec', 'unallocated', i], `ordinal ${u} is listed as free but is allocated`);
      }
    });
  },
  ClusterConfiguration: (entry, err, warn) => {
    const net = (entry.value as S.ClusterConfigurationInput).networking;
    for (const field of ['podSubnet', 'serviceSubnet'] as const) {
      const text = net?.[field];
      if (text === undefined) continue;
      const parts = text.split(',').map((p) => p.trim());
      const v6 = parts.filter((p) => !parseCidrStrict(p).ok && p.includes(':'));
      const v4 = parts.filter((p) => parseCidrStrict(p).ok);
      if (v6.length > 0)
        warn(
          ['networking', field],
          `IPv6 subnet ${v6.join(', ')} ignored (kubewire emulates IPv4)`,
        );
      if (v4.length === 0 && v6.length > 0) err(['networking', field], 'has no IPv4 subnet');
      if (v4.length > 1)
        err(['networking', field], `at most one IPv4 subnet is allowed, got ${v4.join(', ')}`);
    }
  },
};

// ---------------------------------------------------------------------------------------

export interface ValidationResult {
  catalog: Catalog;
  errors: ManifestError[];
  warnings: Warning[];
}

/** A document that validated without a problem: what its Entry holds besides the origin. */
export interface ValidDocument {
  kind: string;
  apiVersion: string;
  namespace: string | undefined;
  name: string;
  value: unknown;
  raw: Record<string, unknown>;
}

/** A validated document and its JSON text. */
export interface CachedDocument {
  json: string;
  doc: ValidDocument;
}

/**
 * Documents validated by an earlier run: a document validates the same whenever its text
 * is the same, wherever it is. Keyed by kind, namespace and name as written (one entry
 * each; the JSON text decides). Only kinds whose validated objects the cluster state does
 * not hand out (it builds its own) are kept, so that nothing a state exposes is shared
 * with another state.
 */
export interface ValidationCache {
  /** The previous run's documents (looked up). */
  previous: ReadonlyMap<string, CachedDocument> | undefined;
  /** This run's documents (filled in): the next run's `previous`. */
  current: Map<string, CachedDocument>;
}

const CACHED_KINDS = new Set([
  'Namespace',
  'Node',
  'Pod',
  'Deployment',
  'DaemonSet',
  'Service',
  'IPPool',
  'IPAMBlock',
  'ClusterConfiguration',
]);

/**
 * Validates every document (expanding `kind: List`), collecting all errors and warnings.
 * Unknown kinds and unsupported apiVersions are skipped with a warning.
 */
export function validateDocuments(
  docs: readonly ManifestDocument[],
  cache?: ValidationCache,
): ValidationResult {
  const catalog = emptyCatalog();
  const errors: ManifestError[] = [];
  const warnings: Warning[] = [];

  const visit = (object: unknown, origin: Origin): void => {
    // A document validated before (same kind, same text) is taken as it was.
    let key: string | undefined;
    let json = '';
    if (
      cache !== undefined &&
      isPlainObject(object) &&
      typeof object.kind === 'string' &&
      CACHED_KINDS.has(object.kind)
    ) {
      const meta = isPlainObject(object.metadata) ? object.metadata : {};
      key = `${object.kind}/${String(meta.namespace)}/${String(meta.name)}`;
      json = JSON.stringify(object);
      const known = cache.previous?.get(key);
      if (known !== undefined && known.json === json && !cache.current.has(key)) {
        cache.current.set(key, known);
        const doc = known.doc;
        (catalog[CATALOG_KEY[doc.kind]!] as Entry<unknown>[]).push({ origin, ...doc });
        return;
      }
    }
    const before = errors.length + warnings.length;
    const entry = validateObject(object, origin);
    if (entry === null || key === undefined || errors.length + warnings.length !== before) return;
    // A second document of that kind and name (refused later as a duplicate) is not kept.
    if (cache!.current.has(key)) return;
    cache!.current.set(key, {
      json,
      doc: {
        kind: entry.kind,
        apiVersion: entry.apiVersion,
        namespace: entry.namespace,
        name: entry.name,
        value: entry.value,
        raw: entry.raw,
      },
    });
  };

  /** Validates one object (a List: its items); the Entry added to the catalog, if any. */
  const validateObject = (object: unknown, origin: Origin): Entry<unknown> | null => {
    const noIdent: Ident = {};
    if (!isPlainObject(object)) {
      errors.push(
        makeError(
          origin,
          noIdent,
          [],
          `expected a Kubernetes object (a map with apiVersion and kind), got ${describeType(object)}`,
        ),
      );
      return null;
    }
    const apiVersion = object.apiVersion;
    const kind = object.kind;
    if (typeof apiVersion !== 'string' || typeof kind !== 'string' || !apiVersion || !kind) {
      if (typeof apiVersion !== 'string' || !apiVersion) {
        errors.push(
          makeError(origin, noIdent, ['apiVersion'], 'required field is missing or not a string'),
        );
      }
      if (typeof kind !== 'string' || !kind) {
        errors.push(
          makeError(origin, noIdent, ['kind'], 'required field is missing or not a string'),
        );
      }
      return null;
    }
    if (kind === 'List' && apiVersion === 'v1') {
      const items = object.items;
      if (!Array.isArray(items)) {
        errors.push(makeError(origin, { kind }, ['items'], 'expected a list of objects'));
        return null;
      }
      items.forEach((item, i) => {
        if (item === null) return;
        validateObject(item, { ...origin, pathPrefix: [...origin.pathPrefix, 'items', i] });
      });
      return null;
    }
    const spec = KINDS[kind];
    if (!spec || !spec.apiVersions.includes(apiVersion)) {
      const why = spec
        ? `apiVersion ${apiVersion} of kind ${kind} is not supported (kubewire reads ${spec.apiVersions.join(', ')}), skipped`
        : `kind ${kind} (apiVersion ${apiVersion}) is not supported, skipped`;
      warnings.push(makeWarning(origin, {}, [], why));
      return null;
    }

    const cleaned = dropNulls(object) as Record<string, unknown>;
    const meta = isPlainObject(cleaned.metadata) ? cleaned.metadata : {};
    const name = typeof meta.name === 'string' ? meta.name : undefined;
    let namespace: string | undefined;
    if (spec.namespaced === true) {
      namespace =
        typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
    }
    const ident: Ident = {
      kind,
      ...(namespace !== undefined ? { namespace } : {}),
      ...(name !== undefined ? { name } : {}),
    };

    const parsed = spec.schema.safeParse(cleaned, { error: S.errorMap });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        errors.push(makeError(origin, ident, issue.path as PathSegment[], issue.message));
      }
      return null;
    }
    const raw = cleaned;
    if (spec.namespaced === true) {
      raw.metadata = { ...meta, namespace };
    }
    const entry: Entry<unknown> = {
      origin,
      kind,
      apiVersion,
      namespace,
      name: name ?? '',
      value: parsed.data,
      raw,
    };
    let failed = false;
    const check = CHECKS[kind];
    check?.(
      entry as Entry<never>,
      (path, detail) => {
        failed = true;
        errors.push(makeError(origin, ident, path, detail));
      },
      (path, detail) => warnings.push(makeWarning(origin, ident, path, detail)),
    );
    if (failed) return null;
    (catalog[CATALOG_KEY[kind]!] as Entry<unknown>[]).push(entry);
    return entry;
  };

  for (const doc of docs) {
    visit(doc.object, {
      file: doc.file,
      documentIndex: doc.index,
      pathPrefix: [],
      ...(doc.line !== undefined ? { line: doc.line } : {}),
      ...(doc.locate !== undefined ? { locate: doc.locate } : {}),
    });
  }
  return { catalog, errors, warnings };
}
