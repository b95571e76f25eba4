import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { build, daemonSet, deployment, findPod, labNodes, node, pod, podsOf } from './helpers.js';

const CP_TOLERATION = {
  key: 'node-role.kubernetes.io/control-plane',
  operator: 'Exists',
  effect: 'NoSchedule',
};

describe('scheduling', () => {
  it('spec.nodeName places the pod there, NoSchedule taints notwithstanding', () => {
    const state = build(...labNodes(), pod('pinned', { spec: { nodeName: 'control-plane' } }));
    const p = findPod(state, 'default', 'pinned');
    assert.equal(p.nodeName, 'control-plane');
    assert.equal(p.phase, 'Running');
    assert.equal(p.ip, '192.168.165.193');
  });

  it('spec.nodeName of a missing node, or an untolerated NoExecute taint, leaves the pod Pending', () => {
    const state = build(
      node('a', '10.0.0.1', { taints: [{ key: 'maintenance', effect: 'NoExecute' }] }),
      pod('ghost', { spec: { nodeName: 'nowhere' } }),
      pod('evicted', { spec: { nodeName: 'a' } }),
    );
    const ghost = findPod(state, 'default', 'ghost');
    assert.equal(ghost.phase, 'Pending');
    assert.equal(ghost.nodeName, null);
    assert.equal(ghost.ip, null);
    assert.equal(ghost.pendingReason, 'spec.nodeName: node "nowhere" does not exist');
    assert.equal(
      findPod(state, 'default', 'evicted').pendingReason,
      'node "a" has untolerated NoExecute taint {maintenance: }',
    );
  });

  it('nodeSelector picks matching nodes; none matching leaves the pod Pending with the scheduler message', () => {
    const nodes = [
      node('a', '10.0.0.1', { labels: { disk: 'ssd' } }),
      node('b', '10.0.0.2'),
      node('c', '10.0.0.3'),
    ];
    const state = build(
      ...nodes,
      pod('fast', { spec: { nodeSelector: { disk: 'ssd' } } }),
      pod('gpu', { spec: { nodeSelector: { gpu: 'true' } } }),
    );
    assert.equal(findPod(state, 'default', 'fast').nodeName, 'a');
    const gpu = findPod(state, 'default', 'gpu');
    assert.equal(gpu.phase, 'Pending');
    assert.equal(
      gpu.pendingReason,
      "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
    );
  });

  it('required node affinity is honoured', () => {
    const nodes = [
      node('a', '10.0.0.1', { labels: { zone: 'z1' } }),
      node('b', '10.0.0.2', { labels: { zone: 'z2' } }),
    ];
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z2'] }] },
          ],
        },
      },
    };
    const byField = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['a'] }] },
          ],
        },
      },
    };
    const state = build(
      ...nodes,
      deployment('web', 4, { podSpec: { affinity } }),
      pod('one', { spec: { affinity: byField } }),
    );
    assert.deepEqual(
      podsOf(state, 'web').map((p) => p.nodeName),
      ['b', 'b', 'b', 'b'],
    );
    assert.equal(findPod(state, 'default', 'one').nodeName, 'a');
  });

  it('keeps ordinary pods off a tainted control-plane node; a toleration lets them on', () => {
    const state = build(
      ...labNodes(),
      deployment('web', 9),
      deployment('tolerant', 9, { podSpec: { tolerations: [CP_TOLERATION] } }),
    );
    assert.ok(podsOf(state, 'web').every((p) => p.nodeName !== 'control-plane'));
    const counts = new Map<string, number>();
    for (const p of podsOf(state, 'tolerant'))
      counts.set(p.nodeName!, (counts.get(p.nodeName!) ?? 0) + 1);
    assert.deepEqual([...counts.values()], [3, 3, 3]);
  });

  it('explains why nothing fits', () => {
    const state = build(
      ...labNodes(),
      pod('picky', { spec: { nodeSelector: { 'node-role.kubernetes.io/control-plane': '' } } }),
    );
    assert.equal(
      findPod(state, 'default', 'picky').pendingReason,
      "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector.",
    );
    const none = build(pod('alone'));
    assert.equal(none.pods[0]!.pendingReason, 'no nodes available to schedule pods');
  });

  it('spreads Deployment replicas evenly: replica i on node (offset + i) mod n', () => {
    const nodes = ['n1', 'n2', 'n3', 'n4'].map((n, i) => node(n, `10.0.0.${i + 1}`));
    const state = build(...nodes, deployment('web', 10));
    const placed = podsOf(state, 'web').map((p) => p.nodeName!);
    const names = ['n1', 'n2', 'n3', 'n4'];
    const offset = names.indexOf(placed[0]!);
    placed.forEach((n, i) => assert.equal(n, names[(offset + i) % 4]));
    const counts = names.map((n) => placed.filter((p) => p === n).length).sort();
    assert.deepEqual(counts, [2, 2, 3, 3]);
  });

  it('scaling up never moves (or renames, or renumbers) existing replicas', () => {
    const nodes = labNodes();
    const before = build(...nodes, deployment('web', 3), deployment('api', 2));
    const after = build(...nodes, deployment('web', 7), deployment('api', 2));
    const key = (p: { name: string; nodeName: string | null; ip: string | null }) =>
      `${p.name}@${p.nodeName}=${p.ip}`;
    const afterKeys = new Set(after.pods.map(key));
    for (const p of before.pods) assert.ok(afterKeys.has(key(p)), `${key(p)} changed`);
    assert.equal(podsOf(after, 'web').length, 7);
  });

  it('places bare pods by a stable hash of namespace/name', () => {
    const nodes = labNodes();
    const a = build(...nodes, pod('solo'));
    const b = build(
      ...nodes,
      pod('other'),
      pod('solo'),
      pod('third', { namespace: 'kube-system' }),
    );
    assert.equal(findPod(a, 'default', 'solo').nodeName, findPod(b, 'default', 'solo').nodeName);
  });

  it('hostNetwork pods get the node IP and no pool address', () => {
    const state = build(
      ...labNodes(),
      pod('hn', { spec: { hostNetwork: true, nodeName: 'worker-2' } }),
      pod('next', { spec: { nodeName: 'worker-2' } }),
    );
    assert.equal(findPod(state, 'default', 'hn').ip, '10.1.110.107');
    assert.equal(findPod(state, 'default', 'next').ip, '192.168.8.193');
  });
});

describe('DaemonSets', () => {
  it('one pod per eligible node, named <ds>-<5 chars> from the node name', () => {
    const state = build(...labNodes(), daemonSet('agent', { namespace: 'kube-system' }));
    const pods = podsOf(state, 'agent');
    assert.deepEqual(pods.map((p) => p.nodeName).sort(), ['worker-1', 'worker-2']);
    for (const p of pods) {
      assert.match(p.name, /^agent-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
      assert.equal(p.owner?.kind, 'DaemonSet');
      assert.equal(p.ownerIndex, undefined);
      assert.equal(p.labels['pod-template-generation'], '1');
      assert.match(p.labels['controller-revision-hash']!, /^[bcdf456789]+$/);
      assert.ok(p.tolerations.some((t) => t.key === 'node.kubernetes.io/unschedulable'));
    }
    const again = build(...labNodes().reverse(), daemonSet('agent', { namespace: 'kube-system' }));
    assert.deepEqual(
      podsOf(again, 'agent')
        .map((p) => p.name)
        .sort(),
      pods.map((p) => p.name).sort(),
    );
  });

  it('honours nodeSelector and tolerations, and runs on cordoned nodes', () => {
    const nodes = [
      ...labNodes(),
      node('worker-3', '10.1.110.110', { labels: { role: 'edge' }, unschedulable: true }),
    ];
    const state = build(
      ...nodes,
      daemonSet('everywhere', { podSpec: { tolerations: [CP_TOLERATION] } }),
      daemonSet('edge', { podSpec: { nodeSelector: { role: 'edge' } } }),
      deployment('web', 6),
    );
    assert.deepEqual(
      podsOf(state, 'everywhere')
        .map((p) => p.nodeName)
        .sort(),
      ['control-plane', 'worker-1', 'worker-2', 'worker-3'],
    );
    assert.deepEqual(
      podsOf(state, 'edge').map((p) => p.nodeName),
      ['worker-3'],
    );
    assert.ok(
      podsOf(state, 'web').every((p) => p.nodeName === 'worker-1' || p.nodeName === 'worker-2'),
    );
  });
});
