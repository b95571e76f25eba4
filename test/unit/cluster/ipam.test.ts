import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cidrTextContains } from '../../../src/cluster/index.js';
import { build, buildErrors, deployment, findPod, ipPool, labNodes, node, pod } from './helpers.js';

const PIN = 'cni.projectcalico.org/ipAddrs';
const on = (nodeName: string, name: string, pin?: string) =>
  pod(name, { spec: { nodeName }, ...(pin ? { annotations: { [PIN]: `["${pin}"]` } } : {}) });

describe('IPAM', () => {
  it('tunl0 takes the first address of the first block; pods get the next ones in order', () => {
    const state = build(
      ...labNodes(),
      on('worker-1', 'c'),
      on('worker-1', 'a'),
      on('worker-1', 'b'),
    );
    const w1 = state.nodes.find((n) => n.name === 'worker-1')!;
    assert.deepEqual(w1.blocks, ['192.168.104.64/26']);
    assert.equal(w1.tunnelAddress, '192.168.104.64');
    assert.equal(w1.ipipMode, 'Always');
    assert.deepEqual(
      ['a', 'b', 'c'].map((n) => findPod(state, 'default', n).ip),
      ['192.168.104.65', '192.168.104.66', '192.168.104.67'],
    );
  });

  it('pinned addresses come first; the others skip them', () => {
    const state = build(
      ...labNodes(),
      on('worker-2', 'frontend', '192.168.8.193'),
      on('worker-2', 'app'),
    );
    assert.equal(findPod(state, 'default', 'frontend').ip, '192.168.8.193');
    assert.equal(findPod(state, 'default', 'app').ip, '192.168.8.194');
    assert.equal(findPod(state, 'default', 'frontend').borrowed, undefined);
  });

  it("an address pinned in another node's block is borrowed", () => {
    const state = build(...labNodes(), on('worker-1', 'stray', '192.168.8.230'));
    const p = findPod(state, 'default', 'stray');
    assert.equal(p.ip, '192.168.8.230');
    assert.equal(p.borrowed, true);
    assert.deepEqual(state.nodes.find((n) => n.name === 'worker-1')!.blocks, ['192.168.104.64/26']);
  });

  it("an address pinned in an unclaimed block claims that block for the pod's node", () => {
    const state = build(...labNodes(), on('worker-1', 'far', '192.168.200.10'));
    assert.deepEqual(state.nodes.find((n) => n.name === 'worker-1')!.blocks, [
      '192.168.104.64/26',
      '192.168.200.0/26',
    ]);
    assert.equal(findPod(state, 'default', 'far').borrowed, undefined);
  });

  it('refuses pins outside every pool, on tunl0, or taken by another pod', () => {
    const errors = buildErrors(
      ...labNodes(),
      on('worker-1', 'outside', '10.5.0.1'),
      on('worker-1', 'tunnel', '192.168.104.64'),
      on('worker-1', 'first', '192.168.104.80'),
      on('worker-2', 'second', '192.168.104.80'),
    );
    assert.deepEqual(errors, [
      'test.yaml document 4 (Pod default/outside): metadata.annotations["cni.projectcalico.org/ipAddrs"]: address 10.5.0.1 is not in any enabled IP pool (default-ipv4-ippool 192.168.0.0/16)',
      'test.yaml document 5 (Pod default/tunnel): metadata.annotations["cni.projectcalico.org/ipAddrs"]: address 192.168.104.64 is already the tunl0 address of node worker-1',
      'test.yaml document 7 (Pod default/second): metadata.annotations["cni.projectcalico.org/ipAddrs"]: address 192.168.104.80 is already assigned to pod default/first',
    ]);
  });

  it('refuses a pinned address in a Deployment with several replicas, naming the pod', () => {
    const errors = buildErrors(
      ...labNodes(),
      deployment('db', 2, { annotations: { [PIN]: '["192.168.8.223"]' } }),
    );
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!,
      /^test\.yaml document 4 \(Deployment default\/db\): spec\.template\.metadata\.annotations\["cni\.projectcalico\.org\/ipAddrs"\]: pod default\/db-[a-z0-9]+-[a-z0-9]{5}: address 192\.168\.8\.223 is already assigned to pod default\/db-.*; a pinned address fits one pod only/,
    );
    const ok = build(
      ...labNodes(),
      deployment('db', 1, { annotations: { [PIN]: '["192.168.8.223"]' } }),
    );
    assert.equal(ok.pods[0]!.ip, '192.168.8.223');
  });

  it('adds a second block when the first fills', () => {
    const pods = Array.from({ length: 70 }, (_, i) =>
      on('worker-1', `p${String(i).padStart(2, '0')}`),
    );
    const state = build(...labNodes(), ...pods);
    const w1 = state.nodes.find((n) => n.name === 'worker-1')!;
    assert.equal(w1.blocks.length, 2);
    assert.equal(w1.blocks[0], '192.168.104.64/26');
    const second = w1.blocks[1]!;
    assert.match(second, /^192\.168\.\d+\.\d+\/26$/);
    assert.ok(!state.nodes.some((n) => n.name !== 'worker-1' && n.blocks.includes(second)));
    assert.equal(findPod(state, 'default', 'p62').ip, '192.168.104.127');
    const p63 = findPod(state, 'default', 'p63');
    assert.ok(cidrTextContains(second, p63.ip!));
    assert.equal(p63.ip, second.split('/')[0]);
    const ips = new Set(state.pods.map((p) => p.ip));
    assert.equal(ips.size, 70);
  });

  it('nodes without podCIDR get a hashed, stable, free block', () => {
    const nodes = [node('a', '10.0.0.1'), node('b', '10.0.0.2'), node('c', '10.0.0.3')];
    const one = build(...nodes);
    const two = build(...nodes, node('d', '10.0.0.4'));
    for (const n of one.nodes) {
      assert.equal(n.blocks.length, 1);
      assert.match(n.blocks[0]!, /^192\.168\.\d+\.(0|64|128|192)\/26$/);
      assert.equal(n.tunnelAddress, n.blocks[0]!.split('/')[0]);
      assert.deepEqual(two.nodes.find((m) => m.name === n.name)!.blocks, n.blocks);
    }
    assert.equal(new Set(two.nodes.map((n) => n.blocks[0])).size, 4);
  });

  it('probes past a taken block', () => {
    const first = build(node('b', '10.0.0.2')).nodes[0]!.blocks[0]!;
    const state = build(node('a', '10.0.0.1', { podCIDR: first }), node('b', '10.0.0.2'));
    const b = state.nodes.find((n) => n.name === 'b')!;
    assert.notEqual(b.blocks[0], first);
  });

  it('a pool with ipipMode Never gives no tunnel address; pods start at the block base', () => {
    const state = build(
      ipPool('flat', { cidr: '10.244.0.0/16' }),
      node('a', '10.0.0.1', { podCIDR: '10.244.3.0/26' }),
      on('a', 'p'),
    );
    assert.equal(state.nodes[0]!.tunnelAddress, null);
    assert.equal(state.nodes[0]!.ipipMode, 'Never');
    assert.equal(state.pods[0]!.ip, '10.244.3.0');
  });

  it('pool nodeSelector decides which pool serves a node; disabled pools serve none', () => {
    const state = build(
      ipPool('zone-a', {
        cidr: '10.10.0.0/16',
        ipipMode: 'CrossSubnet',
        nodeSelector: "zone == 'a'",
      }),
      ipPool('zone-b', { cidr: '10.20.0.0/16', ipipMode: 'Always', nodeSelector: "zone == 'b'" }),
      ipPool('old', { cidr: '10.30.0.0/16', disabled: true }),
      node('na', '10.0.0.1', { labels: { zone: 'a' } }),
      node('nb', '10.0.0.2', { labels: { zone: 'b' } }),
      node('nc', '10.0.0.3', { labels: { zone: 'c' } }),
      on('nc', 'orphan'),
    );
    const [na, nb, nc] = state.nodes;
    assert.ok(cidrTextContains('10.10.0.0/16', na!.tunnelAddress!));
    assert.equal(na!.ipipMode, 'CrossSubnet');
    assert.ok(cidrTextContains('10.20.0.0/16', nb!.tunnelAddress!));
    assert.deepEqual(nc!.blocks, []);
    const orphan = findPod(state, 'default', 'orphan');
    assert.equal(orphan.phase, 'Pending');
    assert.equal(orphan.pendingReason, 'IPAM: no enabled IP pool selects node nc');
  });

  it('podCIDR outside the pools is ignored with a warning; two nodes in one block are refused', () => {
    const state = build(node('a', '10.0.0.1', { podCIDR: '10.244.1.0/24' }));
    assert.match(
      state.warnings[0]!,
      /\(Node a\): spec\.podCIDR 10\.244\.1\.0\/24 is not inside an enabled IP pool that selects this node; ignored/,
    );
    const errors = buildErrors(
      node('a', '10.0.0.1', { podCIDR: '192.168.1.0/26' }),
      node('b', '10.0.0.2', { podCIDR: '192.168.1.0/26' }),
    );
    assert.deepEqual(errors, [
      'test.yaml document 2 (Node b): spec.podCIDR: spec.podCIDR 192.168.1.0/26: block 192.168.1.0/26 already belongs to node a',
    ]);
  });

  it('borrows from another node when the pool has no free block, and leaves a pod Pending when nothing is free', () => {
    const pool = ipPool('tiny', { cidr: '10.10.0.0/27', blockSize: 28, ipipMode: 'Always' });
    const state = build(
      pool,
      node('a', '10.0.0.1'),
      node('b', '10.0.0.2'),
      node('c', '10.0.0.3'),
      on('c', 'late'),
    );
    const c = state.nodes.find((n) => n.name === 'c')!;
    assert.deepEqual(c.blocks, []);
    assert.equal(c.tunnelAddress, null);
    assert.ok(state.warnings.some((w) => /\(Node c\): IP pool tiny has no free block/.test(w)));
    const late = findPod(state, 'default', 'late');
    assert.equal(late.borrowed, true);
    assert.ok(cidrTextContains('10.10.0.0/27', late.ip!));

    const single = ipPool('single', { cidr: '10.10.0.0/28', blockSize: 28, ipipMode: 'Always' });
    const many = Array.from({ length: 16 }, (_, i) => on('a', `p${String(i).padStart(2, '0')}`));
    const full = build(single, node('a', '10.0.0.1'), ...many);
    assert.equal(findPod(full, 'default', 'p14').ip, '10.10.0.15');
    const last = findPod(full, 'default', 'p15');
    assert.equal(last.phase, 'Pending');
    assert.equal(last.nodeName, 'a');
    assert.equal(last.pendingReason, 'IPAM: no free address in IP pool(s) single');
  });

  it('assignment order: DaemonSet pods, then by replica index, namespace, owner and name', () => {
    const state = build(
      ...labNodes(),
      deployment('zeta', 1, { podSpec: { nodeName: 'worker-1' } }),
      deployment('alpha', 2, { podSpec: { nodeName: 'worker-1' } }),
      on('worker-1', 'bare'),
      {
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: { name: 'ds', namespace: 'z-system' },
        spec: {
          selector: { matchLabels: { a: 'b' } },
          template: {
            metadata: { labels: { a: 'b' } },
            spec: { containers: [{ name: 'c', image: 'i' }] },
          },
        },
      },
    );
    const ipOf = (pred: (p: (typeof state.pods)[number]) => boolean) =>
      state.pods.filter((p) => p.nodeName === 'worker-1').find(pred)!.ip;
    assert.equal(
      ipOf((p) => p.owner?.name === 'ds'),
      '192.168.104.65',
    );
    assert.equal(
      ipOf((p) => p.owner?.name === 'alpha' && p.ownerIndex === 0),
      '192.168.104.66',
    );
    assert.equal(
      ipOf((p) => p.name === 'bare'),
      '192.168.104.67',
    );
    assert.equal(
      ipOf((p) => p.owner?.name === 'zeta'),
      '192.168.104.68',
    );
    assert.equal(
      ipOf((p) => p.owner?.name === 'alpha' && p.ownerIndex === 1),
      '192.168.104.69',
    );
  });
});
