/**
 * Reads `dnsperf -v` output on stdin (`> NOERROR name type 0.000123`) and prints the
 * latency percentiles in milliseconds as JSON: {"n":…,"p50":…,"p90":…,"p99":…,"p999":…,"max":…}.
 */
import { createInterface } from 'node:readline';

const lat: number[] = [];
const rl = createInterface({ input: process.stdin });
rl.on('line', (l) => {
  const m = /^> \S+ .* (\d+\.\d+)$/.exec(l);
  if (m) lat.push(Number(m[1]) * 1000);
});
rl.on('close', () => {
  lat.sort((a, b) => a - b);
  const p = (q: number) =>
    lat.length ? lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]! : NaN;
  const r = (v: number) => Math.round(v * 1000) / 1000;
  process.stdout.write(
    JSON.stringify({
      n: lat.length,
      p50: r(p(0.5)),
      p90: r(p(0.9)),
      p99: r(p(0.99)),
      p999: r(p(0.999)),
      max: r(lat[lat.length - 1] ?? NaN),
    }) + '\n',
  );
});
