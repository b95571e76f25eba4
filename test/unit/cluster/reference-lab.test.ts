import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { build, findPod, podsOf } from './helpers.js';
import { referenceLab } from './reference-lab.js';

describe('the reference lab', () => {
  const state = build(...referenceLab());

  it('has no warnings', () => {
    assert.deepEqual(state.warnings, []);
  });

  it('config: service CIDR, kubernetes and kube-dns addresses', () => {
    assert.equal(state.config.serviceSubnet, '10.96.0.0/16');
    assert.equal(state.config.kubernetesServiceIP, '10.96.0.1');
    assert.equal(state.config.clusterDNSIP, '10.96.0.10');
    assert.equal(state.pools[0]!.cidr, '192.168.0.0/16');
  });

  it('nodes: blocks from podCIDR, tunl0 on the first address, control plane tainted', () => {
    assert.deepEqual(
      state.nodes.map((n) => [n.name, n.internalIP, n.blocks, n.tunnelAddress, n.ipipMode]),
      [
        ['control-plane', '10.1.110.108', ['192.168.165.192/26'], '192.168.165.192', 'Always'],
        ['worker-1', '10.1.110.102', ['192.168.104.64/26'], '192.168.104.64', 'Always'],
        ['worker-2', '10.1.110.107', ['192.168.8.192/26'], '192.168.8.192', 'Always'],
      ],
    );
    assert.deepEqual(state.nodes[0]!.taints, [
      { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' },
    ]);
  });

  it('CoreDNS pods at their pinned addresses', () => {
    const cp = findPod(state, 'kube-system', 'coredns-control-plane');
    assert.deepEqual(
      [cp.nodeName, cp.ip, cp.phase],
      ['control-plane', '192.168.165.196', 'Running'],
    );
    const w2 = findPod(state, 'kube-system', 'coredns-worker-2');
    assert.deepEqual([w2.nodeName, w2.ip, w2.phase], ['worker-2', '192.168.8.207', 'Running']);
  });

  it('ingress-nginx DaemonSet on the workers: 192.168.104.65 and 192.168.8.193', () => {
    const pods = podsOf(state, 'ingress-nginx-controller');
    assert.deepEqual(pods.map((p) => [p.nodeName, p.ip]).sort(), [
      ['worker-1', '192.168.104.65'],
      ['worker-2', '192.168.8.193'],
    ]);
  });

  it('wordpress frontend and db on worker-2 at 192.168.8.222 and .223', () => {
    const [frontend] = podsOf(state, 'frontend');
    const [db] = podsOf(state, 'db');
    assert.deepEqual([frontend!.nodeName, frontend!.ip], ['worker-2', '192.168.8.222']);
    assert.deepEqual([db!.nodeName, db!.ip], ['worker-2', '192.168.8.223']);
  });

  it('Services at the lab addresses; MetalLB objects kept for later stages', () => {
    assert.deepEqual(
      state.services.map((s) => [`${s.namespace}/${s.name}`, s.clusterIP]),
      [
        ['default/kubernetes', '10.96.0.1'],
        ['ingress-nginx/ingress-nginx-controller', '10.96.179.211'],
        ['kube-system/kube-dns', '10.96.0.10'],
        ['wordpress/wordpress-db', '10.96.23.229'],
      ],
    );
    assert.equal(state.metallb.ipAddressPools.length, 1);
    assert.equal(state.metallb.l2Advertisements.length, 1);
  });

  it('is plain JSON data', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(state)), state);
  });
});
