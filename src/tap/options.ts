// Pure option handling for TapDevice.open (no native code; unit-tested).

/** Options of {@link TapDevice.open}. */
export interface TapOpenOptions {
  /**
   * Open with IFF_VNET_HDR: every frame read or written is preceded by a 10-byte
   * `struct virtio_net_hdr` (needed for checksum/segmentation offloads, see setOffload).
   * Default false.
   */
  vnetHdr?: boolean;
  /**
   * Open with IFF_MULTI_QUEUE so the same device can be opened again (same name, same options),
   * one queue per fd, e.g. one per worker thread. Default false.
   */
  multiQueue?: boolean;
  /**
   * Size of the reusable read arena in bytes; must exceed maxFrameBytes. A wake-up reads frames
   * while a frame of maxFrameBytes still fits. Default 1 MiB (or 2 × maxFrameBytes if larger).
   */
  arenaBytes?: number;
  /**
   * Largest frame read, including the virtio header when vnetHdr is set. A larger frame is
   * dropped (the kernel would truncate it) and counted in stats().rxTruncated. Default 9234 (9216-byte jumbo MTU + 14-byte
   * Ethernet header + one 4-byte VLAN tag); with vnetHdr 65552 (64 KiB GSO frame + VLAN tag +
   * 12-byte virtio header).
   */
  maxFrameBytes?: number;
  /** Maximum frames handed to JavaScript per wake-up. Default 256. */
  maxBatch?: number;
}

/** Options after defaults and validation. */
export interface ResolvedTapOptions {
  vnetHdr: boolean;
  multiQueue: boolean;
  arenaBytes: number;
  maxFrameBytes: number;
  maxBatch: number;
}

export const DEFAULT_ARENA_BYTES = 1 << 20;
export const DEFAULT_MAX_FRAME_BYTES = 9216 + 14 + 4;
export const DEFAULT_MAX_FRAME_BYTES_VNET = 65536 + 4 + 12;
export const DEFAULT_MAX_BATCH = 256;
export const MIN_FRAME_BYTES = 64;
export const MAX_FRAME_BYTES = 0xffffff;
export const MAX_ARENA_BYTES = 1 << 30;
export const MAX_BATCH_LIMIT = 1 << 20;
/** Longest interface name (IFNAMSIZ - 1). */
export const MAX_IFNAME_BYTES = 15;

/** Offload flags for setOffload (linux/if_tun.h TUN_F_*). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;

/**
 * writeBatch: a pair whose length has this bit set is one more part of the frame of the pair
 * before it (gather: the frame is written with one writev of its parts).
 */
export const WRITE_CONTINUES = 0x80000000;
/** writeBatch: a pair whose start has this bit set lies in the second buffer (`aux`). */
export const WRITE_AUX = 0x80000000;
/** Most parts of one gathered frame (IOV_MAX). */
export const WRITE_MAX_PARTS = 1024;

/** Flag bits understood by the native constructor. */
export const NATIVE_FLAG_VNET_HDR = 1;
export const NATIVE_FLAG_MULTI_QUEUE = 2;

function intOption(
  opts: TapOpenOptions,
  key: 'arenaBytes' | 'maxFrameBytes' | 'maxBatch',
  dflt: number,
  min: number,
  max: number,
): number {
  const v = opts[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TypeError(`TapOpenOptions.${key} must be an integer, got ${String(v)}`);
  }
  if (v < min || v > max) {
    throw new RangeError(`TapOpenOptions.${key} must be in [${min}, ${max}], got ${v}`);
  }
  return v;
}

function boolOption(opts: TapOpenOptions, key: 'vnetHdr' | 'multiQueue'): boolean {
  const v = opts[key];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') {
    throw new TypeError(`TapOpenOptions.${key} must be a boolean, got ${String(v)}`);
  }
  return v;
}

/** Applies defaults and checks ranges; throws TypeError / RangeError. */
export function resolveTapOptions(opts: TapOpenOptions = {}): ResolvedTapOptions {
  if (typeof opts !== 'object' || opts === null) {
    throw new TypeError('TapOpenOptions must be an object');
  }
  const vnetHdr = boolOption(opts, 'vnetHdr');
  const multiQueue = boolOption(opts, 'multiQueue');
  const maxFrameBytes = intOption(
    opts,
    'maxFrameBytes',
    vnetHdr ? DEFAULT_MAX_FRAME_BYTES_VNET : DEFAULT_MAX_FRAME_BYTES,
    MIN_FRAME_BYTES,
    MAX_FRAME_BYTES,
  );
  // Reads ask for maxFrameBytes + 1 bytes (to detect oversized frames), so the arena must be
  // larger than one maximal frame.
  const arenaBytes = intOption(
    opts,
    'arenaBytes',
    Math.max(DEFAULT_ARENA_BYTES, 2 * maxFrameBytes),
    maxFrameBytes + 1,
    MAX_ARENA_BYTES,
  );
  const maxBatch = intOption(opts, 'maxBatch', DEFAULT_MAX_BATCH, 1, MAX_BATCH_LIMIT);
  return { vnetHdr, multiQueue, arenaBytes, maxFrameBytes, maxBatch };
}

/** Checks an interface name for TUNSETIFF: "" (kernel picks tapN), at most 15 bytes, no '/'. */
export function validateTapName(name: string): void {
  if (typeof name !== 'string') throw new TypeError('TAP name must be a string');
  if (Buffer.byteLength(name) > MAX_IFNAME_BYTES) {
    throw new RangeError(`TAP name "${name}" is longer than ${MAX_IFNAME_BYTES} bytes`);
  }
  if (/[/\s:]/.test(name) || name === '.' || name === '..') {
    throw new RangeError(`TAP name "${name}" is not a valid interface name`);
  }
}

/** Bits for the native constructor. */
export function nativeFlags(o: ResolvedTapOptions): number {
  return (o.vnetHdr ? NATIVE_FLAG_VNET_HDR : 0) | (o.multiQueue ? NATIVE_FLAG_MULTI_QUEUE : 0);
}
