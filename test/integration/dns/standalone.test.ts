/**
 * The standalone DNS (`node dist/src/dns/main.js`, the program the CoreDNS pods run) on
 * 127.0.0.1 with real dig and curl-equivalent HTTP: truncation of a 200-endpoint headless
 * answer over UDP and the full answer over TCP, metrics/health/ready, answers following
 * manifest changes within a second, invalid manifests keeping the last good state, and
 * a clean SIGTERM. No root needed: loopback, ephemeral ports.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const mainJs = join(repo, 'dist', 'src', 'dns', 'main.js');

function dig(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dig', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dig ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const NODE = `apiVersion: v1
kind: Node
metadata: {name: worker-1}
status: {addresses: [{type: InternalIP, address: 10.1.110.102}]}
`;

const BIG = `apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: default}
spec:
  replicas: 200
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: big, namespace: default}
spec:
  clusterIP: None
  selector: {app: big}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.50.50
  selector: {app: big}
  ports: [{name: http, port: 80, targetPort: http}]
`;

const COREFILE = `.:53 {
    errors
    health 127.0.0.1:0
    ready 127.0.0.1:0
    prometheus 127.0.0.1:0
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
    }
    loadbalance
}
`;

describe('standalone DNS on loopback with dig', { timeout: 120_000 }, () => {
  let dir: string;
  let proc: ChildProcess;
  let port: number;
  let http: Record<string, number>;
  let output = '';
  const at = (...extra: string[]) => [`@127.0.0.1`, '-p', String(port), ...extra];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kw-dns-it-'));
    writeFileSync(join(dir, '00-node.yaml'), NODE);
    writeFileSync(join(dir, '10-big.yaml'), BIG);
    writeFileSync(join(dir, 'Corefile'), COREFILE);
    port = await freePort();
    proc = spawn(
      process.execPath,
      [
        mainJs,
        '--manifests',
        dir,
        '--corefile',
        join(dir, 'Corefile'),
        '--listen',
        `127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line: ${output}`)), 20_000);
      proc.stdout!.on('data', (d: Buffer) => {
        output += d.toString();
        const l = output.split('\n').find((x) => x.includes('"msg":"listening"'));
        if (l) {
          clearTimeout(timer);
          resolve(l);
        }
      });
      proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      proc.on('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
    });
    const o = JSON.parse(line) as {
      http: Record<string, number>;
      dns: { host: string; port: number; udp: string }[];
    };
    http = o.http;
    // UDP through recvmmsg/sendmmsg (src/udp): the addon is built wherever this tier runs.
    assert.deepEqual(o.dns, [{ host: '127.0.0.1', port, udp: 'batched' }]);
  });

  after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers a ClusterIP A query like the spec says', async () => {
    const out = await dig(at('web.default.svc.cluster.local', 'A', '+short'));
    assert.equal(out.trim(), '10.96.50.50');
  });

  it('truncates the 200-endpoint headless answer over UDP (TC set), with and without EDNS', async () => {
    for (const edns of ['+noedns', '+edns=0']) {
      const out = await dig(
        at('big.default.svc.cluster.local', 'A', '+ignore', edns, '+noall', '+comments', '+answer'),
      );
      assert.match(out, /;; flags: qr aa tc rd;/, edns);
      const m = /ANSWER: (\d+),/.exec(out);
      assert.ok(m && Number(m[1]) > 0 && Number(m[1]) < 200, `${edns}: ${m?.[1]} answers`);
    }
  });

  it('is complete over TCP: dig +tcp gets 200 A records, no TC', async () => {
    const out = await dig(
      at('big.default.svc.cluster.local', 'A', '+tcp', '+noall', '+comments', '+answer'),
    );
    assert.match(out, /;; flags: qr aa rd;/);
    assert.match(out, /ANSWER: 200,/);
    const ips = out.split('\n').filter((l) => /\sIN\s+A\s/.test(l));
    assert.equal(new Set(ips.map((l) => l.split(/\s+/).pop())).size, 200);
  });

  it('dig falls back to TCP by itself after TC and gets everything', async () => {
    const out = await dig(at('big.default.svc.cluster.local', 'A', '+noall', '+answer'));
    assert.equal(out.split('\n').filter((l) => /\sIN\s+A\s/.test(l)).length, 200);
  });

  it('SRV for the headless service: 200 records with additional A over TCP', async () => {
    const out = await dig(
      at('_http._tcp.big.default.svc.cluster.local', 'SRV', '+tcp', '+noall', '+comments'),
    );
    assert.match(out, /ANSWER: 200, AUTHORITY: 0, ADDITIONAL: 201/);
  });

  it('metrics move, /health and /ready answer', async () => {
    const metric = async () => {
      const body = await (await fetch(`http://127.0.0.1:${http['/metrics']}/metrics`)).text();
      let total = 0;
      for (const m of body.matchAll(/^coredns_dns_requests_total\{[^}]*\} (\d+)$/gm))
        total += Number(m[1]);
      return total;
    };
    const before = await metric();
    await dig(at('web.default.svc.cluster.local', 'A', '+short'));
    await dig(at('web.default.svc.cluster.local', 'A', '+short', '+tcp'));
    assert.equal(await metric(), before + 2);
    const health = await fetch(`http://127.0.0.1:${http['/health']}/health`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'OK');
    const ready = await fetch(`http://127.0.0.1:${http['/ready']}/ready`);
    assert.equal(ready.status, 200);
  });

  it('follows manifest changes within a second', async () => {
    const t0 = Date.now();
    writeFileSync(
      join(dir, '20-new.yaml'),
      `apiVersion: v1
kind: Service
metadata: {name: fresh, namespace: default}
spec:
  clusterIP: 10.96.60.60
  ports: [{port: 80}]
`,
    );
    let answer = '';
    while (Date.now() - t0 < 3000) {
      answer = (await dig(at('fresh.default.svc.cluster.local', 'A', '+short'))).trim();
      if (answer) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const took = Date.now() - t0;
    assert.equal(answer, '10.96.60.60');
    assert.ok(took < 1000, `took ${took} ms`);
  });

  it('keeps the last good state when the manifests become invalid', async () => {
    writeFileSync(
      join(dir, '30-bad.yaml'),
      'apiVersion: v1\nkind: Service\nmetadata: {name: BAD NAME}\nspec: {ports: [{port: 99999}]}\n',
    );
    await new Promise((r) => setTimeout(r, 800));
    assert.match(output, /invalid manifests; keeping the last good state/);
    assert.equal(
      (await dig(at('fresh.default.svc.cluster.local', 'A', '+short'))).trim(),
      '10.96.60.60',
    );
    rmSync(join(dir, '30-bad.yaml'));
  });

  it('survives 100,000 malformed packets over UDP and still answers', async () => {
    // A large receive buffer: the server answers in sendmmsg bursts faster than this
    // process, busy sending, reads them; the count is meant to be the server's answers.
    const sock = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    let replies = 0;
    sock.on('message', () => replies++);
    const base = Buffer.from(
      '12340100000100000000000003776562076465666175' +
        '6c74037376630763' +
        '6c7573746572056c6f63616c0000010001',
      'hex',
    );
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let i = 0; i < 100_000; i++) {
      let b: Buffer;
      if (i % 5 === 0) {
        b = Buffer.alloc(rnd(64));
        for (let j = 0; j < b.length; j++) b[j] = rnd(256);
      } else {
        b = Buffer.from(base);
        for (let k = 0; k < 1 + rnd(3); k++) b[rnd(b.length)] = rnd(256);
        if (rnd(4) === 0) b = b.subarray(0, rnd(b.length));
      }
      sock.send(b, port, '127.0.0.1');
      if (i % 500 === 499) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 500));
    sock.close();
    assert.equal(proc.exitCode, null, 'still running');
    assert.ok(replies > 10_000, `${replies} replies`);
    assert.equal(
      (await dig(at('web.default.svc.cluster.local', 'A', '+short'))).trim(),
      '10.96.50.50',
    );
  });

  it('exits 0 on SIGTERM', async () => {
    const code = await new Promise<number | null>((resolve) => {
      proc.on('exit', (c) => resolve(c));
      proc.kill('SIGTERM');
    });
    assert.equal(code, 0);
  });
});
