// TAP devices with batched, event-driven reads. See README.md for the batch/arena contract.

import { loadBinding, type NativeTapHandle, type TapStats } from './binding.js';
import {
  nativeFlags,
  resolveTapOptions,
  validateTapName,
  type ResolvedTapOptions,
  type TapOpenOptions,
} from './options.js';

export type { TapStats } from './binding.js';
export { PacketSocket, type PacketSocketOptions, type PacketSocketStats } from './packet.js';
export { findAddon } from './binding.js';
export {
  DEFAULT_ARENA_BYTES,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_FRAME_BYTES_VNET,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_UFO,
  TUN_F_USO4,
  TUN_F_USO6,
  WRITE_AUX,
  WRITE_CONTINUES,
  WRITE_MAX_PARTS,
  resolveTapOptions,
  validateTapName,
} from './options.js';
export type { ResolvedTapOptions, TapOpenOptions } from './options.js';

/**
 * Called once per wake-up with every frame read: frame i is
 * `buf.subarray(offsets[2*i], offsets[2*i] + offsets[2*i+1])`. `buf` and `offsets` are the
 * same objects on every call and are overwritten by the next wake-up: copy what you keep.
 */
/** Writable bytes guaranteed in front of every received frame in the arena (see README). */
export const TAP_FRAME_HEADROOM = 64;

export type FrameBatchHandler = (buf: Buffer, offsets: Uint32Array, count: number) => void;

/** Errors of this module are Node-style system errors: `.code` is the errno name. */
export type TapError = NodeJS.ErrnoException;

/** True if `err` is an Error with a string `.code` (optionally equal to `code`). */
export function isTapError(err: unknown, code?: string): err is TapError {
  if (!(err instanceof Error)) return false;
  const c = (err as TapError).code;
  return typeof c === 'string' && (code === undefined || c === code);
}

function closedError(syscall: string): TapError {
  return Object.assign(new Error(`EBADF: TAP device is closed, ${syscall}`), {
    code: 'EBADF',
    errno: -9,
    syscall,
  });
}

export class TapDevice {
  /** The name the kernel gave the device at open time (it may be renamed or moved later). */
  readonly name: string;
  /** The /dev/net/tun file descriptor (non-blocking, close-on-exec). */
  readonly fd: number;
  /** Bytes of virtio header before every frame: 10 with vnetHdr, else 0. */
  readonly vnetHdrBytes: number;
  /** The effective options. */
  readonly options: Readonly<ResolvedTapOptions>;
  /** The read arena passed to every onBatch call (reused). */
  readonly arena: Buffer;
  /** The (start, length) pairs passed to every onBatch call (reused). */
  readonly offsets: Uint32Array;

  readonly #handle: NativeTapHandle;
  #closed = false;

  private constructor(handle: NativeTapHandle, options: ResolvedTapOptions) {
    this.#handle = handle;
    this.name = handle.name;
    this.fd = handle.fd;
    this.vnetHdrBytes = handle.vnetHdrBytes;
    this.arena = handle.arena;
    this.offsets = handle.offsets;
    this.options = Object.freeze({ ...options });
  }

  /**
   * Creates (or attaches to) the TAP `name` with TUNSETIFF (IFF_TAP | IFF_NO_PI). `name` may be
   * "" or contain "%d" to let the kernel choose; the result is in `.name`. Throws a TapError
   * (e.g. EPERM without CAP_NET_ADMIN, EBUSY if the name is taken by another device).
   */
  static open(name: string, opts: TapOpenOptions = {}): TapDevice {
    validateTapName(name);
    const o = resolveTapOptions(opts);
    const { TapHandle } = loadBinding();
    const handle = new TapHandle(name, nativeFlags(o), o.arenaBytes, o.maxFrameBytes, o.maxBatch);
    return new TapDevice(handle, o);
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Frames writeBatch dropped because the kernel side was down (EIO). */
  get droppedWrites(): number {
    return this.#handle.droppedWrites();
  }

  /**
   * Starts polling: on every readable wake-up the fd is drained into the arena (until EAGAIN,
   * maxBatch frames, or less than maxFrameBytes of arena left) and `onBatch` is called once.
   * Calling start() again while started replaces the handlers. On a fatal read error (EBADFD
   * once the device is deleted, EIO, ...) polling stops and `onError` is called once with a
   * TapError; without onError the device stops silently. An exception thrown by a handler is
   * an uncaught exception (process 'uncaughtException'), as for any event callback; polling
   * continues if the process survives it.
   */
  start(onBatch: FrameBatchHandler, onError?: (err: TapError) => void): void {
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
   * Writes one frame (`buf[offset, offset+length)`, defaults: the whole buffer). Returns true if
   * written, false if the kernel refused it for now (EAGAIN / ENOBUFS); throws a TapError
   * otherwise (EIO when the device is down, EBADF after close, ...).
   */
  write(buf: Uint8Array, offset = 0, length: number = buf.length - offset): boolean {
    return this.#handle.write(buf, offset, length);
  }

  /**
   * Writes the frames described by `count` (start, length) pairs: normally frame i is
   * `buf[offsets[2*i], offsets[2*i] + offsets[2*i+1])`. A pair whose length has
   * {@link WRITE_CONTINUES} set is one more part of the frame of the pairs before it: that frame
   * is written with one writev of its parts (at most {@link WRITE_MAX_PARTS}), so it can be
   * gathered from pieces without copying them together. A pair whose start has
   * {@link WRITE_AUX} set lies in `aux` instead of `buf` (e.g. headers built in a buffer of
   * one's own in front of a payload left in the read arena). Returns the number of frames written.
   * Stops early on EAGAIN / ENOBUFS; a frame refused with EIO (device down) is dropped, counted in
   * droppedWrites, and the batch continues. Other errors throw a TapError (frames before it were
   * written). A RangeError is thrown, before anything is written, if a pair lies outside its
   * buffer (or in an `aux` not given), count exceeds offsets.length / 2, the first pair is a
   * continuation or a frame has too many parts.
   */
  writeBatch(buf: Uint8Array, offsets: Uint32Array, count: number, aux?: Uint8Array): number {
    return aux === undefined
      ? this.#handle.writeBatch(buf, offsets, count)
      : this.#handle.writeBatch(buf, offsets, count, aux);
  }

  /**
   * TUNSETOFFLOAD: tells the kernel which offloads (TUN_F_* bits) this reader handles. Only
   * valid for devices opened with vnetHdr (otherwise the kernel could hand over GSO frames
   * that cannot be described); throws EINVAL then unless flags is 0.
   */
  setOffload(flags: number): void {
    if (!this.options.vnetHdr && flags !== 0) {
      throw Object.assign(new Error('EINVAL: setOffload requires vnetHdr, ioctl(TUNSETOFFLOAD)'), {
        code: 'EINVAL',
        errno: -22,
        syscall: 'ioctl(TUNSETOFFLOAD)',
      });
    }
    this.#handle.setOffload(flags);
  }

  /** Counters (frames/bytes read and written, batches, drops). */
  stats(): TapStats {
    return this.#handle.stats();
  }

  /** Lets the event loop exit while this device is polling (like socket.unref()). */
  unref(): this {
    this.#handle.unref();
    return this;
  }

  /** Undoes unref(). */
  ref(): this {
    this.#handle.ref();
    return this;
  }

  /**
   * Stops polling and closes the fd (the kernel deletes a non-persistent device when its last
   * fd closes). Idempotent; safe from inside onBatch / onError.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close();
  }
}
