// Loads build/Release/kubewire_udp.node (built by node-gyp from binding.gyp at the repo root).

import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNativeAddon, lazyNativeAddon } from '../util/native-addon.js';

/** Counters kept by the native handle. */
export interface UdpStats {
  /** Datagrams handed to JavaScript. */
  rxDatagrams: number;
  rxBytes: number;
  /** onBatch calls (one recvmmsg each). */
  rxBatches: number;
  /** Datagrams longer than slotBytes, cut to it. */
  rxTruncated: number;
  /** Largest batch handed to JavaScript so far. */
  rxMaxBatch: number;
  /** Transient receive errors (ENOMEM, ENOBUFS, an ICMP error for an earlier datagram). */
  rxErrors: number;
  txDatagrams: number;
  txBytes: number;
  /** sendmmsg / sendto calls. */
  txCalls: number;
  /** Datagrams the kernel refused one by one (EMSGSIZE, EHOSTUNREACH, EPERM, bad peer, …). */
  txErrors: number;
  /** Datagrams not sent because the socket's send buffer was full (EAGAIN / ENOBUFS). */
  txAgain: number;
}

export type NativeDatagramHandler = (
  arena: Buffer,
  meta: Uint32Array,
  peers: Uint32Array,
  count: number,
) => void;

/** The object made by the addon's UdpHandle constructor (src/udp/native/udp.cc). */
export interface NativeUdpHandle {
  readonly fd: number;
  readonly family: 4 | 6;
  readonly port: number;
  readonly arena: Buffer;
  readonly meta: Uint32Array;
  readonly peers: Uint32Array;
  start(
    onBatch: NativeDatagramHandler,
    onError: ((err: NodeJS.ErrnoException) => void) | null,
  ): void;
  stop(): void;
  close(): void;
  send(
    buf: Uint8Array,
    offset: number,
    length: number,
    peers: Uint32Array,
    peerIndex: number,
  ): boolean;
  sendBatch(buf: Uint8Array, meta: Uint32Array, peers: Uint32Array, count: number): number;
  ref(): void;
  unref(): void;
  stats(): UdpStats;
}

export interface NativeUdpBinding {
  UdpHandle: new (
    host: string,
    port: number,
    slotBytes: number,
    maxBatch: number,
    recvBufferSize: number,
    sendBufferSize: number,
  ) => NativeUdpHandle;
}

/**
 * Finds the addon: $KUBEWIRE_UDP_ADDON if set, else build/Release/kubewire_udp.node in
 * the nearest ancestor of this file's directory that has one.
 */
export function findUdpAddon(startDir: string = dirname(fileURLToPath(import.meta.url))): string {
  return findNativeAddon('kubewire_udp.node', 'KUBEWIRE_UDP_ADDON', startDir);
}

/** Loads the addon once (lazily, so importing this module never needs the native build). */
export const loadUdpBinding: () => NativeUdpBinding = lazyNativeAddon(() => findUdpAddon());
