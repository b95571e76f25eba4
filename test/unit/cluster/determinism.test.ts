import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { buildClusterState, parseManifestText } from '../../../src/cluster/index.js';
import { daemonSet, deployment, docs, ipPool, node, pod, service, shuffled } from './helpers.js';
import { referenceLab } from './reference-lab.js';

function manifests(): unknown[] {
  return [
    ...referenceLab(),
    deployment('web', 5),
    deployment('api', 3, { namespace: 'shop' }),
    daemonSet('agent', { namespace: 'kube-system' }),
    pod('solo'),
    pod('big', { spec: { nodeSelector: { 'kubernetes.io/hostname': 'worker-1' } } }),
    node('worker-3', '10.1.110.110'),
    node('worker-4', '10.1.110.111'),
    ipPool('default-ipv4-ippool', {
      cidr: '192.168.0.0/16',
      ipipMode: 'Always',
      natOutgoing: true,
    }),
    ipPool('extra', {
      cidr: '10.50.0.0/16',
      ipipMode: 'Always',
      nodeSelector: "kubernetes.io/hostname == 'worker-4'",
    }),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'unsupported' } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b' }, data: { x: '1' } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' }, data: { x: '1' } },
    service('web', { selector: { app: 'web' }, ports: [{ port: 80 }] }),
    service(
      'web',
      { type: 'NodePort', selector: { app: 'api' }, ports: [{ port: 80 }] },
      { namespace: 'shop' },
    ),
    service('lb', {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Local',
      selector: { app: 'web' },
      ports: [
        { name: 'http', port: 80 },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
    }),
  ];
}

describe('determinism', () => {
  it('a build on top of the previous state gives the state a build from scratch gives', () => {
    const first = docs(...manifests());
    let previous = buildClusterState(first);
    const variants: unknown[][] = [
      // a Deployment scaled, a Service changed, a Pod gone, a node added
      manifests().map((m) =>
        (m as { metadata?: { name?: string } }).metadata?.name === 'web' &&
        (m as { kind?: string }).kind === 'Deployment'
          ? deployment('web', 7)
          : m,
      ),
      manifests().filter((m) => (m as { metadata?: { name?: string } }).metadata?.name !== 'solo'),
      [...manifests(), node('worker-5', '10.1.110.112'), pod('late')],
      manifests(),
      // the same documents again: everything is taken over
      manifests(),
    ];
    for (const [i, objects] of variants.entries()) {
      const input = docs(...objects);
      const incremental = buildClusterState(shuffled(input, i + 1), { previous });
      assert.equal(
        JSON.stringify(incremental),
        JSON.stringify(buildClusterState(input)),
        `step ${i}`,
      );
      previous = incremental;
    }
  });

  it('shuffling the documents gives byte-identical state (30 orders)', () => {
    const input = docs(...manifests());
    const reference = JSON.stringify(buildClusterState(input));
    for (let seed = 1; seed <= 30; seed++) {
      assert.equal(
        JSON.stringify(buildClusterState(shuffled(input, seed))),
        reference,
        `seed ${seed}`,
      );
    }
  });

  it('re-splitting the documents into files in another order changes only warning locations', () => {
    const objects = manifests();
    const withoutWarnings = (text: string, file: string): string => {
      const state = buildClusterState(parseManifestText(text, file));
      return JSON.stringify({ ...state, warnings: state.warnings.length });
    };
    const reference = withoutWarnings(objects.map((o) => stringify(o)).join('---\n'), 'a.yaml');
    for (let seed = 1; seed <= 10; seed++) {
      const text = shuffled(objects, seed)
        .map((o) => stringify(o))
        .join('---\n');
      assert.equal(withoutWarnings(text, `shuffled-${seed}.yaml`), reference, `seed ${seed}`);
    }
  });

  it('the same manifests give the same state twice (no hidden state)', () => {
    assert.equal(
      JSON.stringify(buildClusterState(docs(...manifests()))),
      JSON.stringify(buildClusterState(docs(...manifests()))),
    );
  });

  it('state arrays are sorted', () => {
    const state = buildClusterState(docs(...manifests()));
    const sortedBy = <T>(list: T[], key: (x: T) => string) => {
      const keys = list.map(key);
      assert.deepEqual(keys, [...keys].sort());
    };
    sortedBy(state.nodes, (n) => n.name);
    sortedBy(state.pools, (p) => p.name);
    sortedBy(state.pods, (p) => `${p.namespace}\u0000${p.name}`);
    sortedBy(state.services, (s) => `${s.namespace}\u0000${s.name}`);
    sortedBy(state.configMaps, (c) => `${c.metadata.namespace}\u0000${c.metadata.name}`);
    assert.deepEqual(state.namespaces, [...state.namespaces].sort());
  });
});
