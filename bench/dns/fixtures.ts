/**
 * Fixtures for the DNS benchmark (bench/dns/run.sh): N ClusterIP Services in manifests
 * for kubewire, the same records as a zone file for a reference authoritative server
 * (nsd), two Corefiles and the query mix.
 *
 *   node dist/bench/dns/fixtures.js OUTDIR [N]
 *
 * Records per Service i (namespace default, ClusterIP 10.96.<i/250>.<i%250+1>, port
 * http/80/TCP): `svc<i>.default.svc.cluster.local A` and
 * `_http._tcp.svc<i>.default.svc.cluster.local SRV 0 100 80 svc<i>…`, TTL 30 — the
 * kubeadm Corefile's ttl. The mix: every A, every SRV and N/5 names that do not exist
 * (NXDOMAIN), in a fixed shuffled order.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2];
const n = Number(process.argv[3] ?? 1000);
if (!out || !Number.isInteger(n) || n < 1 || n > 60000) {
  process.stderr.write('usage: fixtures.js OUTDIR [SERVICES]\n');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const ip = (i: number) => `10.96.${Math.floor(i / 250) + 100}.${(i % 250) + 1}`;

const docs = [
  `apiVersion: v1
kind: Node
metadata: {name: worker-1}
status: {addresses: [{type: InternalIP, address: 10.1.110.102}]}`,
];
for (let i = 0; i < n; i++) {
  docs.push(`apiVersion: v1
kind: Service
metadata: {name: svc${i}, namespace: default}
spec:
  clusterIP: ${ip(i)}
  selector: {app: svc${i}}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]`);
}
mkdirSync(join(out, 'manifests'), { recursive: true });
writeFileSync(join(out, 'manifests', 'services.yaml'), docs.join('\n---\n') + '\n');

const zone = [
  '$ORIGIN cluster.local.',
  '$TTL 30',
  '@ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30',
  '@ IN NS ns.dns.cluster.local.',
  'ns.dns IN A 127.0.0.1',
];
for (let i = 0; i < n; i++) {
  zone.push(`svc${i}.default.svc IN A ${ip(i)}`);
  zone.push(`_http._tcp.svc${i}.default.svc IN SRV 0 100 80 svc${i}.default.svc.cluster.local.`);
}
writeFileSync(join(out, 'cluster.local.zone'), zone.join('\n') + '\n');

const base = (cache: string) => `.:53 {
    errors
    health 127.0.0.1:0
    ready 127.0.0.1:0
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus 127.0.0.1:0
${cache}
    loadbalance
}
`;
// kubeadm's default (minus forward/loop/reload, which need an upstream): the cache is
// disabled for cluster.local, so every query is a cache miss answered by kubernetes.
writeFileSync(
  join(out, 'Corefile.miss'),
  base(
    '    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }',
  ),
);
// The same with the cache on for cluster.local: after the first pass every query is a hit.
writeFileSync(join(out, 'Corefile.hit'), base('    cache 30'));

const queries: string[] = [];
for (let i = 0; i < n; i++) {
  queries.push(`svc${i}.default.svc.cluster.local A`);
  queries.push(`_http._tcp.svc${i}.default.svc.cluster.local SRV`);
}
for (let i = 0; i < Math.ceil(n / 5); i++) queries.push(`nosuch${i}.default.svc.cluster.local A`);
let seed = 0x5eed;
for (let i = queries.length - 1; i > 0; i--) {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  const j = seed % (i + 1);
  [queries[i], queries[j]] = [queries[j]!, queries[i]!];
}
writeFileSync(join(out, 'queries.txt'), queries.join('\n') + '\n');
process.stdout.write(`${n} services, ${queries.length} queries in ${out}\n`);
