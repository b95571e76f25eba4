// Loads build/Release/kubewire_tap.node (built by node-gyp from binding.gyp at the repo root).

import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNativeAddon, lazyNativeAddon } from '../util/native-addon.js';

/** Counters kept by the native handle. */
export interface TapStats {
  /** Frames handed to JavaScript. */
  rxFrames: number;
  rxBytes: number;
  /** onBatch calls. */
  rxBatches: number;
  /** Frames longer than maxFrameBytes, dropped. */
  rxTruncated: number;
  /** Largest batch handed to JavaScript so far. */
  rxMaxBatch: number;
  txFrames: number;
  txBytes: number;
  /** Frames dropped by writeBatch because the kernel side is down (EIO). */
  txDropped: number;
  /** Writes refused with EAGAIN / ENOBUFS. */
  txAgain: number;
}

export type NativeBatchHandler = (buf: Buffer, offsets: Uint32Array, count: number) => void;

/** The object made by the addon's TapHandle constructor (src/tap/native/tap.cc). */
export interface NativeTapHandle {
  readonly name: string;
  readonly fd: number;
  readonly vnetHdrBytes: number;
  readonly arena: Buffer;
  readonly offsets: Uint32Array;
  start(onBatch: NativeBatchHandler, onError: ((err: NodeJS.ErrnoException) => void) | null): void;
  stop(): void;
  close(): void;
  write(buf: Uint8Array, offset: number, length: number): boolean;
  writeBatch(buf: Uint8Array, offsets: Uint32Array, count: number, aux?: Uint8Array): number;
  setOffload(flags: number): void;
  ref(): void;
  unref(): void;
  stats(): TapStats;
  droppedWrites(): number;
}

/** Counters kept by a packet socket handle. */
export interface PacketSocketStats {
  txFrames: number;
  txBytes: number;
  /** sendmmsg refused with EAGAIN / ENOBUFS (the batch stopped there). */
  txAgain: number;
  /** Frames dropped because the interface is down. */
  txDropped: number;
}

/** The object made by the addon's PacketSocketHandle constructor (src/tap/native/packet.cc). */
export interface NativePacketSocketHandle {
  readonly fd: number;
  writeBatch(buf: Uint8Array, offsets: Uint32Array, count: number, aux?: Uint8Array): number;
  close(): void;
  stats(): PacketSocketStats;
}

export interface NativeTapBinding {
  PacketSocketHandle: new (
    ifname: string,
    vnetHdr: boolean,
    sndbufBytes: number,
  ) => NativePacketSocketHandle;
  TapHandle: new (
    name: string,
    flags: number,
    arenaBytes: number,
    maxFrameBytes: number,
    maxBatch: number,
  ) => NativeTapHandle;
}

/**
 * Finds the addon: $KUBEWIRE_TAP_ADDON if set, else build/Release/kubewire_tap.node in
 * the nearest ancestor of this file's directory that has one.
 */
export function findAddon(startDir: string = dirname(fileURLToPath(import.meta.url))): string {
  return findNativeAddon('kubewire_tap.node', 'KUBEWIRE_TAP_ADDON', startDir);
}

/** Loads the addon once (lazily, so importing this module never needs the native build). */
export const loadBinding: () => NativeTapBinding = lazyNativeAddon(() => findAddon());
