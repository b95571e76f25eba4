/**
 * The routing table: Ingresses → servers (one per host) → ordered locations → upstream,
 * built the way ingress-nginx builds nginx.conf, so a request goes where it would go in a
 * real cluster. Compiled once per change; matching a request does no string building.
 *
 * Sources (ingress-nginx, internal/ingress/controller): controller.go createServers and
 * getBackendServers (root location per host, first Ingress wins a path, locations sorted
 * longest first), location.go updateServerLocations (Prefix /foo → `/foo/` plus `= /foo`),
 * template/template.go buildLocation / enforceRegexModifier / needsRewrite /
 * buildProxyPass / buildServerName, store.go SetDefaultNGINXPathType
 * (ImplementationSpecific is Prefix). nginx: ngx_http_core_module `location`,
 * ngx_http_rewrite_module `rewrite`, `server_name`.
 */
import {
  ManifestError,
  ManifestErrors,
  formatFieldPath,
  type ClusterState,
} from '../cluster/index.js';
import type { PathSegment } from '../cluster/index.js';
import { DEFAULT_SETTINGS, parseAnnotations, type LocationSettings } from './annotations.js';
import { BackendResolver, type Endpoint } from './backends.js';
import { certificateCoversHost, tlsFromSecret, type TlsCertificate } from './certs.js';
import type { IngressObject, ManualEndpoints, ObjectOrigin, ServiceBackendRef } from './model.js';
import {
  compileNginxRegex,
  compileTemplate,
  expandTemplate,
  parseTarget,
  toByteString,
  type TemplatePart,
} from './uri.js';

export const DEFAULT_SERVER = '_';
export const DEFAULT_UPSTREAM = 'upstream-default-backend';

export interface Upstream {
  name: string;
  namespace: string;
  service: string;
  port: number | string;
  endpoints: Endpoint[];
  /** Why there are no endpoints. */
  problem: string | null;
  /** Round-robin cursor. */
  next: number;
}

export interface Rewrite {
  /** `rewrite "(?i)<path>" <target> break;` — not anchored, as nginx writes it. */
  regex: RegExp;
  target: string;
  parts: TemplatePart[];
  /** A target starting with http://, https:// or $scheme makes nginx answer with a redirect. */
  redirect: boolean;
}

export interface Location {
  /** The nginx location path (`/foo/` for Prefix /foo). */
  path: string;
  /** `path` as the bytes nginx compares (UTF-8 as latin1). */
  bytes: string;
  /** The path as written in the Ingress. */
  ingressPath: string;
  pathType: 'Exact' | 'Prefix';
  /** How nginx.conf writes it: `= /foo`, `/foo/` or `~* "^/foo"`. */
  nginx: string;
  regex: RegExp | null;
  /** null: the default backend (404). */
  upstream: Upstream | null;
  isDefBackend: boolean;
  /** `namespace/name` of the Ingress that defined it (null for the built-in default). */
  ingress: string | null;
  settings: LocationSettings;
  rewrite: Rewrite | null;
}

export interface Server {
  hostname: string;
  enforceRegex: boolean;
  /** In nginx.conf order. */
  locations: Location[];
  /** Without regex: `=` locations by path, and prefix locations longest first. */
  exact: Map<string, Location>;
  prefixes: Location[];
  /** The certificate (`default` = the fake one), or null: not in any TLS section. */
  tls: TlsCertificate | 'default' | null;
}

export interface IngressConfig {
  servers: Map<string, Server>;
  /** `*.example.com` servers, as `suffix` ('.example.com') in hostname order. */
  wildcards: { suffix: string; server: Server }[];
  defaultServer: Server;
  upstreams: Map<string, Upstream>;
  /** Ingresses this controller serves / ignores (with why), `namespace/name`. */
  accepted: string[];
  ignored: { ingress: string; reason: string }[];
  warnings: string[];
}

export interface ClassOptions {
  /** --ingress-class (the legacy annotation's value), default `nginx`. */
  ingressClass?: string;
  /** --controller-class, default `k8s.io/ingress-nginx`. */
  controllerClass?: string;
  /** --watch-ingress-without-class, default false. */
  watchWithoutClass?: boolean;
}

export interface CompileOptions extends ClassOptions {
  /** Nodes that are down: their pods are no endpoints. */
  downNodes?: readonly string[];
}

const IS_DEFAULT_CLASS = 'ingressclass.kubernetes.io/is-default-class';
const CLASS_ANNOTATION = 'kubernetes.io/ingress.class';

function meta(o: unknown): {
  name: string;
  namespace: string;
  annotations: Record<string, string>;
} {
  const m = ((o as { metadata?: unknown }).metadata ?? {}) as Record<string, unknown>;
  return {
    name: String(m.name ?? ''),
    namespace: typeof m.namespace === 'string' ? m.namespace : 'default',
    annotations: (m.annotations ?? {}) as Record<string, string>,
  };
}

/**
 * Does this controller serve the Ingress? As ingress-nginx (store.go, ingressclass.go):
 * the legacy annotation `kubernetes.io/ingress.class` decides when present (value =
 * --ingress-class); else `spec.ingressClassName` must name an IngressClass whose
 * spec.controller is --controller-class. An Ingress with neither gets the default
 * IngressClass (annotation ingressclass.kubernetes.io/is-default-class: "true"), as the
 * API server's DefaultIngressClass admission plugin would have set it; with no default
 * it is ignored unless --watch-ingress-without-class.
 */
export function classDecision(
  ing: IngressObject,
  ingressClasses: readonly unknown[],
  opts: ClassOptions = {},
): { accepted: boolean; reason: string } {
  const ingressClass = opts.ingressClass ?? 'nginx';
  const controller = opts.controllerClass ?? 'k8s.io/ingress-nginx';
  const annotation = ing.annotations[CLASS_ANNOTATION];
  if (annotation !== undefined) {
    return annotation === ingressClass
      ? { accepted: true, reason: `annotation ${CLASS_ANNOTATION}: ${annotation}` }
      : {
          accepted: false,
          reason: `annotation ${CLASS_ANNOTATION}: ${annotation} (this controller is class ${ingressClass})`,
        };
  }
  let className = ing.ingressClassName;
  let how = 'spec.ingressClassName';
  if (className === null) {
    const defaults = ingressClasses
      .filter((c) => meta(c).annotations[IS_DEFAULT_CLASS] === 'true')
      .map((c) => meta(c).name)
      .sort();
    if (defaults.length > 0) {
      className = defaults[0]!;
      how = 'default IngressClass';
    } else if (opts.watchWithoutClass) {
      return { accepted: true, reason: 'no class (--watch-ingress-without-class)' };
    } else {
      return {
        accepted: false,
        reason: 'no ingressClassName, no class annotation and no default IngressClass',
      };
    }
  }
  const ic = ingressClasses.find((c) => meta(c).name === className);
  if (!ic) return { accepted: false, reason: `IngressClass ${className} not found` };
  const spec = ((ic as { spec?: unknown }).spec ?? {}) as { controller?: unknown };
  return spec.controller === controller
    ? { accepted: true, reason: `${how} ${className} (controller ${controller})` }
    : { accepted: false, reason: `${how} ${className} has controller ${String(spec.controller)}` };
}

function compareIngresses(a: IngressObject, b: IngressObject): number {
  const ta = a.creationTimestamp ? Date.parse(a.creationTimestamp) : 0;
  const tb = b.creationTimestamp ? Date.parse(b.creationTimestamp) : 0;
  if (ta !== tb) return ta - tb;
  const ka = `${a.namespace}/${a.name}`;
  const kb = `${b.namespace}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function needsRewrite(path: string, s: LocationSettings): boolean {
  return s.rewriteTarget !== null && s.rewriteTarget !== path;
}

function normalizePrefixPath(path: string): string {
  return path === '/' || path.endsWith('/') ? path : `${path}/`;
}

interface Draft {
  path: string;
  ingressPath: string;
  pathType: 'Exact' | 'Prefix';
  upstream: Upstream | null;
  isDefBackend: boolean;
  ing: IngressObject | null;
  settings: LocationSettings;
  /** Where the path was written (for regex errors). */
  field: PathSegment[] | null;
}

/**
 * Builds the routing table. Throws ManifestErrors when an accepted Ingress has an
 * annotation value that does not parse or a path nginx could not compile as a regex.
 */
export function compileRoutes(
  ingresses: readonly IngressObject[],
  state: ClusterState,
  manual: readonly ManualEndpoints[],
  opts: CompileOptions = {},
): IngressConfig {
  const warnings: string[] = [];
  const errors: ManifestError[] = [];
  const accepted: IngressObject[] = [];
  const ignored: { ingress: string; reason: string }[] = [];
  for (const ing of ingresses) {
    const d = classDecision(ing, state.ingressClasses, opts);
    if (d.accepted) accepted.push(ing);
    else ignored.push({ ingress: `${ing.namespace}/${ing.name}`, reason: d.reason });
  }
  accepted.sort(compareIngresses);

  const errAt = (ing: IngressObject, path: PathSegment[], detail: string): void => {
    const o: ObjectOrigin = ing.origin;
    const full = [...o.pathPrefix, ...path];
    const line = o.locate?.(full);
    errors.push(
      new ManifestError({
        file: o.file,
        documentIndex: o.documentIndex,
        kind: 'Ingress',
        namespace: ing.namespace,
        objectName: ing.name,
        fieldPath: formatFieldPath(full),
        detail,
        ...(line !== undefined ? { line } : {}),
      }),
    );
  };

  const settingsOf = new Map<IngressObject, LocationSettings>();
  for (const ing of accepted) {
    const { settings, problems, unsupported } = parseAnnotations(ing.annotations);
    for (const p of problems) errAt(ing, ['metadata', 'annotations', p.key], p.detail);
    if (unsupported.length > 0) {
      warnings.push(
        `Ingress ${ing.namespace}/${ing.name}: annotations not supported by kubewire, ignored: ${unsupported.join(', ')}`,
      );
    }
    settingsOf.set(ing, settings);
  }

  const resolver = new BackendResolver(state, manual, opts.downNodes ?? []);
  const upstreams = new Map<string, Upstream>();
  const upstreamOf = (ing: IngressObject, ref: ServiceBackendRef): Upstream => {
    const r = resolver.resolve(ing.namespace, ref);
    let u = upstreams.get(r.upstream);
    if (!u) {
      u = {
        name: r.upstream,
        namespace: r.namespace,
        service: r.service,
        port: r.port,
        endpoints: r.endpoints,
        problem: r.problem,
        next: 0,
      };
      upstreams.set(u.name, u);
      if (r.problem) warnings.push(`upstream ${u.name}: ${r.problem}`);
    }
    return u;
  };

  const rootDraft = (
    upstream: Upstream | null,
    ing: IngressObject | null,
    settings: LocationSettings,
  ): Draft => ({
    path: '/',
    ingressPath: '/',
    pathType: 'Prefix',
    upstream,
    isDefBackend: true,
    ing,
    settings,
    field: null,
  });
  const drafts = new Map<string, { draft: Draft[]; tls: Server['tls'] }>();
  drafts.set(DEFAULT_SERVER, { draft: [rootDraft(null, null, DEFAULT_SETTINGS)], tls: null });

  // Servers, with a root location (createServers).
  for (const ing of accepted) {
    const settings = settingsOf.get(ing)!;
    let un: Upstream | null = null;
    if (ing.defaultBackend) {
      un = upstreamOf(ing, ing.defaultBackend);
      const defLoc = drafts.get(DEFAULT_SERVER)!.draft[0]!;
      if (defLoc.isDefBackend && ing.rules.length === 0) {
        defLoc.upstream = un;
        defLoc.isDefBackend = false;
        defLoc.ing = ing;
        defLoc.settings = settings;
      }
    }
    for (const rule of ing.rules) {
      const host = rule.host || DEFAULT_SERVER;
      if (drafts.has(host)) continue;
      drafts.set(host, { draft: [rootDraft(un, ing, settings)], tls: null });
    }
  }

  // Locations (getBackendServers): the first Ingress (oldest, then by name) wins a path.
  for (const ing of accepted) {
    const settings = settingsOf.get(ing)!;
    ing.rules.forEach((rule) => {
      const host = rule.host || DEFAULT_SERVER;
      const server = drafts.get(host)!;
      for (const p of rule.paths ?? []) {
        if (p.backend === null) {
          warnings.push(
            `Ingress ${ing.namespace}/${ing.name}: ${formatFieldPath([...p.field, 'backend', 'resource'])}: resource backends are not supported, using the default backend`,
          );
          continue;
        }
        const upstream = upstreamOf(ing, p.backend);
        const nginxPath = p.path === '' ? '/' : p.path;
        const pathType = p.pathType === 'Exact' ? 'Exact' : 'Prefix';
        let add = true;
        for (const loc of server.draft) {
          if (loc.path !== nginxPath) continue;
          if (loc.pathType !== pathType) break;
          add = false;
          if (!loc.isDefBackend) {
            warnings.push(
              `Ingress ${ing.namespace}/${ing.name}: location ${pathType} ${nginxPath} of server ${host} is already defined by Ingress ${loc.ing ? `${loc.ing.namespace}/${loc.ing.name}` : '?'}, ignored`,
            );
            break;
          }
          Object.assign(loc, {
            upstream,
            isDefBackend: false,
            ing,
            settings,
            field: p.field,
            ingressPath: nginxPath,
          });
          break;
        }
        if (add) {
          server.draft.push({
            path: nginxPath,
            ingressPath: nginxPath,
            pathType,
            upstream,
            isDefBackend: false,
            ing,
            settings,
            field: p.field,
          });
        }
      }
    });
  }

  // TLS (createServers, second pass).
  const secrets = new Map<string, Record<string, unknown>>();
  for (const s of state.secrets)
    secrets.set(`${meta(s).namespace}/${meta(s).name}`, s as Record<string, unknown>);
  const tlsCache = new Map<string, TlsCertificate | { error: string }>();
  const loadTls = (key: string): TlsCertificate | { error: string } => {
    let t = tlsCache.get(key);
    if (!t) {
      const secret = secrets.get(key);
      t = secret ? tlsFromSecret(key, secret) : { error: 'not found' };
      tlsCache.set(key, t);
    }
    return t;
  };
  for (const ing of accepted) {
    for (const rule of ing.rules) {
      const host = rule.host || DEFAULT_SERVER;
      const server = drafts.get(host)!;
      if (server.tls !== null || ing.tls.length === 0) continue;
      // extractTLSSecretName: a TLS entry naming the host, else a certificate covering it.
      let secretName = '';
      const lower = host.toLowerCase();
      for (const t of ing.tls)
        if (t.hosts.some((h) => h.toLowerCase() === lower)) {
          secretName = t.secretName;
          break;
        }
      if (secretName === '') {
        for (const t of ing.tls) {
          if (t.secretName === '') continue;
          const c = loadTls(`${ing.namespace}/${t.secretName}`);
          if (!('error' in c) && certificateCoversHost(c, host)) {
            secretName = t.secretName;
            break;
          }
        }
      }
      if (secretName === '') {
        server.tls = 'default';
        continue;
      }
      const key = `${ing.namespace}/${secretName}`;
      const cert = loadTls(key);
      if ('error' in cert) {
        warnings.push(
          `server ${host}: SSL certificate Secret ${key} ${cert.error}, using the default certificate`,
        );
        server.tls = 'default';
      } else if (!certificateCoversHost(cert, host)) {
        warnings.push(
          `server ${host}: SSL certificate ${key} does not contain a Common Name or Subject Alternative Name for ${host}, using the default certificate`,
        );
        server.tls = 'default';
      } else server.tls = cert;
    }
  }

  // Order, Prefix expansion, regex modifier, rewrites.
  const servers = new Map<string, Server>();
  for (const [hostname, { draft, tls }] of [...drafts].sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  )) {
    draft.sort((a, b) => (a.path > b.path ? -1 : a.path < b.path ? 1 : 0));
    draft.sort((a, b) => b.path.length - a.path.length);
    const exactPaths = new Set(draft.filter((d) => d.pathType === 'Exact').map((d) => d.path));
    const expanded: Draft[] = [];
    for (const d of draft) {
      if (
        d.path === '/' ||
        d.pathType !== 'Prefix' ||
        needsRewrite(d.path, d.settings) ||
        d.settings.useRegex
      ) {
        expanded.push(d);
        continue;
      }
      const exact: Draft = { ...d, pathType: 'Exact' };
      d.path = normalizePrefixPath(d.path);
      expanded.push(d);
      if (!exactPaths.has(exact.path)) expanded.push(exact);
    }
    const enforceRegex = expanded.some(
      (d) => needsRewrite(d.path, d.settings) || d.settings.useRegex,
    );
    const locations: Location[] = [];
    for (const d of expanded) {
      let regex: RegExp | null = null;
      let rewrite: Rewrite | null = null;
      const bytes = toByteString(d.path);
      try {
        if (enforceRegex) regex = compileNginxRegex(bytes, true);
        if (needsRewrite(d.path, d.settings)) {
          const rx = compileNginxRegex(`(?i)${bytes}`, false);
          const groups = new Set(Object.keys(new RegExp(`${rx.source}|`).exec('')?.groups ?? {}));
          const target = d.settings.rewriteTarget!;
          rewrite = {
            regex: rx,
            target,
            parts: compileTemplate(toByteString(target), groups),
            redirect: /^(https?:\/\/|\$scheme)/.test(target),
          };
        }
      } catch (e) {
        if (d.ing && d.field) {
          errAt(
            d.ing,
            [...d.field, 'path'],
            `${JSON.stringify(d.path)} is used as a regular expression on host ${hostname} (use-regex or rewrite-target is set for it) and does not compile: ${(e as Error).message}`,
          );
        } else warnings.push(`server ${hostname}: location ${d.path}: ${(e as Error).message}`);
        continue;
      }
      locations.push({
        path: d.path,
        bytes,
        ingressPath: d.ingressPath,
        pathType: d.pathType,
        nginx: enforceRegex ? `~* "^${d.path}"` : d.pathType === 'Exact' ? `= ${d.path}` : d.path,
        regex,
        upstream: d.upstream,
        isDefBackend: d.isDefBackend,
        ingress: d.ing ? `${d.ing.namespace}/${d.ing.name}` : null,
        settings: d.settings,
        rewrite,
      });
    }
    const exact = new Map<string, Location>();
    const prefixes: Location[] = [];
    if (!enforceRegex) {
      for (const l of locations) {
        if (l.pathType === 'Exact') {
          if (!exact.has(l.bytes)) exact.set(l.bytes, l);
        } else prefixes.push(l);
      }
      prefixes.sort((a, b) => b.bytes.length - a.bytes.length);
    }
    servers.set(hostname, { hostname, enforceRegex, locations, exact, prefixes, tls });
  }
  if (errors.length > 0) throw new ManifestErrors(errors);

  const wildcards: { suffix: string; server: Server }[] = [];
  for (const [hostname, server] of servers) {
    if (hostname.startsWith('*.'))
      wildcards.push({ suffix: hostname.slice(1).toLowerCase(), server });
  }
  return {
    servers,
    wildcards,
    defaultServer: servers.get(DEFAULT_SERVER)!,
    upstreams,
    accepted: accepted.map((i) => `${i.namespace}/${i.name}`),
    ignored,
    warnings,
  };
}

// ---------------------------------------------------------------------------------------
// Matching

const WILDCARD_LABEL = /^[\w-]+$/;

/**
 * The server for a Host (lowercase, without port): exact name, then a wildcard
 * `*.example.com` (one label, as ingress-nginx's `~^(?<subdomain>[\w-]+)\.example\.com$`),
 * then the default server `_`.
 */
export function findServer(config: IngressConfig, host: string): Server {
  const exact = config.servers.get(host);
  if (exact && host !== DEFAULT_SERVER) return exact;
  for (const w of config.wildcards) {
    if (host.length > w.suffix.length && host.endsWith(w.suffix)) {
      if (WILDCARD_LABEL.test(host.slice(0, host.length - w.suffix.length))) return w.server;
    }
  }
  return config.defaultServer;
}

/**
 * The location for a normalized URI, as nginx picks it: with regex locations, the first
 * that matches in order; otherwise an exact (`=`) location, else the longest prefix.
 */
export function findLocation(server: Server, uri: string): Location | null {
  if (server.enforceRegex) {
    for (const l of server.locations) if (l.regex!.test(uri)) return l;
    return null;
  }
  const exact = server.exact.get(uri);
  if (exact) return exact;
  for (const l of server.prefixes) if (uri.startsWith(l.bytes)) return l;
  return null;
}

/** Round robin over the upstream's endpoints (ingress-nginx's default load-balance). */
export function nextEndpoint(u: Upstream): Endpoint | null {
  const n = u.endpoints.length;
  if (n === 0) return null;
  const e = u.endpoints[u.next % n]!;
  u.next = (u.next + 1) % n;
  return e;
}

export interface RouteExplanation {
  server: string;
  /** The location as nginx.conf writes it; null: no location matched (404). */
  location: string | null;
  ingress: string | null;
  upstream: string;
  /** The path sent upstream (after the rewrite), or the redirect target of a URL rewrite. */
  path: string | null;
}

/**
 * Where a request would go: server, location, upstream and the path the backend sees.
 * For tests and `kubewire ingress-conf --explain`; the proxy does the same per request.
 */
export function explainRoute(
  config: IngressConfig,
  host: string,
  target: string,
): RouteExplanation {
  const t = parseTarget(target);
  const server = findServer(config, (t?.host ?? host).toLowerCase().replace(/:\d+$/, ''));
  const loc = t ? findLocation(server, t.uri) : null;
  if (!t || !loc)
    return { server: server.hostname, location: null, ingress: null, upstream: '-', path: null };
  let path = target;
  if (loc.rewrite) {
    const m = loc.rewrite.regex.exec(t.uri);
    if (m) {
      const out = expandTemplate(loc.rewrite.parts, m, (v) =>
        v === 'scheme' ? 'http' : v === 'host' ? host : '',
      );
      path = loc.rewrite.redirect || out.includes('?') || t.args === '' ? out : `${out}?${t.args}`;
    }
  }
  return {
    server: server.hostname,
    location: loc.nginx,
    ingress: loc.ingress,
    upstream: loc.upstream?.name ?? DEFAULT_UPSTREAM,
    path,
  };
}
