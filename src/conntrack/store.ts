/**
 * The conntrack table as a struct of typed arrays: no JavaScript object per connection.
 *
 * An entry is an index `e`. Each entry has two *tuple nodes* (Linux's `tuplehash[2]`):
 * node `2e` is the ORIGINAL tuple, node `2e + 1` the REPLY tuple. A node is a record of four
 * int32 words in `nodes` (at `4 * node`: source, destination, ports, hash chain link), so a
 * chain step touches one cache line; the protocol is per entry. The ports word
 * is `sport << 16 | dport` for TCP/UDP and `id << 16 | type << 8 | code` for ICMP (as Linux's
 * `src.u.icmp.id` / `dst.u.icmp.type,code`), 0 for other protocols. Addresses are kept as
 * signed int32 (the bit pattern of the unsigned address) so they never leave V8's int32 fast
 * path; convert with `>>> 0` at the edges.
 *
 * Confirmed entries are in a chained hash table keyed by both tuples (bucket heads and `next`
 * links are node indices), and, once they went through source NAT setup, in a second chained
 * table keyed by (original source, source port, protocol) as Linux's `nf_nat_bysource`.
 * Free entries form a list through the chain link of node `2e`. Arrays grow by doubling up to `maxCap`.
 */

/** Entry status bits (the first four equal the contract's `CtStatus`). */
export const ST_EXPECTED = 1;
export const ST_SEEN_REPLY = 2;
export const ST_ASSURED = 4;
export const ST_CONFIRMED = 8;
export const ST_SRC_NAT = 16;
export const ST_DST_NAT = 32;
export const ST_SRC_NAT_DONE = 64;
export const ST_DST_NAT_DONE = 128;
/** Removed from the table (killed or expired) but still referenced by the packet in flight. */
export const ST_DYING = 256;
/** The slot holds an entry (allocated); 0 status means free. */
export const ST_USED = 512;
/** Linked into the by-source NAT table. */
export const ST_BYSRC = 1024;
/** Source NAT set up by MASQUERADE (forgotten when its interface goes down). */
export const ST_MASQ = 2048;

export const ST_NAT_MASK = ST_SRC_NAT | ST_DST_NAT;
export const ST_NAT_DONE_MASK = ST_SRC_NAT_DONE | ST_DST_NAT_DONE;

/** Per-direction TCP window tracking flags (IP_CT_TCP_FLAG_*). */
export const TF_WINDOW_SCALE = 0x01;
export const TF_SACK_PERM = 0x02;
export const TF_CLOSE_INIT = 0x04;
export const TF_BE_LIBERAL = 0x08;
export const TF_DATA_UNACKNOWLEDGED = 0x10;
export const TF_MAXACK_SET = 0x20;
/** `last_flags` only. */
export const TF_EXP_CHALLENGE_ACK = 0x40;
export const TF_SIMULTANEOUS_OPEN = 0x80;

const INITIAL_CAPACITY = 4096;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function grown<T extends Uint8Array | Uint16Array | Uint32Array | Int32Array>(
  old: T,
  length: number,
): T {
  const n = new (old.constructor as new (len: number) => T)(length);
  n.set(old);
  return n;
}

/** murmur3-style mixing of up to four 32-bit words; returns an int32. */
export function hashWords(seed: number, a: number, b: number, c: number, d: number): number {
  let h = seed | 0;
  let k = Math.imul(a, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  k = Math.imul(b, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  k = Math.imul(c, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  k = Math.imul(d, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h ^= 16;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/**
 * Word index of node `n`'s record: entry `e` occupies 16 int32 words (64 bytes, one cache
 * line when the buffer is 64-byte aligned); node 2e at word 16e, node 2e + 1 at 16e + 4.
 */
export function nodeBase(n: number): number {
  return (n << 3) - ((n & 1) << 2);
}

// Layout of an entry's 64-byte record (offsets in units of the view's element size):
//   words 0..3   ORIGINAL node: source, destination, ports, hash chain link
//   words 4..7   REPLY node: the same
//   u16 16       status (ST_*)            u8 34  protocol    u8 35  TCP state
//   word 9       mark                     word 10  next entry in the by-source chain
//   u16 22       MASQUERADE output interface (interned, 0 none)
//   f64 6        expiry time (ms)         f64 7    UDP stream_ts (ms)
export const B_PROTO = 34;
export const B_TCPSTATE = 35;
export const H_STATUS = 16;
export const H_OUTIF = 22;
export const W_MARK = 9;
export const W_SRCNEXT = 10;
export const D_EXPIRES = 6;
export const D_STAMP = 7;

export class CtStore {
  /** Entries the arrays can hold now, and at most. */
  cap = 0;
  readonly maxCap: number;
  readonly seed: number;

  /** The entry records (see the layout above), through five views of one buffer. */
  i32: Int32Array;
  u32: Uint32Array;
  u16: Uint16Array;
  u8: Uint8Array;
  f64: Float64Array;

  // TCP (ip_ct_tcp): per direction (index 2e + dir) ...
  tdEnd: Uint32Array;
  tdMaxend: Uint32Array;
  tdMaxwin: Uint32Array;
  tdMaxack: Uint32Array;
  tdScale: Uint8Array;
  tdFlags: Uint8Array;
  // ... and per entry.
  lastDir: Uint8Array;
  lastIndex: Uint8Array;
  retrans: Uint8Array;
  lastWscale: Uint8Array;
  lastFlags: Uint8Array;
  lastSeq: Uint32Array;
  lastAck: Uint32Array;
  lastEnd: Uint32Array;
  lastWin: Uint16Array;

  /** Hash table of tuple nodes; power-of-two size. */
  buckets: Int32Array;
  bucketMask = 0;
  /** By-source NAT table of entries; power-of-two size. */
  srcBuckets: Int32Array;
  srcMask = 0;

  freeHead = -1;
  /** Entries [0, highWater) have been handed out at least once. */
  highWater = 0;
  /** Entries allocated (confirmed, unconfirmed, dying). */
  allocated = 0;
  /** Entries in the hash table. */
  confirmed = 0;

  constructor(maxCap: number, seed: number) {
    this.maxCap = maxCap;
    this.seed = seed | 0;
    const c = Math.min(INITIAL_CAPACITY, maxCap);
    this.i32 = new Int32Array(0);
    this.u32 = new Uint32Array(0);
    this.u16 = new Uint16Array(0);
    this.u8 = new Uint8Array(0);
    this.f64 = new Float64Array(0);
    this.tdEnd = new Uint32Array(0);
    this.tdMaxend = new Uint32Array(0);
    this.tdMaxwin = new Uint32Array(0);
    this.tdMaxack = new Uint32Array(0);
    this.tdScale = new Uint8Array(0);
    this.tdFlags = new Uint8Array(0);
    this.lastDir = new Uint8Array(0);
    this.lastIndex = new Uint8Array(0);
    this.retrans = new Uint8Array(0);
    this.lastWscale = new Uint8Array(0);
    this.lastFlags = new Uint8Array(0);
    this.lastSeq = new Uint32Array(0);
    this.lastAck = new Uint32Array(0);
    this.lastEnd = new Uint32Array(0);
    this.lastWin = new Uint16Array(0);
    this.buckets = new Int32Array(0);
    this.srcBuckets = new Int32Array(0);
    this.resize(c);
  }

  /** Bytes held by the typed arrays (for stats and the benchmark). */
  byteSize(): number {
    let n = 0;
    for (const a of [
      this.i32,
      this.tdEnd,
      this.tdMaxend,
      this.tdMaxwin,
      this.tdMaxack,
      this.tdScale,
      this.tdFlags,
      this.lastDir,
      this.lastIndex,
      this.retrans,
      this.lastWscale,
      this.lastFlags,
      this.lastSeq,
      this.lastAck,
      this.lastEnd,
      this.lastWin,
      this.buckets,
      this.srcBuckets,
    ]) {
      n += a.byteLength;
    }
    return n;
  }

  private resize(cap: number): void {
    const n2 = cap * 2;
    const rec = new ArrayBuffer(cap * 64);
    new Int32Array(rec).set(this.i32);
    this.i32 = new Int32Array(rec);
    this.u32 = new Uint32Array(rec);
    this.u16 = new Uint16Array(rec);
    this.u8 = new Uint8Array(rec);
    this.f64 = new Float64Array(rec);
    this.tdEnd = grown(this.tdEnd, n2);
    this.tdMaxend = grown(this.tdMaxend, n2);
    this.tdMaxwin = grown(this.tdMaxwin, n2);
    this.tdMaxack = grown(this.tdMaxack, n2);
    this.tdScale = grown(this.tdScale, n2);
    this.tdFlags = grown(this.tdFlags, n2);
    this.lastDir = grown(this.lastDir, cap);
    this.lastIndex = grown(this.lastIndex, cap);
    this.retrans = grown(this.retrans, cap);
    this.lastWscale = grown(this.lastWscale, cap);
    this.lastFlags = grown(this.lastFlags, cap);
    this.lastSeq = grown(this.lastSeq, cap);
    this.lastAck = grown(this.lastAck, cap);
    this.lastEnd = grown(this.lastEnd, cap);
    this.lastWin = grown(this.lastWin, cap);
    this.cap = cap;
    const nb = nextPow2(n2);
    if (nb !== this.buckets.length) {
      this.buckets = new Int32Array(nb).fill(-1);
      this.bucketMask = nb - 1;
      this.srcBuckets = new Int32Array(nb >>> 1).fill(-1);
      this.srcMask = (nb >>> 1) - 1;
      this.rehash();
    }
  }

  private rehash(): void {
    const u16 = this.u16;
    for (let e = 0; e < this.highWater; e++) {
      const st = u16[e * 32 + H_STATUS];
      if ((st & ST_CONFIRMED) !== 0 && (st & ST_DYING) === 0) {
        this.linkNode(2 * e);
        this.linkNode(2 * e + 1);
      }
      if ((st & ST_BYSRC) !== 0) this.linkSrcRaw(e);
    }
  }

  /** Bucket of a tuple. */
  bucketOf(src: number, dst: number, ports: number, proto: number): number {
    return hashWords(this.seed, src, dst, ports, proto) & this.bucketMask;
  }

  /** Node index of the stored tuple equal to the given one, or -1. Allocation-free. */
  find(src: number, dst: number, ports: number, proto: number): number {
    let n = this.buckets[hashWords(this.seed, src, dst, ports, proto) & this.bucketMask];
    const w = this.i32;
    const b8 = this.u8;
    while (n >= 0) {
      const r = (n << 3) - ((n & 1) << 2);
      if (
        w[r] === src &&
        w[r + 1] === dst &&
        w[r + 2] === ports &&
        b8[((n >> 1) << 6) + B_PROTO] === proto
      ) {
        return n;
      }
      n = w[r + 3];
    }
    return -1;
  }

  private linkNode(node: number): void {
    const b =
      hashWords(
        this.seed,
        this.i32[nodeBase(node)],
        this.i32[nodeBase(node) + 1],
        this.i32[nodeBase(node) + 2],
        this.u8[(node >> 1) * 64 + B_PROTO],
      ) & this.bucketMask;
    this.i32[nodeBase(node) + 3] = this.buckets[b];
    this.buckets[b] = node;
  }

  private unlinkNode(node: number): void {
    const b =
      hashWords(
        this.seed,
        this.i32[nodeBase(node)],
        this.i32[nodeBase(node) + 1],
        this.i32[nodeBase(node) + 2],
        this.u8[(node >> 1) * 64 + B_PROTO],
      ) & this.bucketMask;
    let n = this.buckets[b];
    if (n === node) {
      this.buckets[b] = this.i32[nodeBase(node) + 3];
      return;
    }
    while (n >= 0) {
      const next = this.i32[nodeBase(n) + 3];
      if (next === node) {
        this.i32[nodeBase(n) + 3] = this.i32[nodeBase(node) + 3];
        return;
      }
      n = next;
    }
  }

  /** Puts both tuples of `e` into the hash table. */
  insert(e: number): void {
    this.linkNode(2 * e);
    this.linkNode(2 * e + 1);
    this.confirmed++;
  }

  /** Takes both tuples of `e` out of the hash table. */
  unhash(e: number): void {
    this.unlinkNode(2 * e);
    this.unlinkNode(2 * e + 1);
    this.confirmed--;
  }

  srcBucketOf(src: number, sportWord: number, proto: number): number {
    return hashWords(this.seed ^ 0x5bd1e995, src, sportWord, proto, 0) & this.srcMask;
  }

  private linkSrcRaw(e: number): void {
    const b = this.srcBucketOf(
      this.i32[16 * e],
      this.i32[16 * e + 2] >>> 16,
      this.u8[e * 64 + B_PROTO],
    );
    this.i32[e * 16 + W_SRCNEXT] = this.srcBuckets[b];
    this.srcBuckets[b] = e;
  }

  /** Adds `e` (its ORIGINAL source) to the by-source NAT table. */
  linkSrc(e: number): void {
    if ((this.u16[e * 32 + H_STATUS] & ST_BYSRC) !== 0) return;
    this.linkSrcRaw(e);
    this.u16[e * 32 + H_STATUS] |= ST_BYSRC;
  }

  unlinkSrc(e: number): void {
    if ((this.u16[e * 32 + H_STATUS] & ST_BYSRC) === 0) return;
    const b = this.srcBucketOf(
      this.i32[16 * e],
      this.i32[16 * e + 2] >>> 16,
      this.u8[e * 64 + B_PROTO],
    );
    let n = this.srcBuckets[b];
    if (n === e) this.srcBuckets[b] = this.i32[e * 16 + W_SRCNEXT];
    else {
      while (n >= 0) {
        const next = this.i32[n * 16 + W_SRCNEXT];
        if (next === e) {
          this.i32[n * 16 + W_SRCNEXT] = this.i32[e * 16 + W_SRCNEXT];
          break;
        }
        n = next;
      }
    }
    this.u16[e * 32 + H_STATUS] &= ~ST_BYSRC;
  }

  /** A fresh entry (status ST_USED, TCP state cleared), or -1 when the arrays are at maxCap. */
  alloc(): number {
    let e = this.freeHead;
    if (e >= 0) {
      this.freeHead = this.i32[16 * e + 3];
    } else {
      if (this.highWater >= this.cap) {
        if (this.cap >= this.maxCap) return -1;
        this.resize(Math.min(this.maxCap, Math.max(this.cap * 2, INITIAL_CAPACITY)));
      }
      e = this.highWater++;
    }
    this.allocated++;
    this.u16[e * 32 + H_STATUS] = ST_USED;
    this.u32[e * 16 + W_MARK] = 0;
    this.f64[e * 8 + D_EXPIRES] = 0;
    this.f64[e * 8 + D_STAMP] = 0;
    this.u16[e * 32 + H_OUTIF] = 0;
    this.i32[e * 16 + W_SRCNEXT] = -1;
    this.i32[16 * e + 3] = -1;
    this.i32[16 * e + 7] = -1;
    this.resetTcp(e);
    return e;
  }

  /** Zeroes the TCP tracking state of `e` (tcp_new's memset). */
  resetTcp(e: number): void {
    this.u8[e * 64 + B_TCPSTATE] = 0;
    for (let d = 2 * e; d < 2 * e + 2; d++) {
      this.tdEnd[d] = 0;
      this.tdMaxend[d] = 0;
      this.tdMaxwin[d] = 0;
      this.tdMaxack[d] = 0;
      this.tdScale[d] = 0;
      this.tdFlags[d] = 0;
    }
    this.lastDir[e] = 0;
    this.lastIndex[e] = 0;
    this.retrans[e] = 0;
    this.lastWscale[e] = 0;
    this.lastFlags[e] = 0;
    this.lastSeq[e] = 0;
    this.lastAck[e] = 0;
    this.lastEnd[e] = 0;
    this.lastWin[e] = 0;
  }

  /** Returns `e` to the free list. It must be out of both hash tables. */
  free(e: number): void {
    this.u16[e * 32 + H_STATUS] = 0;
    this.i32[16 * e + 3] = this.freeHead;
    this.freeHead = e;
    this.allocated--;
  }
}
