import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildClusterState, loadManifests, parseManifestText } from '../../../src/cluster/index.js';
import { labTopology, macForAddress } from '../../../src/lab/topology.js';
import { repoRoot } from '../../integration/lab-harness.js';

test('the reference lab topology: underlay /24, router .1 and 10.1.0.1, client 10.1.0.89', () => {
  const state = buildClusterState(loadManifests([join(repoRoot, 'nodes')]));
  const t = labTopology(state);
  assert.deepEqual(t.underlay, { network: '10.1.110.0', prefixLen: 24 });
  assert.deepEqual(t.router, { underlayAddress: '10.1.110.1', clientAddress: '10.1.0.1' });
  assert.equal(t.client.address, '10.1.0.89');
  assert.deepEqual(
    t.nodes.map((n) => [n.name, n.address, n.mac]),
    [
      ['control-plane', '10.1.110.108', '02:42:0a:01:6e:6c'],
      ['worker-1', '10.1.110.102', '02:42:0a:01:6e:66'],
      ['worker-2', '10.1.110.107', '02:42:0a:01:6e:6b'],
    ],
  );
});

test("Docker's MAC scheme", () => {
  assert.equal(macForAddress('172.17.0.2'), '02:42:ac:11:00:02');
});

const node = (name: string, ip: string) => `apiVersion: v1
kind: Node
metadata: { name: ${name} }
status: { addresses: [{ type: InternalIP, address: ${ip} }] }
`;

test('nodes on different /24s are refused with the node named', () => {
  const state = buildClusterState([
    ...parseManifestText(node('a', '10.1.110.5'), 'a.yaml'),
    ...parseManifestText(node('b', '10.1.111.5'), 'b.yaml'),
  ]);
  assert.throws(
    () => labTopology(state),
    /node b \(10\.1\.111\.5\) is not on the underlay 10\.1\.110\.0\/24/,
  );
});

test("a node on the router's address is refused", () => {
  const state = buildClusterState(parseManifestText(node('a', '10.1.110.1'), 'a.yaml'));
  assert.throws(
    () => labTopology(state),
    /node a uses 10\.1\.110\.1, the lab router's underlay address/,
  );
});
