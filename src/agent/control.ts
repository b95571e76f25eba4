import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';

/**
 * The agent's control channel: a unix socket (mode 0600, so root only) that
 * speaks newline-delimited JSON. Each request is `{"id":1,"method":"status","params":{}}`
 * and gets exactly one reply `{"id":1,"result":...}` or `{"id":1,"error":"..."}`.
 */
export type ControlHandler = (params: Record<string, unknown>) => unknown;

/**
 * A handler's result that turns the connection into a byte stream (pcap, logs):
 * after the reply line `{"id":…,"result":{"stream":true}}` the handler owns the
 * socket; `start` returns the function that stops the stream when the client goes.
 */
export class StreamReply {
  constructor(readonly start: (sock: Socket) => () => void) {}
}

export class ControlServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly path: string,
    private readonly handlers: Record<string, ControlHandler>,
  ) {}

  async listen(): Promise<void> {
    rmSync(this.path, { force: true });
    const server = createServer((sock) => this.serve(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let pending = '';
    sock.on('data', (chunk) => {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim()) void this.answer(sock, line);
      }
      if (pending.length > 1 << 20) sock.destroy();
    });
  }

  private async answer(sock: Socket, line: string): Promise<void> {
    let id: unknown = null;
    try {
      const req = JSON.parse(line) as { id?: unknown; method?: unknown; params?: unknown };
      id = req.id ?? null;
      const handler = typeof req.method === 'string' ? this.handlers[req.method] : undefined;
      if (!handler) throw new Error(`unknown method ${String(req.method)}`);
      const result = await handler((req.params as Record<string, unknown>) ?? {});
      if (sock.destroyed) return;
      if (result instanceof StreamReply) {
        sock.write(JSON.stringify({ id, result: { stream: true } }) + '\n');
        const stop = result.start(sock);
        sock.once('close', stop);
        return;
      }
      sock.write(JSON.stringify({ id, result }) + '\n');
    } catch (err) {
      if (!sock.destroyed) sock.write(JSON.stringify({ id, error: (err as Error).message }) + '\n');
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    rmSync(this.path, { force: true });
  }
}

/** Calls one method on an agent's control socket. */
export function callAgent<T = unknown>(
  socketPath: string,
  method: string,
  params: Record<string, unknown> = {},
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`agent at ${socketPath} did not answer '${method}' within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(JSON.stringify({ id: 1, method, params }) + '\n'));
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const reply = JSON.parse(buf.slice(0, nl)) as { result?: T; error?: string };
      if (reply.error !== undefined) reject(new Error(reply.error));
      else resolve(reply.result as T);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Calls a streaming method and pipes the stream to `out` until the agent or the caller ends it. */
export function streamFromAgent(
  socketPath: string,
  method: string,
  params: Record<string, unknown>,
  out: NodeJS.WritableStream,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let header: Buffer | null = Buffer.alloc(0);
    sock.on('connect', () => sock.write(JSON.stringify({ id: 1, method, params }) + '\n'));
    sock.on('data', (chunk: Buffer) => {
      if (header === null) {
        out.write(chunk);
        return;
      }
      header = Buffer.concat([header, chunk]);
      const nl = header.indexOf(10);
      if (nl < 0) return;
      const reply = JSON.parse(header.subarray(0, nl).toString('utf8')) as { error?: string };
      const rest = header.subarray(nl + 1);
      header = null;
      if (reply.error !== undefined) {
        sock.destroy();
        reject(new Error(reply.error));
        return;
      }
      if (rest.length) out.write(rest);
    });
    sock.on('error', reject);
    sock.on('close', () => resolve());
  });
}
