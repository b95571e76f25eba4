/**
 * MetalLB layer 2 in the reference lab: the ingress LoadBalancer address 10.1.110.105
 * answered by exactly one node's MAC, failover when that node's agent stops (gratuitous
 * ARP on the underlay, curls resume), externalTrafficPolicy Local, pool exhaustion.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { macForAddress } from '../../src/lab/topology.js';
import { kubewire, kubewireOk, labName, rootSkip, sleep } from './lab-harness.js';

const lab = labName('lb');
const VIP = '10.1.110.105';
const CLIENT = '10.1.0.89';

interface SvcJson {
  namespace: string;
  name: string;
  status: { loadBalancer: { ingress: { ip: string; announcedBy: string | null }[] } };
}

describe('MetalLB layer 2', { skip: rootSkip, timeout: 400_000 }, () => {
  let dir: string;
  const nodeIPs = new Map<string, string>();
  /** Pod IPs by node, for the pods that back a Service (echo and CoreDNS). */
  const podsOfNode = new Map<string, string[]>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kw-metallb-'));
    await kubewireOk(lab, ['up']);
    for (const line of (await kubewireOk(lab, ['get', 'nodes', '-o', 'wide']))
      .trim()
      .split('\n')
      .slice(1)) {
      const cols = line.split(/\s+/);
      nodeIPs.set(cols[0]!, cols[4]!);
    }
  });

  before(async () => {
    const all = JSON.parse(await kubewireOk(lab, ['get', 'pods', '-A', '-o', 'json'])) as {
      ip: string;
      nodeName: string;
      hostNetwork?: boolean;
    }[];
    for (const p of all) {
      if (p.hostNetwork || !p.ip) continue;
      podsOfNode.set(p.nodeName, [...(podsOfNode.get(p.nodeName) ?? []), p.ip]);
    }
  });

  after(async () => {
    await kubewire(lab, ['down']);
    rmSync(dir, { recursive: true, force: true });
  });

  const services = async (): Promise<SvcJson[]> =>
    JSON.parse(await kubewireOk(lab, ['get', 'svc', '-A', '-o', 'json'])) as SvcJson[];
  const ingressOf = async (ns: string, name: string) =>
    (await services()).find((s) => s.namespace === ns && s.name === name)!.status.loadBalancer
      .ingress;
  const announcer = async (): Promise<string> => {
    const ing = await ingressOf('ingress-nginx', 'ingress-nginx-controller');
    assert.equal(ing[0]?.ip, VIP);
    assert.ok(ing[0]!.announcedBy, 'some node announces the address');
    return ing[0]!.announcedBy!;
  };
  const host = (name: string, cmd: string[], timeoutMs?: number) =>
    kubewire(lab, ['exec', '--host', name, '--', ...cmd], timeoutMs);
  /** The MACs that answer `arping` for an address on the router's underlay port. */
  const arpingMacs = async (ip: string): Promise<string[]> => {
    const r = await host('router', ['arping', '-c', '3', '-w', '4', '-I', 'eth0', ip]);
    return [...new Set([...r.stdout.matchAll(/from ([0-9a-f:]{17}) /g)].map((m) => m[1]!))];
  };
  const apply = (name: string, text: string, verb: 'apply' | 'delete' = 'apply') => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return kubewireOk(lab, [verb, '-f', file, ...(verb === 'apply' ? ['--wait'] : [])]);
  };

  test('the client reaches the ingress at 10.1.110.105; exactly one MAC, the announcer’s, answers ARP', async () => {
    const curl = await host('client', ['curl', '-s', '-m', '5', `http://${VIP}/blog/hello`]);
    assert.equal(curl.code, 0, curl.stderr);
    const echo = JSON.parse(curl.stdout) as { path: string; headers: Record<string, string> };
    assert.equal(echo.path, '/blogroll/hello', 'the ingress rewrote the path');
    assert.equal(echo.headers['x-forwarded-host'], VIP);
    const node = await announcer();
    assert.deepEqual(await arpingMacs(VIP), [macForAddress(nodeIPs.get(node)!)]);
    const wide = await kubewireOk(lab, ['get', 'svc', '-n', 'ingress-nginx', '-o', 'wide']);
    assert.match(
      wide,
      new RegExp(
        `ingress-nginx-controller\\s+LoadBalancer\\s+10\\.96\\.179\\.211\\s+${VIP.replace(/\./g, '\\.')}\\s+80:\\d+/TCP,443:\\d+/TCP.*${node}`,
      ),
    );
    const describe = await kubewireOk(lab, [
      'describe',
      'svc',
      'ingress-nginx-controller',
      '-n',
      'ingress-nginx',
    ]);
    assert.match(describe, /LoadBalancer Ingress:\s+10\.1\.110\.105/);
    assert.match(
      describe,
      /IPAllocated\s+.*metallb-controller\s+Assigned IP \["10\.1\.110\.105"\]/,
    );
    assert.match(
      describe,
      new RegExp(
        `nodeAssigned\\s+.*metallb-speaker\\s+announcing from node "${node}" with protocol "layer2"`,
      ),
    );
  });

  test('the announcing node stops: another takes over within 3 s with gratuitous ARP; curls resume; its return moves the address at most once', async (t) => {
    const first = await announcer();
    // Watch ARP on the underlay and curl the address every 100 ms, both bounded in time.
    const arp = host(
      'router',
      ['timeout', '45', 'tcpdump', '-tt', '-lnni', 'eth0', '-e', 'arp'],
      60_000,
    );
    const loop = host(
      'client',
      [
        'bash',
        '-c',
        `for i in $(seq 1 150); do c=$(curl -s -o /dev/null -w '%{http_code}' -m 0.4 http://${VIP}/blog/x); echo "$(date +%s%3N) $c"; sleep 0.1; done`,
      ],
      60_000,
    );
    await sleep(2000);
    const stop = await kubewire(lab, ['node', 'stop', first]);
    assert.equal(stop.code, 0, stop.stderr);
    // When the agent stopped (it says so): the clock of the failover starts there.
    const stoppedAt = Date.parse(/stopped answering at (\S+)\)/.exec(stop.stderr)![1]!);
    // Within 3 s of the stop another node answers ARP for the address.
    let second: string;
    for (;;) {
      const macs = await arpingMacs(VIP).catch((): string[] => []);
      const owner = [...nodeIPs].find(([, ip]) => macs.includes(macForAddress(ip)))?.[0];
      if (owner && owner !== first && macs.length === 1) {
        second = owner;
        break;
      }
      assert.ok(Date.now() - stoppedAt < 15_000, 'no other node answered ARP');
      await sleep(200);
    }
    const statusSecond = await announcer();
    assert.equal(statusSecond, second);
    // The stopped node's pods leave every Service on the other nodes (kube-proxy resynced).
    const firstPodIPs = podsOfNode.get(first) ?? [];
    assert.ok(firstPodIPs.length > 0, `pods on ${first}`);
    const dnatTo = async (node: string) =>
      [
        ...(await kubewireOk(lab, ['iptables-save', '--node', node])).matchAll(
          /--to-destination ([\d.]+):/g,
        ),
      ].map((m) => m[1]!);
    const during = await dnatTo(second);
    for (const ip of firstPodIPs) assert.ok(!during.includes(ip), `${ip} still an endpoint`);
    await sleep(3000);
    await kubewireOk(lab, ['node', 'start', first]);
    await sleep(1000);
    const back = await dnatTo(second);
    assert.ok(
      firstPodIPs.some((ip) => back.includes(ip)),
      `${first}'s pods are endpoints again after it rejoined`,
    );
    const curls = (await loop).stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
      .map(([t, code]) => ({ t: Number(t), ok: code === '200' }));
    const arpOut = (await arp).stdout;

    // Gratuitous ARP from the new announcer: request and reply, sender = target = the VIP.
    const secondMac = macForAddress(nodeIPs.get(second)!);
    assert.match(
      arpOut,
      new RegExp(
        `${secondMac} > ff:ff:ff:ff:ff:ff.*Request who-has ${VIP.replace(/\./g, '\\.')} \\(ff:ff:ff:ff:ff:ff\\) tell ${VIP.replace(/\./g, '\\.')}`,
      ),
    );
    assert.match(
      arpOut,
      new RegExp(
        `${secondMac} > ff:ff:ff:ff:ff:ff.*Reply ${VIP.replace(/\./g, '\\.')} is-at ${secondMac}`,
      ),
    );
    // The new owner's first gratuitous ARP came within 3 s of the stop.
    const garp = new RegExp(
      `^(\\d+\\.\\d+) ${secondMac} > ff:ff:ff:ff:ff:ff.*Request who-has ${VIP.replace(/\./g, '\\.')} `,
      'm',
    ).exec(arpOut);
    assert.ok(garp, 'a gratuitous ARP from the new owner');
    const takeoverMs = Number(garp[1]) * 1000 - stoppedAt;
    assert.ok(takeoverMs <= 3000, `took over ${takeoverMs} ms after the stop`);
    // The longest run of failed curls after the stop is at most 3 s.
    let worst = 0;
    let failingSince: number | null = null;
    for (const c of curls) {
      if (c.t < stoppedAt) continue;
      if (!c.ok && failingSince === null) failingSince = c.t;
      if (c.ok && failingSince !== null) {
        worst = Math.max(worst, c.t - failingSince);
        failingSince = null;
      }
    }
    assert.equal(failingSince, null, 'curls succeed again by the end of the loop');
    assert.ok(worst <= 3000, `curls failed for ${worst} ms`);
    assert.ok(curls.filter((c) => c.ok).length > 50, 'most curls succeeded');
    t.diagnostic(
      `announcer ${first} → ${second}: gratuitous ARP ${Math.round(takeoverMs)} ms after the stop; longest curl outage ${worst} ms; ${curls.filter((c) => !c.ok).length}/${curls.length} curls failed`,
    );
    // After the return: the announcements in the capture change hands at most twice in
    // total (away from the failed node, and back once when it returns).
    const owners = [...arpOut.matchAll(/Reply 10\.1\.110\.105 is-at ([0-9a-f:]{17})/g)].map(
      (m) => m[1],
    );
    const changes = owners.filter((m, i) => i > 0 && m !== owners[i - 1]).length;
    assert.ok(changes <= 1, `the address moved ${changes + 1} times: ${owners.join(' ')}`);
    await sleep(2000);
    const macs = await arpingMacs(VIP);
    assert.equal(macs.length, 1, `one MAC answers after the return (${macs.join(', ')})`);
  });

  test('externalTrafficPolicy Local: only a node with a local endpoint announces; the pod sees the client', async () => {
    await apply(
      'local.yaml',
      `apiVersion: v1
kind: Service
metadata: { name: blog-local, namespace: default }
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: { app: blog }
  ports: [{ port: 80, targetPort: 8080 }]
`,
    );
    await sleep(500);
    const ing = await ingressOf('default', 'blog-local');
    assert.equal(ing.length, 1);
    const ip = ing[0]!.ip;
    const all = JSON.parse(await kubewireOk(lab, ['get', 'pods', '-o', 'json'])) as {
      name: string;
      nodeName: string;
    }[];
    const blogNodes = new Set(all.filter((p) => p.name.startsWith('blog-')).map((p) => p.nodeName));
    assert.ok(
      blogNodes.has(ing[0]!.announcedBy!),
      `announced by ${ing[0]!.announcedBy}, blog pods on ${[...blogNodes].join(',')}`,
    );
    const macs = await arpingMacs(ip);
    assert.deepEqual(macs, [macForAddress(nodeIPs.get(ing[0]!.announcedBy!)!)]);
    const curl = await host('client', ['curl', '-s', '-m', '5', `http://${ip}/`]);
    assert.equal(curl.code, 0, curl.stderr);
    const echo = JSON.parse(curl.stdout) as { client: { address: string }; node: string };
    assert.equal(echo.client.address, CLIENT, 'no masquerade with Local');
    assert.ok(blogNodes.has(echo.node));
  });

  test('pool exhaustion: pending with a clear event, then the freed address is assigned', async () => {
    const svc = (name: string) => `---
apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
  annotations: { metallb.universe.tf/address-pool: tiny }
spec:
  type: LoadBalancer
  selector: { app: blog }
  ports: [{ port: 80, targetPort: 8080 }]
`;
    await apply(
      'tiny.yaml',
      `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: tiny, namespace: metallb-system }
spec: { addresses: [10.1.110.120/32] }
${svc('tiny-a')}${svc('tiny-b')}`,
    );
    const get = await kubewireOk(lab, ['get', 'svc']);
    assert.match(get, /tiny-a\s+LoadBalancer\s+\S+\s+10\.1\.110\.120\s/);
    assert.match(get, /tiny-b\s+LoadBalancer\s+\S+\s+<pending>\s/);
    const describe = await kubewireOk(lab, ['describe', 'svc', 'tiny-b']);
    assert.match(
      describe,
      /Warning\s+AllocationFailed\s+.*metallb-controller\s+Failed to allocate IP for "default\/tiny-b": no available IPs in pool tiny/,
    );
    await apply('tiny-a.yaml', svc('tiny-a'), 'delete');
    let after = '';
    for (let i = 0; i < 50; i++) {
      after = await kubewireOk(lab, ['get', 'svc']);
      if (/tiny-b\s+LoadBalancer\s+\S+\s+10\.1\.110\.120\s/.test(after)) break;
      await sleep(200);
    }
    assert.match(after, /tiny-b\s+LoadBalancer\s+\S+\s+10\.1\.110\.120\s/);
    assert.doesNotMatch(after, /tiny-a/);
    // The ingress kept its address through all of it.
    assert.equal((await ingressOf('ingress-nginx', 'ingress-nginx-controller'))[0]?.ip, VIP);
  });
});
