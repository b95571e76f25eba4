import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildClusterState,
  cidrTextContains,
  parseIPv4,
  type ServiceState,
} from '../../../src/cluster/index.js';
import { build, buildErrors, docs, findService, service, shuffled } from './helpers.js';
import { referenceLab } from './reference-lab.js';

const PORT80 = [{ port: 80 }];
const web = (spec: Record<string, unknown> = {}, name = 'web') =>
  service(name, { selector: { app: 'web' }, ports: PORT80, ...spec });

function clusterConfig(serviceSubnet: string): Record<string, unknown> {
  return {
    apiVersion: 'kubeadm.k8s.io/v1beta3',
    kind: 'ClusterConfiguration',
    networking: { serviceSubnet },
  };
}

/** Builds and expects exactly one error; returns its message. */
function one(...objects: unknown[]): string {
  const errors = buildErrors(...objects);
  assert.equal(errors.length, 1, `expected one error, got:\n${errors.join('\n')}`);
  return errors[0]!;
}

describe('Service validation', () => {
  const where = 'test.yaml document 1 (Service default/web): ';
  const cases: [string, Record<string, unknown>, string][] = [
    [
      'port out of range',
      {
        ports: [
          { name: 'a', port: 80 },
          { name: 'b', port: 70000 },
        ],
      },
      'spec.ports[1].port: expected a port number (an integer 1-65535)',
    ],
    [
      'duplicate port names',
      {
        ports: [
          { name: 'http', port: 80 },
          { name: 'http', port: 8080 },
        ],
      },
      'spec.ports[1].name: duplicate port name "http" (also spec.ports[0])',
    ],
    [
      'missing port name with more than one port',
      { ports: [{ name: 'http', port: 80 }, { port: 443 }] },
      'spec.ports[1].name: required when the Service has more than one port',
    ],
    [
      'port name not a DNS label',
      { ports: [{ name: 'HTTP', port: 80 }] },
      'spec.ports[0].name: "HTTP" is not a valid DNS-1123 label',
    ],
    [
      'duplicate port and protocol',
      {
        ports: [
          { name: 'a', port: 53, protocol: 'UDP' },
          { name: 'b', port: 53, protocol: 'UDP' },
        ],
      },
      'spec.ports[1]: duplicate port 53/UDP (also spec.ports[0])',
    ],
    [
      'protocol not TCP/UDP/SCTP',
      { ports: [{ port: 80, protocol: 'HTTP' }] },
      'spec.ports[0].protocol: expected one of TCP, UDP, SCTP, got the string "HTTP"',
    ],
    [
      'targetPort a numeric string',
      { ports: [{ port: 80, targetPort: '8080' }] },
      'spec.ports[0].targetPort: "8080" is not a valid port name',
    ],
    [
      'targetPort neither number nor port name',
      { ports: [{ port: 80, targetPort: 80.5 }] },
      'spec.ports[0].targetPort: expected a port number (1-65535) or a port name',
    ],
    [
      'no ports',
      { ports: [] },
      'spec.ports: required: a Service needs at least one port (unless it is headless or ExternalName)',
    ],
    [
      'NodePort outside 30000-32767',
      { type: 'NodePort', ports: [{ port: 80, nodePort: 8080 }] },
      'spec.ports[0].nodePort: 8080 is outside the NodePort range 30000-32767',
    ],
    [
      'nodePort on a ClusterIP Service',
      { ports: [{ port: 80, nodePort: 30080 }] },
      "spec.ports[0].nodePort: may not be used when `type` is 'ClusterIP'",
    ],
    [
      'duplicate nodePort and protocol',
      {
        type: 'NodePort',
        ports: [
          { name: 'a', port: 80, nodePort: 30080 },
          { name: 'b', port: 81, nodePort: 30080 },
        ],
      },
      'spec.ports[1].nodePort: duplicate nodePort 30080/TCP (also spec.ports[0])',
    ],
    [
      'selector value not a string',
      { selector: { app: 1 } },
      'spec.selector.app: expected a string, got number 1',
    ],
    ['selector a list', { selector: ['app'] }, 'spec.selector: expected a map, got a list'],
    [
      'selector key invalid',
      { selector: { 'a b': 'x' } },
      'spec.selector["a b"]: label key "a b" is not a valid qualified name',
    ],
    [
      'ExternalName without externalName',
      { type: 'ExternalName', selector: undefined },
      'spec.externalName: required for type ExternalName (the DNS name the Service is an alias for)',
    ],
    [
      'ExternalName with a bad name',
      { type: 'ExternalName', externalName: 'Not_A_Host' },
      'spec.externalName: "Not_A_Host" is not a valid DNS-1123 subdomain',
    ],
    [
      'ExternalName with a clusterIP',
      { type: 'ExternalName', externalName: 'db.example.com', clusterIP: '10.96.5.5' },
      'spec.clusterIP: may not be set for ExternalName services',
    ],
    [
      'headless NodePort',
      { type: 'NodePort', clusterIP: 'None' },
      'spec.clusterIP: may not be "None" for NodePort services',
    ],
    [
      'IPv6 clusterIP',
      { clusterIP: 'fd00::10' },
      'spec.clusterIP: IPv6 address fd00::10 is not supported (kubewire emulates IPv4)',
    ],
    [
      'clusterIPs[0] differs from clusterIP',
      { clusterIP: '10.96.5.5', clusterIPs: ['10.96.5.6'] },
      'spec.clusterIPs[0]: must match spec.clusterIP (10.96.5.5)',
    ],
    [
      'IPv6-only Service',
      { ipFamilies: ['IPv6'] },
      'spec.ipFamilies: IPv6-only Services are not supported (kubewire emulates IPv4)',
    ],
    [
      'externalTrafficPolicy on a ClusterIP Service',
      { externalTrafficPolicy: 'Local' },
      'spec.externalTrafficPolicy: may only be set for externally-accessible services',
    ],
    [
      'healthCheckNodePort without LoadBalancer + Local',
      { type: 'NodePort', externalTrafficPolicy: 'Local', healthCheckNodePort: 30500 },
      "spec.healthCheckNodePort: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
    ],
    [
      'session affinity timeout above a day',
      {
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 90000 } },
      },
      'spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be greater than 0 and at most 86400, got 90000',
    ],
    [
      'externalIP in the loopback range',
      { externalIPs: ['127.0.0.5'] },
      'spec.externalIPs[0]: may not be in the loopback range (127.0.0.0/8)',
    ],
    [
      'externalIP not an address',
      { externalIPs: ['10.1.110.300'] },
      'spec.externalIPs[0]: "10.1.110.300" is not an IPv4 address',
    ],
    [
      'loadBalancerSourceRanges on a ClusterIP Service',
      { loadBalancerSourceRanges: ['203.0.113.0/25'] },
      "spec.loadBalancerSourceRanges: may only be used when `type` is 'LoadBalancer'",
    ],
    [
      'loadBalancerSourceRanges not a CIDR',
      { type: 'LoadBalancer', loadBalancerSourceRanges: ['everyone'] },
      'spec.loadBalancerSourceRanges[0]: "everyone" is not a CIDR such as 203.0.113.0/24',
    ],
    [
      'loadBalancerIP not an address',
      { type: 'LoadBalancer', loadBalancerIP: 'lb' },
      'spec.loadBalancerIP: "lb" is not an IPv4 address',
    ],
  ];
  for (const [title, spec, expected] of cases) {
    it(title, () => {
      const message = one(web(spec));
      assert.ok(
        message.startsWith(where + expected),
        `got:      ${message}\nexpected: ${where}${expected}`,
      );
    });
  }

  it('reports every invalid Service of a file at once, sorted by document', () => {
    const errors = buildErrors(
      web({ ports: [{ port: 0 }] }, 'a'),
      web({ type: 'ExternalName' }, 'b'),
      web({}, 'c'),
    );
    assert.equal(errors.length, 2);
    assert.match(
      errors[0]!,
      /^test\.yaml document 1 \(Service default\/a\): spec\.ports\[0\]\.port/,
    );
    assert.match(errors[1]!, /^test\.yaml document 2 \(Service default\/b\): spec\.externalName/);
  });

  it('warns about what kubewire ignores', () => {
    const state = build(
      web({
        ipFamilies: ['IPv4', 'IPv6'],
        ipFamilyPolicy: 'RequireDualStack',
        clusterIPs: ['10.96.5.5', 'fd00::5'],
        type: 'LoadBalancer',
        loadBalancerSourceRanges: ['fd00::/64', ' 203.0.113.7/25 '],
      }),
    );
    assert.deepEqual(state.warnings, [
      'test.yaml document 1 (Service default/web): spec.clusterIPs[1]: IPv6 address fd00::5 ignored (kubewire emulates IPv4)',
      'test.yaml document 1 (Service default/web): spec.ipFamilies: IPv6 ignored (kubewire emulates IPv4)',
      'test.yaml document 1 (Service default/web): spec.ipFamilyPolicy: RequireDualStack: kubewire emulates IPv4, the Service gets an IPv4 address only',
      'test.yaml document 1 (Service default/web): spec.loadBalancerSourceRanges[0]: IPv6 range fd00::/64 ignored (kubewire emulates IPv4)',
    ]);
    const svc = findService(state, 'default', 'web');
    assert.equal(svc.clusterIP, '10.96.5.5');
    // Space padding and host bits are accepted; the range is kept as its network.
    assert.deepEqual(svc.loadBalancerSourceRanges, ['203.0.113.0/25']);
  });
});

describe('Service defaults', () => {
  it('as the API server applies them (SetDefaults_Service)', () => {
    const state = build(web({}));
    const svc = findService(state, 'default', 'web');
    assert.deepEqual(svc, {
      namespace: 'default',
      name: 'web',
      uid: svc.uid,
      type: 'ClusterIP',
      clusterIP: svc.clusterIP,
      headless: false,
      ports: [{ name: '', protocol: 'TCP', port: 80, targetPort: 80, nodePort: null }],
      selector: { app: 'web' },
      sessionAffinity: 'None',
      sessionAffinityTimeoutSeconds: 10800,
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      publishNotReadyAddresses: false,
      externalIPs: [],
      loadBalancerSourceRanges: [],
      healthCheckNodePort: null,
      labels: {},
      annotations: {},
    } satisfies ServiceState);
    assert.match(svc.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  const cases: [string, Record<string, unknown>, (s: ServiceState) => unknown, unknown][] = [
    [
      'targetPort 0 means port',
      { ports: [{ port: 80, targetPort: 0 }] },
      (s) => s.ports[0]!.targetPort,
      80,
    ],
    [
      'targetPort "" means port',
      { ports: [{ port: 80, targetPort: '' }] },
      (s) => s.ports[0]!.targetPort,
      80,
    ],
    [
      'named targetPort kept',
      { ports: [{ port: 80, targetPort: 'http' }] },
      (s) => s.ports[0]!.targetPort,
      'http',
    ],
    [
      'appProtocol kept',
      { ports: [{ port: 443, appProtocol: 'kubernetes.io/h2c' }] },
      (s) => s.ports[0]!.appProtocol,
      'kubernetes.io/h2c',
    ],
    [
      'ClientIP timeout defaults to 10800',
      { sessionAffinity: 'ClientIP' },
      (s) => s.sessionAffinityTimeoutSeconds,
      10800,
    ],
    [
      'ClientIP timeout as given',
      { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } },
      (s) => [s.sessionAffinity, s.sessionAffinityTimeoutSeconds],
      ['ClientIP', 60],
    ],
    [
      'sessionAffinityConfig ignored with None (the defaulter drops it)',
      { sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } },
      (s) => s.sessionAffinityTimeoutSeconds,
      10800,
    ],
    [
      'NodePort: externalTrafficPolicy Cluster',
      { type: 'NodePort' },
      (s) => s.externalTrafficPolicy,
      'Cluster',
    ],
    [
      'LoadBalancer Local kept',
      { type: 'LoadBalancer', externalTrafficPolicy: 'Local' },
      (s) => s.externalTrafficPolicy,
      'Local',
    ],
    [
      'ClusterIP with externalIPs may be Local',
      { externalIPs: ['10.1.110.200'], externalTrafficPolicy: 'Local' },
      (s) => [s.externalIPs, s.externalTrafficPolicy],
      [['10.1.110.200'], 'Local'],
    ],
    [
      'internalTrafficPolicy Local kept',
      { internalTrafficPolicy: 'Local' },
      (s) => s.internalTrafficPolicy,
      'Local',
    ],
    [
      'publishNotReadyAddresses kept',
      { publishNotReadyAddresses: true },
      (s) => s.publishNotReadyAddresses,
      true,
    ],
    ['empty selector is no selector', { selector: {} }, (s) => s.selector, null],
    ['absent selector is null', { selector: undefined }, (s) => s.selector, null],
    [
      'selector sorted',
      { selector: { b: '2', a: '1' } },
      (s) => Object.keys(s.selector!),
      ['a', 'b'],
    ],
    [
      'headless: no ClusterIP',
      { clusterIP: 'None', ports: undefined },
      (s) => [s.headless, s.clusterIP, s.ports],
      [true, null, []],
    ],
    [
      'headless via clusterIPs',
      { clusterIPs: ['None'] },
      (s) => [s.headless, s.clusterIP],
      [true, null],
    ],
    [
      'ExternalName: no ClusterIP, externalName kept',
      {
        type: 'ExternalName',
        externalName: 'db.example.com.',
        selector: undefined,
        ports: undefined,
      },
      (s) => [s.type, s.clusterIP, s.headless, s.externalName, s.ports],
      ['ExternalName', null, false, 'db.example.com.', []],
    ],
    [
      'LoadBalancer keeps loadBalancerIP and loadBalancerClass, assigns nothing',
      { type: 'LoadBalancer', loadBalancerIP: '10.1.110.105', loadBalancerClass: 'metallb' },
      (s) => [s.loadBalancerIP, s.loadBalancerClass],
      ['10.1.110.105', 'metallb'],
    ],
  ];
  for (const [title, spec, get, expected] of cases) {
    it(title, () => {
      const svc = findService(build(web(spec)), 'default', 'web');
      assert.deepEqual(get(svc), expected);
    });
  }

  it('keeps labels and annotations, sorted', () => {
    const s = service(
      'lb',
      { type: 'LoadBalancer', ports: PORT80 },
      {
        labels: { z: '1', a: '2' },
        annotations: { 'metallb.universe.tf/loadBalancerIPs': '10.1.110.105' },
      },
    );
    const svc = findService(build(s), 'default', 'lb');
    assert.deepEqual(Object.keys(svc.labels), ['a', 'z']);
    assert.deepEqual(svc.annotations, { 'metallb.universe.tf/loadBalancerIPs': '10.1.110.105' });
    assert.equal(svc.loadBalancerIP, undefined);
  });
});

describe('the kubernetes Service', () => {
  it('is added as the API server does when the manifests lack it', () => {
    const state = build();
    assert.deepEqual(state.services, [
      {
        namespace: 'default',
        name: 'kubernetes',
        uid: state.services[0]!.uid,
        type: 'ClusterIP',
        clusterIP: '10.96.0.1',
        headless: false,
        ports: [{ name: 'https', protocol: 'TCP', port: 443, targetPort: 6443, nodePort: null }],
        selector: null,
        sessionAffinity: 'None',
        sessionAffinityTimeoutSeconds: 10800,
        externalTrafficPolicy: 'Cluster',
        internalTrafficPolicy: 'Cluster',
        publishNotReadyAddresses: false,
        externalIPs: [],
        loadBalancerSourceRanges: [],
        healthCheckNodePort: null,
        labels: { component: 'apiserver', provider: 'kubernetes' },
        annotations: {},
      },
    ]);
  });

  it('a manifest for it is taken as written and gets the first address', () => {
    const exported = service(
      'kubernetes',
      { ports: [{ name: 'https', port: 443, targetPort: 6443 }] },
      { labels: { component: 'apiserver', provider: 'kubernetes' } },
    );
    const state = build(exported);
    assert.equal(state.services.length, 1);
    assert.equal(state.services[0]!.clusterIP, '10.96.0.1');
    assert.deepEqual(
      build({ ...exported, spec: { clusterIP: '10.96.0.1', ports: PORT80 } }).services[0]!
        .clusterIP,
      '10.96.0.1',
    );
    assert.equal(
      one({ ...exported, spec: { clusterIP: '10.96.0.2', ports: PORT80 } }),
      'test.yaml document 1 (Service default/kubernetes): spec.clusterIP: the kubernetes Service in default always has the first address of the service subnet (10.96.0.1)',
    );
  });

  it('follows the service subnet', () => {
    const state = build(clusterConfig('172.20.0.0/16'));
    assert.equal(state.services[0]!.clusterIP, '172.20.0.1');
  });
});

describe('ClusterIP allocation', () => {
  it('reference lab: kubernetes 10.96.0.1, kube-dns 10.96.0.10, ingress 10.96.179.211, wordpress-db 10.96.23.229', () => {
    const state = build(...referenceLab());
    const ip = (ns: string, name: string) => findService(state, ns, name).clusterIP;
    assert.equal(ip('default', 'kubernetes'), '10.96.0.1');
    assert.equal(ip('kube-system', 'kube-dns'), '10.96.0.10');
    assert.equal(ip('ingress-nginx', 'ingress-nginx-controller'), '10.96.179.211');
    assert.equal(ip('wordpress', 'wordpress-db'), '10.96.23.229');
  });

  it('kube-dns without an address gets the cluster DNS address (the tenth)', () => {
    const dns = service(
      'kube-dns',
      { selector: { 'k8s-app': 'kube-dns' }, ports: [{ port: 53, protocol: 'UDP' }] },
      { namespace: 'kube-system' },
    );
    assert.equal(build(dns).services[1]!.clusterIP, '10.96.0.10');
    assert.equal(build(clusterConfig('10.100.0.0/16'), dns).services[1]!.clusterIP, '10.100.0.10');
    assert.equal(
      one(dns, web({ clusterIP: '10.96.0.10' })),
      'test.yaml document 1 (Service kube-system/kube-dns): spec.clusterIP: kube-dns gets the cluster DNS address 10.96.0.10 when it names none, but Service default/web has it',
    );
  });

  it('hashes <ns>/<name> into the upper band of the subnet (golden values)', () => {
    // Pinned: every agent must compute the same addresses.
    assert.equal(findService(build(web()), 'default', 'web').clusterIP, '10.109.69.33');
    const lab = build(clusterConfig('10.96.0.0/16'), web());
    assert.equal(findService(lab, 'default', 'web').clusterIP, '10.96.68.211');
  });

  it('automatic addresses avoid the static band, the 1st and 10th, and each other', () => {
    const many = Array.from({ length: 200 }, (_, i) => web({}, `svc-${i}`));
    const state = build(clusterConfig('10.96.0.0/16'), ...many);
    const ips = state.services.filter((s) => s.name.startsWith('svc-')).map((s) => s.clusterIP!);
    assert.equal(new Set(ips).size, 200);
    for (const ip of ips) {
      assert.ok(cidrTextContains('10.96.0.0/16', ip), ip);
      // The static band of a /16 is its first 256 usable addresses (10.96.0.1-10.96.1.0).
      assert.ok(parseIPv4(ip)! > parseIPv4('10.96.1.0')!, ip);
      assert.notEqual(ip, '10.96.255.255');
    }
  });

  it('a small subnet: the static band is used once the upper one is full, never the 1st and 10th', () => {
    // A /27 has 30 usable addresses; the static band is 16; 2 are reserved: 28 for Services.
    const many = Array.from({ length: 28 }, (_, i) => web({}, `svc-${i}`));
    const state = build(clusterConfig('10.96.0.0/27'), ...many);
    const ips = state.services.filter((s) => s.name.startsWith('svc-')).map((s) => s.clusterIP!);
    assert.equal(new Set(ips).size, 28);
    assert.ok(!ips.includes('10.96.0.1') && !ips.includes('10.96.0.10'));
    assert.ok(!ips.includes('10.96.0.0') && !ips.includes('10.96.0.31'));
    const errors = buildErrors(clusterConfig('10.96.0.0/27'), ...many, web({}, 'one-more'));
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /no free address in the service subnet 10\.96\.0\.0\/27/);
  });

  it('adding Services does not move existing ones', () => {
    const base = ['web', 'api', 'db', 'cache', 'queue'].map((n) => web({}, n));
    const before = build(...base);
    const extra = Array.from({ length: 50 }, (_, i) => web({}, `extra-${i}`));
    const after = build(...extra, ...base);
    for (const svc of before.services) {
      assert.equal(findService(after, svc.namespace, svc.name).clusterIP, svc.clusterIP, svc.name);
    }
  });

  it('a given address is honoured, and the automatic one that hashed there moves on', () => {
    const auto = findService(build(web()), 'default', 'web').clusterIP!;
    const state = build(web(), web({ clusterIP: auto }, 'pinned'));
    assert.equal(findService(state, 'default', 'pinned').clusterIP, auto);
    assert.notEqual(findService(state, 'default', 'web').clusterIP, auto);
  });

  it('shuffled documents give identical state', () => {
    const objects = [
      ...referenceLab(),
      ...Array.from({ length: 30 }, (_, i) =>
        web({ type: i % 3 === 0 ? 'NodePort' : 'ClusterIP' }, `s-${i}`),
      ),
      web({ type: 'LoadBalancer', externalTrafficPolicy: 'Local' }, 'lb'),
    ];
    const reference = JSON.stringify(buildClusterState(docs(...objects)));
    for (let seed = 1; seed <= 10; seed++) {
      assert.equal(JSON.stringify(buildClusterState(shuffled(docs(...objects), seed))), reference);
    }
  });

  const refused: [string, unknown[], string][] = [
    [
      'outside the service subnet',
      [web({ clusterIP: '10.97.0.5' })],
      'test.yaml document 1 (Service default/web): spec.clusterIP: 10.97.0.5 is not in the service subnet 10.96.0.0/16 (kubeadm networking.serviceSubnet)',
    ],
    [
      'the network address',
      [web({ clusterIP: '10.96.0.0' })],
      'test.yaml document 1 (Service default/web): spec.clusterIP: 10.96.0.0 is the network address of the service subnet 10.96.0.0/16 (kubeadm networking.serviceSubnet)',
    ],
    [
      'the broadcast address',
      [web({ clusterIPs: ['10.96.255.255'] })],
      'test.yaml document 1 (Service default/web): spec.clusterIPs[0]: 10.96.255.255 is the broadcast address of the service subnet 10.96.0.0/16 (kubeadm networking.serviceSubnet)',
    ],
    [
      "the kubernetes Service's address",
      [web({ clusterIP: '10.96.0.1' })],
      'test.yaml document 1 (Service default/web): spec.clusterIP: 10.96.0.1 is already allocated to Service default/kubernetes',
    ],
    [
      'taken by another Service (the later one in namespace/name order is refused)',
      [web({ clusterIP: '10.96.5.5' }, 'b'), web({ clusterIP: '10.96.5.5' }, 'a')],
      'test.yaml document 1 (Service default/b): spec.clusterIP: 10.96.5.5 is already allocated to Service default/a',
    ],
  ];
  for (const [title, objects, expected] of refused) {
    it(`refuses a given address: ${title}`, () => {
      assert.equal(one(...objects, clusterConfig('10.96.0.0/16')), expected);
    });
  }

  it('an invalid ClusterConfiguration does not add address errors for every Service', () => {
    // The broken podSubnet makes the whole ClusterConfiguration invalid; 172.20.5.5 is not
    // in the default service subnet, but that is not worth a second error.
    const errors = buildErrors(
      {
        ...clusterConfig('172.20.0.0/16'),
        networking: { serviceSubnet: '172.20.0.0/16', podSubnet: 'x' },
      },
      web({ clusterIP: '172.20.5.5' }),
    );
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /networking\.podSubnet/);
  });
});

describe('NodePort allocation', () => {
  const nodePorts = (s: ServiceState) => s.ports.map((p) => p.nodePort);

  it('ClusterIP Services get none; NodePort and LoadBalancer get one per port in the upper band', () => {
    const state = build(
      web({}, 'plain'),
      web({ type: 'NodePort' }, 'np'),
      web({ type: 'LoadBalancer' }, 'lb'),
    );
    assert.deepEqual(nodePorts(findService(state, 'default', 'plain')), [null]);
    for (const name of ['np', 'lb']) {
      const [np] = nodePorts(findService(state, 'default', name));
      // The static band of 30000-32767 is its first 86 ports.
      assert.ok(np! >= 30086 && np! <= 32767, `${name}: ${np}`);
    }
    // Golden values.
    assert.deepEqual(nodePorts(findService(state, 'default', 'np')), [31228]);
    assert.deepEqual(nodePorts(findService(state, 'default', 'lb')), [31080]);
  });

  it('given node ports are honoured; ports with the same number share one (initNodePorts)', () => {
    const state = build(
      web(
        {
          type: 'NodePort',
          ports: [
            { name: 'dns', port: 53, protocol: 'UDP' },
            { name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: 30053 },
            { name: 'http', port: 80, nodePort: 30080 },
            { name: 'metrics', port: 9153 },
          ],
        },
        'np',
      ),
      web(
        {
          type: 'NodePort',
          ports: [
            { name: 'a', port: 1 },
            { name: 'b', port: 1, protocol: 'UDP' },
          ],
        },
        'shared',
      ),
    );
    const np = nodePorts(findService(state, 'default', 'np'));
    assert.deepEqual(np.slice(0, 3), [30053, 30053, 30080]);
    assert.ok(np[3]! >= 30086 && np[3] !== 30053 && np[3] !== 30080);
    const [a, b] = nodePorts(findService(state, 'default', 'shared'));
    assert.equal(a, b);
  });

  it('allocateLoadBalancerNodePorts: false allocates none but keeps given ones', () => {
    const state = build(
      web(
        {
          type: 'LoadBalancer',
          allocateLoadBalancerNodePorts: false,
          ports: [
            { name: 'http', port: 80 },
            { name: 'https', port: 443, nodePort: 30443 },
          ],
        },
        'lb',
      ),
    );
    assert.deepEqual(nodePorts(findService(state, 'default', 'lb')), [null, 30443]);
  });

  it('healthCheckNodePort for LoadBalancer + Local only, given or allocated', () => {
    const state = build(
      web({ type: 'LoadBalancer', externalTrafficPolicy: 'Local' }, 'local'),
      web(
        { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 30999 },
        'given',
      ),
      web({ type: 'NodePort', externalTrafficPolicy: 'Local' }, 'np-local'),
      web({ type: 'LoadBalancer' }, 'cluster'),
    );
    const hc = (name: string) => findService(state, 'default', name).healthCheckNodePort;
    assert.ok(hc('local')! >= 30086 && hc('local')! <= 32767);
    assert.notEqual(hc('local'), findService(state, 'default', 'local').ports[0]!.nodePort);
    assert.equal(hc('given'), 30999);
    assert.equal(hc('np-local'), null);
    assert.equal(hc('cluster'), null);
  });

  it('adding Services does not move existing node ports', () => {
    const base = ['a', 'b', 'c'].map((n) => web({ type: 'NodePort' }, n));
    const before = build(...base);
    const after = build(
      ...Array.from({ length: 40 }, (_, i) => web({ type: 'NodePort' }, `x-${i}`)),
      ...base,
    );
    for (const n of ['a', 'b', 'c']) {
      assert.deepEqual(
        nodePorts(findService(after, 'default', n)),
        nodePorts(findService(before, 'default', n)),
      );
    }
  });

  it('a given node port wins over an automatic one that hashed there', () => {
    const [auto] = nodePorts(findService(build(web({ type: 'NodePort' }, 'np')), 'default', 'np'));
    const state = build(
      web({ type: 'NodePort' }, 'np'),
      web({ type: 'NodePort', ports: [{ port: 80, nodePort: auto }] }, 'pinned'),
    );
    assert.deepEqual(nodePorts(findService(state, 'default', 'pinned')), [auto]);
    assert.notDeepEqual(nodePorts(findService(state, 'default', 'np')), [auto]);
  });

  const conflicts: [string, unknown[], string][] = [
    [
      'two Services',
      [
        web({ type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] }, 'b'),
        web({ type: 'LoadBalancer', ports: [{ port: 8080, nodePort: 30080 }] }, 'a'),
      ],
      'test.yaml document 1 (Service default/b): spec.ports[0].nodePort: nodePort 30080 is already allocated to Service default/a',
    ],
    [
      "another Service's healthCheckNodePort",
      [
        web({ type: 'NodePort', ports: [{ port: 80, nodePort: 30999 }] }, 'b'),
        web(
          { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 30999 },
          'a',
        ),
      ],
      'test.yaml document 1 (Service default/b): spec.ports[0].nodePort: nodePort 30999 is already allocated to Service default/a (its healthCheckNodePort)',
    ],
    [
      'two port numbers of one Service, different protocols',
      [
        web(
          {
            type: 'NodePort',
            ports: [
              { name: 'a', port: 80, nodePort: 30080 },
              { name: 'b', port: 81, protocol: 'UDP', nodePort: 30080 },
            ],
          },
          'web',
        ),
      ],
      'test.yaml document 1 (Service default/web): spec.ports[1].nodePort: nodePort 30080 is already allocated to port 80 of this Service',
    ],
  ];
  for (const [title, objects, expected] of conflicts) {
    it(`refuses a node port taken by ${title}`, () => {
      assert.equal(one(...objects), expected);
    });
  }
});
