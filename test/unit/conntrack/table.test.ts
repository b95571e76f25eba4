import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CtState, Hook } from '../../../src/netfilter/packet-meta.js';
import { F, forward, ip, makeConntrack, meta, tcp, udp } from './helpers.js';

/** A confirmed, ASSURED TCP connection from 10.0.0.1:port. */
function assuredTcp(ct: Parameters<typeof forward>[0], port: number): void {
  forward(
    ct,
    tcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: port, dport: 80, seq: 1, flags: F.SYN }),
  );
  forward(
    ct,
    tcp({
      src: '10.0.0.2',
      dst: '10.0.0.1',
      sport: 80,
      dport: port,
      seq: 9,
      ack: 2,
      flags: F.SYN | F.ACK,
    }),
  );
  forward(
    ct,
    tcp({
      src: '10.0.0.1',
      dst: '10.0.0.2',
      sport: port,
      dport: 80,
      seq: 2,
      ack: 10,
      flags: F.ACK,
    }),
  );
}

describe('table limit and early drop', () => {
  it('at nf_conntrack_max, a new connection early-drops unassured entries', () => {
    const { ct, events } = makeConntrack({ maxEntries: 4 });
    for (let i = 0; i < 4; i++) forward(ct, udp('10.0.0.1', '10.0.0.2', 1000 + i, 53));
    assert.equal(ct.count(), 4);
    events.length = 0;
    const m = forward(ct, udp('10.0.0.1', '10.0.0.2', 2000, 53));
    assert.ok(m.accepted);
    assert.equal(m.ctState, CtState.NEW);
    const st = ct.stats();
    assert.ok(st.early_drop >= 1);
    assert.equal(ct.count(), 4 - st.early_drop + 1);
    assert.equal(st.drop, 0);
    assert.ok(events.some((e) => e.type === 'DESTROY'));
  });

  it('when every entry is ASSURED the packet is dropped, with a rate-limited log line', () => {
    const { ct, clock, logs } = makeConntrack({ maxEntries: 4 });
    for (let i = 0; i < 4; i++) assuredTcp(ct, 1000 + i);
    assert.equal(ct.count(), 4);
    assert.ok(ct.list().every((v) => v.assured));
    for (let i = 0; i < 15; i++) {
      const m = forward(ct, udp('10.0.0.9', '10.0.0.2', 3000 + i, 53));
      assert.equal(m.accepted, false);
      assert.equal(m.ctEntry, -1);
    }
    assert.equal(ct.stats().drop, 15);
    assert.equal(ct.stats().early_drop, 0);
    assert.equal(logs.length, 10);
    assert.ok(logs.every((l) => l === 'nf_conntrack: table full, dropping packet'));
    clock.advance(5);
    forward(ct, udp('10.0.0.9', '10.0.0.2', 4000, 53));
    assert.deepEqual(logs.slice(10), [
      'net_ratelimit: 5 callbacks suppressed',
      'nf_conntrack: table full, dropping packet',
    ]);
    assert.equal(ct.count(), 4);
  });

  it('expired entries make room without counting as early drops', () => {
    const { ct, clock } = makeConntrack({ maxEntries: 4 });
    for (let i = 0; i < 4; i++) assuredTcp(ct, 1000 + i);
    forward(
      ct,
      tcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1000, dport: 80, seq: 2, flags: F.RST }),
    );
    clock.advance(11); // the RST's CLOSE timeout
    const m = forward(ct, udp('10.0.0.9', '10.0.0.2', 3000, 53));
    assert.ok(m.accepted);
    assert.equal(ct.stats().early_drop, 0);
    assert.equal(ct.count(), 4);
  });

  it('the table grows beyond its initial arrays up to the limit', () => {
    const { ct } = makeConntrack({ maxEntries: 10000 });
    for (let i = 0; i < 10000; i++) {
      forward(ct, udp(`10.0.${i >> 8}.${i & 255}`, '10.0.0.2', 1000, 53));
    }
    assert.equal(ct.count(), 10000);
    for (let i = 0; i < 10000; i += 997) {
      assert.ok(ct.lookup(ip(`10.0.${i >> 8}.${i & 255}`), ip('10.0.0.2'), 1000, 53, 17) >= 0);
    }
  });
});

describe('unconfirmed entries', () => {
  it('a dropped packet leaves no entry: reclaimed at the next packet of the same meta, or by discard()', () => {
    const { ct } = makeConntrack({ maxEntries: 1 });
    const m = meta(udp('10.0.0.1', '10.0.0.2', 1, 53));
    ct.inbound(m);
    assert.equal(m.ctState, CtState.NEW);
    assert.equal(ct.count(), 0);
    // Dropped by a filter rule; the forwarder moves on to the next packet with the same meta.
    m.reset();
    m.parse(udp('10.0.0.1', '10.0.0.2', 2, 53), 0, 44);
    assert.ok(ct.inbound(m), 'room again: the first unconfirmed entry was reclaimed');
    ct.discard(m);
    const n = meta(udp('10.0.0.1', '10.0.0.2', 3, 53));
    assert.ok(ct.inbound(n));
    assert.ok(ct.confirm(n));
    assert.equal(ct.count(), 1);
  });

  it('a clash at confirm (same tuple confirmed meanwhile) fails: insert_failed, drop', () => {
    const { ct } = makeConntrack();
    const a = meta(udp('10.0.0.1', '10.0.0.2', 1, 53));
    const b = meta(udp('10.0.0.1', '10.0.0.2', 1, 53));
    ct.inbound(a);
    ct.inbound(b);
    assert.equal(a.ctState, CtState.NEW);
    assert.equal(b.ctState, CtState.NEW);
    assert.ok(ct.confirm(a));
    assert.equal(ct.confirm(b), false);
    assert.equal(b.ctEntry, -1);
    const st = ct.stats();
    assert.deepEqual([st.insert, st.insert_failed, st.drop, st.entries], [1, 1, 1, 1]);
  });

  it('unconfirmed entries are not listed and never expire by the sweep', () => {
    const { ct, clock } = makeConntrack();
    const m = meta(udp('10.0.0.1', '10.0.0.2', 1, 53), Hook.OUTPUT);
    ct.inbound(m);
    assert.equal(ct.list().length, 0);
    clock.advance(100);
    ct.tick(clock.t);
    assert.ok(ct.confirm(m));
    assert.equal(ct.count(), 1);
  });
});

describe('list / delete / flush filters', () => {
  function populate() {
    const r = makeConntrack();
    const { ct } = r;
    forward(ct, udp('10.0.0.1', '10.0.0.2', 1000, 53));
    forward(ct, udp('10.0.0.2', '10.0.0.1', 53, 1000));
    forward(ct, udp('10.0.0.3', '10.0.0.2', 1001, 53));
    assuredTcp(ct, 5000);
    forward(
      ct,
      tcp({ src: '10.0.0.3', dst: '10.0.0.4', sport: 6000, dport: 443, seq: 1, flags: F.SYN }),
    );
    return r;
  }

  it('filters by protocol, addresses, ports, state, status, mark', () => {
    const { ct } = populate();
    assert.equal(ct.list().length, 4);
    assert.equal(ct.list({ proto: 'udp' }).length, 2);
    assert.equal(ct.list({ proto: 6 }).length, 2);
    assert.equal(ct.list({ src: '10.0.0.3' }).length, 2);
    assert.equal(ct.list({ dst: ip('10.0.0.2') }).length, 3);
    assert.equal(ct.list({ replySrc: '10.0.0.2', proto: 'tcp' }).length, 1);
    assert.equal(ct.list({ replyDst: '10.0.0.3' }).length, 2);
    assert.equal(ct.list({ sport: 1000 }).length, 1);
    assert.equal(ct.list({ dport: 443 }).length, 1);
    assert.equal(ct.list({ replySport: 53 }).length, 2);
    assert.equal(ct.list({ replyDport: 5000 }).length, 1);
    assert.equal(ct.list({ state: 'ESTABLISHED' }).length, 1);
    assert.equal(ct.list({ state: 'syn_sent' }).length, 1);
    assert.equal(ct.list({ status: 4 }).length, 1);
    assert.equal(ct.list({ status: 2 }).length, 2);
    assert.equal(ct.list({ unreplied: true }).length, 2);
    const e = ct.list({ dport: 443 })[0].id;
    ct.setMark(e, 0x4000);
    assert.equal(ct.getMark(e), 0x4000);
    assert.equal(ct.list({ mark: 0x4000 }).length, 1);
    assert.equal(ct.list({ mark: 0x4000, markMask: 0x4000 }).length, 1);
    assert.equal(ct.list({ mark: 0 }).length, 3);
    assert.throws(() => ct.list({ proto: 'nope' }));
  });

  it('delete and flush remove matching entries and report DESTROY', () => {
    const { ct, events } = populate();
    events.length = 0;
    assert.equal(ct.delete({ proto: 'udp', src: '10.0.0.3' }), 1);
    assert.equal(events.length, 1);
    assert.equal(events[0].type, 'DESTROY');
    assert.equal(ct.count(), 3);
    assert.equal(ct.flush({ proto: 'tcp' }), 2);
    assert.equal(ct.flush(), 1);
    assert.equal(ct.count(), 0);
    assert.equal(ct.list().length, 0);
  });

  it('accessors for -m conntrack', () => {
    const { ct, clock } = populate();
    const v = ct.list({ dport: 443 })[0];
    const e = v.id;
    assert.equal(ct.origSrc(e), ip('10.0.0.3'));
    assert.equal(ct.origDst(e), ip('10.0.0.4'));
    assert.equal(ct.replySrc(e), ip('10.0.0.4'));
    assert.equal(ct.replyDst(e), ip('10.0.0.3'));
    assert.deepEqual(
      [ct.origSport(e), ct.origDport(e), ct.replySport(e), ct.replyDport(e)],
      [6000, 443, 443, 6000],
    );
    assert.equal(ct.protocol(e), 6);
    assert.equal(ct.tcpState(e), 'SYN_SENT');
    assert.equal(ct.status(e), 8);
    clock.advance(20);
    assert.equal(ct.expiresIn(e), 100);
  });
});
