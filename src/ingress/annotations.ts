/**
 * nginx.ingress.kubernetes.io/* annotations → the per-location settings kubewire applies
 * (ingress-nginx internal/ingress/annotations/*, defaults from its ConfigMap defaults,
 * internal/ingress/controller/config/config.go). A value that does not parse is refused
 * with the annotation named, as ingress-nginx's annotation validation does; annotations
 * kubewire does not implement are listed in one warning per Ingress.
 */
import { parseIPv4, type Cidr } from '../cluster/index.js';

export const PREFIX = 'nginx.ingress.kubernetes.io/';

export interface CorsConfig {
  /** ['*'] or a list of origins (scheme://host[:port], wildcard subdomains allowed). */
  allowOrigin: string[];
  allowMethods: string;
  allowHeaders: string;
  allowCredentials: boolean;
  exposeHeaders: string;
  maxAge: number;
}

export interface AffinityConfig {
  cookieName: string;
  /** null: the location's path. */
  path: string | null;
  maxAge: number | null;
  expires: number | null;
  secure: boolean;
  sameSite: string | null;
}

export interface LocationSettings {
  rewriteTarget: string | null;
  useRegex: boolean;
  appRoot: string | null;
  sslRedirect: boolean;
  forceSslRedirect: boolean;
  preserveTrailingSlash: boolean;
  usePortInRedirects: boolean;
  redirect: { url: string; code: number } | null;
  backendProtocol: 'HTTP' | 'HTTPS';
  /** Bytes; 0 = no limit (client_max_body_size 0). */
  proxyBodySize: number;
  upstreamVhost: string | null;
  xForwardedPrefix: string | null;
  cors: CorsConfig | null;
  affinity: AffinityConfig | null;
  /** null: every source allowed. */
  whitelist: Cidr[] | null;
  /** Seconds. */
  proxyConnectTimeout: number;
  proxyReadTimeout: number;
  proxySendTimeout: number;
}

/** ingress-nginx's global defaults (ConfigMap keys of the same names). */
export const DEFAULT_SETTINGS: LocationSettings = {
  rewriteTarget: null,
  useRegex: false,
  appRoot: null,
  sslRedirect: true,
  forceSslRedirect: false,
  preserveTrailingSlash: false,
  usePortInRedirects: false,
  redirect: null,
  backendProtocol: 'HTTP',
  proxyBodySize: 1024 * 1024,
  upstreamVhost: null,
  xForwardedPrefix: null,
  cors: null,
  affinity: null,
  whitelist: null,
  proxyConnectTimeout: 5,
  proxyReadTimeout: 60,
  proxySendTimeout: 60,
};

const SUPPORTED = new Set(
  [
    'rewrite-target',
    'use-regex',
    'app-root',
    'ssl-redirect',
    'force-ssl-redirect',
    'preserve-trailing-slash',
    'use-port-in-redirects',
    'permanent-redirect',
    'permanent-redirect-code',
    'temporal-redirect',
    'temporal-redirect-code',
    'backend-protocol',
    'proxy-body-size',
    'upstream-vhost',
    'x-forwarded-prefix',
    'enable-cors',
    'cors-allow-origin',
    'cors-allow-methods',
    'cors-allow-headers',
    'cors-allow-credentials',
    'cors-expose-headers',
    'cors-max-age',
    'affinity',
    'affinity-mode',
    'session-cookie-name',
    'session-cookie-path',
    'session-cookie-max-age',
    'session-cookie-expires',
    'session-cookie-secure',
    'session-cookie-samesite',
    'whitelist-source-range',
    'allowlist-source-range',
    'proxy-connect-timeout',
    'proxy-read-timeout',
    'proxy-send-timeout',
  ].map((k) => PREFIX + k),
);

export interface AnnotationProblem {
  key: string;
  detail: string;
}

/**
 * nginx sizes: a number with an optional k/K, m/M or g/G suffix (bytes). Returns null when
 * the text is not a size.
 */
export function parseNginxSize(text: string): number | null {
  const m = /^\s*(\d+)([kKmMgG]?)\s*$/.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = m[2]!.toLowerCase();
  return n * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : unit === 'g' ? 1024 ** 3 : 1);
}

/** An address or CIDR as Go's net.ParseCIDR takes it (host bits are masked off). */
export function parseSourceRange(text: string): Cidr | null {
  const [ip, len, extra] = text.split('/');
  if (extra !== undefined) return null;
  const addr = parseIPv4(ip!);
  const prefix = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : -1;
  if (addr === null || prefix < 0 || prefix > 32) return null;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { base: (addr & mask) >>> 0, prefix };
}

function parseBool(v: string): boolean | null {
  if (v === 'true' || v === 'True' || v === 'TRUE' || v === '1') return true;
  if (v === 'false' || v === 'False' || v === 'FALSE' || v === '0') return false;
  return null;
}

/**
 * Parses the annotations of one Ingress. `problems` lists values that do not parse
 * (annotation key + reason); `unsupported` the nginx.ingress.kubernetes.io/* keys that
 * kubewire ignores.
 */
export function parseAnnotations(annotations: Readonly<Record<string, string>>): {
  settings: LocationSettings;
  problems: AnnotationProblem[];
  unsupported: string[];
} {
  const s: LocationSettings = { ...DEFAULT_SETTINGS };
  const problems: AnnotationProblem[] = [];
  const unsupported: string[] = [];
  const get = (k: string): string | undefined => annotations[PREFIX + k];
  const bad = (k: string, detail: string): void => {
    problems.push({ key: PREFIX + k, detail });
  };
  const boolOf = (k: string, dflt: boolean): boolean => {
    const v = get(k);
    if (v === undefined) return dflt;
    const b = parseBool(v.trim());
    if (b === null) {
      bad(k, `expected true or false, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return b;
  };
  const intOf = (k: string, dflt: number, min = 0): number => {
    const v = get(k);
    if (v === undefined) return dflt;
    if (!/^\s*\d+\s*$/.test(v) || Number(v) < min) {
      bad(k, `expected an integer${min > 0 ? ` ≥ ${min}` : ''}, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return Number(v);
  };

  for (const key of Object.keys(annotations)) {
    if (key.startsWith(PREFIX) && !SUPPORTED.has(key)) unsupported.push(key);
  }
  unsupported.sort();

  const target = get('rewrite-target');
  if (target !== undefined) {
    if (target.trim() === '') bad('rewrite-target', 'must not be empty');
    else if (/\s/.test(target.trim()))
      bad('rewrite-target', `must not contain spaces, got ${JSON.stringify(target)}`);
    else s.rewriteTarget = target.trim();
  }
  s.useRegex = boolOf('use-regex', false);
  const appRoot = get('app-root');
  if (appRoot !== undefined) {
    if (!appRoot.startsWith('/') || /\s/.test(appRoot)) {
      bad('app-root', `expected an absolute path such as /app1, got ${JSON.stringify(appRoot)}`);
    } else s.appRoot = appRoot;
  }
  s.sslRedirect = boolOf('ssl-redirect', true);
  s.forceSslRedirect = boolOf('force-ssl-redirect', false);
  s.preserveTrailingSlash = boolOf('preserve-trailing-slash', false);
  s.usePortInRedirects = boolOf('use-port-in-redirects', false);

  const redirectUrl = (k: string): string | null => {
    const v = get(k);
    if (v === undefined) return null;
    try {
      const u = new URL(v);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      return v;
    } catch {
      bad(k, `expected an absolute http(s) URL, got ${JSON.stringify(v)}`);
      return null;
    }
  };
  const codeOf = (k: string, dflt: number): number => {
    const c = intOf(k, dflt);
    if (c < 300 || c > 308) {
      bad(k, `expected a redirect status between 300 and 308, got ${c}`);
      return dflt;
    }
    return c;
  };
  const temporal = redirectUrl('temporal-redirect');
  const permanent = redirectUrl('permanent-redirect');
  const temporalCode = codeOf('temporal-redirect-code', 302);
  const permanentCode = codeOf('permanent-redirect-code', 301);
  if (temporal !== null) s.redirect = { url: temporal, code: temporalCode };
  else if (permanent !== null) s.redirect = { url: permanent, code: permanentCode };

  const proto = get('backend-protocol');
  if (proto !== undefined) {
    const p = proto.trim().toUpperCase();
    if (p === 'HTTP' || p === 'HTTPS') s.backendProtocol = p;
    else if (['GRPC', 'GRPCS', 'AUTO_HTTP', 'FCGI'].includes(p)) {
      unsupported.push(`${PREFIX}backend-protocol=${proto}`);
    } else
      bad(
        'backend-protocol',
        `expected HTTP, HTTPS, GRPC, GRPCS, AUTO_HTTP or FCGI, got ${JSON.stringify(proto)}`,
      );
  }
  const size = get('proxy-body-size');
  if (size !== undefined) {
    const n = parseNginxSize(size);
    if (n === null)
      bad('proxy-body-size', `expected a size such as 8m, 512k or 0, got ${JSON.stringify(size)}`);
    else s.proxyBodySize = n;
  }
  const vhost = get('upstream-vhost');
  if (vhost !== undefined) {
    if (vhost.trim() === '' || /[\s/]/.test(vhost.trim()))
      bad('upstream-vhost', `expected a host name, got ${JSON.stringify(vhost)}`);
    else s.upstreamVhost = vhost.trim();
  }
  const xfp = get('x-forwarded-prefix');
  if (xfp !== undefined) {
    if (/[\r\n"]/.test(xfp)) bad('x-forwarded-prefix', 'must not contain quotes or line breaks');
    else if (xfp !== '') s.xForwardedPrefix = xfp;
  }

  if (boolOf('enable-cors', false)) {
    const origins = (get('cors-allow-origin') ?? '*')
      .split(',')
      .map((o) => o.trim())
      .filter((o) => o !== '');
    for (const o of origins) {
      if (o !== '*' && !/^https?:\/\/(\*\.)?[A-Za-z0-9.-]+(:\d+)?$/.test(o)) {
        bad(
          'cors-allow-origin',
          `${JSON.stringify(o)} is not an origin (scheme://host[:port] or *)`,
        );
      }
    }
    s.cors = {
      allowOrigin: origins.length === 0 || origins.includes('*') ? ['*'] : origins,
      allowMethods: get('cors-allow-methods') ?? 'GET, PUT, POST, DELETE, PATCH, OPTIONS',
      allowHeaders:
        get('cors-allow-headers') ??
        'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization',
      allowCredentials: boolOf('cors-allow-credentials', true),
      exposeHeaders: get('cors-expose-headers') ?? '',
      maxAge: intOf('cors-max-age', 1728000),
    };
  }

  const affinity = get('affinity');
  if (affinity !== undefined) {
    if (affinity === 'cookie') {
      const cookieName = get('session-cookie-name') ?? 'INGRESSCOOKIE';
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(cookieName)) {
        bad('session-cookie-name', `${JSON.stringify(cookieName)} is not a valid cookie name`);
      }
      const maxAge = get('session-cookie-max-age');
      const expires = get('session-cookie-expires');
      s.affinity = {
        cookieName,
        path: get('session-cookie-path') ?? null,
        maxAge: maxAge !== undefined ? intOf('session-cookie-max-age', 0) : null,
        expires: expires !== undefined ? intOf('session-cookie-expires', 0) : null,
        secure: boolOf('session-cookie-secure', false),
        sameSite: get('session-cookie-samesite') ?? null,
      };
    } else
      bad(
        'affinity',
        `expected "cookie" (the only affinity type), got ${JSON.stringify(affinity)}`,
      );
  }

  const ranges = get('allowlist-source-range') ?? get('whitelist-source-range');
  if (ranges !== undefined) {
    const key =
      get('allowlist-source-range') !== undefined
        ? 'allowlist-source-range'
        : 'whitelist-source-range';
    const cidrs: Cidr[] = [];
    for (const part of ranges
      .split(',')
      .map((r) => r.trim())
      .filter((r) => r !== '')) {
      const cidr = parseSourceRange(part);
      if (cidr === null) bad(key, `${JSON.stringify(part)} is not an IPv4 address or CIDR`);
      else cidrs.push(cidr);
    }
    s.whitelist = cidrs;
  }
  s.proxyConnectTimeout = intOf('proxy-connect-timeout', s.proxyConnectTimeout, 1);
  s.proxyReadTimeout = intOf('proxy-read-timeout', s.proxyReadTimeout, 1);
  s.proxySendTimeout = intOf('proxy-send-timeout', s.proxySendTimeout, 1);
  return { settings: s, problems, unsupported };
}
