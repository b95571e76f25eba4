/**
 * The (destination, protocol, destination port) index: a packet to one of 10,000
 * Services is matched with about as much work as with 10, and indexed evaluation
 * is indistinguishable from rule-by-rule evaluation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Hook } from '../../../src/netfilter/packet-meta.js';
import { ip, makeNf, run, syn, udpMeta } from './helpers.js';

function ipStr(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** kube-proxy's nat KUBE-SERVICES for n ClusterIP services (10.96.0.0/16), one endpoint each. */
function services(n: number): string {
  const lines = [
    '*nat',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
  ];
  for (let i = 0; i < n; i++) lines.push(`:KUBE-SVC-${i} - [0:0]`, `:KUBE-SEP-${i} - [0:0]`);
  lines.push('-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
  lines.push('-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000');
  for (let i = 0; i < n; i++) {
    const cip = ipStr(ip('10.96.0.0') + 10 + i);
    const proto = i % 3 === 2 ? 'udp' : 'tcp';
    lines.push(
      `-A KUBE-SERVICES -m comment --comment "ns/svc${i}:p cluster IP" -m ${proto} -p ${proto} -d ${cip} --dport ${80 + (i % 7)} -j KUBE-SVC-${i}`,
      `-A KUBE-SVC-${i} -m comment --comment "ns/svc${i}:p cluster IP" -m ${proto} -p ${proto} -d ${cip} --dport ${80 + (i % 7)} ! -s 192.168.0.0/16 -j KUBE-MARK-MASQ`,
      `-A KUBE-SVC-${i} -m comment --comment "ns/svc${i}:p -> 192.168.1.${i % 250}:8080" -j KUBE-SEP-${i}`,
      `-A KUBE-SEP-${i} -m comment --comment ns/svc${i}:p -s 192.168.1.${i % 250}/32 -j KUBE-MARK-MASQ`,
      `-A KUBE-SEP-${i} -m comment --comment ns/svc${i}:p -m ${proto} -p ${proto} -j DNAT --to-destination 192.168.1.${i % 250}:8080`,
    );
  }
  lines.push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    'COMMIT',
    '',
  );
  return lines.join('\n');
}

function cost(n: number, target: number): { rules: number; lookups: number; dnat: number } {
  const { nf } = makeNf();
  nf.restore(services(n), { noflush: true });
  const proto = target % 3 === 2 ? 'udp' : 'tcp';
  const dst = ipStr(ip('10.96.0.0') + 10 + target);
  const m =
    proto === 'tcp'
      ? syn('192.168.2.7', 40000, dst, 80 + (target % 7), { inIf: 'cali0' })
      : udpMeta('192.168.2.7', 40000, dst, 80 + (target % 7), { inIf: 'cali0' });
  nf.stats.rulesEvaluated = 0;
  nf.stats.indexLookups = 0;
  const r = run(nf, 'nat', m);
  return { rules: nf.stats.rulesEvaluated, lookups: nf.stats.indexLookups, dnat: r.nat!.minAddr };
}

describe('chain index', () => {
  it('a packet to the last of 10,000 services tests as few rules as with 10', () => {
    const small = cost(10, 9);
    const large = cost(10_000, 9_999);
    assert.equal(large.dnat, ip(`192.168.1.${9_999 % 250}`));
    assert.equal(small.dnat, ip('192.168.1.9'));
    assert.ok(
      large.rules <= small.rules,
      `10,000 services: ${large.rules} rules tested, 10: ${small.rules}`,
    );
    assert.ok(large.rules <= 8, `${large.rules} rules tested`);
    assert.equal(large.lookups, 1);
  });

  it('finds the runs kube-proxy writes, and non-indexable rules break them', () => {
    const { nf } = makeNf();
    nf.restore(services(20), { noflush: true });
    assert.deepEqual(nf.indexRuns('nat', 'KUBE-SERVICES'), [[1, 20]]);
    nf.command([
      '-t',
      'nat',
      '-I',
      'KUBE-SERVICES',
      '5',
      '-p',
      'tcp',
      '--dport',
      '80',
      '-j',
      'KUBE-MARK-MASQ',
    ]);
    assert.deepEqual(nf.indexRuns('nat', 'KUBE-SERVICES'), [
      [1, 4],
      [6, 21],
    ]);
    const { nf: off } = makeNf({ index: false });
    off.restore(services(20), { noflush: true });
    assert.deepEqual(off.indexRuns('nat', 'KUBE-SERVICES'), []);
  });

  it('gives exactly the verdicts, marks, NAT and counters of rule-by-rule evaluation', () => {
    // a deterministic pseudo-random generator
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    for (let round = 0; round < 20; round++) {
      const keys: Array<[string, string, number]> = [];
      for (let k = 0; k < 12; k++)
        keys.push([`10.96.0.${rnd(6) + 1}`, rnd(2) ? 'tcp' : 'udp', 50 + rnd(4)]);
      const lines = ['*mangle', ':S - [0:0]', ':T - [0:0]', '-A PREROUTING -j T'];
      lines.push(
        '-A S -j MARK --or-mark 0x100',
        '-A S -p udp -j RETURN',
        '-A S -j MARK --or-mark 0x200',
      );
      for (let i = 0; i < 60; i++) {
        const [d, p, port] = keys[rnd(keys.length)]!;
        const target = [
          '-j MARK --or-mark 0x' + (1 << rnd(8)).toString(16),
          '-j S',
          '-j ACCEPT',
          '-j DROP',
          '-j LOG',
          '-j RETURN',
          '',
        ][rnd(7)];
        const r = rnd(10);
        if (r === 0) lines.push(`-A T -s 192.168.${rnd(2)}.0/24 -j MARK --or-mark 0x1000`);
        else if (r === 1)
          lines.push(`-A T -p ${p} -m ${p} --dport ${port} -j MARK --or-mark 0x2000`);
        else
          lines.push(
            `-A T -d ${d} -p ${p} -m comment --comment "k${i}" -m ${p} --dport ${port} ${target}`.trimEnd(),
          );
      }
      lines.push('COMMIT', '');
      const text = lines.join('\n');
      const a = makeNf({ index: true });
      const b = makeNf({ index: false });
      a.nf.restore(text, { noflush: true });
      b.nf.restore(text, { noflush: true });
      assert.ok(a.nf.indexRuns('mangle', 'T').length > 0, 'the rule set has runs');
      for (let k = 0; k < 200; k++) {
        const [d, p, port] =
          rnd(5) === 0 ? [`10.96.0.${rnd(9)}`, 'tcp', 49 + rnd(6)] : keys[rnd(keys.length)]!;
        const src = `192.168.${rnd(3)}.${rnd(250) + 1}`;
        const mk = () =>
          p === 'tcp'
            ? syn(src, 1000 + k, d, port, { inIf: 'eth0' })
            : udpMeta(src, 1000 + k, d, port, { inIf: 'eth0' });
        const ma = mk();
        const mb = mk();
        const ra = run(a.nf, 'mangle', ma);
        const rb = run(b.nf, 'mangle', mb);
        assert.equal(ra.verdict, rb.verdict);
        assert.equal(ma.mark, mb.mark);
      }
      assert.equal(a.nf.save({ counters: true }), b.nf.save({ counters: true }));
      assert.deepEqual(a.logs, b.logs);
      assert.ok(a.nf.stats.rulesEvaluated < b.nf.stats.rulesEvaluated);
    }
  });

  it('works at every hook the chain is reached from', () => {
    const { nf } = makeNf();
    nf.restore(services(8), { noflush: true });
    nf.command(['-t', 'nat', '-A', 'OUTPUT', '-j', 'KUBE-SERVICES']);
    const m = syn('10.1.110.102', 40000, ipStr(ip('10.96.0.0') + 10 + 6), 86, {
      hook: Hook.OUTPUT,
      outIf: 'eth0',
    });
    assert.equal(run(nf, 'nat', m).nat!.minAddr, ip('192.168.1.6'));
    assert.equal(m.mark, 0x4000, 'not from the pod CIDR: KUBE-MARK-MASQ');
  });
});
