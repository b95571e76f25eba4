import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildClusterState,
  ManifestErrors,
  parseManifestText,
} from '../../../src/cluster/index.js';
import {
  build,
  buildErrors,
  container,
  daemonSet,
  deployment,
  ipPool,
  node,
  pod,
} from './helpers.js';

const PIN = 'cni.projectcalico.org/ipAddrs';

function one(...objects: unknown[]): string {
  const errors = buildErrors(...objects);
  assert.equal(errors.length, 1, `expected one error, got:\n${errors.join('\n')}`);
  return errors[0]!;
}

describe('document shape', () => {
  it('refuses a document that is not an object', () => {
    assert.equal(
      one('just a string'),
      'test.yaml document 1: expected a Kubernetes object (a map with apiVersion and kind), got a string',
    );
  });

  it('refuses missing apiVersion and kind', () => {
    const errors = buildErrors({ metadata: { name: 'x' } });
    assert.deepEqual(errors, [
      'test.yaml document 1: apiVersion: required field is missing or not a string',
      'test.yaml document 1: kind: required field is missing or not a string',
    ]);
  });

  it('skips unknown kinds and unsupported apiVersions with a warning', () => {
    const state = build(
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sa' } },
      { apiVersion: 'extensions/v1beta1', kind: 'Ingress', metadata: { name: 'old' } },
      { apiVersion: 'example.com/v1', kind: 'Foo', metadata: { name: 'foo' } },
    );
    assert.deepEqual(state.warnings, [
      'test.yaml document 1: kind ServiceAccount (apiVersion v1) is not supported, skipped',
      'test.yaml document 2: apiVersion extensions/v1beta1 of kind Ingress is not supported (kubewire reads networking.k8s.io/v1), skipped',
      'test.yaml document 3: kind Foo (apiVersion example.com/v1) is not supported, skipped',
    ]);
    assert.equal(state.ingresses.length, 0);
  });

  it('names List items by their path', () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [pod('ok'), pod('Bad_Name')] };
    assert.match(
      one(list),
      /^test\.yaml document 1 \(Pod default\/Bad_Name\): items\[1\]\.metadata\.name: "Bad_Name" is not a valid DNS-1123 subdomain/,
    );
    assert.equal(
      one({ apiVersion: 'v1', kind: 'List', items: 3 }),
      'test.yaml document 1 (List): items: expected a list of objects',
    );
  });
});

describe('field errors name file, document, object and field', () => {
  it('Deployment replicas (the message format of the issue)', () => {
    const d = deployment('web', -1);
    assert.equal(
      one(d),
      'test.yaml document 1 (Deployment default/web): spec.replicas: expected a non-negative integer',
    );
    assert.equal(
      one(deployment('web', 1.5)),
      'test.yaml document 1 (Deployment default/web): spec.replicas: expected a non-negative integer',
    );
  });

  it('adds the line when the document came from YAML', () => {
    const text = [
      'apiVersion: v1',
      'kind: Namespace',
      'metadata: {name: apps}',
      '---',
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: web',
      '  namespace: apps',
      'spec:',
      '  replicas: "3"',
      '  selector: {matchLabels: {app: web}}',
      '  template:',
      '    metadata: {labels: {app: web}}',
      '    spec:',
      '      containers: [{name: web, image: nginx}]',
    ].join('\n');
    try {
      buildClusterState(parseManifestText(text, 'compose/app.yaml'));
      assert.fail('expected a throw');
    } catch (e) {
      assert.ok(e instanceof ManifestErrors);
      const err = e.errors[0]!;
      assert.equal(
        err.message,
        'compose/app.yaml document 2 (Deployment apps/web): spec.replicas: expected a non-negative integer (line 11)',
      );
      assert.equal(err.file, 'compose/app.yaml');
      assert.equal(err.documentIndex, 2);
      assert.equal(err.kind, 'Deployment');
      assert.equal(err.namespace, 'apps');
      assert.equal(err.objectName, 'web');
      assert.equal(err.fieldPath, 'spec.replicas');
      assert.equal(err.detail, 'expected a non-negative integer');
      assert.equal(err.line, 11);
    }
  });

  it('names', () => {
    assert.match(
      one(pod('Web')),
      /\(Pod default\/Web\): metadata\.name: "Web" is not a valid DNS-1123 subdomain/,
    );
    assert.match(
      one(pod('web', { namespace: 'a.b' })),
      /metadata\.namespace: "a\.b" is not a valid DNS-1123 label/,
    );
    assert.match(
      one(pod('web', { spec: { containers: [{ name: 'A', image: 'x' }] } })),
      /spec\.containers\[0\]\.name: "A" is not a valid DNS-1123 label/,
    );
    assert.match(
      one({ apiVersion: 'v1', kind: 'Pod', metadata: {}, spec: { containers: [container()] } }),
      /test\.yaml document 1 \(Pod\): metadata\.name: required field is missing/,
    );
  });

  it('labels and annotations', () => {
    assert.match(
      one(pod('web', { labels: { app: 'has space' } })),
      /metadata\.labels\.app: label value "has space" is invalid/,
    );
    assert.match(
      one(pod('web', { labels: { 'bad key!': 'x' } })),
      /metadata\.labels\["bad key!"\]: label key "bad key!" is not a valid qualified name/,
    );
    assert.match(
      one(pod('web', { labels: { n: 3 as unknown as string } })),
      /metadata\.labels\.n: expected a string, got number 3/,
    );
  });

  it('containers', () => {
    assert.match(
      one(pod('web', { spec: { containers: [] } })),
      /spec\.containers: must have at least 1 item/,
    );
    assert.match(
      one(pod('web', { spec: { containers: [{ name: 'a' }] } })),
      /spec\.containers\[0\]\.image: required field is missing/,
    );
    assert.match(
      one(
        pod('web', {
          spec: { containers: [container('a', { ports: [{ containerPort: 70000 }] })] },
        }),
      ),
      /spec\.containers\[0\]\.ports\[0\]\.containerPort: expected a port number \(an integer 1-65535\)/,
    );
    assert.match(
      one(
        pod('web', {
          spec: {
            containers: [container('a', { ports: [{ containerPort: 80, protocol: 'HTTP' }] })],
          },
        }),
      ),
      /spec\.containers\[0\]\.ports\[0\]\.protocol: expected one of TCP, UDP, SCTP, got the string "HTTP"/,
    );
    assert.match(
      one(
        pod('web', {
          spec: { containers: [container('a', { env: [{ name: 'PORT', value: 80 }] })] },
        }),
      ),
      /spec\.containers\[0\]\.env\[0\]\.value: expected a string, got number 80/,
    );
    assert.match(
      one(pod('web', { spec: { containers: [container('a'), container('a')] } })),
      /spec\.containers\[1\]\.name: duplicate container name "a" \(also containers\[0\]\)/,
    );
  });

  it('pod spec fields', () => {
    assert.match(
      one(pod('web', { spec: { restartPolicy: 'Sometimes' } })),
      /spec\.restartPolicy: expected one of Always, OnFailure, Never/,
    );
    assert.match(
      one(pod('web', { spec: { dnsPolicy: 'None' } })),
      /spec\.dnsConfig: required when dnsPolicy is None/,
    );
    assert.match(
      one(pod('web', { spec: { hostNetwork: 'yes' } })),
      /spec\.hostNetwork: expected a boolean \(true or false\), got the string "yes"/,
    );
    assert.match(
      one(pod('web', { spec: { tolerations: [{ key: 'a', operator: 'Exists', value: 'v' }] } })),
      /spec\.tolerations\[0\]\.value: must be empty when operator is Exists/,
    );
    assert.match(
      one(pod('web', { spec: { dnsConfig: { nameservers: ['dns'] } } })),
      /spec\.dnsConfig\.nameservers\[0\]: "dns" is not an IPv4 address/,
    );
  });

  it('workload selectors', () => {
    const d = deployment('web', 1);
    (d.spec as { selector: unknown }).selector = { matchLabels: { app: 'other' } };
    assert.equal(
      one(d),
      'test.yaml document 1 (Deployment default/web): spec.template.metadata.labels: `selector` does not match template `labels`',
    );
    const ds = daemonSet('agent');
    (ds.spec as { selector: unknown }).selector = {};
    assert.equal(
      one(ds),
      'test.yaml document 1 (DaemonSet default/agent): spec.selector: empty selector is invalid: it must match the template labels',
    );
    const e = deployment('web', 1);
    (e.spec as { selector: unknown }).selector = {
      matchExpressions: [{ key: 'app', operator: 'In' }],
    };
    assert.match(
      one(e),
      /spec\.selector\.matchExpressions\[0\]\.values: must be non-empty for operator In/,
    );
  });

  it('nodes', () => {
    const n = node('w', '10.0.0.1');
    (n.status as { addresses: unknown[] }).addresses = [{ type: 'Hostname', address: 'w' }];
    assert.equal(
      one(n),
      'test.yaml document 1 (Node w): status.addresses: a Node needs an address of type InternalIP (the node IP)',
    );
    assert.match(
      one(node('w', '10.0.0.300')),
      /\(Node w\): status\.addresses\[0\]\.address: "10\.0\.0\.300" is not an IPv4 address/,
    );
    assert.match(
      one(node('w', '10.0.0.1', { podCIDR: '192.168.1.1/26' })),
      /spec\.podCIDR: "192\.168\.1\.1\/26" has host bits set; did you mean 192\.168\.1\.0\/26\?/,
    );
    assert.match(
      one(node('w', '10.0.0.1', { taints: [{ key: 'k', effect: 'Sometimes' }] })),
      /spec\.taints\[0\]\.effect: expected one of NoSchedule, PreferNoSchedule, NoExecute/,
    );
    const noStatus = node('w', '10.0.0.1');
    delete noStatus.status;
    assert.match(one(noStatus), /\(Node w\): status: required field is missing/);
  });

  it('IP pools', () => {
    assert.match(
      one(ipPool('p', { cidr: '10.244.0.0/16', blockSize: 33 })),
      /\(IPPool p\): spec\.blockSize: IPv4 block size must be between 20 and 32, got 33/,
    );
    assert.match(
      one(ipPool('p', { cidr: '10.244.0.0/24', blockSize: 20 })),
      /spec\.blockSize: block size \/20 is larger than the pool 10\.244\.0\.0\/24/,
    );
    assert.match(
      one(ipPool('p', { cidr: '10.244.0.0/16', ipipMode: 'Sometimes' })),
      /spec\.ipipMode: expected one of Always, CrossSubnet, Never/,
    );
    assert.match(one(ipPool('p', { cidr: 'ten' })), /spec\.cidr: "ten" is not an IPv4 CIDR/);
    assert.match(one(ipPool('p', {})), /spec\.cidr: required field is missing/);
    assert.match(
      one(ipPool('p', { cidr: '10.244.0.0/16', nodeSelector: "zone in {'a'}" })),
      /spec\.nodeSelector: unsupported operator "in" at position 5 .*kubewire supports all\(\)/,
    );
    assert.match(
      one(ipPool('a', { cidr: '10.244.0.0/16' }), ipPool('b', { cidr: '10.244.128.0/17' })),
      /\(IPPool b\): spec\.cidr: 10\.244\.128\.0\/17 overlaps IP pool a \(10\.244\.0\.0\/16\)/,
    );
    assert.match(
      one(ipPool('a', { cidr: '10.96.0.0/16' })),
      /spec\.cidr: 10\.96\.0\.0\/16 overlaps the service subnet 10\.96\.0\.0\/12/,
    );
  });

  it('cluster configuration', () => {
    const cc = (networking: Record<string, unknown>) => ({
      apiVersion: 'kubeadm.k8s.io/v1beta3',
      kind: 'ClusterConfiguration',
      networking,
    });
    assert.match(
      one(cc({ podSubnet: '192.168.0.0/33' })),
      /\(ClusterConfiguration\): networking\.podSubnet: "192\.168\.0\.0\/33" is not an IPv4 CIDR/,
    );
    assert.match(
      one(cc({ dnsDomain: 'Cluster_Local' })),
      /networking\.dnsDomain: "Cluster_Local" is not a valid DNS-1123 subdomain/,
    );
    assert.match(
      one(cc({ podSubnet: '10.0.0.0/8', serviceSubnet: '10.96.0.0/12' })),
      /networking\.serviceSubnet: 10\.96\.0\.0\/12 overlaps the pod subnet 10\.0\.0\.0\/8/,
    );
    const errors = buildErrors(cc({}), cc({}));
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!,
      /test\.yaml document 2 \(ClusterConfiguration\): only one ClusterConfiguration is allowed \(another is in test\.yaml document 1\)/,
    );
  });

  it('pinned address annotation syntax', () => {
    const at = (value: string): string => one(pod('web', { annotations: { [PIN]: value } }));
    assert.match(
      at('192.168.1.5'),
      /metadata\.annotations\["cni\.projectcalico\.org\/ipAddrs"\]: expected a JSON list of addresses/,
    );
    assert.match(at('["192.168.1.5","192.168.1.6"]'), /expected exactly one IPv4 address, got 2/);
    assert.match(at('["fd00::5"]'), /IPv6 address fd00::5 is not supported/);
    assert.match(at('["192.168.1.500"]'), /"192\.168\.1\.500" is not an IPv4 address/);
  });

  it('light validation of kept kinds', () => {
    const svc = (spec: Record<string, unknown>) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web' },
      spec,
    });
    assert.match(
      one(svc({ ports: [{ port: 0 }] })),
      /\(Service default\/web\): spec\.ports\[0\]\.port: expected a port number/,
    );
    assert.match(
      one(svc({ type: 'Balanced' })),
      /spec\.type: expected one of ClusterIP, NodePort, LoadBalancer, ExternalName/,
    );
    assert.match(
      one(svc({ clusterIP: '10.96.0.300' })),
      /spec\.clusterIP: "10\.96\.0\.300" is not an IPv4 address, "None" or empty/,
    );
    assert.match(
      one({ apiVersion: 'v1', kind: 'Service', metadata: { name: '1web' } }),
      /metadata\.name: "1web" is not a valid DNS-1035 label/,
    );
    assert.match(
      one({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: 1 } }),
      /\(ConfigMap default\/c\): data\.a: expected a string/,
    );
    assert.match(
      one({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'np' },
        spec: {},
      }),
      /spec\.podSelector: required field is missing/,
    );
    assert.match(
      one({
        apiVersion: 'metallb.io/v1beta1',
        kind: 'IPAddressPool',
        metadata: { name: 'p', namespace: 'metallb-system' },
        spec: { addresses: [] },
      }),
      /\(IPAddressPool metallb-system\/p\): spec\.addresses: must have at least 1 item/,
    );
  });

  it('duplicates', () => {
    const errors = buildErrors(pod('web'), pod('web'), pod('web', { namespace: 'other' }));
    assert.deepEqual(errors, [
      'test.yaml document 2 (Pod default/web): metadata.name: duplicate Pod default/web (also in test.yaml document 1)',
    ]);
    assert.match(
      one(node('a', '10.0.0.1'), node('b', '10.0.0.1')),
      /\(Node b\): status\.addresses\[0\]\.address: InternalIP 10\.0\.0\.1 is also node a's/,
    );
  });

  it('collects every problem in one throw', () => {
    const errors = buildErrors(
      deployment('web', -1),
      pod('Bad'),
      ipPool('p', { cidr: '10.244.0.0/16', blockSize: 40 }),
      node('w', 'nope'),
    );
    assert.equal(errors.length, 4, errors.join('\n'));
    assert.deepEqual(
      errors.map((e) => e.split(' ').slice(0, 3).join(' ')),
      [
        'test.yaml document 1',
        'test.yaml document 2',
        'test.yaml document 3',
        'test.yaml document 4',
      ],
    );
  });
});

describe('warnings', () => {
  it('env valueFrom, vxlanMode, IPv6 pools', () => {
    const state = build(
      pod('web', {
        spec: {
          containers: [
            container('a', {
              env: [
                { name: 'X', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                { name: 'Y', value: 'y' },
              ],
            }),
          ],
        },
      }),
      ipPool('v4', { cidr: '10.244.0.0/16', vxlanMode: 'Always' }),
      ipPool('v6', { cidr: 'fd00:10::/64' }),
    );
    assert.deepEqual(state.warnings, [
      'test.yaml document 1 (Pod default/web): spec.containers[0].env[0].valueFrom: ignored (kubewire takes env values only); X is unset',
      'test.yaml document 2 (IPPool v4): spec.vxlanMode: Always ignored (kubewire emulates IPIP only)',
      'test.yaml document 3 (IPPool v6): spec.cidr: IPv6 pool fd00:10::/64 skipped (kubewire emulates IPv4)',
    ]);
    assert.deepEqual(state.pods[0]!.containers[0]!.env, [{ name: 'X' }, { name: 'Y', value: 'y' }]);
    assert.deepEqual(
      state.pools.map((p) => p.name),
      ['v4'],
    );
  });

  it('undeclared namespaces are assumed, once, with a warning', () => {
    const state = build(pod('a', { namespace: 'shop' }), pod('b', { namespace: 'shop' }));
    assert.deepEqual(state.warnings, [
      'namespace shop is used but not declared (no Namespace object); assumed to exist',
    ]);
    assert.ok(state.namespaces.includes('shop'));
  });
});
