/**
 * Issue 3's lab: the reference lab's three nodes on one underlay, each agent
 * owning its node's address, pods in Calico blocks, IPIP between nodes.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildClusterState, loadManifests } from '../../src/cluster/index.js';
import {
  fixtures,
  kubewire,
  kubewireOk,
  labName,
  pods,
  repoRoot,
  rootSkip,
  sleep,
  startInNetns,
  type PodInfo,
} from './lab-harness.js';

const lab = labName('mn');
const clusterFiles = [
  join(repoRoot, 'nodes'),
  join(repoRoot, 'compose', 'manifests', '00-cluster.yaml'),
];
const appFile = join(fixtures, 'multi-node', 'apps.yaml');

describe('multi-node lab (IPIP overlay)', { skip: rootSkip, timeout: 300_000 }, () => {
  let p1: PodInfo;
  let p2: PodInfo;
  let scratch: string;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'kw-mn-'));
    await kubewireOk(lab, ['up', ...clusterFiles, appFile]);
    const all = await pods(lab, 'demo');
    p1 = all.find((p) => p.name === 'probe-1')!;
    p2 = all.find((p) => p.name === 'probe-2')!;
  });

  after(async () => {
    await kubewire(lab, ['down']);
    rmSync(scratch, { recursive: true, force: true });
  });

  const exec = (pod: PodInfo, cmd: string[]) =>
    kubewire(lab, ['exec', '-n', pod.namespace, pod.name, '--', ...cmd]);
  const onHost = (host: string, cmd: string[]) =>
    kubewire(lab, ['exec', '--host', host, '--', ...cmd]);

  test('pods take addresses from their node blocks', () => {
    assert.equal(p1.nodeName, 'worker-1');
    assert.equal(p2.nodeName, 'worker-2');
    assert.match(p1.ip, /^192\.168\.104\./);
    assert.match(p2.ip, /^192\.168\.8\./);
  });

  test('routes as Calico programs them', async () => {
    const routes = await kubewireOk(lab, ['ip', 'route', '--node', 'worker-1']);
    const lines = routes.trimEnd().split('\n');
    assert.ok(
      lines.includes('192.168.8.192/26 via 10.1.110.107 dev tunl0 proto bird onlink'),
      routes,
    );
    assert.ok(
      lines.includes('192.168.165.192/26 via 10.1.110.108 dev tunl0 proto bird onlink'),
      routes,
    );
    assert.ok(lines.includes('blackhole 192.168.104.64/26 proto bird'), routes);
    assert.ok(lines.includes('default via 10.1.110.1 dev eth0'), routes);
    assert.ok(
      lines.includes('10.1.110.0/24 dev eth0 proto kernel scope link src 10.1.110.102'),
      routes,
    );
    assert.ok(
      lines.some((l) => l.startsWith(`${p1.ip} dev cali`) && l.endsWith(' scope link')),
      routes,
    );
  });

  test('cross-node ping and curl keep the source pod IP, in IPIP on the wire', async () => {
    const dump = startInNetns(`${lab}-worker-1`, [
      'tcpdump',
      '-l',
      '-n',
      '-i',
      'eth0',
      'ip',
      'proto',
      '4',
    ]);
    await sleep(800);
    const ping = await exec(p1, ['ping', '-c', '3', '-i', '0.2', '-W', '2', p2.ip]);
    assert.match(ping.stdout, /3 received/);
    assert.match(ping.stdout, /ttl=62/, 'one hop on each node');
    const curl = await exec(p1, ['curl', '-sS', '--max-time', '5', `http://${p2.ip}:8080/hello`]);
    assert.equal(curl.code, 0, curl.stderr);
    const body = JSON.parse(curl.stdout) as { pod: string; client: { address: string } };
    assert.equal(body.pod, 'probe-2');
    assert.equal(body.client.address, p1.ip);
    await sleep(300);
    const out = await dump.stop();
    // The white paper's Figure 16: outer node addresses, inner pod addresses.
    const esc = (s: string) => s.replace(/\./g, '\\.');
    assert.match(
      out,
      new RegExp(
        `IP 10\\.1\\.110\\.102 > 10\\.1\\.110\\.107: IP ${esc(p1.ip)} > ${esc(p2.ip)}: ICMP echo request`,
      ),
    );
    assert.match(
      out,
      new RegExp(
        `IP 10\\.1\\.110\\.107 > 10\\.1\\.110\\.102: IP ${esc(p2.ip)} > ${esc(p1.ip)}: ICMP echo reply`,
      ),
    );
  });

  test('a 4000-byte body crosses nodes; DF packets too big for tunl0 get frag needed (mtu 1480)', async () => {
    const body = join(scratch, 'body.bin');
    writeFileSync(body, Buffer.alloc(4000, 0x61));
    const curl = await exec(p1, [
      'curl',
      '-sS',
      '--max-time',
      '5',
      '--data-binary',
      `@${body}`,
      `http://${p2.ip}:8080/upload`,
    ]);
    assert.equal(curl.code, 0, curl.stderr);
    assert.equal((JSON.parse(curl.stdout) as { bodyBytes: number }).bodyBytes, 4000);
    // From the node's kernel (MTU 1500) a full-size DF packet cannot enter the tunnel.
    const ping = await onHost('worker-1', [
      'ping',
      '-M',
      'do',
      '-s',
      '1472',
      '-c',
      '1',
      '-W',
      '2',
      p2.ip,
    ]);
    assert.match(ping.stdout, /Frag needed and DF set \(mtu = 1480\)/);
    // From a pod (MTU 1480) the largest DF packet fits and crosses.
    const fits = await exec(p1, ['ping', '-M', 'do', '-s', '1452', '-c', '1', '-W', '2', p2.ip]);
    assert.match(fits.stdout, /1 received/);
  });

  test('IPIP from an address that is not a node is dropped and counted', async () => {
    const before = JSON.parse(
      await kubewireOk(lab, ['stats', '--node', 'worker-1', '-o', 'json']),
    ) as {
      drops: Record<string, number>;
    };
    // The router (10.1.110.1) sends IPIP to worker-1 carrying a ping for a pod.
    const script = `
import socket, struct
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b)//2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"x"*32)
struct.pack_into("!H", icmp, 2, csum(bytes(icmp)))
src = socket.inet_aton("192.168.99.9"); dst = socket.inet_aton("${p1.ip}")
hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 7, 0, 64, 1, 0, src, dst))
struct.pack_into("!H", hdr, 10, csum(bytes(hdr)))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
for i in range(5):
    s.sendto(bytes(hdr + icmp), ("10.1.110.102", 0))
`;
    const r = await onHost('router', ['python3', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    await sleep(300);
    const after = JSON.parse(
      await kubewireOk(lab, ['stats', '--node', 'worker-1', '-o', 'json']),
    ) as {
      drops: Record<string, number>;
    };
    assert.equal(
      (after.drops['ipip-unknown-source'] ?? 0) - (before.drops['ipip-unknown-source'] ?? 0),
      5,
    );
  });

  test('the client host reaches a node through the router', async () => {
    const r = await onHost('client', ['ping', '-c', '1', '-W', '2', '10.1.110.107']);
    assert.match(r.stdout, /1 received/);
  });

  test('kubewire pcap streams tunl0, decapsulated', async () => {
    const file = join(scratch, 'tunl0.pcap');
    const { spawn } = await import('node:child_process');
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync(file, 'w');
    const cap = spawn(
      process.execPath,
      [join(repoRoot, 'dist/src/cli/main.js'), '--lab', lab, 'pcap', '--node', 'worker-2', 'tunl0'],
      {
        stdio: ['ignore', fd, 'inherit'],
      },
    );
    await sleep(700);
    await exec(p1, ['ping', '-c', '2', '-i', '0.2', '-W', '2', p2.ip]);
    await sleep(300);
    cap.kill('SIGTERM');
    await new Promise((r) => cap.once('close', r));
    closeSync(fd);
    const { execFileSync } = await import('node:child_process');
    const text = execFileSync('tcpdump', ['-nr', file], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.match(
      text,
      new RegExp(
        `IP ${p1.ip.replace(/\./g, '\\.')} > ${p2.ip.replace(/\./g, '\\.')}: ICMP echo request`,
      ),
    );
  });

  test('apply scales a Deployment: new pods where the model says; an invalid file changes nothing', async () => {
    const scaled = readFileSync(appFile, 'utf8').replace('replicas: 2', 'replicas: 4');
    const scaledFile = join(scratch, 'scaled.yaml');
    writeFileSync(scaledFile, scaled);
    const expected = buildClusterState(loadManifests([...clusterFiles, scaledFile])).pods.filter(
      (p) => p.namespace === 'demo',
    );
    const out = await kubewireOk(lab, ['apply', '-f', scaledFile, '--wait']);
    assert.match(out, /deployment\.apps\/web configured/);
    const now = await pods(lab, 'demo');
    assert.equal(now.filter((p) => p.name.startsWith('web-')).length, 4);
    for (const e of expected) {
      const got = now.find((p) => p.name === e.name);
      assert.ok(got, `pod ${e.name} exists`);
      assert.equal(got.ip, e.ip);
      assert.equal(got.nodeName, e.nodeName);
      assert.ok(got.status?.ready, `${e.name} ready`);
    }
    // Every new replica answers across the overlay.
    for (const p of now.filter((x) => x.name.startsWith('web-'))) {
      const r = await exec(p1, ['curl', '-sS', '--max-time', '5', `http://${p.ip}:8080/`]);
      assert.equal((JSON.parse(r.stdout) as { pod: string }).pod, p.name);
    }
    const bad = join(scratch, 'bad.yaml');
    writeFileSync(bad, scaled.replace('replicas: 4', 'replicas: many'));
    const r = await kubewire(lab, ['apply', '-f', bad]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(
        `${bad.replace(/[/.]/g, '\\$&')} document 2 \\(Deployment demo/web\\): spec\\.replicas`,
      ),
    );
    const unchanged = await pods(lab, 'demo');
    assert.deepEqual(
      unchanged.map((p) => [p.name, p.ip]),
      now.map((p) => [p.name, p.ip]),
    );
  });

  test('delete removes a Deployment; the other pods keep their addresses (Calico IPAM records)', async () => {
    const before = await pods(lab, 'demo');
    const probes = before.filter((p) => p.name.startsWith('probe-'));
    // Only the Deployment: the probes stay.
    const deployment = readFileSync(appFile, 'utf8')
      .split('---\n')
      .find((d) => d.includes('kind: Deployment'))!;
    const deploymentFile = join(scratch, 'deployment.yaml');
    writeFileSync(deploymentFile, deployment);
    const out = await kubewireOk(lab, ['delete', '-f', deploymentFile, '--wait']);
    assert.match(out, /deployment\.apps\/web deleted/);
    const after = await pods(lab, 'demo');
    assert.deepEqual(
      after.map((p) => p.name),
      probes.map((p) => p.name),
    );
    for (const p of probes) {
      const now = after.find((x) => x.name === p.name)!;
      assert.equal(now.ip, p.ip, `${p.name} kept its address`);
      assert.ok(now.status?.ready);
    }
    const r = await exec(p1, ['ping', '-c', '1', '-W', '2', p2.ip]);
    assert.match(r.stdout, /1 received/);
  });

  test('get nodes -o wide lists the nodes with their blocks', async () => {
    const out = await kubewireOk(lab, ['get', 'nodes', '-o', 'wide']);
    assert.match(
      out,
      /^worker-1\s+Ready\s+<none>\s+\S+\s+10\.1\.110\.102\s+192\.168\.104\.64\/26\s+192\.168\.104\.64$/m,
    );
    assert.match(out, /^control-plane\s+Ready\s+control-plane\s+/m);
  });
});
