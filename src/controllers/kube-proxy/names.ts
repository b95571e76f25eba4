/**
 * kube-proxy's chain names and probability strings (pkg/proxy/iptables/proxier.go:
 * portProtoHash, servicePortEndpointChainName, computeProbability;
 * reference/dataplane.md §1.2 and §1.7).
 */
import { createHash } from 'node:crypto';
import { hexByte, hexDigest } from '../../util/digest.js';

export type ServiceChainPrefix = 'KUBE-SVC-' | 'KUBE-SVL-' | 'KUBE-EXT-' | 'KUBE-FW-';

export const SERVICE_CHAIN_PREFIXES: readonly string[] = [
  'KUBE-SVC-',
  'KUBE-SVL-',
  'KUBE-SEP-',
  'KUBE-FW-',
  'KUBE-EXT-',
];

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

const DIGEST10 = new Uint8Array(10);

/** The first 10 bytes of sha256(text), into DIGEST10. */
function sha256First10(text: string): Uint8Array {
  const hex = hexDigest('sha256', text);
  for (let i = 0; i < 10; i++) DIGEST10[i] = hexByte(hex, i);
  return DIGEST10;
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
  return base32First16(sha256First10(text));
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
