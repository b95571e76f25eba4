import type { CaptureHook } from './pcap.js';

/** Where an interface's outgoing frames go: a TAP device in the agent, a recorder in tests. */
export interface FrameSink {
  writeBatch(buf: Buffer, offsets: Uint32Array, count: number): number;
  write(buf: Buffer, offset?: number, length?: number): boolean;
}

/**
 * What an interface is for, which decides how the agent answers ARP on it:
 * - pod: the host side of a pod's link (Calico's caliXXXX); proxy ARP for everything.
 * - host: the link to the node's own kernel stack (processes "on the node"); proxy ARP too.
 * - underlay: the node's uplink (eth0); ARP only for addresses the node owns or announces.
 * - tunnel: tunl0, no link layer.
 */
export type InterfaceKind = 'pod' | 'host' | 'underlay' | 'tunnel';

export interface InterfaceCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Frames the device refused (kernel side down, queue full). */
  txDropped: number;
}

const TX_BATCH = 256;

/**
 * One of the agent's interfaces. Outgoing frames are queued as (offset, length)
 * views into the buffer they already live in — usually the receive arena of
 * the TAP they came from — and written in one batch when the receive batch
 * ends, so forwarding copies nothing and makes one native call per batch.
 */
export class NetInterface {
  readonly counters: InterfaceCounters = {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    txDropped: 0,
  };
  /** Set when frames are queued; the forwarder flushes dirty interfaces at the end of a batch. */
  dirty = false;
  up = true;
  /** Virtio header bytes in front of each frame written (set by the forwarder). */
  vnetHdr = 0;
  /** Set while `kubewire pcap` captures this interface: sees every frame in and out. */
  capture: CaptureHook = null;
  private txBuf: Buffer | null = null;
  private readonly txOffsets = new Uint32Array(TX_BATCH * 2);
  private txCount = 0;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly kind: InterfaceKind,
    /** The agent's MAC on this link (ee:ee:ee:ee:ee:ee on pod links, as Calico). */
    readonly mac: Buffer,
    public mtu: number,
    public sink: FrameSink | null,
  ) {}

  /** Queues a frame for transmission. The buffer must stay untouched until flush(). */
  enqueue(buf: Buffer, offset: number, length: number): void {
    if (this.capture !== null) this.capture(buf, offset, length);
    if (this.txCount > 0 && (this.txBuf !== buf || this.txCount === TX_BATCH)) this.flush();
    this.txBuf = buf;
    // The virtio header, when used, sits right before the frame and is written with it.
    this.txOffsets[this.txCount * 2] = offset - this.vnetHdr;
    this.txOffsets[this.txCount * 2 + 1] = length + this.vnetHdr;
    this.txCount++;
    this.dirty = true;
  }

  flush(): void {
    const count = this.txCount;
    if (count === 0) return;
    this.txCount = 0;
    this.dirty = false;
    const buf = this.txBuf!;
    this.txBuf = null;
    if (!this.sink || !this.up) {
      this.counters.txDropped += count;
      return;
    }
    let written: number;
    try {
      written = this.sink.writeBatch(buf, this.txOffsets, count);
    } catch {
      written = 0;
    }
    this.counters.txPackets += written;
    this.counters.txDropped += count - written;
    // Bytes of the frames written (the device stops at the first it refuses).
    for (let i = 0; i < written; i++)
      this.counters.txBytes += this.txOffsets[i * 2 + 1]! - this.vnetHdr;
  }
}
