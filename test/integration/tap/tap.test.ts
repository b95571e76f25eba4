// Integration tests of the native TAP binding against the real kernel: the TAP is moved into a
// throw-away network namespace (renamed eth0, 10.250.0.1/24) and the test plays the host
// 10.250.0.2 on the other side of the wire, building ARP / IPv4 / ICMP frames by hand.
// Needs root (CAP_NET_ADMIN, /dev/net/tun, ip netns).

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises';

import {
  TUN_F_CSUM,
  TapDevice,
  WRITE_AUX,
  WRITE_CONTINUES,
  isTapError,
  type FrameBatchHandler,
  type TapError,
} from '../../../src/tap/index.js';

const isRoot = process.getuid?.() === 0;
const NS = `kwtap-${process.pid}`;
const NS_GONE = `kwtapg-${process.pid}`;
const NS_CHILD = `kwtapx-${process.pid}`;
const NS_SMALL = `kwtaps-${process.pid}`;
const NS_VNET = `kwtapv-${process.pid}`;
const TAP = `kwt${process.pid}`.slice(0, 15);
const TAP_GONE = `kwg${process.pid}`.slice(0, 15);
const TAP_CHILD = `kwx${process.pid}`.slice(0, 15);
const TAP_SMALL = `kws${process.pid}`.slice(0, 15);
const TAP_VNET = `kwv${process.pid}`.slice(0, 15);
const KERNEL_IP = '10.250.0.1';
const PEER_IP = '10.250.0.2';
const PEER_MAC = '02:6b:77:00:00:02';
const BROADCAST = 'ff:ff:ff:ff:ff:ff';

// ---------------------------------------------------------------------------------------------
// Shell helpers

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function ipQuiet(...args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // cleanup of something that may not exist
  }
}

function macOf(ns: string, dev: string): string {
  const links = JSON.parse(ip('-n', ns, '-j', 'link', 'show', 'dev', dev)) as { address: string }[];
  return links[0].address;
}

/**
 * Creates namespace `ns`, moves the (already open) TAP `name` into it as eth0 with
 * 10.250.0.1/24, pins 10.250.0.2 to PEER_MAC, and returns the kernel side's MAC.
 */
function plumb(ns: string, name: string): string {
  ip('netns', 'add', ns);
  ip('link', 'set', 'dev', name, 'netns', ns, 'name', 'eth0');
  ip('-n', ns, 'addr', 'add', `${KERNEL_IP}/24`, 'dev', 'eth0');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
  ip('-n', ns, 'neigh', 'replace', PEER_IP, 'lladdr', PEER_MAC, 'dev', 'eth0', 'nud', 'permanent');
  return macOf(ns, 'eth0');
}

/** Runs a command without blocking the event loop (the TAP must keep being polled). */
function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    execFile(cmd, args, (err) => {
      const code = (err as { code?: unknown } | null)?.code;
      resolve(err === null ? 0 : typeof code === 'number' ? code : -1);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Frame building

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

function ipBytes(addr: string): Buffer {
  return Buffer.from(addr.split('.').map((d) => parseInt(d, 10)));
}

function macString(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** RFC 1071 Internet checksum. */
function inetChecksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2 === 1) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ethernet(dst: string, src: string, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  macBytes(dst).copy(h, 0);
  macBytes(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

function arp(op: 1 | 2, sha: string, spa: string, tha: string, tpa: string): Buffer {
  const p = Buffer.alloc(28);
  p.writeUInt16BE(1, 0); // Ethernet
  p.writeUInt16BE(0x0800, 2); // IPv4
  p[4] = 6;
  p[5] = 4;
  p.writeUInt16BE(op, 6);
  macBytes(sha).copy(p, 8);
  ipBytes(spa).copy(p, 14);
  macBytes(tha).copy(p, 18);
  ipBytes(tpa).copy(p, 24);
  return p;
}

function ipv4(src: string, dst: string, proto: number, payload: Buffer, id = 0): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(id, 4);
  h.writeUInt16BE(0x4000, 6); // DF
  h[8] = 64;
  h[9] = proto;
  ipBytes(src).copy(h, 12);
  ipBytes(dst).copy(h, 16);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

function icmpEcho(type: 0 | 8, id: number, seq: number, data: Buffer): Buffer {
  const m = Buffer.alloc(8 + data.length);
  m[0] = type;
  m.writeUInt16BE(id, 4);
  m.writeUInt16BE(seq, 6);
  data.copy(m, 8);
  m.writeUInt16BE(inetChecksum(m), 2);
  return m;
}

function echoRequestFrame(dstMac: string, id: number, seq: number, dataBytes = 56): Buffer {
  const data = Buffer.alloc(dataBytes);
  for (let i = 0; i < data.length; i++) data[i] = (i + seq) & 0xff;
  return ethernet(
    dstMac,
    PEER_MAC,
    0x0800,
    ipv4(PEER_IP, KERNEL_IP, 1, icmpEcho(8, id, seq, data), seq),
  );
}

// ---------------------------------------------------------------------------------------------
// Frame parsing (just what the tests need)

interface ArpInfo {
  op: number;
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
}

function parseArp(f: Buffer): ArpInfo | undefined {
  if (f.length < 42 || f.readUInt16BE(12) !== 0x0806) return undefined;
  return {
    op: f.readUInt16BE(20),
    sha: macString(f.subarray(22, 28)),
    spa: [...f.subarray(28, 32)].join('.'),
    tha: macString(f.subarray(32, 38)),
    tpa: [...f.subarray(38, 42)].join('.'),
  };
}

interface IcmpInfo {
  src: string;
  dst: string;
  type: number;
  id: number;
  seq: number;
  icmp: Buffer;
  ipHeaderOk: boolean;
}

function parseIcmp(f: Buffer): IcmpInfo | undefined {
  if (f.length < 14 + 20 + 8 || f.readUInt16BE(12) !== 0x0800 || f[14 + 9] !== 1) return undefined;
  const ihl = (f[14] & 0x0f) * 4;
  const total = f.readUInt16BE(16);
  const icmp = f.subarray(14 + ihl, 14 + total);
  return {
    src: [...f.subarray(26, 30)].join('.'),
    dst: [...f.subarray(30, 34)].join('.'),
    type: icmp[0],
    id: icmp.readUInt16BE(4),
    seq: icmp.readUInt16BE(6),
    icmp,
    ipHeaderOk: inetChecksum(f.subarray(14, 14 + ihl)) === 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Frame dispatch: one onBatch handler for the suite's device; tests add listeners.

type FrameListener = (frame: Buffer) => void;
const listeners = new Set<FrameListener>();
let batchHook: FrameBatchHandler | undefined;
const batchSizes: number[] = [];

const dispatch: FrameBatchHandler = (buf, offsets, count) => {
  batchSizes.push(count);
  if (batchHook) {
    batchHook(buf, offsets, count);
    return;
  }
  for (let i = 0; i < count; i++) {
    const frame = buf.subarray(offsets[2 * i], offsets[2 * i] + offsets[2 * i + 1]);
    for (const l of listeners) l(frame);
  }
};

/** Resolves with a copy of the first frame matching `pred` (arena frames are reused). */
function waitForFrame(pred: (f: Buffer) => boolean, what: string, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const l: FrameListener = (f) => {
      if (!pred(f)) return;
      clearTimeout(timer);
      listeners.delete(l);
      resolve(Buffer.from(f));
    };
    const timer = setTimeout(() => {
      listeners.delete(l);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    listeners.add(l);
  });
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

describe('TAP device (native binding)', { skip: isRoot ? false : 'requires root' }, () => {
  let tap: TapDevice | undefined;
  let kernelMac = '';
  const errors: TapError[] = [];
  const extraTaps: TapDevice[] = [];

  function dev(): TapDevice {
    assert.ok(tap, 'suite setup failed');
    return tap;
  }

  function cleanup(): void {
    for (const t of [tap, ...extraTaps]) {
      try {
        t?.close();
      } catch {
        // already gone
      }
    }
    for (const ns of [NS, NS_GONE, NS_CHILD, NS_SMALL, NS_VNET]) ipQuiet('netns', 'del', ns);
    for (const link of [TAP, TAP_GONE, TAP_CHILD, TAP_SMALL, TAP_VNET])
      ipQuiet('link', 'del', link);
  }

  before(() => {
    process.once('exit', cleanup);
    try {
      ip('netns', 'add', NS);
      tap = TapDevice.open(TAP);
      assert.equal(tap.name, TAP);
      assert.ok(tap.fd >= 0);
      // Moved and renamed right after opening, as the agent does for pod interfaces: the fd
      // keeps working and nothing in the binding depends on the name.
      ip('link', 'set', 'dev', TAP, 'netns', NS, 'name', 'eth0');
      ip('-n', NS, 'addr', 'add', `${KERNEL_IP}/24`, 'dev', 'eth0');
      ip('-n', NS, 'link', 'set', 'lo', 'up');
      ip('-n', NS, 'link', 'set', 'eth0', 'up');
      kernelMac = macOf(NS, 'eth0');
      tap.start(dispatch, (err) => errors.push(err));
    } catch (err) {
      cleanup();
      throw err;
    }
  });

  after(() => {
    cleanup();
    process.removeListener('exit', cleanup);
  });

  test('the kernel ARP request for 10.250.0.2 arrives through the batch handler', async () => {
    const request = waitForFrame((f) => parseArp(f)?.tpa === PEER_IP, 'ARP request');
    const ping = run('ip', ['netns', 'exec', NS, 'ping', '-c', '1', '-W', '1', PEER_IP]);
    const frame = await request;
    assert.equal(frame.readUInt16BE(12), 0x0806);
    assert.deepEqual([...frame.subarray(38, 42)], [10, 250, 0, 2]);
    const a = parseArp(frame);
    assert.ok(a);
    assert.equal(a.op, 1);
    assert.equal(a.spa, KERNEL_IP);
    assert.equal(a.sha, kernelMac);
    assert.equal(macString(frame.subarray(0, 6)), BROADCAST);
    await ping; // fails (nobody answered yet); only waited for so it does not outlive the test
    assert.deepEqual(errors, []);
  });

  test('an ARP reply written by hand lands in the kernel neighbour table', async () => {
    // Answer ARP requests and echo requests for 10.250.0.2 while ping runs.
    const responder: FrameListener = (f) => {
      const a = parseArp(f);
      if (a && a.op === 1 && a.tpa === PEER_IP) {
        const reply = ethernet(a.sha, PEER_MAC, 0x0806, arp(2, PEER_MAC, PEER_IP, a.sha, a.spa));
        assert.equal(dev().write(reply), true);
        return;
      }
      const e = parseIcmp(f);
      if (e && e.type === 8 && e.dst === PEER_IP) {
        const data = e.icmp.subarray(8);
        const reply = ethernet(
          kernelMac,
          PEER_MAC,
          0x0800,
          ipv4(PEER_IP, e.src, 1, icmpEcho(0, e.id, e.seq, data)),
        );
        dev().write(reply);
      }
    };
    // Also write one unsolicited reply right away (the entry exists since the previous test).
    const frame = ethernet(
      kernelMac,
      PEER_MAC,
      0x0806,
      arp(2, PEER_MAC, PEER_IP, kernelMac, KERNEL_IP),
    );
    assert.equal(dev().write(frame, 0, frame.length), true);
    listeners.add(responder);
    try {
      const code = await run('ip', ['netns', 'exec', NS, 'ping', '-c', '1', '-W', '3', PEER_IP]);
      assert.equal(code, 0, 'ping through the hand-written ARP and echo replies');
    } finally {
      listeners.delete(responder);
    }
    const neigh = ip('-n', NS, 'neigh', 'show', PEER_IP, 'dev', 'eth0');
    assert.match(neigh, new RegExp(`^${PEER_IP.replace(/\./g, '\\.')} lladdr ${PEER_MAC} `));
    assert.match(neigh, /REACHABLE|STALE|DELAY|PROBE/);
  });

  test('writeBatch of ICMP echo requests: the kernel answers each one', async () => {
    // Pin the neighbour so that no ARP exchange interferes with the counting below.
    ip(
      '-n',
      NS,
      'neigh',
      'replace',
      PEER_IP,
      'lladdr',
      PEER_MAC,
      'dev',
      'eth0',
      'nud',
      'permanent',
    );
    const N = 16;
    const id = 0x4b57;
    const frames = Array.from({ length: N }, (_, seq) => echoRequestFrame(kernelMac, id, seq));
    const buf = Buffer.concat(frames);
    const offsets = new Uint32Array(2 * N);
    let pos = 0;
    frames.forEach((f, i) => {
      offsets[2 * i] = pos;
      offsets[2 * i + 1] = f.length;
      pos += f.length;
    });
    const seen = new Set<number>();
    const listener: FrameListener = (f) => {
      const e = parseIcmp(f);
      if (!e || e.type !== 0 || e.id !== id || e.src !== KERNEL_IP || e.dst !== PEER_IP) return;
      assert.ok(e.ipHeaderOk, 'IPv4 header checksum of the reply');
      assert.equal(inetChecksum(e.icmp), 0, 'ICMP checksum of the reply');
      assert.equal(macString(f.subarray(0, 6)), PEER_MAC);
      seen.add(e.seq);
    };
    listeners.add(listener);
    try {
      assert.equal(dev().writeBatch(buf, offsets, N), N);
      assert.ok(await until(() => seen.size === N, 3000), `echo replies: ${seen.size}/${N}`);
    } finally {
      listeners.delete(listener);
    }
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      Array.from({ length: N }, (_, i) => i),
    );
    // Bounds are checked before anything is written.
    assert.throws(() => dev().writeBatch(buf, offsets, N + 1), RangeError);
    const bad = Uint32Array.from([0, 60, buf.length - 10, 60]);
    assert.throws(() => dev().writeBatch(buf, bad, 2), RangeError);
    assert.throws(() => dev().write(buf, buf.length - 10, 60), RangeError);
  });

  test('writeBatch gathers a frame from parts (writev): the kernel answers the whole request', async () => {
    const id = 0x4b58;
    // Four echo requests with 1000 bytes of data; the second and third are written in pieces
    // scattered through the buffer (with junk between them), the first whole, the fourth with
    // its headers in a second buffer (aux) and the rest in the first.
    const frames = [0, 1, 2, 3].map((seq) => echoRequestFrame(kernelMac, id, seq, 1000));
    const junk = Buffer.alloc(7, 0xee);
    const pieces: Buffer[] = [];
    const pairs: number[] = [];
    let pos = 0;
    const put = (b: Buffer, continues: boolean) => {
      pieces.push(b, junk);
      pairs.push(pos, b.length | (continues ? WRITE_CONTINUES : 0));
      pos += b.length + junk.length;
    };
    put(frames[0]!, false);
    for (const f of frames.slice(1, 3)) {
      put(f.subarray(0, 34), false); // Ethernet + IPv4 headers
      put(f.subarray(34, 500), true);
      put(f.subarray(500, 501), true);
      put(f.subarray(501), true);
    }
    const aux = Buffer.concat([junk, frames[3]!.subarray(0, 42)]);
    pairs.push(junk.length | WRITE_AUX, 42);
    put(frames[3]!.subarray(42), true);
    const buf = Buffer.concat(pieces);
    const offsets = Uint32Array.from(pairs);
    const seen = new Set<number>();
    const listener: FrameListener = (f) => {
      const e = parseIcmp(f);
      if (!e || e.type !== 0 || e.id !== id) return;
      assert.equal(inetChecksum(e.icmp), 0, 'ICMP checksum of the reply');
      assert.equal(e.icmp.length, 8 + 1000);
      seen.add(e.seq);
    };
    listeners.add(listener);
    const before = dev().stats();
    try {
      assert.equal(dev().writeBatch(buf, offsets, pairs.length / 2, aux), 4, 'frames, not pairs');
      assert.ok(await until(() => seen.size === 4, 3000), `echo replies: ${seen.size}/4`);
    } finally {
      listeners.delete(listener);
    }
    const after = dev().stats();
    assert.equal(after.txFrames - before.txFrames, 4);
    assert.equal(
      after.txBytes - before.txBytes,
      frames.reduce((n, f) => n + f.length, 0),
    );
    // A continuation first, or a part outside the buffer, is refused before anything is written.
    assert.throws(
      () => dev().writeBatch(buf, Uint32Array.from([0, 60 | WRITE_CONTINUES]), 1),
      RangeError,
    );
    assert.throws(
      () =>
        dev().writeBatch(buf, Uint32Array.from([0, 60, buf.length - 5, 10 | WRITE_CONTINUES]), 2),
      RangeError,
    );
    // A pair in a second buffer that was not given, or outside it.
    assert.throws(
      () => dev().writeBatch(buf, Uint32Array.from([0 | WRITE_AUX, 14]), 1),
      RangeError,
    );
    assert.throws(
      () => dev().writeBatch(buf, Uint32Array.from([40 | WRITE_AUX, 14]), 1, aux),
      RangeError,
    );
    const tooMany = new Uint32Array(2 * 1025);
    tooMany[1] = 14;
    for (let i = 1; i < 1025; i++) tooMany[2 * i + 1] = 1 | WRITE_CONTINUES;
    assert.throws(() => dev().writeBatch(buf, tooMany, 1025), RangeError);
    assert.equal(dev().stats().txFrames, after.txFrames);
  });

  test('burst: 20,000 echo requests in batches, replies read many per wake-up', async (t) => {
    const N = 20_000;
    const CHUNK = 256;
    const WINDOW = 512; // the TAP's transmit ring (qlen 1000) must not overflow
    const id = 0x4b58;
    const one = echoRequestFrame(kernelMac, id, 0).length;
    const buf = Buffer.alloc(N * one);
    const offsets = new Uint32Array(2 * N);
    for (let i = 0; i < N; i++) {
      echoRequestFrame(kernelMac, id, i & 0xffff).copy(buf, i * one);
      offsets[2 * i] = i * one;
      offsets[2 * i + 1] = one;
    }
    let received = 0;
    let other = 0;
    let batches = 0;
    let multiFrameBatches = 0;
    let largest = 0;
    // Count in place, no copies: the way a forwarder consumes the arena.
    batchHook = (b, offs, count) => {
      batches++;
      if (count > 1) multiFrameBatches++;
      if (count > largest) largest = count;
      for (let i = 0; i < count; i++) {
        const o = offs[2 * i];
        if (
          offs[2 * i + 1] >= 42 &&
          b.readUInt16BE(o + 12) === 0x0800 &&
          b[o + 23] === 1 &&
          b[o + 34] === 0 &&
          b.readUInt16BE(o + 38) === id
        ) {
          received++;
        } else {
          other++;
        }
      }
    };
    const before = dev().stats();
    let sent = 0;
    let writeMs = 0;
    let lost = 0;
    let lastProgress = Date.now();
    let lastReceived = 0;
    const t0 = performance.now();
    const deadline = Date.now() + 30_000;
    try {
      while (received + lost < N && Date.now() < deadline) {
        const inFlight = sent - received - lost;
        if (sent < N && inFlight < WINDOW) {
          const n = Math.min(CHUNK, N - sent, WINDOW - inFlight);
          const w0 = performance.now();
          const w = dev().writeBatch(buf, offsets.subarray(2 * sent, 2 * (sent + n)), n);
          writeMs += performance.now() - w0;
          sent += w;
        }
        if (received !== lastReceived) {
          lastReceived = received;
          lastProgress = Date.now();
        } else if (Date.now() - lastProgress > 200 && sent - received - lost > 0) {
          lost = sent - received; // stalled: count the rest in flight as lost and move on
          lastProgress = Date.now();
        }
        await immediate();
      }
    } finally {
      batchHook = undefined;
    }
    const seconds = (performance.now() - t0) / 1000;
    const after = dev().stats();
    t.diagnostic(
      `sent ${sent}, replies ${received} (+${other} other frames) in ${seconds.toFixed(3)} s: ` +
        `${Math.round(received / seconds)} replies/s round trip; writeBatch ` +
        `${Math.round(sent / (writeMs / 1000))} frames/s incl. kernel processing; ` +
        `${batches} batches, ${multiFrameBatches} with >1 frame, largest ${largest}, ` +
        `mean ${(received / batches).toFixed(1)} frames/batch`,
    );
    assert.equal(sent, N);
    assert.ok(received >= N * 0.99, `replies ${received}/${N}`);
    assert.ok(multiFrameBatches > 0 && largest > 1, 'several frames per onBatch call');
    assert.ok(after.rxMaxBatch > 1);
    assert.ok(after.rxFrames - before.rxFrames >= received);
    assert.equal(after.txFrames - before.txFrames, N);
    assert.equal(after.rxTruncated, 0);
  });

  test('write errors carry the errno name', () => {
    // Device down: the kernel refuses writes with EIO.
    ip('-n', NS, 'link', 'set', 'eth0', 'down');
    try {
      const frame = echoRequestFrame(kernelMac, 1, 1);
      assert.throws(
        () => dev().write(frame),
        (err: unknown) => isTapError(err, 'EIO') && (err as TapError).syscall === 'write',
      );
      const dropped = dev().droppedWrites;
      const offs = Uint32Array.from([0, frame.length, 0, frame.length]);
      assert.equal(dev().writeBatch(frame, offs, 2), 0);
      assert.equal(dev().droppedWrites, dropped + 2);
    } finally {
      ip('-n', NS, 'link', 'set', 'eth0', 'up');
    }
    assert.throws(() => TapDevice.open('bad/name'), RangeError);
    assert.throws(
      () => dev().setOffload(1),
      (err: unknown) => isTapError(err, 'EINVAL'),
    );
  });

  test('deleting the namespace under a polling device never crashes', async (t) => {
    ip('netns', 'add', NS_GONE);
    const gone = TapDevice.open(TAP_GONE);
    extraTaps.push(gone);
    ip('link', 'set', 'dev', TAP_GONE, 'netns', NS_GONE);
    ip('-n', NS_GONE, 'link', 'set', TAP_GONE, 'up');
    const goneErrors: TapError[] = [];
    gone.start(
      () => {},
      (err) => goneErrors.push(err),
    );
    ip('netns', 'del', NS_GONE); // the kernel deletes the TAP with the namespace (asynchronously)
    const reported = await until(() => goneErrors.length > 0, 5000);
    if (reported) {
      assert.equal(goneErrors.length, 1, 'onError is called once');
      assert.equal(typeof goneErrors[0].code, 'string');
      t.diagnostic(
        `onError after netns deletion: ${goneErrors[0].code} (${goneErrors[0].message})`,
      );
    }
    // Writing to the detached fd reports the errno (EBADFD) instead of crashing.
    assert.throws(
      () => gone.write(Buffer.alloc(60)),
      (err: unknown) => isTapError(err),
    );
    gone.stop();
    gone.close();
    gone.close();
    assert.equal(gone.closed, true);
    assert.throws(
      () => gone.write(Buffer.alloc(60)),
      (err: unknown) => isTapError(err, 'EBADF'),
    );
    assert.throws(
      () => gone.start(() => {}),
      (err: unknown) => isTapError(err, 'EBADF'),
    );
  });

  test('close from inside the batch handler, then writes throw EBADF', async () => {
    const t = dev();
    let calls = 0;
    batchHook = () => {
      calls++;
      t.close(); // the handler's buf/offsets stay valid until it returns
      t.close();
    };
    // The kernel answers an ARP request for its own address: that wakes the poll.
    const req = ethernet(
      BROADCAST,
      PEER_MAC,
      0x0806,
      arp(1, PEER_MAC, PEER_IP, '00:00:00:00:00:00', KERNEL_IP),
    );
    try {
      assert.equal(t.write(req), true);
      assert.ok(await until(() => t.closed, 3000), 'handler ran and closed the device');
      await sleep(50);
      assert.equal(calls, 1);
    } finally {
      batchHook = undefined;
    }
    assert.throws(
      () => t.write(req),
      (err: unknown) => isTapError(err, 'EBADF'),
    );
    assert.throws(
      () => t.writeBatch(req, Uint32Array.from([0, req.length]), 1),
      (err: unknown) => isTapError(err, 'EBADF'),
    );
    t.stop();
    // Closing the last fd deletes the (non-persistent) device.
    assert.ok(
      await until(() => {
        try {
          ip('-n', NS, 'link', 'show', 'eth0');
          return false;
        } catch {
          return true;
        }
      }, 3000),
      'device deleted after close',
    );
    assert.deepEqual(errors, []);
  });

  test('an exception thrown by the handler is an uncaught exception; polling continues', () => {
    // In a child process, so that the test runner's own uncaught-exception handling stays out.
    const dir = mkdtempSync(join(tmpdir(), 'kwtap-'));
    const script = join(dir, 'child.mjs');
    const indexUrl = new URL('../../../src/tap/index.js', import.meta.url).href;
    writeFileSync(
      script,
      `
import { execFileSync } from 'node:child_process';
import { TapDevice } from ${JSON.stringify(indexUrl)};
const ip = (...a) => execFileSync('ip', a);
const [ns, name] = process.argv.slice(2);
ip('netns', 'add', ns);
try {
  const tap = TapDevice.open(name);
  ip('link', 'set', 'dev', name, 'netns', ns, 'name', 'eth0');
  ip('-n', ns, 'addr', 'add', '10.250.1.1/24', 'dev', 'eth0');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
  const req = Buffer.from(
    'ffffffffffff026b77000002' + '0806' + '000108000604' + '0001' +
      '026b77000002' + '0afa0102' + '000000000000' + '0afa0101', 'hex');
  let replies = 0;
  await new Promise((resolve) => {
    process.on('uncaughtException', (err) => {
      console.log('uncaught:' + err.message);
      tap.write(req);
    });
    tap.start((buf, offs, count) => {
      for (let i = 0; i < count; i++) {
        const o = offs[2 * i];
        if (buf.readUInt16BE(o + 12) !== 0x0806 || buf.readUInt16BE(o + 20) !== 2) continue;
        replies++;
        if (replies === 1) throw new Error('boom');
        console.log('second batch');
        tap.close();
        resolve();
      }
    });
    tap.write(req);
  });
} finally {
  ip('netns', 'del', ns);
}
`,
    );
    try {
      const out = execFileSync(process.execPath, [script, NS_CHILD, TAP_CHILD], {
        encoding: 'utf8',
        timeout: 15_000,
      });
      assert.match(out, /uncaught:boom\nsecond batch\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('frames longer than maxFrameBytes are dropped and counted, not truncated', async () => {
    const small = TapDevice.open(TAP_SMALL, { maxFrameBytes: 100, arenaBytes: 4096 });
    extraTaps.push(small);
    const mac = plumb(NS_SMALL, TAP_SMALL);
    const lengths: number[] = [];
    small.start((buf, offsets, count) => {
      for (let i = 0; i < count; i++) {
        const o = offsets[2 * i];
        const len = offsets[2 * i + 1];
        // Only the replies to what this test sends (the kernel may add IPv6 chatter).
        if (buf.readUInt16BE(o + 12) === 0x0806 || buf.readUInt16BE(o + 12) === 0x0800) {
          lengths.push(len);
        }
      }
    });
    // A 1042-byte echo request: its 1042-byte reply cannot be read into 100 bytes.
    assert.equal(small.write(echoRequestFrame(mac, 0x4b59, 1, 1000)), true);
    assert.ok(await until(() => small.stats().rxTruncated === 1, 3000), 'oversized reply counted');
    // A 42-byte ARP reply still gets through.
    const req = ethernet(
      BROADCAST,
      PEER_MAC,
      0x0806,
      arp(1, PEER_MAC, PEER_IP, '00:00:00:00:00:00', KERNEL_IP),
    );
    assert.equal(small.write(req), true);
    assert.ok(await until(() => lengths.length > 0, 3000), 'ARP reply received');
    assert.deepEqual(lengths, [42]);
    small.close();
  });

  test('vnetHdr: frames carry a virtio_net_hdr; setOffload; multi-queue', async () => {
    const opts = { vnetHdr: true, multiQueue: true };
    const v = TapDevice.open(TAP_VNET, opts);
    extraTaps.push(v);
    assert.equal(v.vnetHdrBytes, 10);
    assert.equal(v.options.maxFrameBytes, 65552);
    // A second queue of the same device; opening it without IFF_MULTI_QUEUE is refused.
    const q2 = TapDevice.open(TAP_VNET, opts);
    extraTaps.push(q2);
    assert.equal(q2.name, TAP_VNET);
    assert.throws(
      () => TapDevice.open(TAP_VNET),
      (err: unknown) => isTapError(err, 'EINVAL'),
    );
    q2.close();
    v.setOffload(TUN_F_CSUM);
    v.setOffload(0);
    plumb(NS_VNET, TAP_VNET);
    const got: Buffer[] = [];
    v.start((buf, offsets, count) => {
      for (let i = 0; i < count; i++) {
        got.push(Buffer.from(buf.subarray(offsets[2 * i], offsets[2 * i] + offsets[2 * i + 1])));
      }
    });
    const req = ethernet(
      BROADCAST,
      PEER_MAC,
      0x0806,
      arp(1, PEER_MAC, PEER_IP, '00:00:00:00:00:00', KERNEL_IP),
    );
    const hdr = Buffer.alloc(10); // flags 0, gso_type VIRTIO_NET_HDR_GSO_NONE
    assert.equal(v.write(Buffer.concat([hdr, req])), true);
    const isArpReply = (f: Buffer) => f.length >= 52 && f.readUInt16BE(10 + 12) === 0x0806;
    assert.ok(await until(() => got.some(isArpReply), 3000), 'ARP reply behind a virtio header');
    const reply = got.find(isArpReply);
    assert.ok(reply);
    assert.equal(reply.length, 10 + 42);
    assert.equal(reply[1], 0, 'gso_type NONE');
    assert.equal(parseArp(reply.subarray(10))?.op, 2);
    v.close();
  });

  test('closing a polling device outside any callback is clean', async () => {
    const t = TapDevice.open('');
    extraTaps.push(t);
    assert.match(t.name, /^tap\d+$/);
    t.start(() => {});
    t.close();
    await immediate();
    await sleep(10);
    assert.equal(t.closed, true);
    t.stop();
    t.close();
  });
});
