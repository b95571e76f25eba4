/**
 * Digests of short strings, many at a time (chain names, pod name suffixes): node:crypto's
 * one-shot `hash()` (Node ≥ 20.12) makes no Hash object per string — with tens of
 * thousands of names the garbage of Hash objects dominated kube-proxy's generation and
 * the cluster state build — and its hex string is cheaper to collect than a Buffer (an
 * ArrayBuffer each). Older Node versions take a Hash object.
 */
import { createHash } from 'node:crypto';
import * as nodeCrypto from 'node:crypto';

const oneShot = (nodeCrypto as { hash?: unknown }).hash as
  ((algorithm: string, data: string, encoding: 'hex') => string) | undefined;

/** The digest of the UTF-8 bytes of `text`, in lowercase hex. */
export function hexDigest(algorithm: 'sha1' | 'sha256', text: string): string {
  return oneShot !== undefined
    ? oneShot(algorithm, text, 'hex')
    : createHash(algorithm).update(text, 'utf8').digest('hex');
}

/** Byte `i` of a lowercase hex string. */
export function hexByte(hex: string, i: number): number {
  return (hexDigit(hex.charCodeAt(2 * i)) << 4) | hexDigit(hex.charCodeAt(2 * i + 1));
}

function hexDigit(code: number): number {
  return code <= 57 ? code - 48 : code - 87;
}
