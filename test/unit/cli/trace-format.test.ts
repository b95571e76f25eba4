import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPacketSummary, formatTracedPacket } from '../../../src/cli/trace-format.js';
import type { TracedPacket } from '../../../src/dataplane/trace.js';

const SYN = {
  proto: 6,
  src: '10.1.0.89',
  dst: '10.1.110.102',
  sport: 40000,
  dport: 30080,
  flags: 'S',
  len: 60,
  ttl: 63,
};

const PACKET: TracedPacket = {
  seq: 1,
  time: Date.UTC(2026, 0, 2, 3, 4, 5, 6) + 0.5,
  node: 'worker-1',
  packet: SYN,
  steps: [
    { step: 'in', dev: 'eth0', local: false },
    { step: 'policy', hook: 'PREROUTING', table: 'raw', chain: 'PREROUTING', policy: 'ACCEPT' },
    {
      step: 'conntrack',
      hook: 'PREROUTING',
      state: 'NEW',
      dir: 'original',
      entry:
        'tcp      6 120 SYN_SENT src=10.1.0.89 dst=10.1.110.102 sport=40000 dport=30080 [UNREPLIED] src=10.1.110.102 dst=10.1.0.89 sport=30080 dport=40000 mark=0 use=1',
    },
    {
      step: 'rule',
      hook: 'PREROUTING',
      table: 'nat',
      chain: 'PREROUTING',
      num: 1,
      rule: '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    },
    {
      step: 'rule',
      hook: 'PREROUTING',
      table: 'nat',
      chain: 'KUBE-SEP-Y',
      num: 2,
      rule: '-A KUBE-SEP-Y -p tcp -m tcp -j DNAT --to-destination 192.168.8.200:8080',
      verdict: 'DNAT',
    },
    {
      step: 'nat',
      hook: 'PREROUTING',
      kind: 'DNAT',
      before: '10.1.110.102:30080',
      after: '192.168.8.200:8080',
    },
    {
      step: 'route',
      dst: '192.168.8.200',
      route: '192.168.8.192/26 via 10.1.110.107 dev tunl0 proto bird onlink',
    },
    { step: 'policy', hook: 'FORWARD', table: 'filter', chain: 'FORWARD', policy: 'ACCEPT' },
    { step: 'policy', hook: 'POSTROUTING', table: 'nat', chain: 'POSTROUTING', policy: 'ACCEPT' },
    {
      step: 'rule',
      hook: 'POSTROUTING',
      table: 'nat',
      chain: 'POSTROUTING',
      num: 1,
      rule: '-A POSTROUTING -j MASQUERADE',
      verdict: 'MASQUERADE',
    },
    {
      step: 'nat',
      hook: 'POSTROUTING',
      kind: 'SNAT',
      before: '10.1.0.89:40000',
      after: '192.168.104.64:40000',
    },
    { step: 'confirm', hook: 'POSTROUTING', entry: 'tcp      6 120 SYN_SENT …', ok: true },
    { step: 'encap', dev: 'tunl0', outerSrc: '10.1.110.102', outerDst: '10.1.110.107' },
    {
      step: 'out',
      dev: 'eth0',
      nextHop: '10.1.110.107',
      mac: '02:42:0a:01:6e:6b',
      packet: {
        proto: 4,
        src: '10.1.110.102',
        dst: '10.1.110.107',
        sport: -1,
        dport: -1,
        len: 80,
        ttl: 64,
        inner: { ...SYN, src: '192.168.104.64', dst: '192.168.8.200', dport: 8080, ttl: 62 },
      },
    },
  ],
};

describe('trace text format', () => {
  it('one block per packet: header, then where / what / detail per step', () => {
    assert.equal(
      formatTracedPacket(PACKET, { utc: true }),
      [
        '03:04:05.006500 worker-1 #1 tcp 10.1.0.89:40000 > 10.1.110.102:30080 [S] len 60 ttl 63',
        '  in           eth0',
        '  PREROUTING   conntrack  NEW (original): tcp      6 120 SYN_SENT src=10.1.0.89 dst=10.1.110.102 sport=40000 dport=30080 [UNREPLIED] src=10.1.110.102 dst=10.1.0.89 sport=30080 dport=40000 mark=0 use=1',
        '  PREROUTING   nat        PREROUTING #1: -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '  PREROUTING   nat        KUBE-SEP-Y #2: -A KUBE-SEP-Y -p tcp -m tcp -j DNAT --to-destination 192.168.8.200:8080  => DNAT',
        '  PREROUTING   DNAT       10.1.110.102:30080 -> 192.168.8.200:8080',
        '  routing      route      192.168.8.192/26 via 10.1.110.107 dev tunl0 proto bird onlink',
        '  POSTROUTING  nat        POSTROUTING policy ACCEPT',
        '  POSTROUTING  nat        POSTROUTING #1: -A POSTROUTING -j MASQUERADE  => MASQUERADE',
        '  POSTROUTING  SNAT       10.1.0.89:40000 -> 192.168.104.64:40000',
        '  POSTROUTING  conntrack  confirmed: tcp      6 120 SYN_SENT …',
        '  out          tunl0      IPIP encapsulation 10.1.110.102 > 10.1.110.107',
        '  out          eth0       to 10.1.110.107 02:42:0a:01:6e:6b: ipip 10.1.110.102 > 10.1.110.107 len 80 ttl 64: tcp 192.168.104.64:40000 > 192.168.8.200:8080 [S] len 60 ttl 62',
        '',
      ].join('\n'),
    );
  });

  it('-v shows the policy of every table passed', () => {
    const text = formatTracedPacket(PACKET, { utc: true, verbose: true });
    assert.match(text, /\n {2}PREROUTING {3}raw {8}PREROUTING policy ACCEPT\n/);
    assert.match(text, /\n {2}FORWARD {6}filter {5}FORWARD policy ACCEPT\n/);
  });

  it('drops, local delivery, decapsulation, lost packets and traces by connection', () => {
    const text = formatTracedPacket(
      {
        seq: 7,
        time: Date.UTC(2026, 0, 1),
        node: 'worker-2',
        lost: 3,
        packet: {
          ...SYN,
          proto: 1,
          sport: -1,
          dport: -1,
          flags: undefined,
          icmpType: 8,
          icmpCode: 0,
        },
        steps: [
          { step: 'in', dev: 'kubewire0', local: true },
          {
            step: 'decap',
            outerSrc: '10.1.110.102',
            outerDst: '10.1.110.107',
            tunnel: 'tunl0',
            inner: { ...SYN, flags: 'S.' },
          },
          {
            step: 'conntrack',
            hook: 'PREROUTING',
            state: 'ESTABLISHED',
            dir: 'reply',
            entry: null,
            byConnection: true,
          },
          { step: 'local', addr: '10.1.110.107' },
          { step: 'route', dst: '1.2.3.4', route: null },
          { step: 'drop', reason: 'netfilter-reject', rejectWith: 'icmp-port-unreachable' },
          { step: 'drop', reason: 'no-route' },
          { step: 'confirm', hook: 'INPUT', entry: null, ok: false },
          {
            step: 'out',
            dev: 'eth0',
            nextHop: '10.1.110.1',
            mac: null,
            packet: { ...SYN, flags: 'R.' },
          },
        ],
      },
      { utc: true },
    );
    assert.equal(
      text,
      [
        '(3 matching packets not shown: the reader was too slow)',
        '00:00:00.000000 worker-2 #7 icmp 10.1.0.89 > 10.1.110.102 echo request len 60 ttl 63',
        "  in           kubewire0  sent by the node's own processes (OUTPUT)",
        '  in           tunl0      IPIP 10.1.110.102 > 10.1.110.107 decapsulated: tcp 10.1.0.89:40000 > 10.1.110.102:30080 [S.] len 60 ttl 63',
        '  PREROUTING   conntrack  ESTABLISHED (reply)  [traced: its connection matches]',
        "  routing      local      10.1.110.107 is the node's own address: local delivery",
        '  routing      route      none for 1.2.3.4',
        '  drop         netfilter-reject (icmp-port-unreachable)',
        '  drop         no-route',
        '  INPUT        conntrack  insert failed (clash with an existing entry)',
        '  out          eth0       to 10.1.110.1 (waiting for ARP): tcp 10.1.0.89:40000 > 10.1.110.102:30080 [R.] len 60 ttl 63',
        '',
      ].join('\n'),
    );
  });

  it('packet summaries', () => {
    assert.equal(
      formatPacketSummary({
        proto: 17,
        src: '192.168.104.65',
        dst: '10.96.0.10',
        sport: 5353,
        dport: 53,
        len: 71,
        ttl: 64,
      }),
      'udp 192.168.104.65:5353 > 10.96.0.10:53 len 71 ttl 64',
    );
    assert.equal(
      formatPacketSummary({
        proto: 1,
        src: '10.1.110.102',
        dst: '10.1.0.89',
        sport: -1,
        dport: -1,
        icmpType: 3,
        icmpCode: 3,
        len: 88,
        ttl: 64,
      }),
      'icmp 10.1.110.102 > 10.1.0.89 destination unreachable code 3 len 88 ttl 64',
    );
    assert.equal(
      formatPacketSummary({
        proto: 47,
        src: '1.1.1.1',
        dst: '2.2.2.2',
        sport: -1,
        dport: -1,
        len: 40,
        ttl: 9,
      }),
      'proto 47 1.1.1.1 > 2.2.2.2 len 40 ttl 9',
    );
  });
});
