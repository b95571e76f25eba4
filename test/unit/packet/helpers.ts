import assert from 'node:assert/strict';
import {
  ETH_HEADER_LEN,
  IcmpView,
  Ipv4View,
  ParseResult,
  TcpView,
  UdpView,
  ipv4FromString,
  parseResultNames,
} from '../../../src/packet/index.js';
import { type FrameName, frame } from './fixtures/frames.js';

export const ip = ipv4FromString;

/** Deterministic PRNG (mulberry32). */
export class Prng {
  constructor(private state: number) {}
  /** Uniform 32-bit unsigned. */
  u32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }
  fill(buf: Uint8Array, offset: number, length: number): void {
    for (let i = 0; i < length; i++) buf[offset + i] = this.u32() & 0xff;
  }
}

export function expectResult(actual: ParseResult, expected: ParseResult, what = ''): void {
  assert.equal(
    parseResultNames[actual],
    parseResultNames[expected],
    `${what}: got ${parseResultNames[actual]}, want ${parseResultNames[expected]}`,
  );
}

/** A captured frame with its IPv4 view wrapped (asserts Ok). */
export function ipOf(name: FrameName, buf: Buffer = frame(name)): Ipv4View {
  const v = new Ipv4View();
  expectResult(v.wrap(buf, ETH_HEADER_LEN, buf.length - ETH_HEADER_LEN), ParseResult.Ok, name);
  return v;
}

export function tcpOf(ipv: Ipv4View): TcpView {
  const t = new TcpView();
  expectResult(t.wrap(ipv.buf, ipv.payloadOffset, ipv.payloadLength), ParseResult.Ok, 'tcp');
  return t;
}

export function udpOf(ipv: Ipv4View): UdpView {
  const u = new UdpView();
  expectResult(u.wrap(ipv.buf, ipv.payloadOffset, ipv.payloadLength), ParseResult.Ok, 'udp');
  return u;
}

export function icmpOf(ipv: Ipv4View): IcmpView {
  const i = new IcmpView();
  expectResult(i.wrap(ipv.buf, ipv.payloadOffset, ipv.payloadLength), ParseResult.Ok, 'icmp');
  return i;
}

/** One's-complement addition of two 16-bit values. */
export function onesAdd(a: number, b: number): number {
  const s = a + b;
  return (s & 0xffff) + (s >>> 16);
}

/** Asserts that every strict prefix of `length` is rejected with one of `allowed`. */
export function everyPrefixRejected(
  wrap: (buf: Buffer, offset: number, length: number) => ParseResult,
  buf: Buffer,
  offset: number,
  length: number,
  allowed: readonly ParseResult[] = [ParseResult.Truncated, ParseResult.Malformed],
): void {
  for (let l = 0; l < length; l++) {
    // An exact-size copy: a read past the prefix would hit the end of the buffer.
    const cut = Buffer.from(buf.subarray(offset, offset + l));
    const r = wrap(cut, 0, l);
    assert.ok(allowed.includes(r), `prefix ${l}/${length}: ${parseResultNames[r]}`);
  }
}
