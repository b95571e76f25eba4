/**
 * Deterministic hashing helpers. Everything that Kubernetes or Calico would pick at
 * random (pod name suffixes, IPAM blocks, spread offsets) is derived from these, so
 * every agent computes the same cluster state from the same manifests.
 */
import { hexByte, hexDigest } from '../util/digest.js';

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

/** The SHA-1 of `text` in lowercase hex (src/util/digest.ts: no Hash object per name). */
export function sha1Hex(text: string): string {
  return hexDigest('sha1', text);
}

/** The SHA-1 digest of text (20 bytes). */
export function sha1Bytes(text: string): Uint8Array {
  const hex = hexDigest('sha1', text);
  const out = new Uint8Array(20);
  for (let i = 0; i < 20; i++) out[i] = hexByte(hex, i);
  return out;
}

/** A stable unsigned 32-bit hash of `text`: the first four bytes of its SHA-1. */
export function stableHash32(text: string): number {
  const hex = sha1Hex(text);
  return (
    ((hexByte(hex, 0) << 24) |
      (hexByte(hex, 1) << 16) |
      (hexByte(hex, 2) << 8) |
      hexByte(hex, 3)) >>>
    0
  );
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
