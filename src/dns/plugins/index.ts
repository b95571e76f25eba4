/**
 * The plugins kubewire implements and their order in the chain — CoreDNS's plugin.cfg
 * order restricted to them. The Corefile's order of directives does not matter.
 */
import type { PluginSpec } from '../plugin.js';
import { cache } from './cache.js';
import { errors } from './errors.js';
import { forward } from './forward.js';
import { health } from './health.js';
import { hosts } from './hosts.js';
import { kubernetes } from './kubernetes.js';
import { loadbalance } from './loadbalance.js';
import { log } from './log.js';
import { loop } from './loop.js';
import { prometheus } from './prometheus.js';
import { ready } from './ready.js';
import { reload } from './reload.js';
import { rewrite } from './rewrite.js';
import { whoami } from './whoami.js';

/** plugin.cfg order (github.com/coredns/coredns/blob/master/plugin.cfg). */
export const PLUGIN_ORDER = [
  'reload',
  'ready',
  'health',
  'prometheus',
  'errors',
  'log',
  'loadbalance',
  'rewrite',
  'cache',
  'hosts',
  'kubernetes',
  'loop',
  'forward',
  'whoami',
] as const;

/** CoreDNS plugins kubewire knows but does not implement: named in the error. */
export const KNOWN_UNSUPPORTED = new Set([
  'root',
  'metadata',
  'geoip',
  'cancel',
  'tls',
  'quic',
  'timeouts',
  'multisocket',
  'nsid',
  'bufsize',
  'bind',
  'debug',
  'trace',
  'pprof',
  'dnstap',
  'local',
  'dns64',
  'acl',
  'any',
  'chaos',
  'tsig',
  'autopath',
  'header',
  'dnssec',
  'minimal',
  'template',
  'transfer',
  'route53',
  'azure',
  'clouddns',
  'k8s_external',
  'file',
  'auto',
  'secondary',
  'etcd',
  'grpc',
  'erratic',
  'sign',
  'view',
  'nomad',
  'import',
  'proxyproto',
  'grpc_server',
  'https',
  'https3',
  'shed',
]);

export const PLUGINS: ReadonlyMap<string, PluginSpec> = new Map(
  [
    reload,
    ready,
    health,
    prometheus,
    errors,
    log,
    loadbalance,
    rewrite,
    cache,
    hosts,
    kubernetes,
    loop,
    forward,
    whoami,
  ].map((p) => [p.name, p]),
);
