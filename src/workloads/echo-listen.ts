/**
 * Opens the listeners of one echo pod in the network namespace it runs in and hands them
 * to the shared echo process (src/workloads/echo-host.ts) that started it, then exits:
 *
 *   ip netns exec NS node echo-listen.js 8080/TCP 53/UDP     (with an IPC channel)
 *
 * A socket belongs to the namespace it was created in, whichever process holds it later,
 * so the pod's connections and datagrams stay the pod's. For each port it sends
 * `{ port, protocol }` with the listening socket, then `{ done: true }`, and exits once the
 * echo process disconnects. On an error: a line on stderr and exit 1. Kept to node:net and node:dgram: it is a Node.js start per pod, so it should
 * be a short one.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';

export interface ListenerMessage {
  port: number;
  protocol: 'TCP' | 'UDP';
}

function fail(message: string): never {
  process.stderr.write(`echo: ${message}\n`);
  process.exit(1);
}

function listen(port: number, protocol: string): Promise<Server | UdpSocket> {
  return new Promise((resolve, reject) => {
    if (protocol === 'TCP') {
      const server = createServer();
      server.once('error', reject);
      server.listen(port, () => resolve(server));
    } else {
      const sock = createSocket('udp4');
      sock.once('error', reject);
      sock.bind(port, () => resolve(sock));
    }
  });
}

function send(message: ListenerMessage | { done: true }, handle?: Server | UdpSocket) {
  return new Promise<void>((resolve, reject) =>
    process.send!(message, handle, {}, (err) => (err ? reject(err) : resolve())),
  );
}

async function main(): Promise<void> {
  if (!process.send) fail('echo-listen.js is started by the shared echo process (IPC channel)');
  // Listening for it keeps the channel (and this process) alive until the echo process
  // has acknowledged every handle and disconnects.
  process.once('disconnect', () => process.exit(0));
  const specs = process.argv.slice(2).map((spec) => {
    const [p, proto = 'TCP'] = spec.split('/');
    const port = Number(p);
    const protocol = proto.toUpperCase();
    if (!Number.isInteger(port) || port < 1 || port > 65535 || !/^(TCP|UDP)$/.test(protocol)) {
      fail(`invalid port ${spec}: expected PORT/TCP or PORT/UDP`);
    }
    return { port, protocol: protocol as ListenerMessage['protocol'] };
  });
  for (const { port, protocol } of specs) {
    const handle = await listen(port, protocol).catch((err: Error) =>
      fail(`cannot listen on ${port}/${protocol}: ${err.message}`),
    );
    await send({ port, protocol }, handle);
    // Written to the channel: the socket is in flight and stays open without our copy,
    // which is closed at once so that this process does not take the pod's first
    // connections or datagrams.
    handle.close();
  }
  await send({ done: true });
}

void main().catch((err: Error) => fail(err.message));
