// A transmit-only packet socket on an interface, for frames the agent sends on the node's uplink.

import { loadBinding, type NativePacketSocketHandle, type PacketSocketStats } from './binding.js';

export type { PacketSocketStats } from './binding.js';

export interface PacketSocketOptions {
  /** Frames start with a 10-byte virtio_net_hdr (PACKET_VNET_HDR), as on a TAP opened with vnetHdr. */
  vnetHdr?: boolean;
  /** Socket send buffer (SO_SNDBUFFORCE); 0 keeps the default. */
  sndbufBytes?: number;
}

/**
 * An AF_PACKET socket bound to one interface that only transmits: frames go
 * straight into the interface's transmit path (tcpdump on it still sees them),
 * many per system call (sendmmsg). `writeBatch` takes frames exactly as
 * {@link TapDevice.writeBatch} does — (start, length) pairs, gathered parts,
 * a second buffer — so an interface can use either as its sink.
 */
export class PacketSocket {
  readonly fd: number;
  readonly ifname: string;
  readonly #handle: NativePacketSocketHandle;
  #closed = false;

  private constructor(ifname: string, handle: NativePacketSocketHandle) {
    this.ifname = ifname;
    this.#handle = handle;
    this.fd = handle.fd;
  }

  /** Opens the socket on `ifname` (needs CAP_NET_RAW; a TapError-like error otherwise). */
  static open(ifname: string, opts: PacketSocketOptions = {}): PacketSocket {
    const { PacketSocketHandle } = loadBinding();
    const handle = new PacketSocketHandle(ifname, opts.vnetHdr ?? false, opts.sndbufBytes ?? 0);
    return new PacketSocket(ifname, handle);
  }

  /**
   * Sends the frames of `count` pairs (see TapDevice.writeBatch for the format); returns the
   * frames sent. Stops at EAGAIN / ENOBUFS; frames refused because the interface is down are
   * dropped and counted; other errors throw.
   */
  writeBatch(buf: Uint8Array, offsets: Uint32Array, count: number, aux?: Uint8Array): number {
    return aux === undefined
      ? this.#handle.writeBatch(buf, offsets, count)
      : this.#handle.writeBatch(buf, offsets, count, aux);
  }

  /** Sends one frame; false if the socket could not take it now. */
  write(buf: Uint8Array, offset = 0, length: number = buf.length - offset): boolean {
    return this.#handle.writeBatch(buf, Uint32Array.of(offset, length), 1) === 1;
  }

  stats(): PacketSocketStats {
    return this.#handle.stats();
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close();
  }
}
