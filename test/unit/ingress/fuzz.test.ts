/**
 * Malformed HTTP against the proxy's own server (server.ts drives llhttp itself): requests
 * mutated at random (a fixed seed, so a failure can be replayed) must each get an HTTP
 * answer or a closed connection — never a crash, a hang past the timeouts, or a proxy
 * that stops answering well-formed requests afterwards.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { IngressProxy } from '../../../src/ingress/index.js';
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

/** xorshift32: the same mutations on every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

// No upgrade request among them: an upgrade is a tunnel once its head is sent, closed by
// the upstream or proxy-read-timeout (60 s), as in nginx; the proxy tests cover it.
const SEEDS = [
  'GET /blog/hello-world HTTP/1.1\r\nHost: blog.webapp.com\r\nUser-Agent: fuzz\r\n\r\n',
  'POST /blog/x HTTP/1.1\r\nHost: blog.webapp.com\r\nContent-Length: 5\r\n\r\nhello',
  'POST /blog/x HTTP/1.1\r\nHost: blog.webapp.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /blog HTTP/1.1\r\nHost: blog.webapp.com\r\n\r\n',
  'PUT /blog/a?b=c%20d HTTP/1.1\r\nHost: blog.webapp.com:80\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc',
];

const NOISE = [
  '\r',
  '\n',
  '\r\n',
  '\0',
  ' ',
  ':',
  '\t',
  '%',
  '%zz',
  '/../',
  'ÿ',
  'Transfer-Encoding: chunked\r\n',
  'Content-Length: 99999999999999999999\r\n',
  'Content-Length: -1\r\n',
  'Host: \r\n',
  '0\r\n\r\n',
  'x'.repeat(9000),
];

function mutate(text: string, rnd: () => number): string {
  let s = text;
  const edits = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(rnd() * (s.length + 1));
    switch (Math.floor(rnd() * 5)) {
      case 0: // flip a byte
        s = s.slice(0, at) + String.fromCharCode(Math.floor(rnd() * 256)) + s.slice(at + 1);
        break;
      case 1: // insert noise
        s = s.slice(0, at) + NOISE[Math.floor(rnd() * NOISE.length)]! + s.slice(at);
        break;
      case 2: // delete a run
        s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rnd() * 8));
        break;
      case 3: // cut the request short
        s = s.slice(0, at);
        break;
      default:
        {
          // repeat a line
          const lines = s.split('\r\n');
          const k = Math.floor(rnd() * lines.length);
          lines.splice(k, 0, lines[k]!);
          s = lines.join('\r\n');
        }
        break;
    }
  }
  return s;
}

/**
 * Sends the bytes (latin1); resolves with what came back once the proxy closes (its
 * keep-alive or header timeout at the latest). Not half-closed: nginx takes a client's
 * FIN during a request for an abort (499), and so does the proxy.
 */
function exchange(port: number, data: string, limitMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within ${limitMs} ms after ${JSON.stringify(data)}`));
    }, limitMs);
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.write(Buffer.from(data, 'latin1'));
  });
}

describe('the proxy under malformed requests', () => {
  let blog: Backend;
  let proxy: IngressProxy;
  let port: number;

  before(async () => {
    blog = await startBackend('blog-1');
    const config = compile(
      join(
        INGRESS_CLASS,
        service('blog', 80, [blog.port]),
        ingress({
          name: 'blog',
          annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/blogroll/$2' },
          host: 'blog.webapp.com',
          paths: [{ path: '/blog(/|$)(.*)', service: 'blog', port: 80 }],
        }),
      ),
    );
    proxy = new IngressProxy(config, {
      accessLog: pino({ level: 'silent' }),
      log: null,
      headersTimeoutMs: 400,
      requestTimeoutMs: 800,
      keepAliveTimeoutMs: 400,
    });
    port = (await proxy.listenHttp('127.0.0.1', 0)).port;
  });

  after(async () => {
    await proxy.close();
    blog.close();
  });

  it('answers 600 mutated requests with HTTP or a close, and serves well-formed ones after', async () => {
    const rnd = prng(0x6b776972);
    const cases: string[] = [];
    for (let i = 0; i < 600; i++) cases.push(mutate(SEEDS[i % SEEDS.length]!, rnd));
    const statuses = new Map<string, number>();
    const STATUS_LINE = /^HTTP\/1\.[01] (\d{3}) /;
    for (let i = 0; i < cases.length; i += 100) {
      const batch = cases.slice(i, i + 100);
      const outs = await Promise.all(batch.map((c) => exchange(port, c, 5000)));
      for (const [k, out] of outs.entries()) {
        if (out === '') {
          statuses.set('closed', (statuses.get('closed') ?? 0) + 1);
          continue;
        }
        const m = STATUS_LINE.exec(out);
        assert.ok(
          m,
          `not an HTTP answer to ${JSON.stringify(batch[k])}: ${JSON.stringify(out.slice(0, 200))}`,
        );
        statuses.set(m[1]!, (statuses.get(m[1]!) ?? 0) + 1);
      }
    }
    // The mutations reach both the parser's refusals and the proxying.
    assert.ok((statuses.get('400') ?? 0) > 50, JSON.stringify([...statuses]));
    assert.ok((statuses.get('200') ?? 0) > 10, JSON.stringify([...statuses]));
    const r = await get(port, '/blog/after', { host: 'blog.webapp.com' });
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { path: string }).path, '/blogroll/after');
  });
});
