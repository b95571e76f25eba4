/**
 * Deterministic Calico-style IPAM: affine blocks per node, the IPIP tunnel address, and
 * pod addresses. See README.md ("IPAM") for the rules and their Calico counterparts.
 */
import { stableHash32 } from './hash.js';
import {
  cidrContains,
  cidrContainsCidr,
  enclosingCidr,
  formatCidr,
  formatIPv4,
  prefixSize,
  type Cidr,
} from './ip.js';
import { matchesCalicoSelector, type CalicoSelector, type Labels } from './selectors.js';

export type IpipMode = 'Always' | 'CrossSubnet' | 'Never';

export interface IpamPool {
  name: string;
  cidr: Cidr;
  blockSize: number;
  ipipMode: IpipMode;
  disabled: boolean;
  selector: CalicoSelector;
}

export interface IpamNode {
  name: string;
  labels: Labels;
  podCIDR: Cidr | null;
}

export interface IpamPod {
  /** "<namespace>/<name>". */
  key: string;
  /** null for a pod that is not scheduled (only its pin is checked). */
  nodeName: string | null;
  pinnedIP: number | null;
  /**
   * Order of automatic assignment on a node, compared element by element (numbers
   * numerically, strings by bytes). buildClusterState uses (0 for DaemonSet pods else 1,
   * ownerIndex or 0, namespace, owner or pod name, pod name).
   */
  order: (number | string)[];
  /** Deployment the pod belongs to, for a clearer message when replicas share a pin. */
  owner?: string;
}

/**
 * One allocation recorded in an IPAMBlock (ipam-blocks.ts turns manifests into these).
 * A pod's record names the pod; the tunnel address record names its node.
 */
export interface IpamRecord {
  ip: number;
  /** "<namespace>/<name>" of the pod the address was assigned to (secondary namespace, pod). */
  pod?: string;
  /** Node the address was assigned on: secondary.node, else the block's affinity host. */
  node: string | null;
  /** Set for a node's IPIP tunnel address (handle ipip-tunnel-addr-<node>). */
  tunnelOf?: string;
}

/** An IPAMBlock of the manifests: its affinity and its allocations, in address order. */
export interface IpamRecordedBlock {
  /** The IPAMBlock's metadata.name, for messages. */
  name: string;
  cidr: Cidr;
  /** Host of spec.affinity ("host:<node>"), or null for a block without affinity. */
  affinity: string | null;
  records: IpamRecord[];
}

export interface NodeIpam {
  blocks: Cidr[];
  tunnelAddress: number | null;
  ipipMode: IpipMode;
}

export type PodIpam = { ip: number; borrowed: boolean } | { pending: string };

export type IpamProblem =
  { type: 'node'; node: string; detail: string } | { type: 'pod'; pod: string; detail: string };

export interface IpamResult {
  nodes: Map<string, NodeIpam>;
  pods: Map<string, PodIpam>;
  problems: IpamProblem[];
  /** Non-fatal notes, keyed by node name. */
  nodeWarnings: { node: string; detail: string }[];
  /** Non-fatal notes about recorded blocks, keyed by IPAMBlock name. */
  blockWarnings: { block: string; detail: string }[];
}

function compareOrder(a: IpamPod, b: IpamPod): number {
  const p = a.order;
  const q = b.order;
  const n = p.length > q.length ? p.length : q.length;
  for (let i = 0; i < n; i++) {
    const x = p[i];
    const y = q[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}

class BlockTable {
  /** block base → owning node. Pools never overlap, so bases are unique. */
  private readonly owner = new Map<number, string>();
  private readonly blocksOf = new Map<string, Cidr[]>();
  private readonly poolOf = new Map<number, IpamPool>();

  constructor(readonly pools: readonly IpamPool[]) {}

  ownerOf(base: number): string | undefined {
    return this.owner.get(base);
  }

  blocks(node: string): Cidr[] {
    return this.blocksOf.get(node) ?? [];
  }

  pool(block: Cidr): IpamPool | undefined {
    return this.poolOf.get(block.base);
  }

  claim(node: string, block: Cidr, pool: IpamPool): void {
    this.owner.set(block.base, node);
    this.poolOf.set(block.base, pool);
    const list = this.blocksOf.get(node) ?? [];
    list.push(block);
    this.blocksOf.set(node, list);
  }

  /**
   * Claims a free block of `pool` for `node`: the block at index
   * stableHash32(node) mod blockCount, or the next free one after it (wrapping).
   */
  claimHashed(node: string, pool: IpamPool): Cidr | null {
    const size = prefixSize(pool.blockSize);
    const count = prefixSize(pool.cidr.prefix) / size;
    const start = stableHash32(node) % count;
    for (let k = 0; k < count; k++) {
      const base = (pool.cidr.base + ((start + k) % count) * size) >>> 0;
      if (!this.owner.has(base)) {
        const block = { base, prefix: pool.blockSize };
        this.claim(node, block, pool);
        return block;
      }
    }
    return null;
  }

  /** Every claimed block, in address order. */
  allBlocks(): { block: Cidr; node: string }[] {
    const out: { block: Cidr; node: string }[] = [];
    for (const [node, blocks] of this.blocksOf)
      for (const block of blocks) out.push({ block, node });
    return out.sort((a, b) => a.block.base - b.block.base);
  }
}

/** Pools a node may take automatic addresses from: enabled and selecting it, by name. */
export function poolsForNode(pools: readonly IpamPool[], labels: Labels): IpamPool[] {
  return pools.filter((p) => !p.disabled && matchesCalicoSelector(p.selector, labels));
}

/**
 * Runs IPAM. `pools` and `nodes` sorted by name, `pods` in any order, `recorded` the
 * IPAMBlocks of the manifests (any order; at most one per block). Steps:
 * 0. a recorded block's affinity claims it for its node, when the node exists and the
 *    block's pool serves it (per node: the podCIDR block, the recorded tunnel block, then
 *    address order);
 * 1. a node's spec.podCIDR inside a pool that applies to it becomes its first block;
 * 2. every node gets a first block in the first IPIP pool that applies to it (or, with no
 *    IPIP pool, the first pool), chosen by hashing its name (claimHashed);
 * 3. tunnel address = the recorded one when it lies in one of the node's IPIP blocks, else
 *    the first address of the node's first block in an IPIP pool;
 * 4. pinned pods (cni.projectcalico.org/ipAddrs), in pod-key order: the address must be in
 *    an enabled pool and unused; an unclaimed block becomes the pod node's, a block of
 *    another node makes the address borrowed;
 * 5. recorded pod addresses, in address order: kept when the pod exists, is not pinned,
 *    runs on the recorded node, the address is free and its pool serves that node. Other
 *    recorded addresses are released;
 * 6. other pods, node by node, in `order`: the lowest free address of the node's blocks
 *    (in claim order) that was not released in step 5, then a released one, then a new
 *    hashed block, then a borrowed address from another node's block; failing all, the
 *    pod stays Pending.
 * Without recorded blocks, steps 0 and 5 do nothing and nothing is released.
 */
export function runIpam(
  pools: readonly IpamPool[],
  nodes: readonly IpamNode[],
  pods: readonly IpamPod[],
  recorded: readonly IpamRecordedBlock[] = [],
): IpamResult {
  const table = new BlockTable(pools);
  const problems: IpamProblem[] = [];
  const nodeWarnings: { node: string; detail: string }[] = [];
  const blockWarnings: { block: string; detail: string }[] = [];
  const usable = new Map(nodes.map((n) => [n.name, poolsForNode(pools, n.labels)]));
  const blocks = [...recorded].sort((a, b) => a.cidr.base - b.cidr.base);

  // 0. recorded affinities.
  const tunnelRecord = new Map<string, number>(); // node → recorded tunl0 address
  for (const block of blocks) {
    for (const r of block.records) {
      if (r.tunnelOf !== undefined && !tunnelRecord.has(r.tunnelOf))
        tunnelRecord.set(r.tunnelOf, r.ip);
    }
  }
  const affine = new Map<string, { cidr: Cidr; pool: IpamPool }[]>();
  for (const block of blocks) {
    const host = block.affinity;
    if (host === null) continue;
    const mine = usable.get(host);
    if (mine === undefined) {
      blockWarnings.push({
        block: block.name,
        detail: `node ${host} does not exist; the block's affinity and allocations are released`,
      });
      continue;
    }
    const pool = mine.find(
      (p) => p.blockSize === block.cidr.prefix && cidrContainsCidr(p.cidr, block.cidr),
    );
    if (!pool) {
      const holder = pools.find((p) => cidrContainsCidr(p.cidr, block.cidr));
      const why = !holder
        ? 'no IP pool contains it'
        : holder.disabled
          ? `IP pool ${holder.name} is disabled`
          : `IP pool ${holder.name} does not select node ${host}`;
      blockWarnings.push({ block: block.name, detail: `${why}; affinity to ${host} released` });
      continue;
    }
    const list = affine.get(host) ?? [];
    list.push({ cidr: block.cidr, pool });
    affine.set(host, list);
  }
  for (const node of nodes) {
    const list = affine.get(node.name);
    if (!list) continue;
    const tunnel = tunnelRecord.get(node.name);
    const rank = (b: Cidr): number =>
      node.podCIDR && cidrContains(b, node.podCIDR.base)
        ? 0
        : tunnel !== undefined && cidrContains(b, tunnel)
          ? 1
          : 2;
    list.sort((x, y) => rank(x.cidr) - rank(y.cidr) || x.cidr.base - y.cidr.base);
    for (const { cidr, pool } of list) table.claim(node.name, cidr, pool);
  }

  // 1. podCIDR blocks.
  const podCidrOwner = new Map<number, string>(); // block base → node whose podCIDR it is
  for (const node of nodes) {
    if (!node.podCIDR) continue;
    const pool = usable.get(node.name)!.find((p) => cidrContains(p.cidr, node.podCIDR!.base));
    if (!pool) {
      nodeWarnings.push({
        node: node.name,
        detail: `spec.podCIDR ${formatCidr(node.podCIDR)} is not inside an enabled IP pool that selects this node; ignored`,
      });
      continue;
    }
    const block = enclosingCidr(node.podCIDR.base, pool.blockSize);
    const other = podCidrOwner.get(block.base);
    if (other !== undefined) {
      problems.push({
        type: 'node',
        node: node.name,
        detail: `spec.podCIDR ${formatCidr(node.podCIDR)}: block ${formatCidr(block)} already belongs to node ${other}`,
      });
      continue;
    }
    podCidrOwner.set(block.base, node.name);
    const owner = table.ownerOf(block.base);
    if (owner === node.name) continue; // recorded affinity, already first
    if (owner !== undefined) {
      nodeWarnings.push({
        node: node.name,
        detail: `spec.podCIDR ${formatCidr(node.podCIDR)}: block ${formatCidr(block)} is affine to node ${owner} (IPAMBlock); ignored`,
      });
      continue;
    }
    table.claim(node.name, block, pool);
  }

  // 2. first (and tunnel) blocks.
  for (const node of nodes) {
    const mine = usable.get(node.name)!;
    if (mine.length === 0) continue;
    const ipipPools = mine.filter((p) => p.ipipMode !== 'Never');
    const have = table.blocks(node.name);
    const needsIpipBlock =
      ipipPools.length > 0 && !have.some((b) => table.pool(b)!.ipipMode !== 'Never');
    if (needsIpipBlock || have.length === 0) {
      const pool = ipipPools[0] ?? mine[0]!;
      if (!table.claimHashed(node.name, pool)) {
        nodeWarnings.push({ node: node.name, detail: `IP pool ${pool.name} has no free block` });
      }
    }
  }

  // 3. tunnel addresses.
  const result = new Map<string, NodeIpam>();
  // address → what uses it: a node's tunnel address (its text), or the pod it is assigned to
  const used = new Map<number, string | IpamPod>();
  const usedBy = (what: string | IpamPod): string =>
    typeof what === 'string' ? what : `assigned to pod ${what.key}`;
  for (const node of nodes) {
    const ipipBlocks = table.blocks(node.name).filter((b) => table.pool(b)!.ipipMode !== 'Never');
    const recordedTunnel = tunnelRecord.get(node.name);
    const home =
      recordedTunnel !== undefined
        ? ipipBlocks.find((b) => cidrContains(b, recordedTunnel))
        : undefined;
    const first = home ?? ipipBlocks[0];
    const tunnel = home ? recordedTunnel! : first ? first.base : null;
    if (tunnel !== null) used.set(tunnel, `the tunl0 address of node ${node.name}`);
    result.set(node.name, {
      blocks: [],
      tunnelAddress: tunnel,
      ipipMode: first ? table.pool(first)!.ipipMode : 'Never',
    });
  }

  // 4. pinned pods.
  const podResults = new Map<string, PodIpam>();
  const pinned = pods
    .filter((p) => p.pinnedIP !== null)
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const pinOwner = new Map<number, IpamPod>();
  for (const pod of pinned) {
    const ip = pod.pinnedIP!;
    const pool = pools.find((p) => !p.disabled && cidrContains(p.cidr, ip));
    if (!pool) {
      const list = pools.filter((p) => !p.disabled).map((p) => `${p.name} ${formatCidr(p.cidr)}`);
      problems.push({
        type: 'pod',
        pod: pod.key,
        detail: `address ${formatIPv4(ip)} is not in any enabled IP pool (${list.length ? list.join(', ') : 'none'})`,
      });
      continue;
    }
    if (pod.nodeName === null) continue;
    const takenBy = used.get(ip);
    const taken = takenBy === undefined ? undefined : usedBy(takenBy);
    if (taken !== undefined) {
      const other = pinOwner.get(ip);
      const same = other?.owner !== undefined && other.owner === pod.owner;
      problems.push({
        type: 'pod',
        pod: pod.key,
        detail: `address ${formatIPv4(ip)} is already ${taken}${same ? '; a pinned address fits one pod only (use replicas: 1, or pin separate Pods)' : ''}`,
      });
      continue;
    }
    const block = enclosingCidr(ip, pool.blockSize);
    let owner = table.ownerOf(block.base);
    if (owner === undefined) {
      table.claim(pod.nodeName, block, pool);
      owner = pod.nodeName;
    }
    used.set(ip, pod);
    pinOwner.set(ip, pod);
    podResults.set(pod.key, { ip, borrowed: owner !== pod.nodeName });
  }

  // 5. recorded pod addresses (Calico never moves a running pod's address).
  const released = new Set<number>(); // recorded addresses not kept: taken last
  const podByKey = new Map(blocks.length > 0 ? pods.map((p) => [p.key, p]) : []);
  for (const block of blocks) {
    for (const r of block.records) {
      if (r.tunnelOf !== undefined) {
        if (result.get(r.tunnelOf)?.tunnelAddress !== r.ip) released.add(r.ip);
        continue;
      }
      const pod = r.pod !== undefined ? podByKey.get(r.pod) : undefined;
      const node = pod?.nodeName ?? null;
      const pool =
        pod && node !== null && pod.pinnedIP === null && node === r.node
          ? usable.get(node)?.find((p) => cidrContains(p.cidr, r.ip))
          : undefined;
      if (!pod || node === null || !pool || podResults.has(pod.key) || used.has(r.ip)) {
        released.add(r.ip);
        continue;
      }
      const home = enclosingCidr(r.ip, pool.blockSize);
      let owner = table.ownerOf(home.base);
      if (owner === undefined) {
        table.claim(node, home, pool);
        owner = node;
      }
      used.set(r.ip, pod);
      podResults.set(pod.key, { ip: r.ip, borrowed: owner !== node });
    }
  }

  // 6. automatic addresses: pass 0 skips released addresses, pass 1 takes only them.
  const cursor = new Map<number, number>(); // block base * 2 + pass → next offset to try
  const freeIn = (block: Cidr, pass: 0 | 1): number | null => {
    const key = block.base * 2 + pass;
    const size = prefixSize(block.prefix);
    if (released.size === 0 && pass === 1) return null; // nothing was released
    for (let off = cursor.get(key) ?? 0; off < size; off++) {
      const addr = (block.base + off) >>> 0;
      if (!used.has(addr) && released.has(addr) === (pass === 1)) {
        cursor.set(key, off + 1);
        return addr;
      }
    }
    cursor.set(key, size);
    return null;
  };
  const freeAny = (block: Cidr): number | null => freeIn(block, 0) ?? freeIn(block, 1);
  const byNode = new Map<string, IpamPod[]>();
  for (const pod of pods) {
    if (pod.pinnedIP !== null || pod.nodeName === null || podResults.has(pod.key)) continue;
    const list = byNode.get(pod.nodeName) ?? [];
    list.push(pod);
    byNode.set(pod.nodeName, list);
  }
  for (const node of nodes) {
    const list = (byNode.get(node.name) ?? []).sort(compareOrder);
    const mine = usable.get(node.name)!;
    // Per pass, the node's first block that may still have a free address: a block that
    // had none for a pass never has one again (addresses are only taken), so each pod
    // does not walk the node's full blocks again.
    const open = [0, 0];
    for (const pod of list) {
      if (mine.length === 0) {
        podResults.set(pod.key, {
          pending: `IPAM: no enabled IP pool selects node ${node.name}`,
        });
        continue;
      }
      let addr: number | null = null;
      let borrowed = false;
      const own = table.blocks(node.name);
      for (const pass of [0, 1] as const) {
        for (let i = open[pass]!; i < own.length; i++) {
          addr = freeIn(own[i]!, pass);
          if (addr !== null) break;
          if (i === open[pass]) open[pass] = i + 1;
        }
        if (addr !== null) break;
      }
      for (const pool of mine) {
        if (addr !== null) break;
        const block = table.claimHashed(node.name, pool);
        if (block) addr = freeAny(block);
      }
      if (addr === null) {
        for (const { block, node: other } of table.allBlocks()) {
          if (other === node.name || !mine.includes(table.pool(block)!)) continue;
          addr = freeAny(block);
          if (addr !== null) {
            borrowed = true;
            break;
          }
        }
      }
      if (addr === null) {
        podResults.set(pod.key, {
          pending: `IPAM: no free address in IP pool(s) ${mine.map((p) => p.name).join(', ')}`,
        });
        continue;
      }
      used.set(addr, pod);
      podResults.set(pod.key, { ip: addr, borrowed });
    }
  }

  for (const node of nodes) result.get(node.name)!.blocks = [...table.blocks(node.name)];
  return { nodes: result, pods: podResults, problems, nodeWarnings, blockWarnings };
}
