/**
 * End to end: the reference lab as `docker compose` runs it (compose/docker-compose.yml),
 * checked with the real tools inside its containers. Needs a Docker engine and compose;
 * without them the tier is skipped with the reason, except in CI (CI=true), where that
 * is a failure.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  acquireMachineLock,
  ComposeLab,
  dockerUnavailable,
  eventually,
  inCI,
  NODE_SERVICES,
  podsOf,
  sleep,
  type PodJson,
} from './compose-harness.js';

const unavailable = dockerUnavailable();

if (unavailable && inCI) {
  test('e2e tier: Docker is required in CI', () => {
    assert.fail(
      `${unavailable}. CI must run the e2e tier: .ci/run installs and starts Docker (scripts/docker-setup.sh)`,
    );
  });
} else {
  describe('compose lab (e2e)', { skip: unavailable ?? false, timeout: 30 * 60_000 }, () => {
    let lab: ComposeLab;
    let unlock: (() => void) | null = null;
    let all: PodJson[];
    /** A webapp pod on worker-1 and one on worker-2. */
    let p1: PodJson;
    let p2: PodJson;
    const cleanup = () => {
      lab?.downSync();
      unlock?.();
      process.exit(130);
    };

    before(async () => {
      lab = new ComposeLab();
      process.once('SIGINT', cleanup);
      process.once('SIGTERM', cleanup);
      unlock = await acquireMachineLock();
      await lab.buildImages();
      try {
        await lab.up();
      } catch (err) {
        await lab.down();
        throw err;
      }
      const mem = await lab.memoryMiB();
      process.stderr.write(
        `# compose lab ready in ${lab.readySeconds.toFixed(1)} s (${lab.compose.join(' ')}); memory MiB: ${Object.entries(
          mem,
        )
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')}\n`,
      );
      all = await podsOf(lab);
      const webapp = (node: string) =>
        all.find((p) => p.name.startsWith('webapp-') && p.nodeName === node);
      p1 = webapp('worker-1')!;
      p2 = webapp('worker-2')!;
      assert.ok(p1 && p2, `webapp pods on both workers: ${JSON.stringify(all.map((p) => p.name))}`);
    });

    after(async () => {
      process.removeListener('SIGINT', cleanup);
      process.removeListener('SIGTERM', cleanup);
      await lab?.down();
      unlock?.();
    });

    test('every node is Ready and every pod Running, as seen from any node container', async () => {
      for (const service of NODE_SERVICES) {
        const nodes = await lab.execOk(service, ['kubewire', 'get', 'nodes', '-o', 'wide']);
        for (const [name, ip] of [
          ['control-plane', '10.1.110.108'],
          ['worker-1', '10.1.110.102'],
          ['worker-2', '10.1.110.107'],
        ]) {
          assert.match(
            nodes,
            new RegExp(`^${name}\\s+Ready\\s.*\\s${ip.replace(/\./g, '\\.')}\\s`, 'm'),
          );
        }
      }
      const wide = await lab.execOk('control-plane', [
        'kubewire',
        'get',
        'pods',
        '-A',
        '-o',
        'wide',
      ]);
      for (const node of NODE_SERVICES)
        assert.match(wide, new RegExp(`Running .*\\s${node}$`, 'm'));
      const pods = await podsOf(lab, 'worker-2');
      assert.ok(pods.length >= 3, wide);
      for (const p of pods) {
        assert.ok(p.ip, `${p.namespace}/${p.name} has an address`);
        assert.equal(p.status?.phase, 'Running', `${p.namespace}/${p.name}: ${wide}`);
      }
    });

    test("the agent owns the node's eth0: no kernel address, tc redirects it to the agent", async () => {
      const addr = await lab.execOk('worker-1', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      assert.equal(addr.trim(), '', 'the kernel has no IPv4 address on eth0');
      const tc = await lab.execOk('worker-1', ['tc', 'filter', 'show', 'dev', 'eth0', 'ingress']);
      assert.match(tc, /mirred \(Egress Redirect to device kw-uplink\)/);
      const route = await lab.execOk('worker-1', ['kubewire', 'ip', 'route', '--node', 'worker-1']);
      assert.match(
        route,
        /^default via 10\.1\.110\.1 dev eth0/m,
        'the router is the default gateway',
      );
    });

    test('a pod pings a pod on another node', async () => {
      const out = await lab.execOk(
        'worker-1',
        [
          'kubewire',
          'exec',
          '-n',
          p1.namespace,
          p1.name,
          '--',
          'ping',
          '-c',
          '3',
          '-W',
          '2',
          p2.ip!,
        ],
        { timeoutMs: 30_000 },
      );
      assert.match(out, /3 packets transmitted, 3 received/);
    });

    test("a pod curls a pod on another node, which sees the client pod's own address", async () => {
      const out = await lab.execOk(
        'worker-1',
        [
          'kubewire',
          'exec',
          '-n',
          p1.namespace,
          p1.name,
          '--',
          'curl',
          '-s',
          '-m',
          '10',
          `http://${p2.ip}:8080/e2e?x=1`,
        ],
        { timeoutMs: 30_000 },
      );
      const body = JSON.parse(out) as {
        pod: string;
        node: string;
        client: { address: string };
        path: string;
      };
      assert.equal(body.pod, p2.name);
      assert.equal(body.node, 'worker-2');
      assert.equal(body.client.address, p1.ip, 'pod to pod is not NATed');
      assert.equal(body.path, '/e2e');
    });

    test("IPIP between the workers is visible with tcpdump on worker-1's eth0", async () => {
      const dump = lab.spawnExec('worker-1', [
        'tcpdump',
        '-nl',
        '-i',
        'eth0',
        '-c',
        '4',
        'ip proto 4 and host 10.1.110.107',
      ]);
      let text = '';
      dump.stdout!.on('data', (c: Buffer) => (text += c.toString()));
      dump.stderr!.on('data', (c: Buffer) => (text += c.toString()));
      const exited = new Promise<void>((resolve) => dump.on('close', () => resolve()));
      try {
        await eventually(
          'tcpdump to listen',
          async () => text,
          (t) => t.includes('listening on'),
          20_000,
        );
        await lab.execOk(
          'worker-1',
          [
            'kubewire',
            'exec',
            '-n',
            p1.namespace,
            p1.name,
            '--',
            'ping',
            '-c',
            '4',
            '-i',
            '0.2',
            '-W',
            '2',
            p2.ip!,
          ],
          { timeoutMs: 30_000 },
        );
        await Promise.race([exited, sleep(15_000)]);
      } finally {
        dump.kill();
      }
      const esc = (s: string) => s.replace(/\./g, '\\.');
      assert.match(
        text,
        new RegExp(
          `IP 10\\.1\\.110\\.102 > 10\\.1\\.110\\.107: IP ${esc(p1.ip!)} > ${esc(p2.ip!)}: ICMP echo request`,
        ),
        text,
      );
      assert.match(
        text,
        new RegExp(
          `IP 10\\.1\\.110\\.107 > 10\\.1\\.110\\.102: IP ${esc(p2.ip!)} > ${esc(p1.ip!)}: ICMP echo reply`,
        ),
        text,
      );
    });

    test("each node routes the other nodes' blocks through tunl0 (kubewire ip route)", async () => {
      const out = await lab.execOk('worker-1', ['kubewire', 'ip', 'route', '--node', 'worker-1']);
      assert.match(out, /^192\.168\.8\.192\/26 via 10\.1\.110\.107 dev tunl0 proto bird onlink/m);
      assert.match(out, /^192\.168\.165\.192\/26 via 10\.1\.110\.108 dev tunl0 proto bird onlink/m);
      assert.match(out, /^blackhole 192\.168\.104\.64\/26 proto bird/m);
      // Another node's table, through its control socket on the shared volume.
      const other = await lab.execOk('worker-1', ['kubewire', 'ip', 'route', '--node', 'worker-2']);
      assert.match(
        other,
        /^192\.168\.104\.64\/26 via 10\.1\.110\.102 dev tunl0 proto bird onlink/m,
      );
    });

    test('the client reaches a node through the router', async () => {
      const out = await lab.execOk('client', ['ping', '-c', '2', '-W', '2', '10.1.110.102'], {
        timeoutMs: 30_000,
      });
      assert.match(out, /2 packets transmitted, 2 received/);
      assert.match(out, /ttl=63/, 'one router hop');
      const trace = await lab.execOk('client', ['ip', 'route', 'get', '10.1.110.102']);
      assert.match(trace, /via 10\.1\.0\.1 dev eth0/);
    });

    test('NodePort from the client through the router reaches every blog pod, masqueraded', async () => {
      const save = await lab.execOk('worker-1', [
        'kubewire',
        'iptables-save',
        '--node',
        'worker-1',
      ]);
      const port =
        /^-A KUBE-NODEPORTS -p tcp -m comment --comment "default\/blog:http" -m tcp --dport (\d+) /m.exec(
          save,
        )?.[1];
      assert.ok(port, `blog's NodePort in worker-1's KUBE-NODEPORTS:\n${save}`);
      const out = await lab.execOk(
        'client',
        [
          'sh',
          '-c',
          `for i in $(seq 1 16); do curl -s -m 5 http://10.1.110.102:${port}/np; echo; done`,
        ],
        { timeoutMs: 120_000 },
      );
      const seen = new Map<string, string>();
      for (const line of out.split('\n').filter(Boolean)) {
        const body = JSON.parse(line) as { pod: string; client: { address: string } };
        seen.set(body.pod, body.client.address);
      }
      const blogs = all.filter((p) => p.name.startsWith('blog-'));
      assert.deepEqual([...seen.keys()].sort(), blogs.map((p) => p.name).sort(), out);
      // externalTrafficPolicy Cluster: MASQUERADE, to the node's address toward its own
      // pod, to its tunnel address (tunl0) toward a pod across the overlay.
      for (const b of blogs) {
        assert.equal(
          seen.get(b.name),
          b.nodeName === 'worker-1' ? '10.1.110.102' : '192.168.104.64',
          `client address seen by ${b.name} on ${b.nodeName}`,
        );
      }
    });

    test("a pod reaches a Service's ClusterIP, balanced over its endpoints, unmasqueraded", async () => {
      const save = await lab.execOk('worker-1', [
        'kubewire',
        'iptables-save',
        '--node',
        'worker-1',
      ]);
      const vip =
        /^-A KUBE-SERVICES -d ([\d.]+)\/32 -p tcp -m comment --comment "default\/blog:http cluster IP"/m.exec(
          save,
        )?.[1];
      assert.ok(vip, `blog's ClusterIP in worker-1's KUBE-SERVICES:\n${save}`);
      const out = await lab.execOk(
        'worker-1',
        [
          'kubewire',
          'exec',
          '-n',
          p1.namespace,
          p1.name,
          '--',
          'sh',
          '-c',
          `for i in $(seq 1 16); do curl -s -m 5 http://${vip}/svc; echo; done`,
        ],
        { timeoutMs: 120_000 },
      );
      const bodies = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { pod: string; client: { address: string } });
      const blogs = all.filter((p) => p.name.startsWith('blog-')).map((p) => p.name);
      assert.deepEqual([...new Set(bodies.map((b) => b.pod))].sort(), blogs.sort(), out);
      for (const b of bodies) assert.equal(b.client.address, p1.ip);
    });

    test('ingress-nginx through its NodePort from the client: rewrite to blog, default to webapp', async () => {
      const save = await lab.execOk('worker-1', [
        'kubewire',
        'iptables-save',
        '--node',
        'worker-1',
      ]);
      const port =
        /^-A KUBE-NODEPORTS -p tcp -m comment --comment "ingress-nginx\/ingress-nginx-controller:http" -m tcp --dport (\d+) /m.exec(
          save,
        )?.[1];
      assert.ok(port, save);
      const blog = JSON.parse(
        await lab.execOk('client', [
          'curl',
          '-s',
          '-m',
          '10',
          `http://10.1.110.102:${port}/blog/hello`,
        ]),
      ) as { pod: string; path: string; headers: Record<string, string> };
      assert.match(blog.pod, /^blog-/);
      assert.equal(blog.path, '/blogroll/hello');
      const web = JSON.parse(
        await lab.execOk('client', ['curl', '-s', '-m', '10', `http://10.1.110.102:${port}/`]),
      ) as { pod: string };
      assert.match(web.pod, /^webapp-/);
    });

    test('DNS from a pod: dig through the kube-dns ClusterIP to the CoreDNS pods', async () => {
      const dig = (name: string) =>
        lab.execOk('worker-1', [
          'kubewire',
          'exec',
          '-n',
          p1.namespace,
          p1.name,
          '--',
          'dig',
          '+short',
          '+time=3',
          '+tries=2',
          name,
        ]);
      assert.equal((await dig('kubernetes.default.svc.cluster.local')).trim(), '10.96.0.1');
      assert.equal((await dig('wordpress-db.wordpress.svc.cluster.local')).trim(), '10.96.23.229');
    });

    test('the LoadBalancer address 10.1.110.105: the client reaches the ingress; one MAC answers ARP', async () => {
      const blog = JSON.parse(
        await lab.execOk('client', ['curl', '-s', '-m', '10', 'http://10.1.110.105/blog/x']),
      ) as { pod: string; path: string };
      assert.match(blog.pod, /^blog-/);
      assert.equal(blog.path, '/blogroll/x');
      const svc = JSON.parse(
        await lab.execOk('worker-1', [
          'kubewire',
          'get',
          'svc',
          '-n',
          'ingress-nginx',
          '-o',
          'json',
        ]),
      ) as { status: { loadBalancer: { ingress: { ip: string; announcedBy: string }[] } } }[];
      const ingress = svc[0]!.status.loadBalancer.ingress[0]!;
      assert.equal(ingress.ip, '10.1.110.105');
      // The announcing node's own MAC (Docker picks it; newer engines randomise it).
      const mac = (
        await lab.execOk(ingress.announcedBy, ['cat', '/sys/class/net/eth0/address'])
      ).trim();
      const arping = await lab.execOk('router', [
        'sh',
        '-c',
        'arping -c 3 -w 5 -I "$(ip -o -4 addr show to 10.1.110.0/24 | cut -d" " -f2)" 10.1.110.105',
      ]);
      const macs = new Set([...arping.matchAll(/from ([0-9a-f:]{17}) /g)].map((m) => m[1]));
      assert.deepEqual([...macs], [mac], arping);
    });

    test('kubewire exec for a pod of another node says where to run it', async () => {
      const r = await lab.exec('worker-1', [
        'kubewire',
        'exec',
        '-n',
        p2.namespace,
        p2.name,
        '--',
        'true',
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`runs on node worker-2.*docker compose exec worker-2`));
    });

    test('kubewire apply in one node container changes the cluster for every node', async () => {
      const manifest = [
        'apiVersion: v1',
        'kind: Pod',
        'metadata:',
        '  name: e2e-probe',
        '  namespace: default',
        'spec:',
        '  nodeName: worker-2',
        '  containers:',
        '    - name: web',
        '      image: e2e/echo',
        '      ports:',
        '        - containerPort: 9000',
        '',
      ].join('\n');
      const applied = await lab.execOk('worker-1', ['kubewire', 'apply', '-f', '-', '--wait'], {
        input: manifest,
        timeoutMs: 90_000,
      });
      assert.match(applied, /pod\/e2e-probe created/);
      const probe = await eventually(
        'e2e-probe to run on worker-2',
        async () => (await podsOf(lab, 'control-plane')).find((p) => p.name === 'e2e-probe'),
        (p) => !!p?.ip && p.status?.ready === true,
      );
      assert.equal(probe!.nodeName, 'worker-2');
      // Its namespace is in worker-2's container.
      const eth0 = await lab.execOk('worker-2', [
        'kubewire',
        'exec',
        'e2e-probe',
        '--',
        'ip',
        '-4',
        '-o',
        'addr',
        'show',
        'dev',
        'eth0',
      ]);
      assert.match(eth0, new RegExp(`inet ${probe!.ip!.replace(/\./g, '\\.')}/32`));
      // And it is reachable across the overlay from a pod on worker-1 (addresses may have
      // moved with the change: ask again).
      const now = await podsOf(lab, 'worker-1');
      const src = now.find((p) => p.name.startsWith('webapp-') && p.nodeName === 'worker-1')!;
      const out = await lab.execOk(
        'worker-1',
        [
          'kubewire',
          'exec',
          '-n',
          src.namespace,
          src.name,
          '--',
          'curl',
          '-s',
          '-m',
          '10',
          `http://${probe!.ip}:9000/`,
        ],
        { timeoutMs: 30_000 },
      );
      assert.equal((JSON.parse(out) as { pod: string }).pod, 'e2e-probe');

      const deleted = await lab.execOk(
        'control-plane',
        ['kubewire', 'delete', '-f', '-', '--wait'],
        {
          input: manifest,
          timeoutMs: 90_000,
        },
      );
      assert.match(deleted, /pod\/e2e-probe deleted/);
      await eventually(
        'e2e-probe to be gone',
        async () => (await podsOf(lab, 'worker-2')).some((p) => p.name === 'e2e-probe'),
        (present) => !present,
      );
    });
  });
}
