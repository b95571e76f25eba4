import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from '../util/log.js';

/** memberlist's default bind port, which MetalLB's speakers use (--ml-bindport). */
export const LIVENESS_PORT = 7946;
/** How often a heartbeat goes to every other node (memberlist's GossipInterval). */
export const HEARTBEAT_INTERVAL_MS = 200;
/** A node not heard from for this long is declared down. */
export const DEAD_AFTER_MS = 1500;

const MAGIC = 'kubewire-liveness/1';

export interface LivenessPeer {
  name: string;
  address: string;
}

export interface LivenessOptions {
  port?: number;
  intervalMs?: number;
  deadAfterMs?: number;
  onChange: () => void;
}

interface PeerState {
  address: string;
  up: boolean;
  lastHeardMs: number;
  incarnation: number;
}

/**
 * Which nodes are up, learned over the underlay as memberlist does it in spirit: every
 * agent sends a small UDP heartbeat to every other node every 200 ms (to port 7946, from
 * its node address, through its own dataplane like any node traffic), and declares a
 * node down after 1.5 s of silence; a stopping agent may say goodbye (a `leave`
 * message) so the others react at once, as memberlist's Leave. A node is up again on the
 * first heartbeat it sends.
 *
 * Until it has heard from every node once or the silence limit has passed since it
 * started, an agent is not settled: it then counts unknown nodes as up (so a starting
 * node does not declare the others' pods gone) but does not take over addresses.
 */
export class NodeLiveness {
  private socket: Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly peers = new Map<string, PeerState>();
  private startedMs = 0;
  private settledFlag = false;
  private seq = 0;
  private readonly incarnation = Date.now();
  private readonly port: number;
  private readonly intervalMs: number;
  private readonly deadAfterMs: number;

  constructor(
    private readonly self: string,
    private readonly selfAddress: string,
    private readonly logger: Logger,
    private readonly opts: LivenessOptions,
  ) {
    this.port = opts.port ?? LIVENESS_PORT;
    this.intervalMs = opts.intervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.deadAfterMs = opts.deadAfterMs ?? DEAD_AFTER_MS;
  }

  /** The other nodes of the cluster (from the manifests); kept state survives for known names. */
  setPeers(peers: readonly LivenessPeer[]): void {
    const names = new Set<string>();
    for (const p of peers) {
      if (p.name === this.self) continue;
      names.add(p.name);
      const known = this.peers.get(p.name);
      if (known) known.address = p.address;
      else
        this.peers.set(p.name, { address: p.address, up: false, lastHeardMs: 0, incarnation: 0 });
    }
    for (const name of [...this.peers.keys()]) if (!names.has(name)) this.peers.delete(name);
  }

  async start(): Promise<void> {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', (msg, rinfo) => this.receive(msg, rinfo.address));
    socket.on('error', (err) => this.logger.warn({ err: err.message }, 'liveness socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.port, this.selfAddress, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
    this.startedMs = Date.now();
    this.timer = setInterval(() => this.beat(), this.intervalMs);
    this.beat();
    this.logger.info(
      { port: this.port, intervalMs: this.intervalMs, deadAfterMs: this.deadAfterMs },
      'liveness heartbeats started',
    );
  }

  /** Stops heartbeats; with `leave`, first tells every node this one is going. */
  async stop(leave: boolean): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    if (leave)
      await Promise.all([...this.peers.values()].map((p) => this.send(socket, p, 'leave')));
    socket.close();
  }

  get settled(): boolean {
    return this.settledFlag;
  }

  /** True when the node's agent is up (this node always is). */
  isLive(node: string): boolean {
    if (node === this.self) return true;
    const p = this.peers.get(node);
    if (!p) return false;
    return p.up || !this.settledFlag;
  }

  downNodes(): Set<string> {
    const out = new Set<string>();
    for (const name of this.peers.keys()) if (!this.isLive(name)) out.add(name);
    return out;
  }

  snapshot(): { node: string; address: string; up: boolean; lastHeardMsAgo: number | null }[] {
    const now = Date.now();
    return [...this.peers.entries()].map(([node, p]) => ({
      node,
      address: p.address,
      up: this.isLive(node),
      lastHeardMsAgo: p.lastHeardMs > 0 ? now - p.lastHeardMs : null,
    }));
  }

  private beat(): void {
    const now = Date.now();
    let changed = false;
    for (const [name, p] of this.peers) {
      if (p.up && now - p.lastHeardMs > this.deadAfterMs) {
        p.up = false;
        changed = true;
        this.logger.warn({ peer: name, silentMs: now - p.lastHeardMs }, 'node declared down');
      }
    }
    if (!this.settledFlag && now - this.startedMs >= this.deadAfterMs) {
      this.settle('silence limit reached');
      changed = true;
    }
    const socket = this.socket;
    if (socket) for (const p of this.peers.values()) void this.send(socket, p, 'heartbeat');
    if (changed) this.opts.onChange();
  }

  private settle(why: string): void {
    this.settledFlag = true;
    const down = [...this.peers.entries()].filter(([, p]) => !p.up).map(([n]) => n);
    this.logger.info({ why, down }, 'liveness settled');
  }

  private send(socket: Socket, peer: PeerState, type: 'heartbeat' | 'leave'): Promise<void> {
    const msg = Buffer.from(
      JSON.stringify({
        magic: MAGIC,
        type,
        node: this.self,
        incarnation: this.incarnation,
        seq: ++this.seq,
      }),
    );
    return new Promise((resolve) => {
      socket.send(msg, this.port, peer.address, () => resolve());
    });
  }

  private receive(msg: Buffer, from: string): void {
    let m: { magic?: unknown; type?: unknown; node?: unknown; incarnation?: unknown };
    try {
      m = JSON.parse(msg.toString('utf8')) as typeof m;
    } catch {
      return;
    }
    if (m.magic !== MAGIC || typeof m.node !== 'string') return;
    const p = this.peers.get(m.node);
    // Only the node's own address speaks for it.
    if (!p || p.address !== from) return;
    let changed = false;
    if (m.type === 'leave') {
      if (p.up) {
        p.up = false;
        changed = true;
        this.logger.warn({ peer: m.node }, 'node left');
      }
    } else if (m.type === 'heartbeat') {
      p.lastHeardMs = Date.now();
      if (typeof m.incarnation === 'number') p.incarnation = m.incarnation;
      if (!p.up) {
        p.up = true;
        changed = this.settledFlag;
        this.logger.info({ peer: m.node }, 'node is up');
      }
      if (!this.settledFlag && [...this.peers.values()].every((q) => q.up)) {
        this.settle('heard every node');
        changed = true;
      }
    }
    if (changed) this.opts.onChange();
  }
}
