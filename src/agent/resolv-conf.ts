import { readFileSync } from 'node:fs';
import type { PodState } from '../cluster/index.js';

/** The node's resolv.conf as the kubelet reads it (its --resolv-conf, /etc/resolv.conf here). */
const NODE_RESOLV_CONF = '/etc/resolv.conf';
/** Kubelet's limits on a pod's search line (validation.MaxDNSSearchPathsExpanded, …Chars…). */
const MAX_SEARCH_PATHS = 32;
const MAX_SEARCH_CHARS = 2048;
/** Longer search domains are dropped (glibc aborts on them; DNS1123SubdomainMaxLength). */
const MAX_SEARCH_DOMAIN = 253;
/** At most three nameservers (validation.MaxDNSNameservers). */
const MAX_NAMESERVERS = 3;

export interface ResolvConf {
  nameservers: string[];
  searches: string[];
  options: Map<string, string | undefined>;
}

/**
 * The resolv.conf the kubelet writes for a pod, by dnsPolicy
 * (kubernetes.io/docs/concepts/services-networking/dns-pod-service/#pod-s-dns-policy;
 * pkg/kubelet/network/dns/dns.go GetPodDNS): ClusterFirst points at the cluster DNS
 * with the namespace search path, then the node's own search domains, and ndots:5;
 * Default inherits the node's; None takes only dnsConfig; dnsConfig is merged into the
 * others (nameservers and searches appended without duplicates, options by name).
 * Lines in containerd's order: search, nameserver, options. `nodeResolvConf` is the
 * node's file (read from /etc/resolv.conf when not given).
 */
export function resolvConfFor(
  pod: PodState,
  dnsServiceIP: string,
  clusterDomain: string,
  nodeResolvConf?: string,
): string {
  let policy = pod.dnsPolicy ?? 'ClusterFirst';
  if (policy === 'ClusterFirst' && pod.hostNetwork) policy = 'Default';
  if (policy === 'ClusterFirstWithHostNet') policy = 'ClusterFirst';
  let nameservers: string[] = [];
  let searches: string[] = [];
  const options = new Map<string, string | undefined>();
  if (policy !== 'None') {
    const node = parseResolvConf(nodeResolvConf ?? readNodeResolvConf());
    if (policy === 'ClusterFirst') {
      nameservers = [dnsServiceIP];
      searches = [
        `${pod.namespace}.svc.${clusterDomain}`,
        `svc.${clusterDomain}`,
        clusterDomain,
        ...node.searches,
      ];
      options.set('ndots', '5');
    } else {
      nameservers = node.nameservers;
      searches = node.searches;
      for (const [k, v] of node.options) options.set(k, v);
    }
  }
  const cfg = pod.dnsConfig;
  if (cfg) {
    nameservers.push(...(cfg.nameservers ?? []));
    searches.push(...(cfg.searches ?? []));
    for (const o of cfg.options ?? []) options.set(o.name, o.value);
  }
  const lines: string[] = [];
  const search = searchFitsLimits([...new Set(searches)]);
  if (search.length) lines.push(`search ${search.join(' ')}`);
  for (const ns of [...new Set(nameservers)].slice(0, MAX_NAMESERVERS))
    lines.push(`nameserver ${ns}`);
  if (options.size) {
    lines.push(
      `options ${[...options].map(([k, v]) => (v === undefined ? k : `${k}:${v}`)).join(' ')}`,
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * Kubelet's parseResolvConf: `nameserver` lines accumulate; the last `search` line wins
 * (without "." and trailing dots); the last `options` line wins.
 */
export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], searches: [], options: new Map() };
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('#')) continue;
    const [key, ...rest] = trimmed.split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (key === 'search')
      out.searches = rest.filter((s) => s !== '.').map((s) => s.replace(/\.$/, ''));
    else if (key === 'options') {
      out.options = new Map();
      for (const o of rest) {
        const i = o.indexOf(':');
        out.options.set(i < 0 ? o : o.slice(0, i), i < 0 ? undefined : o.slice(i + 1));
      }
    }
  }
  return out;
}

/** Kubelet's formDNSSearchFitsLimits: 32 domains, none over 253 characters, 2048 in all. */
function searchFitsLimits(searches: string[]): string[] {
  const out = searches.slice(0, MAX_SEARCH_PATHS).filter((s) => s.length <= MAX_SEARCH_DOMAIN);
  while (out.length && out.join(' ').length > MAX_SEARCH_CHARS) out.pop();
  return out;
}

function readNodeResolvConf(): string {
  try {
    return readFileSync(NODE_RESOLV_CONF, 'utf8');
  } catch {
    return '';
  }
}
