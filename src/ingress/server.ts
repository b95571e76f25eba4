/**
 * The ingress's HTTP/1.1 server: connections parsed by Node's llhttp binding directly
 * (llhttp.ts), with the behaviour of the node:http server it replaces, minus the objects
 * node:http makes per request (IncomingMessage, ServerResponse, their streams and events):
 *
 * - parsing as strict as node:http's (llhttp, lenient flags off): malformed requests and
 *   the smuggling patterns (Content-Length with Transfer-Encoding, two Content-Lengths)
 *   are 400, headers over `maxHeaderSize` 431, then the connection is closed;
 * - keep-alive as llhttp decides it (HTTP/1.1 unless `Connection: close`, HTTP/1.0 with
 *   `Connection: keep-alive`), `Connection` / `Keep-Alive: timeout=N` in responses;
 * - response bodies framed by the handler's Content-Length, else chunked (HTTP/1.1) or
 *   ended by closing (HTTP/1.0); none for HEAD, 1xx, 204, 304;
 * - pipelined requests answered in order, one at a time;
 * - timeouts as node:http's `headersTimeout`, `requestTimeout` and `keepAliveTimeout`,
 *   checked by one interval timer per server for all connections (no timer per request);
 * - protocol upgrades handed over with the socket and the bytes after the head.
 *
 * A request's state and its response are one object, a ServerExchange, which the handler
 * subclasses (proxy.ts).
 */
import { STATUS_CODES } from 'node:http';
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import {
  closeParser,
  consume,
  currentBuffer,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  METHODS,
  noop,
  Parser,
  PARSER_RESOURCE,
  setReading,
  unconsume,
  type HTTPParser,
  type ParseError,
} from './llhttp.js';

export interface RequestHead {
  method: string;
  /** The request target as received. */
  url: string;
  versionMajor: number;
  versionMinor: number;
  /** Flat `[name, value, …]` as received. */
  rawHeaders: string[];
  /** llhttp's verdict: HTTP/1.1 without `Connection: close`, HTTP/1.0 with keep-alive. */
  keepAlive: boolean;
}

export interface HttpServerOptions {
  /** The whole request head must arrive within this (node:http headersTimeout). */
  headersTimeoutMs: number;
  /** The whole request must arrive within this (node:http requestTimeout). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (node:http keepAliveTimeout). */
  keepAliveTimeoutMs: number;
  /** Request head bytes (node:http maxHeaderSize). */
  maxHeaderSize: number;
}

export interface ServerHandler {
  /** A request head arrived: the exchange for it (started by the server with `start`). */
  request(conn: ClientConnection, head: RequestHead): ServerExchange;
  /** An upgrade request (or CONNECT): the socket is the handler's from now on. */
  upgrade(conn: ClientConnection, head: RequestHead, bodyHead: Buffer): void;
  /**
   * A request that could not be parsed (400, 431) or did not arrive in time (408): the
   * handler writes the answer with `conn.sendError`; the connection is closed after it.
   */
  clientError(conn: ClientConnection, status: number, err: Error): void;
}

// --------------------------------------------------------------------------------------
// Clock and Date

/** Milliseconds, updated by the servers' check timers (timeouts need no better). */
let clock = Date.now();

let dateSecond = 0;
let dateLine = '';

/** `Date: <IMF-fixdate>\r\n`, made once per second. */
function date(): string {
  const now = Date.now();
  if (now - dateSecond >= 1000 || now < dateSecond) {
    dateSecond = now - (now % 1000);
    dateLine = `Date: ${new Date(dateSecond).toUTCString()}\r\n`;
  }
  return dateLine;
}

// --------------------------------------------------------------------------------------
// Exchange

/** One request and its response. */
export abstract class ServerExchange {
  /** Keep the connection open after this response (may be cleared before the head). */
  keepAlive: boolean;
  headersSent = false;
  /** The response is complete (or abandoned). */
  finished = false;
  /** The client went away before the response was complete. */
  aborted = false;
  /** The whole request (with its body) has arrived. */
  requestComplete = false;
  private chunked = false;
  private bodyAllowed = true;
  /** The response head, written with the first piece of body. */
  private pendingHead: string | null = null;

  constructor(
    readonly conn: ClientConnection,
    readonly head: RequestHead,
  ) {
    this.keepAlive = head.keepAlive && !conn.closing;
  }

  /** Called once the exchange is the connection's current one. */
  abstract start(): void;
  /** A piece of the request body; false: stop reading until `conn.resumeReading()`. */
  abstract onBody(chunk: Buffer): boolean;
  /** The request body is complete (or there was none). */
  abstract onEnd(): void;
  /** The client closed the connection before the response was complete. */
  abstract onAbort(): void;
  /** The client's socket took the data written so far (after write returned false). */
  abstract onDrain(): void;
  /** The response is written (end was called). */
  abstract onFinish(): void;

  /** `100 Continue`, for a request with `Expect: 100-continue`. */
  writeContinue(): void {
    this.conn.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
  }

  /**
   * The status line and headers (flat `[name, value, …]`; not Date, Connection,
   * Transfer-Encoding). `hasLength`: the headers include Content-Length.
   */
  writeHead(status: number, reason: string, headers: readonly string[], hasLength: boolean): void {
    let s = `HTTP/1.1 ${status} ${reason}\r\n`;
    for (let i = 0; i < headers.length; i += 2) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
    s += date();
    const h = this.head;
    if (status < 200 || status === 204 || status === 304 || h.method === 'HEAD') {
      this.bodyAllowed = false;
    } else if (!hasLength) {
      if (h.versionMajor === 1 && h.versionMinor >= 1) this.chunked = true;
      else this.keepAlive = false; // HTTP/1.0: the end of the body is the end of the connection
    }
    if (this.conn.closing) this.keepAlive = false;
    s += this.keepAlive ? this.conn.server.keepAliveLines : 'Connection: close\r\n';
    if (this.chunked) s += 'Transfer-Encoding: chunked\r\n';
    this.pendingHead = s + '\r\n';
    this.headersSent = true;
  }

  /** A piece of the body; false: the socket's buffer is full (onDrain follows). */
  write(chunk: Buffer | string): boolean {
    if (!this.bodyAllowed || this.aborted) return true;
    const sock = this.conn.socket;
    const head = this.pendingHead;
    if (this.chunked) {
      const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      if (len === 0) return true;
      sock.cork();
      if (head !== null) sock.write(head, 'latin1');
      sock.write(`${len.toString(16)}\r\n`, 'latin1');
      sock.write(chunk);
      const ok = sock.write('\r\n', 'latin1');
      sock.uncork();
      this.pendingHead = null;
      return ok;
    }
    if (head === null) return sock.write(chunk);
    this.pendingHead = null;
    if (typeof chunk === 'string') return sock.write(head + chunk, 'latin1');
    sock.cork();
    sock.write(head, 'latin1');
    const ok = sock.write(chunk);
    sock.uncork();
    return ok;
  }

  /** The response is complete; `last`: its last piece of body. */
  end(last?: Buffer | string | null): void {
    if (this.finished) return;
    this.finished = true;
    if (this.aborted) return;
    const sock = this.conn.socket;
    const head = this.pendingHead;
    this.pendingHead = null;
    if (last != null && this.bodyAllowed && last.length > 0) {
      if (this.chunked) {
        const len = typeof last === 'string' ? Buffer.byteLength(last) : last.length;
        sock.cork();
        if (head !== null) sock.write(head, 'latin1');
        sock.write(`${len.toString(16)}\r\n`, 'latin1');
        sock.write(last);
        sock.write('\r\n0\r\n\r\n', 'latin1');
        sock.uncork();
      } else if (typeof last === 'string') {
        sock.write(head !== null ? head + last : last, 'latin1');
      } else if (head !== null) {
        sock.cork();
        sock.write(head, 'latin1');
        sock.write(last);
        sock.uncork();
      } else sock.write(last);
    } else if (head !== null) {
      sock.write(this.chunked ? head + '0\r\n\r\n' : head, 'latin1');
    } else if (this.chunked) {
      sock.write('0\r\n\r\n', 'latin1');
    }
    this.onFinish();
    this.conn.responseDone(this);
  }

  /** A whole response: status, headers (with Content-Length) and body. */
  send(status: number, headers: readonly string[], body: string): void {
    this.writeHead(status, STATUS_CODES[status] ?? 'unknown', headers, true);
    this.end(body);
  }
}

/** A pipelined request waiting for the ones before it. */
interface Queued {
  head: RequestHead;
  chunks: Buffer[];
  complete: boolean;
}

const enum Phase {
  /** Waiting for (the first byte of) a request head: keepAliveTimeout. */
  Idle,
  /** Receiving a head: headersTimeout. */
  Head,
  /** Receiving a body: requestTimeout. */
  Body,
  /** The request is in; the response is being made. */
  Busy,
}

// --------------------------------------------------------------------------------------
// Connection

export class ClientConnection {
  /** The client's address (IPv4-mapped IPv6 addresses as IPv4). */
  readonly remoteAddress: string;
  /** The port the connection came in on. */
  readonly localPort: string;
  /** No new request after the current one (the server is closing). */
  closing = false;
  /** Whatever the handler keeps per connection. */
  context: unknown = null;
  /** The exchange whose response is under way. */
  current: ServerExchange | null = null;
  private readonly parser: HTTPParser;
  /** The request the parser is reading (its body goes there). */
  private parsing: ServerExchange | Queued | null = null;
  private queue: Queued[] | null = null;
  private headers: string[] = [];
  private url = '';
  private upgradeHead: RequestHead | null = null;
  private phase = Phase.Head;
  private since = Date.now();
  private closed = false;
  /** Closing after the current response: nothing more is parsed. */
  private ending = false;
  /** The parser reads the socket itself (plain TCP), else 'data' events feed it. */
  private readonly consumed: boolean;

  constructor(
    readonly server: HttpServer,
    readonly socket: Socket,
    readonly scheme: 'http' | 'https',
  ) {
    const a = socket.remoteAddress ?? '';
    this.remoteAddress = a.startsWith('::ffff:') ? a.slice(7) : a;
    this.localPort = String(socket.localPort ?? '');
    const p: HTTPParser = new Parser();
    p.initialize(Parser.REQUEST, PARSER_RESOURCE, server.options.maxHeaderSize, 0);
    p[kOnMessageBegin] = () => {
      if (this.ending) return;
      this.phase = Phase.Head;
      this.since = Date.now();
    };
    p[kOnExecute] = noop;
    p[kOnHeaders] = (h: string[], url: string) => {
      for (let i = 0; i < h.length; i++) this.headers.push(h[i]!);
      this.url += url;
    };
    p[kOnHeadersComplete] = (
      major: number,
      minor: number,
      headers: string[] | undefined,
      method: number,
      url: string | undefined,
      _status: unknown,
      _reason: unknown,
      upgrade: boolean,
      keepAlive: boolean,
    ): number => {
      let raw = headers;
      if (raw === undefined) {
        raw = this.headers;
        this.headers = [];
      }
      const head: RequestHead = {
        method: METHODS[method] ?? '',
        url: url ?? this.url,
        versionMajor: major,
        versionMinor: minor,
        rawHeaders: raw,
        keepAlive,
      };
      this.url = '';
      if (upgrade) {
        this.upgradeHead = head;
        return 2; // no body: the rest of the bytes belong to the new protocol
      }
      this.phase = Phase.Body;
      this.onRequest(head);
      return 0;
    };
    p[kOnBody] = (chunk: Buffer) => this.onBody(chunk);
    p[kOnMessageComplete] = () => this.onMessageComplete();
    this.parser = p;

    this.consumed = scheme === 'http' && consume(p, socket, (r) => this.afterExecute(r, null));
    if (!this.consumed) socket.on('data', (d: Buffer) => this.afterExecute(p.execute(d), d));
    socket.on('drain', () => this.current?.onDrain());
    socket.on('end', () => {
      // The client half-closed: what is under way cannot be answered (as node:http).
      if (this.current !== null) socket.destroy();
    });
    socket.on('error', noop);
    socket.on('close', () => this.onClose());
    server.connections.add(this);
  }

  /** After the parser went through a read: errors, upgrades. */
  private afterExecute(r: number | ParseError, d: Buffer | null): void {
    if (this.ending) return;
    if (typeof r !== 'number') {
      this.failed(r.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400, r);
      return;
    }
    const up = this.upgradeHead;
    if (up !== null) {
      this.upgradeHead = null;
      const bodyHead = (d ?? currentBuffer(this.parser)).subarray(r);
      if (this.consumed) unconsume(this.parser, this.socket);
      this.detach();
      if (this.current !== null || this.queue !== null) this.socket.destroy();
      else this.server.handler.upgrade(this, up, bodyHead);
    }
  }

  private pauseReading(): void {
    if (this.consumed) setReading(this.socket, false);
    else this.socket.pause();
  }

  private resumeReadingNow(): void {
    if (this.consumed) setReading(this.socket, true);
    else this.socket.resume();
  }

  private onRequest(head: RequestHead): void {
    if (this.ending) return;
    if (this.current !== null || this.queue !== null) {
      // Pipelined: answered after the ones before it; stop reading meanwhile.
      const q: Queued = { head, chunks: [], complete: false };
      (this.queue ??= []).push(q);
      this.parsing = q;
      this.pauseReading();
      if (this.queue.length > 32) this.socket.destroy();
      return;
    }
    const ex = this.server.handler.request(this, head);
    this.current = ex;
    this.parsing = ex;
    ex.start();
  }

  private onBody(chunk: Buffer): void {
    const t = this.parsing;
    if (t === null) return;
    if (t instanceof ServerExchange) {
      if (!t.finished && !t.onBody(chunk)) this.pauseReading();
    } else t.chunks.push(chunk);
  }

  private onMessageComplete(): void {
    if (this.ending) return;
    const t = this.parsing;
    this.parsing = null;
    this.phase = Phase.Busy;
    if (t === null) return;
    if (t instanceof ServerExchange) {
      t.requestComplete = true;
      if (!t.finished) t.onEnd();
      else if (this.current === null) this.next(); // answered before the body was in
    } else t.complete = true;
  }

  /** Reading was stopped by a body piece the exchange could not take yet. */
  resumeReading(): void {
    if (this.queue === null) this.resumeReadingNow();
  }

  /** ServerExchange.end: the response is written. */
  responseDone(ex: ServerExchange): void {
    if (this.current !== ex) return;
    this.current = null;
    if (!ex.keepAlive || this.closing) {
      this.endConnection();
      return;
    }
    if (ex.requestComplete) this.next();
    // else: the rest of the body is read and dropped; the next request follows it
  }

  /** Ready for the next request: a pipelined one, or waiting (keep-alive). */
  private next(): void {
    if (this.ending) return;
    const q = this.queue?.shift();
    if (q === undefined) {
      this.queue = null;
      this.phase = Phase.Idle;
      this.since = clock;
      this.resumeReadingNow();
      return;
    }
    if (this.queue!.length === 0) this.queue = null;
    const ex = this.server.handler.request(this, q.head);
    this.current = ex;
    if (this.parsing === q) this.parsing = ex;
    ex.start();
    for (const c of q.chunks) if (!ex.finished) ex.onBody(c);
    if (q.complete) {
      ex.requestComplete = true;
      if (!ex.finished) ex.onEnd();
      else if (this.current === null) this.next();
    }
    if (this.queue === null) this.resumeReadingNow();
  }

  /** A bad request or a timeout: the handler's answer, then close. */
  private failed(status: number, err: Error): void {
    if (this.ending) return;
    this.detach();
    // A response under way cannot be followed by another one: just close (as node:http).
    if (this.current !== null || !this.socket.writable) {
      this.socket.destroy();
      return;
    }
    this.server.handler.clientError(this, status, err);
    this.endConnection();
  }

  /** Writes a whole raw response (error answers outside any exchange). */
  sendRaw(text: string): void {
    this.socket.write(text, 'latin1');
  }

  /** Closes after what is written has gone out. */
  endConnection(): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    this.detach();
    this.socket.end();
    // A client that never closes its side is dropped when the check timer sees it.
    this.since = Date.now();
  }

  /** No more parsing on this socket (closing, or handed over by an upgrade). */
  private detach(): void {
    if (!this.consumed) this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('drain');
    this.socket.removeAllListeners('end');
    this.queue = null;
    this.parsing = null;
  }

  /** The check timer: the node:http timeouts. */
  check(now: number): void {
    if (this.ending) {
      if (now - this.since > 5000) this.socket.destroy();
      return;
    }
    const o = this.server.options;
    switch (this.phase) {
      case Phase.Idle:
        if (now - this.since > o.keepAliveTimeoutMs) this.socket.destroy();
        break;
      case Phase.Head:
        if (o.headersTimeoutMs > 0 && now - this.since > o.headersTimeoutMs) this.timedOut();
        break;
      case Phase.Body:
        if (o.requestTimeoutMs > 0 && now - this.since > o.requestTimeoutMs) this.timedOut();
        break;
      case Phase.Busy:
        break;
    }
  }

  private timedOut(): void {
    const err = new Error('request timeout') as NodeJS.ErrnoException;
    err.code = 'ERR_HTTP_REQUEST_TIMEOUT';
    this.failed(408, err);
  }

  /** Closes the connection now if no request is under way (server shutdown). */
  closeIfIdle(): void {
    this.closing = true;
    if (this.current === null && this.parsing === null && this.queue === null) {
      this.socket.destroy();
    }
  }

  private onClose(): void {
    this.closed = true;
    this.server.connections.delete(this);
    closeParser(this.parser, this.consumed);
    const ex = this.current;
    this.current = null;
    this.queue = null;
    if (ex !== null && !ex.finished) {
      ex.aborted = true;
      ex.finished = true;
      ex.onAbort();
    }
  }

  /** Hands the socket over (upgrade): this connection forgets it. */
  private release(): void {
    this.server.connections.delete(this);
  }

  /** For the upgrade handler: the socket is no longer this connection's. */
  takeSocket(): Socket {
    this.release();
    this.closed = true;
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    const p = this.parser;
    setImmediate(() => p.close()); // not while its callback is on the stack
    return this.socket;
  }
}

// --------------------------------------------------------------------------------------
// Server

export class HttpServer {
  readonly connections = new Set<ClientConnection>();
  /** `Connection: keep-alive` and `Keep-Alive: timeout=N` (as node:http writes them). */
  readonly keepAliveLines: string;
  private readonly server: NetServer;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly handler: ServerHandler,
    readonly options: HttpServerOptions,
    readonly scheme: 'http' | 'https',
    tls?: TlsOptions,
  ) {
    this.keepAliveLines = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(
      options.keepAliveTimeoutMs / 1000,
    )}\r\n`;
    if (tls) {
      const s = createTlsServer(tls, (socket) => new ClientConnection(this, socket, 'https'));
      s.on('tlsClientError', noop);
      this.server = s;
    } else {
      this.server = createNetServer(
        { noDelay: true },
        (socket) => new ClientConnection(this, socket, 'http'),
      );
    }
    // How often the timeouts are checked (as node:http's connectionsCheckingInterval).
    const interval = Math.max(50, Math.min(1000, Math.floor(options.headersTimeoutMs / 4)));
    this.timer = setInterval(() => {
      clock = Date.now();
      for (const c of this.connections) c.check(clock);
    }, interval);
    this.timer.unref();
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /**
   * Stops listening; idle connections close now, the others after their response, and
   * whatever is left after `graceMs`.
   */
  close(graceMs: number): Promise<void> {
    clearInterval(this.timer);
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.closeIfIdle();
    const timer = setTimeout(() => {
      for (const c of this.connections) c.socket.destroy();
    }, graceMs);
    return done.finally(() => clearTimeout(timer));
  }
}

export type { ParseError };
