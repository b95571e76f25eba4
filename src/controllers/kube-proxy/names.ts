/**
 * kube-proxy's chain names and probability strings (pkg/proxy/iptables/proxier.go:
 * portProtoHash, servicePortEndpointChainName, computeProbability;
 * reference/dataplane.md §1.2 and §1.7).
 */
import { createHash } from 'node:crypto';

export type ServiceChainPrefix = 'KUBE-SVC-' | 'KUBE-SVL-' | 'KUBE-EXT-' | 'KUBE-FW-';

export const SERVICE_CHAIN_PREFIXES: readonly string[] = [
  'KUBE-SVC-',
  'KUBE-SVL-',
  'KUBE-SEP-',
  'KUBE-FW-',
  'KUBE-EXT-',
];

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

// ---------------------------------------------------------------------------------------
// SHA-256 for short ASCII strings, allocation-free. kube-proxy hashes one string per
// service port and one per endpoint; with tens of thousands of endpoints the garbage of
// node:crypto's Hash objects dominated generation time. Non-ASCII input (never a
// Kubernetes name or an IP) goes to node:crypto. Checked against node:crypto in
// test/unit/controllers/kube-proxy/names.test.ts.

function fracBits(x: number): number {
  return ((x - Math.floor(x)) * 2 ** 32) | 0;
}

const PRIMES: number[] = [];
for (let n = 2; PRIMES.length < 64; n++) {
  if (PRIMES.every((p) => n % p !== 0)) PRIMES.push(n);
}
/** Round constants: the first 32 fractional bits of the cube roots of the first 64 primes. */
const K = Int32Array.from(PRIMES, (p) => fracBits(Math.cbrt(p)));
/** Initial hash: the first 32 fractional bits of the square roots of the first 8 primes. */
const H0 = Int32Array.from(PRIMES.slice(0, 8), (p) => fracBits(Math.sqrt(p)));
const W = new Int32Array(64);
const H = new Int32Array(8);
const DIGEST10 = new Uint8Array(10);
/** The padded message (inputs up to 119 ASCII characters: two blocks). */
const MSG = new Uint8Array(128);

/** The first 10 bytes of sha256(text) into DIGEST10; false when text is not ASCII. */
function sha256First10(text: string): boolean {
  const len = text.length;
  if (len > 119) return sha256LongFirst10(text);
  const msg = MSG;
  for (let i = 0; i < len; i++) {
    const b = text.charCodeAt(i);
    if (b > 0x7f) return false;
    msg[i] = b;
  }
  const total = len < 56 ? 64 : 128;
  msg[len] = 0x80;
  msg.fill(0, len + 1, total - 2);
  const bitLen = len * 8;
  msg[total - 2] = bitLen >>> 8;
  msg[total - 1] = bitLen & 0xff;
  H.set(H0);
  compress(msg, 0);
  if (total === 128) compress(msg, 64);
  digest10();
  return true;
}

/** sha256First10 of a longer text (any length), byte by byte. */
function sha256LongFirst10(text: string): boolean {
  const len = text.length;
  for (let i = 0; i < len; i++) if (text.charCodeAt(i) > 0x7f) return false;
  const total = Math.ceil((len + 9) / 64) * 64;
  const bitLen = len * 8;
  const block = new Uint8Array(64);
  H.set(H0);
  for (let at = 0; at < total; at += 64) {
    for (let k = 0; k < 64; k++) {
      const i = at + k;
      let b: number;
      if (i < len) b = text.charCodeAt(i);
      else if (i === len) b = 0x80;
      else if (i >= total - 4) b = (bitLen >>> ((total - 1 - i) * 8)) & 0xff;
      else b = 0;
      block[k] = b;
    }
    compress(block, 0);
  }
  digest10();
  return true;
}

/** One SHA-256 block of msg at `at` into H. */
function compress(msg: Uint8Array, at: number): void {
  const w = W;
  for (let t = 0; t < 16; t++) {
    const o = at + t * 4;
    w[t] = (msg[o]! << 24) | (msg[o + 1]! << 16) | (msg[o + 2]! << 8) | msg[o + 3]!;
  }
  for (let t = 16; t < 64; t++) {
    const w15 = w[t - 15]!;
    const w2 = w[t - 2]!;
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    w[t] = (w[t - 16]! + s0 + w[t - 7]! + s1) | 0;
  }
  let a = H[0]!;
  let b = H[1]!;
  let c = H[2]!;
  let d = H[3]!;
  let e = H[4]!;
  let f = H[5]!;
  let g = H[6]!;
  let h = H[7]!;
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + S1 + ch + K[t]! + w[t]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (S0 + maj) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  H[0] = (H[0]! + a) | 0;
  H[1] = (H[1]! + b) | 0;
  H[2] = (H[2]! + c) | 0;
  H[3] = (H[3]! + d) | 0;
  H[4] = (H[4]! + e) | 0;
  H[5] = (H[5]! + f) | 0;
  H[6] = (H[6]! + g) | 0;
  H[7] = (H[7]! + h) | 0;
}

function digest10(): void {
  for (let i = 0; i < 10; i++) DIGEST10[i] = (H[i >> 2]! >>> ((3 - (i & 3)) * 8)) & 0xff;
}

const BASE32_CODES = Uint8Array.from(BASE32, (c) => c.charCodeAt(0));
const OUT16: number[] = new Array<number>(16).fill(0);

/** base32.StdEncoding of 10 bytes: 16 characters, no padding (a flat string). */
function base32First16(d: ArrayLike<number>): string {
  let n = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < 10; i++) {
    acc = (acc << 8) | d[i]!;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      OUT16[n++] = BASE32_CODES[(acc >>> bits) & 31]!;
    }
    acc &= (1 << bits) - 1;
  }
  return String.fromCharCode.apply(null, OUT16);
}

/**
 * The first 16 characters of base32.StdEncoding(sha256(text)). 16 characters are
 * 80 bits, exactly the first 10 bytes of the digest, so no padding is involved.
 */
export function hash16(text: string): string {
  return base32First16(sha256First10(text) ? DIGEST10 : createHash('sha256').update(text).digest());
}

/** hash16 through node:crypto only: the reference the fast path is tested against. */
export function hash16Crypto(text: string): string {
  return base32First16(createHash('sha256').update(text).digest());
}

/**
 * ServicePortName.String(): "<namespace>/<name>", plus ":<port name>" when the port is
 * named (pkg/proxy/types.go).
 */
export function servicePortNameString(namespace: string, name: string, portName: string): string {
  return portName === '' ? `${namespace}/${name}` : `${namespace}/${name}:${portName}`;
}

/** portProtoHash: the 16-character suffix shared by KUBE-SVC-/SVL-/EXT-/FW- of a port. */
export function portProtoHash(svcPortName: string, protocol: string): string {
  return hash16(svcPortName + protocol.toLowerCase());
}

/**
 * KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW- chain of a service port. `svcPortName` is
 * the ServicePortName string ("ns/name:port"), `protocol` is lower-cased as kube-proxy
 * does ("tcp").
 */
export function servicePortChainName(
  prefix: ServiceChainPrefix,
  svcPortName: string,
  protocol: string,
): string {
  return prefix + portProtoHash(svcPortName, protocol);
}

/** KUBE-SEP- chain of one endpoint ("ip:port") of a service port. */
export function endpointChainName(svcPortName: string, protocol: string, endpoint: string): string {
  return 'KUBE-SEP-' + hash16(svcPortName + protocol.toLowerCase() + endpoint);
}

/** isServiceChainName: the per-service chains stale-chain deletion may remove. */
export function isServiceChainName(chain: string): boolean {
  return SERVICE_CHAIN_PREFIXES.some((p) => chain.startsWith(p));
}

/**
 * computeProbability(n) = fmt.Sprintf("%0.10f", 1.0/float64(n)). Go rounds the exact
 * binary value half to even; JavaScript's toFixed rounds exact ties up. The only
 * 1/n with a tie at the tenth digit is 1/2048 (0.00048828125), which Go prints as
 * 0.0004882812. Ties are detected on the exact expansion and rounded to even.
 */
export function computeProbability(n: number): string {
  const x = 1 / n;
  const fixed = x.toFixed(10);
  const exact = x.toFixed(100);
  const dot = exact.indexOf('.');
  const tail = exact.slice(dot + 11).replace(/0+$/, '');
  if (tail === '5') {
    const head = exact.slice(0, dot + 11);
    const last = Number(head[head.length - 1]);
    if (last % 2 === 0) return head; // round half to even: keep the even digit
  }
  return fixed;
}
