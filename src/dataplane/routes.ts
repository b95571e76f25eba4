import { ipv4ToString, prefixMask } from '../packet/addr.js';
import type { NetInterface } from './interface.js';

export type RouteType = 'unicast' | 'blackhole' | 'unreachable' | 'prohibit';

export interface Route {
  /** Network address (already masked), unsigned 32-bit. */
  dst: number;
  prefixLen: number;
  type: RouteType;
  dev: NetInterface | null;
  /** Gateway, 0 for a directly connected destination. */
  via: number;
  onlink: boolean;
  /** Route origin as `ip route` names it: kernel, boot, static, bird, or a number. */
  proto: string;
  scope: 'universe' | 'link' | 'host';
  /** Preferred source address for locally generated packets, 0 when unset. */
  src: number;
  /** Path MTU, 0 to use the device's MTU. */
  mtu: number;
}

export type RouteSpec = Partial<Omit<Route, 'dst' | 'prefixLen'>> & {
  dst: number;
  prefixLen: number;
};

/**
 * The main routing table: longest-prefix match over IPv4.
 *
 * One hash map per prefix length in use; a lookup masks the destination with
 * each length present, longest first, and stops at the first hit. A node has
 * few distinct lengths (/32 pods, /26 blocks, /24 underlay, /0 default), so a
 * lookup costs a handful of Map probes with no allocation.
 */
export class RouteTable {
  private readonly byLength: (Map<number, Route> | undefined)[] = new Array(33);
  /** Prefix lengths present, longest first; with their masks. */
  private lengths: number[] = [];
  private masks: number[] = [];

  add(spec: RouteSpec): Route {
    const mask = prefixMask(spec.prefixLen);
    const route: Route = {
      type: 'unicast',
      dev: null,
      via: 0,
      onlink: false,
      proto: 'boot',
      scope: spec.via ? 'universe' : spec.type && spec.type !== 'unicast' ? 'universe' : 'link',
      src: 0,
      mtu: 0,
      ...spec,
      dst: (spec.dst & mask) >>> 0,
    };
    if (route.type === 'unicast' && !route.dev) {
      throw new Error(`route ${formatPrefix(route)}: a unicast route needs a device`);
    }
    let map = this.byLength[route.prefixLen];
    if (!map) {
      map = new Map();
      this.byLength[route.prefixLen] = map;
      this.reindexLengths();
    }
    map.set(route.dst, route);
    return route;
  }

  delete(dst: number, prefixLen: number): boolean {
    const map = this.byLength[prefixLen];
    if (!map) return false;
    const removed = map.delete((dst & prefixMask(prefixLen)) >>> 0);
    if (map.size === 0) {
      this.byLength[prefixLen] = undefined;
      this.reindexLengths();
    }
    return removed;
  }

  /** Removes every route through a device (when an interface goes away). */
  deleteByDevice(dev: NetInterface): void {
    for (const route of this.all()) {
      if (route.dev === dev) this.delete(route.dst, route.prefixLen);
    }
  }

  clear(): void {
    this.byLength.fill(undefined);
    this.reindexLengths();
  }

  lookup(addr: number): Route | undefined {
    const lengths = this.lengths;
    for (let i = 0; i < lengths.length; i++) {
      const hit = this.byLength[lengths[i]!]!.get((addr & this.masks[i]!) >>> 0);
      if (hit) return hit;
    }
    return undefined;
  }

  /** Routes in the order `ip route` prints them: by destination, then longest prefix first. */
  all(): Route[] {
    const out: Route[] = [];
    for (const map of this.byLength) if (map) out.push(...map.values());
    return out.sort((a, b) => a.dst - b.dst || b.prefixLen - a.prefixLen);
  }

  private reindexLengths(): void {
    this.lengths = [];
    for (let len = 32; len >= 0; len--) if (this.byLength[len]) this.lengths.push(len);
    this.masks = this.lengths.map((len) => prefixMask(len));
  }
}

export function formatPrefix(route: Pick<Route, 'dst' | 'prefixLen'>): string {
  if (route.prefixLen === 0) return 'default';
  return route.prefixLen === 32
    ? ipv4ToString(route.dst)
    : `${ipv4ToString(route.dst)}/${route.prefixLen}`;
}

/** One route as `ip route show` prints it, e.g. `192.168.8.192/26 via 10.1.110.107 dev tunl0 proto bird onlink`. */
export function formatRoute(route: Route): string {
  const parts: string[] = [];
  if (route.type !== 'unicast') parts.push(route.type);
  parts.push(formatPrefix(route));
  if (route.via) parts.push('via', ipv4ToString(route.via));
  if (route.dev) parts.push('dev', route.dev.name);
  if (route.proto !== 'boot') parts.push('proto', route.proto);
  if (route.scope !== 'universe') parts.push('scope', route.scope);
  if (route.src) parts.push('src', ipv4ToString(route.src));
  // iproute2 prints the flags (onlink) before the metrics (mtu).
  if (route.onlink) parts.push('onlink');
  if (route.mtu) parts.push('mtu', String(route.mtu));
  return parts.join(' ');
}
