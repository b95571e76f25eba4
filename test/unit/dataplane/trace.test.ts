/**
 * `kubewire trace` on worker-1's forwarder with netfilter and conntrack: the
 * NodePort flow of the white paper (client → node IP:NodePort → DNAT to a pod
 * on worker-2, masqueraded, IPIP) and its un-NATed reply, step by step; what a
 * trace costs when nothing matches; -c; drop reasons; the hook verdict counters.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ETHERTYPE_IPV4,
  ETH_HEADER_LEN,
  IPPROTO_IPIP,
  IPPROTO_TCP,
  TCP_HEADER_LEN,
  emitEthernetHeader,
  emitIpv4Header,
  emitTcp,
} from '../../../src/packet/index.js';
import { NetInterface } from '../../../src/dataplane/interface.js';
import { PacketTracer, type TracedPacket, type TraceStep } from '../../../src/dataplane/trace.js';
import { parseTraceFilter } from '../../../src/dataplane/trace-filter.js';
import { NodeKernel } from '../../../src/agent/node-kernel.js';
import { Hook, Verdict } from '../../../src/netfilter/packet-meta.js';
import { W1, feed, ip, ipv4Frame, silentLogger, tcpSyn, worker1 } from './helpers.js';

const POD = ip('192.168.8.200');
const ROUTER_MAC = W1.routerMac;

/** A trimmed kube-proxy NodePort (externalTrafficPolicy Cluster) with one endpoint on worker-2. */
const RULES = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-EXT-X - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-Y - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-X - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-EXT-X -m comment --comment "masquerade traffic for t/web:http external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X -j KUBE-SVC-X
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-NODEPORTS -p tcp -m comment --comment "t/web:http" -m tcp --dport 30080 -j KUBE-EXT-X
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SEP-Y -p tcp -m comment --comment "t/web:http" -m tcp -j DNAT --to-destination 192.168.8.200:8080
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-X -m comment --comment "t/web:http -> 192.168.8.200:8080" -j KUBE-SEP-Y
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 9999 -j REJECT --reject-with tcp-reset
COMMIT
`;

function node() {
  const lab = worker1({ underlaySubnet: true });
  const fwd = lab.fwd;
  const tunl0 = new NetInterface(5, 'tunl0', 'tunnel', Buffer.alloc(6), 1480, null);
  fwd.addInterface(tunl0);
  fwd.tunnel = tunl0;
  fwd.tunnelPeers.add(W1.worker2);
  fwd.routes.add({
    dst: ip('192.168.8.192'),
    prefixLen: 26,
    dev: tunl0,
    via: W1.worker2,
    onlink: true,
    proto: 'bird',
  });
  fwd.neighbours.setPermanent(lab.eth0, W1.worker2, W1.worker2Mac);
  const kernel = new NodeKernel(fwd, 'worker-1', silentLogger, () => W1.tunlIp);
  kernel.netfilter.restore(RULES);
  return { ...lab, kernel, tunl0 };
}

type Node = ReturnType<typeof node>;

function trace(n: Node, filter: string, count = 0) {
  const packets: TracedPacket[] = [];
  let done = 0;
  let ruleTraceOn = 0;
  const tracer = new PacketTracer({
    node: 'worker-1',
    filter: parseTraceFilter(filter),
    count,
    meta: n.fwd.hooks!.meta,
    result: n.fwd.hooks!.result,
    connections: n.kernel.conntrack,
    drops: n.fwd.drops,
    ruleTrace: (fn) => {
      if (fn) ruleTraceOn++;
      n.kernel.netfilter.trace = fn;
    },
    emit: (p) => packets.push(p),
    done: () => done++,
    now: () => 1_700_000_000_123.456,
  });
  n.fwd.tracer = tracer;
  n.fwd.hooks!.tracer = tracer;
  return { packets, tracer, done: () => done, ruleTraceOn: () => ruleTraceOn };
}

/** client → worker-1's NodePort: as the router delivers it on eth0. */
function clientSyn(dport = 30080): Buffer {
  return tcpSyn(
    { src: W1.client, dst: W1.nodeIp, ttl: 63, srcMac: ROUTER_MAC, dstMac: W1.eth0Mac },
    40000,
    dport,
  );
}

/** The endpoint's SYN-ACK to the masqueraded source, IPIP from worker-2. */
function podSynAck(): Buffer {
  const l4 = Buffer.alloc(TCP_HEADER_LEN);
  emitTcp(
    l4,
    0,
    { srcPort: 8080, dstPort: 40000, seq: 0x0a0b0c0d, ack: 0x01020305, flags: 0x12, window: 64000 },
    POD,
    W1.tunlIp,
    0,
  );
  const inner = ipv4Frame({ src: POD, dst: W1.tunlIp, ttl: 64 }, IPPROTO_TCP, l4).subarray(
    ETH_HEADER_LEN,
  );
  const f = Buffer.alloc(ETH_HEADER_LEN + 20 + inner.length);
  emitEthernetHeader(f, 0, W1.eth0Mac, W1.worker2Mac, ETHERTYPE_IPV4);
  emitIpv4Header(f, ETH_HEADER_LEN, {
    src: W1.worker2,
    dst: W1.nodeIp,
    protocol: IPPROTO_IPIP,
    ttl: 64,
    id: 7,
    dontFragment: false,
    tos: 0,
    payloadLength: inner.length,
  });
  inner.copy(f, ETH_HEADER_LEN + 20);
  return f;
}

const rules = (steps: TraceStep[]) =>
  steps.flatMap((s) => (s.step === 'rule' ? [`${s.hook} ${s.table} ${s.rule}`] : []));

describe('kubewire trace: the NodePort flow on the ingress node', () => {
  it('client → NodePort: rules hit, conntrack NEW, DNAT, route via tunl0, MASQUERADE, IPIP out', () => {
    const n = node();
    const t = trace(n, 'host 10.1.0.89 and tcp port 30080');
    feed(n.fwd, n.eth0, clientSyn());
    assert.equal(t.packets.length, 1);
    const p = t.packets[0]!;
    assert.equal(p.seq, 1);
    assert.equal(p.node, 'worker-1');
    assert.deepEqual(p.packet, {
      proto: 6,
      src: '10.1.0.89',
      dst: '10.1.110.102',
      sport: 40000,
      dport: 30080,
      flags: 'S',
      len: 52,
      ttl: 63,
    });
    assert.deepEqual(p.steps[0], { step: 'in', dev: 'eth0', local: false });
    const ct = p.steps.find((s) => s.step === 'conntrack');
    assert.deepEqual(
      ct && {
        ...ct,
        entry: ct.step === 'conntrack' ? ct.entry?.replace(/^(tcp +6) \d+ /, '$1 T ') : null,
      },
      {
        step: 'conntrack',
        hook: 'PREROUTING',
        state: 'NEW',
        dir: 'original',
        entry:
          'tcp      6 T SYN_SENT src=10.1.0.89 dst=10.1.110.102 sport=40000 dport=30080 [UNREPLIED] src=10.1.110.102 dst=10.1.0.89 sport=30080 dport=40000 mark=0 use=1',
      },
    );
    assert.deepEqual(rules(p.steps), [
      'PREROUTING nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      'PREROUTING nat -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
      'PREROUTING nat -A KUBE-NODEPORTS -p tcp -m comment --comment "t/web:http" -m tcp --dport 30080 -j KUBE-EXT-X',
      'PREROUTING nat -A KUBE-EXT-X -m comment --comment "masquerade traffic for t/web:http external destinations" -j KUBE-MARK-MASQ',
      'PREROUTING nat -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
      'PREROUTING nat -A KUBE-EXT-X -j KUBE-SVC-X',
      'PREROUTING nat -A KUBE-SVC-X -m comment --comment "t/web:http -> 192.168.8.200:8080" -j KUBE-SEP-Y',
      'PREROUTING nat -A KUBE-SEP-Y -p tcp -m comment --comment "t/web:http" -m tcp -j DNAT --to-destination 192.168.8.200:8080',
      'POSTROUTING nat -A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
      'POSTROUTING nat -A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
      'POSTROUTING nat -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
    ]);
    const sep = p.steps.find((s) => s.step === 'rule' && s.chain === 'KUBE-SEP-Y');
    assert.ok(sep?.step === 'rule' && sep.verdict === 'DNAT' && sep.num === 1);
    const tail = p.steps
      .filter((s) => s.step !== 'rule' && s.step !== 'policy' && s.step !== 'conntrack')
      .slice(1);
    const confirm = tail.find((s) => s.step === 'confirm');
    assert.ok(confirm?.step === 'confirm' && confirm.ok);
    assert.match(
      confirm.entry!,
      / src=10\.1\.0\.89 dst=10\.1\.110\.102 sport=40000 dport=30080 \[UNREPLIED\] src=192\.168\.8\.200 dst=192\.168\.104\.64 sport=8080 dport=40000 mark=0 use=1$/,
    );
    assert.deepEqual(
      tail.filter((s) => s.step !== 'confirm'),
      [
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
        {
          step: 'nat',
          hook: 'POSTROUTING',
          kind: 'SNAT',
          before: '10.1.0.89:40000',
          after: '192.168.104.64:40000',
        },
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
            len: 72,
            ttl: 64,
            inner: {
              proto: 6,
              src: '192.168.104.64',
              dst: '192.168.8.200',
              sport: 40000,
              dport: 8080,
              flags: 'S',
              len: 52,
              ttl: 62,
            },
          },
        },
      ],
    );
    assert.equal(n.kernel.netfilter.trace, null, 'the per-rule callback is off between packets');
    assert.equal(n.fwd.drops.onDrop, null);
  });

  it('the reply from worker-2: decapsulated, traced by its connection, un-SNAT and un-DNAT', () => {
    const n = node();
    const t = trace(n, 'host 10.1.0.89 and tcp port 30080');
    feed(n.fwd, n.eth0, clientSyn());
    feed(n.fwd, n.eth0, podSynAck());
    assert.equal(t.packets.length, 2);
    const p = t.packets[1]!;
    assert.equal(p.seq, 2);
    assert.deepEqual(p.steps.slice(0, 2), [
      { step: 'in', dev: 'eth0', local: false },
      {
        step: 'decap',
        outerSrc: '10.1.110.107',
        outerDst: '10.1.110.102',
        tunnel: 'tunl0',
        inner: {
          proto: 6,
          src: '192.168.8.200',
          dst: '192.168.104.64',
          sport: 8080,
          dport: 40000,
          flags: 'S.',
          len: 40,
          ttl: 64,
        },
      },
    ]);
    const ct = p.steps[2]!;
    assert.ok(ct.step === 'conntrack');
    assert.equal(ct.state, 'ESTABLISHED');
    assert.equal(ct.dir, 'reply');
    assert.equal(ct.byConnection, true);
    const rest = p.steps.filter((s) => s.step === 'nat' || s.step === 'route' || s.step === 'out');
    assert.deepEqual(rest, [
      {
        step: 'nat',
        hook: 'PREROUTING',
        kind: 'un-SNAT',
        before: '192.168.104.64:40000',
        after: '10.1.0.89:40000',
      },
      { step: 'route', dst: '10.1.0.89', route: '10.1.0.0/24 via 10.1.110.1 dev eth0' },
      {
        step: 'nat',
        hook: 'POSTROUTING',
        kind: 'un-DNAT',
        before: '192.168.8.200:8080',
        after: '10.1.110.102:30080',
      },
      {
        step: 'out',
        dev: 'eth0',
        nextHop: '10.1.110.1',
        mac: '02:42:0a:01:6e:01',
        packet: {
          proto: 6,
          src: '10.1.110.102',
          dst: '10.1.0.89',
          sport: 30080,
          dport: 40000,
          flags: 'S.',
          len: 40,
          ttl: 63,
        },
      },
    ]);
    assert.deepEqual(rules(p.steps), [], 'nat is not traversed by replies');
  });

  it('packets that do not match cost no rule callbacks and are not reported', () => {
    const n = node();
    const t = trace(n, 'udp port 53');
    feed(n.fwd, n.eth0, clientSyn());
    feed(n.fwd, n.eth0, podSynAck());
    assert.equal(t.packets.length, 0);
    assert.equal(t.ruleTraceOn(), 0, 'the rule engine never called back');
    assert.equal(n.kernel.netfilter.trace, null);
    assert.equal(n.fwd.drops.onDrop, null);
  });

  it('-c: stops after N packets and reports once', () => {
    const n = node();
    const t = trace(n, 'tcp', 1);
    feed(n.fwd, n.eth0, clientSyn(), clientSyn(30081));
    feed(n.fwd, n.eth0, podSynAck());
    assert.equal(t.packets.length, 1);
    assert.equal(t.done(), 1);
    assert.equal(t.tracer.complete, true);
  });

  it('a REJECT rule: the rule, the drop reason and the reset sent back', () => {
    const n = node();
    const t = trace(n, 'dst port 9999');
    feed(
      n.fwd,
      n.eth0,
      tcpSyn(
        { src: W1.client, dst: POD, ttl: 63, srcMac: ROUTER_MAC, dstMac: W1.eth0Mac },
        40001,
        9999,
      ),
    );
    const steps = t.packets[0]!.steps;
    const reject = steps.find((s) => s.step === 'rule' && s.table === 'filter');
    assert.ok(reject?.step === 'rule');
    assert.equal(reject.verdict, 'REJECT');
    assert.equal(reject.hook, 'FORWARD');
    assert.deepEqual(
      steps.find((s) => s.step === 'drop'),
      { step: 'drop', reason: 'netfilter-reject', rejectWith: 'tcp-reset' },
    );
    const out = steps.find((s) => s.step === 'out');
    assert.ok(out?.step === 'out');
    assert.equal(out.packet.flags, 'R.');
    assert.equal(out.packet.dst, '10.1.0.89');
  });

  it('a route to nowhere: the blackhole drop', () => {
    const n = node();
    const t = trace(n, 'net 192.168.104.64/26');
    feed(
      n.fwd,
      n.eth0,
      tcpSyn(
        { src: W1.client, dst: ip('192.168.104.100'), srcMac: ROUTER_MAC, dstMac: W1.eth0Mac },
        1,
        2,
      ),
    );
    const steps = t.packets[0]!.steps.filter((s) => s.step === 'route' || s.step === 'drop');
    assert.deepEqual(steps, [
      { step: 'route', dst: '192.168.104.100', route: 'blackhole 192.168.104.64/26 proto bird' },
      { step: 'drop', reason: 'blackhole' },
    ]);
  });
});

describe('hook verdict counters', () => {
  it('count each packet once per hook with its verdict', () => {
    const n = node();
    feed(n.fwd, n.eth0, clientSyn());
    feed(
      n.fwd,
      n.eth0,
      tcpSyn({ src: W1.client, dst: POD, srcMac: ROUTER_MAC, dstMac: W1.eth0Mac }, 40001, 9999),
    );
    const v = n.fwd.hooks!.verdicts;
    assert.equal(v[Hook.PREROUTING * 3 + Verdict.ACCEPT], 2);
    assert.equal(v[Hook.FORWARD * 3 + Verdict.ACCEPT], 1);
    assert.equal(v[Hook.FORWARD * 3 + Verdict.REJECT], 1);
    assert.equal(v[Hook.POSTROUTING * 3 + Verdict.ACCEPT], 1);
    assert.equal(v[Hook.INPUT * 3 + Verdict.ACCEPT], 0);
  });
});
