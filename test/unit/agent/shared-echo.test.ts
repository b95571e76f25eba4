/**
 * The shared echo process (src/workloads/echo-host.ts, src/agent/shared-echo.ts) without
 * network namespaces (netns '' = the test's own): containers served by one process, each
 * with its own identity, log and readiness; a container stopped closes only its own
 * listeners; a port that cannot be opened fails that container only; the process dying
 * is each container exiting, then restarted per restartPolicy.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, test } from 'node:test';
import { pino } from 'pino';
import { SharedEchoHost, type SharedEchoContainer } from '../../../src/agent/shared-echo.js';
import type { ContainerProgram, RestartPolicy } from '../../../src/agent/supervisor.js';
import type { EchoReply } from '../../../src/workloads/echo.js';

const hostScript = fileURLToPath(new URL('../../../src/workloads/echo-host.js', import.meta.url));
const logger = pino({ level: 'silent' });

let dir: string;
let host: SharedEchoHost;
let containers: SharedEchoContainer[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kw-shared-echo-'));
  host = new SharedEchoHost([process.execPath, hostScript], {}, logger);
  containers = [];
});

afterEach(async () => {
  await Promise.all(containers.map((c) => c.stop()));
  await host.stop();
  rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function container(pod: string, ports: string[], restartPolicy: RestartPolicy = 'Always') {
  const program: ContainerProgram = {
    pod: `default/${pod}`,
    container: 'echo',
    netns: '',
    argv: [],
    env: { POD_NAME: pod, POD_NAMESPACE: 'default', NODE_NAME: 'worker-1', POD_IP: '127.0.0.1' },
    logFile: join(dir, `${pod}.log`),
    restartPolicy,
    readyPattern: /"msg":"listening"/,
  };
  const c = host.container(program, ports);
  containers.push(c);
  c.start();
  return c;
}

function httpGet(port: number, path = '/'): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(JSON.parse(body) as EchoReply));
    }).on('error', reject);
  });
}

function udpEcho(port: number): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    sock.once('message', (msg) => {
      sock.close();
      resolve(JSON.parse(msg.toString()) as EchoReply);
    });
    sock.once('error', reject);
    sock.send('ping', port, '127.0.0.1');
  });
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('one process serves several pods, each with its identity, log and readiness', async () => {
  const [pa, pb] = [await freePort(), await freePort()];
  const a = container('a', [`${pa}/TCP`]);
  const b = container('b', [`${pb}/TCP`, `${pb}/UDP`]);
  await Promise.all([a.whenReady(), b.whenReady()]);
  assert.ok(host.pid);
  assert.equal(a.status.pid, host.pid);
  assert.equal(b.status.pid, host.pid);
  assert.equal(a.status.state, 'Running');

  const ra = await httpGet(pa, '/x?y=1');
  assert.equal(ra.pod, 'a');
  assert.equal(ra.path, '/x');
  assert.deepEqual(ra.query, { y: '1' });
  assert.equal(ra.server.port, pa);
  assert.equal((await httpGet(pb)).pod, 'b');
  const u = await udpEcho(pb);
  assert.equal(u.pod, 'b');
  assert.equal(u.protocol, 'udp');
  assert.equal(u.bodyBytes, 4);
  assert.match(readFileSync(join(dir, 'a.log'), 'utf8'), new RegExp(`"listening".*"${pa}/TCP"`));

  // Stopping a closes a's listener only.
  await a.stop();
  await assert.rejects(httpGet(pa), /ECONNREFUSED/);
  assert.equal((await httpGet(pb)).pod, 'b');
});

test('a port that cannot be opened fails that container only', async () => {
  const busy: Server = createServer();
  const port = await new Promise<number>((resolve) =>
    busy.listen(0, () => resolve((busy.address() as AddressInfo).port)),
  );
  try {
    const pb = await freePort();
    const bad = container('bad', [`${port}/TCP`], 'Never');
    const good = container('good', [`${pb}/TCP`]);
    await good.whenReady();
    await until('the failed container', () => bad.status.state === 'Terminated');
    assert.equal(bad.status.exitCode, 1);
    assert.equal(bad.status.reason, 'Error');
    assert.match(readFileSync(join(dir, 'bad.log'), 'utf8'), /cannot listen on \d+\/TCP/);
    assert.equal((await httpGet(pb)).pod, 'good');
  } finally {
    busy.close();
  }
});

test('the process dying is every container exiting; they are restarted per restartPolicy', async () => {
  const [pa, pb] = [await freePort(), await freePort()];
  const a = container('a', [`${pa}/TCP`]);
  const b = container('b', [`${pb}/TCP`], 'Never');
  await Promise.all([a.whenReady(), b.whenReady()]);
  const first = host.pid!;
  process.kill(first, 'SIGKILL');
  await until('the restart', () => a.status.restartCount === 1 && a.status.ready);
  assert.notEqual(host.pid, first);
  assert.equal(a.status.pid, host.pid);
  assert.equal((await httpGet(pa)).pod, 'a');
  assert.equal(b.status.state, 'Terminated');
  assert.equal(b.status.restartCount, 0);
  await assert.rejects(httpGet(pb), /ECONNREFUSED/);
});
