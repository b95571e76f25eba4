/**
 * Issue 4 (item 6 and the remaining must-show): `kubewire trace` follows a
 * curl from the client host to worker-1's NodePort whose endpoint runs on
 * worker-2 — KUBE-SERVICES → KUBE-NODEPORTS → KUBE-EXT → KUBE-SVC → KUBE-SEP
 * DNAT, conntrack NEW, the route via tunl0, IPIP — and the reply un-NATed;
 * the metrics at http://<node IP>:10249/metrics rise with traffic;
 * `kubewire conntrack -E` reports NEW, UPDATE and DESTROY for a curl.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TracedPacket, TraceStep } from '../../src/dataplane/trace.js';
import {
  cliPath,
  fixtures,
  kubewire,
  kubewireOk,
  labName,
  pods,
  repoRoot,
  rootSkip,
  sleep,
  type PodInfo,
} from './lab-harness.js';

const lab = labName('tr');
const manifests = [
  join(repoRoot, 'nodes'),
  join(repoRoot, 'compose', 'manifests', '00-cluster.yaml'),
  join(fixtures, 'trace'),
];
const WORKER1 = '10.1.110.102';
const WORKER2 = '10.1.110.107';
const CLIENT = '10.1.0.89';
const NODEPORT = 30090;

/** A long-running `kubewire` command (trace, conntrack -E): its output, and its end. */
function startCli(args: string[]) {
  const proc = spawn(process.execPath, [cliPath, '--lab', lab, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number>((resolve) => proc.on('close', (code) => resolve(code ?? 1)));
  return {
    proc,
    out: () => stdout,
    err: () => stderr,
    exited,
    /** Resolves once the output (stdout + stderr) matches. */
    async waitFor(re: RegExp, timeoutMs = 15_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(stdout + stderr)) {
        if (Date.now() > deadline || proc.exitCode !== null)
          throw new Error(`no ${re} in output:\n${stdout}\n${stderr}`);
        await sleep(50);
      }
    },
    async stop(): Promise<number> {
      if (proc.exitCode === null) proc.kill('SIGINT');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** `name{labels} value` samples of a text exposition. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

describe('kubewire trace, metrics and conntrack -E', { skip: rootSkip, timeout: 400_000 }, () => {
  let web: PodInfo;

  before(async () => {
    await kubewireOk(lab, ['up', ...manifests]);
    web = (await pods(lab, 'trace')).find((p) => p.name.startsWith('web-'))!;
    assert.equal(web.nodeName, 'worker-2');
  });

  after(async () => {
    await kubewire(lab, ['down']);
  });

  const fromClient = (cmd: string[]) => kubewire(lab, ['exec', '--host', 'client', '--', ...cmd]);
  const curlNodePort = (path: string) =>
    fromClient(['curl', '-sS', '-m', '5', `http://${WORKER1}:${NODEPORT}${path}`]);

  test('a curl to the NodePort, traced on worker-1: DNAT to worker-2 through IPIP, and the reply un-NATed', async () => {
    const trace = startCli([
      'trace',
      '--node',
      'worker-1',
      '-c',
      '2',
      '-o',
      'json',
      'host',
      CLIENT,
      'and',
      'tcp',
      'port',
      String(NODEPORT),
    ]);
    await trace.waitFor(/tracing on node worker-1: host 10\.1\.0\.89 and tcp port 30090/);
    await sleep(300);
    const r = await curlNodePort('/traced');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { pod: string }).pod, web.name);
    const code = await Promise.race([trace.exited, sleep(15_000).then(() => -1)]);
    if (code === -1) await trace.stop();
    assert.equal(code, 0, `trace ends by itself after -c 2\n${trace.out()}\n${trace.err()}`);
    const [syn, synAck] = trace
      .out()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as TracedPacket);
    assert.ok(syn && synAck, trace.out());

    // The client's SYN.
    assert.equal(syn.packet.src, CLIENT);
    assert.equal(syn.packet.dst, WORKER1);
    assert.equal(syn.packet.dport, NODEPORT);
    assert.equal(syn.packet.flags, 'S');
    const s = syn.steps;
    assert.deepEqual(s[0], { step: 'in', dev: 'eth0', local: false });
    const ct = s.find((x) => x.step === 'conntrack');
    assert.ok(ct?.step === 'conntrack');
    assert.equal(ct.state, 'NEW');
    assert.equal(ct.dir, 'original');
    assert.match(
      ct.entry!,
      /^tcp +6 \d+ SYN_SENT src=10\.1\.0\.89 dst=10\.1\.110\.102 sport=\d+ dport=30090 \[UNREPLIED\]/,
    );
    const natRules = s.filter(
      (x): x is Extract<TraceStep, { step: 'rule' }> =>
        x.step === 'rule' && x.table === 'nat' && x.hook === 'PREROUTING',
    );
    const chains = natRules.map((x) => x.chain.replace(/-[A-Z0-9]{16}$/, ''));
    assert.deepEqual(
      chains,
      [
        'PREROUTING',
        'KUBE-SERVICES',
        'KUBE-NODEPORTS',
        'KUBE-EXT',
        'KUBE-MARK-MASQ',
        'KUBE-EXT',
        'KUBE-SVC',
        'KUBE-SEP',
      ],
      natRules.map((x) => x.rule).join('\n'),
    );
    assert.equal(
      natRules[0]!.rule,
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    );
    assert.match(
      natRules[1]!.rule,
      /^-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS$/,
    );
    assert.match(
      natRules[2]!.rule,
      /^-A KUBE-NODEPORTS -p tcp -m comment --comment "trace\/web:http" -m tcp --dport 30090 -j KUBE-EXT-[A-Z0-9]{16}$/,
    );
    const sep = natRules[7]!;
    assert.match(
      sep.rule,
      new RegExp(
        `^-A KUBE-SEP-[A-Z0-9]{16} -p tcp -m comment --comment "trace/web:http" -m tcp -j DNAT --to-destination ${web.ip.replace(/\./g, '\\.')}:8080$`,
      ),
    );
    assert.equal(sep.verdict, 'DNAT');
    const natSteps = s.filter((x) => x.step === 'nat');
    assert.equal(natSteps.length, 2);
    const [dnat, snat] = natSteps as Array<Extract<TraceStep, { step: 'nat' }>>;
    assert.deepEqual(
      { ...dnat },
      {
        step: 'nat',
        hook: 'PREROUTING',
        kind: 'DNAT',
        before: `${WORKER1}:${NODEPORT}`,
        after: `${web.ip}:8080`,
      },
    );
    assert.equal(snat!.kind, 'SNAT');
    assert.equal(snat!.hook, 'POSTROUTING');
    assert.match(snat!.after, /^192\.168\.104\.64:\d+$/, 'masqueraded to tunl0 of worker-1');
    const route = s.find((x) => x.step === 'route');
    assert.deepEqual(route, {
      step: 'route',
      dst: web.ip,
      route: `192.168.8.192/26 via ${WORKER2} dev tunl0 proto bird onlink`,
    });
    assert.ok(
      s.some(
        (x) =>
          x.step === 'rule' &&
          x.table === 'filter' &&
          x.hook === 'FORWARD' &&
          /-m mark --mark 0x4000\/0x4000 -j ACCEPT$/.test(x.rule),
      ),
      'KUBE-FORWARD accepts on the masquerade mark',
    );
    assert.ok(
      s.some(
        (x) =>
          x.step === 'rule' &&
          x.hook === 'POSTROUTING' &&
          /-j MASQUERADE/.test(x.rule) &&
          x.verdict === 'MASQUERADE',
      ),
    );
    const confirm = s.find((x) => x.step === 'confirm');
    assert.ok(confirm?.step === 'confirm' && confirm.ok);
    assert.match(
      confirm.entry!,
      new RegExp(
        `dport=30090 \\[UNREPLIED\\] src=${web.ip.replace(/\./g, '\\.')} dst=192\\.168\\.104\\.64 sport=8080 `,
      ),
    );
    assert.deepEqual(
      s.find((x) => x.step === 'encap'),
      {
        step: 'encap',
        dev: 'tunl0',
        outerSrc: WORKER1,
        outerDst: WORKER2,
      },
    );
    const out = s[s.length - 1]!;
    assert.ok(out.step === 'out', JSON.stringify(s));
    assert.equal(out.dev, 'eth0');
    assert.equal(out.nextHop, WORKER2);
    assert.equal(out.packet.proto, 4);
    assert.equal(out.packet.inner?.dst, web.ip);
    assert.ok(!s.some((x) => x.step === 'drop'));

    // The pod's SYN-ACK, back from worker-2: traced by its connection, un-NATed both ways.
    const a = synAck.steps;
    assert.deepEqual(a[0], { step: 'in', dev: 'eth0', local: false });
    assert.ok(a[1]?.step === 'decap');
    assert.equal(a[1].outerSrc, WORKER2);
    assert.equal(a[1].inner.src, web.ip);
    assert.equal(a[1].inner.dst, '192.168.104.64');
    const rct = a.find((x) => x.step === 'conntrack');
    assert.ok(rct?.step === 'conntrack');
    assert.equal(rct.state, 'ESTABLISHED');
    assert.equal(rct.dir, 'reply');
    assert.equal(rct.byConnection, true);
    const unnat = a.filter((x) => x.step === 'nat') as Array<Extract<TraceStep, { step: 'nat' }>>;
    assert.deepEqual(
      unnat.map((x) => [x.hook, x.kind, x.after]),
      [
        ['PREROUTING', 'un-SNAT', `${CLIENT}:${syn.packet.sport}`],
        ['POSTROUTING', 'un-DNAT', `${WORKER1}:${NODEPORT}`],
      ],
    );
    const rroute = a.find((x) => x.step === 'route');
    assert.ok(rroute?.step === 'route');
    assert.equal(rroute.dst, CLIENT);
    assert.match(rroute.route ?? '', / via 10\.1\.110\.1 dev eth0$/, 'back through the router');
    const rout = a[a.length - 1]!;
    assert.ok(rout.step === 'out');
    assert.equal(rout.dev, 'eth0');
    assert.equal(rout.packet.src, WORKER1);
    assert.equal(rout.packet.sport, NODEPORT);
    assert.equal(rout.packet.dst, CLIENT);
    assert.equal(rout.packet.flags, 'S.');
  });

  test('the text form, and the trace stops when its client goes', async () => {
    const trace = startCli([
      'trace',
      '--node',
      'worker-1',
      '--dport',
      String(NODEPORT),
      '-p',
      'tcp',
    ]);
    await trace.waitFor(/tracing on node worker-1: proto tcp and tcp dst port 30090/);
    await sleep(300);
    assert.equal((await curlNodePort('/text')).code, 0);
    await trace.waitFor(/=> DNAT\n/);
    await trace.waitFor(/out {10}eth0 +to 10\.1\.110\.107 /);
    await trace.stop();
    const text = trace.out();
    assert.match(
      text,
      /^\d\d:\d\d:\d\d\.\d{6} worker-1 #1 tcp 10\.1\.0\.89:\d+ > 10\.1\.110\.102:30090 \[S\] len \d+ ttl 63$/m,
    );
    assert.match(text, /^ {2}PREROUTING {3}conntrack {2}NEW \(original\): tcp /m);
    assert.match(
      text,
      /^ {2}PREROUTING {3}DNAT {7}10\.1\.110\.102:30090 -> 192\.168\.8\.\d+:8080$/m,
    );
    assert.match(
      text,
      /^ {2}routing {6}route {6}192\.168\.8\.192\/26 via 10\.1\.110\.107 dev tunl0 proto bird onlink$/m,
    );
    assert.match(
      text,
      /^ {2}out {10}tunl0 {6}IPIP encapsulation 10\.1\.110\.102 > 10\.1\.110\.107$/m,
    );
    // The agent took the tracer out when the CLI went: a second trace is accepted.
    const again = startCli(['trace', '--node', 'worker-1', '-c', '1', 'icmp']);
    await again.waitFor(/tracing on node worker-1: icmp/);
    await sleep(300);
    await fromClient(['ping', '-c', '1', '-W', '2', WORKER1]);
    assert.equal(await Promise.race([again.exited, sleep(10_000).then(() => again.stop())]), 0);
    assert.match(again.out(), /#1 icmp 10\.1\.0\.89 > 10\.1\.110\.102 echo request /);
    assert.match(again.out(), /routing {6}local {6}10\.1\.110\.102 is the node's own address/);
    assert.match(
      again.out(),
      /out {10}eth0 +to 10\.1\.110\.1 \S+: icmp 10\.1\.110\.102 > 10\.1\.0\.89 echo reply/,
    );
  });

  test('an invalid filter is refused before anything runs', async () => {
    const r = await kubewire(lab, ['trace', '--node', 'worker-1', 'host', '10.1.0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /trace: '10\.1\.0' is not an IPv4 address/);
  });

  test('metrics at http://<node IP>:10249/metrics from the client, rising with traffic', async () => {
    const scrape = async () => {
      const r = await fromClient([
        'curl',
        '-sS',
        '-m',
        '5',
        '-i',
        `http://${WORKER1}:10249/metrics`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const [head, body] = r.stdout.split('\r\n\r\n');
      assert.match(head!, /^HTTP\/1\.1 200 OK/);
      assert.match(head!, /content-type: text\/plain; version=0\.0\.4; charset=utf-8/i);
      return samples(body!);
    };
    const before = await scrape();
    for (let i = 0; i < 3; i++) assert.equal((await curlNodePort(`/m${i}`)).code, 0);
    const afterScrape = await scrape();
    const rose = (name: string, by = 1) => {
      const a = before.get(name);
      const b = afterScrape.get(name);
      assert.ok(a !== undefined && b !== undefined, `${name} exported`);
      assert.ok(b - a >= by, `${name}: ${a} -> ${b}`);
    };
    rose('kubewire_netfilter_packets_total{hook="PREROUTING",verdict="ACCEPT"}', 9);
    rose('kubewire_netfilter_packets_total{hook="FORWARD",verdict="ACCEPT"}', 9);
    rose('kubewire_netfilter_packets_total{hook="INPUT",verdict="ACCEPT"}'); // the scrape itself
    rose('node_nf_conntrack_stat_insert', 3);
    rose('node_network_receive_packets_total{device="eth0"}', 9);
    rose('node_network_transmit_bytes_total{device="eth0"}', 500);
    rose('node_network_receive_packets_total{device="kubewire0"}'); // the scrape's answer
    assert.ok((afterScrape.get('node_nf_conntrack_entries') ?? 0) >= 3);
    assert.equal(afterScrape.get('node_nf_conntrack_entries_limit'), 131072);
    assert.ok((afterScrape.get('kubeproxy_sync_proxy_rules_duration_seconds_count') ?? 0) >= 1);
    assert.ok((afterScrape.get('kubeproxy_sync_proxy_rules_last_timestamp_seconds') ?? 0) > 1.7e9);
    assert.ok(afterScrape.has('kubewire_drops_total{reason="netfilter-drop"}'));
    assert.ok((afterScrape.get('kubewire_netfilter_rules{table="nat"}') ?? 0) > 10);
    // The same through the control socket.
    const cli = samples(await kubewireOk(lab, ['metrics', '--node', 'worker-1']));
    assert.ok(
      (cli.get('node_nf_conntrack_stat_insert') ?? 0) >=
        afterScrape.get('node_nf_conntrack_stat_insert')!,
    );
    // Every node serves its own.
    const w2 = await fromClient(['curl', '-sS', '-m', '5', `http://${WORKER2}:10249/metrics`]);
    assert.match(w2.stdout, /^node_nf_conntrack_entries \d+$/m);
  });

  test('conntrack -E: NEW, UPDATE and DESTROY for a curl through the NodePort', async () => {
    const events = startCli(['conntrack', '--node', 'worker-1', '-E']);
    await sleep(1500);
    const r = await curlNodePort('/events');
    assert.equal(r.code, 0, r.stderr);
    // conntrack -D reports what it deletes as DESTROY events.
    await sleep(300);
    const del = await kubewire(lab, [
      'conntrack',
      '--node',
      'worker-1',
      '-D',
      '-p',
      'tcp',
      '--orig-port-dst',
      String(NODEPORT),
    ]);
    assert.equal(del.code, 0, del.stderr);
    await events.waitFor(/\[DESTROY\]/);
    await events.stop();
    const lines = events
      .out()
      .split('\n')
      .filter((l) => /dport=30090 /.test(l));
    const ev = (type: string) => lines.filter((l) => l.startsWith(`${`[${type}]`.padStart(9)} `));
    assert.match(
      ev('NEW')[0] ?? '',
      new RegExp(
        `^ {4}\\[NEW\\] tcp {6}6 \\d+ SYN_SENT src=10\\.1\\.0\\.89 dst=10\\.1\\.110\\.102 sport=\\d+ dport=30090 \\[UNREPLIED\\] src=${web.ip.replace(/\./g, '\\.')} dst=192\\.168\\.104\\.64 sport=8080 dport=\\d+$`,
      ),
      events.out(),
    );
    assert.ok(
      ev('UPDATE').some((l) => / ESTABLISHED src=10\.1\.0\.89 .*\[ASSURED\]/.test(l)),
      events.out(),
    );
    assert.match(
      ev('DESTROY')[0] ?? '',
      /^\[DESTROY\] tcp {6}6 (?:[A-Z_]+ )?src=10\.1\.0\.89 dst=10\.1\.110\.102 sport=\d+ dport=30090 src=192\.168\.8\.\d+ dst=192\.168\.104\.64 sport=8080 dport=\d+ \[ASSURED\]/,
      events.out(),
    );
  });
});
