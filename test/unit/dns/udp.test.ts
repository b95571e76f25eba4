/**
 * The DNS server's UDP listeners on loopback, batched (recvmmsg/sendmmsg, src/udp) and
 * node:dgram alike: a burst of 200 queries from two clients (answers, NXDOMAIN, FORMERR)
 * each answered to its sender with its ID, name and case; answers that wait on an upstream
 * (forward) interleaved with immediate ones, so the receive arena is reused before they are
 * sent; a query longer than the batched listener's 4,096-byte slot; the fallback to
 * node:dgram when the addon cannot be loaded (the pod program, spawned).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import type { UdpIo } from '../../../src/dns/udp.js';
import { encodeQuery, TYPE } from '../../../src/dns/wire.js';
import { BASE_COREFILE, buildServer, decode, type Decoded } from './helpers.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const mainJs = join(repo, 'dist', 'src', 'dns', 'main.js');

async function client(): Promise<{ sock: Socket; replies: Map<number, Decoded> }> {
  const sock = createSocket('udp4');
  const replies = new Map<number, Decoded>();
  sock.on('message', (m) => {
    const d = decode(m);
    replies.set(d.id, d);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { sock, replies };
}

async function until(cond: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A lab-internal upstream on 127.0.0.1: every A question gets 203.0.113.7 (TEST-NET-3). */
async function fakeUpstream(): Promise<{ port: number; close: () => void }> {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions![0]!;
    // Answer late, and in reverse order of arrival within a tick, as a real upstream might.
    setTimeout(() => {
      const out = dnsPacket.encode({
        id: q.id,
        type: 'response',
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: q.questions,
        answers: [{ name: question.name, type: 'A', ttl: 300, data: '203.0.113.7' }],
      });
      sock.send(out, rinfo.port, rinfo.address);
    }, 5);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, close: () => sock.close() };
}

const IOS: UdpIo[] = ['batched', 'dgram'];

for (const io of IOS) {
  const skip = io === 'batched' && process.platform !== 'linux' ? 'Linux only' : false;
  describe(`UDP listener: ${io}`, { skip }, () => {
    it('answers a burst of 200 queries from two clients, each to its sender', async () => {
      const s = buildServer(BASE_COREFILE, undefined, {
        listen: { host: '127.0.0.1', port: 0 },
        udpIo: io,
      });
      await s.start();
      const a = await client();
      const b = await client();
      try {
        const { port, udp } = s.addresses().dns[0]!;
        assert.equal(udp, io);
        const sent = new Map<number, { name: string; rcode: string; from: Socket }>();
        for (let i = 1; i <= 200; i++) {
          const c = i % 2 ? a : b;
          let name = '';
          let rcode: string;
          switch (i % 4) {
            case 0:
              name = i % 8 ? 'SVC1.testns.svc.cluster.local' : 'svc1.testns.svc.cluster.local';
              rcode = 'NOERROR';
              break;
            case 1:
              name = 'hdls.testns.svc.cluster.local';
              rcode = 'NOERROR';
              break;
            case 2:
              name = `nope${i}.testns.svc.cluster.local`;
              rcode = 'NXDOMAIN';
              break;
            default:
              name = 'svc1.testns.svc.cluster.local';
              rcode = 'FORMERR';
          }
          const wire = encodeQuery(i, name, TYPE.A);
          if (rcode === 'FORMERR') wire.writeUInt16BE(2, 4); // QDCOUNT 2
          sent.set(i, { name, rcode, from: c.sock });
          c.sock.send(wire, port, '127.0.0.1');
        }
        await until(
          () => a.replies.size + b.replies.size === 200,
          () => `${a.replies.size + b.replies.size} of 200`,
        );
        for (const [id, q] of sent) {
          const r = (q.from === a.sock ? a.replies : b.replies).get(id);
          assert.ok(r, `reply ${id} reached its sender`);
          assert.equal(r.rcode, q.rcode, `rcode of ${id}`);
          if (q.rcode !== 'FORMERR') assert.deepEqual(r.question, [`${q.name}. IN A`]);
          if (q.name.endsWith('svc1.testns.svc.cluster.local') && q.rcode === 'NOERROR') {
            assert.deepEqual(r.answer, [`${q.name}. 5 IN A 10.96.0.100`]);
          }
        }
      } finally {
        a.sock.close();
        b.sock.close();
        await s.stop();
      }
    });

    it('answers that wait on the upstream go out later, to the right client, with their own question', async () => {
      const up = await fakeUpstream();
      const s = buildServer(
        `.:53 {\n kubernetes cluster.local\n forward . 127.0.0.1:${up.port}\n}\n`,
        undefined,
        { listen: { host: '127.0.0.1', port: 0 }, udpIo: io },
      );
      await s.start();
      const a = await client();
      const b = await client();
      try {
        const { port } = s.addresses().dns[0]!;
        const names = new Map<number, string>();
        for (let i = 1; i <= 200; i++) {
          const name = i % 2 ? `Ext${i}.Example.org` : 'svc1.testns.svc.cluster.local';
          names.set(i, name);
          (i % 4 < 2 ? a : b).sock.send(encodeQuery(i, name, TYPE.A), port, '127.0.0.1');
        }
        await until(
          () => a.replies.size + b.replies.size === 200,
          () => `${a.replies.size + b.replies.size} of 200`,
        );
        for (const [id, name] of names) {
          const r = (id % 4 < 2 ? a : b).replies.get(id);
          assert.ok(r, `reply ${id}`);
          assert.deepEqual(r.question, [`${name}. IN A`], `question of ${id}`);
          assert.deepEqual(r.answer, [
            id % 2 ? `${name}. 300 IN A 203.0.113.7` : `${name}. 5 IN A 10.96.0.100`,
          ]);
        }
      } finally {
        a.sock.close();
        b.sock.close();
        await s.stop();
        up.close();
      }
    });
  });
}

describe(
  'UDP listener: batched, queries longer than the 4,096-byte slot',
  {
    skip: process.platform !== 'linux' ? 'Linux only' : false,
  },
  () => {
    it('are parsed as cut: FORMERR with the ID when the cut falls inside a record', async () => {
      const s = buildServer(BASE_COREFILE, undefined, {
        listen: { host: '127.0.0.1', port: 0 },
        udpIo: 'batched',
      });
      await s.start();
      const c = await client();
      try {
        const { port } = s.addresses().dns[0]!;
        const big = encodeQuery(77, 'svc1.testns.svc.cluster.local', TYPE.A, {
          edns: {
            udpSize: 1232,
            version: 0,
            do: false,
            extRcode: 0,
            options: [{ code: 12, data: Buffer.alloc(5000) }], // padding
          },
        });
        assert.ok(big.length > 4096);
        c.sock.send(big, port, '127.0.0.1');
        c.sock.send(encodeQuery(78, 'svc1.testns.svc.cluster.local', TYPE.A), port, '127.0.0.1');
        await until(
          () => c.replies.size === 2,
          () => `${c.replies.size} of 2`,
        );
        assert.equal(c.replies.get(77)!.rcode, 'FORMERR');
        assert.equal(c.replies.get(78)!.rcode, 'NOERROR');
      } finally {
        c.sock.close();
        await s.stop();
      }
    });
  },
);

describe('the pod program without the addon', () => {
  function run(args: string[]): Promise<{ code: number | null; out: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'kw-dns-udp-'));
    writeFileSync(
      join(dir, 'svc.yaml'),
      'apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec: {clusterIP: 10.96.9.9, ports: [{port: 80}]}\n',
    );
    writeFileSync(join(dir, 'Corefile'), '.:53 {\n kubernetes cluster.local\n}\n');
    const p = spawn(
      process.execPath,
      [mainJs, '--manifests', dir, '--corefile', join(dir, 'Corefile')]
        .concat(['--listen', '127.0.0.1:0'])
        .concat(args),
      { env: { ...process.env, KUBEWIRE_UDP_ADDON: join(dir, 'missing.node') } },
    );
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"msg":"listening"')) p.kill('SIGTERM');
    });
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    return new Promise((resolve) =>
      p.on('exit', (code) => {
        rmSync(dir, { recursive: true, force: true });
        resolve({ code, out });
      }),
    );
  }

  it('auto: falls back to node:dgram and says so', async () => {
    const { out } = await run([]);
    assert.match(out, /batched UDP I\/O unavailable; using node:dgram/);
    assert.match(out, /"udp":"dgram"/);
  });

  it('--udp-io batched: refuses to start', async () => {
    const { code, out } = await run(['--udp-io', 'batched']);
    assert.equal(code, 1);
    assert.match(out, /kubewire_udp|missing\.node/);
  });
});
