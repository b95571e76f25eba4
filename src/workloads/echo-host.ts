/**
 * The shared echo process: serves the echo workload (src/workloads/echo.ts) of every echo
 * pod of a node from one Node.js process. A process per pod costs ~11 MB (a Node.js
 * runtime with node:http loaded, bench/compose/RESULTS.md); this one costs that once per
 * node. The node agent starts it with an IPC channel (src/agent/shared-echo.ts):
 *
 *   node echo-host.js
 *
 * Each pod's listeners are opened inside the pod's network namespace by a short-lived
 * helper, `ip netns exec NS node echo-listen.js PORT/PROTO…`, which passes them over IPC:
 * a socket belongs to the namespace it was created in, so the pod's connections are the
 * pod's, as with a process of its own. Helpers run one at a time (each is a Node.js start).
 *
 * Requests (from the agent): `add` a pod (id, netns, identity, ports), `remove` it (its
 * listeners and connections are closed). Events: `hello` once requests are taken, `log`
 * (a line of the pod's output, what its log file and readiness read: the same "listening"
 * line as echo.js once every listener is up), `failed` (its listeners could not be
 * opened; the reason was logged), `removed`. It exits when the agent goes (IPC closed) or
 * on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server as HttpServer } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  echoHttpServer,
  listeningLine,
  parsePortSpec,
  serveUdpEcho,
  type EchoIdentity,
} from './echo.js';
import type { ListenerMessage } from './echo-listen.js';

export interface EchoHostAdd {
  op: 'add';
  /** Unique per container start: events name it. */
  id: string;
  /** The pod's network namespace (`ip netns` name); '' for this process's own. */
  netns: string;
  identity: EchoIdentity;
  /** PORT/TCP or PORT/UDP, as echo.js's --port. */
  ports: string[];
}
export type EchoHostRequest = EchoHostAdd | { op: 'remove'; id: string };
export type EchoHostEvent =
  | { event: 'hello' }
  | { event: 'log'; id: string; text: string }
  | { event: 'failed'; id: string; code: number }
  | { event: 'removed'; id: string };

interface EchoPod {
  id: string;
  netns: string;
  identity: EchoIdentity;
  ports: { port: number; protocol: string }[];
  http: HttpServer | null;
  listeners: (NetServer | UdpSocket)[];
  connections: Set<Socket>;
  helper: ChildProcess | null;
  removed: boolean;
}

const listenScript = fileURLToPath(new URL('./echo-listen.js', import.meta.url));
const pods = new Map<string, EchoPod>();
const queue: EchoPod[] = [];
let opening = false;

function emit(event: EchoHostEvent): void {
  if (process.connected) process.send!(event);
}

function log(pod: EchoPod, text: string): void {
  emit({ event: 'log', id: pod.id, text });
}

function add(req: EchoHostAdd): void {
  const pod: EchoPod = {
    id: req.id,
    netns: req.netns,
    identity: req.identity,
    ports: [],
    http: null,
    listeners: [],
    connections: new Set(),
    helper: null,
    removed: false,
  };
  try {
    pod.ports = (req.ports.length > 0 ? req.ports : ['8080/TCP']).map(parsePortSpec);
  } catch (err) {
    log(pod, `echo: ${(err as Error).message}`);
    emit({ event: 'failed', id: pod.id, code: 1 });
    return;
  }
  for (const p of pod.ports) {
    if (p.protocol !== 'TCP' && p.protocol !== 'UDP') {
      log(pod, `echo: protocol ${p.protocol} on port ${p.port} is not served`);
    }
  }
  pods.set(pod.id, pod);
  queue.push(pod);
  openNext();
}

function openNext(): void {
  if (opening) return;
  const pod = queue.shift();
  if (!pod) return;
  if (pod.removed) return openNext();
  opening = true;
  void open(pod).finally(() => {
    opening = false;
    openNext();
  });
}

/** Runs the pod's helper and takes the listeners it passes. */
function open(pod: EchoPod): Promise<void> {
  const served = pod.ports.filter((p) => p.protocol === 'TCP' || p.protocol === 'UDP');
  const argv = [
    process.execPath,
    ...process.execArgv,
    listenScript,
    ...served.map((p) => `${p.port}/${p.protocol}`),
  ];
  const [cmd, ...args] = pod.netns ? ['ip', 'netns', 'exec', pod.netns, ...argv] : argv;
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  if (process.env.MALLOC_ARENA_MAX) env.MALLOC_ARENA_MAX = process.env.MALLOC_ARENA_MAX;
  return new Promise((resolve) => {
    const helper = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env });
    pod.helper = helper;
    let stderr = '';
    let done = false;
    helper.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    helper.on(
      'message',
      (msg: ListenerMessage | { done: true }, handle?: NetServer | UdpSocket) => {
        if ('done' in msg) {
          done = true;
          if (helper.connected) helper.disconnect();
        } else if (handle) {
          attach(pod, msg, handle);
        }
      },
    );
    // 'exit' and the end of stderr, not 'close': a child that passed a server handle is
    // not 'close'd while the handle lives on here.
    let exitCode: number | null | undefined;
    let stderrClosed = false;
    let finished = false;
    const finish = () => {
      if (finished || exitCode === undefined || !stderrClosed) return;
      finished = true;
      pod.helper = null;
      for (const line of stderr.split('\n')) if (line) log(pod, line);
      if (pod.removed) {
        closePod(pod);
      } else if (done && pod.listeners.length === served.length) {
        log(pod, listeningLine(pod.ports));
      } else {
        closePod(pod);
        pods.delete(pod.id);
        emit({ event: 'failed', id: pod.id, code: exitCode || 1 });
      }
      resolve();
    };
    helper.stderr!.on('close', () => {
      stderrClosed = true;
      finish();
    });
    helper.on('exit', (code) => {
      exitCode = code;
      finish();
    });
    helper.on('error', (err) => {
      stderr += `echo: cannot start ${cmd}: ${err.message}\n`;
      exitCode ??= 127;
      finish();
    });
  });
}

function attach(pod: EchoPod, msg: ListenerMessage, handle: NetServer | UdpSocket): void {
  if (pod.removed) {
    handle.close();
    return;
  }
  pod.listeners.push(handle);
  handle.on('error', (err: Error) => log(pod, `echo: ${msg.port}/${msg.protocol}: ${err.message}`));
  if (msg.protocol === 'UDP') {
    serveUdpEcho(handle as UdpSocket, pod.identity, msg.port);
    return;
  }
  const http = (pod.http ??= echoHttpServer(pod.identity));
  (handle as NetServer).on('connection', (sock: Socket) => {
    pod.connections.add(sock);
    sock.once('close', () => pod.connections.delete(sock));
    http.emit('connection', sock);
  });
}

/** Closes the pod's listeners and connections (what its process exiting would do). */
function closePod(pod: EchoPod): void {
  for (const l of pod.listeners) l.close();
  pod.listeners = [];
  for (const c of pod.connections) c.destroy();
  pod.connections.clear();
}

function remove(id: string): void {
  const pod = pods.get(id);
  if (pod) {
    pods.delete(id);
    pod.removed = true;
    pod.helper?.kill('SIGKILL');
    closePod(pod);
  }
  emit({ event: 'removed', id });
}

function main(): void {
  if (!process.send) {
    process.stderr.write('echo-host.js is started by the node agent (IPC channel)\n');
    process.exit(2);
  }
  process.on('message', (req: EchoHostRequest) => {
    if (req.op === 'add') add(req);
    else if (req.op === 'remove') remove(req.id);
  });
  const stop = () => {
    for (const pod of pods.values()) {
      pod.helper?.kill('SIGKILL');
      closePod(pod);
    }
    process.exit(0);
  };
  // The agent is gone: so are its pods.
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  emit({ event: 'hello' });
}

main();
