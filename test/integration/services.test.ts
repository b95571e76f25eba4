/**
 * Issue 4: netfilter with conntrack, and kube-proxy's Services on it, in the
 * reference lab's three nodes with real traffic.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
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

const lab = labName('sv');
const manifests = [
  join(repoRoot, 'nodes'),
  join(repoRoot, 'compose', 'manifests', '00-cluster.yaml'),
  join(fixtures, 'services'),
];
const NODE_IPS = {
  'control-plane': '10.1.110.108',
  'worker-1': '10.1.110.102',
  'worker-2': '10.1.110.107',
} as const;

describe(
  'Services through kube-proxy rules and conntrack',
  { skip: rootSkip, timeout: 400_000 },
  () => {
    let client: PodInfo;
    let echoes: PodInfo[];
    let scratch: string;

    before(async () => {
      scratch = mkdtempSync(join(tmpdir(), 'kw-svc-'));
      await kubewireOk(lab, ['up', ...manifests]);
      const all = await pods(lab, 'svc');
      client = all.find((p) => p.name === 'client')!;
      echoes = all.filter((p) => p.name.startsWith('echo-'));
    });

    after(async () => {
      await kubewire(lab, ['down']);
      rmSync(scratch, { recursive: true, force: true });
    });

    const exec = (pod: PodInfo, cmd: string[]) =>
      kubewire(lab, ['exec', '-n', pod.namespace, pod.name, '--', ...cmd]);
    const onHost = (host: string, cmd: string[]) =>
      kubewire(lab, ['exec', '--host', host, '--', ...cmd]);
    /** n requests from inside one shell, one JSON reply per line. */
    const curlLoop = async (
      where: (cmd: string[]) => Promise<{ stdout: string }>,
      url: string,
      n: number,
    ) => {
      const r = await where(['sh', '-c', `for i in $(seq ${n}); do curl -sS -m 3 ${url}; done`]);
      return r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { pod: string; node: string; client: { address: string } });
    };

    test('a ClusterIP spreads 300 connections over its three endpoints on two nodes', async () => {
      assert.equal(echoes.length, 3);
      assert.deepEqual([...new Set(echoes.map((e) => e.nodeName))].sort(), [
        'worker-1',
        'worker-2',
      ]);
      const replies = await curlLoop((c) => exec(client, c), 'http://10.96.100.100/', 300);
      assert.equal(
        replies.length,
        300,
        'every request answered through the ClusterIP (replies un-NATed)',
      );
      const counts = new Map<string, number>();
      for (const r of replies) counts.set(r.pod, (counts.get(r.pod) ?? 0) + 1);
      assert.deepEqual([...counts.keys()].sort(), echoes.map((e) => e.name).sort());
      for (const [pod, n] of counts) assert.ok(n >= 60, `${pod} got ${n} of 300 (< 20%)`);
      // Pod to pod: no masquerade, the endpoint sees the client pod.
      assert.ok(replies.every((r) => r.client.address === client.ip));
      // conntrack shows the DNAT: original to the ClusterIP, reply from the endpoint.
      const ct = await kubewireOk(lab, [
        'conntrack',
        '--node',
        'worker-1',
        '-L',
        '-p',
        'tcp',
        '--dst',
        '10.96.100.100',
      ]);
      const line = ct.split('\n').find((l) => l.includes(`src=${client.ip} dst=10.96.100.100`));
      assert.ok(line, ct);
      assert.match(
        line,
        /^tcp +6 \d+ \S+ src=\S+ dst=10\.96\.100\.100 sport=\d+ dport=80 src=192\.168\.\d+\.\d+ dst=\S+ sport=8080 dport=\d+ \[ASSURED\] mark=0 use=1$/,
      );
    });

    test('pod → Service → pod on another node: DNAT on the source node, then IPIP to the endpoint node', async () => {
      const remote = echoes.find((e) => e.nodeName === 'worker-2')!;
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
      // Enough attempts that at least one lands on a worker-2 endpoint.
      await curlLoop((c) => exec(client, c), 'http://10.96.100.100/dnat', 20);
      await sleep(300);
      const out = await dump.stop();
      void remote;
      assert.match(
        out,
        new RegExp(
          `IP 10\\.1\\.110\\.102 > 10\\.1\\.110\\.107: IP ${client.ip.replace(/\./g, '\\.')}\\.\\d+ > 192\\.168\\.8\\.\\d+\\.8080: Flags \\[S\\]`,
        ),
      );
      assert.doesNotMatch(out, /> 10\.96\.100\.100/, 'the ClusterIP never crosses the underlay');
    });

    test('NodePort on every node from the client: Cluster policy masquerades to the node', async () => {
      for (const [node, addr] of Object.entries(NODE_IPS)) {
        const replies = await curlLoop((c) => onHost('client', c), `http://${addr}:30080/np`, 6);
        assert.equal(replies.length, 6, `node ${node} answers`);
        for (const r of replies) {
          // The source the pod sees is the node: its IP, or its tunnel address when forwarded over tunl0.
          assert.notEqual(r.client.address, '10.1.0.89', `masqueraded on ${node}`);
        }
      }
    });

    test('externalTrafficPolicy Local: the client address is kept, only nodes with an endpoint answer', async () => {
      const replies = await curlLoop(
        (c) => onHost('client', c),
        `http://${NODE_IPS['worker-2']}:30081/`,
        3,
      );
      assert.equal(replies.length, 3);
      assert.ok(replies.every((r) => r.client.address === '10.1.0.89' && r.node === 'worker-2'));
      const r = await onHost('client', [
        'curl',
        '-sS',
        '-m',
        '2',
        `http://${NODE_IPS['worker-1']}:30081/`,
      ]);
      assert.notEqual(r.code, 0, 'worker-1 has no local endpoint: dropped');
    });

    test('sessionAffinity ClientIP pins the client to one endpoint', async () => {
      const replies = await curlLoop((c) => exec(client, c), 'http://10.96.100.102/', 30);
      assert.equal(replies.length, 30);
      assert.equal(new Set(replies.map((r) => r.pod)).size, 1);
    });

    test('a Service without endpoints is rejected at once (TCP: refused; UDP: port unreachable)', async () => {
      const started = Date.now();
      const r = await exec(client, ['curl', '-sS', '-m', '5', 'http://10.96.100.101/']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Couldn't connect|Connection refused/);
      assert.ok(Date.now() - started < 3000, 'not a timeout');
    });

    test("the white paper's LOG exercise: kernel-style lines for the handshake, in chain order", async () => {
      await kubewireOk(lab, [
        'iptables',
        '--node',
        'worker-1',
        '-t',
        'nat',
        '-I',
        'PREROUTING',
        '1',
        '-p',
        'tcp',
        '-d',
        '10.96.100.100',
        '--dport',
        '80',
        '-j',
        'LOG',
        '--log-prefix',
        'nat-pre: ',
      ]);
      await kubewireOk(lab, [
        'iptables',
        '--node',
        'worker-1',
        '-t',
        'filter',
        '-I',
        'FORWARD',
        '1',
        '-p',
        'tcp',
        '--dport',
        '8080',
        '-j',
        'LOG',
        '--log-prefix',
        'filter-fwd: ',
      ]);
      await kubewireOk(lab, [
        'iptables',
        '--node',
        'worker-1',
        '-t',
        'nat',
        '-I',
        'POSTROUTING',
        '1',
        '-p',
        'tcp',
        '--dport',
        '8080',
        '-j',
        'LOG',
        '--log-prefix',
        'nat-post: ',
      ]);
      await exec(client, ['curl', '-sS', '-m', '3', 'http://10.96.100.100/log']);
      const dmesg = await kubewireOk(lab, ['dmesg', '--node', 'worker-1']);
      const lines = dmesg.split('\n').filter((l) => /(nat-pre|filter-fwd|nat-post): /.test(l));
      const first = lines.findIndex((l) => l.includes('nat-pre: ') && l.includes(' SYN '));
      assert.ok(first >= 0, dmesg);
      const syn = lines.slice(first, first + 3);
      assert.match(
        syn[0]!,
        new RegExp(
          `^\\[ *\\d+\\.\\d{6}\\] nat-pre: IN=cali[0-9a-f]{11} OUT= MAC=ee:ee:ee:ee:ee:ee:[0-9a-f:]{17}:08:00 SRC=${client.ip.replace(/\./g, '\\.')} DST=10\\.96\\.100\\.100 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=\\d+ DF PROTO=TCP SPT=\\d+ DPT=80 WINDOW=\\d+ RES=0x00 SYN URGP=0 ?$`,
        ),
      );
      assert.match(
        syn[1]!,
        /filter-fwd: IN=cali\w+ OUT=\S+ .*DST=192\.168\.\d+\.\d+ .*TTL=63 .*DPT=8080 .*SYN/,
      );
      assert.match(
        syn[2]!,
        /nat-post: IN=cali\w+ OUT=\S+ .*DST=192\.168\.\d+\.\d+ .*DPT=8080 .*SYN/,
      );
      // Only the connection's first packet traverses nat: no nat-pre line for its ACKs.
      assert.ok(!lines.some((l) => l.includes('nat-pre: ') && / ACK /.test(l) && !/ SYN /.test(l)));
    });

    test('iptables-save output is accepted by the real iptables-restore --test', async () => {
      const saved = await kubewireOk(lab, ['iptables-save', '--node', 'worker-1']);
      assert.match(saved, /^\*nat$/m);
      assert.match(
        saved,
        /^-A KUBE-SERVICES -d 10\.96\.100\.100\/32 -p tcp -m comment --comment "svc\/echo:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-/m,
      );
      const file = join(scratch, 'rules.v4');
      writeFileSync(file, saved);
      const ns = `${lab}-ipt`;
      execFileSync('ip', ['netns', 'add', ns]);
      try {
        execFileSync('ip', ['netns', 'exec', ns, 'iptables-restore', '--test', file], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } finally {
        execFileSync('ip', ['netns', 'del', ns]);
      }
    });
  },
);
