import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import {
  formatAccessLog,
  formatAccessLogJson,
  seconds,
  type AccessLogEntry,
} from '../../../src/ingress/access-log.js';
import { BatchedDestination, preformattedInfo } from '../../../src/util/log.js';

const entry = (over: Partial<AccessLogEntry> = {}): AccessLogEntry => ({
  remoteAddr: '10.1.0.89',
  remoteUser: '',
  timeLocal: '23/Nov/2026:15:08:24 +0000',
  request: 'GET /blog/hello-world HTTP/1.1',
  status: 200,
  bodyBytesSent: 617,
  referer: '',
  userAgent: 'curl/7.88.1',
  requestLength: 96,
  requestTime: '0.007',
  upstreamName: 'default-blog-80',
  alternativeUpstreamName: '',
  upstreamAddr: '192.168.104.66:80',
  upstreamResponseLength: '617',
  upstreamResponseTime: '0.005',
  upstreamStatus: '200',
  requestId: '84ef9b97397c364820628ae2ca2a0dde',
  ...over,
});

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(l);
      cb();
    },
  });
  return { lines, stream };
}

describe('access log', () => {
  it("ingress-nginx's log-format-upstream", () => {
    assert.equal(
      formatAccessLog(entry()),
      '10.1.0.89 - - [23/Nov/2026:15:08:24 +0000] "GET /blog/hello-world HTTP/1.1" 200 617 "-" "curl/7.88.1" 96 0.007 [default-blog-80] [] 192.168.104.66:80 617 0.005 200 84ef9b97397c364820628ae2ca2a0dde',
    );
  });

  it('escapes as nginx does; the JSON form decodes to the same line', () => {
    const e = entry({
      request: 'GET /a"b\\c HTTP/1.1',
      userAgent: 'é\u0001',
      requestId: 'x"y',
    });
    const text = formatAccessLog(e);
    assert.match(text, /"GET \/a\\x22b\\x5Cc HTTP\/1\.1"/);
    assert.match(text, /"\\xC3\\xA9\\x01"/);
    assert.match(text, / x\\x22y$/);
    assert.equal(JSON.parse(`"${formatAccessLogJson(e)}"`), text);
    assert.equal(JSON.parse(`"${formatAccessLogJson(entry())}"`), formatAccessLog(entry()));
  });

  it('$request_time: seconds with three decimals', () => {
    assert.equal(seconds(0), '0.000');
    assert.equal(seconds(0.4), '0.000');
    assert.equal(seconds(7.2), '0.007');
    assert.equal(seconds(54.6), '0.055');
    assert.equal(seconds(1234.5), '1.235');
    assert.equal(seconds(61000), '61.000');
  });

  it("pre-formatted lines are byte for byte pino's", () => {
    const a = capture();
    const b = capture();
    const viaPino = pino({ name: 'ingress-nginx' }, a.stream).child({ pod: 'p', namespace: 'n' });
    const fast = pino({ name: 'ingress-nginx' }, b.stream).child({ pod: 'p', namespace: 'n' });
    const write = preformattedInfo(fast);
    assert.ok(write);
    const e = entry({ request: 'GET /"é" HTTP/1.1' });
    viaPino.info(formatAccessLog(e));
    write(formatAccessLogJson(e));
    const strip = (l: string): string => l.replace(/"time":\d+/, '"time":0');
    assert.equal(strip(b.lines[0]!), strip(a.lines[0]!));
    fast.level = 'warn';
    write('quiet');
    assert.equal(b.lines.length, 1);
  });

  it('customised loggers are left to pino', () => {
    const { stream } = capture();
    assert.equal(preformattedInfo(pino({ messageKey: 'message' }, stream)), null);
    assert.equal(
      preformattedInfo(pino({ formatters: { log: (o: Record<string, unknown>) => o } }, stream)),
      null,
    );
    assert.equal(
      preformattedInfo(pino({ timestamp: pino.stdTimeFunctions.isoTime }, stream)),
      null,
    );
    assert.equal(preformattedInfo(pino({ mixin: () => ({ a: 1 }) }, stream)), null);
  });

  it('the buffered destination writes in batches and on flush', () => {
    const { lines, stream } = capture();
    const d = new BatchedDestination(stream, 100, 60_000);
    d.write('a'.repeat(40) + '\n');
    d.write('b'.repeat(40) + '\n');
    assert.equal(lines.length, 0);
    d.write('c'.repeat(40) + '\n');
    assert.equal(lines.length, 3);
    d.write('d\n');
    d.flush();
    assert.deepEqual(lines.slice(3), ['d']);
  });
});
