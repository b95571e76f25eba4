/**
 * Deterministic hashing helpers. Everything that Kubernetes or Calico would pick at
 * random (pod name suffixes, IPAM blocks, spread offsets) is derived from these, so
 * every agent computes the same cluster state from the same manifests.
 */
import { createHash } from 'node:crypto';

/**
 * The alphabet of k8s.io/apimachinery/pkg/util/rand: no vowels (so no words) and no
 * look-alike characters (0/o, 1/l, 3/e).
 */
export const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** 32-bit FNV-1a over the UTF-8 bytes of `text` (hash/fnv New32a in Go). */
export function fnv32a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

// SHA-1 of short ASCII strings (names: 50,000 pods take a few per build), without a
// node:crypto Hash object per string; anything else goes to node:crypto. Checked against
// node:crypto in test/unit/cluster/naming.test.ts.

const SHA1_MSG = new Uint8Array(128);
const SHA1_W = new Int32Array(80);
/** The digest of the last sha1Ascii call, as five big-endian words. */
const SHA1_H = new Int32Array(5);

/** SHA-1 of text into SHA1_H; false when text is not ASCII or longer than 119 characters. */
function sha1Ascii(text: string): boolean {
  const len = text.length;
  if (len > 119) return false;
  const msg = SHA1_MSG;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return false;
    msg[i] = c;
  }
  const total = len < 56 ? 64 : 128;
  msg[len] = 0x80;
  msg.fill(0, len + 1, total - 2);
  msg[total - 2] = (len * 8) >>> 8;
  msg[total - 1] = (len * 8) & 0xff;
  const h = SHA1_H;
  h[0] = 0x67452301;
  h[1] = 0xefcdab89 | 0;
  h[2] = 0x98badcfe | 0;
  h[3] = 0x10325476;
  h[4] = 0xc3d2e1f0 | 0;
  for (let at = 0; at < total; at += 64) {
    const w = SHA1_W;
    for (let t = 0; t < 16; t++) {
      const o = at + t * 4;
      w[t] = (msg[o]! << 24) | (msg[o + 1]! << 16) | (msg[o + 2]! << 8) | msg[o + 3]!;
    }
    for (let t = 16; t < 80; t++) {
      const x = w[t - 3]! ^ w[t - 8]! ^ w[t - 14]! ^ w[t - 16]!;
      w[t] = (x << 1) | (x >>> 31);
    }
    let a = h[0]!;
    let b = h[1]!;
    let c = h[2]!;
    let d = h[3]!;
    let e = h[4]!;
    for (let t = 0; t < 80; t++) {
      let f: number;
      let k: number;
      if (t < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (t < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (t < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc | 0;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6 | 0;
      }
      const tmp = (((a << 5) | (a >>> 27)) + f + e + k + w[t]!) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = tmp;
    }
    h[0] = (h[0]! + a) | 0;
    h[1] = (h[1]! + b) | 0;
    h[2] = (h[2]! + c) | 0;
    h[3] = (h[3]! + d) | 0;
    h[4] = (h[4]! + e) | 0;
  }
  return true;
}

const HEX = '0123456789abcdef';

export function sha1Hex(text: string): string {
  if (!sha1Ascii(text)) return createHash('sha1').update(text, 'utf8').digest('hex');
  let out = '';
  for (let i = 0; i < 5; i++) {
    const v = SHA1_H[i]!;
    for (let shift = 28; shift >= 0; shift -= 4) out += HEX[(v >>> shift) & 15]!;
  }
  return out;
}

/** The SHA-1 digest of text (20 bytes). */
export function sha1Bytes(text: string): Uint8Array {
  if (!sha1Ascii(text)) return createHash('sha1').update(text, 'utf8').digest();
  const out = new Uint8Array(20);
  for (let i = 0; i < 20; i++) out[i] = (SHA1_H[i >> 2]! >>> ((3 - (i & 3)) * 8)) & 0xff;
  return out;
}

/** A stable unsigned 32-bit hash of `text`: the first four bytes of its SHA-1. */
export function stableHash32(text: string): number {
  if (sha1Ascii(text)) return SHA1_H[0]! >>> 0;
  return parseInt(sha1Hex(text).slice(0, 8), 16) >>> 0;
}

/**
 * k8s.io/apimachinery/pkg/util/rand.SafeEncodeString: maps every character to
 * SAFE_ALPHABET[code % 27]. Kubernetes applies it to the decimal text of a hash.
 */
export function safeEncodeString(text: string): string {
  let out = '';
  for (const ch of text) out += SAFE_ALPHABET[ch.codePointAt(0)! % SAFE_ALPHABET.length];
  return out;
}

/**
 * `length` characters of SAFE_ALPHABET derived from `seed` (the deterministic analog of
 * rand.String(n), which Kubernetes' SimpleNameGenerator uses for name suffixes).
 */
export function safeSuffix(seed: string, length = 5): string {
  const digest = sha1Bytes(seed);
  let out = '';
  for (let i = 0; i < length; i++) out += SAFE_ALPHABET[digest[i]! % SAFE_ALPHABET.length];
  return out;
}

/** JSON with object keys sorted at every level, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** Byte-order string comparison (locale-independent), for sorting. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
