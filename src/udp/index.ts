// UDP sockets with batched I/O: one recvmmsg per wake-up, one sendmmsg per batch of replies.
// See README.md for the batch / arena contract.

import { isIP } from 'node:net';
import { loadUdpBinding, type NativeUdpHandle, type UdpStats } from './binding.js';
import { copyPeer, UDP_PEER_WORDS } from './peer.js';

export type { UdpStats } from './binding.js';
export { findUdpAddon } from './binding.js';
export {
  copyPeer,
  formatIPv6,
  parseIPv6,
  peerAddress,
  peerFamily,
  peerPort,
  UDP_META_WORDS,
  UDP_PEER_WORDS,
  writePeer,
} from './peer.js';

/** Options of {@link BatchUdpSocket.open}. */
export interface UdpOpenOptions {
  /** Numeric IPv4 or IPv6 address to bind (`0.0.0.0`, `::` — dual-stack — `127.0.0.1`). */
  host: string;
  /** Port to bind; 0 (default) lets the kernel choose (see `.port`). */
  port?: number;
  /** Datagrams read per wake-up (one recvmmsg). Default 64, at most 1024. */
  maxBatch?: number;
  /**
   * Bytes per receive slot: a longer datagram is cut to this (its wire length tells).
   * Default 4096; at most 65536.
   */
  slotBytes?: number;
  /** SO_RCVBUF (the kernel caps it at net.core.rmem_max); 0 keeps the default. Default 0. */
  recvBufferSize?: number;
  /** SO_SNDBUF (capped at net.core.wmem_max); 0 keeps the default. Default 0. */
  sendBufferSize?: number;
}

export interface ResolvedUdpOptions {
  host: string;
  port: number;
  maxBatch: number;
  slotBytes: number;
  recvBufferSize: number;
  sendBufferSize: number;
}

export const DEFAULT_UDP_MAX_BATCH = 64;
export const DEFAULT_UDP_SLOT_BYTES = 4096;
export const MAX_UDP_BATCH = 1024;
export const MIN_UDP_SLOT_BYTES = 12;
export const MAX_UDP_SLOT_BYTES = 65536;

function intOption(
  v: number | undefined,
  key: string,
  dflt: number,
  min: number,
  max: number,
): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TypeError(`UdpOpenOptions.${key} must be an integer, got ${String(v)}`);
  }
  if (v < min || v > max) {
    throw new RangeError(`UdpOpenOptions.${key} must be in [${min}, ${max}], got ${v}`);
  }
  return v;
}

/** Applies defaults and validates (TypeError / RangeError); pure. */
export function resolveUdpOptions(opts: UdpOpenOptions): ResolvedUdpOptions {
  if (typeof opts.host !== 'string' || isIP(opts.host) === 0) {
    throw new TypeError(
      `UdpOpenOptions.host must be a numeric IP address, got ${JSON.stringify(opts.host)}`,
    );
  }
  return {
    host: opts.host,
    port: intOption(opts.port, 'port', 0, 0, 0xffff),
    maxBatch: intOption(opts.maxBatch, 'maxBatch', DEFAULT_UDP_MAX_BATCH, 1, MAX_UDP_BATCH),
    slotBytes: intOption(
      opts.slotBytes,
      'slotBytes',
      DEFAULT_UDP_SLOT_BYTES,
      MIN_UDP_SLOT_BYTES,
      MAX_UDP_SLOT_BYTES,
    ),
    recvBufferSize: intOption(opts.recvBufferSize, 'recvBufferSize', 0, 0, 0x7fffffff),
    sendBufferSize: intOption(opts.sendBufferSize, 'sendBufferSize', 0, 0, 0x7fffffff),
  };
}

/**
 * Called once per wake-up with every datagram read: datagram i is
 * `arena.subarray(meta[3*i], meta[3*i] + meta[3*i+1])`, its length on the wire `meta[3*i+2]`
 * (larger when it was cut to the slot), its sender peer i of `peers` (peerAddress, peerPort).
 * The three objects are the same on every call and are overwritten by the next wake-up:
 * copy what you keep.
 */
export type DatagramBatchHandler = (
  arena: Buffer,
  meta: Uint32Array,
  peers: Uint32Array,
  count: number,
) => void;

/** Errors of this module are Node-style system errors: `.code` is the errno name. */
export type UdpError = NodeJS.ErrnoException;

function closedError(syscall: string): UdpError {
  return Object.assign(new Error(`EBADF: socket is closed, ${syscall}`), {
    code: 'EBADF',
    errno: -9,
    syscall,
  });
}

export class BatchUdpSocket {
  readonly fd: number;
  readonly family: 4 | 6;
  /** The bound port (the kernel's choice for port 0). */
  readonly port: number;
  readonly options: Readonly<ResolvedUdpOptions>;
  /** Receive slots, passed to every onBatch call (reused). */
  readonly arena: Buffer;
  /** UDP_META_WORDS per datagram: offset, length, wire length (reused). */
  readonly meta: Uint32Array;
  /** UDP_PEER_WORDS per datagram: the senders (reused). */
  readonly peers: Uint32Array;

  readonly #handle: NativeUdpHandle;
  #closed = false;

  private constructor(handle: NativeUdpHandle, options: ResolvedUdpOptions) {
    this.#handle = handle;
    this.fd = handle.fd;
    this.family = handle.family;
    this.port = handle.port;
    this.arena = handle.arena;
    this.meta = handle.meta;
    this.peers = handle.peers;
    this.options = Object.freeze({ ...options });
  }

  /**
   * Makes a UDP socket (non-blocking, close-on-exec; IPv6 dual-stack) and binds it. Throws a
   * UdpError (`EADDRINUSE`, `EACCES`, … with `.syscall`), ENOTSUP on non-Linux hosts, or
   * MODULE_NOT_FOUND when the addon is not built.
   */
  static open(opts: UdpOpenOptions): BatchUdpSocket {
    const o = resolveUdpOptions(opts);
    const { UdpHandle } = loadUdpBinding();
    const handle = new UdpHandle(
      o.host,
      o.port,
      o.slotBytes,
      o.maxBatch,
      o.recvBufferSize,
      o.sendBufferSize,
    );
    return new BatchUdpSocket(handle, o);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Starts polling: on every readable wake-up one recvmmsg reads up to maxBatch datagrams and
   * `onBatch` is called once. Calling start() again replaces the handlers. On a fatal receive
   * error polling stops and `onError` is called once (transient errors are only counted). An
   * exception thrown by a handler is an uncaught exception, as for any event callback.
   */
  start(onBatch: DatagramBatchHandler, onError?: (err: UdpError) => void): void {
    if (typeof onBatch !== 'function') throw new TypeError('onBatch must be a function');
    if (onError !== undefined && typeof onError !== 'function') {
      throw new TypeError('onError must be a function');
    }
    if (this.#closed) throw closedError('start');
    this.#handle.start(onBatch, onError ?? null);
  }

  /** Stops polling (idempotent); start() may be called again. */
  stop(): void {
    if (!this.#closed) this.#handle.stop();
  }

  /**
   * Sends `buf[offset, offset+length)` to peer `peerIndex` of `peers` with sendto. Returns
   * false if the send buffer is full (EAGAIN / ENOBUFS); throws a UdpError otherwise.
   */
  send(
    buf: Uint8Array,
    offset: number,
    length: number,
    peers: Uint32Array,
    peerIndex: number,
  ): boolean {
    return this.#handle.send(buf, offset, length, peers, peerIndex);
  }

  /**
   * Sends `count` datagrams with sendmmsg: datagram i is `buf[meta[2*i], meta[2*i]+meta[2*i+1])`
   * to peer i of `peers`. Returns the number done: sent, or refused one by one (EMSGSIZE,
   * EHOSTUNREACH, a peer of the wrong family, …; counted in stats().txErrors). Fewer than
   * `count` means the send buffer was full: the rest was not sent (stats().txAgain). Throws a
   * RangeError before sending anything if a datagram lies outside `buf`, and a UdpError when
   * the socket itself fails (EBADF).
   */
  sendBatch(buf: Uint8Array, meta: Uint32Array, peers: Uint32Array, count: number): number {
    return this.#handle.sendBatch(buf, meta, peers, count);
  }

  stats(): UdpStats {
    return this.#handle.stats();
  }

  /** Lets the event loop exit while this socket is polling. */
  unref(): this {
    this.#handle.unref();
    return this;
  }

  ref(): this {
    this.#handle.ref();
    return this;
  }

  /** Stops polling and closes the socket. Idempotent; safe from inside onBatch / onError. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close();
  }
}

export interface TxBatchOptions {
  /** Bytes of the send arena. Default 256 KiB. */
  arenaBytes?: number;
  /** Datagrams per batch. Default 256. */
  maxDatagrams?: number;
}

/**
 * Replies gathered for one sendmmsg: push() copies a datagram and its peer into a reused
 * arena, flush() sends them all. A full batch is flushed by push(); a datagram larger than
 * the arena is sent on its own.
 */
export class TxBatch {
  readonly arena: Buffer;
  readonly meta: Uint32Array;
  readonly peers: Uint32Array;
  /** Datagrams waiting. */
  count = 0;
  /** Datagrams dropped because the send buffer was full. */
  dropped = 0;
  private used = 0;

  constructor(
    private readonly sock: BatchUdpSocket,
    opts: TxBatchOptions = {},
  ) {
    const max = opts.maxDatagrams ?? 256;
    this.arena = Buffer.allocUnsafeSlow(opts.arenaBytes ?? 256 * 1024);
    this.meta = new Uint32Array(max * 2);
    this.peers = new Uint32Array(max * UDP_PEER_WORDS);
  }

  /** Queues `data[offset, offset+length)` for peer `peerIndex` of `peers`. */
  push(
    data: Uint8Array,
    peers: Uint32Array,
    peerIndex: number,
    offset = 0,
    length = data.length - offset,
  ): void {
    if (length > this.arena.length) {
      if (this.count > 0) this.flush();
      if (!this.sock.closed && !this.sock.send(data, offset, length, peers, peerIndex)) {
        this.dropped++;
      }
      return;
    }
    if (this.count * 2 >= this.meta.length || this.used + length > this.arena.length) this.flush();
    const at = this.used;
    this.arena.set(
      offset === 0 && length === data.length ? data : data.subarray(offset, offset + length),
      at,
    );
    this.meta[this.count * 2] = at;
    this.meta[this.count * 2 + 1] = length;
    copyPeer(peers, peerIndex, this.peers, this.count);
    this.count++;
    this.used = (at + length + 7) & ~7;
  }

  /** Sends what is queued (one sendmmsg per 256); returns the number sent or refused. */
  flush(): number {
    const n = this.count;
    if (n === 0) return 0;
    this.count = 0;
    this.used = 0;
    if (this.sock.closed) {
      this.dropped += n;
      return 0;
    }
    const done = this.sock.sendBatch(this.arena, this.meta, this.peers, n);
    this.dropped += n - done;
    return done;
  }
}
