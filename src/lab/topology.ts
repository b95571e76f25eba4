import type { ClusterState } from '../cluster/index.js';
import { ipv4FromString, ipv4ToString, prefixMask } from '../packet/addr.js';

/**
 * The lab's physical network, as in the reference lab (ARCHITECTURE.md): every
 * node on one underlay L2 segment, a router with a leg on the underlay (.1) and
 * one on the client segment, and a client host behind the router. Nothing is
 * connected to the machine's own network: both segments are bridges inside the
 * lab's switch namespace, with no uplink.
 */
export interface LabTopology {
  underlay: { network: string; prefixLen: number };
  nodes: { name: string; address: string; mac: string }[];
  router: { underlayAddress: string; clientAddress: string };
  client: { address: string; network: string; prefixLen: number };
}

export const UNDERLAY_PREFIX_LEN = 24;
export const CLIENT_NETWORK = '10.1.0.0';
export const CLIENT_PREFIX_LEN = 24;
export const ROUTER_CLIENT_ADDRESS = '10.1.0.1';
export const CLIENT_ADDRESS = '10.1.0.89';

/** Docker's scheme for container MACs: 02:42 followed by the IPv4 address. */
export function macForAddress(addr: string): string {
  const a = ipv4FromString(addr);
  return [
    '02',
    '42',
    ...[24, 16, 8, 0].map((s) => ((a >>> s) & 0xff).toString(16).padStart(2, '0')),
  ].join(':');
}

export function labTopology(state: ClusterState): LabTopology {
  const mask = prefixMask(UNDERLAY_PREFIX_LEN);
  const first = ipv4FromString(state.nodes[0]!.internalIP);
  const network = (first & mask) >>> 0;
  for (const n of state.nodes) {
    if ((ipv4FromString(n.internalIP) & mask) >>> 0 !== network) {
      throw new Error(
        `node ${n.name} (${n.internalIP}) is not on the underlay ${ipv4ToString(network)}/${UNDERLAY_PREFIX_LEN} of node ${state.nodes[0]!.name}: the netns lab has one underlay segment`,
      );
    }
  }
  const routerUnderlay = ipv4ToString((network + 1) >>> 0);
  const clash = state.nodes.find((n) => n.internalIP === routerUnderlay);
  if (clash)
    throw new Error(`node ${clash.name} uses ${routerUnderlay}, the lab router's underlay address`);
  return {
    underlay: { network: ipv4ToString(network), prefixLen: UNDERLAY_PREFIX_LEN },
    nodes: state.nodes.map((n) => ({
      name: n.name,
      address: n.internalIP,
      mac: macForAddress(n.internalIP),
    })),
    router: { underlayAddress: routerUnderlay, clientAddress: ROUTER_CLIENT_ADDRESS },
    client: { address: CLIENT_ADDRESS, network: CLIENT_NETWORK, prefixLen: CLIENT_PREFIX_LEN },
  };
}
