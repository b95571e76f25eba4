import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_HEADER_LEN,
  checksumDelta32,
  checksumFold,
  internetChecksum,
  onesComplementSum,
  pseudoHeaderSum,
} from '../../../src/packet/index.js';
import { CtState, Hook } from '../../../src/netfilter/packet-meta.js';
import {
  formatConntrackEntry,
  kubeProxyConntrackOptions,
  partialChecksumAddDelta,
} from '../../../src/conntrack/index.js';
import {
  F,
  assertChecksumsValid,
  dnatTo,
  fields,
  forward,
  icmp,
  icmpError,
  ip,
  makeConntrack,
  masquerade,
  meta,
  snatTo,
  tcp,
  udp,
} from './helpers.js';

const POD = '192.168.104.65';
const VIP = '10.96.23.229';
const DB = '192.168.8.223';

describe('DNAT, then un-DNAT of the replies (real packet bytes)', () => {
  it('pod -> ClusterIP -> endpoint, and back; bytes equal packets built with the translated addresses', () => {
    const { ct, clock } = makeConntrack(kubeProxyConntrackOptions());
    const syn = tcp({ src: POD, dst: VIP, sport: 40000, dport: 3306, seq: 1000, flags: F.SYN });
    const m = forward(ct, syn, { dnat: dnatTo(DB, 3306) });
    assert.equal(m.stateAtForward, CtState.NEW | CtState.DNAT);
    assert.deepEqual(
      syn,
      tcp({ src: POD, dst: DB, sport: 40000, dport: 3306, seq: 1000, flags: F.SYN }),
    );
    assertChecksumsValid(syn, 'DNATed SYN');
    assert.deepEqual(fields(syn), { src: POD, dst: DB, sport: 40000, dport: 3306 });

    const synack = tcp({
      src: DB,
      dst: POD,
      sport: 3306,
      dport: 40000,
      seq: 5000,
      ack: 1001,
      flags: F.SYN | F.ACK,
    });
    const r = forward(ct, synack);
    assert.equal(r.ctState, CtState.ESTABLISHED | CtState.DNAT);
    assert.equal(r.ctDir, 1);
    assert.deepEqual(
      synack,
      tcp({
        src: VIP,
        dst: POD,
        sport: 3306,
        dport: 40000,
        seq: 5000,
        ack: 1001,
        flags: F.SYN | F.ACK,
      }),
    );
    assertChecksumsValid(synack, 'un-DNATed SYN/ACK');

    const ack = tcp({
      src: POD,
      dst: VIP,
      sport: 40000,
      dport: 3306,
      seq: 1001,
      ack: 5001,
      flags: F.ACK,
      payload: 300,
    });
    forward(ct, ack);
    assert.deepEqual(fields(ack), { src: POD, dst: DB, sport: 40000, dport: 3306 });
    assertChecksumsValid(ack, 'data');
    const back = tcp({
      src: DB,
      dst: POD,
      sport: 3306,
      dport: 40000,
      seq: 5001,
      ack: 1301,
      flags: F.ACK,
    });
    forward(ct, back);
    assertChecksumsValid(back, 'ack');
    clock.advance(3);
    assert.equal(
      formatConntrackEntry(ct.list()[0]),
      'tcp      6 86397 ESTABLISHED src=192.168.104.65 dst=10.96.23.229 sport=40000 dport=3306 ' +
        'src=192.168.8.223 dst=192.168.104.65 sport=3306 dport=40000 [ASSURED] mark=0 use=1',
    );
    assert.equal(ct.list({ dnat: DB }).length, 1);
    assert.equal(ct.list({ snat: true }).length, 0);
  });

  it('external client -> NodePort: DNAT to a remote pod and MASQUERADE out of tunl0', () => {
    const { ct } = makeConntrack();
    const CLIENT = '10.1.0.89';
    const NODE = '10.1.110.102';
    const TUNL = '192.168.104.64';
    const WP = '192.168.8.222';
    const syn = tcp({ src: CLIENT, dst: NODE, sport: 50000, dport: 30080, seq: 1, flags: F.SYN });
    const m = forward(ct, syn, {
      dnat: dnatTo(WP, 80),
      snat: masquerade(),
      masqAddr: ip(TUNL),
      outIf: 'tunl0',
    });
    assert.equal(m.ctState, CtState.NEW | CtState.DNAT | CtState.SNAT);
    assert.deepEqual(
      syn,
      tcp({ src: TUNL, dst: WP, sport: 50000, dport: 80, seq: 1, flags: F.SYN }),
    );
    const synack = tcp({
      src: WP,
      dst: TUNL,
      sport: 80,
      dport: 50000,
      seq: 9,
      ack: 2,
      flags: F.SYN | F.ACK,
    });
    forward(ct, synack);
    assert.deepEqual(
      synack,
      tcp({
        src: NODE,
        dst: CLIENT,
        sport: 30080,
        dport: 50000,
        seq: 9,
        ack: 2,
        flags: F.SYN | F.ACK,
      }),
    );
    const v = ct.list()[0];
    assert.deepEqual([v.snat, v.dnat], [true, true]);
    assert.equal(ct.list({ anyNat: true }).length, 1);
    assert.equal(ct.list({ snat: TUNL, dnat: WP }).length, 1);
    assert.equal(ct.list({ snat: '1.2.3.4' }).length, 0);
    // The interface goes down: MASQUERADE forgets the connection.
    assert.equal(ct.flushMasquerade('eth0'), 0);
    assert.equal(ct.flushMasquerade('tunl0'), 1);
    assert.equal(ct.count(), 0);
  });
});

describe('SNAT / MASQUERADE port selection', () => {
  const NODE = ip('10.1.110.102');
  const dns = (src: string, sport: number, dst = '8.8.8.8') => udp(src, dst, sport, 53);

  it('keeps the source port when the reply tuple is free, else picks one of the same class', () => {
    const { ct } = makeConntrack();
    for (const [port, lo, hi] of [
      [5000, 1024, 65535],
      [100, 1, 511],
      [700, 600, 1023],
    ]) {
      const a = dns('192.168.104.65', port);
      forward(ct, a, { snat: masquerade(), masqAddr: NODE });
      assert.deepEqual(fields(a), { src: '10.1.110.102', dst: '8.8.8.8', sport: port, dport: 53 });
      const b = dns('192.168.104.66', port);
      const m = forward(ct, b, { snat: masquerade(), masqAddr: NODE });
      assert.ok(m.accepted);
      const f = fields(b);
      assert.notEqual(f.sport, port);
      assert.ok(f.sport >= lo && f.sport <= hi, `${port} -> ${f.sport} in ${lo}..${hi}`);
      assertChecksumsValid(b, 'masqueraded');
      // The reply to the remapped port goes back to the second pod's port.
      const reply = udp('8.8.8.8', '10.1.110.102', 53, f.sport);
      const r = forward(ct, reply);
      assert.equal(r.ctState, CtState.ESTABLISHED | CtState.SNAT);
      assert.deepEqual(fields(reply), {
        src: '8.8.8.8',
        dst: '192.168.104.66',
        sport: 53,
        dport: port,
      });
      assertChecksumsValid(reply, 'de-masqueraded');
    }
  });

  it('reuses the mapping of the same source (find_appropriate_src)', () => {
    const { ct } = makeConntrack();
    forward(ct, dns('192.168.104.65', 5000), { snat: masquerade(), masqAddr: NODE });
    const b = dns('192.168.104.66', 5000);
    forward(ct, b, { snat: masquerade(), masqAddr: NODE });
    const mapped = fields(b).sport;
    const c = dns('192.168.104.66', 5000, '1.1.1.1');
    forward(ct, c, { snat: masquerade(), masqAddr: NODE });
    assert.equal(fields(c).sport, mapped);
  });

  it('--to-source with a port range: allocates in range; an exhausted range fails at confirm', () => {
    const { ct } = makeConntrack();
    const req = snatTo('10.1.110.200', '10.1.110.200', 2000, 2001);
    const got: number[] = [];
    for (const sport of [40000, 40001]) {
      const p = dns('192.168.104.65', sport);
      assert.ok(forward(ct, p, { snat: req }).accepted);
      got.push(fields(p).sport);
    }
    assert.deepEqual(got.sort(), [2000, 2001]);
    const p = dns('192.168.104.65', 40002);
    const m = forward(ct, p, { snat: req });
    assert.equal(m.accepted, false);
    assert.equal(ct.stats().insert_failed, 1);
    assert.equal(ct.count(), 2);
  });

  it('--random-fully changes the port even when it is free; addresses of a range stay in range', () => {
    const { ct } = makeConntrack();
    const a = dns('192.168.104.65', 5555);
    forward(ct, a, { snat: masquerade({ randomFully: true }), masqAddr: NODE });
    assert.notEqual(fields(a).sport, 5555);
    assert.ok(fields(a).sport >= 1024);
    for (let i = 0; i < 20; i++) {
      const p = dns(`192.168.104.${10 + i}`, 6000, `8.8.4.${i}`);
      forward(ct, p, { snat: snatTo('10.1.110.200', '10.1.110.203') });
      const n = ip(fields(p).src);
      assert.ok(n >= ip('10.1.110.200') && n <= ip('10.1.110.203'));
    }
  });

  it('--persistent maps a source to the same address whatever the destination', () => {
    const { ct } = makeConntrack();
    const addrs = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const p = dns('192.168.104.65', 7000 + i, `8.8.4.${i}`);
      forward(ct, p, { snat: snatTo('10.1.110.200', '10.1.110.250', 0, 0, { persistent: true }) });
      addrs.add(fields(p).src);
    }
    assert.equal(addrs.size, 1);
  });

  it('the null binding remaps a source port whose reply tuple is taken', () => {
    const { ct } = makeConntrack();
    const a = tcp({ src: POD, dst: '10.96.0.1', sport: 33333, dport: 443, seq: 1, flags: F.SYN });
    forward(ct, a, { dnat: dnatTo('10.1.110.108', 6443) });
    const b = tcp({ src: POD, dst: '10.96.0.2', sport: 33333, dport: 443, seq: 1, flags: F.SYN });
    const m = forward(ct, b, { dnat: dnatTo('10.1.110.108', 6443) });
    assert.ok(m.accepted);
    assert.equal(m.ctState & CtState.SNAT, CtState.SNAT);
    assert.notEqual(fields(b).sport, 33333);
    assertChecksumsValid(b);
    assert.equal(ct.count(), 2);
  });

  it('MASQUERADE without an address drops; a 0.0.0.0 source gets the null binding', () => {
    const { ct } = makeConntrack();
    const m = forward(ct, dns('192.168.104.65', 5000), { snat: masquerade(), masqAddr: 0 });
    assert.equal(m.accepted, false);
    const z = dns('0.0.0.0', 68, '255.255.255.255');
    const n = forward(ct, z, { snat: masquerade(), masqAddr: NODE });
    assert.ok(n.accepted);
    assert.equal(fields(z).src, '0.0.0.0');
  });

  it('ICMP echo: the identifier is the port; a clash gets a new id, replies get theirs back', () => {
    const { ct } = makeConntrack();
    const a = icmp('192.168.104.65', '8.8.8.8', 8, 77);
    forward(ct, a, { snat: masquerade(), masqAddr: NODE });
    assert.equal(a.readUInt16BE(IPV4_HEADER_LEN + 4), 77);
    const b = icmp('192.168.104.66', '8.8.8.8', 8, 77);
    forward(ct, b, { snat: masquerade(), masqAddr: NODE });
    const id = b.readUInt16BE(IPV4_HEADER_LEN + 4);
    assert.notEqual(id, 77);
    assertChecksumsValid(b, 'echo');
    const reply = icmp('8.8.8.8', '10.1.110.102', 0, id);
    const r = forward(ct, reply);
    assert.equal(r.ctState, CtState.ESTABLISHED | CtState.SNAT);
    assert.deepEqual(reply, icmp('8.8.8.8', '192.168.104.66', 0, 77));
  });

  it('REDIRECT at OUTPUT goes to 127.0.0.1', () => {
    const { ct } = makeConntrack();
    const p = udp('10.1.110.102', '10.96.0.10', 40000, 53);
    const m = meta(p, Hook.OUTPUT, '');
    ct.inbound(m);
    assert.ok(
      ct.setupNat(m, 'DST', {
        kind: 'REDIRECT',
        minAddr: 0,
        maxAddr: 0,
        minPort: 5353,
        maxPort: 5353,
        random: false,
        randomFully: false,
        persistent: false,
      }),
    );
    ct.natPacket(m, 'DST', false);
    assert.deepEqual(fields(p), {
      src: '10.1.110.102',
      dst: '127.0.0.1',
      sport: 40000,
      dport: 5353,
    });
    assert.equal(m.dst, ip('127.0.0.1'));
    assertChecksumsValid(p);
  });
});

describe('partial checksums (CHECKSUM_PARTIAL, virtio NEEDS_CSUM)', () => {
  it('adding the address delta keeps the field equal to the new pseudo-header sum', () => {
    let x = 0x9e3779b9;
    const rnd = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
    for (let i = 0; i < 2000; i++) {
      const src = rnd();
      const dst = rnd();
      const nsrc = rnd();
      const len = rnd() & 0xffff;
      const proto = i & 1 ? IPPROTO_TCP : IPPROTO_UDP;
      const field = checksumFold(pseudoHeaderSum(src, dst, proto, len));
      const updated = partialChecksumAddDelta(field, checksumDelta32(src, nsrc));
      const fresh = checksumFold(pseudoHeaderSum(nsrc, dst, proto, len));
      // Equal as one's-complement numbers (0 and 0xffff are the same value).
      assert.equal(updated % 0xffff, fresh % 0xffff, `case ${i}`);
    }
  });

  /** Turns a packet's full L4 checksum into the partial form a NEEDS_CSUM packet carries. */
  function makePartial(buf: Buffer): Buffer {
    const p = Buffer.from(buf);
    const proto = p[9];
    const l4Len = p.readUInt16BE(2) - IPV4_HEADER_LEN;
    const at = IPV4_HEADER_LEN + (proto === IPPROTO_TCP ? 16 : 6);
    p.writeUInt16BE(
      checksumFold(pseudoHeaderSum(p.readUInt32BE(12), p.readUInt32BE(16), proto, l4Len)),
      at,
    );
    return p;
  }

  /** What the receiver / NIC does: complete the checksum over the segment. */
  function complete(p: Buffer): Buffer {
    const c = Buffer.from(p);
    const proto = c[9];
    const l4Len = c.readUInt16BE(2) - IPV4_HEADER_LEN;
    const at = IPV4_HEADER_LEN + (proto === IPPROTO_TCP ? 16 : 6);
    let sum = ~onesComplementSum(c, IPV4_HEADER_LEN, l4Len) & 0xffff;
    if (proto === IPPROTO_UDP && sum === 0) sum = 0xffff;
    c.writeUInt16BE(sum, at);
    return c;
  }

  for (const kind of ['tcp', 'udp'] as const) {
    it(`${kind}: DNAT + MASQUERADE with partialChecksum, completed, equals the full-checksum NAT`, () => {
      for (let round = 0; round < 2; round++) {
        const full = makeConntrack();
        const part = makeConntrack();
        const build = (): Buffer =>
          kind === 'tcp'
            ? tcp({
                src: POD,
                dst: VIP,
                sport: 40000 + round,
                dport: 3306,
                seq: 77,
                flags: F.SYN,
                payload: 1001,
              })
            : udp(POD, VIP, 40000 + round, 53, 999);
        const a = build();
        const b = makePartial(build());
        // Both sides collide on the first round so the port changes too.
        for (const [c, pkt, partial] of [
          [full.ct, a, false],
          [part.ct, b, true],
        ] as const) {
          if (round === 1) {
            forward(c, udp('192.168.104.99', VIP, 40001, kind === 'tcp' ? 3306 : 53), {
              dnat: dnatTo(DB, kind === 'tcp' ? 3306 : 5353),
              snat: masquerade(),
              masqAddr: ip('10.1.110.102'),
            });
            forward(
              c,
              tcp({
                src: '192.168.104.99',
                dst: VIP,
                sport: 40001,
                dport: 3306,
                seq: 1,
                flags: F.SYN,
              }),
              {
                dnat: dnatTo(DB, 3306),
                snat: masquerade(),
                masqAddr: ip('10.1.110.102'),
              },
            );
          }
          const m = forward(c, pkt, {
            dnat: dnatTo(DB, kind === 'tcp' ? 3306 : 5353),
            snat: masquerade(),
            masqAddr: ip('10.1.110.102'),
            partial,
          });
          assert.ok(m.accepted);
        }
        assertChecksumsValid(a, 'full NAT');
        // The partial field still is the (new) pseudo-header sum ...
        const proto = b[9];
        const l4Len = b.readUInt16BE(2) - IPV4_HEADER_LEN;
        const at = IPV4_HEADER_LEN + (proto === IPPROTO_TCP ? 16 : 6);
        assert.equal(
          b.readUInt16BE(at) % 0xffff,
          checksumFold(pseudoHeaderSum(b.readUInt32BE(12), b.readUInt32BE(16), proto, l4Len)) %
            0xffff,
        );
        // ... and completing it gives the full-checksum result, byte for byte.
        assert.deepEqual(complete(b), a, `round ${round}`);
        if (round === 1) assert.notEqual(fields(a).sport, 40001);
        assert.equal(internetChecksum(b, 0, IPV4_HEADER_LEN), 0);
      }
    });
  }

  it('inbound recognises a partial checksum at PREROUTING', () => {
    const { ct } = makeConntrack();
    const p = makePartial(
      tcp({ src: POD, dst: VIP, sport: 1, dport: 2, seq: 1, flags: F.SYN, payload: 10 }),
    );
    assert.equal(forward(ct, p, { partial: true }).ctState, CtState.NEW);
  });
});

describe('RELATED ICMP errors (§4.5)', () => {
  it('port unreachable for a UDP flow: RELATED in the reply direction', () => {
    const { ct } = makeConntrack();
    const q = udp('10.0.0.1', '10.0.0.2', 5000, 53);
    const m = forward(ct, q);
    const err = icmpError(3, 3, '10.0.0.2', q);
    const r = forward(ct, err);
    assert.equal(r.ctState, CtState.RELATED);
    assert.equal(r.ctDir, 1);
    assert.equal(r.ctEntry, m.ctEntry);
    assert.equal(ct.stats().error, 0);
    // The error does not count as a reply.
    assert.equal(ct.list()[0].seenReply, false);
  });

  it('fragmentation needed for TCP, from a router on the way, both directions', () => {
    const { ct } = makeConntrack();
    const syn = tcp({
      src: '10.0.0.1',
      dst: '10.0.0.2',
      sport: 40000,
      dport: 80,
      seq: 1,
      flags: F.SYN,
    });
    forward(ct, syn);
    const synack = tcp({
      src: '10.0.0.2',
      dst: '10.0.0.1',
      sport: 80,
      dport: 40000,
      seq: 9,
      ack: 2,
      flags: F.SYN | F.ACK,
    });
    forward(ct, synack);
    const data = tcp({
      src: '10.0.0.1',
      dst: '10.0.0.2',
      sport: 40000,
      dport: 80,
      seq: 2,
      ack: 10,
      flags: F.ACK,
      payload: 1400,
    });
    const toClient = forward(ct, icmpError(3, 4, '10.9.9.9', data, 1280));
    assert.equal(toClient.ctState, CtState.RELATED);
    assert.equal(toClient.ctDir, 1);
    const toServer = forward(ct, icmpError(3, 4, '10.9.9.9', synack, 1280));
    assert.equal(toServer.ctState, CtState.RELATED);
    assert.equal(toServer.ctDir, 0);
  });

  it('time exceeded about a ping is RELATED; errors about unknown flows or to the wrong host are INVALID', () => {
    const { ct } = makeConntrack();
    const ping = icmp('10.0.0.1', '10.0.0.2', 8, 9);
    forward(ct, ping);
    assert.equal(forward(ct, icmpError(11, 0, '10.9.9.9', ping)).ctState, CtState.RELATED);
    const unknown = udp('10.0.0.1', '10.0.0.3', 5000, 53);
    assert.equal(forward(ct, icmpError(3, 3, '10.0.0.3', unknown)).ctState, CtState.INVALID);
    const q = udp('10.0.0.1', '10.0.0.2', 5000, 53);
    forward(ct, q);
    const err = icmpError(3, 3, '10.0.0.2', q);
    err.writeUInt32BE(ip('10.0.0.77'), 16); // outer destination is not the flow's source
    err.writeUInt16BE(0, 10);
    err.writeUInt16BE(~onesComplementSum(err, 0, 20) & 0xffff, 10);
    assert.equal(forward(ct, err).ctState, CtState.INVALID);
    assert.equal(ct.stats().error, 2);
  });

  it('NAT: an error from a DNAT backend is translated, quoted packet included (checksums valid)', () => {
    const { ct } = makeConntrack();
    const CLIENT = '192.168.104.65';
    const DNS = '10.96.0.10';
    const BACKEND = '192.168.8.207';
    const q = udp(CLIENT, DNS, 40000, 53);
    const original = Buffer.from(q);
    forward(ct, q, { dnat: dnatTo(BACKEND, 53) });
    assert.equal(fields(q).dst, BACKEND);
    const err = icmpError(3, 3, BACKEND, q);
    const r = forward(ct, err);
    assert.equal(r.ctState, CtState.RELATED | CtState.DNAT);
    assert.deepEqual(err, icmpError(3, 3, DNS, original));
    assertChecksumsValid(err, 'translated error');
    assertChecksumsValid(err.subarray(28), 'quoted packet');
  });

  it('NAT: an error for a masqueraded TCP flow reaches the client with its own addresses', () => {
    const { ct } = makeConntrack();
    const CLIENT = '10.1.0.89';
    const NODE = '10.1.110.102';
    const TUNL = '192.168.104.64';
    const WP = '192.168.8.222';
    const syn = tcp({
      src: CLIENT,
      dst: NODE,
      sport: 50000,
      dport: 30080,
      seq: 1,
      flags: F.SYN,
      payload: 0,
    });
    const original = Buffer.from(syn);
    forward(ct, syn, {
      dnat: dnatTo(WP, 80),
      snat: masquerade(),
      masqAddr: ip(TUNL),
      outIf: 'tunl0',
    });
    // The pod's node answers with frag needed, to the masqueraded source.
    const err = icmpError(3, 4, WP, syn, 1400);
    const r = forward(ct, err);
    assert.equal(r.ctState, CtState.RELATED | CtState.DNAT | CtState.SNAT);
    assert.deepEqual(err, icmpError(3, 4, NODE, original, 1400));
    assertChecksumsValid(err.subarray(28), 'quoted TCP segment');
  });

  it('an ICMP redirect about a NATed connection is dropped', () => {
    const { ct } = makeConntrack();
    const q = udp('192.168.104.65', '10.96.0.10', 40000, 53);
    forward(ct, q, { dnat: dnatTo('192.168.8.207', 53) });
    const redirect = icmpError(5, 1, '192.168.8.207', q);
    const m = meta(redirect);
    ct.inbound(m);
    assert.equal(m.ctState & CtState.RELATED, CtState.RELATED);
    assert.equal(ct.natPacket(m, 'DST', false), false);
  });
});
