/**
 * Conntrack memory and speed at 1,000,000 entries.
 *
 *   npx tsc -p . && node --expose-gc dist/bench/conntrack/bench.js [entries]
 *
 * Fills the table with UDP connections through the forwarder's hook sequence (inbound, null
 * DNAT/SNAT bindings, natPacket, confirm), then measures bytes per entry (process.memoryUsage
 * around the fill, after gc), table lookups per second (hits in both directions, misses),
 * full per-packet tracking of established flows, and one expiry sweep step.
 */
import * as os from 'node:os';
import { Conntrack } from '../../src/conntrack/index.js';
import { Hook, PacketMeta } from '../../src/netfilter/packet-meta.js';
import { IPPROTO_UDP, emitIpv4Header, emitUdp } from '../../src/packet/index.js';
import { settle } from '../gc.js';

const N = Number(process.argv[2] ?? 1_000_000);

const DST = 0x0a60000a; // 10.96.0.10
const DPORT = 53;
/** Connection i: source 10.(i>>12).(i>>4 & 255).x, port 10000 + (i & 15). */
function srcOf(i: number): number {
  return (0x0a000000 + (i >>> 4) + 1) >>> 0;
}
function sportOf(i: number): number {
  return 10000 + (i & 15);
}

const buf = Buffer.alloc(20 + 8 + 32);
emitUdp(buf, 20, 1, DPORT, 32, 1, DST, false);
emitIpv4Header(buf, 0, {
  src: 1,
  dst: DST,
  protocol: IPPROTO_UDP,
  ttl: 64,
  id: 0,
  dontFragment: false,
  tos: 0,
  payloadLength: 40,
});

function setPacket(src: number, dst: number, sport: number, dport: number): void {
  buf.writeUInt32BE(src, 12);
  buf.writeUInt32BE(dst, 16);
  buf.writeUInt16BE(sport, 20);
  buf.writeUInt16BE(dport, 22);
}

function packet(meta: PacketMeta, hook: number): void {
  meta.reset();
  meta.hook = hook as PacketMeta['hook'];
  meta.parse(buf, 0, buf.length);
}

interface Timing {
  wallNs: number;
  cpuNs: number;
}

function timed(fn: () => void): Timing {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  fn();
  const wallNs = Number(process.hrtime.bigint() - t0);
  const c = process.cpuUsage(c0);
  return { wallNs, cpuNs: (c.user + c.system) * 1000 };
}

function rate(n: number, t: Timing): string {
  const perCpu = t.cpuNs / n;
  return (
    `${(1e3 / perCpu).toFixed(2)} M/s by CPU time (${perCpu.toFixed(0)} ns each; ` +
    `wall ${(t.wallNs / n).toFixed(0)} ns)`
  );
}

let clock = 1_000_000;

function fill(ct: Conntrack, meta: PacketMeta): void {
  for (let i = 0; i < N; i++) {
    setPacket(srcOf(i), DST, sportOf(i), DPORT);
    packet(meta, Hook.PREROUTING);
    ct.inbound(meta, true);
    ct.setupNat(meta, 'DST', null);
    ct.natPacket(meta, 'DST', false);
    meta.hook = Hook.POSTROUTING;
    ct.setupNat(meta, 'SRC', null);
    ct.natPacket(meta, 'SRC', false);
    ct.confirm(meta);
  }
}

function lookups(
  ct: Conntrack,
  kSrc: Uint32Array,
  kPort: Uint16Array,
  rounds: number,
  mode: 0 | 1 | 2,
): number {
  let found = 0;
  const k = kSrc.length;
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < k; j++) {
      const h =
        mode === 0
          ? ct.lookup(kSrc[j], DST, kPort[j], DPORT, 17)
          : mode === 1
            ? ct.lookup(DST, kSrc[j], DPORT, kPort[j], 17)
            : ct.lookup(kSrc[j], DST, kPort[j], 54, 17);
      if (h >= 0) found++;
    }
  }
  return found;
}

function established(ct: Conntrack, meta: PacketMeta, kSrc: Uint32Array, kPort: Uint16Array): void {
  for (let j = 0; j < kSrc.length; j++) {
    setPacket(DST, kSrc[j], DPORT, kPort[j]);
    packet(meta, Hook.PREROUTING);
    ct.inbound(meta, true);
    ct.natPacket(meta, 'DST', false);
    meta.hook = Hook.POSTROUTING;
    ct.natPacket(meta, 'SRC', false);
    ct.confirm(meta);
  }
}

function main(): void {
  const meta = new PacketMeta();
  const before = settle();
  const ct = new Conntrack({ maxEntries: 1 << 20, now: () => clock, hashSeed: 1 });

  const fillT = timed(() => fill(ct, meta));
  if (ct.count() !== N) throw new Error(`expected ${N} entries, have ${ct.count()}`);
  const after = settle();
  const heap = after.heapUsed - before.heapUsed;
  const abuf = after.arrayBuffers - before.arrayBuffers;
  const ext = after.external - before.external;
  const rss = after.rss - before.rss;

  // Random existing connections, pre-generated (no allocation in the loops).
  const K = 1 << 20;
  const kSrc = new Uint32Array(K);
  const kPort = new Uint16Array(K);
  let x = 0x12345678;
  for (let j = 0; j < K; j++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const i = x % N;
    kSrc[j] = srcOf(i);
    kPort[j] = sportOf(i);
  }
  const ROUNDS = 4;
  let found = 0;
  const hitT = timed(() => (found = lookups(ct, kSrc, kPort, ROUNDS, 0)));
  if (found !== ROUNDS * K) throw new Error(`hits: ${found}`);
  const replyT = timed(() => (found = lookups(ct, kSrc, kPort, ROUNDS, 1)));
  if (found !== ROUNDS * K) throw new Error(`reply hits: ${found}`);
  const missT = timed(() => (found = lookups(ct, kSrc, kPort, ROUNDS, 2)));
  if (found !== 0) throw new Error(`misses found ${found}`);
  const pktT = timed(() => established(ct, meta, kSrc, kPort));

  const tickT = timed(() => ct.tick(clock));
  clock += 3_600_000;
  const tickExpT = timed(() => ct.tick(clock));
  const expired = N - ct.count();

  const mb = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  const ms = (t: Timing) =>
    `${(t.cpuNs / 1e6).toFixed(2)} ms CPU (wall ${(t.wallNs / 1e6).toFixed(2)} ms)`;
  const lines = [
    `entries: ${N} (table arrays ${mb(ct.memoryBytes())}, ${(ct.memoryBytes() / N).toFixed(1)} B/entry)`,
    `memory delta after gc: heapUsed ${mb(heap)}, arrayBuffers ${mb(abuf)}, external ${mb(ext)}, rss ${mb(rss)}`,
    `bytes per entry (heapUsed + arrayBuffers): ${((heap + abuf) / N).toFixed(1)}`,
    `new connections (inbound + 2 null bindings + 2 natPacket + confirm): ${rate(N, fillT)}`,
    `lookup hits, original direction: ${rate(ROUNDS * K, hitT)}`,
    `lookup hits, reply direction: ${rate(ROUNDS * K, replyT)}`,
    `lookup misses: ${rate(ROUNDS * K, missT)}`,
    `established packets (reset + parse + inbound + 2 natPacket + confirm): ${rate(K, pktT)}`,
    `tick, sweep step of ${Math.min(262144, Math.max(16384, Math.ceil(N / 8)))} entries, none expired: ${ms(tickT)}`,
    `tick, sweep step after everything expired (removes ${expired}, the per-tick cap): ${ms(tickExpT)}`,
    `node ${process.version}, ${process.arch}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  ];
  for (const l of lines) console.log(l);
}

main();
