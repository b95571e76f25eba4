import type { ClusterState, IpipMode } from '../cluster/index.js';
import { cidrTextContains } from '../cluster/index.js';
import { ipv4FromString, parseCidr, prefixMask } from '../packet/addr.js';

/** A route Calico programs on a node for the pod network, before devices are bound. */
export interface CalicoRoute {
  dst: number;
  prefixLen: number;
  type: 'unicast' | 'blackhole';
  /** 'tunl0' (IPIP) or 'underlay' (no encapsulation), for unicast routes. */
  via: 'tunl0' | 'underlay' | null;
  gateway: number;
}

/**
 * The pod-network routes on node `me`, as Felix/BIRD program them
 * (reference/dataplane.md §2.4): a blackhole for each of the node's own blocks;
 * each remote block `via <node IP> dev tunl0 onlink` when its pool's ipipMode
 * is Always, or CrossSubnet with the node outside our underlay subnet, and
 * `via <node IP> dev eth0 onlink` otherwise; borrowed addresses of remote
 * pods get /32 routes the same way. Local pods' /32 routes belong to the pods.
 */
export function calicoRoutes(
  state: ClusterState,
  me: string,
  underlayPrefixLen: number,
): CalicoRoute[] {
  const self = state.nodes.find((n) => n.name === me);
  if (!self) return [];
  const myAddr = ipv4FromString(self.internalIP);
  const mask = prefixMask(underlayPrefixLen);
  const sameSubnet = (ip: number) => (ip & mask) >>> 0 === (myAddr & mask) >>> 0;
  const poolMode = (cidr: string): IpipMode =>
    state.pools.find((p) => !p.disabled && cidrTextContains(p.cidr, cidr.split('/')[0]!))
      ?.ipipMode ?? 'Never';
  const encap = (mode: IpipMode, gateway: number): 'tunl0' | 'underlay' =>
    mode === 'Always' || (mode === 'CrossSubnet' && !sameSubnet(gateway)) ? 'tunl0' : 'underlay';

  const routes: CalicoRoute[] = [];
  for (const block of self.blocks) {
    const { addr, prefixLen } = parseCidr(block);
    if (prefixLen < 32)
      routes.push({ dst: addr, prefixLen, type: 'blackhole', via: null, gateway: 0 });
  }
  for (const node of state.nodes) {
    if (node.name === me) continue;
    const gateway = ipv4FromString(node.internalIP);
    for (const block of node.blocks) {
      const { addr, prefixLen } = parseCidr(block);
      routes.push({
        dst: addr,
        prefixLen,
        type: 'unicast',
        via: encap(poolMode(block), gateway),
        gateway,
      });
    }
  }
  const nodeByName = new Map(state.nodes.map((n) => [n.name, n]));
  for (const pod of state.pods) {
    if (!pod.borrowed || !pod.ip || !pod.nodeName || pod.nodeName === me || pod.hostNetwork)
      continue;
    const node = nodeByName.get(pod.nodeName);
    if (!node) continue;
    const gateway = ipv4FromString(node.internalIP);
    routes.push({
      dst: ipv4FromString(pod.ip),
      prefixLen: 32,
      type: 'unicast',
      via: encap(poolMode(`${pod.ip}/32`), gateway),
      gateway,
    });
  }
  return routes;
}
