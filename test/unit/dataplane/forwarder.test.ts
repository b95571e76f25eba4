import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ARP_OP_REPLY,
  ARP_OP_REQUEST,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETH_HEADER_LEN,
  IPPROTO_ICMP,
  IPPROTO_IPIP,
  emitEthernetHeader,
  emitIpv4Header,
} from '../../../src/packet/index.js';
import { NetInterface } from '../../../src/dataplane/interface.js';
import { formatNeighbour } from '../../../src/dataplane/neighbours.js';
import {
  CALI_MAC,
  W1,
  arpFrame,
  decode,
  echoRequest,
  expectDrops,
  feed,
  icmpMessage,
  ip,
  ipv4Frame,
  takeAll,
  tcpSyn,
  udpFrame,
  worker1,
  type Decoded,
  type IpOpts,
} from './helpers.js';

const BCAST = Buffer.alloc(6, 0xff);
const ZERO_MAC = Buffer.alloc(6);
const GATEWAY = ip('169.254.1.1');

const fromA: Pick<IpOpts, 'src' | 'srcMac' | 'dstMac'> = {
  src: W1.podA,
  srcMac: W1.podAMac,
  dstMac: CALI_MAC,
};
const fromKernel: Pick<IpOpts, 'src' | 'srcMac' | 'dstMac'> = {
  src: W1.nodeIp,
  srcMac: W1.kernelMac,
  dstMac: CALI_MAC,
};

function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

/** Asserts `f` is one ICMP error from the node and returns it decoded. */
function expectIcmpError(
  f: Buffer,
  to: { mac: Buffer; ip: number },
  type: number,
  code: number,
): Decoded & { rest: number; quoted: Buffer } {
  const d = decode(f);
  assert.equal(d.dstMac, macStr(to.mac));
  assert.equal(d.srcMac, 'ee:ee:ee:ee:ee:ee');
  assert.equal(d.etherType, 0x0800);
  // From the node IP (primaryAddress); to the node's own kernel from its gateway, which it
  // would not take for a martian.
  assert.equal(d.src, to.ip === W1.nodeIp ? '169.254.1.1' : '10.1.110.102', 'ICMP source');
  assert.equal(d.dst, ipStrOf(to.ip));
  assert.equal(d.protocol, IPPROTO_ICMP);
  assert.equal(d.ttl, 64);
  assert.equal(d.ihl, 20);
  assert.equal(d.df, false);
  assert.ok(d.headerChecksumOk, 'IPv4 header checksum');
  assert.ok(d.icmpChecksumOk, 'ICMP checksum');
  assert.equal(d.payload[0], type);
  assert.equal(d.payload[1], code);
  assert.ok(d.totalLength <= 576, 'at most 576 bytes, as Linux');
  return { ...d, rest: d.payload.readUInt32BE(4), quoted: d.payload.subarray(8) };
}

function macStr(m: Buffer): string {
  return [...m].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
function ipStrOf(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}
const podA = { mac: W1.podAMac, ip: W1.podA };
const kernel = { mac: W1.kernelMac, ip: W1.nodeIp };

describe('Forwarder: link layer and ARP', () => {
  it('proxy ARP on a pod link answers every request with ee:ee:ee:ee:ee:ee, byte-exact', () => {
    const lab = worker1();
    for (const target of [GATEWAY, W1.podB, ip('8.8.8.8'), W1.nodeIp]) {
      feed(lab.fwd, lab.caliA, arpFrame(ARP_OP_REQUEST, W1.podAMac, W1.podA, ZERO_MAC, target));
      // arping / the kernel: Reply <target> is-at ee:ee:ee:ee:ee:ee, to the requester.
      const want = arpFrame(ARP_OP_REPLY, CALI_MAC, target, W1.podAMac, W1.podA, W1.podAMac);
      assert.deepEqual(takeAll(lab), { cali1234567890a: [want] }, ipStrOf(target));
    }
    expectDrops(lab.fwd.drops, {});
    assert.equal(lab.caliA.counters.rxPackets, 4);
    assert.equal(lab.caliA.counters.txPackets, 4);
    assert.equal(lab.caliA.counters.txBytes, 4 * 42);
  });

  it('proxy ARP does not answer for the pod’s own address (DAD probe, gratuitous ARP)', () => {
    const lab = worker1();
    feed(
      lab.fwd,
      lab.caliA,
      arpFrame(ARP_OP_REQUEST, W1.podAMac, 0, ZERO_MAC, W1.podA), // arping -D
      arpFrame(ARP_OP_REQUEST, W1.podAMac, W1.podA, ZERO_MAC, W1.podA), // gratuitous
    );
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, {});
  });

  it('the host link is proxied too, except for the kernel’s own addresses', () => {
    const lab = worker1();
    feed(
      lab.fwd,
      lab.host,
      arpFrame(ARP_OP_REQUEST, W1.kernelMac, W1.nodeIp, ZERO_MAC, GATEWAY),
      arpFrame(ARP_OP_REQUEST, W1.kernelMac, W1.nodeIp, ZERO_MAC, W1.nodeIp),
      arpFrame(ARP_OP_REQUEST, W1.kernelMac, W1.nodeIp, ZERO_MAC, W1.tunlIp),
    );
    assert.deepEqual(takeAll(lab), {
      kubewire0: [arpFrame(ARP_OP_REPLY, CALI_MAC, GATEWAY, W1.kernelMac, W1.nodeIp, W1.kernelMac)],
    });
  });

  it('an underlay link answers only for the node’s own addresses, with its MAC', () => {
    const lab = worker1();
    const ask = (target: number) =>
      arpFrame(ARP_OP_REQUEST, W1.worker2Mac, W1.worker2, ZERO_MAC, target);
    feed(lab.fwd, lab.eth0, ask(W1.nodeIp), ask(ip('10.1.110.108')), ask(W1.podB), ask(GATEWAY));
    feed(lab.fwd, lab.eth0, ask(W1.tunlIp));
    const mine = (a: number) =>
      arpFrame(ARP_OP_REPLY, W1.eth0Mac, a, W1.worker2Mac, W1.worker2, W1.worker2Mac);
    assert.deepEqual(takeAll(lab), { eth0: [mine(W1.nodeIp), mine(W1.tunlIp)] });
    expectDrops(lab.fwd.drops, {});
  });

  it('learns the sender of a request it answers, not of other ARP (as Linux, arp_accept=0)', () => {
    const lab = worker1();
    const neigh = () => lab.fwd.neighbours.all().filter((n) => n.dev === lab.eth0);
    // worker-2 asks for another node, and a host announces itself: nothing is created.
    feed(
      lab.fwd,
      lab.eth0,
      arpFrame(ARP_OP_REQUEST, W1.worker2Mac, W1.worker2, ZERO_MAC, ip('10.1.110.108')),
      arpFrame(ARP_OP_REQUEST, W1.worker2Mac, ip('10.1.110.200'), ZERO_MAC, ip('10.1.110.200')),
      arpFrame(ARP_OP_REPLY, W1.worker2Mac, ip('10.1.110.201'), W1.eth0Mac, W1.nodeIp),
    );
    assert.deepEqual(neigh().map(formatNeighbour), [
      '10.1.110.1 dev eth0 lladdr 02:42:0a:01:6e:01 PERMANENT',
    ]);
    // worker-2 asks for us: answered and learned.
    feed(
      lab.fwd,
      lab.eth0,
      arpFrame(ARP_OP_REQUEST, W1.worker2Mac, W1.worker2, ZERO_MAC, W1.nodeIp),
    );
    assert.deepEqual(neigh().map(formatNeighbour), [
      '10.1.110.1 dev eth0 lladdr 02:42:0a:01:6e:01 PERMANENT',
      '10.1.110.107 dev eth0 lladdr 02:42:0a:01:6e:6b REACHABLE',
    ]);
    // A known entry is updated by any ARP from it (new MAC).
    const moved = Buffer.from('02:42:0a:01:6e:99'.split(':').map((x) => parseInt(x, 16)));
    feed(
      lab.fwd,
      lab.eth0,
      arpFrame(ARP_OP_REQUEST, moved, W1.worker2, ZERO_MAC, ip('10.1.110.1')),
    );
    assert.deepEqual(lab.fwd.neighbours.get(lab.eth0, W1.worker2)!.mac, moved);
    // Permanent entries are never overridden.
    feed(lab.fwd, lab.eth0, arpFrame(ARP_OP_REQUEST, moved, W1.router, ZERO_MAC, W1.nodeIp));
    assert.deepEqual(lab.fwd.neighbours.get(lab.eth0, W1.router)!.mac, W1.routerMac);
  });

  it('drops at the link layer are counted by reason', () => {
    const lab = worker1();
    const good = udpFrame({ ...fromA, dst: W1.podB }, 1000, 2000, bytes(10));
    const foreign = Buffer.from(good);
    foreign[5] = 0x01; // ee:ee:ee:ee:ee:01
    const multicast = Buffer.from(good);
    emitEthernetHeader(multicast, 0, Buffer.from([1, 0, 0x5e, 0, 0, 0xfb]), W1.podAMac, 0x0800);
    const ipv6 = Buffer.from(good);
    ipv6.writeUInt16BE(ETHERTYPE_IPV6, 12);
    const badArp = arpFrame(ARP_OP_REQUEST, W1.podAMac, W1.podA, ZERO_MAC, GATEWAY);
    badArp[ETH_HEADER_LEN + 1] = 6; // hardware type IEEE 802
    const shortArp = badArp.subarray(0, ETH_HEADER_LEN + 27);
    feed(
      lab.fwd,
      lab.caliA,
      good.subarray(0, 13),
      Buffer.alloc(0),
      foreign,
      multicast,
      ipv6,
      badArp,
    );
    feed(lab.fwd, lab.caliA, shortArp);
    expectDrops(lab.fwd.drops, {
      EthTruncated: 2,
      ForeignMac: 1,
      Multicast: 1,
      UnsupportedEtherType: 1,
      ArpMalformed: 2,
    });
    assert.deepEqual(takeAll(lab), {});
    assert.equal(lab.caliA.counters.rxPackets, 7);
    assert.equal(lab.caliA.counters.rxBytes, 13 + 0 + 3 * good.length + 42 + 41);
  });
});

describe('Forwarder: IPv4 forwarding', () => {
  it('pod to pod: MACs rewritten, TTL-1 with a correct checksum, payload untouched, zero-copy', () => {
    const lab = worker1();
    const udp = udpFrame({ ...fromA, dst: W1.podB, tos: 0x10, id: 0xbeef }, 40000, 53, bytes(100));
    const syn = tcpSyn({ ...fromA, dst: W1.podB, ttl: 2 }, 40001, 80);
    const arena = feed(lab.fwd, lab.caliA, udp, syn);
    const sent = lab.sinkB.sent.splice(0);
    assert.equal(sent.length, 2);
    for (const [i, orig] of [udp, syn].entries()) {
      assert.equal(sent[i]!.from, arena, 'written from the receive arena, not a copy');
      const f = sent[i]!.bytes;
      const d = decode(f);
      assert.equal(d.dstMac, '0a:58:c0:a8:68:42', 'to pod B');
      assert.equal(d.srcMac, 'ee:ee:ee:ee:ee:ee');
      assert.equal(d.ttl, orig[ETH_HEADER_LEN + 8]! - 1);
      assert.ok(d.headerChecksumOk, 'header checksum recomputed from scratch verifies');
      // Everything but TTL and checksum is as sent, and the payload is untouched.
      const a = Buffer.from(orig.subarray(ETH_HEADER_LEN));
      const b = Buffer.from(f.subarray(ETH_HEADER_LEN));
      a.fill(0, 8, 9).fill(0, 10, 12);
      b.fill(0, 8, 9).fill(0, 10, 12);
      assert.deepEqual(b, a);
    }
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, {});
    assert.deepEqual(lab.caliB.counters, {
      rxPackets: 0,
      rxBytes: 0,
      txPackets: 2,
      txBytes: udp.length + syn.length,
      txDropped: 0,
    });
  });

  it('Ethernet padding is trimmed: the packet is forwarded at its IP total length', () => {
    const lab = worker1();
    const small = udpFrame({ ...fromA, dst: W1.podB }, 1, 2, bytes(4)); // 46 bytes
    const padded = Buffer.concat([small, Buffer.alloc(60 - small.length, 0xaa)]);
    feed(lab.fwd, lab.caliA, padded);
    const [f] = lab.sinkB.take();
    assert.equal(f!.length, small.length);
    assert.ok(decode(f!).headerChecksumOk);
  });

  it('to the client through the router: next hop is the gateway’s MAC on eth0', () => {
    const lab = worker1();
    feed(lab.fwd, lab.caliA, tcpSyn({ ...fromA, dst: W1.client }, 40000, 443));
    const [f] = lab.sinkEth0.take();
    const d = decode(f!);
    assert.equal(d.dstMac, '02:42:0a:01:6e:01');
    assert.equal(d.srcMac, '02:42:0a:01:6e:66');
    assert.equal(d.dst, '10.1.0.89');
    assert.equal(d.ttl, 63);
  });

  it('to a node address: delivered to the host link unchanged (no TTL decrement)', () => {
    const lab = worker1();
    const syn = tcpSyn({ ...fromA, dst: W1.nodeIp, ttl: 1 }, 40000, 10250);
    feed(lab.fwd, lab.caliA, syn);
    const [f] = lab.sinkHost.take();
    assert.equal(macStr(f!.subarray(0, 6)), '02:00:00:00:00:01', 'to the kernel’s MAC');
    assert.equal(macStr(f!.subarray(6, 12)), 'ee:ee:ee:ee:ee:ee');
    assert.deepEqual(f!.subarray(ETH_HEADER_LEN), syn.subarray(ETH_HEADER_LEN));
    expectDrops(lab.fwd.drops, {});
  });

  it('a local address without a kernel behind it is unreachable', () => {
    const lab = worker1();
    lab.fwd.local.set(ip('10.1.110.105'), { answerEcho: true, deliverTo: null });
    feed(lab.fwd, lab.caliA, tcpSyn({ ...fromA, dst: ip('10.1.110.105') }, 1, 80));
    expectDrops(lab.fwd.drops, { Unreachable: 1 });
    assert.deepEqual(takeAll(lab), {});
  });

  it('IPv4 validation: truncated, malformed, bad checksum', () => {
    const lab = worker1();
    const good = udpFrame({ ...fromA, dst: W1.podB }, 1, 2, bytes(20));
    const cut = good.subarray(0, good.length - 1); // total length says one byte more
    const short = good.subarray(0, ETH_HEADER_LEN + 19);
    const v6 = Buffer.from(good);
    v6[ETH_HEADER_LEN] = 0x65;
    const ihl4 = Buffer.from(good);
    ihl4[ETH_HEADER_LEN] = 0x44;
    const tooShortTotal = Buffer.from(good);
    tooShortTotal.writeUInt16BE(19, ETH_HEADER_LEN + 2);
    const badSum = Buffer.from(good);
    badSum[ETH_HEADER_LEN + 10]! ^= 0x01;
    feed(lab.fwd, lab.caliA, cut, short, v6, ihl4, tooShortTotal, badSum);
    expectDrops(lab.fwd.drops, { Ipv4Truncated: 2, Ipv4Malformed: 3, Ipv4Checksum: 1 });
    assert.deepEqual(takeAll(lab), {});
  });

  it('broadcast and multicast are never forwarded, nor answered with ICMP', () => {
    const lab = worker1();
    lab.fwd.routes.add({ dst: 0, prefixLen: 0, dev: lab.eth0, via: W1.router });
    const dhcp = udpFrame(
      { src: 0, dst: 0xffffffff, srcMac: W1.podAMac, dstMac: BCAST, ttl: 1 },
      68,
      67,
      bytes(300),
    );
    const l2bcast = udpFrame({ ...fromA, dst: W1.podB, dstMac: BCAST }, 1, 2, bytes(8));
    const mdns = udpFrame({ ...fromA, dst: ip('224.0.0.251') }, 5353, 5353, bytes(8));
    const unicastToBcast = udpFrame({ ...fromA, dst: 0xffffffff }, 1, 2, bytes(8));
    feed(lab.fwd, lab.caliA, dhcp, l2bcast, mdns, unicastToBcast);
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, { Multicast: 4 });
  });

  it('martian sources (0/8, 127/8, multicast, broadcast) are dropped', () => {
    const lab = worker1();
    for (const src of ['127.0.0.1', '0.1.2.3', '224.1.1.1', '255.255.255.255']) {
      feed(lab.fwd, lab.caliA, udpFrame({ ...fromA, src: ip(src), dst: W1.podB }, 1, 2, bytes(8)));
      feed(lab.fwd, lab.caliA, echoRequest({ ...fromA, src: ip(src), dst: W1.nodeIp }));
    }
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, { Martian: 8 });
  });

  it('an output interface that is down drops and counts', () => {
    const lab = worker1();
    lab.caliB.up = false;
    feed(lab.fwd, lab.caliA, udpFrame({ ...fromA, dst: W1.podB }, 1, 2, bytes(8)));
    expectDrops(lab.fwd.drops, { InterfaceDown: 1 });
    assert.deepEqual(takeAll(lab), {});
    assert.equal(lab.caliB.counters.txDropped, 0, 'never queued');
  });

  it('removeInterface takes its routes and neighbours away', () => {
    const lab = worker1();
    lab.fwd.removeInterface(lab.caliB);
    assert.equal(lab.fwd.interfaces.includes(lab.caliB), false);
    assert.equal(lab.fwd.neighbours.get(lab.caliB, W1.podB), undefined);
    feed(lab.fwd, lab.caliA, udpFrame({ ...fromA, dst: W1.podB }, 1, 2, bytes(8)));
    expectDrops(lab.fwd.drops, { Blackhole: 1 }); // the block's blackhole is what is left
  });

  it('an exception inside the pipeline is counted, and the batch goes on', () => {
    const lab = worker1();
    const lookup = lab.fwd.routes.lookup.bind(lab.fwd.routes);
    let calls = 0;
    lab.fwd.routes.lookup = (a: number) => {
      if (calls++ === 0) throw new Error('boom');
      return lookup(a);
    };
    feed(
      lab.fwd,
      lab.caliA,
      udpFrame({ ...fromA, dst: W1.podB }, 1, 2, bytes(8)),
      udpFrame({ ...fromA, dst: W1.podB }, 1, 2, bytes(8)),
    );
    expectDrops(lab.fwd.drops, { InternalError: 1 });
    assert.equal(lab.sinkB.take().length, 1);
  });
});

describe('Forwarder: clock', () => {
  it('the hooks’ clock reads once per batch: frozen while a batch is processed, live outside', async () => {
    const lab = worker1();
    const seen: number[] = [];
    lab.caliA.capture = () => {
      const t = lab.fwd.clock();
      seen.push(t);
      const until = Date.now() + 3;
      while (Date.now() < until); // the batch takes a few milliseconds
    };
    const before = Date.now();
    feed(
      lab.fwd,
      lab.caliA,
      udpFrame({ ...fromA, dst: W1.podB }, 1, 2, bytes(8)),
      udpFrame({ ...fromA, dst: W1.podB }, 1, 2, bytes(8)),
    );
    const after = Date.now();
    assert.equal(seen.length, 2);
    assert.equal(seen[0], seen[1], 'the same time for every packet of the batch');
    assert.ok(seen[0]! >= before && after - seen[0]! >= 6, 'read when the batch started');
    await new Promise((r) => setTimeout(r, 5));
    assert.ok(lab.fwd.clock() >= before + 5, 'outside a batch: Date.now()');
  });
});

describe('Forwarder: local answers and ICMP errors', () => {
  it('answers an echo request to a node address with an echo reply', () => {
    const lab = worker1();
    for (const dst of [W1.nodeIp, W1.tunlIp]) {
      const req = echoRequest({ ...fromA, dst, ttl: 63, id: 0x4242 }, 0x1fcd, 7);
      const arena = feed(lab.fwd, lab.caliA, req);
      const [sent] = lab.sinkA.sent.splice(0);
      assert.equal(sent!.from, arena, 'the request is turned into the reply in place');
      const d = decode(sent!.bytes);
      assert.equal(d.dstMac, '0a:58:c0:a8:68:41');
      assert.equal(d.srcMac, 'ee:ee:ee:ee:ee:ee');
      assert.equal(d.src, ipStrOf(dst));
      assert.equal(d.dst, '192.168.104.65');
      assert.equal(d.ttl, 64);
      assert.equal(d.protocol, IPPROTO_ICMP);
      assert.ok(d.headerChecksumOk);
      assert.ok(d.icmpChecksumOk);
      assert.equal(d.payload[0], 0, 'echo reply');
      assert.equal(d.payload[1], 0);
      const reqIcmp = req.subarray(ETH_HEADER_LEN + 20);
      assert.deepEqual(d.payload.subarray(4), reqIcmp.subarray(4), 'id, seq and data echoed');
    }
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, {});
  });

  it('an echo request with a bad ICMP checksum is dropped; other ICMP goes to the kernel', () => {
    const lab = worker1();
    const bad = echoRequest({ ...fromA, dst: W1.nodeIp });
    bad[ETH_HEADER_LEN + 20 + 2]! ^= 0xff;
    const truncated = ipv4Frame({ ...fromA, dst: W1.nodeIp }, IPPROTO_ICMP, Buffer.from([8, 0, 0]));
    const reply = ipv4Frame(
      { ...fromA, dst: W1.nodeIp },
      IPPROTO_ICMP,
      icmpMessage(0, 0, 5, bytes(8)),
    );
    feed(lab.fwd, lab.caliA, bad, truncated, reply);
    expectDrops(lab.fwd.drops, { IcmpMalformed: 2 });
    const toKernel = Buffer.from(reply);
    emitEthernetHeader(toKernel, 0, W1.kernelMac, CALI_MAC, ETHERTYPE_IPV4);
    assert.deepEqual(takeAll(lab), { kubewire0: [toKernel] });
  });

  it('TTL 1: ICMP time exceeded from the node to the sender, quoting the whole packet', () => {
    const lab = worker1();
    const ping = echoRequest({ ...fromA, dst: W1.podB, ttl: 1 });
    const zero = udpFrame({ ...fromA, dst: W1.podB, ttl: 0 }, 33434, 33435, bytes(24));
    feed(lab.fwd, lab.caliA, ping, zero);
    const out = lab.sinkA.take();
    assert.equal(out.length, 2);
    for (const [i, orig] of [ping, zero].entries()) {
      const e = expectIcmpError(out[i]!, podA, 11, 0);
      assert.equal(e.rest, 0);
      assert.equal(e.tos, 0xc0);
      // Linux quotes as much as fits in 576 bytes: here the whole packet, as received.
      assert.deepEqual(e.quoted, orig.subarray(ETH_HEADER_LEN));
      assert.equal(e.totalLength, 20 + 8 + orig.length - ETH_HEADER_LEN);
    }
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, { TtlExceeded: 2 });
  });

  it('a large packet is quoted up to 576 bytes of ICMP error in all', () => {
    const lab = worker1();
    const big = udpFrame({ ...fromA, dst: W1.podB, ttl: 1, tos: 0xb9 }, 1, 2, bytes(1400));
    feed(lab.fwd, lab.caliA, big);
    const [f] = lab.sinkA.take();
    const e = expectIcmpError(f!, podA, 11, 0);
    assert.equal(e.totalLength, 576);
    assert.equal(e.quoted.length, 548);
    assert.deepEqual(e.quoted, big.subarray(ETH_HEADER_LEN, ETH_HEADER_LEN + 548));
    // Linux: (tos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL.
    assert.equal(e.tos, (0xb9 & 0x1e) | 0xc0);
  });

  it('no route: ICMP net unreachable', () => {
    const lab = worker1();
    const pkt = udpFrame({ ...fromA, dst: ip('8.8.8.8') }, 1, 53, bytes(30));
    feed(lab.fwd, lab.caliA, pkt);
    const [f] = lab.sinkA.take();
    const e = expectIcmpError(f!, podA, 3, 0);
    assert.deepEqual(e.quoted, pkt.subarray(ETH_HEADER_LEN));
    expectDrops(lab.fwd.drops, { NoRoute: 1 });
  });

  it('blackhole: silent drop; unreachable and prohibit routes: ICMP host unreachable / code 13', () => {
    const lab = worker1();
    lab.fwd.routes.add({ dst: ip('172.16.0.0'), prefixLen: 12, type: 'unreachable' });
    lab.fwd.routes.add({ dst: ip('172.20.0.0'), prefixLen: 16, type: 'prohibit' });
    feed(
      lab.fwd,
      lab.caliA,
      udpFrame({ ...fromA, dst: ip('192.168.104.70') }, 1, 2, bytes(8)),
      udpFrame({ ...fromA, dst: ip('172.16.1.1') }, 1, 2, bytes(8)),
      udpFrame({ ...fromA, dst: ip('172.20.1.1') }, 1, 2, bytes(8)),
    );
    const out = lab.sinkA.take();
    assert.equal(out.length, 2);
    expectIcmpError(out[0]!, podA, 3, 1);
    expectIcmpError(out[1]!, podA, 3, 13);
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, { Blackhole: 1, Unreachable: 2 });
  });

  it('too big with DF: ICMP fragmentation needed with the next-hop MTU; without DF: dropped', () => {
    const lab = worker1();
    // From the node's kernel (host link, MTU 1500) to pod B (link MTU 1480).
    const big = udpFrame({ ...fromKernel, dst: W1.podB }, 1, 2, bytes(1500 - 28));
    const bigNoDf = udpFrame({ ...fromKernel, dst: W1.podB, df: false }, 1, 2, bytes(1500 - 28));
    const fits = udpFrame({ ...fromKernel, dst: W1.podB }, 1, 2, bytes(1480 - 28));
    feed(lab.fwd, lab.host, big, bigNoDf, fits);
    const [f] = lab.sinkHost.take();
    const e = expectIcmpError(f!, kernel, 3, 4);
    assert.equal(e.rest, 1480, 'next-hop MTU in bytes 6..7');
    assert.equal(lab.sinkB.take().length, 1, 'the 1480-byte packet fits');
    // A route MTU wins over the device's.
    lab.fwd.routes.add({
      dst: ip('10.1.0.0'),
      prefixLen: 24,
      dev: lab.eth0,
      via: W1.router,
      mtu: 1400,
    });
    feed(lab.fwd, lab.caliA, udpFrame({ ...fromA, dst: W1.client }, 1, 2, bytes(1401 - 28)));
    const [g] = lab.sinkA.take();
    assert.equal(expectIcmpError(g!, podA, 3, 4).rest, 1400);
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, { FragNeeded: 3 });
  });

  it('ICMP errors are never sent about ICMP errors, non-first fragments or unknown ICMP types', () => {
    const lab = worker1();
    const quoted = udpFrame({ src: W1.podB, dst: W1.podA }, 1, 2, bytes(8)).subarray(
      ETH_HEADER_LEN,
    );
    const errors = [3, 11, 12, 4, 5].map((type) =>
      ipv4Frame({ ...fromA, dst: W1.podB, ttl: 1 }, IPPROTO_ICMP, icmpMessage(type, 0, 0, quoted)),
    );
    const unknown = ipv4Frame(
      { ...fromA, dst: W1.podB, ttl: 1 },
      IPPROTO_ICMP,
      icmpMessage(42, 0, 0, bytes(8)),
    );
    const fragment = udpFrame({ ...fromA, dst: W1.podB, ttl: 1 }, 1, 2, bytes(16));
    fragment.writeUInt16BE(0x0003, ETH_HEADER_LEN + 6); // offset 24, no DF
    fixIpChecksum(fragment);
    // Queries and informational messages are answered: echo, timestamp, router solicitation.
    const queries = [8, 13, 10].map((type) =>
      ipv4Frame(
        { ...fromA, dst: W1.podB, ttl: 1 },
        IPPROTO_ICMP,
        icmpMessage(type, 0, 0, bytes(12)),
      ),
    );
    feed(lab.fwd, lab.caliA, ...errors, unknown, fragment, ...queries);
    const out = lab.sinkA.take();
    assert.equal(out.length, 3);
    for (const f of out) expectIcmpError(f, podA, 11, 0);
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, { TtlExceeded: 10 });
  });

  it('rate limit: a burst of errors is capped at 50 (icmp_msgs_burst)', () => {
    const lab = worker1();
    const frames = Array.from({ length: 120 }, (_, i) =>
      udpFrame({ ...fromA, dst: W1.podB, ttl: 1 }, 1000 + i, 2, bytes(8)),
    );
    feed(lab.fwd, lab.caliA, ...frames);
    assert.equal(lab.sinkA.take().length, 50);
    expectDrops(lab.fwd.drops, { TtlExceeded: 120 });
  });

  it('a wall-clock step backwards does not silence ICMP errors', () => {
    // An error sent by a tick an hour "ahead" (then NTP steps the clock back): the bucket must
    // not be charged for the negative interval.
    const lab = worker1({ underlaySubnet: true });
    feed(lab.fwd, lab.caliA, udpFrame({ ...fromA, dst: W1.worker2 }, 1, 2, bytes(8)));
    const ahead = Date.now() + 3_600_000;
    for (let i = 0; i < 3; i++) lab.fwd.tick(ahead + i * 1000);
    assert.equal(lab.sinkA.take().length, 1, 'host unreachable, sent from the tick');
    feed(lab.fwd, lab.caliA, udpFrame({ ...fromA, dst: W1.podB, ttl: 1 }, 1, 2, bytes(8)));
    assert.equal(lab.sinkA.take().length, 1, 'time exceeded, after the step back');
  });

  it('an error to one of the node’s own addresses goes to the host link, not out a route', () => {
    // The node's kernel sends to an unreachable destination. With 10.1.110.0/24 dev eth0 in
    // the table, a route lookup for the node IP would send the error out eth0 (and ARP for it).
    const lab = worker1({ underlaySubnet: true });
    lab.fwd.routes.add({ dst: ip('10.9.0.0'), prefixLen: 16, type: 'unreachable' });
    feed(
      lab.fwd,
      lab.host,
      udpFrame({ ...fromKernel, dst: ip('10.9.1.1') }, 40000, 33434, bytes(32)),
    );
    const out = takeAll(lab);
    assert.deepEqual(Object.keys(out), ['kubewire0']);
    expectIcmpError(out.kubewire0![0]!, kernel, 3, 1);
    expectDrops(lab.fwd.drops, { Unreachable: 1 });
  });

  it("the node's own packets are output, not forwarded: TTL 1 reaches a local pod", () => {
    // As on Linux, where the node is the pods' router: traceroute from the node to a
    // local pod has the pod as its first hop.
    const lab = worker1({ underlaySubnet: true });
    feed(
      lab.fwd,
      lab.host,
      udpFrame({ ...fromKernel, dst: W1.podB, ttl: 1 }, 40000, 33434, bytes(32)),
    );
    const out = takeAll(lab);
    assert.deepEqual(Object.keys(out), ['calib0b0b0b0b0b']);
    assert.equal(out.calib0b0b0b0b0b![0]![ETH_HEADER_LEN + 8], 1, 'TTL unchanged');
    expectDrops(lab.fwd.drops, {});
  });
});

describe('Forwarder: neighbour resolution', () => {
  const arpProbe = (target: number) =>
    arpFrame(ARP_OP_REQUEST, W1.eth0Mac, W1.nodeIp, ZERO_MAC, target, BCAST);

  it('an unresolved next hop: packets wait, one ARP request goes out, the reply releases them', () => {
    const lab = worker1({ underlaySubnet: true });
    const p1 = udpFrame({ ...fromA, dst: W1.worker2 }, 1, 2, bytes(40, 1));
    const p2 = udpFrame({ ...fromA, dst: W1.worker2 }, 1, 2, bytes(40, 2));
    feed(lab.fwd, lab.caliA, p1);
    feed(lab.fwd, lab.caliA, p2);
    assert.deepEqual(takeAll(lab), { eth0: [arpProbe(W1.worker2)] }, 'one probe for both');
    assert.equal(
      formatNeighbour(lab.fwd.neighbours.get(lab.eth0, W1.worker2)!),
      '10.1.110.107 dev eth0 INCOMPLETE',
    );
    // worker-2 answers (unicast to our MAC).
    feed(
      lab.fwd,
      lab.eth0,
      arpFrame(ARP_OP_REPLY, W1.worker2Mac, W1.worker2, W1.eth0Mac, W1.nodeIp, W1.eth0Mac),
    );
    const out = lab.sinkEth0.take();
    assert.equal(out.length, 2);
    for (const [i, orig] of [p1, p2].entries()) {
      const d = decode(out[i]!);
      assert.equal(d.dstMac, '02:42:0a:01:6e:6b');
      assert.equal(d.srcMac, '02:42:0a:01:6e:66');
      assert.equal(d.ttl, 63);
      assert.ok(d.headerChecksumOk);
      assert.deepEqual(d.payload, orig.subarray(ETH_HEADER_LEN + 20));
    }
    assert.equal(
      formatNeighbour(lab.fwd.neighbours.get(lab.eth0, W1.worker2)!),
      '10.1.110.107 dev eth0 lladdr 02:42:0a:01:6e:6b REACHABLE',
    );
    // Now resolved: straight through.
    feed(lab.fwd, lab.caliA, p1);
    assert.equal(lab.sinkEth0.take().length, 1);
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, {});
  });

  it('three unanswered probes fail the neighbour: ICMP host unreachable for each waiting packet', () => {
    const lab = worker1({ underlaySubnet: true });
    const p1 = udpFrame({ ...fromA, dst: W1.worker2 }, 1, 2, bytes(40, 1));
    const p2 = tcpSyn({ ...fromA, dst: W1.worker2 }, 3, 4);
    feed(lab.fwd, lab.caliA, p1, p2);
    assert.deepEqual(takeAll(lab), { eth0: [arpProbe(W1.worker2)] });
    const t0 = Date.now();
    lab.fwd.tick(t0 + 500);
    assert.deepEqual(takeAll(lab), {}, 'not before retrans_time');
    lab.fwd.tick(t0 + 1000);
    assert.deepEqual(takeAll(lab), { eth0: [arpProbe(W1.worker2)] });
    lab.fwd.tick(t0 + 2000);
    assert.deepEqual(takeAll(lab), { eth0: [arpProbe(W1.worker2)] });
    expectDrops(lab.fwd.drops, {});
    lab.fwd.tick(t0 + 3000);
    const out = takeAll(lab);
    assert.deepEqual(Object.keys(out), ['cali1234567890a']);
    assert.equal(out.cali1234567890a!.length, 2);
    for (const [i, orig] of [p1, p2].entries()) {
      const e = expectIcmpError(out.cali1234567890a![i]!, podA, 3, 1);
      // The waiting packet had been forwarded (TTL 63) when it was queued, as in Linux.
      const q = decode(Buffer.concat([Buffer.alloc(14), e.quoted]));
      assert.equal(q.ttl, 63);
      assert.ok(q.headerChecksumOk);
      assert.deepEqual(q.payload, orig.subarray(ETH_HEADER_LEN + 20));
    }
    assert.equal(
      formatNeighbour(lab.fwd.neighbours.get(lab.eth0, W1.worker2)!),
      '10.1.110.107 dev eth0 FAILED',
    );
    expectDrops(lab.fwd.drops, { NeighbourFailed: 2 });
    // The next packet starts a new resolution.
    feed(lab.fwd, lab.caliA, p1);
    assert.deepEqual(takeAll(lab), { eth0: [arpProbe(W1.worker2)] });
  });

  it('at most 64 packets wait per neighbour; the rest are dropped and counted', () => {
    const lab = worker1({ underlaySubnet: true });
    const frames = Array.from({ length: 70 }, (_, i) =>
      udpFrame({ ...fromA, dst: W1.worker2 }, 1, 2, bytes(8, i)),
    );
    feed(lab.fwd, lab.caliA, ...frames);
    assert.equal(lab.sinkEth0.take().length, 1, 'one probe');
    expectDrops(lab.fwd.drops, { NeighbourQueueFull: 6 });
    assert.equal(lab.fwd.neighbours.get(lab.eth0, W1.worker2)!.queue.length, 64);
  });

  it('a probe on a pod link asks with sender 0.0.0.0, as Linux with no address on the link', () => {
    const lab = worker1();
    lab.fwd.neighbours.delete(lab.caliB, W1.podB);
    feed(lab.fwd, lab.caliA, udpFrame({ ...fromA, dst: W1.podB }, 1, 2, bytes(8)));
    assert.deepEqual(takeAll(lab), {
      calib0b0b0b0b0b: [arpFrame(ARP_OP_REQUEST, CALI_MAC, 0, ZERO_MAC, W1.podB, BCAST)],
    });
  });
});

function fixIpChecksum(f: Buffer): void {
  f.writeUInt16BE(0, ETH_HEADER_LEN + 10);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += f.readUInt16BE(ETH_HEADER_LEN + i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  f.writeUInt16BE(~s & 0xffff, ETH_HEADER_LEN + 10);
}

describe('Forwarder: IPIP (tunl0)', () => {
  const remotePod = ip('192.168.8.222');
  /** worker-1 with tunl0, worker-2's block through it, worker-2 on the underlay. */
  function overlay() {
    const lab = worker1({ underlaySubnet: true });
    const tunl0 = new NetInterface(5, 'tunl0', 'tunnel', Buffer.alloc(6), 1480, null);
    lab.fwd.addInterface(tunl0);
    lab.fwd.tunnel = tunl0;
    lab.fwd.tunnelPeers.add(W1.worker2);
    lab.fwd.routes.add({
      dst: ip('192.168.8.192'),
      prefixLen: 26,
      dev: tunl0,
      via: W1.worker2,
      onlink: true,
      proto: 'bird',
    });
    lab.fwd.neighbours.setPermanent(lab.eth0, W1.worker2, W1.worker2Mac);
    return { ...lab, tunl0 };
  }
  /** The frame worker-2 sends: `inner` (an Ethernet frame) wrapped for worker-1. */
  function fromWorker2(inner: Buffer, outerSrc = W1.worker2, flagsFrag = 0x4000): Buffer {
    const pkt = inner.subarray(ETH_HEADER_LEN);
    const f = Buffer.alloc(ETH_HEADER_LEN + 20 + pkt.length);
    emitEthernetHeader(f, 0, W1.eth0Mac, W1.worker2Mac, ETHERTYPE_IPV4);
    emitIpv4Header(f, ETH_HEADER_LEN, {
      src: outerSrc,
      dst: W1.nodeIp,
      protocol: IPPROTO_IPIP,
      ttl: 64,
      id: 7,
      dontFragment: false,
      tos: 0,
      payloadLength: pkt.length,
    });
    f.writeUInt16BE(flagsFrag, ETH_HEADER_LEN + 6);
    fixIpChecksum(f);
    pkt.copy(f, ETH_HEADER_LEN + 20);
    return f;
  }
  const fromRemote = { src: remotePod, srcMac: ZERO_MAC, dstMac: ZERO_MAC };

  it('to a remote block: encapsulated in place, node IP to node IP, out eth0', () => {
    const lab = overlay();
    const pkt = tcpSyn({ ...fromA, dst: remotePod, tos: 0x10 }, 40000, 80);
    const arena = feed(lab.fwd, lab.caliA, pkt);
    const [sent] = lab.sinkEth0.sent.splice(0);
    assert.equal(sent!.from, arena, 'the outer headers are written into the headroom');
    const outer = decode(sent!.bytes);
    assert.equal(outer.dstMac, '02:42:0a:01:6e:6b');
    assert.equal(outer.srcMac, '02:42:0a:01:6e:66');
    assert.equal(outer.src, '10.1.110.102');
    assert.equal(outer.dst, '10.1.110.107');
    assert.equal(outer.protocol, IPPROTO_IPIP);
    assert.equal(outer.ttl, 64);
    assert.equal(outer.df, true, 'DF copied from the inner header');
    assert.equal(outer.tos, 0x10, 'TOS copied');
    assert.ok(outer.headerChecksumOk);
    const inner = decode(Buffer.concat([Buffer.alloc(14), outer.payload]));
    assert.equal(inner.ttl, 63);
    assert.ok(inner.headerChecksumOk);
    assert.deepEqual(inner.payload, pkt.subarray(ETH_HEADER_LEN + 20));
    assert.equal(lab.tunl0.counters.txPackets, 1);
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, {});
  });

  it('from a known node: decapsulated and forwarded to the local pod', () => {
    const lab = overlay();
    const inner = udpFrame({ ...fromRemote, dst: W1.podA }, 53, 40000, bytes(30));
    feed(lab.fwd, lab.eth0, fromWorker2(inner));
    const [f] = lab.sinkA.take();
    const d = decode(f!);
    assert.equal(d.dstMac, '0a:58:c0:a8:68:41');
    assert.equal(d.src, '192.168.8.222');
    assert.equal(d.ttl, 63);
    assert.ok(d.headerChecksumOk);
    assert.deepEqual(d.payload, inner.subarray(ETH_HEADER_LEN + 20));
    assert.equal(lab.tunl0.counters.rxPackets, 1);
    expectDrops(lab.fwd.drops, {});
  });

  it('answers through the tunnel: echo replies and ICMP errors about inner packets', () => {
    const lab = overlay();
    feed(
      lab.fwd,
      lab.eth0,
      fromWorker2(echoRequest({ ...fromRemote, dst: W1.tunlIp })),
      fromWorker2(udpFrame({ ...fromRemote, dst: W1.podB, ttl: 1 }, 1, 2, bytes(8))),
    );
    const out = lab.sinkEth0.take();
    assert.equal(out.length, 2);
    const inners = out.map((f) => {
      const o = decode(f);
      assert.equal(o.dst, '10.1.110.107');
      assert.equal(o.protocol, IPPROTO_IPIP);
      assert.ok(o.headerChecksumOk);
      return decode(Buffer.concat([Buffer.alloc(14), o.payload]));
    });
    assert.deepEqual(
      inners.map((d) => [d.src, d.dst, d.payload[0], d.headerChecksumOk, d.icmpChecksumOk]),
      [
        ['192.168.104.64', '192.168.8.222', 0, true, true], // echo reply
        ['10.1.110.102', '192.168.8.222', 11, true, true], // time exceeded
      ],
    );
    expectDrops(lab.fwd.drops, { TtlExceeded: 1 });
  });

  it('refuses IPIP from unknown sources, nested IPIP and outer fragments', () => {
    const lab = overlay();
    const inner = udpFrame({ ...fromRemote, dst: W1.podA }, 53, 40000, bytes(30));
    feed(
      lab.fwd,
      lab.eth0,
      fromWorker2(inner, ip('10.1.110.50')),
      fromWorker2(fromWorker2(inner)),
      fromWorker2(inner, W1.worker2, 0x2000),
    );
    assert.deepEqual(takeAll(lab), {});
    expectDrops(lab.fwd.drops, { IpipUnknownSource: 1, IpipNested: 1, Ipv4Fragment: 1 });
    lab.fwd.tunnel = null;
    feed(lab.fwd, lab.eth0, fromWorker2(inner));
    expectDrops(lab.fwd.drops, { IpipUnknownSource: 2, IpipNested: 1, Ipv4Fragment: 1 });
  });

  it('tunl0’s MTU (1480) applies: a 1500-byte DF packet gets frag needed 1480', () => {
    const lab = overlay();
    feed(
      lab.fwd,
      lab.host,
      udpFrame({ ...fromKernel, dst: remotePod }, 1, 2, bytes(1500 - 28)),
      udpFrame({ ...fromKernel, dst: remotePod }, 1, 2, bytes(1480 - 28)),
    );
    const [err] = lab.sinkHost.take();
    assert.equal(expectIcmpError(err!, kernel, 3, 4).rest, 1480);
    const [f] = lab.sinkEth0.take();
    assert.equal(f!.length, 14 + 1500, 'the 1480-byte packet leaves as 1500 bytes of IPIP');
    expectDrops(lab.fwd.drops, { FragNeeded: 1 });
  });
});
