import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { build, container, ipPool, node, pod } from './helpers.js';

describe('defaults', () => {
  it('cluster configuration defaults (kubeadm + Calico) and the default pool', () => {
    const state = build(node('n1', '10.0.0.1'));
    assert.deepEqual(state.config, {
      podSubnet: '192.168.0.0/16',
      serviceSubnet: '10.96.0.0/12',
      dnsDomain: 'cluster.local',
      clusterName: 'kubernetes',
      kubernetesServiceIP: '10.96.0.1',
      clusterDNSIP: '10.96.0.10',
      source: 'default',
    });
    assert.deepEqual(state.pools, [
      {
        name: 'default-ipv4-ippool',
        cidr: '192.168.0.0/16',
        blockSize: 26,
        ipipMode: 'Always',
        natOutgoing: true,
        nodeSelector: 'all()',
        disabled: false,
        source: 'default',
      },
    ]);
    assert.deepEqual(state.namespaces, [
      'default',
      'kube-node-lease',
      'kube-public',
      'kube-system',
    ]);
  });

  it('reads ClusterConfiguration v1beta3 and v1beta4; the default pool follows podSubnet', () => {
    for (const apiVersion of ['kubeadm.k8s.io/v1beta3', 'kubeadm.k8s.io/v1beta4']) {
      const state = build({
        apiVersion,
        kind: 'ClusterConfiguration',
        clusterName: 'lab',
        networking: {
          podSubnet: '10.244.0.0/16,fd00:10:244::/56',
          serviceSubnet: '10.96.0.0/16',
          dnsDomain: 'lab.local',
        },
      });
      assert.equal(state.config.podSubnet, '10.244.0.0/16');
      assert.equal(state.config.serviceSubnet, '10.96.0.0/16');
      assert.equal(state.config.dnsDomain, 'lab.local');
      assert.equal(state.config.clusterName, 'lab');
      assert.equal(state.config.source, 'ClusterConfiguration');
      assert.equal(state.pools[0]!.cidr, '10.244.0.0/16');
      assert.match(
        state.warnings[0]!,
        /networking\.podSubnet: IPv6 subnet fd00:10:244::\/56 ignored/,
      );
    }
  });

  it('IPPool API defaults: blockSize 26, ipipMode Never, natOutgoing false, all()', () => {
    for (const apiVersion of ['crd.projectcalico.org/v1', 'projectcalico.org/v3']) {
      const state = build(ipPool('pool', { cidr: '10.244.0.0/16' }, apiVersion));
      assert.deepEqual(state.pools, [
        {
          name: 'pool',
          cidr: '10.244.0.0/16',
          blockSize: 26,
          ipipMode: 'Never',
          natOutgoing: false,
          nodeSelector: 'all()',
          disabled: false,
          source: 'manifest',
        },
      ]);
    }
  });

  it('pod defaults', () => {
    const state = build(
      node('n1', '10.0.0.1'),
      pod('web', { spec: { containers: [container('a', { ports: [{ containerPort: 8080 }] })] } }),
    );
    const p = state.pods[0]!;
    assert.equal(p.namespace, 'default');
    assert.equal(p.dnsPolicy, 'ClusterFirst');
    assert.equal(p.restartPolicy, 'Always');
    assert.equal(p.hostNetwork, false);
    assert.deepEqual(p.containers[0]!.ports, [{ containerPort: 8080, protocol: 'TCP' }]);
    assert.deepEqual(p.containers[0]!.env, []);
    assert.match(p.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(p.owner, undefined);
    assert.equal(p.ownerIndex, undefined);
  });

  it('keeps pod fields: hostname, subdomain, dnsConfig, command, args, readinessProbe', () => {
    const probe = { httpGet: { path: '/healthz', port: 8080 } };
    const state = build(
      node('n1', '10.0.0.1'),
      pod('web', {
        spec: {
          hostname: 'h',
          subdomain: 'sub',
          dnsPolicy: 'None',
          dnsConfig: {
            nameservers: ['10.96.0.10'],
            searches: ['a.b'],
            options: [{ name: 'ndots', value: '2' }],
          },
          restartPolicy: 'Never',
          containers: [
            container('a', { command: ['sh'], args: ['-c', 'sleep 1'], readinessProbe: probe }),
          ],
        },
      }),
    );
    const p = state.pods[0]!;
    assert.equal(p.hostname, 'h');
    assert.equal(p.subdomain, 'sub');
    assert.equal(p.dnsPolicy, 'None');
    assert.deepEqual(p.dnsConfig, {
      nameservers: ['10.96.0.10'],
      searches: ['a.b'],
      options: [{ name: 'ndots', value: '2' }],
    });
    assert.equal(p.restartPolicy, 'Never');
    assert.deepEqual(p.containers[0]!.command, ['sh']);
    assert.deepEqual(p.containers[0]!.args, ['-c', 'sleep 1']);
    assert.deepEqual(p.containers[0]!.readinessProbe, probe);
  });

  it('nodes get the kubelet well-known labels unless they set them', () => {
    const state = build(
      node('n1', '10.0.0.1', { labels: { 'kubernetes.io/arch': 'arm64', zone: 'a' } }),
    );
    assert.deepEqual(state.nodes[0]!.labels, {
      'beta.kubernetes.io/arch': 'amd64',
      'beta.kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'arm64',
      'kubernetes.io/hostname': 'n1',
      'kubernetes.io/os': 'linux',
      zone: 'a',
    });
  });

  it('spec.unschedulable shows as the unschedulable taint', () => {
    const state = build(node('n1', '10.0.0.1', { unschedulable: true }));
    assert.deepEqual(state.nodes[0]!.taints, [
      { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' },
    ]);
  });

  it('null fields count as absent', () => {
    const p = pod('web');
    (p.metadata as Record<string, unknown>).labels = null;
    (p.spec as Record<string, unknown>).nodeSelector = null;
    const state = build(node('n1', '10.0.0.1'), p);
    assert.deepEqual(state.pods[0]!.labels, {});
  });

  it('keeps Services, ConfigMaps, Secrets, Ingresses, IngressClasses, NetworkPolicies and MetalLB objects, sorted, namespace defaulted', () => {
    const state = build(
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web' },
        spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'api', namespace: 'default' },
        spec: { ports: [{ port: 80, targetPort: 8080 }] },
      },
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'cfg', namespace: 'kube-system' },
        data: { Corefile: '.:53 {}' },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 's' },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': 'eA==' },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: { name: 'ing' },
        spec: { ingressClassName: 'nginx', rules: [{ host: 'a.example' }] },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressClass',
        metadata: { name: 'nginx' },
        spec: { controller: 'k8s.io/ingress-nginx' },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'deny' },
        spec: { podSelector: {} },
      },
      {
        apiVersion: 'metallb.io/v1beta1',
        kind: 'IPAddressPool',
        metadata: { name: 'lb', namespace: 'metallb-system' },
        spec: { addresses: ['10.1.110.105/32'] },
      },
      {
        apiVersion: 'metallb.io/v1beta1',
        kind: 'L2Advertisement',
        metadata: { name: 'l2', namespace: 'metallb-system' },
      },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'metallb-system' } },
    );
    assert.deepEqual(
      state.services.map((s) => `${s.namespace}/${s.name}`),
      ['default/api', 'default/kubernetes', 'default/web'],
    );
    assert.deepEqual(state.services[2]!.ports, [
      { name: '', protocol: 'TCP', port: 80, targetPort: 'http', nodePort: null },
    ]);
    assert.equal(state.configMaps[0]!.metadata.namespace, 'kube-system');
    assert.equal(state.secrets.length, 1);
    assert.equal(state.ingresses.length, 1);
    assert.equal(state.ingressClasses[0]!.metadata.namespace, undefined);
    assert.equal(state.networkPolicies.length, 1);
    assert.equal(state.metallb.ipAddressPools[0]!.metadata.name, 'lb');
    assert.equal(state.metallb.l2Advertisements[0]!.metadata.name, 'l2');
    assert.deepEqual(state.warnings, []);
  });
});
