/**
 * `kubewire ingress-conf`: the compiled routing table as a person reads it — servers in
 * nginx.conf order, each with its locations in the order nginx tries them, the backend
 * (upstream and endpoints) and the rewrite — so one can see why a request went where it
 * went. `routesJson` gives the same as plain data.
 */
import { formatCidr } from '../cluster/index.js';
import type { LocationSettings } from './annotations.js';
import {
  DEFAULT_SERVER,
  DEFAULT_UPSTREAM,
  type IngressConfig,
  type Location,
  type Server,
} from './routes.js';

function tlsText(server: Server): string {
  if (server.tls === null) return 'no TLS';
  if (server.tls === 'default')
    return 'TLS: default certificate (Kubernetes Ingress Controller Fake Certificate)';
  return `TLS: Secret ${server.tls.id} (${server.tls.subject}${server.tls.dnsNames.length ? `; DNS ${server.tls.dnsNames.join(', ')}` : ''})`;
}

function settingsText(s: LocationSettings, loc: Location): string[] {
  const out: string[] = [];
  if (loc.rewrite) out.push(`rewrite "(?i)${loc.path}" ${loc.rewrite.target} break`);
  if (s.useRegex) out.push('use-regex');
  if (s.appRoot) out.push(`app-root ${s.appRoot} (302 for /)`);
  if (s.forceSslRedirect) out.push('force-ssl-redirect (308)');
  else if (!s.sslRedirect) out.push('ssl-redirect off');
  if (s.redirect) out.push(`return ${s.redirect.code} ${s.redirect.url}`);
  if (s.backendProtocol !== 'HTTP') out.push(`backend-protocol ${s.backendProtocol}`);
  if (s.proxyBodySize !== 1024 * 1024)
    out.push(`proxy-body-size ${s.proxyBodySize === 0 ? 'unlimited' : `${s.proxyBodySize} bytes`}`);
  if (s.upstreamVhost) out.push(`Host: ${s.upstreamVhost}`);
  if (s.xForwardedPrefix) out.push(`X-Forwarded-Prefix: ${s.xForwardedPrefix}`);
  if (s.cors) out.push(`CORS ${s.cors.allowOrigin.join(',')}`);
  if (s.affinity) out.push(`affinity cookie ${s.affinity.cookieName}`);
  if (s.whitelist) out.push(`allow ${s.whitelist.map(formatCidr).join(', ')}; deny all (403)`);
  return out;
}

function backendText(loc: Location): string {
  const u = loc.upstream;
  if (u === null) return `${DEFAULT_UPSTREAM} (404)`;
  if (u.endpoints.length === 0)
    return `${u.name} (no endpoints: 503${u.problem ? `; ${u.problem}` : ''})`;
  return `${u.name} [${u.endpoints.map((e) => `${e.ip}:${e.port}`).join(', ')}]`;
}

/** The routing table as text. */
export function formatRoutes(config: IngressConfig): string {
  const lines: string[] = [];
  lines.push('# kubewire ingress: the routing table ingress-nginx would write to nginx.conf');
  lines.push(`# Ingresses served: ${config.accepted.length ? config.accepted.join(', ') : 'none'}`);
  for (const i of config.ignored) lines.push(`# ignored: ${i.ingress}: ${i.reason}`);
  const servers = [...config.servers.values()];
  for (const server of servers) {
    lines.push('');
    const name =
      server.hostname === DEFAULT_SERVER ? '_ (default server: any other Host)' : server.hostname;
    lines.push(`server ${name}  ${tlsText(server)}`);
    if (server.enforceRegex) {
      lines.push(
        '  # regex locations (use-regex or rewrite-target on this host): first match in this order',
      );
    } else {
      lines.push('  # "=" locations first, then the longest matching prefix');
    }
    const order = server.enforceRegex
      ? server.locations
      : [...server.exact.values(), ...server.prefixes];
    const width = Math.max(...order.map((l) => `location ${l.nginx}`.length));
    order.forEach((loc, i) => {
      const head = `location ${loc.nginx}`.padEnd(width);
      const from = loc.ingress ? `Ingress ${loc.ingress}` : 'built-in';
      lines.push(`  ${String(i + 1).padStart(2)}. ${head}  -> ${backendText(loc)}  (${from})`);
      for (const s of settingsText(loc.settings, loc)) lines.push(`      ${s}`);
    });
  }
  if (config.warnings.length) {
    lines.push('');
    for (const w of config.warnings) lines.push(`# warning: ${w}`);
  }
  return lines.join('\n') + '\n';
}

/** The routing table as plain data (for `-o json`). */
export function routesJson(config: IngressConfig): unknown {
  return {
    accepted: config.accepted,
    ignored: config.ignored,
    servers: [...config.servers.values()].map((s) => ({
      hostname: s.hostname,
      tls: s.tls === null ? null : s.tls === 'default' ? 'default' : s.tls.id,
      regexLocations: s.enforceRegex,
      locations: (s.enforceRegex ? s.locations : [...s.exact.values(), ...s.prefixes]).map((l) => ({
        nginx: l.nginx,
        path: l.path,
        pathType: l.pathType,
        ingress: l.ingress,
        upstream: l.upstream?.name ?? DEFAULT_UPSTREAM,
        endpoints: l.upstream?.endpoints.map((e) => `${e.ip}:${e.port}`) ?? [],
        rewrite: l.rewrite?.target ?? null,
      })),
    })),
    warnings: config.warnings,
  };
}
