/**
 * A fixed number of keep-alive GETs over raw sockets, for bench/ingress/instructions.sh
 * (wrk runs for a time, callgrind needs a count):
 *
 *   node dist/bench/ingress/load.js PORT REQUESTS CONNECTIONS [HOST] [PATH]
 *
 * Exits 0 once every request has its whole response (Content-Length framed), 1 on error.
 */
import { connect } from 'node:net';

const [port, total, conns] = process.argv.slice(2, 5).map(Number) as [number, number, number];
const host = process.argv[5] ?? 'blog.webapp.com';
const path = process.argv[6] ?? '/blog/hello-world';
const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
let sent = 0;
let done = 0;
const t0 = Date.now();

for (let c = 0; c < conns; c++) {
  const s = connect(port, '127.0.0.1');
  let buf = '';
  const next = (): void => {
    if (sent < total) {
      sent++;
      s.write(request);
    } else s.end();
  };
  s.on('connect', next);
  s.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) break;
      const m = /\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end));
      const len = m ? Number(m[1]) : 0;
      if (buf.length < end + 4 + len) break;
      buf = buf.slice(end + 4 + len);
      if (++done === total) {
        process.stdout.write(`${total} requests in ${Date.now() - t0} ms\n`);
        process.exit(0);
      }
      next();
    }
  });
  s.on('error', (e) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
}
