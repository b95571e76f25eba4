/** Rule evaluation: matches, targets, chains, counters, NAT requests, traces. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CtState, CtStatus, Hook, Verdict } from '../../../src/netfilter/packet-meta.js';
import { IptablesError } from '../../../src/netfilter/errors.js';
import {
  ACK,
  argv,
  echo,
  icmp,
  ip,
  ipv4,
  makeNf,
  meta,
  run,
  syn,
  tcp,
  udpMeta,
} from './helpers.js';

const I = { hook: Hook.INPUT, inIf: 'eth0' };
const F = { hook: Hook.FORWARD, inIf: 'cali1234567890a', outIf: 'tunl0' };

function rules(nf: ReturnType<typeof makeNf>['nf'], ...cmds: string[]): void {
  for (const c of cmds) nf.command(argv(c));
}

describe('built-in chains, policies and counters', () => {
  it('accepts by policy, counts the policy, and drops after -P DROP', () => {
    const { nf } = makeNf();
    nf.command(['-S']); // the first iptables command instantiates the table
    const m = syn('10.0.0.1', 1000, '10.0.0.2', 80, I);
    assert.equal(run(nf, 'filter', m).verdict, Verdict.ACCEPT);
    assert.match(nf.command(['-L', 'INPUT', '-v', '-x']), /policy ACCEPT 1 packets, 40 bytes/);
    nf.command(['-P', 'INPUT', 'DROP']);
    assert.equal(run(nf, 'filter', m).verdict, Verdict.DROP);
  });

  it('a table never used accepts without counting', () => {
    const { nf } = makeNf();
    assert.equal(run(nf, 'mangle', syn('1.1.1.1', 1, '2.2.2.2', 2)).verdict, Verdict.ACCEPT);
    assert.deepEqual(nf.tableNames(), []);
  });

  it('counts packets and bytes (the IP total length) on matching rules', () => {
    const { nf } = makeNf();
    rules(nf, '-A INPUT -p tcp --dport 80 -j ACCEPT', '-A INPUT -p udp -j DROP');
    run(nf, 'filter', syn('10.0.0.1', 1000, '10.0.0.2', 80, I));
    run(nf, 'filter', syn('10.0.0.1', 1001, '10.0.0.2', 80, I));
    run(nf, 'filter', udpMeta('10.0.0.1', 5, '10.0.0.2', 53, I));
    assert.equal(
      nf
        .save({ table: 'filter', counters: true })
        .split('\n')
        .filter((l) => l.startsWith('['))
        .join('\n'),
      '[2:80] -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n[1:28] -A INPUT -p udp -j DROP',
    );
  });
});

describe('IP header matches', () => {
  it('-s/-d with masks and !, -i/-o with + and !, -p by name, number and !, -f', () => {
    const { nf } = makeNf();
    rules(
      nf,
      '-N T',
      '-A FORWARD -j T',
      '-A T -s 10.0.0.0/8 ! -d 10.96.0.0/12 -j RETURN',
      '-A T -i cali+ -o tunl0 -p 6 -j ACCEPT',
      '-A T ! -i cali+ -j DROP',
      '-A T -f -j DROP',
      '-A T ! -p udp -j REJECT',
      '-A T -j ACCEPT',
    );
    const r = (m: ReturnType<typeof syn>) => run(nf, 'filter', m).verdict;
    assert.equal(r(syn('192.168.1.2', 1, '10.96.0.10', 53, F)), Verdict.ACCEPT);
    assert.equal(r(syn('192.168.1.2', 1, '10.96.0.10', 53, { ...F, inIf: 'eth0' })), Verdict.DROP);
    // 10/8 source to a non-service destination: RETURN, then the policy
    assert.equal(r(syn('10.1.1.1', 1, '8.8.8.8', 53, { ...F, inIf: 'eth0' })), Verdict.ACCEPT);
    const frag = meta(
      ipv4({ src: '1.1.1.1', dst: '2.2.2.2', proto: 17, payload: Buffer.alloc(8), frag: 100 }),
      F,
    );
    assert.equal(run(nf, 'filter', frag).verdict, Verdict.DROP);
    const res = run(
      nf,
      'filter',
      meta(ipv4({ src: '1.1.1.1', dst: '2.2.2.2', proto: 47, payload: Buffer.alloc(8) }), F),
    );
    assert.equal(res.verdict, Verdict.REJECT);
    assert.equal(res.rejectWith, 'icmp-port-unreachable');
    assert.equal(run(nf, 'filter', udpMeta('1.1.1.1', 1, '2.2.2.2', 2, F)).verdict, Verdict.ACCEPT);
  });

  it('-i eth0 does not match locally generated packets; ! -i eth0 does', () => {
    const { nf } = makeNf();
    rules(
      nf,
      '-t mangle -A POSTROUTING ! -o eth0 -j MARK --set-mark 1',
      '-t mangle -A POSTROUTING -o eth0 -j MARK --set-mark 2',
    );
    const m = syn('1.1.1.1', 1, '2.2.2.2', 2, { hook: Hook.POSTROUTING, outIf: 'eth0' });
    run(nf, 'mangle', m);
    assert.equal(m.mark, 2);
  });
});

describe('chains: jump, goto, RETURN', () => {
  it('returns to the calling chain; goto returns past the chain that went', () => {
    const { nf } = makeNf();
    rules(
      nf,
      '-t mangle -N A',
      '-t mangle -N B',
      '-t mangle -N C',
      '-t mangle -A PREROUTING -j A',
      '-t mangle -A PREROUTING -j MARK --or-mark 0x100',
      '-t mangle -A A -j MARK --or-mark 0x1',
      '-t mangle -A A -g B',
      '-t mangle -A A -j MARK --or-mark 0x2',
      '-t mangle -A B -j MARK --or-mark 0x4',
      '-t mangle -A B -j C',
      '-t mangle -A B -j MARK --or-mark 0x10',
      '-t mangle -A C -j MARK --or-mark 0x8',
      '-t mangle -A C -j RETURN',
      '-t mangle -A C -j MARK --or-mark 0x20',
    );
    const m = syn('1.1.1.1', 1, '2.2.2.2', 2);
    run(nf, 'mangle', m);
    assert.equal(m.mark, 0x1 | 0x4 | 0x8 | 0x10 | 0x100);
  });

  it('RETURN in a built-in chain applies the policy', () => {
    const { nf } = makeNf();
    rules(nf, '-P INPUT DROP', '-A INPUT -j RETURN', '-A INPUT -j ACCEPT');
    assert.equal(run(nf, 'filter', syn('1.1.1.1', 1, '2.2.2.2', 2, I)).verdict, Verdict.DROP);
  });

  it('refuses loops and jumps to built-in chains as the kernel does', () => {
    const { nf } = makeNf();
    rules(nf, '-N A', '-N B', '-A A -j B', '-A B -j A');
    assert.throws(() => nf.command(argv('-A INPUT -j A')), {
      message: 'iptables: Too many levels of symbolic links.',
    });
    assert.throws(
      () => nf.command(argv('-A A -j OUTPUT')),
      (e: IptablesError) => e.exitCode === 1,
    );
  });
});

describe('protocol matches', () => {
  it('tcp ports, ranges, inversion and flags', () => {
    const { nf } = makeNf();
    rules(
      nf,
      '-A INPUT -p tcp --syn --dport 22 -j DROP',
      '-A INPUT -p tcp ! --sport 1000:2000 --dport 80:90 -j REJECT --reject-with tcp-reset',
      '-A INPUT -p tcp --tcp-flags ALL ACK -j ACCEPT',
    );
    const mk = (sport: number, dport: number, flags: number) =>
      meta(
        ipv4({ src: '1.1.1.1', dst: '2.2.2.2', proto: 6, payload: tcp({ sport, dport, flags }) }),
        I,
      );
    const v = (sport: number, dport: number, flags: number) =>
      run(nf, 'filter', mk(sport, dport, flags));
    assert.equal(v(5, 22, 0x02).verdict, Verdict.DROP);
    assert.equal(v(5, 22, ACK).verdict, Verdict.ACCEPT);
    const r = v(5, 85, 0x02);
    assert.equal(r.verdict, Verdict.REJECT);
    assert.equal(r.rejectWith, 'tcp-reset');
    assert.equal(v(1500, 85, 0x02).verdict, Verdict.ACCEPT); // falls to the policy
  });

  it('udp, multiport and icmp types', () => {
    const { nf } = makeNf();
    rules(
      nf,
      '-A INPUT -p udp -m multiport --dports 53,5300:5400 -j DROP',
      '-A INPUT -p icmp --icmp-type echo-request -j DROP',
      '-A INPUT -p icmp --icmp-type fragmentation-needed -j REJECT',
    );
    assert.equal(
      run(nf, 'filter', udpMeta('1.1.1.1', 9, '2.2.2.2', 5353, I)).verdict,
      Verdict.DROP,
    );
    assert.equal(
      run(nf, 'filter', udpMeta('1.1.1.1', 9, '2.2.2.2', 54, I)).verdict,
      Verdict.ACCEPT,
    );
    const ping = meta(
      ipv4({ src: '1.1.1.1', dst: '2.2.2.2', proto: 1, payload: echo(8, 1, 1) }),
      I,
    );
    assert.equal(run(nf, 'filter', ping).verdict, Verdict.DROP);
    const fn = meta(
      ipv4({ src: '1.1.1.1', dst: '2.2.2.2', proto: 1, payload: icmp(3, 4, Buffer.alloc(32)) }),
      I,
    );
    assert.equal(run(nf, 'filter', fn).verdict, Verdict.REJECT);
    const pu = meta(
      ipv4({ src: '1.1.1.1', dst: '2.2.2.2', proto: 1, payload: icmp(3, 3, Buffer.alloc(32)) }),
      I,
    );
    assert.equal(run(nf, 'filter', pu).verdict, Verdict.ACCEPT);
  });
});

describe('conntrack, state, mark, addrtype', () => {
  it('--ctstate with inversion and the virtual DNAT state, --ctstatus, --ctdir, -m state', () => {
    const { nf } = makeNf();
    rules(
      nf,
      '-N FW',
      '-A INPUT -j FW',
      '-A FW -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
      '-A FW -m conntrack --ctstate INVALID -j DROP',
      '-A FW -m conntrack --ctstatus ASSURED --ctdir REPLY -j REJECT',
      '-A FW -m state --state NEW -j ACCEPT',
    );
    const v = (state: number, o: { status?: number; dir?: 0 | 1; dst?: string } = {}) =>
      run(
        nf,
        'filter',
        syn('10.0.0.1', 1, o.dst ?? '10.0.0.2', 2, {
          ...I,
          ctState: state,
          ctStatus: o.status ?? 0,
          ctDir: o.dir ?? 0,
        }),
      ).verdict;
    assert.equal(v(CtState.NEW, { dst: '127.0.0.1' }), Verdict.DROP);
    assert.equal(v(CtState.NEW | CtState.DNAT, { dst: '127.0.0.1' }), Verdict.ACCEPT);
    assert.equal(v(0), Verdict.DROP, 'no conntrack information counts as INVALID');
    assert.equal(v(CtState.ESTABLISHED, { status: CtStatus.ASSURED, dir: 1 }), Verdict.REJECT);
    assert.equal(v(CtState.ESTABLISHED, { status: CtStatus.ASSURED, dir: 0 }), Verdict.ACCEPT);
    assert.equal(v(CtState.UNTRACKED), Verdict.ACCEPT);
  });

  it("kube-proxy's masquerade mark: --or-mark, ! --mark v/m RETURN, --xor-mark, MASQUERADE", () => {
    const { nf } = makeNf({}, { tunl0: '192.168.104.64', eth0: '10.1.110.102' });
    nf.restore(
      [
        '*nat',
        ':KUBE-MARK-MASQ - [0:0]',
        ':KUBE-POSTROUTING - [0:0]',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
        '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
        '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        'COMMIT',
        '',
      ].join('\n'),
      { noflush: true },
    );
    const plain = syn('192.168.104.65', 40000, '192.168.8.207', 53, {
      hook: Hook.POSTROUTING,
      inIf: 'cali1',
      outIf: 'tunl0',
    });
    const r1 = run(nf, 'nat', plain);
    assert.equal(r1.verdict, Verdict.ACCEPT);
    assert.equal(r1.nat, null);
    const marked = syn('10.1.0.89', 40000, '192.168.8.207', 80, {
      hook: Hook.POSTROUTING,
      inIf: 'eth0',
      outIf: 'tunl0',
      mark: 0x4001,
    });
    const r2 = run(nf, 'nat', marked);
    assert.equal(marked.mark, 0x1, 'the xor cleared the bit');
    assert.deepEqual(r2.nat, {
      kind: 'MASQUERADE',
      minAddr: ip('192.168.104.64'),
      maxAddr: ip('192.168.104.64'),
      minPort: 0,
      maxPort: 0,
      random: false,
      randomFully: true,
      persistent: false,
    });
    // an interface without an address: the kernel drops
    const noaddr = syn('10.1.0.89', 1, '1.1.1.1', 80, {
      hook: Hook.POSTROUTING,
      outIf: 'dummy0',
      mark: 0x4000,
    });
    assert.equal(run(nf, 'nat', noaddr).verdict, Verdict.DROP);
  });

  it('-m addrtype asks the node addressing', () => {
    const { nf } = makeNf({}, { eth0: '192.168.0.2' });
    rules(
      nf,
      '-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DNAT --to-destination 10.0.0.1',
    );
    assert.notEqual(
      run(nf, 'nat', syn('1.1.1.1', 1, '192.168.0.2', 80, { inIf: 'eth0' })).nat,
      null,
    );
    assert.equal(run(nf, 'nat', syn('1.1.1.1', 1, '192.168.0.3', 80, { inIf: 'eth0' })).nat, null);
  });
});

describe('NAT targets', () => {
  it('DNAT, SNAT ranges and REDIRECT produce NatRequests', () => {
    const { nf } = makeNf({}, { eth0: '10.1.110.102' });
    rules(
      nf,
      '-t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.180.0.1:8080',
      '-t nat -A PREROUTING -p tcp --dport 81 -j DNAT --to-destination :9090',
      '-t nat -A PREROUTING -p tcp --dport 82 -j REDIRECT --to-ports 15001',
      '-t nat -A OUTPUT -p tcp -j REDIRECT --to-ports 15002',
      '-t nat -A POSTROUTING -p udp -j SNAT --to-source 1.1.1.1-1.1.1.4:1000-2000 --persistent',
    );
    const n = (m: ReturnType<typeof syn>, t: 'nat' = 'nat') => run(nf, t, m).nat;
    assert.deepEqual(n(syn('1.1.1.1', 5, '10.96.0.1', 80, { inIf: 'eth0' })), {
      kind: 'DNAT',
      minAddr: ip('10.180.0.1'),
      maxAddr: ip('10.180.0.1'),
      minPort: 8080,
      maxPort: 8080,
      random: false,
      randomFully: false,
      persistent: false,
    });
    const ports = n(syn('1.1.1.1', 5, '10.96.0.1', 81, { inIf: 'eth0' }))!;
    assert.equal(ports.minAddr, ip('10.96.0.1'), 'the address is kept');
    assert.equal(ports.minPort, 9090);
    const redir = n(syn('1.1.1.1', 5, '10.96.0.1', 82, { inIf: 'eth0' }))!;
    assert.equal(redir.kind, 'REDIRECT');
    assert.equal(redir.minAddr, ip('10.1.110.102'));
    const local = n(syn('10.1.110.102', 5, '10.96.0.1', 82, { hook: Hook.OUTPUT }))!;
    assert.equal(local.minAddr, ip('127.0.0.1'));
    assert.equal(local.minPort, 15002);
    const snat = run(
      nf,
      'nat',
      udpMeta('10.0.0.1', 5, '8.8.8.8', 53, { hook: Hook.POSTROUTING, outIf: 'eth0' }),
    ).nat!;
    assert.equal(snat.minAddr, ip('1.1.1.1'));
    assert.equal(snat.maxAddr, ip('1.1.1.4'));
    assert.equal(snat.maxPort, 2000);
    assert.equal(snat.persistent, true);
  });

  it('NAT and REJECT targets only where the kernel allows them', () => {
    const { nf } = makeNf();
    for (const c of [
      '-t nat -A POSTROUTING -j DNAT --to-destination 1.1.1.1',
      '-t nat -A PREROUTING -j SNAT --to-source 1.1.1.1',
      '-t nat -A PREROUTING -j MASQUERADE',
      '-t mangle -A INPUT -j REJECT',
      '-t mangle -A PREROUTING -j NOTRACK',
      '-A FORWARD -p udp -j REJECT --reject-with tcp-reset',
    ]) {
      assert.throws(
        () => nf.command(argv(c)),
        { message: "iptables: Invalid argument. Run `dmesg' for more information." },
        c,
      );
    }
    // a chain reachable from both PREROUTING and POSTROUTING cannot hold DNAT
    rules(
      nf,
      '-t nat -N X',
      '-t nat -A X -j DNAT --to-destination 1.1.1.1',
      '-t nat -A PREROUTING -j X',
    );
    assert.throws(() => nf.command(argv('-t nat -A POSTROUTING -j X')), IptablesError);
  });
});

describe('raw table', () => {
  it('NOTRACK and CT --notrack set meta.notrack', () => {
    const { nf } = makeNf();
    rules(
      nf,
      '-t raw -A PREROUTING -p udp --dport 53 -j NOTRACK',
      '-t raw -A OUTPUT -p udp -j CT --notrack',
    );
    const a = udpMeta('1.1.1.1', 5, '2.2.2.2', 53);
    run(nf, 'raw', a);
    assert.equal(a.notrack, true);
    const b = udpMeta('1.1.1.1', 5, '2.2.2.2', 54);
    run(nf, 'raw', b);
    assert.equal(b.notrack, false);
    const c = udpMeta('1.1.1.1', 5, '2.2.2.2', 54, { hook: Hook.OUTPUT });
    run(nf, 'raw', c);
    assert.equal(c.notrack, true);
  });
});

describe('statistic and recent', () => {
  it('--mode random compares 31 random bits with the stored probability; --mode nth counts', () => {
    let next = 0;
    const { nf } = makeNf({ random: () => next });
    rules(
      nf,
      '-t mangle -A PREROUTING -m statistic --mode random --probability 0.5 -j MARK --set-mark 1',
    );
    const m = () => syn('1.1.1.1', 1, '2.2.2.2', 2);
    next = 0.2;
    let p = m();
    run(nf, 'mangle', p);
    assert.equal(p.mark, 1);
    next = 0.49999;
    p = m();
    run(nf, 'mangle', p);
    assert.equal(p.mark, 1);
    next = 0.5; // 31 random bits = 0x40000000, not below the stored 0x40000000
    p = m();
    run(nf, 'mangle', p);
    assert.equal(p.mark, 0);

    const { nf: nf2 } = makeNf();
    rules(
      nf2,
      '-t mangle -A PREROUTING -m statistic --mode nth --every 3 --packet 1 -j MARK --set-mark 1',
    );
    const marks = [1, 2, 3, 4, 5, 6].map(() => {
      const q = m();
      run(nf2, 'mangle', q);
      return q.mark;
    });
    assert.deepEqual(marks, [0, 1, 0, 0, 1, 0]);
  });

  it('ClientIP affinity as kube-proxy writes it: --set in the SEP, --rcheck --seconds --reap in the SVC', () => {
    const { nf, clock } = makeNf({ random: () => 0.99 });
    nf.restore(
      [
        '*nat',
        ':SVC - [0:0]',
        ':SEP-A - [0:0]',
        ':SEP-B - [0:0]',
        '-A PREROUTING -p tcp -d 10.96.0.5 --dport 80 -j SVC',
        '-A SVC -m recent --name SEP-A --rcheck --seconds 10800 --reap -j SEP-A',
        '-A SVC -m recent --name SEP-B --rcheck --seconds 10800 --reap -j SEP-B',
        '-A SVC -m statistic --mode random --probability 0.5000000000 -j SEP-A',
        '-A SVC -j SEP-B',
        '-A SEP-A -m recent --name SEP-A --set -m tcp -p tcp -j DNAT --to-destination 10.0.0.1:80',
        '-A SEP-B -m recent --name SEP-B --set -m tcp -p tcp -j DNAT --to-destination 10.0.0.2:80',
        'COMMIT',
        '',
      ].join('\n'),
      { noflush: true },
    );
    const to = (src: string) =>
      run(nf, 'nat', syn(src, 40000, '10.96.0.5', 80, { inIf: 'eth0' })).nat!.minAddr;
    assert.equal(to('192.168.1.1'), ip('10.0.0.2'), 'random 0.99: the last endpoint');
    assert.match(
      nf.recentList('SEP-B')!,
      /^src=192\.168\.1\.1 ttl: 64 last_seen: 1000000 oldest_pkt: 1 1000000\n$/,
    );
    clock.now += 3_600_000;
    assert.equal(to('192.168.1.1'), ip('10.0.0.2'), 'sticky within 10800 s');
    clock.now += 10_801_000;
    nf.command(argv('-t nat -I SVC 3 -m statistic --mode random --probability 1 -j SEP-A'));
    assert.equal(to('192.168.1.1'), ip('10.0.0.1'), 'expired: balanced again');
    assert.equal(nf.recentList('SEP-B'), '', 'reaped');
  });
});

describe('ipsets', () => {
  it('-m set over hash:ip, hash:net and hash:ip,port; referenced sets cannot be destroyed', () => {
    const { nf } = makeNf();
    assert.throws(() => nf.command(argv('-A INPUT -m set --match-set nope src -j DROP')), {
      message: "iptables v1.8.9 (legacy): Set nope doesn't exist.",
    });
    nf.ipsetCommand(argv('create ips hash:ip'));
    nf.ipsetCommand(argv('create nets hash:net'));
    nf.ipsetCommand(argv('create svc hash:ip,port'));
    nf.ipsetCommand(argv('add ips 10.0.0.1'));
    nf.ipsetCommand(argv('add nets 192.168.0.0/16'));
    nf.ipsetCommand(argv('add svc 10.96.0.10,udp:53'));
    rules(
      nf,
      '-A INPUT -m set --match-set ips src -j DROP',
      '-A INPUT -m set ! --match-set nets src -j REJECT',
      '-A INPUT -m set --match-set svc dst,dst -j ACCEPT',
      '-A INPUT -j LOG',
    );
    assert.equal(run(nf, 'filter', udpMeta('10.0.0.1', 1, '1.1.1.1', 1, I)).verdict, Verdict.DROP);
    assert.equal(
      run(nf, 'filter', udpMeta('10.0.0.2', 1, '1.1.1.1', 1, I)).verdict,
      Verdict.REJECT,
    );
    assert.equal(
      run(nf, 'filter', udpMeta('192.168.3.4', 1, '10.96.0.10', 53, I)).verdict,
      Verdict.ACCEPT,
    );
    assert.throws(() => nf.ipsetCommand(argv('destroy svc')), /in use by a kernel component/);
    assert.equal(
      nf.command(argv('-S INPUT 3')),
      '-A INPUT -m set --match-set svc dst,dst -j ACCEPT\n',
    );
    nf.command(argv('-D INPUT 3'));
    nf.ipsetCommand(argv('destroy svc'));
    assert.equal(nf.ipsetCommand(argv('list -n')), 'ips\nnets\n');
    assert.equal(
      nf.ipsetCommand(argv('test nets 192.168.200.1')),
      '192.168.200.1 is in set nets.\n',
    );
  });
});

describe('trace', () => {
  it('reports every matching rule with its -S text, and the policy', () => {
    const { nf } = makeNf();
    rules(
      nf,
      '-N KUBE-FORWARD',
      '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
      '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    );
    const evs: unknown[] = [];
    nf.trace = (ev) => evs.push(ev);
    run(nf, 'filter', syn('1.1.1.1', 1, '2.2.2.2', 2, { ...F, ctState: CtState.NEW }));
    assert.deepEqual(evs, [
      {
        table: 'filter',
        chain: 'FORWARD',
        ruleNum: 1,
        rule: '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
      },
      {
        table: 'filter',
        chain: 'FORWARD',
        ruleNum: 2,
        rule: '-P FORWARD ACCEPT',
        verdict: 'ACCEPT',
      },
    ]);
  });
});

describe('atomic changes', () => {
  it('a restore that fails anywhere changes nothing', () => {
    const { nf } = makeNf();
    rules(nf, '-A INPUT -p tcp --dport 22 -j DROP');
    const before = nf.save({ table: 'filter' });
    assert.throws(
      () =>
        nf.restore(
          '*filter\n-F INPUT\n-A INPUT -j ACCEPT\nCOMMIT\n*nat\n-A POSTROUTING -j DNAT --to-destination 1.1.1.1\nCOMMIT\n',
          {
            noflush: true,
          },
        ),
      { message: 'iptables-restore: line 7 failed' },
    );
    assert.equal(nf.save({ table: 'filter' }), before);
    // (the nat table exists now, empty: iptables-restore instantiates the tables it names)
    assert.equal(nf.command(['-t', 'nat', '-S', 'POSTROUTING']), '-P POSTROUTING ACCEPT\n');
    assert.equal(run(nf, 'filter', syn('1.1.1.1', 1, '2.2.2.2', 22, I)).verdict, Verdict.DROP);
  });

  it('a failed command changes nothing', () => {
    const { nf } = makeNf();
    rules(nf, '-N A', '-A A -j ACCEPT');
    assert.throws(
      () => nf.command(argv('-A INPUT -s 1.1.1.1,2.2.2.2 -j REJECT --reject-with tcp-reset')),
      IptablesError,
    );
    assert.equal(nf.command(['-S', 'INPUT']), '-P INPUT ACCEPT\n');
  });
});
