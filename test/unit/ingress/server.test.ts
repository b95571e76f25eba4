/**
 * The client side of the proxy (server.ts) on raw sockets: keep-alive rules of HTTP/1.0
 * and 1.1, framing, pipelining, Expect, Host, timeouts, request bodies under back-pressure.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { IngressProxy } from '../../../src/ingress/index.js';
import { compile, ingress, INGRESS_CLASS, join, service } from './helpers.js';

/** Raw client: send, collect until the server closes or `ms` passes. */
function exchange(
  port: number,
  data: string | string[],
  ms = 1500,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed });
    }, ms);
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve({ text, closed });
    });
    const parts = Array.isArray(data) ? data : [data];
    let i = 0;
    const next = (): void => {
      if (i < parts.length) {
        s.write(parts[i++]!);
        setTimeout(next, 50);
      }
    };
    next();
  });
}

const statuses = (text: string): number[] =>
  [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

describe("the proxy's HTTP server", () => {
  let backend: Server;
  let proxy: IngressProxy;
  let port: number;
  let uploaded = 0;

  before(async () => {
    backend = createHttpServer((req, res) => {
      if (req.url === '/stream') {
        res.write('part1,');
        setTimeout(() => res.end('part2'), 20);
        return;
      }
      if (req.url === '/slowread') {
        // Reads the upload slowly: the proxy must hold the client back meanwhile.
        req.on('data', (d: Buffer) => {
          uploaded += d.length;
          req.pause();
          setTimeout(() => req.resume(), 3);
        });
        req.on('end', () => res.end(`got ${uploaded}`));
        return;
      }
      req.resume();
      req.on('end', () => res.end(`${req.method} ${req.url}`));
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const bport = (backend.address() as { port: number }).port;
    proxy = new IngressProxy(
      compile(
        join(
          INGRESS_CLASS,
          service('b', 80, [bport]),
          ingress({
            name: 'b',
            host: 'b.test',
            annotations: { 'nginx.ingress.kubernetes.io/proxy-body-size': '0' },
            paths: [{ path: '/', pathType: 'Prefix', service: 'b', port: 80 }],
          }),
        ),
      ),
      { accessLog: null, log: null, headersTimeoutMs: 600, keepAliveTimeoutMs: 700 },
    );
    port = (await proxy.listenHttp('127.0.0.1', 0)).port;
  });

  after(async () => {
    await proxy.close();
    backend.close();
  });

  it('HTTP/1.1: keep-alive with Content-Length; Connection: close closes after the answer', async () => {
    const a = await exchange(port, 'GET /a HTTP/1.1\r\nHost: b.test\r\n\r\n', 400);
    assert.match(a.text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(a.text, /\r\nConnection: keep-alive\r\nKeep-Alive: timeout=0\r\n/);
    assert.match(a.text, /\r\nContent-Length: 6\r\n[^]*\r\n\r\nGET \/a$/);
    assert.equal(a.closed, false);
    const c = await exchange(port, 'GET /c HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n');
    assert.match(c.text, /\r\nConnection: close\r\n/);
    assert.equal(c.closed, true);
  });

  it('HTTP/1.0: closed after the answer unless keep-alive is asked for; no chunking', async () => {
    const a = await exchange(port, 'GET /s HTTP/1.0\r\nHost: b.test\r\n\r\n');
    assert.equal(a.closed, true);
    assert.match(a.text, /\r\nConnection: close\r\n/);
    const k = await exchange(
      port,
      'GET /k HTTP/1.0\r\nHost: b.test\r\nConnection: keep-alive\r\n\r\n',
      400,
    );
    assert.equal(k.closed, false);
    assert.match(k.text, /\r\nConnection: keep-alive\r\n/);
    const s = await exchange(port, 'GET /stream HTTP/1.0\r\nHost: b.test\r\n\r\n');
    assert.doesNotMatch(s.text, /Transfer-Encoding/);
    assert.match(s.text, /\r\n\r\npart1,part2$/);
    assert.equal(s.closed, true);
  });

  it('HTTP/1.1 without Content-Length upstream: chunked to the client', async () => {
    const s = await exchange(port, 'GET /stream HTTP/1.1\r\nHost: b.test\r\n\r\n', 400);
    assert.match(s.text, /\r\nTransfer-Encoding: chunked\r\n/);
    assert.match(s.text, /\r\n\r\n6\r\npart1,\r\n5\r\npart2\r\n0\r\n\r\n$/);
  });

  it('pipelined requests are answered in order', async () => {
    const r = await exchange(
      port,
      'GET /1 HTTP/1.1\r\nHost: b.test\r\n\r\nGET /stream HTTP/1.1\r\nHost: b.test\r\n\r\n' +
        'POST /3 HTTP/1.1\r\nHost: b.test\r\nContent-Length: 3\r\n\r\nabcGET /4 HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n',
    );
    const bodies = r.text.split(/HTTP\/1\.1 200 OK/).slice(1);
    assert.equal(bodies.length, 4);
    assert.match(bodies[0]!, /GET \/1$/);
    assert.match(bodies[1]!, /part2\r\n0\r\n\r\n$/);
    assert.match(bodies[2]!, /POST \/3$/);
    assert.match(bodies[3]!, /GET \/4$/);
    assert.equal(r.closed, true);
  });

  it('Expect: 100-continue is answered; other expectations 417; HTTP/1.1 without Host 400', async () => {
    const c = await exchange(port, [
      'POST /e HTTP/1.1\r\nHost: b.test\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n',
      'hi',
    ]);
    assert.match(c.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*POST \/e$/);
    const x = await exchange(port, 'GET / HTTP/1.1\r\nHost: b.test\r\nExpect: tea\r\n\r\n', 400);
    assert.deepEqual(statuses(x.text), [417]);
    const h = await exchange(port, 'GET / HTTP/1.1\r\n\r\n');
    assert.deepEqual(statuses(h.text), [400]);
    assert.equal(h.closed, true);
  });

  it('HEAD: headers only, and the connection goes on', async () => {
    const r = await exchange(
      port,
      'HEAD /h HTTP/1.1\r\nHost: b.test\r\n\r\nGET /g HTTP/1.1\r\nHost: b.test\r\n\r\n',
      400,
    );
    assert.deepEqual(statuses(r.text), [200, 200]);
    assert.match(
      r.text,
      /^HTTP\/1\.1 200 OK\r\n(?:[^\r]+\r\n)+\r\nHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nGET \/g$/,
    );
    assert.doesNotMatch(r.text.split('\r\n\r\n')[0]!, /Transfer-Encoding/);
  });

  it('timeouts: a head not finished in time (408), an idle keep-alive connection', async () => {
    const t0 = Date.now();
    const slow = await exchange(port, 'GET / HTTP/1.1\r\nHost: b.test\r\n', 3000);
    assert.equal(slow.closed, true);
    assert.deepEqual(statuses(slow.text), [408]);
    assert.ok(Date.now() - t0 < 2500);
    const t1 = Date.now();
    const idle = await exchange(port, 'GET /i HTTP/1.1\r\nHost: b.test\r\n\r\n', 3000);
    assert.equal(idle.closed, true);
    assert.deepEqual(statuses(idle.text), [200]);
    assert.ok(Date.now() - t1 >= 600);
  });

  it('an upload faster than the upstream reads it arrives whole', async () => {
    const size = 4 * 1024 * 1024;
    const head = `POST /slowread HTTP/1.1\r\nHost: b.test\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`;
    const r = await exchange(port, [head + 'x'.repeat(size)], 20000);
    assert.match(r.text, new RegExp(`got ${size}$`));
  });
});
