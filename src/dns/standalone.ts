/**
 * The DNS run from a directory of manifests: `kubewire dns --manifests DIR` and the
 * CoreDNS pods' program (src/dns/main.ts). The manifests are loaded with src/cluster
 * (loadManifests + buildClusterState); the directory is watched (fs.watch plus a 250 ms
 * poll of the files' sizes and times), and a change is applied within a second. Invalid
 * manifests are logged and the last good state keeps serving. In a lab, the node agent
 * also keeps a list of the nodes it counts as down (`downNodesFile`, JSON
 * `{"downNodes": [...]}`, polled with the manifests): their pods' endpoints are not
 * ready, as in the node's kube-proxy rules.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { networkInterfaces } from 'node:os';
import {
  buildClusterState,
  listManifestFiles,
  loadManifests,
  ManifestErrors,
} from '../cluster/index.js';
import { readDownNodes } from '../util/down-nodes.js';
import type { Logger } from '../util/log.js';
import { viewFromClusterState, type DnsClusterView } from './kubernetes/view.js';
import { DnsService, type DnsServiceOptions } from './service.js';

export interface StandaloneOptions extends Omit<DnsServiceOptions, 'logger'> {
  manifests: string[];
  /** The node agent's down-nodes file (missing: every node is up). */
  downNodesFile?: string;
  logger: Logger;
  /** Poll interval for manifest changes (ms). */
  pollMs?: number;
}

export interface Standalone {
  service: DnsService;
  /** Re-reads the manifests now (tests). */
  refresh(): boolean;
  stop(lameduck?: boolean): Promise<void>;
}

/** Non-internal IPv4 addresses of this host or pod. */
export function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
  }
  return out;
}

function loadView(paths: string[], downNodesFile: string | undefined): DnsClusterView {
  return viewFromClusterState(buildClusterState(loadManifests(paths)), {
    downNodes: readDownNodes(downNodesFile),
  });
}

function signature(paths: string[], downNodesFile: string | undefined): string {
  const { files } = listManifestFiles(paths);
  if (downNodesFile) files.push(downNodesFile);
  let sig = '';
  for (const f of files) {
    try {
      const st = statSync(f);
      sig += `${f}:${st.size}:${st.mtimeMs}\n`;
    } catch {
      sig += `${f}:-\n`;
    }
  }
  return sig;
}

function describe(e: unknown): string {
  if (e instanceof ManifestErrors) return e.errors.map((x) => x.message).join('; ');
  return e instanceof Error ? e.message : String(e);
}

export async function startStandalone(opts: StandaloneOptions): Promise<Standalone> {
  const { logger } = opts;
  const view = loadView(opts.manifests, opts.downNodesFile);
  const service = new DnsService({
    ...opts,
    localIPs:
      opts.localIPs ??
      (opts.listen && opts.listen.host !== '0.0.0.0' ? [opts.listen.host] : localAddresses()),
  });
  await service.start(view);
  let lastSig = signature(opts.manifests, opts.downNodesFile);
  let lastJson = JSON.stringify({ ...view, modified: 0 });

  const refresh = (): boolean => {
    let next: DnsClusterView;
    try {
      next = loadView(opts.manifests, opts.downNodesFile);
    } catch (e) {
      logger.error({ err: describe(e) }, 'dns: invalid manifests; keeping the last good state');
      return false;
    }
    const json = JSON.stringify({ ...next, modified: 0 });
    if (json === lastJson) return true;
    lastJson = json;
    service.setState(next);
    logger.info(
      { services: next.services.length, pods: next.pods.length },
      'dns: cluster state reloaded',
    );
    return true;
  };

  let timer: NodeJS.Timeout | null = null;
  let debounce: NodeJS.Timeout | null = null;
  const check = (): void => {
    let sig: string;
    try {
      sig = signature(opts.manifests, opts.downNodesFile);
    } catch {
      return;
    }
    if (sig === lastSig) return;
    lastSig = sig;
    refresh();
  };
  const soon = (): void => {
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(check, 50);
  };
  const watchers: FSWatcher[] = [];
  for (const p of opts.manifests) {
    try {
      const w = watch(p, { recursive: true }, soon);
      w.on('error', () => undefined);
      watchers.push(w);
    } catch {
      // polling covers it
    }
  }
  timer = setInterval(check, opts.pollMs ?? 250);

  return {
    service,
    refresh,
    async stop(lameduck = false) {
      if (timer) clearInterval(timer);
      if (debounce) clearTimeout(debounce);
      for (const w of watchers) w.close();
      await service.stop(lameduck);
    },
  };
}

/** `host:port` → parts ("127.0.0.1:5353", "[::1]:53", ":53"). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  if (!m || Number(m[3]) > 65535)
    throw new Error(`invalid --listen '${text}' (expected HOST:PORT)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}
