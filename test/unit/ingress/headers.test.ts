import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clientResponseHeaders,
  connectionLines,
  scanRequestHeaders,
  upstreamRequestHead,
  type UpstreamRequest,
} from '../../../src/ingress/headers.js';

const request = (over: Partial<UpstreamRequest> = {}): UpstreamRequest => ({
  method: 'GET',
  url: '/blogroll/x',
  host: 'blog.webapp.com',
  requestId: 'abc',
  forwardedHost: 'blog.webapp.com',
  lines: connectionLines('10.1.0.89', '80', 'http'),
  prefix: null,
  chunked: false,
  ...over,
});
const endpoint = { ip: '192.168.104.66', port: 8080 };

describe('request headers (one pass over rawHeaders)', () => {
  it('reads what the proxy needs, in any case, as req.headers would', () => {
    const raw = [
      'HOST', 'a.com:8080',
      'host', 'b.com',
      'User-Agent', 'curl/8',
      'x-forwarded-for', '1.2.3.4',
      'X-Forwarded-For', '5.6.7.8',
      'Cookie', 'a=1',
      'cookie', 'b=2',
      'X-Request-ID', 'id-1',
      'Content-Length', '5',
    ]; // prettier-ignore
    const h = scanRequestHeaders(raw);
    assert.equal(h.host, 'a.com:8080');
    assert.equal(h.userAgent, 'curl/8');
    assert.equal(h.xForwardedFor, '1.2.3.4, 5.6.7.8');
    assert.equal(h.cookie, 'a=1; b=2');
    assert.equal(h.requestId, 'id-1');
    assert.equal(h.contentLength, '5');
    assert.equal(h.passed, 'User-Agent: curl/8\r\nCookie: a=1\r\ncookie: b=2\r\n');
    // name + ": " + value + CRLF for every line
    assert.equal(h.bytes, raw.join('').length + 4 * (raw.length / 2));
  });

  it('passes repeated headers line by line and drops hop-by-hop ones', () => {
    const h = scanRequestHeaders([
      'Accept', 'text/html',
      'accept', 'application/json',
      'Connection', 'keep-alive',
      'Keep-Alive', '300',
      'Proxy', 'evil',
      'Proxy-Connection', 'keep-alive',
      'TE', 'trailers',
      'Expect', '100-continue',
      'X-Real-IP', '6.6.6.6',
      'X-Forwarded-Proto', 'https',
      'X-Custom', 'v',
    ]); // prettier-ignore
    assert.equal(h.passed, 'Accept: text/html\r\naccept: application/json\r\nX-Custom: v\r\n');
    assert.equal(h.connection, 'keep-alive');
  });
});

describe('the upstream request head', () => {
  it("proxy_set_header lines first, as ingress-nginx's template sets them", () => {
    const h = scanRequestHeaders(['Host', 'blog.webapp.com', 'Accept', '*/*']);
    assert.equal(
      upstreamRequestHead(request(), h, endpoint),
      'GET /blogroll/x HTTP/1.1\r\n' +
        'Host: blog.webapp.com\r\n' +
        'X-Request-ID: abc\r\n' +
        'X-Real-IP: 10.1.0.89\r\n' +
        'X-Forwarded-For: 10.1.0.89\r\n' +
        'X-Forwarded-Host: blog.webapp.com\r\n' +
        'X-Forwarded-Port: 80\r\n' +
        'X-Forwarded-Proto: http\r\n' +
        'X-Forwarded-Scheme: http\r\n' +
        'X-Scheme: http\r\n' +
        'Accept: */*\r\n' +
        '\r\n',
    );
  });

  it('X-Original-Forwarded-For, X-Forwarded-Prefix, body framing, upgrade', () => {
    const h = scanRequestHeaders([
      'X-Forwarded-For', '1.2.3.4',
      'X-Forwarded-Prefix', '/theirs',
      'Transfer-Encoding', 'chunked',
      'Upgrade', 'h2c',
      'Connection', 'Upgrade, HTTP2-Settings',
    ]); // prettier-ignore
    const head = upstreamRequestHead(request({ host: null, chunked: true }), h, endpoint);
    assert.match(head, /\r\nHost: 192\.168\.104\.66:8080\r\n/);
    assert.match(head, /\r\nX-Original-Forwarded-For: 1\.2\.3\.4\r\n/);
    assert.match(head, /\r\nX-Forwarded-Prefix: \/theirs\r\n/);
    assert.match(head, /\r\nTransfer-Encoding: chunked\r\n/);
    assert.match(head, /\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n/);
    assert.match(head, /\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n$/);
    const ours = upstreamRequestHead(request({ prefix: '/blog' }), h, endpoint);
    assert.match(ours, /\r\nX-Forwarded-Prefix: \/blog\r\n/);
    assert.doesNotMatch(ours, /theirs/);
    const post = scanRequestHeaders(['Content-Length', '12', 'Connection', 'close']);
    const p = upstreamRequestHead(request({ method: 'POST' }), post, endpoint);
    assert.match(p, /\r\nContent-Length: 12\r\n\r\n$/);
    assert.doesNotMatch(p, /Connection/);
  });
});

describe('response headers to the client', () => {
  it('Server: nginx; Date, X-Pad and hop-by-hop dropped; repeated headers kept', () => {
    const r = clientResponseHeaders(
      [
        'Server', 'gunicorn',
        'Date', 'Mon, 01 Jan 2024 00:00:00 GMT',
        'Content-Length', '3',
        'Set-Cookie', 'a=1',
        'Set-Cookie', 'b=2',
        'Connection', 'keep-alive',
        'Keep-Alive', 'timeout=5',
        'Transfer-Encoding', 'chunked',
        'X-Pad', 'avoid browser bug',
      ],
      null,
    ); // prettier-ignore
    assert.deepEqual(r.headers, [
      'Server', 'nginx',
      'Content-Length', '3',
      'Set-Cookie', 'a=1',
      'Set-Cookie', 'b=2',
    ]); // prettier-ignore
    assert.equal(r.contentLength, '3');
  });

  it('CORS headers replace the upstream ones; the affinity cookie is added', () => {
    const r = clientResponseHeaders(
      ['Access-Control-Allow-Origin', 'x', 'Set-Cookie', 'a=1'],
      [
        ['access-control-allow-origin', '*'],
        ['set-cookie', 'INGRESSCOOKIE=abc'],
      ],
    );
    assert.deepEqual(r.headers, [
      'Server', 'nginx',
      'Set-Cookie', 'a=1',
      'access-control-allow-origin', '*',
      'set-cookie', 'INGRESSCOOKIE=abc',
    ]); // prettier-ignore
    assert.equal(r.contentLength, undefined);
  });
});
