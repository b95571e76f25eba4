/**
 * prometheus — `GET /metrics` in the Prometheus text format with CoreDNS's metric names
 * (plugin/metrics): coredns_dns_requests_total, coredns_dns_responses_total,
 * coredns_dns_request_duration_seconds, coredns_dns_request_size_bytes,
 * coredns_dns_response_size_bytes, coredns_cache_*, coredns_forward_*, … Records each
 * request after its response is written.
 *
 *   prometheus [ADDRESS]      ADDRESS default localhost:9153
 */
import { performance } from 'node:perf_hooks';
import type { CounterSeries, HistogramSeries, Metrics } from '../metrics.js';
import {
  afterWrite,
  argError,
  noBlock,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
  type Runtime,
} from '../plugin.js';
import { fqdn, rcodeName, typeName, type DnsMessage } from '../wire.js';

/** CoreDNS records only common types by name; others are "other" (plugin/metrics/vars/report.go). */
const MONITORED = new Set([
  'A',
  'AAAA',
  'NS',
  'PTR',
  'SOA',
  'MX',
  'TXT',
  'SRV',
  'CNAME',
  'ANY',
  'HINFO',
  'NAPTR',
  'DS',
  'DNSKEY',
  'RRSIG',
  'NSEC',
  'NSEC3',
  'CAA',
  'AXFR',
  'IXFR',
  'SVCB',
  'HTTPS',
]);

interface Series {
  requests: CounterSeries;
  duration: HistogramSeries;
  requestSize: HistogramSeries;
  responseSize: HistogramSeries;
  doRequests: CounterSeries;
}

function typeLabel(t: number): string {
  const name = typeName(t);
  return MONITORED.has(name) ? name : 'other';
}

/**
 * Records one request. Series are looked up once per (zone, proto, family, type) and
 * (zone, plugin, rcode) and kept in `cache` (nested maps keyed by the request's own
 * strings and numbers: nothing is concatenated per query).
 */
export function reportRequest(
  metrics: Metrics,
  cache: SeriesCache,
  req: DnsRequest,
  m: DnsMessage,
  size: number,
): void {
  const qtype = req.q.question.type;
  let byZone = cache.requests.get(req.zone);
  if (byZone === undefined) {
    byZone = new Map();
    cache.requests.set(req.zone, byZone);
  }
  const k = qtype * 4 + (req.proto === 'tcp' ? 2 : 0) + (req.family === 6 ? 1 : 0);
  let s = byZone.get(k);
  if (s === undefined) {
    const zone = fqdn(req.zone);
    const type = typeLabel(qtype);
    const fam = req.family === 4 ? '1' : '2';
    s = {
      requests: metrics.requests.labels(req.server, zone, '', req.proto, fam, type),
      duration: metrics.duration.labels(req.server, zone, '', type),
      requestSize: metrics.requestSize.labels(req.server, zone, '', req.proto),
      responseSize: metrics.responseSize.labels(req.server, zone, '', req.proto),
      doRequests: metrics.doRequests.labels(req.server, zone, ''),
    };
    byZone.set(k, s);
  }
  s.requests.value++;
  const edns = req.q.edns;
  if (edns !== null && edns.do) s.doRequests.value++;
  s.duration.observe((performance.now() - req.start) / 1000);
  s.requestSize.observe(req.proto === 'tcp' ? 65535 : edns !== null ? edns.udpSize : 512);
  s.responseSize.observe(size);
  const plugin = m.plugin ?? '';
  let byPlugin = cache.responses.get(req.zone);
  if (byPlugin === undefined) {
    byPlugin = new Map();
    cache.responses.set(req.zone, byPlugin);
  }
  let byRcode = byPlugin.get(plugin);
  if (byRcode === undefined) {
    byRcode = new Map();
    byPlugin.set(plugin, byRcode);
  }
  let r = byRcode.get(m.rcode);
  if (r === undefined) {
    r = metrics.responses.labels(req.server, fqdn(req.zone), '', rcodeName(m.rcode), plugin);
    byRcode.set(m.rcode, r);
  }
  r.value++;
}

export interface SeriesCache {
  requests: Map<string, Map<number, Series>>;
  responses: Map<string, Map<string, Map<number, CounterSeries>>>;
}

export class PrometheusPlugin implements PluginInstance {
  readonly name = 'prometheus';
  port = 0;
  private metrics: Metrics | null = null;
  private readonly cache: SeriesCache = { requests: new Map(), responses: new Map() };
  private readonly record = (req: DnsRequest, m: DnsMessage, size: number): void => {
    if (this.metrics) reportRequest(this.metrics, this.cache, req, m, size);
  };
  constructor(
    readonly address: string,
    metrics: Metrics,
  ) {
    this.metrics = metrics;
    metrics.enabled = true;
  }
  async start(rt: Runtime): Promise<void> {
    const { port } = await rt.http(this.address, '/metrics', () => ({
      status: 200,
      body: rt.metrics.registry.render(),
      type: 'text/plain; version=0.0.4; charset=utf-8',
    }));
    this.port = port;
  }
  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    if (req.depth === 0) afterWrite(req, this.record);
    return next(req);
  }
}

export const prometheus: PluginSpec = {
  name: 'prometheus',
  once: true,
  setup(d, ctx) {
    if (d.args.length > 1) argError(ctx, d, 'prometheus: expected at most one address', 1);
    noBlock(ctx, d);
    for (const z of ctx.zones) {
      ctx.metrics.pluginEnabled.labels(ctx.server, fqdn(z), '', 'prometheus').set(1);
    }
    return new PrometheusPlugin(d.args[0] ?? 'localhost:9153', ctx.metrics);
  },
};
