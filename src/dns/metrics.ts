/**
 * A small Prometheus registry (counters, gauges, histograms with labels) and the text
 * exposition format 0.0.4, for the prometheus plugin. Label values are joined into one
 * key per series; hot-path callers keep the series object they get from `labels()`.
 */

type LabelValues = readonly string[];

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatLabels(names: readonly string[], values: LabelValues, extra = ''): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function formatNumber(v: number): string {
  if (v === Infinity) return '+Inf';
  if (Number.isInteger(v)) return String(v);
  return String(v);
}

abstract class Family<S> {
  readonly series = new Map<string, { values: LabelValues; s: S }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}
  protected abstract make(): S;
  labels(...values: string[]): S {
    const key = values.join('\u0000');
    let e = this.series.get(key);
    if (!e) {
      e = { values, s: this.make() };
      this.series.set(key, e);
    }
    return e.s;
  }
  abstract render(): string;
}

export class CounterSeries {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class Counter extends Family<CounterSeries> {
  protected make(): CounterSeries {
    return new CounterSeries();
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const { values, s } of this.series.values()) {
      out += `${this.name}${formatLabels(this.labelNames, values)} ${formatNumber(s.value)}\n`;
    }
    return out;
  }
}

export class GaugeSeries {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
}

export class Gauge extends Family<GaugeSeries> {
  /** Called before rendering, to refresh values computed on demand. */
  collect?: () => void;
  protected make(): GaugeSeries {
    return new GaugeSeries();
  }
  render(): string {
    this.collect?.();
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n`;
    for (const { values, s } of this.series.values()) {
      out += `${this.name}${formatLabels(this.labelNames, values)} ${formatNumber(s.value)}\n`;
    }
    return out;
  }
}

export class HistogramSeries {
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

export class Histogram extends Family<HistogramSeries> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames);
  }
  protected make(): HistogramSeries {
    return new HistogramSeries(this.buckets);
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const { values, s } of this.series.values()) {
      let cum = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cum += s.counts[i]!;
        const le = `le="${formatNumber(this.buckets[i]!)}"`;
        out += `${this.name}_bucket${formatLabels(this.labelNames, values, le)} ${cum}\n`;
      }
      out += `${this.name}_bucket${formatLabels(this.labelNames, values, 'le="+Inf"')} ${s.count}\n`;
      out += `${this.name}_sum${formatLabels(this.labelNames, values)} ${s.sum}\n`;
      out += `${this.name}_count${formatLabels(this.labelNames, values)} ${s.count}\n`;
    }
    return out;
  }
}

/** Exponential buckets as Prometheus' client_golang ExponentialBuckets. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  let v = start;
  for (let i = 0; i < count; i++) {
    out.push(Number(v.toPrecision(12)));
    v *= factor;
  }
  return out;
}

export class Registry {
  private readonly families = new Map<string, Family<unknown>>();
  counter(name: string, help: string, labels: readonly string[]): Counter {
    return this.get(name, () => new Counter(name, help, labels)) as Counter;
  }
  gauge(name: string, help: string, labels: readonly string[]): Gauge {
    return this.get(name, () => new Gauge(name, help, labels)) as Gauge;
  }
  histogram(
    name: string,
    help: string,
    labels: readonly string[],
    buckets: readonly number[],
  ): Histogram {
    return this.get(name, () => new Histogram(name, help, labels, buckets)) as Histogram;
  }
  private get(name: string, make: () => Family<unknown>): Family<unknown> {
    let f = this.families.get(name);
    if (!f) {
      f = make();
      this.families.set(name, f);
    }
    return f;
  }
  render(): string {
    return [...this.families.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((f) => f.render())
      .join('');
  }
}

/** CoreDNS's duration buckets (plugin/pkg/dnstest… vars.go): 0.00025 × 2^k, 16 buckets. */
export const DURATION_BUCKETS = exponentialBuckets(0.00025, 2, 16);
/** Request/response size buckets (plugin/metrics/vars). */
export const SIZE_BUCKETS = [
  0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000,
];

/**
 * The metric families CoreDNS exports (names and labels as in plugin/metrics/vars,
 * plugin/cache/metrics.go, plugin/forward/metrics.go, plugin/hosts, plugin/reload).
 * One instance per process, shared by every server block.
 */
export class Metrics {
  readonly registry = new Registry();
  /** Set by the prometheus plugin: when false, nothing is recorded on the hot path. */
  enabled = false;
  readonly requests = this.registry.counter(
    'coredns_dns_requests_total',
    'Counter of DNS requests made per zone, protocol and family.',
    ['server', 'zone', 'view', 'proto', 'family', 'type'],
  );
  readonly responses = this.registry.counter(
    'coredns_dns_responses_total',
    'Counter of response status codes.',
    ['server', 'zone', 'view', 'rcode', 'plugin'],
  );
  readonly duration = this.registry.histogram(
    'coredns_dns_request_duration_seconds',
    'Histogram of the time (in seconds) each request took per zone.',
    ['server', 'zone', 'view', 'type'],
    DURATION_BUCKETS,
  );
  readonly requestSize = this.registry.histogram(
    'coredns_dns_request_size_bytes',
    'Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.',
    ['server', 'zone', 'view', 'proto'],
    SIZE_BUCKETS,
  );
  readonly responseSize = this.registry.histogram(
    'coredns_dns_response_size_bytes',
    'Size of the returned response in bytes.',
    ['server', 'zone', 'view', 'proto'],
    SIZE_BUCKETS,
  );
  readonly doRequests = this.registry.counter(
    'coredns_dns_do_requests_total',
    'Counter of DNS requests with DO bit set per zone.',
    ['server', 'zone', 'view'],
  );
  readonly cacheEntries = this.registry.gauge(
    'coredns_cache_entries',
    'The number of elements in the cache.',
    ['server', 'type', 'zones', 'view'],
  );
  readonly cacheHits = this.registry.counter(
    'coredns_cache_hits_total',
    'The count of cache hits.',
    ['server', 'type', 'zones', 'view'],
  );
  readonly cacheMisses = this.registry.counter(
    'coredns_cache_misses_total',
    'The count of cache misses. Deprecated, derive misses from cache hits/requests counters.',
    ['server', 'zones', 'view'],
  );
  readonly cacheRequests = this.registry.counter(
    'coredns_cache_requests_total',
    'The count of cache requests.',
    ['server', 'zones', 'view'],
  );
  readonly cacheServedStale = this.registry.counter(
    'coredns_cache_served_stale_total',
    'The number of requests served from stale cache entries.',
    ['server', 'zones', 'view'],
  );
  readonly cacheEvictions = this.registry.counter(
    'coredns_cache_evictions_total',
    'The count of cache evictions.',
    ['server', 'type', 'zones', 'view'],
  );
  readonly forwardRequests = this.registry.counter(
    'coredns_forward_requests_total',
    'Counter of requests made per upstream.',
    ['to'],
  );
  readonly forwardResponses = this.registry.counter(
    'coredns_forward_responses_total',
    'Counter of responses received per upstream.',
    ['rcode', 'to'],
  );
  readonly forwardDuration = this.registry.histogram(
    'coredns_forward_request_duration_seconds',
    'Histogram of the time each request took.',
    ['to', 'rcode'],
    DURATION_BUCKETS,
  );
  readonly forwardHealthcheckFailures = this.registry.counter(
    'coredns_forward_healthcheck_failures_total',
    'Counter of the number of failed healthchecks.',
    ['to'],
  );
  readonly forwardHealthcheckBroken = this.registry.counter(
    'coredns_forward_healthcheck_broken_total',
    'Counter of the number of complete failures of the healthchecks.',
    [],
  );
  readonly forwardMaxConcurrentRejects = this.registry.counter(
    'coredns_forward_max_concurrent_rejects_total',
    'Counter of the number of queries rejected because the concurrent queries were at maximum.',
    [],
  );
  readonly hostsEntries = this.registry.gauge(
    'coredns_hosts_entries',
    'The combined number of entries in hosts and Corefile.',
    [],
  );
  readonly reloadFailed = this.registry.counter(
    'coredns_reload_failed_total',
    'Counter of the number of failed reload attempts.',
    [],
  );
  readonly pluginEnabled = this.registry.gauge(
    'coredns_plugin_enabled',
    'A metric that indicates whether a plugin is enabled on per server and zone basis.',
    ['server', 'zone', 'view', 'name'],
  );
  readonly buildInfo = this.registry.gauge(
    'coredns_build_info',
    'A metric with a constant 1 value labeled by version, revision, and goversion from which CoreDNS was built.',
    ['version', 'revision', 'goversion'],
  );
  readonly panics = this.registry.counter(
    'coredns_panics_total',
    'A metrics that counts the number of panics.',
    [],
  );
  readonly healthDuration = this.registry.histogram(
    'coredns_health_request_duration_seconds',
    'Histogram of the time (in seconds) each request took.',
    [],
    exponentialBuckets(0.00025, 10, 5),
  );
  readonly kubernetesObjects = this.registry.gauge(
    'kubewire_dns_kubernetes_objects',
    'Services, endpoints and pods in the DNS index (kubewire).',
    ['kind'],
  );

  constructor() {
    this.buildInfo.labels('1.11.1-kubewire', 'kubewire', process.version).set(1);
    this.panics.labels();
    this.reloadFailed.labels();
  }
}
