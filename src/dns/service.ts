/**
 * The running DNS: a Corefile (from a file, the coredns ConfigMap, or kubeadm's default),
 * the server built from it, and the cluster view it answers from. Reloads keep the last
 * good configuration: a Corefile that does not parse or set up is logged and counted
 * (coredns_reload_failed_total), and the running server stays.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from '../util/log.js';
import { defaultCorefile, parseCorefile } from './corefile.js';
import type { DnsClusterView } from './kubernetes/view.js';
import { Metrics } from './metrics.js';
import { DnsServer, type ServerOptions } from './server.js';
import type { UdpIo } from './udp.js';

export interface DnsServiceOptions {
  logger: Logger;
  metrics?: Metrics;
  /** --corefile: read from this file (else the ConfigMap, else kubeadm's default). */
  corefileFile?: string;
  listen?: { host: string; port: number };
  bindHost?: string;
  httpHost?: string;
  resolvConf?: string;
  localIPs?: string[];
  onFatal?: (message: string) => void;
  /** UDP I/O of the DNS listeners (ServerOptions.udpIo). */
  udpIo?: UdpIo;
}

export type CorefileSource = 'file' | 'configmap' | 'default';

export class DnsService {
  readonly metrics: Metrics;
  server: DnsServer | null = null;
  view: DnsClusterView | null = null;
  corefileText = '';
  source: CorefileSource = 'default';
  private reloading: Promise<boolean> | null = null;

  constructor(readonly opts: DnsServiceOptions) {
    this.metrics = opts.metrics ?? new Metrics();
  }

  private async currentCorefile(
    view: DnsClusterView,
  ): Promise<{ text: string; source: CorefileSource; file: string }> {
    if (this.opts.corefileFile) {
      return {
        text: await readFile(this.opts.corefileFile, 'utf8'),
        source: 'file',
        file: this.opts.corefileFile,
      };
    }
    if (view.corefile !== null) {
      return {
        text: view.corefile,
        source: 'configmap',
        file: 'ConfigMap kube-system/coredns Corefile',
      };
    }
    return {
      text: defaultCorefile(view.dnsDomain),
      source: 'default',
      file: 'Corefile (kubeadm default)',
    };
  }

  private build(text: string, file: string): DnsServer {
    const corefile = parseCorefile(text, file);
    const wasEnabled = this.metrics.enabled;
    this.metrics.enabled = false;
    const o: ServerOptions = {
      corefile,
      text,
      logger: this.opts.logger,
      metrics: this.metrics,
      onReload: () => void this.reload(),
      readCorefile: () => this.readCorefileNow(),
      ...(this.opts.listen ? { listen: this.opts.listen } : {}),
      ...(this.opts.bindHost ? { bindHost: this.opts.bindHost } : {}),
      ...(this.opts.httpHost !== undefined ? { httpHost: this.opts.httpHost } : {}),
      ...(this.opts.resolvConf ? { resolvConf: this.opts.resolvConf } : {}),
      ...(this.opts.localIPs ? { localIPs: this.opts.localIPs } : {}),
      ...(this.opts.onFatal ? { onFatal: this.opts.onFatal } : {}),
      ...(this.opts.udpIo ? { udpIo: this.opts.udpIo } : {}),
    };
    try {
      return DnsServer.build(o);
    } catch (e) {
      this.metrics.enabled = wasEnabled;
      throw e;
    }
  }

  private async readCorefileNow(): Promise<string | null> {
    if (!this.view) return null;
    try {
      return (await this.currentCorefile(this.view)).text;
    } catch {
      return null;
    }
  }

  /** Builds and starts the server for the first state. Throws CorefileError on a bad Corefile. */
  async start(view: DnsClusterView): Promise<void> {
    this.view = view;
    const { text, source, file } = await this.currentCorefile(view);
    const server = this.build(text, file);
    server.setState(view);
    await server.start();
    this.server = server;
    this.corefileText = text;
    this.source = source;
  }

  /** A new cluster state: answers follow at once; a changed ConfigMap Corefile reloads (with the reload plugin). */
  setState(view: DnsClusterView): void {
    this.view = view;
    this.server?.setState(view);
    if (this.source !== 'file' && this.hasReloadPlugin()) {
      const next = view.corefile ?? defaultCorefile(view.dnsDomain);
      if (next !== this.corefileText) void this.reload();
    }
  }

  hasReloadPlugin(): boolean {
    return !!this.server?.instances.some((i) => i.name === 'reload');
  }

  /** Re-reads the Corefile and restarts with it; false (last good kept) when it is bad. */
  reload(): Promise<boolean> {
    if (this.reloading) return this.reloading;
    this.reloading = this.doReload().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private async doReload(): Promise<boolean> {
    const view = this.view;
    const old = this.server;
    if (!view || !old) return false;
    let next: DnsServer;
    let cf: { text: string; source: CorefileSource; file: string };
    try {
      cf = await this.currentCorefile(view);
      if (cf.text === this.corefileText) return true;
      next = this.build(cf.text, cf.file);
    } catch (e) {
      this.metrics.reloadFailed.labels().inc();
      this.opts.logger.error(
        { plugin: 'reload', err: (e as Error).message },
        `Restart failed: ${(e as Error).message}; keeping the running configuration`,
      );
      // Do not try the same bad text again on every check.
      return false;
    }
    await old.stop();
    next.setState(view);
    try {
      await next.start();
    } catch (e) {
      this.metrics.reloadFailed.labels().inc();
      this.opts.logger.error(
        { plugin: 'reload', err: (e as Error).message },
        'Restart failed; restarting the previous configuration',
      );
      const back = this.build(this.corefileText, 'Corefile');
      back.setState(view);
      await back.start();
      this.server = back;
      return false;
    }
    this.server = next;
    this.corefileText = cf.text;
    this.source = cf.source;
    this.opts.logger.info({ plugin: 'reload' }, 'Reloading complete');
    return true;
  }

  /** Stops, after the health plugin's lameduck when `lameduck` is true. */
  async stop(lameduck = false): Promise<void> {
    const s = this.server;
    if (!s) return;
    if (lameduck) {
      const h = s.instances.find((i) => i.name === 'health') as { lameduckMs?: number } | undefined;
      const ms = h?.lameduckMs ?? 0;
      if (ms > 0) {
        this.opts.logger.info(`Going into lameduck mode for ${ms / 1000}s`);
        await new Promise((r) => setTimeout(r, ms));
      }
    }
    this.server = null;
    await s.stop();
  }
}
