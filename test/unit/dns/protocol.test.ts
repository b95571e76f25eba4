/**
 * The wire protocol around the chain: EDNS0 (RFC 6891), truncation (RFC 1035 4.2.1,
 * RFC 7766), compression (RFC 1035 4.1.4), header-level errors as miekg/dns's accept
 * function and CoreDNS's server answer them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { CLASS, encodeQuery, parseQuery, TYPE } from '../../../src/dns/wire.js';
import {
  ask,
  BASE_COREFILE,
  buildServer,
  decode,
  endpoint,
  fixtureView,
  portEndpoints,
  service,
} from './helpers.js';

function bigHeadless(n: number) {
  const eps = [];
  for (let i = 0; i < n; i++)
    eps.push(endpoint(`10.200.${Math.floor(i / 250)}.${(i % 250) + 1}`, 80, `p${i}`));
  return {
    svc: service('testns', 'big', { headless: true, ports: [{ name: 'http', port: 80 }] }),
    endpoints: [portEndpoints('http', 'TCP', 80, eps)],
  };
}

const server = buildServer(BASE_COREFILE, fixtureView([bigHeadless(200)]));

describe('EDNS0', () => {
  it("echoes the OPT record with the client's buffer size and DO bit (coredns request.SizeAndDo)", async () => {
    const r = decode(
      (await ask(server, 'svc1.testns.svc.cluster.local', TYPE.A, {
        edns: { udpSize: 4096, do: true },
      }))!,
    );
    assert.ok(r.opt, 'OPT present');
    assert.equal(r.opt.udpPayloadSize, 4096);
    assert.equal((r.opt.flags ?? 0) & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
    const plain = decode((await ask(server, 'svc1.testns.svc.cluster.local', TYPE.A))!);
    assert.equal(plain.opt, null, 'no OPT without EDNS in the query');
  });

  it('answers EDNS version 1 with BADVERS and an OPT of version 0 (RFC 6891 6.1.3)', async () => {
    const wire = encodeQuery(7, 'svc1.testns.svc.cluster.local', TYPE.A, {
      edns: { udpSize: 1232, version: 1, do: false, extRcode: 0, options: [] },
    });
    const out = (await server.handle(wire, 'udp', '10.9.8.7', 1))!;
    const p = dnsPacket.decode(out);
    const opt = p.additionals!.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer & {
      extendedRcode: number;
      ednsVersion: number;
    };
    assert.equal(opt.extendedRcode, 1, 'BADVERS = 16: upper bits 1');
    assert.equal((p.flags ?? 0) & 0xf, 0);
    assert.equal(opt.ednsVersion, 0);
  });

  it('keeps the options CoreDNS keeps (NSID, COOKIE, …) and drops others', async () => {
    const cookie = Buffer.from('0102030405060708', 'hex');
    const wire = encodeQuery(8, 'svc1.testns.svc.cluster.local', TYPE.A, {
      edns: {
        udpSize: 1232,
        version: 0,
        do: false,
        extRcode: 0,
        options: [
          { code: 10, data: cookie },
          { code: 8, data: Buffer.from([0, 1, 24, 0, 10, 0, 0]) },
        ],
      },
    });
    const r = decode((await server.handle(wire, 'udp', '10.9.8.7', 1))!);
    const codes = (r.opt!.options ?? []).map((o) => o.code);
    assert.deepEqual(codes, [10]);
  });
});

describe('truncation and TCP', () => {
  it('a 200-endpoint headless answer over UDP without EDNS: 512 bytes at most, TC set, whole records', async () => {
    const out = (await ask(server, 'big.testns.svc.cluster.local', TYPE.A))!;
    assert.ok(out.length <= 512);
    const r = decode(out);
    assert.ok(r.flags.includes('tc'));
    assert.ok(r.answer.length > 0 && r.answer.length < 200);
    assert.equal(r.raw.answers!.length, out.readUInt16BE(6));
  });

  it('honours the EDNS buffer size: more records fit in 1232, still truncated', async () => {
    const out = (await ask(server, 'big.testns.svc.cluster.local', TYPE.A, {
      edns: { udpSize: 1232 },
    }))!;
    assert.ok(out.length <= 1232 && out.length > 512);
    const r = decode(out);
    assert.ok(r.flags.includes('tc'));
    assert.ok(r.opt, 'the OPT record survives truncation');
  });

  it('a buffer size below 512 counts as 512 (coredns edns.Size)', async () => {
    const out = (await ask(server, 'big.testns.svc.cluster.local', TYPE.A, {
      edns: { udpSize: 100 },
    }))!;
    assert.ok(out.length <= 512 && out.length > 400);
  });

  it('is complete over TCP (RFC 7766): all 200 records, no TC', async () => {
    const out = (await ask(server, 'big.testns.svc.cluster.local', TYPE.A, { proto: 'tcp' }))!;
    const r = decode(out);
    assert.ok(!r.flags.includes('tc'));
    assert.equal(r.answer.length, 200);
    assert.equal(new Set(r.answer).size, 200);
  });

  it('fits when it fits: 4096 bytes hold all 200 compressed A records (16 bytes each)', async () => {
    const out = (await ask(server, 'big.testns.svc.cluster.local', TYPE.A, {
      edns: { udpSize: 4096 },
    }))!;
    const r = decode(out);
    assert.ok(!r.flags.includes('tc'));
    assert.equal(r.answer.length, 200);
  });
});

describe('compression', () => {
  it('owner names point at the question (0xC00C) and targets reuse suffixes', async () => {
    const out = (await ask(server, 'big.testns.svc.cluster.local', TYPE.A, { proto: 'tcp' }))!;
    const q = parseQuery(encodeQuery(0, 'big.testns.svc.cluster.local', TYPE.A));
    assert.ok(!('fail' in q));
    const qEnd = 12 + 'big.testns.svc.cluster.local'.length + 2 + 4;
    assert.equal(out.readUInt16BE(qEnd), 0xc00c);
    assert.equal(out.length, qEnd + 200 * 16);
    const srv = (await ask(server, '_http._tcp.hdls.testns.svc.cluster.local', TYPE.SRV, {
      proto: 'tcp',
    }))!;
    const r = decode(srv);
    assert.equal(r.additional.length, 2);
    // Uncompressed, the two additional owner names alone would take 2 × 38 bytes more.
    const uncompressed = dnsPacket.encode({ ...r.raw, type: 'response' });
    assert.ok(srv.length < uncompressed.length, `${srv.length} < ${uncompressed.length}`);
  });

  it("keeps the client's case of the question (0x20) in the response", async () => {
    const r = decode((await ask(server, 'SvC1.TestNS.svc.cluster.LOCAL', TYPE.A))!);
    assert.deepEqual(r.question, ['SvC1.TestNS.svc.cluster.LOCAL. IN A']);
    assert.deepEqual(r.answer, ['SvC1.TestNS.svc.cluster.LOCAL. 5 IN A 10.96.0.100']);
  });
});

describe('header-level answers', () => {
  const handle = (wire: Buffer) => server.handle(wire, 'udp', '10.9.8.7', 1) as Buffer | null;
  const q = () => encodeQuery(0x1234, 'svc1.testns.svc.cluster.local', TYPE.A);

  it('drops packets shorter than a header and responses (QR set)', () => {
    assert.equal(handle(Buffer.alloc(11)), null);
    const resp = q();
    resp[2]! |= 0x80;
    assert.equal(handle(resp), null);
  });

  it('NOTIMP for opcodes other than QUERY (IQUERY, STATUS, NOTIFY, UPDATE)', () => {
    for (const opcode of [1, 2, 4, 5]) {
      const w = q();
      w[2] = (w[2]! & 0x87) | (opcode << 3);
      const r = decode(handle(w)!);
      assert.equal(r.rcode, 'NOTIMP', `opcode ${opcode}`);
      assert.equal(r.id, 0x1234);
    }
  });

  it('NOTIMP for classes other than IN (CH, HS, ANY)', async () => {
    for (const cls of [CLASS.CH, CLASS.HS, CLASS.ANY]) {
      const r = decode((await ask(server, 'svc1.testns.svc.cluster.local', TYPE.A, { cls }))!);
      assert.equal(r.rcode, 'NOTIMP');
    }
  });

  it('FORMERR for QDCOUNT 0 or 2, a cut question, too many records, a bad OPT', () => {
    const cases: [string, (w: Buffer) => Buffer][] = [
      ['qdcount 0', (w) => (w.writeUInt16BE(0, 4), w)],
      ['qdcount 2', (w) => (w.writeUInt16BE(2, 4), w)],
      ['cut question', (w) => w.subarray(0, w.length - 3)],
      ['ancount 2', (w) => (w.writeUInt16BE(2, 6), w)],
      ['arcount 1, no record', (w) => (w.writeUInt16BE(1, 10), w)],
      ['label > 63', (w) => ((w[12] = 64), w)],
      ['pointer in question', (w) => ((w[12] = 0xc0), w)],
    ];
    for (const [what, mutate] of cases) {
      const r = decode(handle(mutate(q()))!);
      assert.equal(r.rcode, 'FORMERR', what);
      assert.equal(r.id, 0x1234, what);
    }
  });

  it('REFUSED for a name outside every server block zone (coredns server.go)', async () => {
    const s = buildServer('cluster.local:53 {\n kubernetes\n}\n');
    const r = decode((await ask(s, 'www.example.com', TYPE.A))!);
    assert.equal(r.rcode, 'REFUSED');
    assert.equal(decode((await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A))!).rcode, 'NOERROR');
  });

  it('SERVFAIL when the chain ends without an answer (coredns NextOrFailure)', async () => {
    const s = buildServer('.:53 {\n kubernetes cluster.local\n}\n');
    const r = decode((await ask(s, 'www.example.com', TYPE.A))!);
    assert.equal(r.rcode, 'SERVFAIL');
    assert.deepEqual(r.question, ['www.example.com. IN A']);
  });

  it('routes to the server block with the longest matching zone', async () => {
    const s = buildServer('.:53 {\n whoami\n}\ncluster.local:53 {\n kubernetes\n}\n');
    assert.equal(decode((await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A))!).answer.length, 1);
    assert.equal(decode((await ask(s, 'www.example.com', TYPE.A))!).additional.length, 2);
  });
});
