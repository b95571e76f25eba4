/**
 * Calico IPAMBlock objects (crd.projectcalico.org/v1): reading the allocations they
 * record, and writing the ones a cluster state holds. Recorded allocations keep running
 * pods at their addresses across manifest changes; see README.md ("IPAM", "Recorded
 * allocations").
 */
import { createHash } from 'node:crypto';
import { Document } from 'yaml';
import { compareStrings } from './hash.js';
import type { IpamRecord, IpamRecordedBlock } from './ipam.js';
import { cidrContains, formatCidr, parseCidr, parseIPv4, prefixSize, type Cidr } from './ip.js';
import { IPAM_BLOCK_AFFINITY_PREFIX, type IPAMBlockInput } from './schemas.js';
import type { ClusterState } from './state.js';

/** apiVersion written by ipamBlocksFor (the CRD calico-node and the CNI plugin use). */
export const IPAM_BLOCK_API_VERSION = 'crd.projectcalico.org/v1';

/** Handle of a node's IPIP tunnel address (calico-node `allocateip`). */
export const TUNNEL_HANDLE_PREFIX = 'ipip-tunnel-addr-';
/** secondary.type of the tunnel address allocation. */
export const TUNNEL_ATTRIBUTE_TYPE = 'ipipTunnelAddress';
/** Handle prefix of pod allocations (the CNI plugin's `k8s-pod-network.<container id>`). */
export const POD_HANDLE_PREFIX = 'k8s-pod-network.';

/**
 * The name Calico gives a block's IPAMBlock: the CIDR with '.', ':' and '/' replaced by
 * '-' (libcalico-go `names.CIDRToName`): 192.168.104.64/26 → 192-168-104-64-26.
 */
export function ipamBlockName(cidr: Cidr): string {
  return formatCidr(cidr).replace(/[.:/]/g, '-');
}

/**
 * A validated IPAMBlock as IPAM reads it. A pod's allocation is one whose secondary
 * attributes name a namespace and a pod; the tunnel address is the one whose
 * secondary.type is ipipTunnelAddress or whose handle is ipip-tunnel-addr-<node>. Other
 * allocations (VXLAN or WireGuard tunnel addresses, leaked handles) are recorded without
 * an owner, so IPAM releases them.
 */
export function recordedBlockOf(
  name: string,
  cidr: Cidr,
  spec: IPAMBlockInput['spec'],
): IpamRecordedBlock {
  const affinity = spec.affinity?.startsWith(IPAM_BLOCK_AFFINITY_PREFIX)
    ? spec.affinity.slice(IPAM_BLOCK_AFFINITY_PREFIX.length)
    : null;
  const records: IpamRecord[] = [];
  spec.allocations.forEach((index, ordinal) => {
    if (index === null) return;
    const attribute = spec.attributes?.[index];
    const secondary = attribute?.secondary ?? {};
    const handle = attribute?.handle_id;
    const ip = (cidr.base + ordinal) >>> 0;
    const handleNode = handle?.startsWith(TUNNEL_HANDLE_PREFIX)
      ? handle.slice(TUNNEL_HANDLE_PREFIX.length)
      : undefined;
    const tunnelOf =
      secondary.type === TUNNEL_ATTRIBUTE_TYPE
        ? (secondary.node ?? handleNode ?? affinity ?? undefined)
        : secondary.type === undefined
          ? handleNode
          : undefined;
    const pod =
      tunnelOf === undefined && secondary.namespace && secondary.pod
        ? `${secondary.namespace}/${secondary.pod}`
        : undefined;
    records.push({
      ip,
      node: secondary.node ?? affinity,
      ...(pod !== undefined ? { pod } : {}),
      ...(tunnelOf !== undefined && tunnelOf !== '' ? { tunnelOf } : {}),
    });
  });
  return { name, cidr, affinity, records };
}

/** A deterministic stand-in for the pod sandbox's container id (64 hex digits). */
function sandboxId(namespace: string, name: string): string {
  return createHash('sha256').update(`sandbox/${namespace}/${name}`, 'utf8').digest('hex');
}

interface Allocation {
  ordinal: number;
  handle: string;
  secondary: Record<string, string>;
}

/**
 * The IPAMBlock objects describing `state`'s allocations: one per claimed block (every
 * entry of every node's `blocks`), sorted by address, named as Calico names them. Each
 * allocation has its own attribute, in address order:
 * - the tunnel address: handle `ipip-tunnel-addr-<node>`, secondary {node, type};
 * - a pod's address: handle `k8s-pod-network.<id>` (a hash standing for the container
 *   id), secondary {namespace, node, pod}. A borrowed address is in another node's block;
 *   secondary.node names the pod's node.
 * hostNetwork and Pending pods have no allocation. Calico's timestamps and sequence
 * numbers are left out (sequenceNumber 0), so equal states give equal objects.
 */
export function ipamBlocksFor(state: ClusterState): Record<string, unknown>[] {
  const blocks: { cidr: Cidr; node: string; allocations: Allocation[] }[] = [];
  for (const node of state.nodes) {
    for (const text of node.blocks) {
      const cidr = parseCidr(text);
      if (cidr) blocks.push({ cidr, node: node.name, allocations: [] });
    }
  }
  blocks.sort((a, b) => a.cidr.base - b.cidr.base);
  const place = (ip: number, allocation: Omit<Allocation, 'ordinal'>): void => {
    const block = blocks.find((b) => cidrContains(b.cidr, ip));
    if (block) block.allocations.push({ ordinal: ip - block.cidr.base, ...allocation });
  };
  for (const node of state.nodes) {
    const tunnel = node.tunnelAddress !== null ? parseIPv4(node.tunnelAddress) : null;
    if (tunnel === null) continue;
    place(tunnel, {
      handle: `${TUNNEL_HANDLE_PREFIX}${node.name}`,
      secondary: { node: node.name, type: TUNNEL_ATTRIBUTE_TYPE },
    });
  }
  for (const pod of state.pods) {
    if (pod.hostNetwork || pod.ip === null || pod.nodeName === null) continue;
    const ip = parseIPv4(pod.ip);
    if (ip === null) continue;
    place(ip, {
      handle: `${POD_HANDLE_PREFIX}${sandboxId(pod.namespace, pod.name)}`,
      secondary: { namespace: pod.namespace, node: pod.nodeName, pod: pod.name },
    });
  }
  return blocks.map(({ cidr, node, allocations }) => {
    const size = prefixSize(cidr.prefix);
    allocations.sort((a, b) => a.ordinal - b.ordinal || compareStrings(a.handle, b.handle));
    const slots: (number | null)[] = new Array<number | null>(size).fill(null);
    const attributes: { handle_id: string; secondary: Record<string, string> }[] = [];
    for (const a of allocations) {
      if (slots[a.ordinal] !== null) continue; // cannot happen: addresses are unique
      slots[a.ordinal] = attributes.length;
      attributes.push({ handle_id: a.handle, secondary: a.secondary });
    }
    const unallocated: number[] = [];
    slots.forEach((s, i) => {
      if (s === null) unallocated.push(i);
    });
    return {
      apiVersion: IPAM_BLOCK_API_VERSION,
      kind: 'IPAMBlock',
      metadata: { name: ipamBlockName(cidr) },
      spec: {
        cidr: formatCidr(cidr),
        affinity: `${IPAM_BLOCK_AFFINITY_PREFIX}${node}`,
        strictAffinity: false,
        allocations: slots,
        unallocated,
        attributes,
        deleted: false,
        sequenceNumber: 0,
      },
    };
  });
}

/** The header of renderIpamManifest's text. */
export const IPAM_MANIFEST_HEADER = [
  '# Written by kubewire: the Calico IPAM allocations of the cluster state',
  '# (crd.projectcalico.org/v1 IPAMBlock, one per node block). kubewire reads them back',
  '# so that running pods keep their addresses when other manifests change. It is',
  '# rewritten on every change; do not edit it by hand.',
].join('\n');

/**
 * ipamBlocksFor(state) as YAML: the header comment, then one document per block, with
 * `allocations` and `unallocated` as one-line flow sequences. Deterministic; with no block, only
 * the header (which loads as no document).
 */
export function renderIpamManifest(state: ClusterState): string {
  const docs = ipamBlocksFor(state).map((block) => {
    const doc = new Document(block);
    for (const key of ['allocations', 'unallocated']) {
      const node = doc.getIn(['spec', key], true) as { flow?: boolean } | undefined;
      if (node) node.flow = true;
    }
    return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
  });
  return `${IPAM_MANIFEST_HEADER}\n${docs.map((d) => `---\n${d}`).join('')}`;
}
