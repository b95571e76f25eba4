/**
 * The built-in echo workload: what a pod runs when its image is not one kubewire
 * knows (CoreDNS, ingress-nginx) and it has no command. It serves HTTP on each
 * TCP containerPort and answers UDP datagrams on each UDP containerPort with a
 * JSON description of the request, so tests and people can see which pod
 * answered and what it received (source address, path after rewrites, headers).
 *
 * Runs inside the pod's network namespace as its own process:
 *   node echo.js --port 8080/TCP --port 53/UDP
 * Identity comes from the environment, as the downward API would give it:
 * POD_NAME, POD_NAMESPACE, NODE_NAME, POD_IP. (The node agent serves all the echo pods
 * of a node from one process instead, src/workloads/echo-host.ts, with the same
 * handlers: echoHttpServer, serveUdpEcho.)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { parseArgs } from 'node:util';

export interface EchoIdentity {
  pod: string;
  namespace: string;
  node: string;
  podIP: string;
}

export interface EchoReply extends EchoIdentity {
  client: { address: string; port: number };
  server: { address: string; port: number };
  protocol: 'http' | 'udp';
  method?: string;
  path?: string;
  query?: Record<string, string | string[]>;
  httpVersion?: string;
  headers?: Record<string, string | string[] | undefined>;
  bodyBytes: number;
}

const MAX_BODY = 64 * 1024 * 1024;

function stripV4Mapped(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function queryObject(search: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of new Set(search.keys())) {
    const all = search.getAll(key);
    out[key] = all.length === 1 ? all[0]! : all;
  }
  return out;
}

function handleHttp(identity: EchoIdentity, req: IncomingMessage, res: ServerResponse): void {
  let bodyBytes = 0;
  req.on('data', (chunk: Buffer) => {
    bodyBytes += chunk.length;
    if (bodyBytes > MAX_BODY) req.destroy();
  });
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://echo.invalid');
    const reply: EchoReply = {
      ...identity,
      client: {
        address: stripV4Mapped(req.socket.remoteAddress),
        port: req.socket.remotePort ?? 0,
      },
      server: { address: stripV4Mapped(req.socket.localAddress), port: req.socket.localPort ?? 0 },
      protocol: 'http',
      method: req.method ?? '',
      path: url.pathname,
      query: queryObject(url.searchParams),
      httpVersion: req.httpVersion,
      headers: req.headers,
      bodyBytes,
    };
    const body = JSON.stringify(reply) + '\n';
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-pod-name': identity.pod,
    });
    res.end(body);
  });
}

/** The HTTP echo of one pod (not listening: the caller listens or hands it connections). */
export function echoHttpServer(identity: EchoIdentity): Server {
  return createServer({ keepAliveTimeout: 65_000 }, (req, res) => handleHttp(identity, req, res));
}

/** Answers each datagram on `sock` (bound to `port`) with the JSON description of it. */
export function serveUdpEcho(sock: UdpSocket, identity: EchoIdentity, port: number): void {
  sock.on('message', (msg, rinfo) => {
    const reply: EchoReply = {
      ...identity,
      client: { address: rinfo.address, port: rinfo.port },
      server: { address: identity.podIP, port },
      protocol: 'udp',
      bodyBytes: msg.length,
    };
    sock.send(JSON.stringify(reply) + '\n', rinfo.port, rinfo.address);
  });
}

/** The line that marks an echo container ready (the agent's readiness pattern). */
export function listeningLine(ports: { port: number; protocol: string }[]): string {
  return JSON.stringify({ msg: 'listening', ports: ports.map((p) => `${p.port}/${p.protocol}`) });
}

export function startEcho(identity: EchoIdentity, ports: { port: number; protocol: string }[]) {
  const closers: (() => void)[] = [];
  const listening: Promise<void>[] = [];
  for (const { port, protocol } of ports) {
    if (protocol === 'UDP') {
      const sock = createSocket('udp4');
      serveUdpEcho(sock, identity, port);
      listening.push(new Promise((resolve) => sock.bind(port, resolve)));
      closers.push(() => sock.close());
    } else if (protocol === 'TCP') {
      const server = echoHttpServer(identity);
      listening.push(new Promise((resolve) => server.listen(port, resolve)));
      closers.push(() => server.close());
    } else {
      process.stderr.write(`echo: protocol ${protocol} on port ${port} is not served\n`);
    }
  }
  return {
    ready: Promise.all(listening).then(() => undefined),
    close: () => closers.forEach((c) => c()),
  };
}

export function parsePortSpec(spec: string): { port: number; protocol: string } {
  const [p, proto = 'TCP'] = spec.split('/');
  const port = Number(p);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`invalid --port ${spec}: expected PORT[/TCP|/UDP]`);
  }
  return { port, protocol: proto.toUpperCase() };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', multiple: true } } });
  const ports = (values.port ?? []).map(parsePortSpec);
  const identity: EchoIdentity = {
    pod: process.env.POD_NAME ?? '',
    namespace: process.env.POD_NAMESPACE ?? '',
    node: process.env.NODE_NAME ?? '',
    podIP: process.env.POD_IP ?? '',
  };
  const echo = startEcho(identity, ports.length ? ports : [{ port: 8080, protocol: 'TCP' }]);
  await echo.ready;
  process.stdout.write(listeningLine(ports) + '\n');
  const stop = () => {
    echo.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: Error) => {
    process.stderr.write(`echo: ${err.message}\n`);
    process.exit(1);
  });
}
