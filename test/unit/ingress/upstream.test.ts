/**
 * The proxy's upstream side (upstream.ts): keep-alive reuse, body framing both ways,
 * informational and HEAD responses, stale and failing connections, client aborts,
 * flow control, HTTPS backends. Backends are raw TCP servers where the bytes matter.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, request, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import {
  connect,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { IngressProxy, selfSignedCertificate } from '../../../src/ingress/index.js';
import { compile, ingress, INGRESS_CLASS, join, service } from './helpers.js';

interface RawBackend {
  port: number;
  server: NetServer;
  /** Connections accepted so far. */
  connections: number;
  /** Request heads received, in order. */
  heads: string[];
}

/**
 * A TCP backend: `answer(head, index, socket)` is called for each request head (index
 * counts requests on that connection) and writes whatever bytes it likes.
 */
async function rawBackend(
  answer: (head: string, index: number, socket: Socket) => void,
): Promise<RawBackend> {
  const b: RawBackend = { port: 0, server: createNetServer(), connections: 0, heads: [] };
  b.server.on('connection', (s) => {
    b.connections++;
    let buf = '';
    let n = 0;
    s.on('error', () => undefined);
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end + 4);
        buf = buf.slice(end + 4);
        b.heads.push(head);
        answer(head, n++, s);
      }
    });
  });
  await new Promise<void>((r) => b.server.listen(0, '127.0.0.1', r));
  b.port = (b.server.address() as { port: number }).port;
  return b;
}

const ok = (body = 'ok', extra = ''): string =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

function fetch(
  port: number,
  host: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; chunks?: string[] } = {},
): Promise<{ status: number; headers: Record<string, unknown>; raw: string[]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: { host, ...opts.headers },
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (d: string) => (body += d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, raw: res.rawHeaders, body }),
        );
      },
    );
    req.on('error', reject);
    for (const c of opts.chunks ?? []) req.write(c);
    req.end();
  });
}

describe("the proxy's upstream connections", () => {
  const lines: string[] = [];
  let proxy: IngressProxy;
  let port: number;
  const backends: Record<string, RawBackend> = {};
  let echo: Server, tls: Server;
  let echoPort: number, tlsPort: number;
  const seen: { method?: string; te?: string; body?: string; headers?: unknown } = {};

  before(async () => {
    backends.plain = await rawBackend((_h, _i, s) => s.write(ok()));
    backends.closing = await rawBackend((_h, _i, s) => s.end(ok('bye', 'Connection: close\r\n')));
    backends.chunked = await rawBackend((_h, _i, s) =>
      s.write(
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n' +
          '3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
      ),
    );
    backends.early = await rawBackend((_h, _i, s) =>
      s.write(`HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n${ok('late')}`),
    );
    backends.head = await rawBackend((h, _i, s) =>
      s.write(
        h.startsWith('HEAD') ? 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n' : ok('0123456789'),
      ),
    );
    // Answers the first request of a connection, then closes the next one unanswered
    // (as an upstream whose keep-alive timeout just expired).
    backends.stale = await rawBackend((_h, i, s) => (i === 0 ? s.write(ok()) : s.destroy()));
    backends.eof = await rawBackend((_h, _i, s) => s.destroy());
    backends.invalid = await rawBackend((_h, _i, s) =>
      s.write('HTTP/1.1 200 OK\r\nBad Header\r\n\r\n'),
    );
    backends.closeDelimited = await rawBackend((_h, _i, s) =>
      s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end'),
    );
    backends.stall = await rawBackend((h, _i, s) =>
      s.write(h.includes('/gone') ? 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc' : ok()),
    );
    backends.big = await rawBackend((h, _i, s) => {
      const body = Buffer.alloc(8 * 1024 * 1024, 'x');
      s.write(`HTTP/1.1 200 Fine\r\nContent-Length: ${body.length}\r\n\r\n`);
      if (!h.startsWith('HEAD')) s.write(body);
    });
    echo = createHttpServer((req, res) => {
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        seen.method = req.method;
        seen.te = req.headers['transfer-encoding'];
        seen.body = body;
        seen.headers = req.rawHeaders;
        res.end(`got ${body.length}`);
      });
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as { port: number }).port;
    const cert = selfSignedCertificate({
      commonName: 'backend',
      dnsNames: ['backend'],
      keyType: 'ec',
    });
    tls = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) =>
      res.end(`tls ${req.url}`),
    );
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    tlsPort = (tls.address() as { port: number }).port;

    const p = 'nginx.ingress.kubernetes.io/';
    const docs = [INGRESS_CLASS];
    for (const [name, b] of Object.entries(backends)) {
      docs.push(
        service(name.toLowerCase(), 80, [b.port]),
        ingress({
          name: name.toLowerCase(),
          host: `${name.toLowerCase()}.test`,
          annotations: { [`${p}proxy-read-timeout`]: '2' },
          paths: [{ path: '/', pathType: 'Prefix', service: name.toLowerCase(), port: 80 }],
        }),
      );
    }
    docs.push(
      service('echo', 80, [echoPort]),
      ingress({
        name: 'echo',
        host: 'echo.test',
        paths: [{ path: '/', pathType: 'Prefix', service: 'echo', port: 80 }],
      }),
      service('tls', 80, [tlsPort]),
      ingress({
        name: 'tls',
        host: 'tls.test',
        annotations: { [`${p}backend-protocol`]: 'HTTPS' },
        paths: [{ path: '/', pathType: 'Prefix', service: 'tls', port: 80 }],
      }),
    );
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString().split('\n'))
          if (l) lines.push((JSON.parse(l) as { msg: string }).msg);
        cb();
      },
    });
    proxy = new IngressProxy(compile(join(...docs)), { accessLog: pino({}, sink), log: null });
    port = (await proxy.listenHttp('127.0.0.1', 0)).port;
  });

  after(async () => {
    await proxy.close();
    for (const b of Object.values(backends)) b.server.close();
    echo.close();
    tls.close();
  });

  const logLine = async (needle: string): Promise<string> => {
    for (let i = 0; i < 50; i++) {
      const l = lines.find((x) => x.includes(needle));
      if (l) return l;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no access log line with ${needle}`);
  };

  it('reuses one keep-alive connection for requests in sequence', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await fetch(port, 'plain.test', `/seq${i}`);
      assert.equal(r.status, 200);
      assert.equal(r.body, 'ok');
    }
    assert.equal(backends.plain!.connections, 1);
    assert.match(backends.plain!.heads[0]!, /^GET \/seq0 HTTP\/1\.1\r\nHost: plain\.test\r\n/);
  });

  it('does not reuse a connection the upstream closes (Connection: close)', async () => {
    assert.equal((await fetch(port, 'closing.test', '/a')).body, 'bye');
    assert.equal((await fetch(port, 'closing.test', '/b')).body, 'bye');
    assert.equal(backends.closing!.connections, 2);
  });

  it('a chunked response is passed on, repeated headers kept, its length logged', async () => {
    const r = await fetch(port, 'chunked.test', '/c');
    assert.equal(r.body, 'abcde');
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(r.headers.server, 'nginx');
    assert.match(await logLine('GET /c '), / 200 5 "-" .* 127\.0\.0\.1:\d+ 5 \d+\.\d{3} 200 /);
  });

  it('a response delimited by the end of the connection', async () => {
    const r = await fetch(port, 'closedelimited.test', '/eof');
    assert.equal(r.body, 'until the end');
  });

  it('1xx informational responses are skipped', async () => {
    const r = await fetch(port, 'early.test', '/e');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'late');
  });

  it('HEAD: no body, and the connection stays in step', async () => {
    const h = await fetch(port, 'head.test', '/h', { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-length'], '10');
    assert.equal(h.body, '');
    assert.equal((await fetch(port, 'head.test', '/g')).body, '0123456789');
    assert.equal(backends.head!.connections, 1);
  });

  it('a keep-alive connection closed under a request: sent again on a new one', async () => {
    assert.equal((await fetch(port, 'stale.test', '/1')).status, 200);
    const r = await fetch(port, 'stale.test', '/2');
    assert.equal(r.status, 200);
    assert.equal(backends.stale!.connections, 2);
    assert.match(await logLine('GET /2 '), /\] 127\.0\.0\.1:\d+ 2 \d+\.\d{3} 200 /);
  });

  it('502 when the upstream closes without answering or answers garbage', async () => {
    assert.equal((await fetch(port, 'eof.test', '/x')).status, 502);
    assert.equal((await fetch(port, 'invalid.test', '/x')).status, 502);
  });

  it('a request body is streamed, re-chunked when the client sent it chunked', async () => {
    const r = await fetch(port, 'echo.test', '/post', {
      method: 'POST',
      chunks: ['hello ', 'world'],
    });
    assert.equal(r.body, 'got 11');
    assert.equal(seen.te, 'chunked');
    assert.equal(seen.body, 'hello world');
    const fixed = await fetch(port, 'echo.test', '/put', {
      method: 'PUT',
      headers: { 'content-length': '3' },
      chunks: ['abc'],
    });
    assert.equal(fixed.body, 'got 3');
    assert.equal(seen.te, undefined);
  });

  it('a client gone mid-response: logged 499, the upstream connection dropped', async () => {
    const before = backends.stall!.connections;
    await new Promise<void>((resolve) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/gone', headers: { host: 'stall.test' }, agent: false },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => undefined);
      req.end();
    });
    assert.match(await logLine('GET /gone '), /" 499 /);
    assert.equal((await fetch(port, 'stall.test', '/next')).status, 200); // new connection
    assert.equal(backends.stall!.connections, before + 2);
  });

  it('a large body arrives whole, with the upstream reason phrase', async () => {
    const r = await fetch(port, 'big.test', '/big');
    assert.equal(r.body.length, 8 * 1024 * 1024);
    const raw = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () =>
        s.write('HEAD /big HTTP/1.1\r\nHost: big.test\r\nConnection: close\r\n\r\n'),
      );
      let out = '';
      s.on('data', (d) => (out += d.toString('latin1')));
      s.on('close', () => resolve(out));
    });
    assert.match(raw, /^HTTP\/1\.1 200 Fine\r\n/);
  });

  it('backend-protocol HTTPS: TLS to the endpoint, certificate not verified', async () => {
    const r = await fetch(port, 'tls.test', '/secure');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'tls /secure');
  });
});
