/**
 * From manifests to answers: src/cluster's state and endpoint derivation feed the DNS
 * (viewFromClusterState), including pod hostname/subdomain and the coredns ConfigMap.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildClusterState, parseManifestText } from '../../../src/cluster/index.js';
import { viewFromClusterState } from '../../../src/dns/kubernetes/view.js';
import { startStandalone } from '../../../src/dns/standalone.js';
import { TYPE } from '../../../src/dns/wire.js';
import { ask, BASE_COREFILE, buildServer, decode, quietLogger } from './helpers.js';

const MANIFESTS = `apiVersion: v1
kind: Node
metadata: {name: worker-1}
status: {addresses: [{type: InternalIP, address: 10.1.110.102}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: pet-0
  namespace: default
  labels: {app: pets}
  annotations: {cni.projectcalico.org/ipAddrs: '["192.168.1.10"]'}
spec:
  hostname: pet-0
  subdomain: pets
  containers: [{name: c, image: nginx, ports: [{name: web, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: pets, namespace: default}
spec:
  clusterIP: None
  selector: {app: pets}
  ports: [{name: web, port: 80, targetPort: web}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        kubernetes cluster.local
    }
`;

describe('cluster state → DNS view', () => {
  const state = buildClusterState(parseManifestText(MANIFESTS, 'm.yaml'));
  const view = viewFromClusterState(state, { modified: 1 });

  it('carries the Corefile of the coredns ConfigMap, the domain and the pods', () => {
    assert.match(view.corefile!, /kubernetes cluster\.local/);
    assert.equal(view.dnsDomain, 'cluster.local');
    assert.deepEqual(view.pods, [{ namespace: 'default', name: 'pet-0', ip: '192.168.1.10' }]);
  });

  it('answers the pod hostname/subdomain record and the SRV with the target port', async () => {
    const s = buildServer(BASE_COREFILE, view);
    assert.deepEqual(
      decode((await ask(s, 'pet-0.pets.default.svc.cluster.local', TYPE.A))!).answer,
      ['pet-0.pets.default.svc.cluster.local. 5 IN A 192.168.1.10'],
    );
    assert.deepEqual(
      decode((await ask(s, '_web._tcp.pets.default.svc.cluster.local', TYPE.SRV))!).answer,
      [
        '_web._tcp.pets.default.svc.cluster.local. 5 IN SRV 0 100 8080 pet-0.pets.default.svc.cluster.local.',
      ],
    );
    // The kubernetes Service exists in every state.
    assert.equal(
      decode((await ask(s, 'kubernetes.default.svc.cluster.local', TYPE.A))!).rcode,
      'NOERROR',
    );
  });

  it('a node that is down makes its pods not ready: the headless name becomes NXDOMAIN', async () => {
    const down = viewFromClusterState(state, { modified: 1, downNodes: new Set(['worker-1']) });
    const s = buildServer(BASE_COREFILE, down);
    assert.equal(
      decode((await ask(s, 'pets.default.svc.cluster.local', TYPE.A))!).rcode,
      'NXDOMAIN',
    );
  });

  it("follows the node agent's down-nodes file (the CoreDNS pods' --down-nodes)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-dns-down-'));
    const down = join(dir, 'down-nodes.json');
    writeFileSync(join(dir, 'm.yaml'), MANIFESTS);
    writeFileSync(join(dir, 'Corefile'), BASE_COREFILE);
    writeFileSync(down, '{"downNodes":[]}\n');
    const dns = await startStandalone({
      manifests: [join(dir, 'm.yaml')],
      downNodesFile: down,
      corefileFile: join(dir, 'Corefile'),
      listen: { host: '127.0.0.1', port: 0 },
      udpIo: 'dgram',
      logger: quietLogger,
      pollMs: 60_000,
    });
    const rcode = async () =>
      decode((await ask(dns.service.server!, 'pets.default.svc.cluster.local', TYPE.A))!).rcode;
    try {
      assert.equal(await rcode(), 'NOERROR');
      writeFileSync(down, '{"downNodes":["worker-1"]}\n');
      assert.ok(dns.refresh());
      assert.equal(await rcode(), 'NXDOMAIN');
      rmSync(down); // missing: every node is up
      assert.ok(dns.refresh());
      assert.equal(await rcode(), 'NOERROR');
    } finally {
      await dns.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
