/**
 * The DNS server's UDP listeners.
 *
 * - **batched** (src/udp): one recvmmsg per wake-up reads up to 64 queries; the answers the
 *   chain computes synchronously are sent together with one sendmmsg before the wake-up ends;
 *   answers that wait (forward, upstream look-ups) go out with a later batch (at the latest
 *   in the check phase of the loop iteration they are ready in).
 * - **dgram** (node:dgram): one 'message' event and one send per query. Used when the addon
 *   is not built, on non-Linux hosts, for a host that is not an IP literal, or on request
 *   (`udpIo: 'dgram'`, `--udp-io dgram`).
 *
 * Query size: the dgram listener reads whole datagrams; the batched one reads up to 4,096
 * bytes of each (CoreDNS reads 512) and parses a longer query as cut, which is FORMERR when
 * the cut falls inside a record.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { isIP, isIPv6 } from 'node:net';
import {
  BatchUdpSocket,
  copyPeer,
  peerAddress,
  TxBatch,
  UDP_META_WORDS,
  UDP_PEER_WORDS,
} from '../udp/index.js';
import type { Logger } from '../util/log.js';
import type { MaybePromise } from './plugin.js';

/** `auto`: batched when the addon loads, else dgram. */
export type UdpIo = 'auto' | 'batched' | 'dgram';

/**
 * Answers one query (null: send nothing). `borrowed` (the batched listener): `wire` is valid
 * only during the call (the receive arena) and whatever is kept for later must be copied;
 * in return a synchronous answer may be a view of a scratch buffer, which the listener
 * copies into its send batch before the next query.
 */
export type QueryFn = (
  wire: Buffer,
  address: string,
  port: number,
  borrowed: boolean,
) => MaybePromise<Buffer | null>;

export interface DnsUdpListener {
  readonly io: 'batched' | 'dgram';
  /** The bound port. */
  readonly port: number;
  close(): Promise<void>;
}

export interface UdpListenOptions {
  io: UdpIo;
  logger: Logger;
}

/** Socket buffers asked for (the kernel caps them at rmem_max / wmem_max). */
const SOCKET_BUFFER_BYTES = 8 << 20;
/** Bytes read per query by the batched listener. */
export const DNS_UDP_SLOT_BYTES = 4096;
/** Queries read per wake-up by the batched listener. */
export const DNS_UDP_BATCH = 64;

/** Errors of the bind itself: dgram would fail the same way, so they are not a reason to fall back. */
const BIND_ERRORS = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES', 'EPERM']);

/** Binds a UDP listener on host:port that answers with `answer`. */
export async function listenUdp(
  host: string,
  port: number,
  answer: QueryFn,
  opts: UdpListenOptions,
): Promise<DnsUdpListener> {
  if (opts.io !== 'dgram') {
    let sock: BatchUdpSocket | null = null;
    try {
      if (opts.io === 'auto' && isIP(host) === 0) throw new TypeError(`host ${host} is a name`);
      sock = BatchUdpSocket.open({
        host,
        port,
        maxBatch: DNS_UDP_BATCH,
        slotBytes: DNS_UDP_SLOT_BYTES,
        recvBufferSize: SOCKET_BUFFER_BYTES,
        sendBufferSize: SOCKET_BUFFER_BYTES,
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (opts.io === 'batched' || (code !== undefined && BIND_ERRORS.has(code))) throw e;
      opts.logger.info(
        { reason: e instanceof Error ? e.message : String(e) },
        'dns: batched UDP I/O unavailable; using node:dgram',
      );
    }
    if (sock !== null) return new BatchedListener(sock, answer, opts.logger);
  }
  return DgramListener.bind(host, port, answer, opts.logger);
}

class BatchedListener implements DnsUdpListener {
  readonly io = 'batched';
  readonly port: number;
  private readonly tx: TxBatch;
  private flushPending = false;

  constructor(
    private readonly sock: BatchUdpSocket,
    private readonly answer: QueryFn,
    private readonly logger: Logger,
  ) {
    this.port = sock.port;
    this.tx = new TxBatch(sock);
    sock.start(this.onBatch, (e) => logger.warn({ err: e }, 'dns: udp socket error'));
  }

  private readonly onBatch = (
    arena: Buffer,
    meta: Uint32Array,
    peers: Uint32Array,
    count: number,
  ): void => {
    const tx = this.tx;
    const answer = this.answer;
    for (let i = 0; i < count; i++) {
      const off = meta[i * UDP_META_WORDS]!;
      const wire = arena.subarray(off, off + meta[i * UDP_META_WORDS + 1]!);
      const out = answer(wire, peerAddress(peers, i), peers[i * UDP_PEER_WORDS + 1]!, true);
      if (out === null) continue;
      if (out instanceof Promise) {
        const peer = new Uint32Array(UDP_PEER_WORDS);
        copyPeer(peers, i, peer, 0);
        out.then(
          (b) => b !== null && this.later(b, peer),
          () => undefined,
        );
      } else tx.push(out, peers, i);
    }
    this.flush();
  };

  /** An answer that waited: sent with the next batch, or in this loop iteration's check phase. */
  private later(b: Buffer, peer: Uint32Array): void {
    this.tx.push(b, peer, 0);
    if (this.flushPending) return;
    this.flushPending = true;
    setImmediate(() => {
      this.flushPending = false;
      this.flush();
    });
  }

  private flush(): void {
    try {
      this.tx.flush();
    } catch (e) {
      this.logger.warn({ err: e }, 'dns: udp send failed');
    }
  }

  close(): Promise<void> {
    this.sock.close();
    return Promise.resolve();
  }
}

class DgramListener implements DnsUdpListener {
  readonly io = 'dgram';
  private closed = false;

  private constructor(
    private readonly sock: ReturnType<typeof createSocket>,
    readonly port: number,
  ) {}

  static async bind(
    host: string,
    port: number,
    answer: QueryFn,
    logger: Logger,
  ): Promise<DgramListener> {
    const type = isIPv6(host) ? 'udp6' : 'udp4';
    const family = type === 'udp6' ? 6 : 4;
    const udp = createSocket({
      type,
      recvBufferSize: SOCKET_BUFFER_BYTES,
      sendBufferSize: SOCKET_BUFFER_BYTES,
      // Replies go to the address a query came from: no resolver round (dns.lookup + nextTick).
      lookup: (address, _opts, cb) => cb(null, address, family),
    });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', (e) => {
        udp.close();
        reject(e);
      });
      udp.bind(port, host, () => {
        udp.removeAllListeners('error');
        resolve();
      });
    });
    udp.on('error', (e) => logger.warn({ err: e }, 'dns: udp socket error'));
    const l = new DgramListener(udp, udp.address().port);
    udp.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
      const out = answer(msg, rinfo.address, rinfo.port, false);
      if (out === null) return;
      if (out instanceof Promise) {
        out.then(
          (b) => {
            if (b !== null && !l.closed) udp.send(b, rinfo.port, rinfo.address);
          },
          () => undefined,
        );
      } else udp.send(out, rinfo.port, rinfo.address);
    });
    return l;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise<void>((r) => this.sock.close(() => r()));
  }
}
