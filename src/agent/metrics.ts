/**
 * The agent's Prometheus metrics, in the text exposition format 0.0.4, served
 * by `kubewire metrics --node NAME` and over HTTP on the node at kube-proxy's
 * metrics port (10249, path /metrics).
 *
 * Nothing is counted for the metrics on the data path beyond the counters the
 * agent keeps anyway (drops by reason, interface counters, conntrack -S, the
 * hook pipeline's verdicts): a scrape reads them. Names follow the programs
 * whose numbers they are: kube-proxy's kubeproxy_sync_proxy_rules_*,
 * node_exporter's node_nf_conntrack_* and node_network_*, client_golang's
 * process_*; what only kubewire has is kubewire_*.
 */
import { createServer, type Server } from 'node:http';
import type { ConntrackStats } from '../conntrack/index.js';
import { dropReasonNames } from '../dataplane/drops.js';
import type { Forwarder } from '../dataplane/forwarder.js';
import type { InterfaceCounters } from '../dataplane/interface.js';
import { hookNames } from '../netfilter/packet-meta.js';
import type { TableName } from '../netfilter/netfilter.js';
import type { NodeKernel } from './node-kernel.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** kube-proxy's buckets for sync_proxy_rules_duration_seconds: ExponentialBuckets(0.001, 2, 15). */
export const SYNC_BUCKETS: readonly number[] = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);

/** A cumulative histogram as Prometheus keeps one (per-bucket counts, sum, count). */
export class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Float64Array(buckets.length);
  }
  observe(v: number): void {
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += v;
    this.count++;
  }
}

/** A sample value as the text format writes it: NaN, +Inf, -Inf, or the number. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Label values escape backslash, double quote and line feed. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and line feed. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export type Labels = Readonly<Record<string, string>>;

function labelText(labels: Labels | undefined, extra?: string): string {
  const parts: string[] = [];
  if (labels)
    for (const [k, v] of Object.entries(labels)) parts.push(`${k}="${escapeLabelValue(v)}"`);
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Writes one exposition: families with their HELP and TYPE lines, then their samples. */
export class Exposition {
  private out = '';

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): this {
    this.out += `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
    return this;
  }

  sample(name: string, value: number, labels?: Labels): this {
    this.out += `${name}${labelText(labels)} ${formatValue(value)}\n`;
    return this;
  }

  /** A one-sample family. */
  single(name: string, type: 'counter' | 'gauge', help: string, value: number): this {
    return this.family(name, type, help).sample(name, value);
  }

  histogram(name: string, help: string, h: Histogram, labels?: Labels): this {
    this.family(name, 'histogram', help);
    let cumulative = 0;
    h.buckets.forEach((le, i) => {
      cumulative += h.counts[i]!;
      this.out += `${name}_bucket${labelText(labels, `le="${formatValue(le)}"`)} ${formatValue(cumulative)}\n`;
    });
    this.out += `${name}_bucket${labelText(labels, 'le="+Inf"')} ${formatValue(h.count)}\n`;
    this.out += `${name}_sum${labelText(labels)} ${formatValue(h.sum)}\n`;
    this.out += `${name}_count${labelText(labels)} ${formatValue(h.count)}\n`;
    return this;
  }

  text(): string {
    return this.out;
  }
}

/** What one scrape reads from the agent. */
export interface AgentMetricsSnapshot {
  /** HookPipeline.verdicts: [hook * 3 + verdict]; null without netfilter. */
  hookVerdicts: ArrayLike<number> | null;
  /** DropCounters.counts, by DropReason. */
  drops: ArrayLike<number>;
  conntrack: ConntrackStats | null;
  conntrackMax: number;
  interfaces: ReadonlyArray<{ name: string; counters: InterfaceCounters }>;
  /** Rules per netfilter table. */
  rules: ReadonlyArray<{ table: string; rules: number }>;
  syncDurations: Histogram;
  /** Seconds since the epoch of the last successful sync, null before the first. */
  lastSyncSeconds: number | null;
  syncFailures: number;
  process?: { residentBytes: number; startTimeSeconds: number; cpuSeconds: number };
}

const VERDICT_NAMES = ['ACCEPT', 'DROP', 'REJECT'] as const;

export function renderAgentMetrics(s: AgentMetricsSnapshot): string {
  const e = new Exposition();

  if (s.hookVerdicts !== null) {
    e.family(
      'kubewire_netfilter_packets_total',
      'counter',
      'Packets through each netfilter hook of the node, by the verdict of its tables.',
    );
    hookNames.forEach((hook, h) => {
      VERDICT_NAMES.forEach((verdict, v) => {
        e.sample('kubewire_netfilter_packets_total', s.hookVerdicts![h * 3 + v] ?? 0, {
          hook,
          verdict,
        });
      });
    });
  }

  e.family(
    'kubewire_drops_total',
    'counter',
    'Frames the node did not forward or deliver, by reason (kubewire stats).',
  );
  dropReasonNames.forEach((reason, i) => {
    e.sample('kubewire_drops_total', s.drops[i] ?? 0, { reason });
  });

  if (s.rules.length > 0) {
    e.family('kubewire_netfilter_rules', 'gauge', 'Rules in each netfilter table of the node.');
    for (const r of s.rules) e.sample('kubewire_netfilter_rules', r.rules, { table: r.table });
  }

  if (s.conntrack !== null) {
    const ct = s.conntrack;
    e.single(
      'node_nf_conntrack_entries',
      'gauge',
      'Number of currently allocated flow entries for connection tracking.',
      ct.entries,
    );
    e.single(
      'node_nf_conntrack_entries_limit',
      'gauge',
      'Maximum size of connection tracking table.',
      s.conntrackMax,
    );
    const stat: Array<[keyof ConntrackStats, string, string]> = [
      ['drop', 'drop', 'Number of packets dropped due to conntrack failure.'],
      [
        'early_drop',
        'early_drop',
        'Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.',
      ],
      ['found', 'found', 'Number of searched entries which were successful.'],
      ['insert', 'insert', 'Number of entries inserted into the list.'],
      [
        'insert_failed',
        'insert_failed',
        'Number of entries for which list insertion was attempted but failed.',
      ],
      ['invalid', 'invalid', 'Number of packets seen which can not be tracked.'],
      [
        'search_restart',
        'search_restart',
        'Number of conntrack table lookups which had to be restarted due to hashtable resizes.',
      ],
    ];
    for (const [key, name, help] of stat)
      e.single(`node_nf_conntrack_stat_${name}`, 'gauge', help, ct[key]);
  }

  const dev: Array<[string, keyof InterfaceCounters]> = [
    ['receive_bytes', 'rxBytes'],
    ['receive_packets', 'rxPackets'],
    ['transmit_bytes', 'txBytes'],
    ['transmit_drop', 'txDropped'],
    ['transmit_packets', 'txPackets'],
  ];
  for (const [stat, key] of dev) {
    const name = `node_network_${stat}_total`;
    e.family(name, 'counter', `Network device statistic ${stat}.`);
    for (const i of s.interfaces) e.sample(name, i.counters[key], { device: i.name });
  }

  e.histogram(
    'kubeproxy_sync_proxy_rules_duration_seconds',
    'SyncProxyRules latency in seconds',
    s.syncDurations,
  );
  if (s.lastSyncSeconds !== null) {
    e.single(
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'gauge',
      'The last time proxy rules were successfully synced',
      s.lastSyncSeconds,
    );
  }
  e.single(
    'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
    'counter',
    'Cumulative proxy iptables restore failures',
    s.syncFailures,
  );

  if (s.process) {
    e.single(
      'process_cpu_seconds_total',
      'counter',
      'Total user and system CPU time spent in seconds.',
      s.process.cpuSeconds,
    );
    e.single(
      'process_resident_memory_bytes',
      'gauge',
      'Resident memory size in bytes.',
      s.process.residentBytes,
    );
    e.single(
      'process_start_time_seconds',
      'gauge',
      'Start time of the process since unix epoch in seconds.',
      s.process.startTimeSeconds,
    );
  }
  return e.text();
}

/** process_* of this process. */
export function processMetrics(): {
  residentBytes: number;
  startTimeSeconds: number;
  cpuSeconds: number;
} {
  const cpu = process.cpuUsage();
  return {
    residentBytes: process.memoryUsage.rss(),
    startTimeSeconds: Math.round((Date.now() / 1000 - process.uptime()) * 1000) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

/** Reads the node's counters for one scrape. */
export function collectAgentMetrics(fwd: Forwarder, kernel: NodeKernel): AgentMetricsSnapshot {
  const nf = kernel.netfilter;
  const rules = nf
    .tableNames()
    .sort()
    .map((table) => {
      let n = 0;
      for (const c of nf.committedTable(table as TableName).chains.values()) n += c.rules.length;
      return { table, rules: n };
    });
  return {
    hookVerdicts: fwd.hooks?.verdicts ?? null,
    drops: fwd.drops.counts,
    conntrack: kernel.conntrack.stats(),
    conntrackMax: kernel.conntrack.maxEntries,
    interfaces: fwd.interfaces,
    rules,
    syncDurations: kernel.syncDurations,
    lastSyncSeconds: kernel.lastSync ? Date.parse(kernel.lastSync.at) / 1000 : null,
    syncFailures: kernel.syncFailures,
    process: processMetrics(),
  };
}

/**
 * kube-proxy's metrics endpoint: GET /metrics answers the exposition; anything
 * else 404 (405 for other methods on /metrics). `address` is host:port as
 * kube-proxy's --metrics-bind-address.
 */
export async function serveMetrics(address: string, render: () => string): Promise<Server> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon) || '0.0.0.0';
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`metrics address ${address}: expected HOST:PORT`);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('404 page not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' });
      res.end();
      return;
    }
    let body: string;
    try {
      body = render();
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`error collecting metrics: ${(err as Error).message}\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': METRICS_CONTENT_TYPE,
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
