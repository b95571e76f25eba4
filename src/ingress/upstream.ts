/**
 * The upstream side of the proxy: keep-alive HTTP/1.1 connections to the endpoints
 * (nginx's `upstream { keepalive 320; }`), one request at a time on each, with Node's own
 * llhttp response parser driven directly — no ClientRequest, IncomingMessage or Agent in
 * between. The request head is written as one string; response headers arrive as the raw
 * flat array llhttp produces and the body as the parser's slices.
 *
 * Timeouts are inactivity timeouts checked by one interval timer for all connections (no
 * timer per request or per socket): proxy_connect_timeout until connected, then
 * proxy_read_timeout while a request is in flight; an idle pooled connection closes after
 * upstream-keepalive-timeout (60 s) without traffic.
 *
 * The parser is Node's llhttp binding (llhttp.ts).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  closeParser,
  consume,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  noop,
  Parser,
  PARSER_RESOURCE,
  setReading,
  type HTTPParser,
  type ParseError,
} from './llhttp.js';

/** What a connection reports to the request it carries. */
export interface UpstreamExchange {
  /** The request method (a HEAD response has no body). */
  readonly method: string;
  /** Status line and headers, flat `[name, value, …]` as received. */
  onUpstreamHead(status: number, reason: string, headers: string[]): void;
  /** A piece of the body (not the last one). */
  onUpstreamBody(chunk: Buffer): void;
  /** The response is complete; `last`: its last piece of body, if any. */
  onUpstreamEnd(last: Buffer | null): void;
  /**
   * The exchange failed. `timedOut`: connect or read timeout. `stale`: a reused keep-alive
   * connection closed under the request before any response byte (the upstream closed
   * it while idle); an idempotent request can go again on a new connection.
   */
  onUpstreamError(err: NodeJS.ErrnoException, timedOut: boolean, stale: boolean): void;
  /** The connection can take more of the request body (after writeBody returned false). */
  onUpstreamDrain(): void;
}

export interface UpstreamTarget {
  ip: string;
  port: number;
}

function upstreamError(message: string, code: string): NodeJS.ErrnoException {
  const e = new Error(message) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

/** Milliseconds, updated by the pool's check timer: activity stamps need no better. */
let clock = Date.now();
const CHECK_MS = 250;

/** One connection to an endpoint and its response parser. */
export class UpstreamConnection {
  readonly socket: Socket;
  private readonly parser: HTTPParser;
  exchange: UpstreamExchange | null = null;
  /** Responses completed on this connection (0: never used). */
  served = 0;
  private connected = false;
  /** The inactivity allowed now: connect, read or idle timeout. */
  private timeoutMs: number;
  /** proxy_read_timeout of the request in flight (applied once connected). */
  private readTimeoutMs = 0;
  /** Last traffic (clock). */
  private active = Date.now();
  private headers: string[] = [];
  /** The body piece received last, held until the next one or the end of the message. */
  private pending: Buffer | null = null;
  private keepAlive = false;
  private requestSent = false;
  private gotResponse = false;
  private error: NodeJS.ErrnoException | null = null;
  private timedOut = false;
  private closed = false;
  /** The parser reads the socket itself (plain TCP), else 'data' events feed it. */
  private consumed = false;

  constructor(
    private readonly pool: EndpointPool,
    connectTimeoutMs: number,
  ) {
    this.timeoutMs = connectTimeoutMs;
    const s = pool.tls
      ? tlsConnect({ host: pool.ip, port: pool.port, rejectUnauthorized: false })
      : netConnect({ host: pool.ip, port: pool.port });
    s.setNoDelay(true);
    this.socket = s;
    pool.all.add(this);
    s.once(pool.tls ? 'secureConnect' : 'connect', () => {
      this.connected = true;
      this.timeoutMs = this.exchange !== null ? this.readTimeoutMs : pool.idleTimeoutMs;
      this.active = Date.now();
    });
    s.on('end', () => this.onEnd());
    s.on('error', (err: NodeJS.ErrnoException) => {
      this.error ??= err;
    });
    s.on('close', () => this.onClose());
    s.on('drain', () => this.exchange?.onUpstreamDrain());

    const p: HTTPParser = new Parser();
    p.initialize(Parser.RESPONSE, PARSER_RESOURCE, 0, 0);
    p[kOnMessageBegin] = noop;
    p[kOnExecute] = noop;
    p[kOnHeaders] = (h: string[]) => {
      for (let i = 0; i < h.length; i++) this.headers.push(h[i]!);
    };
    p[kOnHeadersComplete] = (
      _maj: number,
      _min: number,
      headers: string[] | undefined,
      _method: unknown,
      _url: unknown,
      status: number,
      reason: string,
      upgrade: boolean,
      keepAlive: boolean,
    ): number => this.onHead(headers, status, reason, upgrade, keepAlive);
    p[kOnBody] = (b: Buffer) => {
      const held = this.pending;
      this.pending = b;
      if (held !== null) this.exchange?.onUpstreamBody(held);
    };
    p[kOnMessageComplete] = () => this.onMessageComplete();
    this.parser = p;
    this.consumed = !pool.tls && consume(p, s, (r) => this.afterExecute(r));
    if (!this.consumed) s.on('data', (d: Buffer) => this.afterExecute(p.execute(d)));
  }

  get destroyed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /** The check timer: closes the connection after its inactivity timeout. */
  check(now: number): void {
    if (now - this.active <= this.timeoutMs || this.closed) return;
    if (this.exchange !== null) this.timedOut = true;
    this.socket.destroy();
  }

  /**
   * Sends a request: `head` is the request line and headers with the final CRLF. With
   * `hasBody`, the body follows through writeBody and endBody.
   */
  send(ex: UpstreamExchange, head: string, hasBody: boolean, readTimeoutMs: number): void {
    this.exchange = ex;
    this.gotResponse = false;
    this.error = null;
    this.timedOut = false;
    this.requestSent = !hasBody;
    this.readTimeoutMs = readTimeoutMs;
    if (this.connected) this.timeoutMs = readTimeoutMs;
    this.active = Date.now(); // exact: the wait for the answer starts now
    this.socket.write(head, 'latin1');
  }

  /** A piece of the request body (re-chunked when `chunked`); false: wait for drain. */
  writeBody(chunk: Buffer, chunked: boolean): boolean {
    this.active = clock;
    const s = this.socket;
    if (!chunked) return s.write(chunk);
    s.cork();
    s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    s.write(chunk);
    const ok = s.write('\r\n', 'latin1');
    s.uncork();
    return ok;
  }

  /** The request body is complete. */
  endBody(chunked: boolean): void {
    if (chunked) this.socket.write('0\r\n\r\n', 'latin1');
    this.requestSent = true;
  }

  /** Flow control for the response body (the client reads slower than upstream sends). */
  pause(): void {
    if (this.consumed) setReading(this.socket, false);
    else this.socket.pause();
  }

  resume(): void {
    if (this.consumed) setReading(this.socket, true);
    else this.socket.resume();
  }

  /** Drops the connection (the client went away mid-response, or an error). */
  destroy(): void {
    this.exchange = null;
    this.pending = null;
    this.socket.destroy();
  }

  /** After the parser went through a read. */
  private afterExecute(r: number | ParseError): void {
    this.active = clock;
    // A body piece not followed by the end in this packet goes out now (streaming).
    const held = this.pending;
    if (held !== null) {
      this.pending = null;
      this.exchange?.onUpstreamBody(held);
    }
    if (r instanceof Error) {
      this.error = upstreamError(
        `upstream sent an invalid response: ${r.code ?? r.message}`,
        'EPROTO',
      );
      this.socket.destroy();
    }
  }

  private onHead(
    headers: string[] | undefined,
    status: number,
    reason: string,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    const h = headers ?? this.headers;
    this.headers = [];
    const ex = this.exchange;
    if (ex === null || upgrade) {
      // A response nobody asked for, or a protocol switch on the plain HTTP path.
      this.error = upstreamError('upstream switched protocols or answered unasked', 'EPROTO');
      this.socket.destroy();
      return 1;
    }
    if (status < 200) return 1; // 1xx informational: the final response follows
    this.gotResponse = true;
    this.keepAlive = keepAlive;
    ex.onUpstreamHead(status, reason, h);
    return ex.method === 'HEAD' || status === 304 || status === 204 ? 1 : 0;
  }

  private onMessageComplete(): void {
    this.headers = [];
    const last = this.pending;
    this.pending = null;
    const ex = this.exchange;
    if (ex === null || !this.gotResponse) return; // the end of a 1xx
    this.exchange = null;
    this.served++;
    ex.onUpstreamEnd(last);
    // Answered before the whole request body went out: the connection is out of step.
    if (!this.keepAlive || !this.requestSent) this.socket.destroy();
    else this.release();
  }

  private release(): void {
    if (this.closed || this.socket.destroyed) return;
    this.timeoutMs = this.pool.idleTimeoutMs;
    this.active = clock;
    this.pool.release(this);
  }

  private onEnd(): void {
    // A close-delimited body ends here; anything else in flight ended too soon.
    if (this.exchange !== null) {
      const r = this.parser.finish();
      if (r instanceof Error && this.exchange !== null)
        this.error ??= upstreamError('upstream prematurely closed connection', 'ECONNRESET');
    }
    this.socket.destroy();
  }

  private onClose(): void {
    this.closed = true;
    this.pool.remove(this);
    this.pool.all.delete(this);
    const ex = this.exchange;
    this.exchange = null;
    closeParser(this.parser, this.consumed);
    if (ex === null) return;
    const err =
      this.error ??
      (this.timedOut
        ? upstreamError('upstream timed out', 'ETIMEDOUT')
        : upstreamError('upstream prematurely closed connection', 'ECONNRESET'));
    const stale = this.served > 0 && !this.gotResponse && !this.timedOut;
    ex.onUpstreamError(err, this.timedOut, stale);
  }
}

/** Idle connections to one endpoint (HTTP or HTTPS). */
export class EndpointPool {
  readonly idle: UpstreamConnection[] = [];
  /** Every open connection, idle or not (for the timeouts). */
  readonly all = new Set<UpstreamConnection>();

  constructor(
    readonly ip: string,
    readonly port: number,
    readonly tls: boolean,
    /** 0 once the proxy is closing: connections are dropped when their response is done. */
    public maxIdle: number,
    readonly idleTimeoutMs: number,
  ) {}

  release(c: UpstreamConnection): void {
    if (this.idle.length >= this.maxIdle) c.destroy();
    else this.idle.push(c);
  }

  remove(c: UpstreamConnection): void {
    const i = this.idle.lastIndexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }
}

export interface UpstreamPoolOptions {
  /** Idle connections kept per endpoint (upstream-keepalive-connections, 320). */
  maxIdle: number;
  /** Idle connections close after this long (upstream-keepalive-timeout, 60 s). */
  idleTimeoutMs: number;
}

/** Keep-alive connections to every endpoint, HTTP and HTTPS. */
export class UpstreamPool {
  private readonly pools = new Map<string, EndpointPool>();
  private readonly byEndpoint = new WeakMap<UpstreamTarget, EndpointPool>();
  private readonly byEndpointTls = new WeakMap<UpstreamTarget, EndpointPool>();

  private readonly opts: UpstreamPoolOptions;
  private readonly timer: NodeJS.Timeout;

  constructor(opts: UpstreamPoolOptions) {
    this.opts = { ...opts };
    this.timer = setInterval(() => {
      clock = Date.now();
      for (const p of this.pools.values()) for (const c of p.all) c.check(clock);
    }, CHECK_MS);
    this.timer.unref();
  }

  private pool(e: UpstreamTarget, tls: boolean): EndpointPool {
    const cache = tls ? this.byEndpointTls : this.byEndpoint;
    let p = cache.get(e);
    if (p === undefined) {
      const key = `${tls ? 'https' : 'http'}://${e.ip}:${e.port}`;
      p = this.pools.get(key);
      if (p === undefined) {
        p = new EndpointPool(e.ip, e.port, tls, this.opts.maxIdle, this.opts.idleTimeoutMs);
        this.pools.set(key, p);
      }
      cache.set(e, p);
    }
    return p;
  }

  /**
   * A connection to the endpoint: the most recently idle one, else a new one (connecting
   * with `connectTimeoutMs`). `fresh` forces a new connection.
   */
  acquire(
    e: UpstreamTarget,
    tls: boolean,
    connectTimeoutMs: number,
    fresh = false,
  ): UpstreamConnection {
    const p = this.pool(e, tls);
    if (!fresh) {
      for (let c = p.idle.pop(); c !== undefined; c = p.idle.pop()) if (!c.destroyed) return c;
    }
    return new UpstreamConnection(p, connectTimeoutMs);
  }

  /** Idle connections (for tests and shutdown). */
  idleCount(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.idle.length;
    return n;
  }

  /** Closes every idle connection; connections in use close after their response. */
  destroy(): void {
    this.opts.maxIdle = 0;
    for (const p of this.pools.values()) {
      p.maxIdle = 0;
      for (const c of p.idle.splice(0)) c.destroy();
    }
  }
}
