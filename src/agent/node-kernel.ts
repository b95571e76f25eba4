import {
  Conntrack,
  formatConntrackEntry,
  formatConntrackEvent,
  kubeProxyConntrackOptions,
} from '../conntrack/index.js';
import type { ClusterState } from '../cluster/index.js';
import {
  kubeProxyOptionsFor,
  kubeProxyRules,
  type KubeProxyRules,
} from '../controllers/kube-proxy/index.js';
import type { Forwarder } from '../dataplane/forwarder.js';
import { HookPipeline } from '../dataplane/hooks.js';
import { AddrType, type NodeAddressing } from '../netfilter/packet-meta.js';
import { Netfilter } from '../netfilter/netfilter.js';
import type { Logger } from '../util/log.js';
import { Histogram, SYNC_BUCKETS } from './metrics.js';

/** kube-proxy's FullSyncPeriod: a full sync at least this often. */
const FULL_SYNC_PERIOD_MS = 3_600_000;

/** Lines kept of the node's kernel log (`kubewire dmesg`), like the kernel's ring buffer. */
const DMESG_LINES = 4096;

/**
 * The node's netfilter and conntrack, wired into the forwarder's hooks, plus
 * kube-proxy's sync loop: on every cluster state the KUBE-* chains are
 * recomputed from the whole model and applied with one iptables-restore
 * (--noflush), so a packet never sees half a change and applying the same
 * state twice changes nothing.
 */
export class NodeKernel {
  readonly netfilter: Netfilter;
  readonly conntrack: Conntrack;
  private readonly dmesg: string[] = [];
  private readonly bootMs = Date.now();
  private readonly dmesgFollowers = new Set<(line: string) => void>();
  readonly conntrackFollowers = new Set<(line: string) => void>();
  private kubeProxy: KubeProxyRules | undefined;
  /** netfilter.generation after the last sync, and when the last full sync was. */
  private syncedGeneration = -1;
  private lastFullSync = 0;
  /**
   * The last kube-proxy sync: its duration, split into rule generation and apply (restore
   * + jumps); whether it was partial, and how many Services' chains it wrote.
   */
  lastSync: {
    services: number;
    durationMs: number;
    generateMs: number;
    applyMs: number;
    partial: boolean;
    writtenServices: number;
    at: string;
  } | null = null;
  /** kubeproxy_sync_proxy_rules_duration_seconds, and the failed syncs (metrics). */
  readonly syncDurations = new Histogram(SYNC_BUCKETS);
  syncFailures = 0;

  constructor(
    forwarder: Forwarder,
    private readonly nodeName: string,
    private readonly logger: Logger,
    /** The node's tunnel address (tunl0), for MASQUERADE out of tunl0. */
    private readonly tunnelAddress: () => number,
  ) {
    const fwd = forwarder;
    const addressing: NodeAddressing = {
      addressType: (addr) => {
        if (fwd.local.has(addr)) return AddrType.LOCAL;
        if (addr === 0xffffffff) return AddrType.BROADCAST;
        if (addr >>> 28 === 0xe) return AddrType.MULTICAST;
        const route = fwd.routes.lookup(addr);
        if (route?.type === 'blackhole') return AddrType.BLACKHOLE;
        if (route?.type === 'unreachable') return AddrType.UNREACHABLE;
        if (route?.type === 'prohibit') return AddrType.PROHIBIT;
        return AddrType.UNICAST;
      },
      // MASQUERADE takes the source address Linux would pick for the output device:
      // tunl0's own address out of the tunnel, the node IP elsewhere.
      interfaceAddress: (ifName) =>
        (ifName === 'tunl0' && this.tunnelAddress()) || fwd.primaryAddress,
    };
    this.netfilter = new Netfilter({
      addressing,
      log: (line) => this.kernelLog(line),
      now: fwd.clock,
    });
    this.conntrack = new Conntrack({
      ...kubeProxyConntrackOptions(),
      now: fwd.clock,
      events: (ev) => {
        if (this.conntrackFollowers.size === 0) return;
        const line = formatConntrackEvent(ev);
        for (const f of this.conntrackFollowers) f(line);
      },
      log: (line) => this.kernelLog(line),
    });
    fwd.hooks = new HookPipeline(this.netfilter, this.conntrack, addressing);
  }

  /** A kernel log line as dmesg prints it: `[   12.345678] text`. */
  kernelLog(line: string): void {
    const t = (Date.now() - this.bootMs) / 1000;
    const stamped = `[${t.toFixed(6).padStart(12)}] ${line}`;
    this.dmesg.push(stamped);
    if (this.dmesg.length > DMESG_LINES) this.dmesg.splice(0, this.dmesg.length - DMESG_LINES);
    for (const f of this.dmesgFollowers) f(stamped);
  }

  dmesgLines(): string[] {
    return [...this.dmesg];
  }

  followDmesg(f: (line: string) => void): () => void {
    this.dmesgFollowers.add(f);
    return () => this.dmesgFollowers.delete(f);
  }

  /**
   * kube-proxy's syncProxyRules for the new state: partial (only the chains of Services
   * that changed) on top of the previous sync, full on the first one, after a failure,
   * after anything else changed the tables (kube-proxy's canary monitor forces one when
   * its chains vanish; here any foreign change does), and once an hour.
   */
  syncKubeProxy(state: ClusterState, downNodes?: ReadonlySet<string>): void {
    const started = performance.now();
    const fullSync =
      this.kubeProxy === undefined ||
      this.netfilter.generation !== this.syncedGeneration ||
      Date.now() - this.lastFullSync > FULL_SYNC_PERIOD_MS;
    const opts = {
      ...kubeProxyOptionsFor(state, this.nodeName),
      ...(downNodes ? { downNodes } : {}),
      fullSync,
    };
    const rules = kubeProxyRules(state, opts, this.kubeProxy);
    const generated = performance.now();
    try {
      // As syncProxyRules does on a full sync, before its iptables-restore: each jump's
      // target chain (iptables -N unless it exists), then the jump from the built-in
      // chain (iptables -C, else -I). On the first sync the chains are still empty, so
      // these are cheap.
      if (!rules.partial) this.ensureJumps(rules.jumps);
      this.netfilter.restore(rules.restoreText, { noflush: true });
    } catch (err) {
      // The next sync starts from what is there: a full one.
      this.syncedGeneration = -1;
      this.syncFailures++;
      throw err;
    }
    // The previous sync is kept for the next one's diff; its texts are not needed.
    this.kubeProxy = { ...rules, filter: '', nat: '', restoreText: '' };
    this.syncedGeneration = this.netfilter.generation;
    if (!rules.partial) this.lastFullSync = Date.now();
    const done = performance.now();
    this.syncDurations.observe((done - started) / 1000);
    const ms = (x: number) => Math.round(x * 10) / 10;
    this.lastSync = {
      services: state.services.length,
      durationMs: ms(done - started),
      generateMs: ms(generated - started),
      applyMs: ms(done - generated),
      partial: rules.partial,
      writtenServices: rules.writtenServices,
      at: new Date().toISOString(),
    };
    this.logger.info({ ...this.lastSync }, 'kube-proxy rules synced');
  }

  private ensureJumps(jumps: readonly string[][]): void {
    for (const jump of jumps) {
      const table = jump[1]!;
      const target = jump[jump.length - 1]!;
      if (!this.netfilter.hasChain(table, target))
        this.netfilter.command(['-t', table, '-N', target]);
      const check = jump.map((a) => (a === '-I' || a === '-A' ? '-C' : a));
      try {
        this.netfilter.command(check);
      } catch {
        this.netfilter.command(jump);
      }
    }
  }

  tick(): void {
    this.conntrack.tick();
  }

  conntrackList(filter: Parameters<Conntrack['list']>[0]): string[] {
    return this.conntrack.list(filter).map(formatConntrackEntry);
  }
}
