import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import {
  Exposition,
  Histogram,
  METRICS_CONTENT_TYPE,
  SYNC_BUCKETS,
  collectAgentMetrics,
  escapeLabelValue,
  formatValue,
  renderAgentMetrics,
  serveMetrics,
  type AgentMetricsSnapshot,
} from '../../../src/agent/metrics.js';
import { NodeKernel } from '../../../src/agent/node-kernel.js';
import { DropReason, dropReasonNames } from '../../../src/dataplane/drops.js';
import { Hook, Verdict } from '../../../src/netfilter/packet-meta.js';
import { W1, feed, silentLogger, tcpSyn, worker1 } from '../dataplane/helpers.js';

/**
 * A small reader of the text format (0.0.4), strict about what Prometheus rejects:
 * every sample belongs to the family declared by the HELP and TYPE lines before it,
 * families are declared once, names and labels are well formed.
 */
function parseExposition(
  text: string,
): Map<string, { type: string; help: string; samples: Map<string, number> }> {
  const families = new Map<string, { type: string; help: string; samples: Map<string, number> }>();
  assert.ok(text.endsWith('\n'), 'ends with a line feed');
  let current: string | null = null;
  for (const line of text.slice(0, -1).split('\n')) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (help) {
      assert.ok(!families.has(help[1]!), `family ${help[1]} declared twice`);
      families.set(help[1]!, { type: '', help: help[2]!, samples: new Map() });
      current = help[1]!;
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (type) {
      assert.equal(type[1], current, 'TYPE follows its HELP');
      families.get(current!)!.type = type[2]!;
      continue;
    }
    const m =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (\S+)$/.exec(
        line,
      );
    assert.ok(m, `malformed line: ${line}`);
    const name = m[1]!;
    const fam = families.get(current!)!;
    const base = fam.type === 'histogram' ? name.replace(/_(bucket|sum|count)$/, '') : name;
    assert.equal(base, current, `sample ${name} outside its family`);
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(value) || m[3] === 'NaN', `value of ${line}`);
    fam.samples.set(name + (m[2] ?? ''), value);
  }
  return families;
}

function snapshot(over: Partial<AgentMetricsSnapshot> = {}): AgentMetricsSnapshot {
  const verdicts = new Float64Array(15);
  verdicts[Hook.PREROUTING * 3 + Verdict.ACCEPT] = 12;
  verdicts[Hook.FORWARD * 3 + Verdict.REJECT] = 1;
  const drops = new Float64Array(dropReasonNames.length);
  drops[DropReason.NoRoute] = 3;
  const sync = new Histogram(SYNC_BUCKETS);
  sync.observe(0.0015);
  sync.observe(0.003);
  sync.observe(20);
  return {
    hookVerdicts: verdicts,
    drops,
    conntrack: {
      entries: 4,
      found: 0,
      invalid: 2,
      insert: 9,
      insert_failed: 1,
      drop: 1,
      early_drop: 0,
      error: 0,
      search_restart: 0,
      clash_resolve: 0,
      chaintoolong: 0,
    },
    conntrackMax: 131072,
    interfaces: [
      {
        name: 'eth0',
        counters: { rxPackets: 10, rxBytes: 1000, txPackets: 8, txBytes: 800, txDropped: 0 },
      },
      {
        name: 'cali1234567890a',
        counters: { rxPackets: 1, rxBytes: 60, txPackets: 2, txBytes: 120, txDropped: 1 },
      },
    ],
    rules: [
      { table: 'filter', rules: 7 },
      { table: 'nat', rules: 30 },
    ],
    syncDurations: sync,
    lastSyncSeconds: 1767225600.5,
    syncFailures: 0,
    ...over,
  };
}

describe('Prometheus text exposition', () => {
  it('values and label escaping as the format wants them', () => {
    assert.equal(formatValue(3), '3');
    assert.equal(formatValue(0.25), '0.25');
    assert.equal(formatValue(Infinity), '+Inf');
    assert.equal(formatValue(-Infinity), '-Inf');
    assert.equal(formatValue(NaN), 'NaN');
    assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
    const e = new Exposition()
      .family('x_total', 'counter', 'Help with \\ and\nnewline.')
      .sample('x_total', 1, { dev: 'we"ird' })
      .text();
    assert.equal(
      e,
      '# HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\nx_total{dev="we\\"ird"} 1\n',
    );
  });

  it('histograms are cumulative with +Inf, _sum and _count', () => {
    const h = new Histogram([0.1, 1]);
    h.observe(0.05);
    h.observe(0.5);
    h.observe(5);
    assert.equal(
      new Exposition().histogram('d_seconds', 'D.', h).text(),
      [
        '# HELP d_seconds D.',
        '# TYPE d_seconds histogram',
        'd_seconds_bucket{le="0.1"} 1',
        'd_seconds_bucket{le="1"} 2',
        'd_seconds_bucket{le="+Inf"} 3',
        'd_seconds_sum 5.55',
        'd_seconds_count 3',
        '',
      ].join('\n'),
    );
  });

  it("the agent's families, well formed, with the counters' values", () => {
    const fams = parseExposition(renderAgentMetrics(snapshot()));
    const v = (fam: string, sample: string) => fams.get(fam)?.samples.get(sample);
    assert.equal(fams.get('kubewire_netfilter_packets_total')!.type, 'counter');
    assert.equal(fams.get('kubewire_netfilter_packets_total')!.samples.size, 15);
    assert.equal(
      v(
        'kubewire_netfilter_packets_total',
        'kubewire_netfilter_packets_total{hook="PREROUTING",verdict="ACCEPT"}',
      ),
      12,
    );
    assert.equal(
      v(
        'kubewire_netfilter_packets_total',
        'kubewire_netfilter_packets_total{hook="FORWARD",verdict="REJECT"}',
      ),
      1,
    );
    assert.equal(fams.get('kubewire_drops_total')!.samples.size, dropReasonNames.length);
    assert.equal(v('kubewire_drops_total', 'kubewire_drops_total{reason="no-route"}'), 3);
    assert.equal(v('kubewire_drops_total', 'kubewire_drops_total{reason="blackhole"}'), 0);
    assert.equal(v('kubewire_netfilter_rules', 'kubewire_netfilter_rules{table="nat"}'), 30);
    assert.equal(v('node_nf_conntrack_entries', 'node_nf_conntrack_entries'), 4);
    assert.equal(v('node_nf_conntrack_entries_limit', 'node_nf_conntrack_entries_limit'), 131072);
    assert.equal(v('node_nf_conntrack_stat_insert', 'node_nf_conntrack_stat_insert'), 9);
    assert.equal(v('node_nf_conntrack_stat_early_drop', 'node_nf_conntrack_stat_early_drop'), 0);
    assert.equal(
      v('node_nf_conntrack_stat_insert_failed', 'node_nf_conntrack_stat_insert_failed'),
      1,
    );
    assert.equal(fams.get('node_nf_conntrack_stat_found')!.type, 'gauge', 'as node_exporter');
    assert.equal(
      v('node_network_receive_packets_total', 'node_network_receive_packets_total{device="eth0"}'),
      10,
    );
    assert.equal(
      v(
        'node_network_transmit_drop_total',
        'node_network_transmit_drop_total{device="cali1234567890a"}',
      ),
      1,
    );
    const sync = fams.get('kubeproxy_sync_proxy_rules_duration_seconds')!;
    assert.equal(sync.type, 'histogram');
    assert.equal(
      sync.samples.get('kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.001"}'),
      0,
    );
    assert.equal(
      sync.samples.get('kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.002"}'),
      1,
    );
    assert.equal(
      sync.samples.get('kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.004"}'),
      2,
    );
    assert.equal(
      sync.samples.get('kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="16.384"}'),
      2,
    );
    assert.equal(
      sync.samples.get('kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"}'),
      3,
    );
    assert.equal(sync.samples.get('kubeproxy_sync_proxy_rules_duration_seconds_count'), 3);
    assert.equal(
      v(
        'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
        'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      ),
      1767225600.5,
    );
    assert.equal(fams.has('process_resident_memory_bytes'), false, 'only when given');
  });

  it('without netfilter or a first sync, those families are left out', () => {
    const fams = parseExposition(
      renderAgentMetrics(
        snapshot({ hookVerdicts: null, conntrack: null, rules: [], lastSyncSeconds: null }),
      ),
    );
    for (const f of [
      'kubewire_netfilter_packets_total',
      'node_nf_conntrack_entries',
      'kubewire_netfilter_rules',
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
    ])
      assert.equal(fams.has(f), false, f);
    assert.ok(fams.has('kubewire_drops_total'));
  });

  it("collects from a node's forwarder, netfilter and conntrack", () => {
    const lab = worker1();
    const kernel = new NodeKernel(lab.fwd, 'worker-1', silentLogger, () => W1.tunlIp);
    kernel.netfilter.command(['-t', 'filter', '-A', 'FORWARD', '-p', 'udp', '-j', 'DROP']);
    feed(lab.fwd, lab.caliA, tcpSyn({ src: W1.podA, dst: W1.podB }, 1000, 80));
    const fams = parseExposition(renderAgentMetrics(collectAgentMetrics(lab.fwd, kernel)));
    const v = (fam: string, sample: string) => fams.get(fam)?.samples.get(sample);
    assert.equal(
      v(
        'kubewire_netfilter_packets_total',
        'kubewire_netfilter_packets_total{hook="FORWARD",verdict="ACCEPT"}',
      ),
      1,
    );
    assert.equal(v('node_nf_conntrack_entries', 'node_nf_conntrack_entries'), 1);
    assert.equal(v('node_nf_conntrack_stat_insert', 'node_nf_conntrack_stat_insert'), 1);
    assert.equal(
      v(
        'node_network_receive_packets_total',
        'node_network_receive_packets_total{device="cali1234567890a"}',
      ),
      1,
    );
    assert.equal(
      v(
        'node_network_transmit_packets_total',
        'node_network_transmit_packets_total{device="calib0b0b0b0b0b"}',
      ),
      1,
    );
    assert.equal(v('kubewire_netfilter_rules', 'kubewire_netfilter_rules{table="filter"}'), 1);
    assert.ok((v('process_resident_memory_bytes', 'process_resident_memory_bytes') ?? 0) > 0);
  });

  it('GET /metrics over HTTP with the exposition content type; 404 elsewhere', async () => {
    let body = 'a_total 1\n';
    const server = await serveMetrics('127.0.0.1:0', () => body);
    const port = (server.address() as AddressInfo).port;
    const get = (path: string, method = 'GET') =>
      new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () =>
            resolve({
              status: res.statusCode!,
              type: String(res.headers['content-type']),
              body: b,
            }),
          );
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const r = await get('/metrics');
      assert.equal(r.status, 200);
      assert.equal(r.type, METRICS_CONTENT_TYPE);
      assert.equal(r.body, 'a_total 1\n');
      body = 'a_total 2\n';
      assert.equal((await get('/metrics?x=1')).body, 'a_total 2\n', 'rendered per scrape');
      assert.equal((await get('/')).status, 404);
      assert.equal((await get('/metrics', 'POST')).status, 405);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
