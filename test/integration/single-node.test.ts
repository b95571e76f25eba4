/**
 * Issue 2's lab: one node, pods in real network namespaces, every frame through
 * the agent. Real ping, curl and tcpdump against it.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  clusterFirstResolvConf,
  fixtures,
  kubewire,
  kubewireOk,
  labName,
  netnsList,
  pods,
  rootSkip,
  sleep,
  startInNetns,
  type PodInfo,
} from './lab-harness.js';

const lab = labName('sn');
const manifests = join(fixtures, 'single-node');
const runDir = process.env.KUBEWIRE_RUN_DIR ?? '/run/kubewire';

describe('single-node lab', { skip: rootSkip, timeout: 300_000 }, () => {
  let all: PodInfo[] = [];
  let webA: PodInfo;
  let webB: PodInfo;
  let client: PodInfo;

  before(async () => {
    await kubewireOk(lab, ['up', manifests]);
    all = await pods(lab, 'demo');
    const web = all
      .filter((p) => p.name.startsWith('web-'))
      .sort((a, b) => a.name.localeCompare(b.name));
    assert.equal(web.length, 2, 'two Deployment replicas');
    [webA, webB] = web as [PodInfo, PodInfo];
    client = all.find((p) => p.name === 'client')!;
  });

  after(async () => {
    await kubewire(lab, ['down']);
  });

  const exec = (pod: PodInfo, cmd: string[]) =>
    kubewire(lab, ['exec', '-n', pod.namespace, pod.name, '--', ...cmd]);

  test('every pod is a ready netns with its own address', async () => {
    assert.equal(all.length, 4);
    for (const p of all) {
      assert.ok(p.status?.ready, `${p.name} ready`);
      assert.match(
        p.ip,
        /^192\.168\.104\.(6[5-9]|[7-9]\d|1[01]\d|12[0-7])$/,
        `${p.name} in the node's block`,
      );
      assert.ok(netnsList().includes(p.status!.netns), `netns ${p.status!.netns} exists`);
    }
    const wide = await kubewireOk(lab, ['get', 'pods', '-n', 'demo', '-o', 'wide']);
    assert.match(wide, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE$/m);
    assert.match(
      wide,
      new RegExp(
        `^client\\s+1/1\\s+Running\\s+0\\s+\\S+\\s+${client.ip.replace(/\./g, '\\.')}\\s+node-1$`,
        'm',
      ),
    );
    // The pod's side of the link, as Calico sets it up.
    const link = await exec(client, ['ip', '-o', 'addr', 'show', 'dev', 'eth0']);
    assert.match(link.stdout, new RegExp(`inet ${client.ip.replace(/\./g, '\\.')}/32`));
    const routes = await exec(client, ['ip', 'route']);
    assert.match(routes.stdout, /^default via 169\.254\.1\.1 dev eth0/m);
    assert.match(routes.stdout, /^169\.254\.1\.1 dev eth0 scope link/m);
    const mtu = await exec(client, ['cat', '/sys/class/net/eth0/mtu']);
    assert.equal(mtu.stdout.trim(), '1480');
    const resolv = await exec(client, ['cat', '/etc/resolv.conf']);
    assert.equal(resolv.stdout, clusterFirstResolvConf('demo'));
  });

  test('pod A pings pod B, and the agent answered its ARP with ee:ee:ee:ee:ee:ee', async () => {
    const a = all.find((p) => p.name === webA.name)!;
    await exec(a, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    const dump = startInNetns(a.status!.netns, ['tcpdump', '-l', '-n', '-e', '-i', 'eth0', 'arp']);
    await sleep(800);
    const ping = await exec(a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', webB.ip]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, /3 packets transmitted, 3 received, 0% packet loss/);
    await sleep(300);
    const out = await dump.stop();
    assert.match(out, /Request who-has 169\.254\.1\.1 tell /);
    assert.match(out, /ee:ee:ee:ee:ee:ee .*Reply 169\.254\.1\.1 is-at ee:ee:ee:ee:ee:ee/);
  });

  test('curl from pod A reaches pod B with A as the source (no NAT)', async () => {
    const r = await exec(webA, ['curl', '-sS', '--max-time', '5', `http://${webB.ip}:8080/x?y=1`]);
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout) as {
      pod: string;
      podIP: string;
      client: { address: string };
      path: string;
      query: Record<string, string>;
    };
    assert.equal(body.pod, webB.name);
    assert.equal(body.podIP, webB.ip);
    assert.equal(body.client.address, webA.ip);
    assert.equal(body.path, '/x');
    assert.deepEqual(body.query, { y: '1' });
  });

  test('a process in the node root netns reaches a pod', async () => {
    const r = await kubewire(lab, [
      'exec',
      '--host',
      'node-1',
      '--',
      'curl',
      '-sS',
      '--max-time',
      '5',
      `http://${client.ip}:8080/from-node`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout) as { client: { address: string }; path: string };
    assert.equal(body.client.address, '10.1.110.102', 'the node IP is the source');
    assert.equal(body.path, '/from-node');
  });

  test('ping -t 1 through the node gets ICMP time exceeded from the node', async () => {
    const r = await exec(webA, ['ping', '-c', '1', '-t', '1', '-W', '2', webB.ip]);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /From 10\.1\.110\.102 icmp_seq=1 Time to live exceeded/);
  });

  test('a container command runs in the pod and its output is kept', async () => {
    const logs = await kubewireOk(lab, ['logs', '-n', 'demo', 'sleeper']);
    assert.equal(logs, 'hello from sleeper\n');
    const echoLogs = await kubewireOk(lab, ['logs', '-n', 'demo', client.name]);
    assert.match(echoLogs, /"msg":"listening"/);
  });

  test('a malformed-frame storm leaves the agent up, forwarding, and counting', async () => {
    const before = JSON.parse(
      await kubewireOk(lab, ['stats', '--node', 'node-1', '-o', 'json']),
    ) as {
      drops: Record<string, number>;
    };
    // 20,000 frames of garbage from a raw socket in pod A: random bytes, truncated
    // and inconsistent IPv4 headers, bad checksums, foreign MACs.
    const storm = `
import os, random, socket, struct
random.seed(7)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
ee = bytes.fromhex("eeeeeeeeeeee")
src = open("/sys/class/net/eth0/address").read().strip().replace(":", "")
src = bytes.fromhex(src)
sent = 0
for i in range(20000):
    kind = i % 5
    if kind == 0:
        frame = ee + src + b"\\x08\\x00" + os.urandom(random.randint(0, 60))
    elif kind == 1:
        hdr = bytearray(os.urandom(20)); hdr[0] = 0x45; struct.pack_into("!H", hdr, 2, random.randint(0, 9000))
        frame = ee + src + b"\\x08\\x00" + bytes(hdr)
    elif kind == 2:
        frame = ee + src + b"\\x08\\x06" + os.urandom(random.randint(0, 27))
    elif kind == 3:
        frame = bytes.fromhex("020000000001") + src + b"\\x08\\x00" + os.urandom(40)
    else:
        frame = ee + src + b"\\x08\\x00" + bytes([0x4f]) + os.urandom(random.randint(0, 80))
    if len(frame) < 14: continue
    try:
        s.send(frame); sent += 1
    except OSError:
        pass
print(sent)
`;
    const txPackets = async () =>
      Number(
        (await exec(webA, ['cat', '/sys/class/net/eth0/statistics/tx_packets'])).stdout.trim(),
      );
    const txBefore = await txPackets();
    const r = await exec(webA, ['python3', '-c', storm]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Number(r.stdout.trim()) > 19_000, `sent ${r.stdout}`);
    await sleep(500);
    const stats = JSON.parse(
      await kubewireOk(lab, ['stats', '--node', 'node-1', '-o', 'json']),
    ) as {
      drops: Record<string, number>;
    };
    const total = (d: Record<string, number>) => Object.values(d).reduce((s, v) => s + v, 0);
    // Every frame the pod's kernel handed to the link reached the agent and was
    // dropped with a reason (a full TAP queue may have dropped a few before that).
    const delivered = (await txPackets()) - txBefore;
    const dropped = total(stats.drops) - total(before.drops);
    assert.ok(delivered > 5_000, `delivered ${delivered}`);
    assert.ok(
      dropped >= delivered - 10,
      `dropped ${dropped} of ${delivered}: ${JSON.stringify(stats.drops)}`,
    );
    for (const reason of ['foreign-mac', 'arp-malformed', 'ipv4-truncated', 'ipv4-malformed']) {
      assert.ok(
        (stats.drops[reason] ?? 0) > 1000,
        `${reason} counted: ${JSON.stringify(stats.drops)}`,
      );
    }
    // Still forwarding.
    const ping = await exec(webA, ['ping', '-c', '2', '-i', '0.2', '-W', '2', webB.ip]);
    assert.match(ping.stdout, /2 received/);
  });

  test('a second up of the same lab is refused and leaves the first running', async () => {
    const r = await kubewire(lab, ['up', manifests]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`lab '${lab}' is already running`));
    const ping = await exec(webA, ['ping', '-c', '1', '-W', '2', webB.ip]);
    assert.equal(ping.code, 0);
  });

  test('down leaves no namespace, link, process or file behind', async () => {
    const netnsBefore = all.map((p) => p.status!.netns);
    await kubewireOk(lab, ['down']);
    const left = netnsList().filter((n) => n.startsWith(`${lab}-`));
    assert.deepEqual(left, []);
    for (const ns of netnsBefore)
      assert.ok(!existsSync(join('/etc/netns', ns)), `/etc/netns/${ns} removed`);
    assert.ok(!existsSync(join(runDir, lab)), 'lab directory removed');
    const procs = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(`--lab ${lab} `) || l.includes(`${lab}-demo.`));
    assert.deepEqual(procs, []);
    const links = execFileSync('ip', ['-br', 'link'], { encoding: 'utf8' });
    assert.doesNotMatch(links, /^cali/m);
    assert.ok(
      readdirSync('/etc/netns', { withFileTypes: true }).every(
        (d) => !d.name.startsWith(`${lab}-`),
      ),
    );
  });
});
