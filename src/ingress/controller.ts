/**
 * The ingress controller: manifests → routing table → proxy, and reloads. A change of
 * the manifests (Ingress, Service, pods and so endpoints, Secrets, IngressClass) is
 * compiled into a new table that replaces the old one at once; established connections
 * and requests in flight are not touched. A change that does not compile is refused and
 * the last good table keeps serving (Principle 2).
 */
import { unwatchFile, watch, watchFile, type FSWatcher } from 'node:fs';
import {
  buildClusterState,
  loadManifests,
  ManifestErrors,
  type ClusterState,
  type ManifestDocument,
} from '../cluster/index.js';
import { readDownNodes } from '../util/down-nodes.js';
import type { Logger } from '../util/log.js';
import { readIngresses, readManualEndpoints } from './model.js';
import { IngressProxy, type ProxyOptions } from './proxy.js';
import { compileRoutes, type CompileOptions, type IngressConfig } from './routes.js';

export interface CompiledIngress {
  config: IngressConfig;
  state: ClusterState;
}

/**
 * Compiles the routing table from manifest documents. Throws ManifestErrors for invalid
 * manifests (every problem at once).
 */
export function compileIngress(
  docs: readonly ManifestDocument[],
  opts: CompileOptions = {},
): CompiledIngress {
  const { ingresses, errors } = readIngresses(docs);
  let state: ClusterState;
  try {
    state = buildClusterState([...docs]);
  } catch (e) {
    if (e instanceof ManifestErrors && errors.length > 0)
      throw new ManifestErrors([...e.errors, ...errors]);
    throw e;
  }
  if (errors.length > 0) throw new ManifestErrors(errors);
  const config = compileRoutes(ingresses, state, readManualEndpoints(docs), opts);
  return { config, state };
}

/** Reads manifest files/directories and compiles them. */
export function compileIngressFromPaths(
  paths: readonly string[],
  opts: CompileOptions = {},
): CompiledIngress {
  return compileIngress(loadManifests(paths), opts);
}

export interface ControllerOptions extends CompileOptions {
  /** Manifest files or directories. */
  paths: string[];
  proxy: ProxyOptions;
  log: Logger;
  /** Debounce of file events before a reload (ms), default 100. */
  debounceMs?: number;
  /**
   * The node agent's down-nodes file (src/util/down-nodes.ts; missing: every node is up):
   * the pods of the nodes it lists are no endpoints, as in the node's kube-proxy rules.
   */
  downNodesFile?: string;
  /** Poll interval of the down-nodes file (ms), default 250. */
  downNodesPollMs?: number;
}

export class IngressController {
  readonly proxy: IngressProxy;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private lastWarnings = new Set<string>();
  reloads = 0;

  constructor(private readonly opts: ControllerOptions) {
    const { config } = this.compile();
    this.logWarnings(config);
    this.proxy = new IngressProxy(config, opts.proxy);
  }

  /** The manifests, with the down nodes of the moment when there is a down-nodes file. */
  private compile(): CompiledIngress {
    const { paths, downNodesFile } = this.opts;
    if (downNodesFile === undefined) return compileIngressFromPaths(paths, this.opts);
    return compileIngressFromPaths(paths, {
      ...this.opts,
      downNodes: [...readDownNodes(downNodesFile)].sort(),
    });
  }

  get config(): IngressConfig {
    return this.proxy.current;
  }

  private logWarnings(config: IngressConfig): void {
    const now = new Set(config.warnings);
    for (const w of now) if (!this.lastWarnings.has(w)) this.opts.log.warn(w);
    for (const i of config.ignored) {
      const text = `Ingress ${i.ingress} ignored: ${i.reason}`;
      now.add(text);
      if (!this.lastWarnings.has(text)) this.opts.log.info(text);
    }
    this.lastWarnings = now;
  }

  /** Recompiles; on success swaps the table. Returns false (and logs) when refused. */
  reload(): boolean {
    try {
      const { config } = this.compile();
      this.logWarnings(config);
      this.proxy.setConfig(config);
      this.reloads++;
      this.opts.log.info(
        {
          servers: config.servers.size,
          upstreams: config.upstreams.size,
          ingresses: config.accepted.length,
        },
        'configuration reloaded',
      );
      return true;
    } catch (e) {
      const text = e instanceof Error ? e.message : String(e);
      this.opts.log.error({ err: text }, 'manifests refused, keeping the last good configuration');
      return false;
    }
  }

  /** Watches the manifest paths; reloads after changes settle. */
  watch(): void {
    const schedule = (): void => {
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.reload();
      }, this.opts.debounceMs ?? 100);
    };
    for (const p of this.opts.paths) {
      let w: FSWatcher;
      try {
        w = watch(p, { recursive: true }, schedule);
      } catch {
        w = watch(p, schedule);
      }
      w.on('error', () => undefined);
      this.watchers.push(w);
    }
    // The agent replaces the file by a rename, which an fs.watch of the file itself stops
    // following: polled by its stat instead (also while it does not exist yet).
    const down = this.opts.downNodesFile;
    if (down !== undefined) {
      watchFile(down, { interval: this.opts.downNodesPollMs ?? 250, persistent: false }, schedule);
    }
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.opts.downNodesFile !== undefined) unwatchFile(this.opts.downNodesFile);
    if (this.timer) clearTimeout(this.timer);
    await this.proxy.close();
  }
}
