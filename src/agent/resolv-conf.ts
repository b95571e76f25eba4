import { readFileSync } from 'node:fs';
import type { PodState } from '../cluster/index.js';

/**
 * The resolv.conf the kubelet writes for a pod, by dnsPolicy
 * (kubernetes.io/docs/concepts/services-networking/dns-pod-service/#pod-s-dns-policy):
 * ClusterFirst points at the cluster DNS with the namespace search path and
 * ndots:5; Default inherits the node's; None takes only dnsConfig; dnsConfig
 * is merged into the others (nameservers and searches appended, options by name).
 */
export function resolvConfFor(pod: PodState, dnsServiceIP: string, clusterDomain: string): string {
  let policy = pod.dnsPolicy ?? 'ClusterFirst';
  if (policy === 'ClusterFirst' && pod.hostNetwork) policy = 'Default';
  if (policy === 'ClusterFirstWithHostNet') policy = 'ClusterFirst';
  let nameservers: string[] = [];
  let searches: string[] = [];
  const options = new Map<string, string | undefined>();
  if (policy === 'ClusterFirst') {
    nameservers = [dnsServiceIP];
    searches = [`${pod.namespace}.svc.${clusterDomain}`, `svc.${clusterDomain}`, clusterDomain];
    options.set('ndots', '5');
  } else if (policy === 'Default') {
    const node = readNodeResolvConf();
    nameservers = node.nameservers;
    searches = node.searches;
    for (const [k, v] of node.options) options.set(k, v);
  }
  const cfg = pod.dnsConfig;
  if (cfg) {
    nameservers.push(...(cfg.nameservers ?? []));
    searches.push(...(cfg.searches ?? []));
    for (const o of cfg.options ?? []) options.set(o.name, o.value);
  }
  const lines: string[] = [];
  if (searches.length) lines.push(`search ${[...new Set(searches)].join(' ')}`);
  for (const ns of nameservers.slice(0, 3)) lines.push(`nameserver ${ns}`);
  if (options.size) {
    lines.push(
      `options ${[...options].map(([k, v]) => (v === undefined ? k : `${k}:${v}`)).join(' ')}`,
    );
  }
  return lines.join('\n') + '\n';
}

function readNodeResolvConf(): {
  nameservers: string[];
  searches: string[];
  options: Map<string, string | undefined>;
} {
  const out = {
    nameservers: [] as string[],
    searches: [] as string[],
    options: new Map<string, string | undefined>(),
  };
  let text: string;
  try {
    text = readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (key === 'search') out.searches.push(...rest);
    else if (key === 'options') {
      for (const o of rest) {
        const [k, v] = o.split(':');
        out.options.set(k!, v);
      }
    }
  }
  return out;
}
