import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  buildClusterState,
  loadManifests,
  type ServiceState,
} from '../../../../src/cluster/index.js';
import {
  endpointChainName,
  kubeProxyOptionsFor,
  kubeProxyRules,
  kubeProxyRulesFor,
  servicePortChainName,
  type KubeProxyOptions,
  type KubeProxyServiceInput,
} from '../../../../src/controllers/kube-proxy/index.js';
import { Netfilter } from '../../../../src/netfilter/netfilter.js';
import { repoRoot } from '../../../integration/lab-harness.js';
import {
  checkRuleJumps,
  makeEndpoints,
  makePort,
  makeService,
  rulesOf,
  type Ep,
} from './helpers.js';

const NODE = 'worker-1';
const OPTS: KubeProxyOptions = {
  nodeName: NODE,
  nodeIPs: ['10.1.110.102'],
  clusterCIDR: '192.168.0.0/16',
};

const sep = (s: string, ep: string) => endpointChainName(s, 'tcp', ep);
const chain = (prefix: 'KUBE-SVC-' | 'KUBE-SVL-' | 'KUBE-EXT-' | 'KUBE-FW-', s: string) =>
  servicePortChainName(prefix, s, 'tcp');

/** One TCP service `ns/web` port "http" 80 → 8080 with the given endpoints. */
function web(over: Partial<ServiceState>, eps: readonly Ep[]): KubeProxyServiceInput {
  return {
    service: makeService('ns', 'web', {
      clusterIP: '10.96.0.50',
      ports: [makePort('http', 80, { targetPort: 8080 })],
      ...over,
    }),
    endpoints: [makeEndpoints('http', 80, eps)],
  };
}

function run(inputs: KubeProxyServiceInput[], opts: Partial<KubeProxyOptions> = {}) {
  const rules = kubeProxyRulesFor(inputs, { ...OPTS, ...opts });
  assert.deepEqual(checkRuleJumps(rules.restoreText), [], 'chain jumps are consistent');
  return rules;
}

const endpoints = (n: number, node: string | null = null): Ep[] =>
  Array.from({ length: n }, (_, i) => ({ ip: `192.168.8.${10 + i}`, port: 8080, node }));

describe('endpoint dispatch: probabilities (§1.7)', () => {
  const expected: Record<number, string[]> = {
    1: [],
    2: ['0.5000000000'],
    3: ['0.3333333333', '0.5000000000'],
    4: ['0.2500000000', '0.3333333333', '0.5000000000'],
    5: ['0.2000000000', '0.2500000000', '0.3333333333', '0.5000000000'],
  };
  for (const n of [1, 2, 3, 4, 5]) {
    test(`${n} endpoint(s): 1/n, 1/(n-1), …, 1/2, then unconditional`, () => {
      const svc = chain('KUBE-SVC-', 'ns/web:http');
      const rules = run([web({}, endpoints(n))]);
      const dispatch = rulesOf(rules.nat, 'nat', svc).filter((l) => l.includes(' -> '));
      assert.equal(dispatch.length, n);
      const probs = dispatch.flatMap((l) => /--probability (\S+)/.exec(l)?.[1] ?? []);
      assert.deepEqual(probs, expected[n]);
      assert.doesNotMatch(dispatch.at(-1)!, /statistic/);
      dispatch.forEach((l, i) =>
        assert.match(l, new RegExp(`"ns/web:http -> 192.168.8.${10 + i}:8080"`)),
      );
    });
  }

  test('endpoints are ordered by their "ip:port" string, as byEndpoint sorts them', () => {
    const eps = ['10.0.1.2', '10.0.1.10', '10.0.1.1'].map((ip) => ({ ip, port: 80 }));
    const rules = run([web({}, eps)]);
    const order = rulesOf(rules.nat, 'nat', chain('KUBE-SVC-', 'ns/web:http')).flatMap(
      (l) => / -> (\S+?)"/.exec(l)?.[1] ?? [],
    );
    // ':' (0x3a) sorts after '0', so 10.0.1.10:80 precedes 10.0.1.1:80.
    assert.deepEqual(order, ['10.0.1.10:80', '10.0.1.1:80', '10.0.1.2:80']);
  });

  test('not-ready endpoints are left out; an unnamed port has no ":port" in names', () => {
    const rules = run([
      {
        service: makeService('ns', 'plain', { clusterIP: '10.96.0.9', ports: [makePort('', 80)] }),
        endpoints: [
          makeEndpoints('', 80, [
            { ip: '192.168.1.1', port: 80 },
            { ip: '192.168.1.2', port: 80, ready: false },
          ]),
        ],
      },
    ]);
    const svc = servicePortChainName('KUBE-SVC-', 'ns/plain', 'tcp');
    assert.deepEqual(rulesOf(rules.nat, 'nat', svc), [
      `-A ${svc} -m comment --comment "ns/plain cluster IP" -m tcp -p tcp -d 10.96.0.9 --dport 80 ! -s 192.168.0.0/16 -j KUBE-MARK-MASQ`,
      `-A ${svc} -m comment --comment "ns/plain -> 192.168.1.1:80" -j ${sep('ns/plain', '192.168.1.1:80')}`,
    ]);
    assert.equal(rules.totalEndpoints, 2, 'not-ready endpoints still count for large-cluster mode');
  });
});

describe('session affinity ClientIP (§1.8)', () => {
  test('rcheck rules for every endpoint come first; the SEP DNAT rule sets the list', () => {
    const rules = run([
      web({ sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 600 }, endpoints(2)),
    ]);
    const svc = chain('KUBE-SVC-', 'ns/web:http');
    const seps = ['192.168.8.10:8080', '192.168.8.11:8080'].map((e) => sep('ns/web:http', e));
    assert.deepEqual(rulesOf(rules.nat, 'nat', svc).slice(1), [
      `-A ${svc} -m comment --comment "ns/web:http -> 192.168.8.10:8080" -m recent --name ${seps[0]} --rcheck --seconds 600 --reap -j ${seps[0]}`,
      `-A ${svc} -m comment --comment "ns/web:http -> 192.168.8.11:8080" -m recent --name ${seps[1]} --rcheck --seconds 600 --reap -j ${seps[1]}`,
      `-A ${svc} -m comment --comment "ns/web:http -> 192.168.8.10:8080" -m statistic --mode random --probability 0.5000000000 -j ${seps[0]}`,
      `-A ${svc} -m comment --comment "ns/web:http -> 192.168.8.11:8080" -j ${seps[1]}`,
    ]);
    assert.deepEqual(rulesOf(rules.nat, 'nat', seps[1]!), [
      `-A ${seps[1]} -m comment --comment ns/web:http -s 192.168.8.11 -j KUBE-MARK-MASQ`,
      `-A ${seps[1]} -m comment --comment ns/web:http -m recent --name ${seps[1]} --set -m tcp -p tcp -j DNAT --to-destination 192.168.8.11:8080`,
    ]);
  });
});

describe('externalTrafficPolicy Local', () => {
  const lb = (eps: Ep[]) =>
    web(
      {
        type: 'LoadBalancer',
        externalTrafficPolicy: 'Local',
        ports: [makePort('http', 80, { targetPort: 8080, nodePort: 31080 })],
        healthCheckNodePort: 32000,
      },
      eps,
    );
  const lbIPs = { loadBalancerIPs: new Map([['ns/web', ['10.1.110.105']]]) };
  const S = 'ns/web:http';

  test('with a local endpoint: SVL holds it alone, EXT ends in SVL, no DROP', () => {
    const eps = [
      { ip: '192.168.104.70', port: 8080, node: NODE },
      { ip: '192.168.8.20', port: 8080, node: 'worker-2' },
    ];
    const rules = run([lb(eps)], lbIPs);
    const ext = chain('KUBE-EXT-', S);
    const svl = chain('KUBE-SVL-', S);
    const svc = chain('KUBE-SVC-', S);
    assert.deepEqual(rulesOf(rules.nat, 'nat', ext), [
      `-A ${ext} -m comment --comment "pod traffic for ${S} external destinations" -s 192.168.0.0/16 -j ${svc}`,
      `-A ${ext} -m comment --comment "masquerade LOCAL traffic for ${S} external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
      `-A ${ext} -m comment --comment "route LOCAL traffic for ${S} external destinations" -m addrtype --src-type LOCAL -j ${svc}`,
      `-A ${ext} -j ${svl}`,
    ]);
    const svlRules = rulesOf(rules.nat, 'nat', svl);
    assert.equal(svlRules.length, 1);
    assert.match(svlRules[0]!, /-> 192\.168\.104\.70:8080/);
    // The cluster-wide chain has both, after its masquerade rule.
    assert.equal(rulesOf(rules.nat, 'nat', svc).length, 3);
    assert.deepEqual(rulesOf(rules.filter, 'filter', 'KUBE-EXTERNAL-SERVICES'), []);
    assert.deepEqual(rulesOf(rules.filter, 'filter', 'KUBE-NODEPORTS'), [
      `-A KUBE-NODEPORTS -m comment --comment "${S} health check node port" -m tcp -p tcp --dport 32000 -j ACCEPT`,
    ]);
    assert.deepEqual(rulesOf(rules.nat, 'nat', 'KUBE-NODEPORTS'), [
      `-A KUBE-NODEPORTS -m comment --comment ${S} -m tcp -p tcp --dport 31080 -j ${ext}`,
    ]);
  });

  test('without a local endpoint: no SVL, EXT just ends, external traffic is DROPped in filter', () => {
    const rules = run([lb([{ ip: '192.168.8.20', port: 8080, node: 'worker-2' }])], lbIPs);
    const ext = chain('KUBE-EXT-', S);
    assert.ok(!rules.chains.nat.includes(chain('KUBE-SVL-', S)));
    assert.equal(rulesOf(rules.nat, 'nat', ext).length, 3);
    assert.deepEqual(rulesOf(rules.filter, 'filter', 'KUBE-EXTERNAL-SERVICES'), [
      `-A KUBE-EXTERNAL-SERVICES -m comment --comment "${S} has no local endpoints" -m tcp -p tcp -d 10.1.110.105 --dport 80 -j DROP`,
      `-A KUBE-EXTERNAL-SERVICES -m comment --comment "${S} has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 31080 -j DROP`,
    ]);
    // ClusterIP traffic still works through the cluster-wide chain.
    assert.equal(rulesOf(rules.nat, 'nat', 'KUBE-SERVICES').length, 3);
    assert.deepEqual(rulesOf(rules.filter, 'filter', 'KUBE-SERVICES'), []);
  });
});

describe('internalTrafficPolicy Local', () => {
  test('with a local endpoint: the ClusterIP jumps to SVL, which masquerades off-cluster sources', () => {
    const rules = run([
      web({ internalTrafficPolicy: 'Local' }, [
        { ip: '192.168.104.70', port: 8080, node: NODE },
        { ip: '192.168.8.20', port: 8080, node: 'worker-2' },
      ]),
    ]);
    const svl = chain('KUBE-SVL-', 'ns/web:http');
    assert.match(rulesOf(rules.nat, 'nat', 'KUBE-SERVICES')[0]!, new RegExp(`-j ${svl}$`));
    assert.ok(!rules.chains.nat.includes(chain('KUBE-SVC-', 'ns/web:http')));
    const r = rulesOf(rules.nat, 'nat', svl);
    assert.match(r[0]!, /! -s 192\.168\.0\.0\/16 -j KUBE-MARK-MASQ$/);
    assert.equal(r.length, 2);
  });

  test('without a local endpoint: filter DROP "has no local endpoints", no nat rules', () => {
    const rules = run([
      web({ internalTrafficPolicy: 'Local' }, [{ ip: '192.168.8.20', port: 8080, node: 'w2' }]),
    ]);
    assert.deepEqual(rulesOf(rules.filter, 'filter', 'KUBE-SERVICES'), [
      '-A KUBE-SERVICES -m comment --comment "ns/web:http has no local endpoints" -m tcp -p tcp -d 10.96.0.50 --dport 80 -j DROP',
    ]);
    assert.equal(rulesOf(rules.nat, 'nat', 'KUBE-SERVICES').length, 1); // the NodePort tail call
  });
});

describe('NodePort and LoadBalancer', () => {
  test('NodePort: KUBE-NODEPORTS → EXT (masquerade) → SVC', () => {
    const rules = run([
      web(
        { type: 'NodePort', ports: [makePort('http', 80, { targetPort: 8080, nodePort: 30080 })] },
        endpoints(1),
      ),
    ]);
    const ext = chain('KUBE-EXT-', 'ns/web:http');
    assert.deepEqual(rulesOf(rules.nat, 'nat', 'KUBE-NODEPORTS'), [
      `-A KUBE-NODEPORTS -m comment --comment ns/web:http -m tcp -p tcp --dport 30080 -j ${ext}`,
    ]);
    assert.deepEqual(rulesOf(rules.nat, 'nat', ext), [
      `-A ${ext} -m comment --comment "masquerade traffic for ns/web:http external destinations" -j KUBE-MARK-MASQ`,
      `-A ${ext} -j ${chain('KUBE-SVC-', 'ns/web:http')}`,
    ]);
  });

  test('source ranges: LB IP → FW chain; node IP inside a range admits the VIP as source', () => {
    const rules = run(
      [
        web(
          {
            type: 'LoadBalancer',
            ports: [makePort('http', 80, { targetPort: 8080, nodePort: 30080 })],
            loadBalancerSourceRanges: ['10.1.0.0/24', '10.1.110.0/24'],
          },
          endpoints(1),
        ),
      ],
      { loadBalancerIPs: new Map([['ns/web', ['10.1.110.105']]]) },
    );
    const fw = chain('KUBE-FW-', 'ns/web:http');
    const ext = chain('KUBE-EXT-', 'ns/web:http');
    assert.match(
      rulesOf(rules.nat, 'nat', 'KUBE-SERVICES')[1]!,
      new RegExp(`-d 10.1.110.105 --dport 80 -j ${fw}$`),
    );
    assert.deepEqual(rulesOf(rules.nat, 'nat', fw), [
      `-A ${fw} -m comment --comment "ns/web:http loadbalancer IP" -s 10.1.0.0/24 -j ${ext}`,
      `-A ${fw} -m comment --comment "ns/web:http loadbalancer IP" -s 10.1.110.0/24 -j ${ext}`,
      `-A ${fw} -m comment --comment "ns/web:http loadbalancer IP" -s 10.1.110.105 -j ${ext}`,
      `-A ${fw} -m comment --comment "other traffic to ns/web:http will be dropped by KUBE-PROXY-FIREWALL"`,
    ]);
    assert.deepEqual(rulesOf(rules.filter, 'filter', 'KUBE-PROXY-FIREWALL'), [
      `-A KUBE-PROXY-FIREWALL -m comment --comment "ns/web:http traffic not accepted by ${fw}" -m tcp -p tcp -d 10.1.110.105 --dport 80 -j DROP`,
    ]);
    // NodePorts bypass the source ranges.
    assert.match(rulesOf(rules.nat, 'nat', 'KUBE-NODEPORTS')[0]!, new RegExp(`-j ${ext}$`));
  });

  test('without a loadBalancerIPs map, spec.loadBalancerIP stands in', () => {
    const rules = run([
      web({ type: 'LoadBalancer', loadBalancerIP: '10.1.110.105' }, endpoints(1)),
    ]);
    assert.match(
      rules.nat,
      /"ns\/web:http loadbalancer IP" -m tcp -p tcp -d 10\.1\.110\.105 --dport 80/,
    );
    const none = run(
      [web({ type: 'LoadBalancer', loadBalancerIP: '10.1.110.105' }, endpoints(1))],
      {
        loadBalancerIPs: new Map(),
      },
    );
    assert.doesNotMatch(none.nat, /loadbalancer IP/);
  });
});

describe('services without endpoints', () => {
  test('REJECT for the ClusterIP, externalIPs, NodePort and LB IPs; no nat chains', () => {
    const rules = run(
      [
        web(
          {
            type: 'LoadBalancer',
            externalIPs: ['10.1.110.200'],
            ports: [makePort('http', 80, { targetPort: 8080, nodePort: 30080 })],
          },
          [{ ip: '192.168.8.20', port: 8080, ready: false }],
        ),
      ],
      { loadBalancerIPs: new Map([['ns/web', ['10.1.110.105']]]) },
    );
    const c = '"ns/web:http has no endpoints"';
    assert.deepEqual(rulesOf(rules.filter, 'filter', 'KUBE-SERVICES'), [
      `-A KUBE-SERVICES -m comment --comment ${c} -m tcp -p tcp -d 10.96.0.50 --dport 80 -j REJECT`,
    ]);
    assert.deepEqual(rulesOf(rules.filter, 'filter', 'KUBE-EXTERNAL-SERVICES'), [
      `-A KUBE-EXTERNAL-SERVICES -m comment --comment ${c} -m tcp -p tcp -d 10.1.110.200 --dport 80 -j REJECT`,
      `-A KUBE-EXTERNAL-SERVICES -m comment --comment ${c} -m tcp -p tcp -d 10.1.110.105 --dport 80 -j REJECT`,
      `-A KUBE-EXTERNAL-SERVICES -m comment --comment ${c} -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT`,
    ]);
    assert.deepEqual(rules.chains.nat, [
      'KUBE-SERVICES',
      'KUBE-NODEPORTS',
      'KUBE-POSTROUTING',
      'KUBE-MARK-MASQ',
    ]);
  });

  test('headless and ExternalName services get no rules at all', () => {
    const rules = run([
      web({ headless: true, clusterIP: null }, endpoints(2)),
      {
        service: makeService('ns', 'ext', { type: 'ExternalName', externalName: 'example.org' }),
        endpoints: [],
      },
    ]);
    assert.doesNotMatch(rules.restoreText, /ns\/web|ns\/ext/);
  });
});

describe('stale chains', () => {
  test('chains of the previous sync that are gone are flushed and deleted (-X)', () => {
    const first = run([web({}, endpoints(3))]);
    const second = kubeProxyRulesFor([web({}, endpoints(1))], OPTS, first);
    const gone = ['192.168.8.11:8080', '192.168.8.12:8080'].map((e) => sep('ns/web:http', e));
    assert.deepEqual(second.deletedChains, [...gone].sort());
    const lines = second.nat.split('\n');
    for (const c of gone) {
      assert.ok(lines.includes(`:${c} - [0:0]`), `${c} declared (flushed)`);
      assert.ok(lines.includes(`-X ${c}`), `${c} deleted`);
      assert.ok(!second.chains.nat.includes(c));
    }
    // -X comes before the NodePort tail call, which stays the last rule.
    assert.ok(
      lines.indexOf(`-X ${gone[1]}`) < lines.findIndex((l) => l.includes('must be the last')),
    );
    // Removing the service entirely deletes its SVC chain too; nothing of it twice.
    const third = kubeProxyRulesFor([], OPTS, second);
    assert.deepEqual(
      third.deletedChains,
      [chain('KUBE-SVC-', 'ns/web:http'), sep('ns/web:http', '192.168.8.10:8080')].sort(),
    );
    assert.deepEqual(kubeProxyRulesFor([], OPTS, third).deletedChains, []);
  });
});

describe('partial sync (tryPartialSync)', () => {
  /** `ns/api`, port "grpc" 9000 → 9090. */
  const api = (eps: readonly Ep[]): KubeProxyServiceInput => ({
    service: makeService('ns', 'api', {
      clusterIP: '10.96.0.60',
      ports: [makePort('grpc', 9000, { targetPort: 9090 })],
    }),
    endpoints: [makeEndpoints('grpc', 9000, eps)],
  });
  const apiEps = (n: number): Ep[] =>
    Array.from({ length: n }, (_, i) => ({ ip: `192.168.9.${10 + i}`, port: 9090, node: null }));
  const declared = (nat: string) =>
    nat
      .split('\n')
      .filter((l) => l.startsWith(':'))
      .map((l) => l.slice(1, l.indexOf(' ')));

  test('unchanged Services keep their chains; the top-level chains are written whole', () => {
    const first = run([web({}, endpoints(2)), api(apiEps(2))]);
    assert.equal(first.partial, false);
    assert.equal(first.writtenServices, 2);
    const second = kubeProxyRulesFor([web({}, endpoints(2)), api(apiEps(2))], OPTS, first);
    assert.equal(second.partial, true);
    assert.equal(second.writtenServices, 0);
    assert.deepEqual(declared(second.nat), [
      'KUBE-SERVICES',
      'KUBE-NODEPORTS',
      'KUBE-POSTROUTING',
      'KUBE-MARK-MASQ',
    ]);
    assert.equal(rulesOf(second.nat, 'nat', 'KUBE-SERVICES').length, 3);
    assert.equal(second.filter, first.filter);
    assert.deepEqual(second.chains, first.chains);
  });

  test('a changed Service is written whole, the others not; its stale chains go', () => {
    const first = run([web({}, endpoints(3)), api(apiEps(2))]);
    const second = kubeProxyRulesFor([web({}, endpoints(2)), api(apiEps(2))], OPTS, first);
    assert.equal(second.writtenServices, 1);
    const svc = chain('KUBE-SVC-', 'ns/web:http');
    assert.deepEqual(declared(second.nat), [
      'KUBE-SERVICES',
      'KUBE-NODEPORTS',
      'KUBE-POSTROUTING',
      'KUBE-MARK-MASQ',
      svc,
      sep('ns/web:http', '192.168.8.10:8080'),
      sep('ns/web:http', '192.168.8.11:8080'),
      sep('ns/web:http', '192.168.8.12:8080'),
    ]);
    assert.deepEqual(second.deletedChains, [sep('ns/web:http', '192.168.8.12:8080')]);
    assert.doesNotMatch(second.nat, /ns\/api:grpc -> /);
    assert.ok(second.chains.nat.includes(chain('KUBE-SVC-', 'ns/api:grpc')));
  });

  test('a change of the options, or fullSync, writes everything', () => {
    const first = run([web({}, endpoints(1)), api(apiEps(1))]);
    const other = kubeProxyRulesFor(
      [web({}, endpoints(1)), api(apiEps(1))],
      {
        ...OPTS,
        clusterCIDR: '10.244.0.0/16',
      },
      first,
    );
    assert.equal(other.partial, false);
    const forced = kubeProxyRulesFor(
      [web({}, endpoints(1)), api(apiEps(1))],
      { ...OPTS, fullSync: true },
      first,
    );
    assert.equal(forced.partial, false);
    assert.equal(forced.restoreText, first.restoreText);
  });

  test('partial syncs restored one after the other leave what one full sync writes', () => {
    const steps = [
      [web({}, endpoints(3)), api(apiEps(2))],
      [web({}, endpoints(2)), api(apiEps(2))],
      [web({ type: 'NodePort' }, endpoints(2)), api(apiEps(3))],
      [api(apiEps(3))],
    ];
    const nf = () =>
      new Netfilter({
        addressing: { addressType: () => 2, interfaceAddress: () => 0 },
        log: () => undefined,
        saveDate: () => new Date(0),
      });
    const incremental = nf();
    let previous: ReturnType<typeof kubeProxyRulesFor> | undefined;
    for (const inputs of steps) {
      previous = kubeProxyRulesFor(inputs, OPTS, previous);
      incremental.restore(previous.restoreText, { noflush: true });
    }
    assert.equal(previous!.partial, true);
    const once = nf();
    once.restore(kubeProxyRulesFor(steps[steps.length - 1]!, OPTS).restoreText, {
      noflush: true,
    });
    assert.equal(incremental.save(), once.save());
  });
});

describe('options and fixed rules', () => {
  test('defaults: mark 0x00004000 as Go prints %#08x, --random-fully, no nfacct, localhost NodePorts', () => {
    const rules = run([]);
    assert.deepEqual(rulesOf(rules.nat, 'nat', 'KUBE-POSTROUTING'), [
      '-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN',
      '-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000',
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]);
    assert.deepEqual(rulesOf(rules.nat, 'nat', 'KUBE-MARK-MASQ'), [
      '-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000',
    ]);
    assert.deepEqual(rulesOf(rules.filter, 'filter', 'KUBE-FORWARD'), [
      '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
      '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT',
      '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]);
    assert.equal(rulesOf(rules.filter, 'filter', 'KUBE-FIREWALL').length, 1);
    assert.deepEqual(rulesOf(rules.nat, 'nat', 'KUBE-SERVICES'), [
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    ]);
    assert.equal(rules.mangle, '*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n');
  });

  test('masqueradeBit, no localhost NodePorts, be_liberal, no random-fully', () => {
    const rules = run([], {
      masqueradeBit: 15,
      localhostNodePorts: false,
      conntrackTCPBeLiberal: true,
      randomFully: false,
    });
    assert.match(rules.nat, /--or-mark 0x00008000\n/);
    assert.match(rules.nat, /-j MASQUERADE\n/);
    assert.doesNotMatch(rules.filter, /KUBE-FIREWALL|INVALID/);
    assert.match(rules.nat, /-m addrtype --dst-type LOCAL ! -d 127\.0\.0\.0\/8 -j KUBE-NODEPORTS/);
  });

  test('nodePortAddresses: one tail-call rule per matching node address', () => {
    const rules = run([], {
      nodeIPs: ['10.1.110.102', '172.17.0.1'],
      nodePortAddresses: ['10.1.110.0/24', '127.0.0.0/8'],
    });
    assert.deepEqual(
      rulesOf(rules.nat, 'nat', 'KUBE-SERVICES').map((l) => l.split('chain" ')[1]),
      ['-d 127.0.0.1 -j KUBE-NODEPORTS', '-d 10.1.110.102 -j KUBE-NODEPORTS'],
    );
    // Without loopback in nodePortAddresses, localhost NodePorts are off (no KUBE-FIREWALL).
    const noLo = run([], { nodePortAddresses: ['primary'] });
    assert.deepEqual(
      rulesOf(noLo.nat, 'nat', 'KUBE-SERVICES').map((l) => l.split('chain" ')[1]),
      ['-d 10.1.110.102 -j KUBE-NODEPORTS'],
    );
    assert.doesNotMatch(noLo.filter, /KUBE-FIREWALL/);
  });

  test('masqueradeAll marks every ClusterIP connection; no detector, no masquerade rule', () => {
    const all = run([web({}, endpoints(1))], { masqueradeAll: true });
    const svc = chain('KUBE-SVC-', 'ns/web:http');
    assert.match(rulesOf(all.nat, 'nat', svc)[0]!, /--dport 80 -j KUBE-MARK-MASQ$/);
    const none = run([web({}, endpoints(1))], { clusterCIDR: '' });
    assert.equal(rulesOf(none.nat, 'nat', svc).length, 1);
  });

  test('UDP and SCTP ports use their own match module', () => {
    const rules = run([
      {
        service: makeService('kube-system', 'kube-dns', {
          clusterIP: '10.96.0.10',
          ports: [
            makePort('dns', 53, { protocol: 'UDP' }),
            makePort('sctp', 9, { protocol: 'SCTP' }),
          ],
        }),
        endpoints: [
          makeEndpoints('dns', 53, [{ ip: '192.168.8.207', port: 53 }], 'UDP'),
          makeEndpoints('sctp', 9, [{ ip: '192.168.8.207', port: 9 }], 'SCTP'),
        ],
      },
    ]);
    assert.match(
      rules.nat,
      /-A KUBE-SERVICES -m comment --comment "kube-system\/kube-dns:dns cluster IP" -m udp -p udp -d 10\.96\.0\.10 --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU/,
    );
    assert.match(rules.nat, /-m sctp -p sctp -j DNAT --to-destination 192\.168\.8\.207:9/);
  });

  test('jump rules in the order kube-proxy inserts them, and the chains it ensures', () => {
    const { jumps, ensureChains } = run([]);
    assert.equal(jumps.length, 14);
    assert.deepEqual(jumps[0], [
      '-t',
      'filter',
      '-I',
      'INPUT',
      '-m',
      'conntrack',
      '--ctstate',
      'NEW',
      '-m',
      'comment',
      '--comment',
      'kubernetes externally-visible service portals',
      '-j',
      'KUBE-EXTERNAL-SERVICES',
    ]);
    assert.deepEqual(jumps[10], [
      '-t',
      'nat',
      '-I',
      'PREROUTING',
      '-m',
      'comment',
      '--comment',
      'kubernetes service portals',
      '-j',
      'KUBE-SERVICES',
    ]);
    assert.deepEqual(jumps[11], [
      '-t',
      'nat',
      '-I',
      'POSTROUTING',
      '-m',
      'comment',
      '--comment',
      'kubernetes postrouting rules',
      '-j',
      'KUBE-POSTROUTING',
    ]);
    assert.deepEqual(jumps[13], ['-t', 'filter', '-I', 'OUTPUT', '-j', 'KUBE-FIREWALL']);
    assert.deepEqual(ensureChains.slice(0, 3), [
      ['mangle', 'KUBE-PROXY-CANARY'],
      ['nat', 'KUBE-PROXY-CANARY'],
      ['filter', 'KUBE-PROXY-CANARY'],
    ]);
    assert.equal(ensureChains.length, 3 + 8);
  });
});

describe('large clusters (largeClusterEndpointsThreshold = 1000)', () => {
  const many = (n: number) =>
    Array.from({ length: n }, (_, i) =>
      web({}, [{ ip: `192.168.${Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8080 }]),
    ).map((input, i) => ({ ...input, service: { ...input.service, name: `web${i}` } }));

  test('1000 endpoints keep per-endpoint comments; 1001 drop them from SVC→SEP and SEP rules', () => {
    const small = kubeProxyRulesFor(many(1000), OPTS);
    assert.equal(small.largeClusterMode, false);
    assert.match(small.nat, /-> 192\.168\.0\.1:8080/);
    const big = kubeProxyRulesFor(many(1001), OPTS);
    assert.equal(big.largeClusterMode, true);
    assert.doesNotMatch(big.nat, / -> /);
    const svc = servicePortChainName('KUBE-SVC-', 'ns/web0:http', 'tcp');
    const sepChain = sep('ns/web0:http', '192.168.0.1:8080');
    assert.deepEqual(rulesOf(big.nat, 'nat', svc), [
      `-A ${svc} -m comment --comment "ns/web0:http cluster IP" -m tcp -p tcp -d 10.96.0.50 --dport 80 ! -s 192.168.0.0/16 -j KUBE-MARK-MASQ`,
      `-A ${svc} -j ${sepChain}`,
    ]);
    assert.deepEqual(rulesOf(big.nat, 'nat', sepChain), [
      `-A ${sepChain} -s 192.168.0.1 -j KUBE-MARK-MASQ`,
      `-A ${sepChain} -m tcp -p tcp -j DNAT --to-destination 192.168.0.1:8080`,
    ]);
  });
});

describe('kubeProxyRules on the reference lab', () => {
  const state = buildClusterState(
    loadManifests([join(repoRoot, 'nodes'), join(repoRoot, 'compose', 'manifests')]),
  );

  test('kube-dns and kubernetes get their well-known chains; every node agrees on names', () => {
    const rules = kubeProxyRules(state, kubeProxyOptionsFor(state, 'worker-1'));
    assert.deepEqual(checkRuleJumps(rules.restoreText), []);
    assert.ok(rules.chains.nat.includes('KUBE-SVC-TCOU7JCQXEZGVUNU'));
    assert.ok(rules.chains.nat.includes('KUBE-SVC-NPX46M4PTMTKRN6Y'));
    assert.match(
      rules.nat,
      /"kube-system\/kube-dns:dns cluster IP" -m udp -p udp -d 10\.96\.0\.10 --dport 53 ! -s 192\.168\.0\.0\/16 -j KUBE-MARK-MASQ/,
    );
    assert.match(
      rules.nat,
      /"ingress-nginx\/ingress-nginx-controller:http loadbalancer IP" -m tcp -p tcp -d 10\.1\.110\.105 --dport 80/,
    );
    const other = kubeProxyRules(state, kubeProxyOptionsFor(state, 'worker-2'));
    assert.deepEqual(other.chains.nat, rules.chains.nat);
  });

  test('a node that is down takes its pods out of the endpoints', () => {
    const up = kubeProxyRules(state, kubeProxyOptionsFor(state, 'worker-1'));
    const down = kubeProxyRules(state, {
      ...kubeProxyOptionsFor(state, 'worker-1'),
      downNodes: new Set(['worker-2']),
    });
    assert.match(up.nat, /DNAT --to-destination 192\.168\.8\.207:53/);
    assert.doesNotMatch(down.nat, /DNAT --to-destination 192\.168\.8\.207:53/);
  });
});
