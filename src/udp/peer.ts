// Peer addresses in the addon's format (pure; unit-tested without the addon).
//
// A peer is UDP_PEER_WORDS (8) words of a Uint32Array: [0] family 4 or 6, [1] port, [2] IPv6
// scope id, [3] 0, [4..7] the address bytes in network order (IPv4: the first 4 bytes). The
// receive path fills one per datagram; sendBatch / send read them. Copying a peer is 8 word
// copies, and the IPv4 text of a peer is cached, so serving a datagram allocates nothing here.

import { isIPv4, isIPv6 } from 'node:net';

export const UDP_PEER_WORDS = 8;
/** Words per received datagram in `meta`: offset in the arena, length, length on the wire. */
export const UDP_META_WORDS = 3;

const IPV4_CACHE_MAX = 4096;
const ipv4Text = new Map<number, string>();

function bytesOf(peers: Uint32Array, i: number): Uint8Array {
  return new Uint8Array(peers.buffer, peers.byteOffset + (i * UDP_PEER_WORDS + 4) * 4, 16);
}

/** Family of peer `i`: 4, 6, or 0 for an address of another family. */
export function peerFamily(peers: Uint32Array, i: number): number {
  return peers[i * UDP_PEER_WORDS]!;
}

export function peerPort(peers: Uint32Array, i: number): number {
  return peers[i * UDP_PEER_WORDS + 1]!;
}

/**
 * Text of peer `i`'s address, as Node's dgram `rinfo.address` writes it (`127.0.0.1`,
 * `::ffff:127.0.0.1`, `fe80::1%2` — the scope as its number). IPv4 texts are cached.
 */
export function peerAddress(peers: Uint32Array, i: number): string {
  const base = i * UDP_PEER_WORDS;
  const family = peers[base]!;
  if (family === 4) {
    const key = peers[base + 4]!;
    let s = ipv4Text.get(key);
    if (s === undefined) {
      const b = bytesOf(peers, i);
      s = `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
      if (ipv4Text.size >= IPV4_CACHE_MAX) ipv4Text.clear();
      ipv4Text.set(key, s);
    }
    return s;
  }
  if (family === 6) {
    const text = formatIPv6(bytesOf(peers, i));
    const scope = peers[base + 2]!;
    return scope !== 0 ? `${text}%${scope}` : text;
  }
  return '';
}

/**
 * RFC 5952 text of 16 address bytes, as libuv's inet_ntop writes it (Node's): the first
 * longest run of two or more zero words is `::`; `::ffff:a.b.c.d` and `::a.b.c.d` keep the
 * dotted IPv4 form.
 */
export function formatIPv6(b: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      if (curBase === -1) {
        curBase = i;
        curLen = 1;
      } else curLen++;
    } else if (curBase !== -1) {
      if (bestBase === -1 || curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
      curBase = -1;
    }
  }
  if (curBase !== -1 && (bestBase === -1 || curLen > bestLen)) {
    bestBase = curBase;
    bestLen = curLen;
  }
  if (bestBase !== -1 && bestLen < 2) bestBase = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      s += `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
      break;
    }
    s += words[i]!.toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) s += ':';
  return s;
}

function parseIPv4(text: string, out: Uint8Array, at: number): void {
  const parts = text.split('.');
  for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
}

/** 16 bytes of an IPv6 address in text (isIPv6 already checked; no scope). */
export function parseIPv6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  let head = text;
  let tail = '';
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    head = text.slice(0, dbl);
    tail = text.slice(dbl + 2);
  }
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const words = (list: string[]): number[] => {
    const w: number[] = [];
    for (const g of list) {
      if (g.includes('.')) {
        const v4 = new Uint8Array(4);
        parseIPv4(g, v4, 0);
        w.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else w.push(parseInt(g, 16));
    }
    return w;
  };
  const h = words(groups(head));
  const t = words(groups(tail));
  const all = dbl >= 0 ? [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i]! >> 8;
    out[2 * i + 1] = all[i]! & 0xff;
  }
  return out;
}

/**
 * Writes peer `i` from an address text (`10.0.0.1`, `::1`, `fe80::1%3`; a scope must be a
 * number) and a port. Throws TypeError / RangeError for anything else.
 */
export function writePeer(peers: Uint32Array, i: number, address: string, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`port must be an integer in [0, 65535], got ${String(port)}`);
  }
  if ((i + 1) * UDP_PEER_WORDS > peers.length || i < 0) {
    throw new RangeError(`peer ${i} is outside the peers array`);
  }
  const base = i * UDP_PEER_WORDS;
  const bytes = bytesOf(peers, i);
  bytes.fill(0);
  if (isIPv4(address)) {
    peers[base] = 4;
    peers[base + 2] = 0;
    parseIPv4(address, bytes, 0);
  } else {
    const pct = address.indexOf('%');
    const host = pct >= 0 ? address.slice(0, pct) : address;
    const scope = pct >= 0 ? address.slice(pct + 1) : '0';
    if (!isIPv6(host) || !/^\d+$/.test(scope) || Number(scope) > 0xffffffff) {
      throw new TypeError(`not an IP address (scope ids are numbers): ${JSON.stringify(address)}`);
    }
    peers[base] = 6;
    peers[base + 2] = Number(scope);
    bytes.set(parseIPv6(host));
  }
  peers[base + 1] = port;
  peers[base + 3] = 0;
}

/** Copies peer `from[i]` to `to[j]` (8 word copies). */
export function copyPeer(from: Uint32Array, i: number, to: Uint32Array, j: number): void {
  const a = i * UDP_PEER_WORDS;
  const b = j * UDP_PEER_WORDS;
  to[b] = from[a]!;
  to[b + 1] = from[a + 1]!;
  to[b + 2] = from[a + 2]!;
  to[b + 3] = from[a + 3]!;
  to[b + 4] = from[a + 4]!;
  to[b + 5] = from[a + 5]!;
  to[b + 6] = from[a + 6]!;
  to[b + 7] = from[a + 7]!;
}
