import type { GroOutput, TcpGro } from './gro.js';
import type { CaptureHook } from './pcap.js';

/**
 * In a writeBatch pair, a length with this bit set is one more part of the frame of the
 * pairs before it (a gathered frame, written with one writev). The TAP addon's
 * WRITE_CONTINUES.
 */
export const FRAME_CONTINUES = 0x80000000;
/** In a writeBatch pair, a start with this bit set lies in `aux`. The TAP addon's WRITE_AUX. */
export const FRAME_AUX = 0x80000000;

/** Where an interface's outgoing frames go: a TAP device in the agent, a recorder in tests. */
export interface FrameSink {
  /**
   * Writes the frames of `count` (start, length) pairs of `offsets` (a pair with
   * FRAME_CONTINUES in its length continues the previous frame; one with FRAME_AUX in its
   * start lies in `aux`); returns the frames written.
   */
  writeBatch(buf: Buffer, offsets: Uint32Array, count: number, aux?: Buffer): number;
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

/** (offset, length) pairs queued per write batch; a gathered frame takes one per part. */
const TX_PAIRS = 256;

/**
 * One of the agent's interfaces. Outgoing frames are queued as (offset, length)
 * views into the buffer they already live in — usually the receive arena of
 * the TAP they came from, or the forwarder's scratch buffer (a batch may refer
 * to two buffers) — and written in one batch when the receive batch ends, so
 * forwarding copies nothing and makes one native call per batch. A frame may
 * be gathered from parts: with GRO (links into a Linux stack) consecutive TCP
 * segments of a flow leave as one offloaded frame made of them (see gro.ts),
 * and segments cut before IPIP are their headers followed by their payload.
 */
export class NetInterface implements GroOutput {
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
  /** Receive offload for what this interface sends (set by the forwarder), or null. */
  gro: TcpGro | null = null;
  /** The buffers the queued pairs refer to (the second with FRAME_AUX in their start). */
  private txBuf: Buffer | null = null;
  private txAux: Buffer | null = null;
  private readonly txOffsets = new Uint32Array(TX_PAIRS * 2);
  /** Pairs queued, and the frames they make. */
  private txCount = 0;
  private txFrames = 0;

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
    if (this.gro !== null && this.gro.receive(buf, offset, length)) {
      this.dirty = true;
      return;
    }
    this.queueFrame(buf, offset, length);
  }

  /** Queues a frame as it is (no GRO): what GRO itself sends. */
  queueFrame(buf: Buffer, offset: number, length: number): void {
    if (this.capture !== null) this.capture(buf, offset, length);
    this.room(1, buf, buf);
    const tag = this.tagOf(buf);
    // The virtio header, when used, sits right before the frame and is written with it.
    const i = this.txCount * 2;
    this.txOffsets[i] = (offset - this.vnetHdr) | tag;
    this.txOffsets[i + 1] = length + this.vnetHdr;
    this.txCount++;
    this.txFrames++;
    this.dirty = true;
  }

  /** Queues one frame gathered from `buf[offset, offset + length)` and `parts` pairs of `pairs`. */
  queueGathered(
    buf: Buffer,
    offset: number,
    length: number,
    pairs: Uint32Array,
    parts: number,
  ): void {
    if (this.capture !== null) this.captureGathered(buf, offset, length, pairs, parts);
    this.room(1 + parts, buf, buf);
    const tag = this.tagOf(buf);
    const o = this.txOffsets;
    let i = this.txCount * 2;
    o[i] = (offset - this.vnetHdr) | tag;
    o[i + 1] = length + this.vnetHdr;
    for (let k = 0; k < parts * 2; k += 2) {
      i += 2;
      o[i] = pairs[k]! | tag;
      o[i + 1] = pairs[k + 1]! | FRAME_CONTINUES;
    }
    this.txCount += 1 + parts;
    this.txFrames++;
    this.dirty = true;
  }

  /**
   * Queues one frame made of headers `head[offset, offset + length)` (virtio header
   * before them) and a payload `payload[start, start + size)`, which may lie in
   * another buffer: a segment cut from a larger one without copying its payload.
   */
  queueHeadAndPayload(
    head: Buffer,
    offset: number,
    length: number,
    payload: Buffer,
    start: number,
    size: number,
  ): void {
    if (this.capture !== null) {
      const frame = Buffer.concat([
        head.subarray(offset, offset + length),
        payload.subarray(start, start + size),
      ]);
      this.capture(frame, 0, frame.length);
    }
    this.room(2, head, payload);
    const o = this.txOffsets;
    const i = this.txCount * 2;
    o[i] = (offset - this.vnetHdr) | this.tagOf(head);
    o[i + 1] = length + this.vnetHdr;
    o[i + 2] = start | this.tagOf(payload);
    o[i + 3] = size | FRAME_CONTINUES;
    this.txCount += 2;
    this.txFrames++;
    this.dirty = true;
  }

  /**
   * Makes room in the queue for `pairs` more pairs referring to buffers `a` and
   * `b`: what is queued is written first if the queue is full or would need a
   * third buffer.
   */
  private room(pairs: number, a: Buffer, b: Buffer): void {
    if (this.txCount > 0) {
      let buffers = this.txAux === null ? 1 : 2;
      if (a !== this.txBuf && a !== this.txAux) buffers++;
      if (b !== a && b !== this.txBuf && b !== this.txAux) buffers++;
      if (this.txCount + pairs > TX_PAIRS || buffers > 2) this.writeQueued();
    }
    this.adopt(a);
    this.adopt(b);
  }

  private adopt(buf: Buffer): void {
    if (this.txBuf === null) this.txBuf = buf;
    else if (buf !== this.txBuf && this.txAux === null) this.txAux = buf;
  }

  /** How pairs in `buf` are marked: 0 for the first buffer, FRAME_AUX for the second. */
  private tagOf(buf: Buffer): number {
    return buf === this.txBuf ? 0 : FRAME_AUX;
  }

  /** Sends what GRO holds, then writes every queued frame. */
  flush(): void {
    if (this.gro !== null) this.gro.flush();
    this.writeQueued();
  }

  private writeQueued(): void {
    const count = this.txCount;
    if (count === 0) return;
    const frames = this.txFrames;
    this.txCount = 0;
    this.txFrames = 0;
    this.dirty = false;
    const buf = this.txBuf!;
    const aux = this.txAux;
    this.txBuf = null;
    this.txAux = null;
    if (!this.sink || !this.up) {
      this.counters.txDropped += frames;
      return;
    }
    const o = this.txOffsets;
    let written: number;
    try {
      written =
        aux === null
          ? this.sink.writeBatch(buf, o, count)
          : this.sink.writeBatch(buf, o, count, aux);
    } catch {
      written = 0;
    }
    this.counters.txPackets += written;
    this.counters.txDropped += frames - written;
    // Bytes of the frames written (the device stops at the first it refuses).
    let bytes = 0;
    for (let i = 0, seen = 0; i < count; i++) {
      const len = o[i * 2 + 1]!;
      if (len >= FRAME_CONTINUES) {
        bytes += len - FRAME_CONTINUES;
        continue;
      }
      if (seen++ === written) break;
      bytes += len - this.vnetHdr;
    }
    this.counters.txBytes += bytes;
  }

  /** A capture sees a gathered frame whole (a copy: captures are rare). */
  private captureGathered(
    buf: Buffer,
    offset: number,
    length: number,
    pairs: Uint32Array,
    parts: number,
  ): void {
    let total = length;
    for (let k = 0; k < parts; k++) total += pairs[2 * k + 1]!;
    const frame = Buffer.allocUnsafe(total);
    let at = buf.copy(frame, 0, offset, offset + length);
    for (let k = 0; k < parts; k++) {
      const start = pairs[2 * k]!;
      at += buf.copy(frame, at, start, start + pairs[2 * k + 1]!);
    }
    this.capture!(frame, 0, total);
  }
}
