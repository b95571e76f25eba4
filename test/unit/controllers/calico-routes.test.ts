import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildClusterState, loadManifests, parseManifestText } from '../../../src/cluster/index.js';
import { calicoRoutes, type CalicoRoute } from '../../../src/controllers/calico-routes.js';
import { ipv4ToString } from '../../../src/packet/addr.js';
import { repoRoot } from '../../integration/lab-harness.js';

const render = (r: CalicoRoute) =>
  r.type === 'blackhole'
    ? `blackhole ${ipv4ToString(r.dst)}/${r.prefixLen}`
    : `${ipv4ToString(r.dst)}/${r.prefixLen} via ${ipv4ToString(r.gateway)} dev ${r.via}`;

const referenceDocs = () =>
  loadManifests([
    join(repoRoot, 'nodes'),
    join(repoRoot, 'compose', 'manifests', '00-cluster.yaml'),
  ]);

function withPoolMode(mode: string) {
  const docs = referenceDocs().map((d) => {
    const o = d.object as { kind?: string; spec?: Record<string, unknown> };
    return o.kind === 'IPPool'
      ? { ...d, object: { ...o, spec: { ...o.spec, ipipMode: mode } } }
      : d;
  });
  return buildClusterState(docs);
}

describe('calicoRoutes (reference/dataplane.md §2.4)', () => {
  test('IPIP Always: remote blocks via tunl0, own block blackholed', () => {
    const routes = calicoRoutes(buildClusterState(referenceDocs()), 'worker-1', 24).map(render);
    assert.deepEqual(routes, [
      'blackhole 192.168.104.64/26',
      '192.168.165.192/26 via 10.1.110.108 dev tunl0',
      '192.168.8.192/26 via 10.1.110.107 dev tunl0',
    ]);
  });

  test('CrossSubnet: nodes in our underlay subnet are routed natively, others through tunl0', () => {
    const state = withPoolMode('CrossSubnet');
    assert.deepEqual(calicoRoutes(state, 'worker-1', 24).map(render).slice(1), [
      '192.168.165.192/26 via 10.1.110.108 dev underlay',
      '192.168.8.192/26 via 10.1.110.107 dev underlay',
    ]);
    // With a /30 underlay prefix the other nodes are in other subnets.
    assert.deepEqual(calicoRoutes(state, 'worker-1', 30).map(render).slice(1), [
      '192.168.165.192/26 via 10.1.110.108 dev tunl0',
      '192.168.8.192/26 via 10.1.110.107 dev tunl0',
    ]);
  });

  test('Never: native routes everywhere', () => {
    const routes = calicoRoutes(withPoolMode('Never'), 'worker-2', 24).map(render);
    assert.ok(
      routes.every((r) => !r.includes('tunl0')),
      routes.join('\n'),
    );
  });

  test("a remote pod's borrowed address gets a /32 route to its node", () => {
    const pod = parseManifestText(
      `apiVersion: v1
kind: Pod
metadata:
  name: borrower
  annotations:
    cni.projectcalico.org/ipAddrs: '["192.168.104.100"]'
spec:
  nodeName: worker-2
  containers: [{ name: c, image: x }]
`,
      'pod.yaml',
    );
    const state = buildClusterState([...referenceDocs(), ...pod]);
    assert.ok(state.pods.find((p) => p.name === 'borrower')?.borrowed);
    const routes = calicoRoutes(state, 'control-plane', 24).map(render);
    assert.ok(routes.includes('192.168.104.100/32 via 10.1.110.107 dev tunl0'), routes.join('\n'));
    // The node that owns the borrowed pod routes it by the pod's own /32, not here.
    assert.ok(
      !calicoRoutes(state, 'worker-2', 24)
        .map(render)
        .some((r) => r.startsWith('192.168.104.100')),
    );
  });

  test('an unknown node gets no routes', () => {
    assert.deepEqual(calicoRoutes(buildClusterState(referenceDocs()), 'nope', 24), []);
  });
});
