import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FrameParser,
  IPPROTO_TCP,
  IPPROTO_UDP,
  Ipv4View,
  PARSE_RESULT_COUNT,
  ParseResult,
  TcpView,
  UdpView,
  frameLayerNames,
  natRewriteDst,
  natRewriteSrc,
  parseResultNames,
} from '../../../src/packet/index.js';
import { type FrameName, FRAME_HEX, frame } from './fixtures/frames.js';
import { ipipEchoFrame } from './fixtures/synthetic.js';
import { Prng } from './helpers.js';

/**
 * A million frames — random bytes and mutations of the captured fixtures (bit flips, byte
 * writes, truncation, extension, length fields set to other values, with header and transport
 * checksums sometimes repaired so that mutations reach deeper layers) — through FrameParser.
 * Checks: no exception escapes; every frame is counted under exactly one reason; the outcome
 * and every field read do not depend on bytes outside the frame (each 8th frame is re-parsed at
 * another offset between random bytes, each 64th through a proxy that reports any index outside
 * the frame); NAT rewrites of accepted TCP/UDP frames keep all
 * checksums valid. Deterministic (seeded).
 */
const N = 1_000_000;
const SEED = 0x6b756265;

const FIXTURES: Buffer[] = [
  ...(Object.keys(FRAME_HEX) as FrameName[]).map((n) => frame(n)),
  ipipEchoFrame(),
];

function mix(h: number, x: number): number {
  return (Math.imul(h, 0x01000193) ^ (x >>> 0)) >>> 0;
}

/** Hash of everything the parser exposes for the frame it just parsed. */
function digest(p: FrameParser, r: ParseResult): number {
  let h = mix(mix(mix(0x811c9dc5, r), p.layer), p.protocol + 1);
  h = mix(h, p.etherType);
  h = mix(h, p.tunneled ? 1 : 0);
  if (r !== ParseResult.Ok && r !== ParseResult.Fragmented) return h;
  if (p.layer === 1) {
    const a = p.arp;
    return mix(mix(mix(h, a.op), a.senderIp), a.targetIp);
  }
  const l3 = p.l3;
  h = mix(mix(mix(h, l3.src), l3.dst), l3.length);
  h = mix(mix(mix(h, l3.headerLength), l3.ttl), l3.flagsAndFragment);
  h = mix(mix(h, l3.payloadSrcPort + 1), l3.payloadDstPort + 1);
  if (p.tunneled) h = mix(mix(h, p.ip.src), p.ip.length);
  if (r === ParseResult.Fragmented) return h;
  if (p.protocol === IPPROTO_TCP) {
    const t = p.tcp;
    h = mix(mix(mix(h, t.seq), t.ack), t.flags);
    h = mix(mix(mix(h, t.headerLength), t.payloadLength), t.window);
    h = mix(mix(h, t.mss + 1), t.windowScale + 1);
  } else if (p.protocol === IPPROTO_UDP) {
    const u = p.udp;
    h = mix(mix(mix(h, u.srcPort), u.dstPort), u.length);
  } else if (p.protocol === 1) {
    const i = p.icmp;
    h = mix(mix(mix(h, i.type), i.code), i.length);
    h = mix(mix(h, i.identifier), i.sequence);
    if (i.isError) {
      const q = p.quoted;
      h = mix(mix(mix(h, q.length), q.src), q.totalLength);
      h = mix(mix(h, q.payloadSrcPort + 1), q.payloadDstPort + 1);
    }
  }
  return h;
}

/**
 * A Buffer proxy that reports every indexed read or write outside [lo, hi): run through it, the
 * parser and the getters prove they stay inside the frame they were given.
 */
function guarded(buf: Buffer, lo: number, hi: number, violations: number[]): Buffer {
  const check = (prop: string | symbol): number => {
    if (typeof prop !== 'string') return NaN;
    const c = prop.charCodeAt(0);
    if (!((c >= 48 && c <= 57) || c === 45)) return NaN;
    const i = Number(prop);
    if (!(i >= lo && i < hi)) violations.push(i);
    return i;
  };
  return new Proxy(buf, {
    get(target, prop) {
      const i = check(prop);
      if (!Number.isNaN(i)) return target[i];
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
    set(target, prop, value: number) {
      const i = check(prop);
      if (!Number.isNaN(i)) target[i] = value;
      return true;
    },
  });
}

/** Repairs the IPv4 header checksum (outer and IPIP inner) if the header still wraps. */
function repairIp(buf: Buffer, len: number, v: Ipv4View): void {
  if (len < 34 || buf[12] !== 0x08 || buf[13] !== 0) return;
  if (v.wrapQuoted(buf, 14, len - 14) !== ParseResult.Ok) return;
  v.fillChecksum();
  if (v.protocol === 4 && v.wrapQuoted(buf, v.payloadOffset, v.payloadLength) === 0) {
    v.fillChecksum();
  }
}

/** Repairs the transport checksum of an otherwise valid frame. */
function repairL4(p: FrameParser, buf: Buffer, len: number): void {
  const r = p.parse(buf, 0, len);
  if (r !== ParseResult.Checksum) return;
  const l3 = p.l3;
  if (p.layer === 7) p.tcp.fillChecksum(l3);
  else if (p.layer === 6) p.udp.fillChecksum(l3);
  else if (p.layer === 4) p.icmp.fillChecksum();
}

describe('fuzz', () => {
  it(`${N} random and mutated frames through FrameParser`, (t) => {
    const rnd = new Prng(SEED);
    const p = new FrameParser();
    const shadowParser = new FrameParser();
    const helperParser = new FrameParser();
    const v = new Ipv4View();
    const tcp = new TcpView();
    const udp = new UdpView();
    const work = Buffer.alloc(2048);
    const shadow = Buffer.alloc(2048 + 64);
    const random = new Array<number>(PARSE_RESULT_COUNT).fill(0);
    const mutated = new Array<number>(PARSE_RESULT_COUNT).fill(0);
    const byLayer = new Map<string, number>();
    let exceptions = 0;
    let firstError: unknown;
    let shadowMismatches = 0;
    let guardedFrames = 0;
    const violations: number[] = [];
    let natChecked = 0;
    let natBroken = 0;
    const started = process.hrtime.bigint();

    for (let i = 0; i < N; i++) {
      let len: number;
      const isRandom = i % 10 === 0;
      if (isRandom) {
        // Random bytes; half the time behind a plausible Ethernet/IPv4 or ARP start.
        len = rnd.int(160);
        rnd.fill(work, 0, len);
        if (i % 20 === 0 && len > 15) {
          const arp = rnd.int(4) === 0;
          work[12] = 0x08;
          work[13] = arp ? 0x06 : 0x00;
          if (!arp) work[14] = 0x40 | (5 + rnd.int(11));
        }
      } else {
        const src = FIXTURES[rnd.int(FIXTURES.length)];
        len = src.length;
        src.copy(work, 0);
        const k = 1 + rnd.int(3);
        for (let m = 0; m < k; m++) {
          const op = rnd.int(8);
          if (op === 0 || op === 1) {
            if (len > 0) work[rnd.int(len)] ^= 1 << rnd.int(8);
          } else if (op === 2) {
            if (len > 0) work[rnd.int(len)] = rnd.int(256);
          } else if (op === 3) {
            len = rnd.int(len + 1);
          } else if (op === 4) {
            const add = rnd.int(64);
            rnd.fill(work, len, add);
            len += add;
          } else {
            // Length-ish fields: IHL, IP total length, IPIP/quoted IP total length and IHL,
            // UDP length, TCP data offset, ARP lengths.
            const fields = [14, 16, 17, 34, 36, 37, 38, 39, 42, 44, 45, 46, 18, 19];
            const at = fields[rnd.int(fields.length)];
            if (at < len) {
              const r = rnd.int(4);
              work[at] = r === 0 ? 0 : r === 1 ? 0xff : r === 2 ? work[at] + 1 : rnd.int(256);
            }
          }
        }
        if (rnd.int(2) === 0) repairIp(work, len, v);
        if (rnd.int(3) === 0) repairL4(helperParser, work, len);
      }

      let r: ParseResult;
      try {
        r = p.parse(work, 0, len);
      } catch (e) {
        exceptions++;
        firstError ??= e;
        continue;
      }
      if (isRandom) random[r]++;
      else mutated[r]++;
      const key = `${frameLayerNames[p.layer]}:${parseResultNames[r]}`;
      byLayer.set(key, (byLayer.get(key) ?? 0) + 1);

      if ((i & 7) === 0) {
        // Same bytes at another offset, surrounded by different garbage.
        const off = 1 + rnd.int(48);
        rnd.fill(shadow, 0, off);
        work.copy(shadow, off, 0, len);
        rnd.fill(shadow, off + len, 16);
        const h1 = digest(p, r);
        let r2: ParseResult;
        try {
          r2 = shadowParser.parse(shadow, off, len);
        } catch (e) {
          exceptions++;
          firstError ??= e;
          continue;
        }
        const h2 = digest(shadowParser, r2);
        if (r2 !== r || h1 !== h2) shadowMismatches++;
        if ((i & 63) === 0) {
          // And once more through a guard that reports any access outside the frame.
          guardedFrames++;
          const g = guarded(shadow, off, off + len, violations);
          const r3 = shadowParser.parse(g, off, len);
          if (r3 !== r || digest(shadowParser, r3) !== h1) shadowMismatches++;
        }
      }

      if (r === ParseResult.Ok && (p.protocol === IPPROTO_TCP || p.protocol === IPPROTO_UDP)) {
        const l3 = p.l3;
        const addr = rnd.u32();
        const port = rnd.int(0x10000);
        if (i & 1) natRewriteSrc(l3, addr, port);
        else natRewriteDst(l3, addr, port);
        natChecked++;
        let ok = l3.verifyChecksum();
        if (p.protocol === IPPROTO_TCP) {
          ok &&= tcp.wrap(l3.buf, l3.payloadOffset, l3.payloadLength) === 0;
          ok &&= tcp.verifyChecksum(l3);
        } else {
          ok &&= udp.wrap(l3.buf, l3.payloadOffset, l3.payloadLength) === 0;
          ok &&= udp.verifyChecksum(l3);
        }
        if (!ok) natBroken++;
      }
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;

    const fmt = (c: number[]): string => c.map((n, r) => `${parseResultNames[r]}=${n}`).join(' ');
    t.diagnostic(`${N} frames in ${ms.toFixed(0)} ms`);
    t.diagnostic(`random:  ${fmt(random)}`);
    t.diagnostic(`mutated: ${fmt(mutated)}`);
    t.diagnostic(
      `by layer: ${[...byLayer.entries()]
        .sort()
        .map(([k, n]) => `${k}=${n}`)
        .join(' ')}`,
    );
    t.diagnostic(
      `re-parses differing: ${shadowMismatches}; guarded: ${guardedFrames}, ` +
        `accesses outside the frame: ${violations.length}; NAT checked: ${natChecked}`,
    );

    assert.equal(exceptions, 0, `exception escaped: ${String(firstError)}`);
    const total = [...random, ...mutated].reduce((a, b) => a + b, 0);
    assert.equal(total, N, 'every frame counted exactly once');
    assert.equal(
      [...byLayer.values()].reduce((a, b) => a + b, 0),
      N,
      'per-layer counts add up too',
    );
    for (let r = 0; r < PARSE_RESULT_COUNT; r++) {
      assert.ok(mutated[r] > 1000, `mutated fixtures produce ${parseResultNames[r]}`);
    }
    assert.ok(random[ParseResult.Unrecognized] > 0);
    assert.ok(random[ParseResult.Truncated] > 0);
    assert.equal(shadowMismatches, 0, 'results depend only on the frame bytes');
    assert.ok(guardedFrames > 10000);
    assert.deepEqual(violations.slice(0, 10), [], 'no access outside the frame');
    assert.ok(natChecked > 10000);
    assert.equal(natBroken, 0, 'NAT rewrites keep checksums valid');
  });
});
