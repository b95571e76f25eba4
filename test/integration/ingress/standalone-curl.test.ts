/**
 * Real curl against the standalone proxy (`kubewire ingress`) on loopback; no root needed.
 * The backends are echo workloads on 127.0.0.1; selectorless Services point at them
 * through v1 Endpoints.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { selfSignedCertificate } from '../../../src/ingress/index.js';
import {
  ingress,
  INGRESS_CLASS,
  join,
  service,
  startBackend,
  type Backend,
} from '../../unit/ingress/helpers.js';

const here = pathJoin(fileURLToPath(import.meta.url), '..');
const commandModule = pathJoin(here, '..', '..', '..', 'src', 'cli', 'commands', 'ingress.js');

function curl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (err, stdout, stderr) => {
      if (err && !stdout) reject(new Error(`curl ${args.join(' ')}: ${stderr || err.message}`));
      else resolve({ stdout, stderr });
    });
  });
}

describe('curl against `kubewire ingress` on loopback', () => {
  let dir: string;
  let child: ChildProcess;
  let webapp: Backend, blog: Backend;
  let http = '',
    https = '';

  before(async () => {
    webapp = await startBackend('webapp-1');
    blog = await startBackend('blog-1');
    dir = mkdtempSync(pathJoin(tmpdir(), 'kw-ingress-'));
    const { cert, key } = selfSignedCertificate({
      commonName: 'blog.webapp.com',
      dnsNames: ['blog.webapp.com'],
      keyType: 'ec',
    });
    const secret = `apiVersion: v1
kind: Secret
metadata: {name: blog-tls}
type: kubernetes.io/tls
data:
  tls.crt: ${Buffer.from(cert).toString('base64')}
  tls.key: ${Buffer.from(key).toString('base64')}`;
    const legacy = `apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: webapp
  annotations: {kubernetes.io/ingress.class: nginx}
spec:
  rules:
  - host: webapp.com
    http:
      paths:
      - path: /
        backend: {serviceName: webapp, servicePort: 80}`;
    writeFileSync(
      pathJoin(dir, 'app.yaml'),
      join(
        INGRESS_CLASS,
        service('webapp', 80, [webapp.port]),
        service('blog', 80, [blog.port]),
        secret,
        legacy,
        ingress({
          name: 'blog',
          annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/blogroll/$2' },
          host: 'blog.webapp.com',
          tls: [{ hosts: ['blog.webapp.com'], secretName: 'blog-tls' }],
          paths: [{ path: '/blog(/|$)(.*)', service: 'blog', port: 80 }],
        }),
      ),
    );
    const script = `import { Command } from 'commander';
import { registerIngressCommands } from ${JSON.stringify(commandModule)};
const p = new Command();
registerIngressCommands(p);
await p.parseAsync(process.argv);`;
    child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        script,
        'x',
        'ingress',
        '--manifests',
        dir,
        '--listen',
        '127.0.0.1:0',
        '--tls-listen',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], cwd: pathJoin(here, '..', '..', '..', '..') },
    );
    await new Promise<void>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', (line) => {
        const msg = JSON.parse(line) as { msg: string; http?: string; https?: string };
        if (msg.msg === 'listening') {
          http = msg.http!;
          https = msg.https!;
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`ingress exited with ${code}`)));
    });
  });

  after(() => {
    child.kill('SIGTERM');
    webapp.close();
    blog.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('routes by Host (the legacy extensions/v1beta1 Ingress)', async () => {
    const { stdout } = await curl(['-H', 'Host: webapp.com', `http://${http}/index.html`]);
    const r = JSON.parse(stdout) as { pod: string; path: string };
    assert.equal(r.pod, 'webapp-1');
    assert.equal(r.path, '/index.html');
  });

  it('http to the TLS host: 308 to https', async () => {
    const { stdout } = await curl([
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{redirect_url}',
      '-H',
      'Host: blog.webapp.com',
      `http://${http}/blog/x`,
    ]);
    assert.equal(stdout, '308 https://blog.webapp.com/blog/x');
  });

  it('curl --resolve with SNI gets the certificate of the host and the rewritten path', async () => {
    const p = https.split(':')[1]!;
    const { stdout, stderr } = await curl([
      '-vk',
      '--resolve',
      `blog.webapp.com:${p}:127.0.0.1`,
      `https://blog.webapp.com:${p}/blog/hello-world`,
    ]);
    assert.match(stderr, /subject: CN=blog\.webapp\.com/);
    const r = JSON.parse(stdout) as { pod: string; path: string; headers: Record<string, string> };
    assert.equal(r.pod, 'blog-1');
    assert.equal(r.path, '/blogroll/hello-world');
    assert.equal(r.headers['x-forwarded-proto'], 'https');
    const other = await curl([
      '-vk',
      '--resolve',
      `other.test:${p}:127.0.0.1`,
      `https://other.test:${p}/`,
    ]);
    assert.match(
      other.stderr,
      /subject: O=Acme Co; CN=Kubernetes Ingress Controller Fake Certificate/,
    );
  });

  it('reloads when the manifests change', async () => {
    writeFileSync(
      pathJoin(dir, 'more.yaml'),
      ingress({
        name: 'shop',
        annotations: { 'kubernetes.io/ingress.class': 'nginx' },
        host: 'shop.com',
        paths: [{ path: '/', pathType: 'Prefix', service: 'webapp', port: 80 }],
      }),
    );
    let code = '';
    for (let i = 0; i < 50 && code !== '200'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      code = (
        await curl([
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '-H',
          'Host: shop.com',
          `http://${http}/`,
        ])
      ).stdout;
    }
    assert.equal(code, '200');
  });
});
