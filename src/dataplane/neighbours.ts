import { ipv4ToString, macToString } from '../packet/addr.js';
import type { NetInterface } from './interface.js';

export type NeighbourState = 'PERMANENT' | 'REACHABLE' | 'STALE' | 'INCOMPLETE' | 'FAILED';

export interface Neighbour {
  ip: number;
  dev: NetInterface;
  mac: Buffer | null;
  state: NeighbourState;
  updatedAtMs: number;
  /** Probes sent while INCOMPLETE. */
  probes: number;
  /** IPv4 packets (copies, without link header) waiting for the address to resolve. */
  queue: Buffer[];
}

/** Linux defaults: net.ipv4.neigh.default.{mcast_solicit=3, retrans_time_ms=1000, base_reachable_time_ms=30000}. */
export const ARP_MAX_PROBES = 3;
export const ARP_RETRANS_MS = 1000;
export const REACHABLE_MS = 30_000;
/** Packets queued per unresolved neighbour (Linux bounds it by bytes, unres_qlen_bytes). */
export const UNRESOLVED_QUEUE_MAX = 64;

/**
 * The neighbour (ARP) cache, per interface. Lookups on the data path are one
 * Map probe; resolution, retries and expiry run from a 1 s maintenance tick,
 * never per packet.
 */
export class NeighbourTable {
  private readonly byDev = new Map<NetInterface, Map<number, Neighbour>>();

  get(dev: NetInterface, ip: number): Neighbour | undefined {
    return this.byDev.get(dev)?.get(ip);
  }

  private entry(dev: NetInterface, ip: number): Neighbour {
    let map = this.byDev.get(dev);
    if (!map) {
      map = new Map();
      this.byDev.set(dev, map);
    }
    let n = map.get(ip);
    if (!n) {
      n = {
        ip,
        dev,
        mac: null,
        state: 'INCOMPLETE',
        updatedAtMs: Date.now(),
        probes: 0,
        queue: [],
      };
      map.set(ip, n);
    }
    return n;
  }

  /** A static entry (`ip neigh replace ... nud permanent`): known pod and host MACs. */
  setPermanent(dev: NetInterface, ip: number, mac: Buffer): void {
    const n = this.entry(dev, ip);
    n.mac = Buffer.from(mac);
    n.state = 'PERMANENT';
    n.updatedAtMs = Date.now();
  }

  /**
   * Learns or confirms an address from ARP. Returns the entry when it had
   * packets waiting, so the caller can send them now.
   */
  learn(
    dev: NetInterface,
    ip: number,
    mac: Uint8Array,
    macOffset: number,
    nowMs: number,
  ): Neighbour | undefined {
    const existing = this.get(dev, ip);
    if (existing?.state === 'PERMANENT') return undefined;
    const n = existing ?? this.entry(dev, ip);
    if (!n.mac) n.mac = Buffer.alloc(6);
    for (let i = 0; i < 6; i++) n.mac[i] = mac[macOffset + i]!;
    n.state = 'REACHABLE';
    n.updatedAtMs = nowMs;
    n.probes = 0;
    return n.queue.length > 0 ? n : undefined;
  }

  /** Starts (or continues) resolving an address; returns the entry to queue on. */
  resolve(dev: NetInterface, ip: number): Neighbour {
    const n = this.entry(dev, ip);
    if (n.state === 'FAILED') {
      n.state = 'INCOMPLETE';
      n.probes = 0;
    }
    return n;
  }

  delete(dev: NetInterface, ip: number): void {
    this.byDev.get(dev)?.delete(ip);
  }

  deleteDevice(dev: NetInterface): void {
    this.byDev.delete(dev);
  }

  /**
   * The 1 s tick: re-probes INCOMPLETE entries, fails them after
   * ARP_MAX_PROBES (returning their queued packets for ICMP host unreachable),
   * ages REACHABLE to STALE and forgets FAILED entries after a while.
   */
  tick(nowMs: number, probe: (n: Neighbour) => void): Neighbour[] {
    const failed: Neighbour[] = [];
    for (const map of this.byDev.values()) {
      for (const n of map.values()) {
        if (n.state === 'INCOMPLETE') {
          if (n.probes >= ARP_MAX_PROBES) {
            n.state = 'FAILED';
            n.updatedAtMs = nowMs;
            failed.push({ ...n, queue: n.queue });
            n.queue = [];
          } else if (
            nowMs - n.updatedAtMs >= ARP_RETRANS_MS ||
            nowMs < n.updatedAtMs || // the clock stepped back
            n.probes === 0
          ) {
            n.probes++;
            n.updatedAtMs = nowMs;
            probe(n);
          }
        } else if (n.state === 'REACHABLE' && nowMs - n.updatedAtMs > REACHABLE_MS) {
          n.state = 'STALE';
        } else if (n.state === 'FAILED' && nowMs - n.updatedAtMs > 60_000) {
          map.delete(n.ip);
        }
      }
    }
    return failed;
  }

  all(): Neighbour[] {
    const out: Neighbour[] = [];
    for (const map of this.byDev.values()) out.push(...map.values());
    return out.sort((a, b) => a.dev.index - b.dev.index || a.ip - b.ip);
  }
}

/** One entry as `ip neigh show` prints it. */
export function formatNeighbour(n: Neighbour): string {
  const parts = [ipv4ToString(n.ip), 'dev', n.dev.name];
  if (n.mac && n.state !== 'INCOMPLETE' && n.state !== 'FAILED')
    parts.push('lladdr', macToString(n.mac));
  parts.push(n.state);
  return parts.join(' ');
}
