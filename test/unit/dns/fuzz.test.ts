/**
 * 100,000 malformed packets through the server's query path (the same function the UDP
 * and TCP listeners call): random bytes, and valid queries with bit flips, byte writes,
 * cuts, extensions and counts set to other values. Checks: nothing throws or rejects; a
 * packet is either dropped (too short for a header, or QR set) or answered with a
 * response carrying the query's ID and opcode; a packet whose header forbids an answer
 * (QDCOUNT ≠ 1, ANCOUNT > 1, NSCOUNT > 1, ARCOUNT > 2) gets FORMERR; every response
 * decodes with dns-packet. Every other UDP packet goes the batched listener's way (query
 * bytes borrowed, answer in the encoder's scratch buffer). Deterministic (seeded).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { encodeQuery, TYPE } from '../../../src/dns/wire.js';
import { BASE_COREFILE, buildServer } from './helpers.js';

const N = 100_000;

class Prng {
  constructor(private s: number) {}
  next(): number {
    // xorshift32
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
}

const SEEDS: Buffer[] = [
  encodeQuery(1, 'svc1.testns.svc.cluster.local', TYPE.A),
  encodeQuery(2, '_http._tcp.hdls.testns.svc.cluster.local', TYPE.SRV, {
    edns: {
      udpSize: 4096,
      version: 0,
      do: true,
      extRcode: 0,
      options: [{ code: 10, data: Buffer.alloc(8, 7) }],
    },
  }),
  encodeQuery(3, '1.0.96.10.in-addr.arpa', TYPE.PTR),
  encodeQuery(4, 'ext-int.testns.svc.cluster.local', TYPE.A),
  encodeQuery(5, 'hdls.testns.svc.cluster.local', TYPE.A, {
    edns: { udpSize: 512, version: 0, do: false, extRcode: 0, options: [] },
  }),
  encodeQuery(6, 'cluster.local', TYPE.NS),
];

function mutate(rng: Prng): Buffer {
  const kind = rng.int(8);
  if (kind === 0) {
    const b = Buffer.alloc(rng.int(80));
    for (let i = 0; i < b.length; i++) b[i] = rng.int(256);
    return b;
  }
  let b = Buffer.from(SEEDS[rng.int(SEEDS.length)]!);
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits; e++) {
    switch (rng.int(6)) {
      case 0:
        if (b.length) b[rng.int(b.length)]! ^= 1 << rng.int(8);
        break;
      case 1:
        if (b.length) b[rng.int(b.length)] = rng.int(256);
        break;
      case 2:
        b = b.subarray(0, rng.int(b.length + 1));
        break;
      case 3: {
        const extra = Buffer.alloc(1 + rng.int(40));
        for (let i = 0; i < extra.length; i++) extra[i] = rng.int(256);
        b = Buffer.concat([b, extra]);
        break;
      }
      case 4:
        if (b.length >= 12) b.writeUInt16BE(rng.int(4), 4 + 2 * rng.int(4));
        break;
      default:
        // label length bytes in the question
        if (b.length > 13)
          b[12 + rng.int(Math.min(30, b.length - 12))] = rng.int(2) ? 0xc0 : rng.int(70);
    }
  }
  return b;
}

describe('fuzz: 100,000 malformed packets', () => {
  it('never throws; drops, or answers with the ID; FORMERR where the header forbids an answer', async () => {
    const server = buildServer(BASE_COREFILE);
    const rng = new Prng(0x6b757765);
    const stats = { dropped: 0, answered: 0, formerr: 0, notimp: 0, other: 0 };
    for (let i = 0; i < N; i++) {
      const pkt = mutate(rng);
      const proto = i % 16 === 0 ? 'tcp' : 'udp';
      let out: Buffer | null;
      try {
        // Every other UDP packet as the batched listener hands it over (borrowed: the
        // answer is a view of the encoder's scratch buffer, checked before the next).
        const borrowed = proto === 'udp' && i % 2 === 1;
        out = await server.handle(pkt, proto, '10.9.8.7', 40000, undefined, borrowed);
      } catch (e) {
        assert.fail(`packet ${i} (${pkt.toString('hex')}) threw ${String(e)}`);
      }
      if (pkt.length < 12 || (pkt[2]! & 0x80) !== 0) {
        assert.equal(out, null, `packet ${i} must be dropped`);
        stats.dropped++;
        continue;
      }
      assert.ok(out, `packet ${i} (${pkt.toString('hex')}) got no answer`);
      assert.equal(out.readUInt16BE(0), pkt.readUInt16BE(0), 'ID echoed');
      assert.equal(out[2]! & 0x80, 0x80, 'QR set');
      assert.equal((out[2]! >> 3) & 0xf, (pkt[2]! >> 3) & 0xf, 'opcode echoed');
      const rcode = out[3]! & 0xf;
      const opcode = (pkt[2]! >> 3) & 0xf;
      const counts = [4, 6, 8, 10].map((o) => pkt.readUInt16BE(o));
      if (opcode === 0 && (counts[0] !== 1 || counts[1]! > 1 || counts[2]! > 1 || counts[3]! > 2)) {
        assert.equal(rcode, 1, `packet ${i}: FORMERR for counts ${counts.join(',')}`);
      }
      if (opcode !== 0) assert.equal(rcode, 4, 'NOTIMP');
      try {
        dnsPacket.decode(out);
      } catch (e) {
        assert.fail(`packet ${i}: response does not decode: ${String(e)}`);
      }
      stats.answered++;
      if (rcode === 1) stats.formerr++;
      else if (rcode === 4) stats.notimp++;
      else stats.other++;
    }
    assert.equal(stats.dropped + stats.answered, N);
    // The mix reaches every outcome.
    assert.ok(
      stats.formerr > 1000 && stats.notimp > 100 && stats.other > 1000,
      JSON.stringify(stats),
    );
  });
});
