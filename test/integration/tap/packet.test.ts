// Integration test of the transmit-only packet socket (src/tap/packet.ts) against the kernel:
// a TAP opened here with virtio headers is moved into a throw-away namespace as eth0; a child
// process in that namespace opens a PacketSocket on eth0 and sends frames through it, which
// arrive here, at the TAP's end, exactly as sent — gathered parts, a second buffer and the
// virtio header's checksum offload included. Needs root.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { TapDevice } from '../../../src/tap/index.js';

const isRoot = process.getuid?.() === 0;
const NS = `kwpkt-${process.pid}`;
const TAP = `kwp${process.pid}`.slice(0, 15);
const indexJs = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'src',
  'tap',
  'index.js',
);

/** Runs `code` (an ES module body with PacketSocket in scope) inside the namespace. */
function inNamespace(code: string): string {
  const body = `import { PacketSocket } from ${JSON.stringify(indexJs)};\n${code}`;
  return execFileSync(
    'ip',
    ['netns', 'exec', NS, process.execPath, '--input-type=module', '-e', body],
    { encoding: 'utf8', timeout: 15_000 },
  );
}

function quiet(...args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // cleanup of something that may not exist
  }
}

describe('PacketSocket (native binding)', { skip: isRoot ? false : 'requires root' }, () => {
  after(() => {
    quiet('netns', 'del', NS);
    quiet('link', 'del', TAP);
  });

  test('frames sent through it leave the interface as written, many per call', async () => {
    execFileSync('ip', ['netns', 'add', NS]);
    const tap = TapDevice.open(TAP, { vnetHdr: true });
    try {
      tap.setOffload(0x01); // checksum offload: partial checksums arrive as they were sent
      execFileSync('ip', ['link', 'set', 'dev', TAP, 'netns', NS, 'name', 'eth0']);
      execFileSync('ip', ['-n', NS, 'link', 'set', 'eth0', 'up']);
      const got: Buffer[] = [];
      tap.start((buf, offsets, count) => {
        for (let i = 0; i < count; i++) {
          const o = offsets[2 * i]!;
          const f = buf.subarray(o, o + offsets[2 * i + 1]!);
          // Only our frames (ethertype 0x88b5, local experimental), not the kernel's IPv6 chatter.
          if (f.readUInt16BE(10 + 12) === 0x88b5) got.push(Buffer.from(f));
        }
      });
      const out = inNamespace(`
        const s = PacketSocket.open('eth0', { vnetHdr: true, sndbufBytes: 1 << 20 });
        const frame = (n, fill) => {
          const f = Buffer.alloc(10 + 14 + n, fill);
          f.fill(0, 0, 10);
          f.fill(0xff, 10, 16);
          Buffer.from('026b77000009', 'hex').copy(f, 16);
          f.writeUInt16BE(0x88b5, 22);
          return f;
        };
        // 100 whole frames in one call; then one gathered from 3 parts, the first in aux.
        const frames = Array.from({ length: 100 }, (_, i) => frame(60 + i, i));
        const buf = Buffer.concat(frames);
        const offs = new Uint32Array(200);
        let at = 0;
        frames.forEach((f, i) => { offs[2 * i] = at; offs[2 * i + 1] = f.length; at += f.length; });
        const a = s.writeBatch(buf, offs, 100);
        const head = frame(0, 0);
        const aux = Buffer.concat([Buffer.alloc(5), head]);
        const tail = Buffer.alloc(300, 0xab);
        const g = s.writeBatch(tail, Uint32Array.from([
          (5 | 0x80000000) >>> 0, head.length,
          0, (100 | 0x80000000) >>> 0,
          100, (200 | 0x80000000) >>> 0,
        ]), 3, aux);
        // Checksum offload: a partial checksum is carried in the virtio header, not computed
        // (the kernel wants the checksum to start past an IPv4 header's worth of bytes).
        const p = frame(40, 0x11);
        p[0] = 1; p.writeUInt16LE(40, 6); p.writeUInt16LE(6, 8);
        const c = s.writeBatch(p, Uint32Array.from([0, p.length]), 1);
        let threw = '';
        try { s.writeBatch(buf, Uint32Array.from([0, 10 | 0x80000000]), 1); } catch (e) { threw = e.name; }
        console.log(JSON.stringify({ a, g, c, threw, stats: s.stats() }));
        s.close();
      `);
      const r = JSON.parse(out) as {
        a: number;
        g: number;
        c: number;
        threw: string;
        stats: { txFrames: number; txAgain: number; txDropped: number };
      };
      assert.deepEqual([r.a, r.g, r.c, r.threw], [100, 1, 1, 'RangeError']);
      assert.equal(r.stats.txFrames, 102);
      const deadline = Date.now() + 3000;
      while (got.length < 102 && Date.now() < deadline) await sleep(10);
      assert.equal(got.length, 102);
      for (let i = 0; i < 100; i++) {
        assert.equal(got[i]!.length, 10 + 14 + 60 + i, `frame ${i}`);
        assert.equal(got[i]![10 + 14], i & 0xff);
      }
      const gathered = got[100]!;
      assert.equal(gathered.length, 10 + 14 + 300);
      assert.deepEqual(gathered.subarray(10 + 14), Buffer.alloc(300, 0xab));
      const partial = got[101]!;
      assert.equal(partial[0]! & 1, 1, 'NEEDS_CSUM kept');
      assert.equal(partial.readUInt16LE(6), 40, 'csum_start');
      assert.equal(partial.readUInt16LE(8), 6, 'csum_offset');
    } finally {
      tap.close();
    }
  });

  test('opening on a missing interface fails with the errno name', () => {
    const out = inNamespace(`
      try { PacketSocket.open('nosuchdev0'); } catch (e) { console.log(e.code + ' ' + e.syscall); }
    `);
    assert.equal(out.trim(), 'ENODEV if_nametoindex');
  });
});
