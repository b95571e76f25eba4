import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildClusterState,
  ipamBlockName,
  ipamBlocksFor,
  IPAM_MANIFEST_HEADER,
  ManifestErrors,
  parseCidr,
  parseManifestText,
  renderIpamManifest,
  type ClusterState,
  type ManifestDocument,
} from '../../../src/cluster/index.js';
import {
  build,
  daemonSet,
  deployment,
  docs,
  findPod,
  ipPool,
  labNodes,
  node,
  pod,
  podsOf,
  shuffled,
} from './helpers.js';
import { referenceLab } from './reference-lab.js';

const PIN = 'cni.projectcalico.org/ipAddrs';

const on = (nodeName: string, name: string, pin?: string) =>
  pod(name, { spec: { nodeName }, ...(pin ? { annotations: { [PIN]: `["${pin}"]` } } : {}) });

const onWorker1 = (name: string, replicas: number) =>
  deployment(name, replicas, { podSpec: { nodeName: 'worker-1' } });

/** The documents of renderIpamManifest(state), as `kubewire` would read them back. */
function ipamDocs(state: ClusterState): ManifestDocument[] {
  return parseManifestText(renderIpamManifest(state), 'ipam.yaml');
}

/** Builds `objects` plus the IPAM manifest of `previous`. */
function rebuild(previous: ClusterState, ...objects: unknown[]): ClusterState {
  return buildClusterState([...docs(...objects), ...ipamDocs(previous)]);
}

/** Builds `objects` with hand-written IPAMBlocks in a second file. */
function buildWith(blocks: unknown[], ...objects: unknown[]): ClusterState {
  return buildClusterState([
    ...docs(...objects),
    ...blocks.map((object, i) => ({ file: 'ipam.yaml', index: i + 1, object })),
  ]);
}

function errorsWith(blocks: unknown[], ...objects: unknown[]): string[] {
  try {
    buildWith(blocks, ...objects);
  } catch (e) {
    assert.ok(e instanceof ManifestErrors, `expected ManifestErrors, got ${String(e)}`);
    return e.errors.map((x) => x.message);
  }
  assert.fail('expected buildClusterState to throw');
}

const ips = (state: ClusterState): Record<string, string | null> =>
  Object.fromEntries(state.pods.map((p) => [`${p.namespace}/${p.name}`, p.ip]));

type Secondary = Record<string, string>;

/** A hand-written IPAMBlock: `allocated` maps ordinals to secondary attributes. */
function ipamBlock(
  cidr: string,
  affinity: string | undefined,
  allocated: Record<number, Secondary & { handle?: string }> = {},
  size = 64,
): Record<string, unknown> {
  const allocations: (number | null)[] = new Array<number | null>(size).fill(null);
  const attributes: { handle_id?: string; secondary: Secondary }[] = [];
  for (const [ordinal, { handle, ...secondary }] of Object.entries(allocated)) {
    allocations[Number(ordinal)] = attributes.length;
    attributes.push({ ...(handle ? { handle_id: handle } : {}), secondary });
  }
  return {
    apiVersion: 'crd.projectcalico.org/v1',
    kind: 'IPAMBlock',
    metadata: { name: cidr.replace(/[./]/g, '-') },
    spec: {
      cidr,
      ...(affinity !== undefined ? { affinity } : {}),
      strictAffinity: false,
      allocations,
      unallocated: allocations.flatMap((a, i) => (a === null ? [i] : [])),
      attributes,
      deleted: false,
    },
  };
}

/** The reference lab with the compose examples' webapp and blog Deployments. */
function labWithApps(apps: string[]): unknown[] {
  return [...referenceLab(), ...apps.map((name) => deployment(name, 2))];
}

describe('IPAM records: writing IPAMBlocks', () => {
  it('names blocks as Calico does', () => {
    assert.equal(ipamBlockName(parseCidr('192.168.104.64/26')!), '192-168-104-64-26');
    assert.equal(ipamBlockName(parseCidr('10.0.0.0/32')!), '10-0-0-0-32');
  });

  it('one block per claimed block, with the tunnel and pod allocations', () => {
    const state = build(...labNodes(), on('worker-1', 'a'), on('worker-1', 'b'));
    const blocks = ipamBlocksFor(state);
    assert.deepEqual(
      blocks.map((b) => (b.metadata as { name: string }).name),
      ['192-168-8-192-26', '192-168-104-64-26', '192-168-165-192-26'],
    );
    const w1 = blocks[1] as {
      apiVersion: string;
      kind: string;
      spec: {
        cidr: string;
        affinity: string;
        allocations: (number | null)[];
        unallocated: number[];
        attributes: { handle_id: string; secondary: Secondary }[];
      };
    };
    assert.equal(w1.apiVersion, 'crd.projectcalico.org/v1');
    assert.equal(w1.kind, 'IPAMBlock');
    assert.equal(w1.spec.cidr, '192.168.104.64/26');
    assert.equal(w1.spec.affinity, 'host:worker-1');
    assert.equal(w1.spec.allocations.length, 64);
    assert.deepEqual(w1.spec.allocations.slice(0, 4), [0, 1, 2, null]);
    assert.equal(w1.spec.unallocated.length, 61);
    assert.equal(w1.spec.unallocated[0], 3);
    assert.deepEqual(w1.spec.attributes[0], {
      handle_id: 'ipip-tunnel-addr-worker-1',
      secondary: { node: 'worker-1', type: 'ipipTunnelAddress' },
    });
    assert.match(w1.spec.attributes[1]!.handle_id, /^k8s-pod-network\.[0-9a-f]{64}$/);
    assert.deepEqual(w1.spec.attributes[1]!.secondary, {
      namespace: 'default',
      node: 'worker-1',
      pod: 'a',
    });
    assert.deepEqual(w1.spec.attributes[2]!.secondary, {
      namespace: 'default',
      node: 'worker-1',
      pod: 'b',
    });
  });

  it('renders YAML with the kubewire header, which loads back as the same objects', () => {
    const state = build(...labNodes(), on('worker-2', 'x'));
    const text = renderIpamManifest(state);
    assert.ok(text.startsWith(`${IPAM_MANIFEST_HEADER}\n---\n`));
    assert.match(text, /^# Written by kubewire: the Calico IPAM allocations/);
    assert.match(text, /\n {2}allocations: \[0, 1, null, null, /);
    const back = parseManifestText(text, 'ipam.yaml');
    assert.deepEqual(
      back.map((d) => d.object),
      ipamBlocksFor(state),
    );
    assert.deepEqual(
      back.map((d) => d.index),
      [1, 2, 3],
    );
    assert.equal(renderIpamManifest(state), text, 'deterministic');
  });

  it('with no block, only the header (no document)', () => {
    const state = build(
      ipPool('off', { cidr: '10.10.0.0/16', disabled: true }),
      node('a', '1.1.1.1'),
    );
    assert.equal(renderIpamManifest(state), `${IPAM_MANIFEST_HEADER}\n`);
    assert.deepEqual(parseManifestText(renderIpamManifest(state), 'ipam.yaml'), []);
  });

  it('a borrowed address is written in the lending block, with the borrowing node', () => {
    const pool = ipPool('tiny', { cidr: '10.10.0.0/27', blockSize: 28, ipipMode: 'Always' });
    const objects = [pool, node('a', '10.0.0.1'), node('b', '10.0.0.2'), node('c', '10.0.0.3')];
    const state = build(...objects, on('c', 'late'));
    const late = findPod(state, 'default', 'late');
    assert.equal(late.borrowed, true);
    const lender = ipamBlocksFor(state).find((b) =>
      (b.spec as { attributes: { secondary: Secondary }[] }).attributes.some(
        (a) => a.secondary.pod === 'late',
      ),
    )!;
    const spec = lender.spec as { affinity: string; attributes: { secondary: Secondary }[] };
    assert.notEqual(spec.affinity, 'host:c');
    assert.equal(spec.attributes.find((a) => a.secondary.pod === 'late')!.secondary.node, 'c');
    // Read back, the pod keeps its borrowed address.
    const again = rebuild(state, ...objects, on('c', 'late'));
    assert.equal(findPod(again, 'default', 'late').ip, late.ip);
    assert.equal(findPod(again, 'default', 'late').borrowed, true);
  });
});

describe('IPAM records: round trip', () => {
  const cases: [string, () => unknown[]][] = [
    ['the reference lab with webapp and blog', () => labWithApps(['webapp', 'blog'])],
    [
      'nodes without podCIDR, a second pool, overflowing blocks and a DaemonSet',
      () => [
        ipPool('main', { cidr: '10.20.0.0/16', ipipMode: 'Always' }),
        ipPool('flat', { cidr: '10.30.0.0/16', nodeSelector: "zone == 'b'" }),
        node('a', '10.0.0.1'),
        node('b', '10.0.0.2', { labels: { zone: 'b' } }),
        node('c', '10.0.0.3', { podCIDR: '10.30.7.0/26', labels: { zone: 'b' } }),
        deployment('web', 9),
        daemonSet('agent', { namespace: 'kube-system' }),
        on('a', 'pinned', '10.20.200.5'),
        ...Array.from({ length: 70 }, (_, i) => on('a', `p${String(i).padStart(2, '0')}`)),
      ],
    ],
  ];
  for (const [name, objects] of cases) {
    it(`same addresses, tunnels and blocks with the manifest of the state: ${name}`, () => {
      const first = build(...objects());
      const second = rebuild(first, ...objects());
      assert.deepEqual(ips(second), ips(first));
      assert.deepEqual(
        second.pods.map((p) => p.borrowed),
        first.pods.map((p) => p.borrowed),
      );
      assert.deepEqual(
        second.nodes.map((n) => [n.name, n.tunnelAddress, n.ipipMode, [...n.blocks].sort()]),
        first.nodes.map((n) => [n.name, n.tunnelAddress, n.ipipMode, [...n.blocks].sort()]),
      );
      assert.deepEqual(second.warnings, first.warnings);
      // A fixpoint: the manifest written from the second state is the same text.
      assert.equal(renderIpamManifest(second), renderIpamManifest(first));
    });
  }
});

describe('IPAM records: stickiness', () => {
  it('deleting a Deployment leaves the other pods at their addresses', () => {
    const before = build(...labWithApps(['webapp', 'blog']));
    const blog = podsOf(before, 'blog').map((p) => [p.name, p.nodeName, p.ip]);
    // Without the records, packing renumbers a blog pod (the problem being solved).
    const packed = build(...labWithApps(['blog']));
    assert.notDeepEqual(
      podsOf(packed, 'blog').map((p) => [p.name, p.nodeName, p.ip]),
      blog,
    );
    const after = rebuild(before, ...labWithApps(['blog']));
    assert.deepEqual(
      podsOf(after, 'blog').map((p) => [p.name, p.nodeName, p.ip]),
      blog,
    );
    // Every other pod is where it was.
    assert.deepEqual(
      ips(after),
      Object.fromEntries(
        Object.entries(ips(before)).filter(([k]) => !k.startsWith('default/webapp-')),
      ),
    );
  });

  it('scale down, then up: the others never move; the new replicas take the lowest free', () => {
    const at = (a: number) => [...labNodes(), onWorker1('alpha', a), onWorker1('beta', 3)];
    const three = build(...at(3));
    const beta = podsOf(three, 'beta').map((p) => p.ip);
    const alpha = podsOf(three, 'alpha').map((p) => p.ip);
    // Packing alone would move beta-1 and beta-2 down.
    assert.notDeepEqual(
      podsOf(build(...at(1)), 'beta').map((p) => p.ip),
      beta,
    );
    const one = rebuild(three, ...at(1));
    assert.deepEqual(
      podsOf(one, 'beta').map((p) => p.ip),
      beta,
    );
    assert.deepEqual(
      podsOf(one, 'alpha').map((p) => p.ip),
      [alpha[0]],
    );
    const again = rebuild(one, ...at(3));
    assert.deepEqual(
      podsOf(again, 'beta').map((p) => p.ip),
      beta,
    );
    assert.deepEqual(
      podsOf(again, 'alpha').map((p) => p.ip),
      alpha,
      'the freed addresses are the lowest free ones again',
    );
  });

  it('scaling up with records never moves a pod of another Deployment', () => {
    const at = (a: number) => [...labNodes(), onWorker1('alpha', a), onWorker1('beta', 3)];
    const one = build(...at(1));
    const three = rebuild(one, ...at(3));
    assert.deepEqual(
      podsOf(three, 'beta').map((p) => p.ip),
      podsOf(one, 'beta').map((p) => p.ip),
    );
    assert.equal(podsOf(three, 'alpha')[0]!.ip, podsOf(one, 'alpha')[0]!.ip);
  });

  it('a renamed pod gets a new address; the old one is reused only once freed', () => {
    const first = build(...labNodes(), on('worker-1', 'a'), on('worker-1', 'b'));
    assert.deepEqual(
      [findPod(first, 'default', 'a').ip, findPod(first, 'default', 'b').ip],
      ['192.168.104.65', '192.168.104.66'],
    );
    // Rename a → c in one change: c is a new pod; a's address is released, not handed over.
    const renamed = rebuild(first, ...labNodes(), on('worker-1', 'c'), on('worker-1', 'b'));
    assert.equal(findPod(renamed, 'default', 'c').ip, '192.168.104.67');
    assert.equal(findPod(renamed, 'default', 'b').ip, '192.168.104.66');
    // While a exists, nobody else gets its address.
    const both = rebuild(
      first,
      ...labNodes(),
      on('worker-1', 'a'),
      on('worker-1', 'b'),
      on('worker-1', 'c'),
    );
    assert.equal(findPod(both, 'default', 'a').ip, '192.168.104.65');
    assert.equal(findPod(both, 'default', 'c').ip, '192.168.104.67');
    // Once the record is gone, the address is the lowest free one again.
    const next = rebuild(
      renamed,
      ...labNodes(),
      on('worker-1', 'c'),
      on('worker-1', 'b'),
      on('worker-1', 'd'),
    );
    assert.deepEqual(
      ['b', 'c', 'd'].map((n) => findPod(next, 'default', n).ip),
      ['192.168.104.66', '192.168.104.67', '192.168.104.65'],
    );
  });

  it('released addresses are still used before a new block is claimed', () => {
    const pool = ipPool('small', { cidr: '10.10.0.0/24', blockSize: 30, ipipMode: 'Never' });
    const objects = (names: string[]) => [
      pool,
      node('a', '10.0.0.1', { podCIDR: '10.10.0.0/30' }),
      ...names.map((n) => on('a', n)),
    ];
    const first = build(...objects(['p0', 'p1', 'p2', 'p3']));
    assert.deepEqual(first.nodes[0]!.blocks, ['10.10.0.0/30']);
    const next = rebuild(first, ...objects(['p0', 'p1', 'p2', 'q3']));
    assert.equal(findPod(next, 'default', 'q3').ip, '10.10.0.3');
    assert.deepEqual(next.nodes[0]!.blocks, ['10.10.0.0/30']);
  });

  it('a record of a pod that now runs on another node is ignored', () => {
    const first = build(...labNodes(), on('worker-1', 'x'), on('worker-1', 'y'));
    assert.equal(findPod(first, 'default', 'x').ip, '192.168.104.65');
    const moved = rebuild(
      first,
      ...labNodes(),
      on('worker-2', 'x'),
      on('worker-1', 'y'),
      on('worker-1', 'z'),
    );
    const x = findPod(moved, 'default', 'x');
    assert.deepEqual([x.nodeName, x.ip, x.borrowed], ['worker-2', '192.168.8.193', undefined]);
    assert.equal(findPod(moved, 'default', 'y').ip, '192.168.104.66');
    // x's old address was released: a new pod on worker-1 takes a never-used one first.
    assert.equal(findPod(moved, 'default', 'z').ip, '192.168.104.67');
  });

  it('a record naming another node than the pod runs on (hand-written) is ignored', () => {
    const state = buildWith(
      [
        ipamBlock('192.168.104.64/26', 'host:worker-1', {
          0: { handle: 'ipip-tunnel-addr-worker-1', node: 'worker-1', type: 'ipipTunnelAddress' },
          9: { namespace: 'default', pod: 'x', node: 'worker-2' },
          10: { namespace: 'default', pod: 'y' }, // node from the block's affinity
        }),
      ],
      ...labNodes(),
      on('worker-1', 'x'),
      on('worker-1', 'y'),
    );
    assert.equal(findPod(state, 'default', 'x').ip, '192.168.104.65');
    assert.equal(findPod(state, 'default', 'y').ip, '192.168.104.74');
  });

  it('records of pods that no longer exist, and foreign allocations, are freed', () => {
    const state = buildWith(
      [
        ipamBlock('192.168.104.64/26', 'host:worker-1', {
          0: { handle: 'ipip-tunnel-addr-worker-1', node: 'worker-1', type: 'ipipTunnelAddress' },
          1: { namespace: 'default', pod: 'gone', node: 'worker-1' },
          2: { handle: 'vxlan-tunnel-addr-worker-1', node: 'worker-1', type: 'vxlanTunnelAddress' },
        }),
      ],
      ...labNodes(),
      on('worker-1', 'a'),
      on('worker-1', 'b'),
    );
    assert.equal(findPod(state, 'default', 'a').ip, '192.168.104.67');
    assert.equal(findPod(state, 'default', 'b').ip, '192.168.104.68');
    const block = ipamBlocksFor(state).find(
      (b) => (b.spec as { cidr: string }).cidr === '192.168.104.64/26',
    )!;
    const spec = block.spec as { allocations: (number | null)[] };
    assert.deepEqual(spec.allocations.slice(0, 5), [0, null, null, 1, 2]);
  });

  it('pins win over records: a conflicting record is dropped', () => {
    const first = build(...labNodes(), on('worker-1', 'x'), on('worker-1', 'y'));
    assert.equal(findPod(first, 'default', 'y').ip, '192.168.104.66');
    // z pins y's recorded address; x is pinned elsewhere, so its record is dropped too.
    const next = rebuild(
      first,
      ...labNodes(),
      on('worker-1', 'x', '192.168.104.100'),
      on('worker-1', 'y'),
      on('worker-1', 'z', '192.168.104.66'),
    );
    assert.equal(findPod(next, 'default', 'z').ip, '192.168.104.66');
    assert.equal(findPod(next, 'default', 'x').ip, '192.168.104.100');
    assert.equal(findPod(next, 'default', 'y').ip, '192.168.104.67');
  });

  it('a recorded affinity claims the block before podCIDR and hashing; the tunnel record keeps tunl0', () => {
    const blocks = [
      ipamBlock('192.168.50.0/26', 'host:a', {
        5: { handle: 'ipip-tunnel-addr-a', node: 'a', type: 'ipipTunnelAddress' },
        7: { namespace: 'default', pod: 'old', node: 'a' },
      }),
    ];
    const state = buildWith(blocks, node('a', '10.0.0.1'), on('a', 'old'), on('a', 'new'));
    const a = state.nodes[0]!;
    assert.deepEqual(a.blocks, ['192.168.50.0/26']);
    assert.equal(a.tunnelAddress, '192.168.50.5');
    assert.equal(findPod(state, 'default', 'old').ip, '192.168.50.7');
    assert.equal(findPod(state, 'default', 'new').ip, '192.168.50.0');
    // With a podCIDR elsewhere, the podCIDR block is claimed after the recorded one.
    const withCidr = buildWith(blocks, node('a', '10.0.0.1', { podCIDR: '192.168.60.0/26' }));
    assert.deepEqual(withCidr.nodes[0]!.blocks, ['192.168.50.0/26', '192.168.60.0/26']);
    assert.equal(withCidr.nodes[0]!.tunnelAddress, '192.168.50.5');
  });

  it("a podCIDR in another node's recorded block is ignored with a warning", () => {
    const state = buildWith(
      [ipamBlock('192.168.1.0/26', 'host:a')],
      node('a', '10.0.0.1'),
      node('b', '10.0.0.2', { podCIDR: '192.168.1.0/26' }),
    );
    assert.deepEqual(state.nodes[0]!.blocks, ['192.168.1.0/26']);
    assert.notDeepEqual(state.nodes[1]!.blocks, ['192.168.1.0/26']);
    assert.equal(state.nodes[1]!.blocks.length, 1);
    assert.ok(
      state.warnings.includes(
        'test.yaml document 2 (Node b): spec.podCIDR 192.168.1.0/26: block 192.168.1.0/26 is affine to node a (IPAMBlock); ignored',
      ),
      state.warnings.join('\n'),
    );
  });

  it('affinity to a missing node, or to a node its pool does not serve, is released with a warning', () => {
    const state = buildWith(
      [
        ipamBlock('10.20.0.0/26', 'host:gone', {
          3: { namespace: 'default', pod: 'p', node: 'gone' },
        }),
        ipamBlock('10.30.0.0/26', 'host:a'),
      ],
      ipPool('main', { cidr: '10.20.0.0/16', ipipMode: 'Always' }),
      ipPool('other', { cidr: '10.30.0.0/16', nodeSelector: "zone == 'x'" }),
      node('a', '10.0.0.1'),
      on('a', 'p'),
    );
    assert.deepEqual(state.warnings, [
      "ipam.yaml document 1 (IPAMBlock 10-20-0-0-26): spec.affinity: node gone does not exist; the block's affinity and allocations are released",
      'ipam.yaml document 2 (IPAMBlock 10-30-0-0-26): spec.affinity: IP pool other does not select node a; affinity to a released',
    ]);
    assert.ok(!state.nodes[0]!.blocks.includes('10.30.0.0/26'));
    assert.notEqual(findPod(state, 'default', 'p').ip, '10.20.0.3');
  });

  it('an IPAMBlock marked deleted, or an IPv6 one, is skipped; projectcalico.org/v3 is read too', () => {
    const deleted = ipamBlock('192.168.50.0/26', 'host:a');
    (deleted.spec as Record<string, unknown>).deleted = true;
    const v6 = { ...ipamBlock('fd00::/122', 'host:a'), metadata: { name: 'fd00-122' } };
    const state = buildWith([deleted, v6], node('a', '10.0.0.1'));
    assert.notDeepEqual(state.nodes[0]!.blocks, ['192.168.50.0/26']);
    assert.deepEqual(state.warnings, [
      'ipam.yaml document 2 (IPAMBlock fd00-122): spec.cidr: IPv6 block fd00::/122 skipped (kubewire emulates IPv4)',
    ]);
    const v3 = { ...ipamBlock('192.168.50.0/26', 'host:a'), apiVersion: 'projectcalico.org/v3' };
    assert.deepEqual(buildWith([v3], node('a', '10.0.0.1')).nodes[0]!.blocks, ['192.168.50.0/26']);
  });
});

describe('IPAM records: validation', () => {
  it('refuses malformed blocks with file, document and field', () => {
    const short = ipamBlock('192.168.50.0/26', 'host:a', {}, 3);
    const badIndex = ipamBlock('192.168.51.0/26', 'host:a');
    const badSpec = badIndex.spec as { allocations: (number | null)[]; unallocated: number[] };
    badSpec.allocations[4] = 2;
    badSpec.unallocated = badSpec.unallocated.filter((u) => u !== 4);
    const badAffinity = ipamBlock('192.168.52.0/26', 'node:a');
    const badUnallocated = ipamBlock('192.168.53.0/26', 'host:a', {
      1: { namespace: 'default', pod: 'p' },
    });
    (badUnallocated.spec as { unallocated: number[] }).unallocated.push(64, 1);
    const nullAllocations = ipamBlock('192.168.54.0/26', 'host:a');
    (nullAllocations.spec as Record<string, unknown>).allocations = ['x'];
    const hostBits = ipamBlock('192.168.55.1/26', 'host:a');
    assert.deepEqual(
      errorsWith(
        [short, badIndex, badAffinity, badUnallocated, nullAllocations, hostBits],
        node('a', '10.0.0.1'),
      ),
      [
        'ipam.yaml document 1 (IPAMBlock 192-168-50-0-26): spec.allocations: expected 64 entries (one per address of the /26 block), got 3',
        'ipam.yaml document 2 (IPAMBlock 192-168-51-0-26): spec.allocations[4]: attribute index 2 is out of range (spec.attributes has 0 entries)',
        'ipam.yaml document 3 (IPAMBlock 192-168-52-0-26): spec.affinity: expected "host:<node name>", got "node:a"',
        'ipam.yaml document 4 (IPAMBlock 192-168-53-0-26): spec.unallocated[63]: ordinal 64 is out of range (the block has 64 addresses, 0-63)',
        'ipam.yaml document 4 (IPAMBlock 192-168-53-0-26): spec.unallocated[64]: ordinal 1 is listed as free but is allocated',
        'ipam.yaml document 5 (IPAMBlock 192-168-54-0-26): spec.allocations[0]: expected a non-negative integer',
        'ipam.yaml document 6 (IPAMBlock 192-168-55-1-26): spec.cidr: "192.168.55.1/26" has host bits set; did you mean 192.168.55.0/26?',
      ],
    );
  });

  it('refuses a block outside the pools, of another size than its pool, or recorded twice', () => {
    const outside = ipamBlock('10.99.0.0/26', 'host:a');
    const size = ipamBlock('192.168.60.0/27', 'host:a', {}, 32);
    const first = ipamBlock('192.168.61.0/26', 'host:a');
    const again = { ...ipamBlock('192.168.61.0/26', 'host:a'), metadata: { name: 'copy' } };
    const same = ipamBlock('192.168.61.0/26', 'host:a');
    assert.deepEqual(errorsWith([outside, size, first, again, same], node('a', '10.0.0.1')), [
      'ipam.yaml document 1 (IPAMBlock 10-99-0-0-26): spec.cidr: 10.99.0.0/26 is not inside any IP pool (default-ipv4-ippool 192.168.0.0/16)',
      'ipam.yaml document 2 (IPAMBlock 192-168-60-0-27): spec.cidr: a /27 block, but IP pool default-ipv4-ippool has blockSize 26',
      'ipam.yaml document 4 (IPAMBlock copy): spec.cidr: block 192.168.61.0/26 is also recorded by IPAMBlock 192-168-61-0-26',
      'ipam.yaml document 5 (IPAMBlock 192-168-61-0-26): metadata.name: duplicate IPAMBlock 192-168-61-0-26 (also in ipam.yaml document 3)',
    ]);
  });
});

describe('IPAM records: the state computed with stale records is a fixpoint', () => {
  it('reading its own IPAM manifest back changes no address', () => {
    const objects = [
      ...labWithApps(['blog']),
      deployment('web', 5),
      onWorker1('alpha', 2),
      on('worker-2', 'renamed'),
    ];
    const old = build(
      ...labWithApps(['webapp', 'blog']),
      deployment('web', 3),
      onWorker1('alpha', 4),
      on('worker-2', 'original'),
    );
    const next = rebuild(old, ...objects);
    const settled = rebuild(next, ...objects);
    assert.deepEqual(ips(settled), ips(next));
    assert.deepEqual(
      settled.nodes.map((n) => [n.name, n.tunnelAddress, [...n.blocks].sort()]),
      next.nodes.map((n) => [n.name, n.tunnelAddress, [...n.blocks].sort()]),
    );
    assert.equal(renderIpamManifest(settled), renderIpamManifest(next));
  });
});

describe('IPAM records: determinism', () => {
  it('shuffling documents with IPAMBlocks present gives byte-identical state (30 orders)', () => {
    const objects = [
      ...referenceLab(),
      deployment('web', 5),
      deployment('api', 3, { namespace: 'shop' }),
      daemonSet('agent', { namespace: 'kube-system' }),
      pod('solo'),
      node('worker-3', '10.1.110.110'),
    ];
    // Records from an older state: some pods gone, others new or moved.
    const old = build(...objects.slice(0, -1), deployment('old', 4), pod('solo2'));
    const input = [...docs(...objects), ...ipamDocs(old)];
    const reference = JSON.stringify(buildClusterState(input));
    for (let seed = 1; seed <= 30; seed++) {
      assert.equal(
        JSON.stringify(buildClusterState(shuffled(input, seed))),
        reference,
        `seed ${seed}`,
      );
    }
  });
});
