import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IPPROTO_UDP,
  IPV4_HEADER_LEN,
  checksumFold,
  emitIpv4Header,
  pseudoHeaderSum,
} from '../../../src/packet/index.js';
import { CtState, Hook } from '../../../src/netfilter/packet-meta.js';
import {
  KUBE_PROXY_TIMEOUTS,
  LINUX_DEFAULT_TIMEOUTS,
  type Conntrack,
  kubeProxyConntrackOptions,
} from '../../../src/conntrack/index.js';
import { F, forward, icmp, ip, makeConntrack, meta, tcp, udp } from './helpers.js';

/** Drives a no-data TCP connection through the states (client ORIGINAL, server REPLY). */
function tcpTo(ct: Conntrack, target: string): number {
  const seqs = [1000, 5000];
  const send = (dir: 0 | 1, flags: number) => {
    const buf = tcp({
      src: dir === 0 ? '10.0.0.1' : '10.0.0.2',
      dst: dir === 0 ? '10.0.0.2' : '10.0.0.1',
      sport: dir === 0 ? 40000 : 80,
      dport: dir === 0 ? 80 : 40000,
      seq: seqs[dir],
      ack: flags & F.ACK ? seqs[dir ^ 1] : 0,
      flags,
    });
    seqs[dir] += (flags & F.SYN ? 1 : 0) + (flags & F.FIN ? 1 : 0);
    forward(ct, buf);
  };
  const steps: [string, 0 | 1, number][] = [
    ['SYN_SENT', 0, F.SYN],
    ['SYN_RECV', 1, F.SYN | F.ACK],
    ['ESTABLISHED', 0, F.ACK],
    ['FIN_WAIT', 0, F.FIN | F.ACK],
    ['CLOSE_WAIT', 1, F.ACK],
    ['LAST_ACK', 1, F.FIN | F.ACK],
    ['TIME_WAIT', 0, F.ACK],
  ];
  for (const [name, dir, flags] of steps) {
    send(dir, flags);
    if (name === target) break;
  }
  if (target === 'CLOSE') send(0, F.RST);
  if (target === 'SYN_SENT2') send(1, F.SYN);
  return ct.lookup(ip('10.0.0.1'), ip('10.0.0.2'), 40000, 80, 6);
}

describe('timeouts (§4.3)', () => {
  const cases: [string, keyof typeof LINUX_DEFAULT_TIMEOUTS][] = [
    ['SYN_SENT', 'tcpSynSent'],
    ['SYN_RECV', 'tcpSynRecv'],
    ['ESTABLISHED', 'tcpEstablished'],
    ['FIN_WAIT', 'tcpFinWait'],
    ['CLOSE_WAIT', 'tcpCloseWait'],
    ['LAST_ACK', 'tcpLastAck'],
    ['TIME_WAIT', 'tcpTimeWait'],
  ];
  for (const [state, key] of cases) {
    it(`TCP ${state}: ${LINUX_DEFAULT_TIMEOUTS[key]} s (kube-proxy: ${KUBE_PROXY_TIMEOUTS[key] ?? LINUX_DEFAULT_TIMEOUTS[key]} s)`, () => {
      for (const kube of [false, true]) {
        const { ct } = makeConntrack(kube ? kubeProxyConntrackOptions() : {});
        const e = tcpTo(ct, state);
        const v = ct.get(e)!;
        assert.equal(v.tcpState, state);
        const want = kube
          ? (KUBE_PROXY_TIMEOUTS[key] ?? LINUX_DEFAULT_TIMEOUTS[key])
          : LINUX_DEFAULT_TIMEOUTS[key];
        assert.equal(v.timeout, want);
      }
    });
  }

  it('TCP CLOSE after RST: 10 s; SYN_SENT2: 120 s', () => {
    const a = makeConntrack();
    assert.equal(a.ct.get(tcpTo(a.ct, 'CLOSE'))!.timeout, 10);
    const b = makeConntrack();
    assert.equal(b.ct.get(tcpTo(b.ct, 'SYN_SENT2'))!.timeout, 120);
  });

  it('kube-proxy preset: nf_conntrack_max = max(32768 x cores, 131072)', () => {
    assert.equal(kubeProxyConntrackOptions(1).maxEntries, 131072);
    assert.equal(kubeProxyConntrackOptions(8).maxEntries, 262144);
  });

  it('unacknowledged data caps the timeout at 300 s until it is acknowledged', () => {
    const { ct } = makeConntrack();
    const e = tcpTo(ct, 'ESTABLISHED');
    forward(
      ct,
      tcp({
        src: '10.0.0.1',
        dst: '10.0.0.2',
        sport: 40000,
        dport: 80,
        seq: 1001,
        ack: 5001,
        flags: F.ACK | F.PSH,
        payload: 100,
      }),
    );
    assert.equal(ct.get(e)!.timeout, 300);
    forward(
      ct,
      tcp({
        src: '10.0.0.2',
        dst: '10.0.0.1',
        sport: 80,
        dport: 40000,
        seq: 5001,
        ack: 1101,
        flags: F.ACK,
      }),
    );
    assert.equal(ct.get(e)!.timeout, 432000);
  });

  it('an entry expires: gone for lookups at once, DESTROY reported by the sweep', () => {
    const { ct, clock, events } = makeConntrack();
    forward(ct, udp('10.0.0.1', '10.0.0.2', 5000, 53));
    assert.equal(ct.count(), 1);
    clock.advance(29);
    assert.equal(ct.list().length, 1);
    assert.equal(ct.list()[0].timeout, 1);
    clock.advance(1);
    events.length = 0;
    assert.equal(ct.lookup(ip('10.0.0.1'), ip('10.0.0.2'), 5000, 53, 17), -1);
    // A new packet of the same flow starts a new connection.
    const m = forward(ct, udp('10.0.0.1', '10.0.0.2', 5000, 53));
    assert.equal(m.ctState, CtState.NEW);
    assert.deepEqual(
      events.map((x) => x.type),
      ['DESTROY', 'NEW'],
    );
    clock.advance(31);
    events.length = 0;
    ct.tick(clock.t);
    assert.equal(ct.count(), 0);
    assert.deepEqual(
      events.map((x) => x.type),
      ['DESTROY'],
    );
  });

  it('the sweep is bounded per tick and covers the table over several ticks', () => {
    const { ct, clock } = makeConntrack({ gcBudget: 100 });
    for (let i = 0; i < 1000; i++) forward(ct, udp('10.0.0.1', '10.0.0.2', 1000 + i, 53));
    assert.equal(ct.count(), 1000);
    clock.advance(60);
    ct.tick(clock.t);
    assert.equal(ct.count(), 900);
    for (let i = 0; i < 9; i++) ct.tick(clock.t);
    assert.equal(ct.count(), 0);
  });

  it('a tick removes at most gcExpireBudget expired entries; lookups ignore the rest', () => {
    const { ct, clock } = makeConntrack({ gcExpireBudget: 10 });
    for (let i = 0; i < 100; i++) forward(ct, udp('10.0.0.1', '10.0.0.2', 1000 + i, 53));
    clock.advance(60);
    ct.tick(clock.t);
    assert.equal(ct.count(), 90);
    assert.equal(ct.lookup(ip('10.0.0.1'), ip('10.0.0.2'), 1099, 53, 17), -1);
    assert.equal(ct.list().length, 0);
    assert.equal(ct.count(), 0, 'listing collects what it meets');
  });
});

describe('UDP (§4.4)', () => {
  const req = () => udp('10.0.0.1', '10.0.0.2', 5000, 53);
  const rep = () => udp('10.0.0.2', '10.0.0.1', 53, 5000);

  it('unreplied: NEW, 30 s, refreshed by more requests', () => {
    const { ct, clock } = makeConntrack();
    assert.equal(forward(ct, req()).ctState, CtState.NEW);
    clock.advance(10);
    assert.equal(forward(ct, req()).ctState, CtState.NEW);
    const v = ct.list()[0];
    assert.equal(v.timeout, 30);
    assert.equal(v.seenReply, false);
  });

  it('replied within 2 s: ESTABLISHED, 30 s, not assured; after 2 s: 120 s and ASSURED', () => {
    const { ct, clock, events } = makeConntrack();
    forward(ct, req());
    clock.advance(1);
    const r = forward(ct, rep());
    assert.equal(r.ctState, CtState.ESTABLISHED);
    assert.equal(r.ctDir, 1);
    let v = ct.list()[0];
    assert.deepEqual([v.timeout, v.seenReply, v.assured], [30, true, false]);
    clock.advance(0.5);
    forward(ct, req());
    v = ct.list()[0];
    assert.deepEqual([v.timeout, v.assured], [30, false]);
    clock.advance(1);
    events.length = 0;
    assert.equal(forward(ct, req()).ctState, CtState.ESTABLISHED);
    v = ct.list()[0];
    assert.deepEqual([v.timeout, v.assured], [120, true]);
    assert.equal(events.length, 1);
    assert.equal(events[0].type, 'UPDATE');
  });

  it('the first reply itself never gets the stream timeout', () => {
    const { ct, clock } = makeConntrack();
    forward(ct, req());
    clock.advance(5);
    forward(ct, rep());
    assert.deepEqual([ct.list()[0].timeout, ct.list()[0].assured], [30, false]);
    forward(ct, rep());
    assert.deepEqual([ct.list()[0].timeout, ct.list()[0].assured], [120, true]);
  });

  it('udp_error: bad length, bad checksum at PREROUTING are INVALID; trusted/partial/zero checksums pass', () => {
    const { ct } = makeConntrack();
    const bad = req();
    bad.writeUInt16BE(200, IPV4_HEADER_LEN + 4); // length beyond the packet
    assert.equal(forward(ct, bad).ctState, CtState.INVALID);
    const badSum = req();
    badSum[IPV4_HEADER_LEN + 7] ^= 0xff;
    assert.equal(forward(ct, badSum).ctState, CtState.INVALID);
    // At OUTPUT (locally generated) checksums are not checked.
    const out = meta(badSum, Hook.OUTPUT);
    ct.inbound(out);
    assert.equal(out.ctState, CtState.NEW);
    ct.discard(out);
    // Trusted by the caller (virtio DATA_VALID / NEEDS_CSUM).
    const trusted = meta(badSum, Hook.PREROUTING);
    ct.inbound(trusted, true);
    assert.equal(trusted.ctState, CtState.NEW);
    ct.discard(trusted);
    // CHECKSUM_PARTIAL recognised: the field is the folded pseudo-header sum.
    const partial = udp('10.0.0.1', '10.0.0.2', 5001, 53);
    const s = checksumFold(pseudoHeaderSum(ip('10.0.0.1'), ip('10.0.0.2'), IPPROTO_UDP, 24));
    partial.writeUInt16BE(s, IPV4_HEADER_LEN + 6);
    assert.equal(forward(ct, partial).ctState, CtState.NEW);
    const none = udp('10.0.0.1', '10.0.0.2', 5002, 53);
    none.writeUInt16BE(0, IPV4_HEADER_LEN + 6);
    assert.equal(forward(ct, none).ctState, CtState.NEW);
    assert.equal(ct.stats().invalid, 2);
  });

  it('checksum=false skips verification', () => {
    const { ct } = makeConntrack({ checksum: false });
    const badSum = req();
    badSum[IPV4_HEADER_LEN + 7] ^= 0xff;
    assert.equal(forward(ct, badSum).ctState, CtState.NEW);
  });
});

describe('ICMP (§4.5)', () => {
  it('echo request creates, echo reply is ESTABLISHED in REPLY, the entry stays 30 s', () => {
    const { ct, clock } = makeConntrack();
    const m = forward(ct, icmp('10.0.0.1', '10.0.0.2', 8, 77));
    assert.equal(m.ctState, CtState.NEW);
    clock.advance(5);
    const r = forward(ct, icmp('10.0.0.2', '10.0.0.1', 0, 77));
    assert.equal(r.ctState, CtState.ESTABLISHED);
    assert.equal(r.ctDir, 1);
    const v = ct.list()[0];
    assert.equal(v.timeout, 30);
    assert.deepEqual(
      [v.orig.type, v.orig.code, v.orig.id, v.reply.type, v.reply.id],
      [8, 0, 77, 0, 77],
    );
    assert.equal(ct.count(), 1);
    // Another id is another connection.
    forward(ct, icmp('10.0.0.1', '10.0.0.2', 8, 78));
    assert.equal(ct.count(), 2);
  });

  for (const [req, rep] of [
    [13, 14],
    [15, 16],
    [17, 18],
  ]) {
    it(`type ${req} creates a connection answered by type ${rep}`, () => {
      const { ct } = makeConntrack();
      assert.equal(forward(ct, icmp('10.0.0.1', '10.0.0.2', req, 5)).ctState, CtState.NEW);
      assert.equal(forward(ct, icmp('10.0.0.2', '10.0.0.1', rep, 5)).ctState, CtState.ESTABLISHED);
    });
  }

  it('replies, unknown and out-of-range types cannot create connections', () => {
    const { ct } = makeConntrack();
    for (const t of [0, 14, 16, 18, 9, 10]) {
      assert.equal(
        forward(ct, icmp('10.0.0.1', '10.0.0.2', t, 5)).ctState,
        CtState.INVALID,
        `type ${t}`,
      );
    }
    assert.equal(ct.stats().invalid, 6);
    assert.equal(forward(ct, icmp('10.0.0.1', '10.0.0.2', 40, 5)).ctState, CtState.INVALID);
    assert.equal(ct.stats().error, 1);
    assert.equal(ct.count(), 0);
  });

  it('a bad ICMP checksum at PREROUTING is INVALID (error counter)', () => {
    const { ct } = makeConntrack();
    const b = icmp('10.0.0.1', '10.0.0.2', 8, 5);
    b[IPV4_HEADER_LEN + 2] ^= 1;
    assert.equal(forward(ct, b).ctState, CtState.INVALID);
    assert.equal(ct.stats().error, 1);
  });
});

describe('generic protocols', () => {
  it('IPIP (proto 4): 600 s, replies ESTABLISHED; GRE: 30 s, then 180 s and ASSURED', () => {
    const { ct } = makeConntrack();
    const pkt = (src: string, dst: string, proto: number) => {
      const b = Buffer.alloc(40);
      emitIpv4Header(b, 0, {
        src: ip(src),
        dst: ip(dst),
        protocol: proto,
        ttl: 64,
        id: 1,
        dontFragment: false,
        tos: 0,
        payloadLength: 20,
      });
      return b;
    };
    assert.equal(forward(ct, pkt('10.1.110.102', '10.1.110.107', 4)).ctState, CtState.NEW);
    assert.equal(forward(ct, pkt('10.1.110.107', '10.1.110.102', 4)).ctState, CtState.ESTABLISHED);
    assert.equal(ct.list({ proto: 4 })[0].timeout, 600);
    forward(ct, pkt('10.0.0.1', '10.0.0.2', 47));
    assert.equal(ct.list({ proto: 'gre' })[0].timeout, 30);
    forward(ct, pkt('10.0.0.2', '10.0.0.1', 47));
    forward(ct, pkt('10.0.0.1', '10.0.0.2', 47));
    const g = ct.list({ proto: 47 })[0];
    assert.deepEqual([g.timeout, g.assured], [180, true]);
  });

  it("fragments: later fragments follow the first fragment's entry", () => {
    const { ct } = makeConntrack();
    // First fragment: UDP header, MF set.
    const first = udp('10.0.0.1', '10.0.0.2', 5000, 53, 40);
    first.writeUInt16BE(0x2000, 6);
    first.writeUInt16BE(77, 4);
    first.writeUInt16BE(0, 10);
    first.writeUInt16BE(
      0xffff ^
        (() => {
          let s = 0;
          for (let i = 0; i < 20; i += 2) s += first.readUInt16BE(i);
          while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
          return s;
        })(),
      10,
    );
    const m1 = forward(ct, first);
    assert.equal(m1.ctState, CtState.NEW);
    const second = Buffer.alloc(28);
    emitIpv4Header(second, 0, {
      src: ip('10.0.0.1'),
      dst: ip('10.0.0.2'),
      protocol: IPPROTO_UDP,
      ttl: 64,
      id: 77,
      dontFragment: false,
      tos: 0,
      payloadLength: 8,
    });
    second.writeUInt16BE(6, 6); // offset 48 bytes, last fragment (checksum not needed here)
    const m2 = meta(second);
    ct.inbound(m2);
    assert.equal(m2.ctEntry, m1.ctEntry);
    assert.equal(m2.ctState, CtState.NEW);
    // A fragment of an unknown datagram is INVALID (Linux would have reassembled it).
    const stray = Buffer.from(second);
    stray.writeUInt16BE(78, 4);
    const m3 = meta(stray);
    ct.inbound(m3);
    assert.equal(m3.ctState, CtState.INVALID);
  });
});
