/**
 * kube-proxy's rules (upstream TestOverallIPTablesRules, reference/dataplane.md §1.6)
 * through the engine: restored as kube-proxy feeds them, packets of the upstream
 * packet-flow tests (§1.9) get the DNAT, masquerade mark and drops they expect.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Hook, Verdict } from '../../../src/netfilter/packet-meta.js';
import { ip, makeNf, run, syn, type TestNf } from './helpers.js';

const fixtures = join(import.meta.dirname, '../../../../test/unit/netfilter/fixtures');
const dump = readFileSync(join(fixtures, 'kube-proxy-overall.rules'), 'utf8');

/** The jumps kube-proxy installs in the built-in chains (§1.3), then the dump. */
function load(): TestNf {
  const t = makeNf({ random: () => 0.1 }, { eth0: '192.168.0.2', lo: '127.0.0.1' });
  t.nf.restore(
    [
      '*filter',
      ':KUBE-EXTERNAL-SERVICES - [0:0]',
      ':KUBE-FIREWALL - [0:0]',
      ':KUBE-FORWARD - [0:0]',
      ':KUBE-NODEPORTS - [0:0]',
      ':KUBE-PROXY-FIREWALL - [0:0]',
      ':KUBE-SERVICES - [0:0]',
      '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
      '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
      '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
      '-A INPUT -j KUBE-FIREWALL',
      '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
      '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
      '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
      'COMMIT',
      '*nat',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-POSTROUTING - [0:0]',
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
      'COMMIT',
      '',
    ].join('\n'),
    { noflush: true },
  );
  t.nf.restore(dump, { noflush: true });
  return t;
}

/** nat PREROUTING for a new connection arriving on `inIf`. */
function prerouting(t: TestNf, src: string, dst: string, dport: number, inIf = 'eth0') {
  const m = syn(src, 40000, dst, dport, { hook: Hook.PREROUTING, inIf, ctState: 2 });
  const r = run(t.nf, 'nat', m);
  return {
    verdict: r.verdict,
    to: r.nat ? `${ipStr(r.nat.minAddr)}:${r.nat.minPort}` : null,
    masq: (m.mark & 0x4000) !== 0,
  };
}

function ipStr(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

describe('kube-proxy TestOverallIPTablesRules', () => {
  it('restores as kube-proxy writes it, nfacct included, and saves in iptables-save form', () => {
    const { nf } = load();
    const nat = nf.save({ table: 'nat' });
    assert.match(
      nat,
      /^-A KUBE-NODEPORTS -d 127\.0\.0\.0\/8 -p tcp -m comment --comment "ns2\/svc2:p80" -m tcp --dport 3001 -m nfacct --nfacct-name {2}localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT$/m,
    );
    assert.match(
      nat,
      /^-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4\/svc4:p80 -> 10\.180\.0\.4:80" -m statistic --mode random --probability 0\.50000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC$/m,
    );
    assert.deepEqual(nf.indexRuns('nat', 'KUBE-SERVICES'), [[1, 9]]);
  });

  it('the packet flows of the upstream tests', () => {
    const t = load();
    // TestClusterIPGeneral
    assert.deepEqual(prerouting(t, '10.180.0.2', '172.30.0.41', 80, 'cali1'), {
      verdict: Verdict.ACCEPT,
      to: '10.180.0.1:80',
      masq: false,
    });
    assert.equal(prerouting(t, '10.180.0.1', '172.30.0.41', 80, 'cali1').masq, true, 'hairpin');
    assert.equal(
      prerouting(t, '10.0.0.5', '172.30.0.41', 80, 'cali1').masq,
      false,
      'from the pod CIDR',
    );
    assert.equal(
      prerouting(t, '203.0.113.2', '172.30.0.41', 80).masq,
      true,
      'not from the pod CIDR',
    );
    // TestLoadBalancer / TestNodePorts
    assert.deepEqual(prerouting(t, '203.0.113.2', '192.168.0.2', 3001), {
      verdict: Verdict.ACCEPT,
      to: null,
      masq: false,
    });
    assert.deepEqual(prerouting(t, '203.0.113.2', '192.168.0.2', 3003), {
      verdict: Verdict.ACCEPT,
      to: '10.180.0.3:80',
      masq: true,
    });
    assert.deepEqual(prerouting(t, '203.0.113.2', '5.6.7.8', 80), {
      verdict: Verdict.ACCEPT,
      to: '10.180.0.3:80',
      masq: true,
    });
    // blocked by loadBalancerSourceRanges: no DNAT in nat, dropped in filter
    assert.deepEqual(prerouting(t, '203.0.113.130', '5.6.7.8', 80), {
      verdict: Verdict.ACCEPT,
      to: null,
      masq: false,
    });
    const blocked = syn('203.0.113.130', 40000, '5.6.7.8', 80, {
      hook: Hook.FORWARD,
      inIf: 'eth0',
      outIf: 'tunl0',
      ctState: 2,
    });
    assert.equal(run(t.nf, 'filter', blocked).verdict, Verdict.DROP);
    // TestNoEndpointsReject
    const svc6 = syn('10.0.0.2', 40000, '172.30.0.46', 80, {
      hook: Hook.FORWARD,
      inIf: 'cali1',
      outIf: 'eth0',
      ctState: 2,
    });
    const r = run(t.nf, 'filter', svc6);
    assert.equal(r.verdict, Verdict.REJECT);
    assert.equal(r.rejectWith, 'icmp-port-unreachable');
    // the localnet firewall
    const martian = syn('10.0.0.2', 40000, '127.0.0.1', 80, {
      hook: Hook.INPUT,
      inIf: 'eth0',
      ctState: 2,
    });
    assert.equal(run(t.nf, 'filter', martian).verdict, Verdict.DROP);
    // masquerading in POSTROUTING, for the marked connection
    const out = syn('203.0.113.2', 40000, '10.180.0.3', 80, {
      hook: Hook.POSTROUTING,
      inIf: 'eth0',
      outIf: 'eth0',
      mark: 0x4000,
      ctState: 2,
    });
    const post = run(t.nf, 'nat', out);
    assert.equal(post.nat!.kind, 'MASQUERADE');
    assert.equal(post.nat!.minAddr, ip('192.168.0.2'));
    assert.equal(out.mark, 0);
  });

  it('ClientIP affinity: the second connection from a client goes to the same endpoint', () => {
    const t = load();
    const first = prerouting(t, '203.0.113.2', '172.30.0.45', 80);
    assert.equal(first.to, '10.180.0.3:80');
    assert.match(t.nf.recentList('KUBE-SEP-I77PXRDZVX7PMWMN')!, /^src=203\.0\.113\.2 /);
    t.clock.now += 5000;
    assert.equal(prerouting(t, '203.0.113.2', '172.30.0.45', 80).to, '10.180.0.3:80');
  });
});
