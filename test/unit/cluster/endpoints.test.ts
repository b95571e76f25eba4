import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  allServiceEndpoints,
  buildClusterState,
  endpointsForService,
  type ClusterState,
  type ServicePortEndpoints,
} from '../../../src/cluster/index.js';
import {
  build,
  container,
  deployment,
  docs,
  findPod,
  findService,
  labNodes,
  node,
  pod,
  service,
} from './helpers.js';
import { referenceLab } from './reference-lab.js';

/** A pod pinned to a node, with labels and container ports. */
function at(
  name: string,
  nodeName: string,
  opts: {
    labels?: Record<string, string>;
    ports?: Record<string, unknown>[];
    namespace?: string;
    spec?: Record<string, unknown>;
  } = {},
): Record<string, unknown> {
  return pod(name, {
    labels: opts.labels ?? { app: 'web' },
    ...(opts.namespace ? { namespace: opts.namespace } : {}),
    spec: {
      nodeName,
      containers: [container('app', opts.ports ? { ports: opts.ports } : {})],
      ...(opts.spec ?? {}),
    },
  });
}

function endpoints(
  state: ClusterState,
  name: string,
  opts: { downNodes?: ReadonlySet<string>; namespace?: string } = {},
): ServicePortEndpoints[] {
  return endpointsForService(state, findService(state, opts.namespace ?? 'default', name), opts);
}

/** `ip:port` (and ` not-ready`) per endpoint, per port. */
function summary(list: ServicePortEndpoints[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const p of list) {
    out[`${p.portName}/${p.protocol}/${p.servicePort}`] = p.endpoints.map(
      (e) => `${e.ip}:${e.port}${e.ready ? '' : ' not-ready'}`,
    );
  }
  return out;
}

describe('endpoints', () => {
  it('pods in the namespace matching the selector, with their fields, sorted by IP', () => {
    const state = build(
      ...labNodes(),
      at('b', 'worker-1'),
      at('a', 'worker-2'),
      at('other', 'worker-1', { labels: { app: 'other' } }),
      at('elsewhere', 'worker-1', { namespace: 'shop' }),
      service('web', { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] }),
    );
    const a = findPod(state, 'default', 'a');
    const b = findPod(state, 'default', 'b');
    assert.deepEqual(endpoints(state, 'web'), [
      {
        portName: '',
        protocol: 'TCP',
        servicePort: 80,
        endpoints: [
          {
            ip: a.ip,
            port: 8080,
            nodeName: 'worker-2',
            podNamespace: 'default',
            podName: 'a',
            ready: true,
          },
          {
            ip: b.ip,
            port: 8080,
            nodeName: 'worker-1',
            podNamespace: 'default',
            podName: 'b',
            ready: true,
          },
        ],
      },
    ]);
    // 192.168.8.x sorts before 192.168.104.x numerically (not as text).
    assert.ok(a.ip!.startsWith('192.168.8.') && b.ip!.startsWith('192.168.104.'));
  });

  const selectorCases: [string, Record<string, string> | undefined, string[]][] = [
    ['one label', { app: 'web' }, ['a', 'b']],
    ['all labels must match', { app: 'web', tier: 'front' }, ['a']],
    ['no match', { app: 'nothing' }, []],
    ['no selector: no endpoints', undefined, []],
  ];
  for (const [title, selector, expected] of selectorCases) {
    it(`selector: ${title}`, () => {
      const state = build(
        ...labNodes(),
        at('a', 'worker-1', { labels: { app: 'web', tier: 'front' } }),
        at('b', 'worker-2', { labels: { app: 'web', tier: 'back' } }),
        service('web', { ...(selector ? { selector } : {}), ports: [{ port: 80 }] }),
      );
      const [port] = endpoints(state, 'web');
      assert.deepEqual(port?.endpoints.map((e) => e.podName).sort() ?? [], expected);
    });
  }

  it('a Pending pod (no IP) is no endpoint', () => {
    const state = build(
      ...labNodes(),
      at('ok', 'worker-1'),
      pod('stuck', { labels: { app: 'web' }, spec: { nodeSelector: { disk: 'ssd' } } }),
      service('web', { selector: { app: 'web' }, ports: [{ port: 80 }] }),
    );
    assert.equal(findPod(state, 'default', 'stuck').phase, 'Pending');
    assert.deepEqual(
      endpoints(state, 'web')[0]!.endpoints.map((e) => e.podName),
      ['ok'],
    );
  });

  it('named targetPort is resolved per pod, by name and protocol', () => {
    const state = build(
      ...labNodes(),
      at('p8080', 'worker-1', { ports: [{ name: 'http', containerPort: 8080 }] }),
      at('p9090', 'worker-2', { ports: [{ name: 'http', containerPort: 9090 }] }),
      at('udp-only', 'worker-1', {
        ports: [{ name: 'http', containerPort: 7070, protocol: 'UDP' }],
      }),
      at('unnamed', 'worker-2', { ports: [{ containerPort: 80 }] }),
      service('web', {
        selector: { app: 'web' },
        ports: [
          { name: 'http', port: 80, targetPort: 'http' },
          { name: 'http-udp', port: 80, protocol: 'UDP', targetPort: 'http' },
          { name: 'raw', port: 81, targetPort: 81 },
        ],
      }),
    );
    const ip = (name: string) => findPod(state, 'default', name).ip!;
    const byPort = endpoints(state, 'web');
    assert.deepEqual(
      byPort[0]!.endpoints.map((e) => [e.podName, e.ip, e.port]),
      [
        ['p9090', ip('p9090'), 9090],
        ['p8080', ip('p8080'), 8080],
      ],
    );
    assert.deepEqual(
      byPort[1]!.endpoints.map((e) => [e.podName, e.port]),
      [['udp-only', 7070]],
    );
    // A number needs no declared container port: every selected pod.
    assert.equal(byPort[2]!.endpoints.length, 4);
  });

  it('downNodes: their pods stay, not ready', () => {
    const state = build(
      ...labNodes(),
      at('a', 'worker-1'),
      at('b', 'worker-2'),
      service('web', { selector: { app: 'web' }, ports: [{ port: 80 }] }),
    );
    const list = endpoints(state, 'web', { downNodes: new Set(['worker-2']) });
    assert.deepEqual(
      list[0]!.endpoints.map((e) => [e.podName, e.ready]),
      [
        ['b', false],
        ['a', true],
      ],
    );
    assert.ok(endpoints(state, 'web')[0]!.endpoints.every((e) => e.ready));
  });

  it('publishNotReadyAddresses: every endpoint is ready', () => {
    const state = build(
      ...labNodes(),
      at('a', 'worker-1'),
      service('web', {
        selector: { app: 'web' },
        publishNotReadyAddresses: true,
        ports: [{ port: 80 }],
      }),
    );
    const list = endpoints(state, 'web', { downNodes: new Set(['worker-1']) });
    assert.deepEqual(
      list[0]!.endpoints.map((e) => e.ready),
      [true],
    );
  });

  it('hostname when the pod subdomain is the Service name', () => {
    const state = build(
      ...labNodes(),
      at('web-0', 'worker-1', { spec: { hostname: 'web-0', subdomain: 'web' } }),
      at('web-1', 'worker-2', { spec: { hostname: 'web-1', subdomain: 'other' } }),
      at('web-2', 'worker-2', { spec: { subdomain: 'web' } }),
      service('web', { clusterIP: 'None', selector: { app: 'web' }, ports: [{ port: 80 }] }),
    );
    const byPod = Object.fromEntries(
      endpoints(state, 'web')[0]!.endpoints.map((e) => [e.podName, e.hostname]),
    );
    assert.deepEqual(byPod, { 'web-0': 'web-0', 'web-1': undefined, 'web-2': undefined });
    const e0 = endpoints(state, 'web')[0]!.endpoints.find((e) => e.podName === 'web-0')!;
    assert.ok('hostname' in e0);
    const e1 = endpoints(state, 'web')[0]!.endpoints.find((e) => e.podName === 'web-1')!;
    assert.ok(!('hostname' in e1));
  });

  it('headless Services with a selector have endpoints; without ports, one address-only entry', () => {
    const state = build(
      ...labNodes(),
      at('a', 'worker-1'),
      service('with-ports', { clusterIP: 'None', selector: { app: 'web' }, ports: [{ port: 80 }] }),
      service('no-ports', { clusterIP: 'None', selector: { app: 'web' } }),
    );
    const ip = findPod(state, 'default', 'a').ip!;
    assert.deepEqual(summary(endpoints(state, 'with-ports')), { '/TCP/80': [`${ip}:80`] });
    assert.deepEqual(summary(endpoints(state, 'no-ports')), { '/TCP/0': [`${ip}:0`] });
  });

  it('ExternalName Services have none, even with a selector', () => {
    const state = build(
      ...labNodes(),
      at('a', 'worker-1'),
      service('ext', {
        type: 'ExternalName',
        externalName: 'db.example.com',
        selector: { app: 'web' },
        ports: [{ port: 80 }],
      }),
    );
    assert.deepEqual(endpoints(state, 'ext'), []);
  });

  it('hostNetwork pods are endpoints with the node IP', () => {
    const state = build(
      ...labNodes(),
      at('host', 'worker-1', { spec: { hostNetwork: true } }),
      service('web', { selector: { app: 'web' }, ports: [{ port: 80 }] }),
    );
    assert.deepEqual(summary(endpoints(state, 'web')), { '/TCP/80': ['10.1.110.102:80'] });
  });

  it('the kubernetes Service: the API server on every control-plane node, :6443', () => {
    const state = build(...labNodes());
    assert.deepEqual(endpoints(state, 'kubernetes'), [
      {
        portName: 'https',
        protocol: 'TCP',
        servicePort: 443,
        endpoints: [
          {
            ip: '10.1.110.108',
            port: 6443,
            nodeName: 'control-plane',
            podNamespace: 'kube-system',
            podName: 'kube-apiserver-control-plane',
            ready: true,
          },
        ],
      },
    ]);
    const down = endpoints(state, 'kubernetes', { downNodes: new Set(['control-plane']) });
    assert.equal(down[0]!.endpoints[0]!.ready, false);

    const ha = build(
      node('cp-b', '10.0.0.12', { labels: { 'node-role.kubernetes.io/control-plane': '' } }),
      node('cp-a', '10.0.0.11', { labels: { 'node-role.kubernetes.io/control-plane': '' } }),
      node('w', '10.0.0.2'),
    );
    assert.deepEqual(summary(endpoints(ha, 'kubernetes')), {
      'https/TCP/443': ['10.0.0.11:6443', '10.0.0.12:6443'],
    });
  });

  it('the kubernetes Service without a labelled control plane: the first node', () => {
    const state = build(node('zeta', '10.0.0.9'), node('alpha', '10.0.0.5'));
    assert.deepEqual(summary(endpoints(state, 'kubernetes')), {
      'https/TCP/443': ['10.0.0.5:6443'],
    });
    assert.deepEqual(endpoints(build(), 'kubernetes'), [
      { portName: 'https', protocol: 'TCP', servicePort: 443, endpoints: [] },
    ]);
  });

  it('reference lab: kube-dns on the CoreDNS pods, ingress-nginx by named port, wordpress-db', () => {
    const state = build(...referenceLab());
    assert.deepEqual(summary(endpoints(state, 'kube-dns', { namespace: 'kube-system' })), {
      'dns/UDP/53': ['192.168.8.207:53', '192.168.165.196:53'],
      'dns-tcp/TCP/53': ['192.168.8.207:53', '192.168.165.196:53'],
    });
    assert.deepEqual(
      summary(endpoints(state, 'ingress-nginx-controller', { namespace: 'ingress-nginx' })),
      { 'http/TCP/80': ['192.168.8.193:80', '192.168.104.65:80'] },
    );
    assert.deepEqual(summary(endpoints(state, 'wordpress-db', { namespace: 'wordpress' })), {
      'mysql/TCP/3306': ['192.168.8.223:80'],
    });
  });

  it('allServiceEndpoints: every Service, keyed <ns>/<name> in state order, same as one by one', () => {
    const state = build(...referenceLab());
    const downNodes = new Set(['worker-2']);
    const all = allServiceEndpoints(state, { downNodes });
    assert.deepEqual(
      [...all.keys()],
      state.services.map((s) => `${s.namespace}/${s.name}`),
    );
    for (const svc of state.services) {
      assert.deepEqual(
        all.get(`${svc.namespace}/${svc.name}`),
        endpointsForService(state, svc, { downNodes }),
      );
    }
  });
});

describe('allServiceEndpoints on top of a previous state', () => {
  it('gives what a computation from scratch gives, keeping the arrays of unchanged Services', () => {
    const objects = (webReplicas: number, apiSelector: string, extra: unknown[] = []) =>
      docs(
        ...referenceLab(),
        deployment('web', webReplicas),
        deployment('api', 3, { namespace: 'shop' }),
        deployment('db', 2, { namespace: 'shop' }),
        service('web', { selector: { app: 'web' }, ports: [{ port: 80 }] }),
        service(
          'api',
          { selector: { app: apiSelector }, ports: [{ port: 80 }] },
          { namespace: 'shop' },
        ),
        service('db', { selector: { app: 'db' }, ports: [{ port: 5432 }] }, { namespace: 'shop' }),
        ...extra,
      );
    let previous = buildClusterState(objects(3, 'api'));
    allServiceEndpoints(previous);
    const steps = [
      objects(4, 'api'), // web scaled
      objects(4, 'db'), // a selector changed
      objects(4, 'db', [pod('stray', { labels: { app: 'db' }, namespace: 'shop' })]),
      objects(2, 'db'),
    ];
    for (const [i, input] of steps.entries()) {
      const state = buildClusterState(input, { previous });
      for (const downNodes of [new Set<string>(), new Set(['worker-1'])]) {
        const incremental = allServiceEndpoints(state, { downNodes, previous });
        const scratch = allServiceEndpoints(buildClusterState(input), { downNodes });
        assert.equal(
          JSON.stringify([...incremental]),
          JSON.stringify([...scratch]),
          `step ${i}, down ${[...downNodes].join()}`,
        );
        allServiceEndpoints(previous, { downNodes });
      }
      const first = allServiceEndpoints(previous);
      const next = allServiceEndpoints(state, { previous });
      if (i === 0) {
        // Only web changed: the shop Services keep their arrays.
        assert.equal(next.get('shop/db'), first.get('shop/db'));
        assert.notEqual(next.get('default/web'), first.get('default/web'));
      }
      previous = state;
    }
  });
});
