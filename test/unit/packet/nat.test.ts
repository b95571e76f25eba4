import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  IcmpView,
  Ipv4View,
  ParseResult,
  TcpView,
  UdpView,
  internetChecksum,
  natRewriteDst,
  natRewriteSrc,
} from '../../../src/packet/index.js';
import { type FrameName, frame } from './fixtures/frames.js';
import { Prng, expectResult, icmpOf, ip, ipOf, onesAdd, tcpOf, udpOf } from './helpers.js';

const L4_FRAMES: FrameName[] = [
  'tcpSyn',
  'tcpSynAck',
  'tcpAck',
  'tcpClientData',
  'tcpServerAck',
  'tcpServerData',
  'tcpClientAck',
  'tcpFirstFin',
  'tcpSecondFin',
  'tcpLastAck',
  'udpDatagram',
  'udpToClosedPort',
];

/** Checks that the incremental result equals a full recomputation, byte for byte. */
function assertMatchesFullRecompute(ipv: Ipv4View, what: string): void {
  const copy = Buffer.from(ipv.buf);
  const v = new Ipv4View();
  expectResult(v.wrap(copy, ipv.offset, ipv.length), ParseResult.Ok, what);
  v.fillChecksum();
  if (v.protocol === IPPROTO_TCP) {
    const t = new TcpView();
    expectResult(t.wrap(copy, v.payloadOffset, v.payloadLength), ParseResult.Ok, what);
    t.fillChecksum(v);
  } else if (v.protocol === IPPROTO_UDP) {
    const u = new UdpView();
    expectResult(u.wrap(copy, v.payloadOffset, v.payloadLength), ParseResult.Ok, what);
    if (u.checksum !== 0) u.fillChecksum(v);
  }
  assert.deepEqual(ipv.buf, copy, what);
}

function l4Verifies(ipv: Ipv4View): boolean {
  if (ipv.protocol === IPPROTO_TCP) return tcpOf(ipv).verifyChecksum(ipv);
  return udpOf(ipv).verifyChecksum(ipv);
}

describe('natRewriteSrc / natRewriteDst on TCP and UDP', () => {
  for (const name of L4_FRAMES) {
    it(`${name}: DNAT to a pod, SNAT to the node, and back`, () => {
      const ipv = ipOf(name);
      const orig = Buffer.from(ipv.buf);
      const sport = ipv.payloadSrcPort;
      const dport = ipv.payloadDstPort;
      natRewriteDst(ipv, ip('192.168.8.222'), 80);
      assert.equal(ipv.dst, ip('192.168.8.222'));
      assert.equal(ipv.payloadDstPort, 80);
      assert.ok(ipv.verifyChecksum() && l4Verifies(ipv));
      assertMatchesFullRecompute(ipv, `${name} dnat`);
      natRewriteSrc(ipv, ip('10.1.110.102'), 31000);
      assert.equal(ipv.src, ip('10.1.110.102'));
      assert.equal(ipv.payloadSrcPort, 31000);
      assert.ok(ipv.verifyChecksum() && l4Verifies(ipv));
      assertMatchesFullRecompute(ipv, `${name} snat`);
      natRewriteSrc(ipv, orig.readUInt32BE(26), sport);
      natRewriteDst(ipv, orig.readUInt32BE(30), dport);
      assert.deepEqual(ipv.buf, orig, 'round trip restores the original bytes');
    });
  }

  it('random rewrites (seeded) always equal a full recomputation', () => {
    const rnd = new Prng(0x4e4154);
    for (let n = 0; n < 5000; n++) {
      const name = L4_FRAMES[rnd.int(L4_FRAMES.length)];
      const ipv = ipOf(name);
      const addr = n % 13 === 0 ? 0 : n % 17 === 0 ? 0xffffffff : rnd.u32();
      const port = n % 4 === 0 ? -1 : n % 9 === 0 ? 0 : rnd.int(0x10000);
      if (n & 1) natRewriteSrc(ipv, addr, port);
      else natRewriteDst(ipv, addr, port);
      assert.equal(n & 1 ? ipv.src : ipv.dst, addr >>> 0);
      assert.ok(ipv.verifyChecksum(), `${n} ip`);
      assert.ok(l4Verifies(ipv), `${n} l4`);
      assertMatchesFullRecompute(ipv, `${n} ${name}`);
    }
  });

  it('keeps port -1 and a same-address rewrite as no-ops', () => {
    const ipv = ipOf('tcpSyn');
    natRewriteSrc(ipv, ipv.src, -1);
    natRewriteDst(ipv, ipv.dst, -1);
    assert.deepEqual(ipv.buf, frame('tcpSyn'));
  });
});

describe('UDP checksum rules under NAT', () => {
  it('a zero checksum stays zero', () => {
    const ipv = ipOf('udpNoChecksum');
    natRewriteDst(ipv, ip('192.168.165.196'), 53);
    natRewriteSrc(ipv, ip('10.1.110.108'), 40999);
    const u = udpOf(ipv);
    assert.equal(u.checksum, 0);
    assert.equal(u.dstPort, 53);
    assert.equal(u.srcPort, 40999);
    assert.ok(ipv.verifyChecksum());
    assert.ok(u.verifyChecksum(ipv));
  });

  it('a result of zero is written as 0xffff', () => {
    // First find the port that makes the checksum come out as 0 after the address change.
    const probe = ipOf('udpDatagram');
    natRewriteSrc(probe, ip('10.1.110.102'), -1);
    const target = onesAdd(udpOf(probe).srcPort, udpOf(probe).checksum);
    const ipv = ipOf('udpDatagram');
    natRewriteSrc(ipv, ip('10.1.110.102'), target);
    const u = udpOf(ipv);
    assert.equal(u.checksum, 0xffff);
    assert.ok(u.verifyChecksum(ipv));
    assertMatchesFullRecompute(ipv, 'mangled zero');
    // And from 0xffff onwards the arithmetic still holds.
    natRewriteDst(ipv, ip('192.168.8.223'), 3306);
    assert.ok(udpOf(ipv).verifyChecksum(ipv));
    assertMatchesFullRecompute(ipv, 'after 0xffff');
  });
});

describe('ICMP under NAT', () => {
  it('echo: the identifier is the port, the ICMP checksum follows it', () => {
    for (const name of ['pingRouterRequest', 'echoReply'] as const) {
      const ipv = ipOf(name);
      natRewriteSrc(ipv, ip('10.1.110.102'), 0x1234);
      natRewriteDst(ipv, ip('192.168.104.65'), 0xfedc);
      const icmp = icmpOf(ipv);
      assert.equal(icmp.identifier, 0xfedc);
      assert.ok(icmp.verifyChecksum());
      assert.ok(ipv.verifyChecksum());
      const c = icmp.checksum;
      icmp.fillChecksum();
      assert.equal(icmp.checksum, c);
    }
  });

  it('echo with port -1 and ICMP errors: only the IP header changes', () => {
    for (const name of ['echoRequest', 'timeExceeded', 'portUnreachable'] as const) {
      const ipv = ipOf(name);
      const payload = Buffer.from(ipv.buf.subarray(ipv.payloadOffset));
      natRewriteSrc(ipv, ip('10.96.0.10'), name === 'echoRequest' ? -1 : 53);
      assert.ok(ipv.verifyChecksum());
      assert.deepEqual(ipv.buf.subarray(ipv.payloadOffset), payload, name);
    }
  });
});

describe('fragments and short transport headers under NAT', () => {
  it('first fragment: the identifier rewrite keeps the whole datagram checksum right', () => {
    const first = ipOf('fragmentFirst');
    const last = ipOf('fragmentLast');
    natRewriteSrc(first, ip('10.1.110.102'), 4242);
    natRewriteSrc(last, ip('10.1.110.102'), 4242);
    assert.ok(first.verifyChecksum() && last.verifyChecksum());
    assert.deepEqual(
      last.buf.subarray(last.payloadOffset),
      frame('fragmentLast').subarray(34),
      'non-first fragment payload untouched',
    );
    const datagram = Buffer.concat([
      first.buf.subarray(first.payloadOffset, first.offset + first.length),
      last.buf.subarray(last.payloadOffset, last.offset + last.length),
    ]);
    assert.equal(datagram.length, 2008);
    const icmp = new IcmpView();
    expectResult(icmp.wrap(datagram, 0, datagram.length), ParseResult.Ok);
    assert.equal(icmp.identifier, 4242);
    assert.ok(icmp.verifyChecksum(), 'reassembled ICMP checksum');
  });

  it('a transport header cut short is left alone', () => {
    for (const [name, keep] of [
      ['tcpAck', 17],
      ['udpDatagram', 7],
      ['echoRequest', 7],
    ] as const) {
      const f = frame(name);
      f.writeUInt16BE(20 + keep, 16);
      const ipv = ipOf(name, f);
      ipv.fillChecksum();
      const before = Buffer.from(f.subarray(34));
      natRewriteSrc(ipv, ip('10.1.110.107'), 1);
      natRewriteDst(ipv, ip('10.1.110.108'), 2);
      assert.ok(ipv.verifyChecksum());
      assert.deepEqual(f.subarray(34), before, name);
      assert.equal(internetChecksum(f, 14, 20), 0);
    }
  });
});
