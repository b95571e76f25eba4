import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  advertisementsFor,
  electAnnouncer,
  electionKey,
  parseAddressEntry,
  renderAllocationsManifest,
  type ClusterState,
  type ElectionNode,
} from '../../../src/cluster/index.js';
import { parseManifestText } from '../../../src/cluster/index.js';
import { build, buildErrors, labNodes, pod } from './helpers.js';

const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'metallb-system' } };

function pool(name: string, addresses: string[], spec: Record<string, unknown> = {}) {
  return {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name, namespace: 'metallb-system' },
    spec: { addresses, ...spec },
  };
}

function l2(name: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'L2Advertisement',
    metadata: { name, namespace: 'metallb-system' },
    spec,
  };
}

function lbService(
  name: string,
  opts: {
    annotations?: Record<string, string>;
    spec?: Record<string, unknown>;
    ports?: { port: number; protocol?: string }[];
  } = {},
) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, ...(opts.annotations ? { annotations: opts.annotations } : {}) },
    spec: {
      type: 'LoadBalancer',
      selector: { app: 'web' },
      ports: (opts.ports ?? [{ port: 80 }]).map((p) => ({ ...p, targetPort: 8080 })),
      ...(opts.spec ?? {}),
    },
  };
}

function lbs(state: ClusterState): Record<string, string> {
  return Object.fromEntries(
    state.metallb.loadBalancers.map((lb) => [lb.name, lb.ips.join(',') || '<pending>']),
  );
}

function eventsOf(state: ClusterState, name: string): string[] {
  const lb = state.metallb.loadBalancers.find((l) => l.name === name)!;
  return lb.events.map((e) => `${e.type} ${e.reason} ${e.message}`);
}

describe('MetalLB address pools', () => {
  it('parses CIDRs and ranges as MetalLB does', () => {
    assert.deepEqual(parseAddressEntry('10.1.110.0/30'), {
      ok: true,
      range: { first: 0x0a016e00, last: 0x0a016e03 },
    });
    // Host bits are allowed in a CIDR (Go's net.ParseCIDR): the network is used.
    assert.deepEqual(parseAddressEntry('10.1.110.5/30'), {
      ok: true,
      range: { first: 0x0a016e04, last: 0x0a016e07 },
    });
    assert.deepEqual(parseAddressEntry('10.1.110.105 - 10.1.110.110'), {
      ok: true,
      range: { first: 0x0a016e69, last: 0x0a016e6e },
    });
    assert.equal(parseAddressEntry('10.1.110.110-10.1.110.105').ok, false);
    assert.match(
      (parseAddressEntry('10.1.110.110-10.1.110.105') as { detail: string }).detail,
      /start IP "10.1.110.110" is after the end IP "10.1.110.105"/,
    );
    assert.deepEqual(parseAddressEntry('fd00::/120'), {
      ok: false,
      ipv6: true,
      detail: 'IPv6 fd00::/120',
    });
    assert.equal(parseAddressEntry('10.1.110.105').ok, false);
  });

  it('refuses an invalid address naming the file, document and field', () => {
    const errors = buildErrors(
      ...labNodes(),
      ns,
      pool('bad', ['10.1.110.105/32', '10.1.300.1/32']),
    );
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!,
      /test\.yaml.*document 5.*IPAddressPool.*spec\.addresses\[1\].*invalid CIDR "10\.1\.300\.1\/32"/,
    );
  });

  it('refuses overlapping pools', () => {
    const errors = buildErrors(
      ...labNodes(),
      ns,
      pool('a', ['10.1.110.100-10.1.110.110']),
      pool('b', ['10.1.110.108/30']),
    );
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!,
      /spec\.addresses.*CIDR "10\.1\.110\.108-10\.1\.110\.111" in pool "b" overlaps with pool "a"/,
    );
  });

  it('reads the legacy ConfigMap (address-pools with protocol layer2)', () => {
    const state = build(
      ...labNodes(),
      ns,
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'config', namespace: 'metallb-system' },
        data: {
          config: [
            'address-pools:',
            '- name: default',
            '  protocol: layer2',
            '  addresses:',
            '  - 10.1.110.105-10.1.110.110',
            '- name: edge',
            '  protocol: bgp',
            '  addresses: [10.1.120.0/24]',
          ].join('\n'),
        },
      },
      lbService('web'),
    );
    assert.deepEqual(
      state.metallb.pools.map((p) => [p.name, p.source, p.protocol]),
      [
        ['default', 'ConfigMap', 'layer2'],
        ['edge', 'ConfigMap', 'bgp'],
      ],
    );
    assert.deepEqual(
      state.metallb.advertisements.map((a) => a.pools),
      [['default']],
    );
    assert.deepEqual(lbs(state), { web: '10.1.110.105' });
    assert.ok(state.warnings.some((w) => /BGP is not emulated/.test(w)));
  });

  it('refuses a legacy ConfigMap with a bad pool, naming the field in data.config', () => {
    const errors = buildErrors(...labNodes(), ns, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'config', namespace: 'metallb-system' },
      data: {
        config: 'address-pools:\n- name: p\n  protocol: layer3\n  addresses: [10.0.0.0/30]\n',
      },
    });
    assert.match(
      errors[0]!,
      /data\.config\.address-pools\[0\]\.protocol.*unknown protocol "layer3"/,
    );
  });
});

describe('MetalLB allocation (controller)', () => {
  const base = [...labNodes(), ns, pool('lab', ['10.1.110.105-10.1.110.107']), l2('l2')];

  it('gives spec.loadBalancerIP, then the first free addresses in order', () => {
    const state = build(
      ...base,
      lbService('a'),
      lbService('b', { spec: { loadBalancerIP: '10.1.110.105' } }),
      lbService('c'),
    );
    assert.deepEqual(lbs(state), { a: '10.1.110.106', b: '10.1.110.105', c: '10.1.110.107' });
    assert.deepEqual(eventsOf(state, 'b'), ['Normal IPAllocated Assigned IP ["10.1.110.105"]']);
    assert.equal(state.metallb.loadBalancers[0]!.pool, 'lab');
  });

  it('leaves the Service pending with AllocationFailed when the pool is exhausted', () => {
    const state = build(...base, lbService('a'), lbService('b'), lbService('c'), lbService('d'));
    assert.equal(lbs(state).d, '<pending>');
    assert.deepEqual(eventsOf(state, 'd'), [
      'Warning AllocationFailed Failed to allocate IP for "default/d": no available IPs',
    ]);
  });

  it('refuses addresses outside every pool, and a pool that does not hold them', () => {
    const state = build(
      ...base,
      pool('other', ['10.1.110.200/32']),
      lbService('x', { spec: { loadBalancerIP: '10.1.110.50' } }),
      lbService('y', {
        annotations: {
          'metallb.universe.tf/loadBalancerIPs': '10.1.110.200',
          'metallb.universe.tf/address-pool': 'lab',
        },
      }),
    );
    assert.deepEqual(eventsOf(state, 'x'), [
      'Warning AllocationFailed Failed to allocate IP for "default/x": ["10.1.110.50"] is not allowed in config',
    ]);
    assert.match(eventsOf(state, 'y')[0]!, /is not compatible with requested address pool lab/);
  });

  it('honours the address-pool annotation and autoAssign: false', () => {
    const state = build(
      ...base,
      pool('manual', ['10.1.110.150/31'], { autoAssign: false }),
      lbService('auto'),
      lbService('manual', { annotations: { 'metallb.io/address-pool': 'manual' } }),
    );
    assert.deepEqual(lbs(state), { auto: '10.1.110.105', manual: '10.1.110.150' });
  });

  it('skips .0 and .255 with avoidBuggyIPs', () => {
    const state = build(
      ...labNodes(),
      ns,
      pool('p', ['10.1.111.255-10.1.112.1'], { avoidBuggyIPs: true }),
      lbService('a'),
    );
    assert.deepEqual(lbs(state), { a: '10.1.112.1' });
  });

  it('shares an address between Services with the same allow-shared-ip key and other ports', () => {
    const shared = { 'metallb.universe.tf/allow-shared-ip': 'k' };
    const ok = build(
      ...base,
      lbService('dns-tcp', { annotations: shared, ports: [{ port: 53, protocol: 'TCP' }] }),
      lbService('dns-udp', {
        annotations: { ...shared, 'metallb.universe.tf/loadBalancerIPs': '10.1.110.105' },
        ports: [{ port: 53, protocol: 'UDP' }],
      }),
    );
    assert.deepEqual(lbs(ok), { 'dns-tcp': '10.1.110.105', 'dns-udp': '10.1.110.105' });
    const clash = build(
      ...base,
      lbService('a', { annotations: { ...shared, 'metallb.io/loadBalancerIPs': '10.1.110.105' } }),
      lbService('b', { annotations: { ...shared, 'metallb.io/loadBalancerIPs': '10.1.110.105' } }),
    );
    assert.deepEqual(eventsOf(clash, 'b'), [
      'Warning AllocationFailed Failed to allocate IP for "default/b": port TCP/80 is already in use on "10.1.110.105"',
    ]);
    const noKey = build(
      ...base,
      lbService('a', { spec: { loadBalancerIP: '10.1.110.105' } }),
      lbService('b', { spec: { loadBalancerIP: '10.1.110.105' }, ports: [{ port: 81 }] }),
    );
    assert.match(
      eventsOf(noKey, 'b')[0]!,
      /can't change sharing key for "default\/b", address also in use by default\/a/,
    );
  });

  it('keeps recorded assignments when Services come and go, and is independent of document order', () => {
    const first = build(...base, lbService('m'), lbService('z'));
    assert.deepEqual(lbs(first), { m: '10.1.110.105', z: '10.1.110.106' });
    const record = parseManifestText(
      renderAllocationsManifest(first.metallb.loadBalancers),
      'rec.yaml',
    );
    // A new Service that sorts first does not take m's address.
    const second = build(
      ...base,
      lbService('a'),
      lbService('m'),
      lbService('z'),
      record[0]!.object,
    );
    assert.deepEqual(lbs(second), { a: '10.1.110.107', m: '10.1.110.105', z: '10.1.110.106' });
    const shuffled = build(
      record[0]!.object,
      lbService('z'),
      lbService('a'),
      ...base.reverse(),
      lbService('m'),
    );
    assert.deepEqual(lbs(shuffled), lbs(second));
  });

  it('ignores Services with another loadBalancerClass and pending without pools', () => {
    const state = build(
      ...labNodes(),
      lbService('other', { spec: { loadBalancerClass: 'example.com/lb' } }),
      lbService('web'),
    );
    assert.deepEqual(lbs(state), { web: '<pending>' });
    assert.deepEqual(eventsOf(state, 'web'), []);
  });

  it('feeds kube-proxy: the assigned address gets the loadbalancer IP rules', async () => {
    const { kubeProxyOptionsFor } = await import('../../../src/controllers/kube-proxy/index.js');
    const state = build(...base, lbService('web'));
    assert.deepEqual(kubeProxyOptionsFor(state, 'worker-1').loadBalancerIPs?.get('default/web'), [
      '10.1.110.105',
    ]);
  });
});

describe('MetalLB layer-2 election (speakers)', () => {
  const state = build(
    ...labNodes(),
    ns,
    pool('lab', ['10.1.110.105-10.1.110.110']),
    l2('l2'),
    lbService('web'),
    pod('w', {
      labels: { app: 'web' },
      spec: { nodeName: 'worker-2', containers: [{ name: 'c', image: 'x' }] },
    }),
  );
  const svc = state.services.find((s) => s.name === 'web')!;
  const ads = advertisementsFor(state.metallb.advertisements, state.metallb.pools[0]!, svc);
  const nodes = (over: Partial<Record<string, Partial<ElectionNode>>> = {}): ElectionNode[] =>
    ['control-plane', 'worker-1', 'worker-2'].map((name) => ({
      name,
      labels: {},
      live: true,
      hasReadyEndpoint: name === 'worker-2',
      ...over[name],
    }));

  it('orders candidates by sha256(node#ip), as MetalLB', () => {
    const r = electAnnouncer(svc, '10.1.110.105', ads, nodes());
    assert.ok(r.node !== null);
    const expected = ['control-plane', 'worker-1', 'worker-2'].sort((a, b) =>
      Buffer.compare(electionKey(a, '10.1.110.105'), electionKey(b, '10.1.110.105')),
    );
    assert.deepEqual(r.candidates, expected);
    assert.equal(r.node, expected[0]);
  });

  it('moves only when the winner goes, and comes back when it returns', () => {
    const winner = electAnnouncer(svc, '10.1.110.105', ads, nodes()).node!;
    const without = electAnnouncer(svc, '10.1.110.105', ads, nodes({ [winner]: { live: false } }));
    assert.notEqual(without.node, winner);
    const loser = ['control-plane', 'worker-1', 'worker-2'].find(
      (n) => n !== winner && n !== without.node,
    )!;
    assert.equal(
      electAnnouncer(svc, '10.1.110.105', ads, nodes({ [loser]: { live: false } })).node,
      winner,
    );
  });

  it('Local: only nodes with a ready endpoint; none without endpoints; excluded nodes never', () => {
    const local = { ...svc, externalTrafficPolicy: 'Local' as const };
    assert.equal(electAnnouncer(local, '10.1.110.105', ads, nodes()).node, 'worker-2');
    assert.deepEqual(
      electAnnouncer(svc, '10.1.110.105', ads, nodes({ 'worker-2': { hasReadyEndpoint: false } })),
      { node: null, reason: 'noActiveEndpoints' },
    );
    const r = electAnnouncer(
      svc,
      '10.1.110.105',
      ads,
      nodes({
        'control-plane': {
          labels: { 'node.kubernetes.io/exclude-from-external-load-balancers': '' },
        },
        'worker-1': { live: false },
      }),
    );
    assert.equal(r.node, 'worker-2');
  });

  it('L2Advertisement nodeSelectors and pool selection', () => {
    const onlyW1 = [{ ...ads[0]!, nodeSelectors: [{ matchLabels: { edge: 'yes' } }] }];
    const r = electAnnouncer(
      svc,
      '10.1.110.105',
      onlyW1,
      nodes({ 'worker-1': { labels: { edge: 'yes' } } }),
    );
    assert.equal(r.node, 'worker-1');
    const otherPool = [{ ...ads[0]!, pools: ['elsewhere'] }];
    assert.deepEqual(advertisementsFor(otherPool, state.metallb.pools[0]!, svc), []);
    assert.deepEqual(electAnnouncer(svc, '10.1.110.105', [], nodes()), {
      node: null,
      reason: 'noAdvertisement',
    });
  });
});
