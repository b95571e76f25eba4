import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { IngressProxy, selfSignedCertificate } from '../../../src/ingress/index.js';
import {
  compile,
  get,
  ingress,
  INGRESS_CLASS,
  join,
  service,
  startBackend,
  type Backend,
} from './helpers.js';

/** Sends raw bytes, returns everything the server sends until it closes (or `ms`). */
function raw(port: number, data: string, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    let out = '';
    const done = (): void => {
      s.destroy();
      resolve(out);
    };
    const timer = setTimeout(done, ms);
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.on('error', () => undefined);
    s.write(data);
  });
}

const secret = (name: string, host: string): string => {
  const { cert, key } = selfSignedCertificate({
    commonName: host,
    dnsNames: [host],
    keyType: 'ec',
  });
  return `apiVersion: v1
kind: Secret
metadata: {name: ${name}}
type: kubernetes.io/tls
data:
  tls.crt: ${Buffer.from(cert).toString('base64')}
  tls.key: ${Buffer.from(key).toString('base64')}`;
};

describe('the ingress proxy', () => {
  let webapp: Backend, blog: Backend, blog2: Backend, guestbook: Backend;
  let hang: Server, hangPort: number, ws: Server, wsPort: number;
  let proxy: IngressProxy;
  let port: number, tlsPort: number;
  const lines: string[] = [];

  before(async () => {
    webapp = await startBackend('webapp-1');
    blog = await startBackend('blog-1');
    blog2 = await startBackend('blog-2');
    guestbook = await startBackend('guestbook-1');
    hang = createServer(() => undefined); // accepts, never answers
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    hangPort = (hang.address() as { port: number }).port;
    ws = createServer((_q, s) => s.end('plain'));
    ws.on('upgrade', (req, socket) => {
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Path: ${req.url}\r\n\r\n`,
      );
      socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}`));
      socket.on('end', () => socket.destroy());
    });
    await new Promise<void>((r) => ws.listen(0, '127.0.0.1', r));
    wsPort = (ws.address() as { port: number }).port;
    const closed = (await import('./helpers.js')).freePort;
    const refused = await closed();
    const p = 'nginx.ingress.kubernetes.io/';
    const config = compile(
      join(
        INGRESS_CLASS,
        service('webapp', 80, [webapp.port]),
        service('blog', 80, [blog.port, blog2.port]),
        service('guestbook', 80, [guestbook.port]),
        service('empty', 80, []),
        service('refused', 80, [refused]),
        service('hang', 80, [hangPort]),
        service('ws', 80, [wsPort]),
        secret('webapp-tls', 'webapp.com'),
        secret('blog-tls', 'blog.webapp.com'),
        ingress({
          name: 'blog',
          annotations: {
            [`${p}rewrite-target`]: '/blogroll/$2',
            [`${p}x-forwarded-prefix`]: '/blog',
          },
          host: 'blog.webapp.com',
          tls: [{ hosts: ['blog.webapp.com'], secretName: 'blog-tls' }],
          paths: [{ path: '/blog(/|$)(.*)', service: 'blog', port: 80 }],
        }),
        ingress({
          name: 'webapp',
          host: 'webapp.com',
          tls: [{ hosts: ['webapp.com'], secretName: 'webapp-tls' }],
          paths: [
            { path: '/', pathType: 'Prefix', service: 'webapp', port: 80 },
            { path: '/blog', pathType: 'Prefix', service: 'blog', port: 80 },
          ],
        }),
        ingress({
          name: 'guestbook',
          annotations: { [`${p}rewrite-target`]: '/$2' },
          host: 'guestbook.com',
          paths: [{ path: '/guestbook(/|$)(.*)', service: 'guestbook', port: 80 }],
        }),
        ingress({
          name: 'errors',
          annotations: { [`${p}proxy-read-timeout`]: '1', [`${p}proxy-body-size`]: '1k' },
          host: 'errors.com',
          paths: [
            { path: '/empty', pathType: 'Prefix', service: 'empty', port: 80 },
            { path: '/refused', pathType: 'Prefix', service: 'refused', port: 80 },
            { path: '/hang', pathType: 'Prefix', service: 'hang', port: 80 },
            { path: '/ok', pathType: 'Prefix', service: 'webapp', port: 80 },
          ],
        }),
        ingress({
          name: 'features',
          annotations: {
            [`${p}app-root`]: '/app1',
            [`${p}enable-cors`]: 'true',
            [`${p}upstream-vhost`]: 'internal.svc',
            [`${p}force-ssl-redirect`]: 'false',
          },
          host: 'approot.bar.com',
          paths: [{ path: '/', pathType: 'Prefix', service: 'webapp', port: 80 }],
        }),
        ingress({
          name: 'sticky',
          annotations: { [`${p}affinity`]: 'cookie', [`${p}session-cookie-name`]: 'route' },
          host: 'sticky.com',
          paths: [{ path: '/', pathType: 'Prefix', service: 'blog', port: 80 }],
        }),
        ingress({
          name: 'guarded',
          annotations: { [`${p}whitelist-source-range`]: '10.0.0.0/8' },
          host: 'guarded.com',
          paths: [{ path: '/', pathType: 'Prefix', service: 'webapp', port: 80 }],
        }),
        ingress({
          name: 'open',
          annotations: { [`${p}whitelist-source-range`]: '127.0.0.0/8' },
          host: 'open.com',
          paths: [{ path: '/', pathType: 'Prefix', service: 'webapp', port: 80 }],
        }),
        ingress({
          name: 'moved',
          annotations: { [`${p}permanent-redirect`]: 'https://new.example/' },
          host: 'moved.com',
          paths: [{ path: '/', pathType: 'Prefix', service: 'webapp', port: 80 }],
        }),
        ingress({
          name: 'forced',
          annotations: { [`${p}force-ssl-redirect`]: 'true' },
          host: 'forced.com',
          paths: [{ path: '/', pathType: 'Prefix', service: 'webapp', port: 80 }],
        }),
        ingress({
          name: 'ws',
          host: 'ws.com',
          paths: [{ path: '/', pathType: 'Prefix', service: 'ws', port: 80 }],
        }),
      ),
    );
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString().split('\n'))
          if (l) lines.push((JSON.parse(l) as { msg: string }).msg);
        cb();
      },
    });
    proxy = new IngressProxy(config, {
      accessLog: pino({}, sink),
      log: null,
      headersTimeoutMs: 1000,
      requestTimeoutMs: 1500,
    });
    port = (await proxy.listenHttp('127.0.0.1', 0)).port;
    tlsPort = (await proxy.listenHttps('127.0.0.1', 0)).port;
  });

  after(async () => {
    await proxy.close();
    for (const b of [webapp, blog, blog2, guestbook]) b.close();
    hang.closeAllConnections();
    hang.close();
    ws.close();
  });

  it('http to a host with TLS is redirected (ssl-redirect, 308)', async () => {
    const a = await get(port, '/blog', { host: 'blog.webapp.com' });
    assert.equal(a.status, 308);
    assert.equal(a.headers.location, 'https://blog.webapp.com/blog');
  });

  it('the seed rewrite over HTTPS: /blog → /blogroll/, /blog/hello-world → /blogroll/hello-world; routes by host and path', async () => {
    const s = await httpsGet('blog.webapp.com', '/blog');
    assert.equal(s.echo.path, '/blogroll/');
    const t = await httpsGet('blog.webapp.com', '/blog/hello-world?x=1');
    assert.equal(t.echo.path, '/blogroll/hello-world');
    assert.deepEqual(t.echo.query, { x: '1' });
    assert.equal(t.echo.headers?.['x-forwarded-prefix'], '/blog');
    const w = await httpsGet('webapp.com', '/');
    assert.equal(w.echo.pod, 'webapp-1');
    const wb = await httpsGet('webapp.com', '/blog/post');
    assert.match(wb.echo.pod, /^blog-/);
    assert.equal(wb.echo.path, '/blog/post');
  });

  it('the guestbook capture-group fix: /guestbook/controllers.js reaches /controllers.js', async () => {
    const r = await get(port, '/guestbook/controllers.js', { host: 'guestbook.com' });
    assert.equal(r.status, 200);
    assert.equal(r.echo!.pod, 'guestbook-1');
    assert.equal(r.echo!.path, '/controllers.js');
    assert.equal((await get(port, '/guestbook', { host: 'guestbook.com' })).echo!.path, '/');
  });

  it('sets the X-Forwarded-* headers, X-Real-IP and X-Request-ID as ingress-nginx does', async () => {
    const r = await get(port, '/ok', {
      host: 'errors.com:8080',
      headers: { 'x-forwarded-for': '1.2.3.4', proxy: 'evil', connection: 'keep-alive' },
    });
    const h = r.echo!.headers!;
    assert.equal(h.host, 'errors.com:8080');
    assert.equal(h['x-real-ip'], '127.0.0.1');
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-original-forwarded-for'], '1.2.3.4');
    assert.equal(h['x-forwarded-host'], 'errors.com:8080');
    assert.equal(h['x-forwarded-port'], String(port));
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-scheme'], 'http');
    assert.equal(h['x-scheme'], 'http');
    assert.match(String(h['x-request-id']), /^[0-9a-f]{32}$/);
    assert.equal(h.proxy, undefined);
    const kept = await get(port, '/ok', { host: 'errors.com', headers: { 'x-request-id': 'abc' } });
    assert.equal(kept.echo!.headers!['x-request-id'], 'abc');
    assert.equal(r.headers.server, 'nginx');
  });

  it('503 without endpoints, 502 when refused, 504 on timeout, 404 from the default backend', async () => {
    assert.equal((await get(port, '/empty', { host: 'errors.com' })).status, 503);
    const refused = await get(port, '/refused', { host: 'errors.com' });
    assert.equal(refused.status, 502);
    assert.match(refused.body, /<title>502 Bad Gateway<\/title>/);
    const t0 = Date.now();
    assert.equal((await get(port, '/hang', { host: 'errors.com' })).status, 504);
    assert.ok(Date.now() - t0 >= 900);
    const nf = await get(port, '/nothing', { host: 'errors.com' });
    assert.equal(nf.status, 404);
    assert.match(nf.body, /<center>nginx<\/center>/);
  });

  it('413 over proxy-body-size', async () => {
    const r = await get(port, '/ok', {
      host: 'errors.com',
      method: 'POST',
      body: 'x'.repeat(2048),
    });
    assert.equal(r.status, 413);
    const ok = await get(port, '/ok', {
      host: 'errors.com',
      method: 'POST',
      body: 'x'.repeat(100),
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.echo!.bodyBytes, 100);
  });

  it('app-root (302), upstream-vhost and CORS', async () => {
    const r = await get(port, '/', { host: 'approot.bar.com' });
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, 'http://approot.bar.com/app1');
    const a = await get(port, '/app1', {
      host: 'approot.bar.com',
      headers: { origin: 'http://x.com' },
    });
    assert.equal(a.echo!.headers!.host, 'internal.svc');
    assert.equal(a.headers['access-control-allow-origin'], '*');
    assert.equal(a.headers['access-control-allow-credentials'], 'true');
    const pre = await get(port, '/app1', {
      host: 'approot.bar.com',
      method: 'OPTIONS',
      headers: { origin: 'http://x.com' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-max-age'], '1728000');
    assert.equal(
      pre.headers['access-control-allow-methods'],
      'GET, PUT, POST, DELETE, PATCH, OPTIONS',
    );
  });

  it('round robin, and cookie affinity keeps one endpoint', async () => {
    const pods = new Set<string>();
    for (let i = 0; i < 4; i++) pods.add((await get(port, '/x', { host: 'sticky.com' })).echo!.pod);
    assert.deepEqual([...pods].sort(), ['blog-1', 'blog-2']);
    const first = await get(port, '/x', { host: 'sticky.com' });
    const cookie = String(first.headers['set-cookie']);
    assert.match(cookie, /^route=[0-9a-f]{32}; Path=\/; HttpOnly$/);
    const pinned = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await get(port, '/x', {
        host: 'sticky.com',
        headers: { cookie: cookie.split(';')[0]! },
      });
      pinned.add(r.echo!.pod);
      assert.equal(r.headers['set-cookie'], undefined);
    }
    assert.deepEqual([...pinned], [first.echo!.pod]);
  });

  it('whitelist-source-range: 403 outside, allowed inside', async () => {
    assert.equal((await get(port, '/', { host: 'guarded.com' })).status, 403);
    assert.equal((await get(port, '/', { host: 'open.com' })).status, 200);
  });

  it('redirects: permanent-redirect 301, ssl-redirect 308 (TLS host), force-ssl-redirect 308', async () => {
    const m = await get(port, '/a', { host: 'moved.com' });
    assert.equal(m.status, 301);
    assert.equal(m.headers.location, 'https://new.example/');
    const s = await get(port, '/blog/x?y=1', { host: 'webapp.com' });
    assert.equal(s.status, 308);
    assert.equal(s.headers.location, 'https://webapp.com/blog/x?y=1');
    const root = await get(port, '/', { host: 'webapp.com' });
    assert.equal(root.headers.location, 'https://webapp.com'); // trailing slash dropped (preserve-trailing-slash false)
    const f = await get(port, '/p', { host: 'forced.com' });
    assert.equal(f.status, 308);
    assert.equal(f.headers.location, 'https://forced.com/p');
  });

  it('TLS: SNI picks the certificate; unknown names get the fake certificate', async () => {
    assert.equal(await peerCN('webapp.com'), 'webapp.com');
    assert.equal(await peerCN('blog.webapp.com'), 'blog.webapp.com');
    assert.equal(await peerCN('unknown.com'), 'Kubernetes Ingress Controller Fake Certificate');
  });

  it('proxies a WebSocket upgrade', async () => {
    const out = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
        if (got.includes('\r\n\r\n') && !got.includes('echo:')) s.write('ping');
        if (got.includes('echo:ping')) {
          s.destroy();
          resolve(got);
        }
      });
      s.write(
        'GET /chat HTTP/1.1\r\nHost: ws.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      );
    });
    assert.match(out, /^HTTP\/1\.1 101 Switching Protocols/);
    assert.match(out, /x-path: \/chat/i);
  });

  it('an upgrade the upstream refuses with a plain answer: passed on, logged with its status', async () => {
    lines.length = 0;
    const out = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
        if (got.includes('"pod"')) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('close', () => resolve(got));
      s.write(
        'GET /ok/not-a-socket HTTP/1.1\r\nHost: errors.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      );
    });
    assert.match(out, /^HTTP\/1\.1 200 OK/);
    await new Promise((r) => setTimeout(r, 50));
    const line = lines.find((l) => l.includes('/not-a-socket'));
    assert.match(line ?? '', /"GET \/ok\/not-a-socket HTTP\/1\.1" 200 /);
  });

  it('bad input: malformed request 400, oversized headers 431, smuggling patterns 400', async () => {
    assert.match(await raw(port, 'GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request/);
    assert.match(
      await raw(port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(40000)}\r\n\r\n`),
      /^HTTP\/1\.1 431 /,
    );
    assert.match(
      await raw(
        port,
        'POST /ok HTTP/1.1\r\nHost: errors.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      ),
      /^HTTP\/1\.1 400 Bad Request/,
    );
    assert.match(
      await raw(
        port,
        'POST /ok HTTP/1.1\r\nHost: errors.com\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde',
      ),
      /^HTTP\/1\.1 400 Bad Request/,
    );
    assert.match(
      await raw(port, 'GET /../x HTTP/1.1\r\nHost: errors.com\r\n\r\n'),
      /^HTTP\/1\.1 400 Bad Request/,
    );
    assert.match(
      await raw(port, 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n'),
      /^HTTP\/1\.1 400 Bad Request/,
    );
  });

  it('slow clients are bounded by the header timeout', async () => {
    const t0 = Date.now();
    const out = await raw(port, 'GET / HTTP/1.1\r\nHost: errors.com\r\n', 5000);
    assert.ok(Date.now() - t0 < 4500, 'connection closed by the proxy');
    assert.ok(out === '' || /^HTTP\/1\.1 408 /.test(out), out);
  });

  it('writes the access log in ingress-nginx format', async () => {
    lines.length = 0;
    await get(port, '/guestbook/a', {
      host: 'guestbook.com',
      headers: { 'user-agent': 'test-agent', referer: 'http://r/' },
    });
    await new Promise((r) => setTimeout(r, 50));
    const line = lines.find((l) => l.includes('/guestbook/a'))!;
    assert.match(
      line,
      /^127\.0\.0\.1 - - \[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET \/guestbook\/a HTTP\/1\.1" 200 \d+ "http:\/\/r\/" "test-agent" \d+ \d+\.\d{3} \[default-guestbook-80\] \[\] 127\.0\.0\.1:\d+ \d+ \d+\.\d{3} 200 [0-9a-f]{32}$/,
    );
  });

  it('reloads without dropping an established keep-alive connection', async () => {
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const once = (host: string, path: string) =>
      new Promise<{ status: number; socket: unknown }>((resolve, reject) => {
        const req = (async () => (await import('node:http')).request)();
        void req.then((request) => {
          const r = request({ host: '127.0.0.1', port, path, headers: { host }, agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, socket: r.socket }));
          });
          r.on('error', reject);
          r.end();
        });
      });
    const a = await once('errors.com', '/ok');
    assert.equal(a.status, 200);
    const old = proxy.current;
    proxy.setConfig(
      compile(
        join(
          INGRESS_CLASS,
          service('webapp', 80, [webapp.port]),
          ingress({
            name: 'new',
            host: 'new.com',
            paths: [{ path: '/', pathType: 'Prefix', service: 'webapp', port: 80 }],
          }),
        ),
      ),
    );
    const b = await once('new.com', '/');
    assert.equal(b.status, 200);
    assert.equal(b.socket, a.socket, 'same client connection');
    assert.equal((await once('errors.com', '/ok')).status, 404);
    proxy.setConfig(old);
    agent.destroy();
  });

  function httpsGet(
    host: string,
    path: string,
  ): Promise<{ status: number; echo: import('../../../src/workloads/echo.js').EchoReply }> {
    return new Promise((resolve, reject) => {
      void import('node:https').then(({ request }) => {
        const r = request(
          {
            host: '127.0.0.1',
            port: tlsPort,
            path,
            servername: host,
            headers: { host },
            rejectUnauthorized: false,
            agent: false,
          },
          (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, echo: JSON.parse(body) }));
          },
        );
        r.on('error', reject);
        r.end();
      });
    });
  }

  function peerCN(servername: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = tlsConnect(
        { host: '127.0.0.1', port: tlsPort, servername, rejectUnauthorized: false },
        () => {
          const cn = s.getPeerCertificate().subject?.CN;
          s.destroy();
          resolve(Array.isArray(cn) ? cn[0]! : (cn ?? ''));
        },
      );
      s.on('error', reject);
    });
  }
});
