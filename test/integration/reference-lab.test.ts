/**
 * The reference lab as `kubewire up` starts it with no arguments: the white
 * paper's walk through DNS and the ingress, over kube-proxy and IPIP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { kubewire, kubewireOk, labName, pods, rootSkip, type PodInfo } from './lab-harness.js';

const lab = labName('rl');

describe('reference lab', { skip: rootSkip, timeout: 300_000 }, () => {
  let wordpress: PodInfo;

  before(async () => {
    await kubewireOk(lab, ['up']);
    wordpress = (await pods(lab, 'wordpress')).find(
      (p) => p.name.startsWith('wordpress-') && !p.name.startsWith('wordpress-db'),
    )!;
  });

  after(async () => {
    await kubewire(lab, ['down']);
  });

  const exec = (pod: PodInfo, cmd: string[]) =>
    kubewire(lab, ['exec', '-n', pod.namespace, pod.name, '--', ...cmd]);

  test('the white paper addresses', async () => {
    const all = await pods(lab);
    const ip = (name: string) => all.find((p) => p.name.startsWith(name))?.ip;
    assert.equal(ip('coredns-control-plane'), '192.168.165.196');
    assert.equal(ip('coredns-worker-2'), '192.168.8.207');
    assert.equal(wordpress.ip, '192.168.8.222');
    assert.equal(ip('wordpress-db-'), '192.168.8.223');
    assert.deepEqual(
      all
        .filter((p) => p.namespace === 'ingress-nginx')
        .map((p) => p.ip)
        .sort(),
      ['192.168.104.65', '192.168.8.193'],
    );
    assert.ok(
      all.every((p) => p.status?.ready),
      'every pod ready',
    );
  });

  test('a pod resolves the wordpress-db Service through kube-dns (10.96.0.10, DNAT to a CoreDNS pod)', async () => {
    const dig = await exec(wordpress, [
      'dig',
      '+short',
      '@10.96.0.10',
      'wordpress-db.wordpress.svc.cluster.local',
    ]);
    assert.equal(dig.stdout.trim(), '10.96.23.229');
    const getent = await exec(wordpress, ['getent', 'hosts', 'wordpress-db']);
    assert.match(
      getent.stdout,
      /^10\.96\.23\.229\s+wordpress-db\.wordpress\.svc\.cluster\.local$/m,
    );
    const ptr = await exec(wordpress, ['dig', '+short', '-x', '192.168.8.223', '@10.96.0.10']);
    assert.match(ptr.stdout, /wordpress-db\.wordpress\.svc\.cluster\.local\./);
  });

  test('client → NodePort → ingress controller → rewrite → blog pod on another node', async () => {
    const nodePort = await ingressNodePort();
    const r = await curlBlog(nodePort, 5);
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.body) as {
      pod: string;
      path: string;
      headers: Record<string, string>;
    };
    assert.match(body.pod, /^blog-/);
    assert.equal(body.path, '/blogroll/hello');
    // The controller saw the client masqueraded to a node address (eTP Cluster), and says so.
    assert.ok(body.headers['x-forwarded-for'], JSON.stringify(body.headers));
    assert.match(body.headers['x-request-id'] ?? '', /^[0-9a-f]{32}$/);
  });

  // Last: stops a node for good (the lab goes away after it).
  test('a node that stops: the ingress controller stops proxying to its blog pod', async () => {
    const nodePort = await ingressNodePort();
    const blogs = (await pods(lab, 'default')).filter((p) => p.name.startsWith('blog-'));
    const nodes = new Set(blogs.map((p) => p.nodeName));
    assert.equal(nodes.size, 2, `the blog pods spread over two nodes: ${JSON.stringify(blogs)}`);
    // Stop a node that is not the one the client talks to; the other blog pod stays.
    const stopped = blogs.find((p) => p.nodeName !== 'worker-1')!;
    const alive = blogs.find((p) => p !== stopped)!;
    const curl = () => curlBlog(nodePort, 8);
    const answered = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const r = await curl();
      assert.equal(r.code, 0, r.stderr);
      answered.add((JSON.parse(r.body) as { pod: string }).pod);
    }
    assert.deepEqual(
      [...answered].sort(),
      [alive.name, stopped.name].sort(),
      'round robin over both',
    );

    await kubewireOk(lab, ['node', 'stop', stopped.nodeName]);
    // The agents see the node go within a few seconds (lab liveness); then every request
    // goes to the live pod: none waits on the stopped one (504) or fails (502).
    const deadline = Date.now() + 20_000;
    let settled = 0;
    while (settled < 10) {
      assert.ok(Date.now() < deadline, `still answered by ${stopped.name} or failing`);
      const r = await curl();
      const pod =
        r.code === 0 && r.status === '200' ? (JSON.parse(r.body) as { pod: string }).pod : null;
      if (pod === alive.name) settled++;
      else {
        settled = 0;
        await sleep(250);
      }
    }
  });

  /** curl from the client host to worker-1's ingress NodePort: the body and the status. */
  async function curlBlog(nodePort: string, timeoutSeconds: number) {
    const r = await kubewire(lab, [
      'exec',
      '--host',
      'client',
      '--',
      'curl',
      '-sS',
      '-m',
      String(timeoutSeconds),
      '-w',
      '\\n%{http_code}',
      `http://10.1.110.102:${nodePort}/blog/hello`,
    ]);
    const nl = r.stdout.lastIndexOf('\n');
    return { ...r, body: r.stdout.slice(0, nl), status: r.stdout.slice(nl + 1) };
  }

  async function ingressNodePort(): Promise<string> {
    const saved = await kubewireOk(lab, ['iptables-save', '--node', 'worker-1', '-t', 'nat']);
    const nodePort =
      /-A KUBE-NODEPORTS -p tcp -m comment --comment "ingress-nginx\/ingress-nginx-controller:http" -m tcp --dport (\d+)/.exec(
        saved,
      )?.[1];
    assert.ok(nodePort, saved);
    return nodePort;
  }
});
