/**
 * Deterministic scheduling: which node a pod runs on.
 *
 * Feasibility follows kube-scheduler's filters that matter here (NodeName,
 * NodeAffinity for spec.nodeSelector and required node affinity, TaintToleration for
 * NoSchedule and NoExecute taints). Among feasible nodes, sorted by name, the choice is a
 * stable hash instead of kube-scheduler's scoring:
 *
 * - replica i of a Deployment goes to feasible node (offset + i) mod n, with
 *   offset = stableHash32("<namespace>/<deployment>"); replicas are spread evenly (counts
 *   differ by at most one) and scaling up never moves an existing replica;
 * - a bare Pod goes to feasible node stableHash32("<namespace>/<pod>") mod n.
 */
import { stableHash32 } from './hash.js';
import {
  matchesMapSelector,
  matchesNodeSelectorTerms,
  type Labels,
  type NodeSelectorTerm,
} from './selectors.js';

export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';

export interface Taint {
  key: string;
  value?: string;
  effect: TaintEffect;
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: TaintEffect;
  tolerationSeconds?: number;
}

/** The taint kubeadm puts on control-plane nodes. */
export const CONTROL_PLANE_TAINT: Taint = {
  key: 'node-role.kubernetes.io/control-plane',
  effect: 'NoSchedule',
};

/** The taint Kubernetes shows on a node with spec.unschedulable: true. */
export const UNSCHEDULABLE_TAINT: Taint = {
  key: 'node.kubernetes.io/unschedulable',
  effect: 'NoSchedule',
};

/** core/v1 Toleration.ToleratesTaint. */
export function toleratesTaint(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  if ((toleration.operator ?? 'Equal') === 'Exists') return true;
  return (toleration.value ?? '') === (taint.value ?? '');
}

/** The first taint with one of `effects` that no toleration tolerates. */
export function firstUntoleratedTaint(
  taints: readonly Taint[],
  tolerations: readonly Toleration[],
  effects: readonly TaintEffect[],
): Taint | undefined {
  return taints.find(
    (taint) => effects.includes(taint.effect) && !tolerations.some((t) => toleratesTaint(t, taint)),
  );
}

/**
 * The tolerations the DaemonSet controller adds to its pods
 * (pkg/controller/daemon/util.AddOrUpdateDaemonPodTolerations).
 */
export function daemonSetTolerations(hostNetwork: boolean): Toleration[] {
  const t = (key: string, effect: TaintEffect): Toleration => ({
    key: `node.kubernetes.io/${key}`,
    operator: 'Exists',
    effect,
  });
  return [
    t('not-ready', 'NoExecute'),
    t('unreachable', 'NoExecute'),
    t('disk-pressure', 'NoSchedule'),
    t('memory-pressure', 'NoSchedule'),
    t('pid-pressure', 'NoSchedule'),
    t('unschedulable', 'NoSchedule'),
    ...(hostNetwork ? [t('network-unavailable', 'NoSchedule')] : []),
  ];
}

export interface SchedulingNode {
  name: string;
  labels: Labels;
  taints: readonly Taint[];
}

export interface SchedulingConstraints {
  nodeSelector: Labels;
  /** requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms, if any. */
  affinityTerms?: NodeSelectorTerm[];
  tolerations: readonly Toleration[];
}

function taintText(taint: Taint): string {
  return `{${taint.key}: ${taint.value ?? ''}}`;
}

const SELECTOR_MISMATCH = "node(s) didn't match Pod's node affinity/selector";

/** Why `node` cannot run the pod (a kube-scheduler style reason), or null if it can. */
export function unfitReason(pod: SchedulingConstraints, node: SchedulingNode): string | null {
  const selectorOk =
    matchesMapSelector(pod.nodeSelector, node.labels) &&
    (pod.affinityTerms === undefined ||
      matchesNodeSelectorTerms(pod.affinityTerms, node.name, node.labels));
  if (!selectorOk) return SELECTOR_MISMATCH;
  const taint = firstUntoleratedTaint(node.taints, pod.tolerations, ['NoSchedule', 'NoExecute']);
  if (taint) return `node(s) had untolerated taint ${taintText(taint)}`;
  return null;
}

/** Feasible nodes (in the given order) or the scheduler's "0/N nodes are available" text. */
export function feasibleNodes<N extends SchedulingNode>(
  pod: SchedulingConstraints,
  nodes: readonly N[],
): { nodes: N[]; reason: string } {
  const ok: N[] = [];
  const counts = new Map<string, number>();
  for (const node of nodes) {
    const why = unfitReason(pod, node);
    if (why === null) ok.push(node);
    else counts.set(why, (counts.get(why) ?? 0) + 1);
  }
  if (nodes.length === 0) return { nodes: ok, reason: 'no nodes available to schedule pods' };
  const parts = [...counts].map(([why, n]) => `${n} ${why}`).sort();
  return { nodes: ok, reason: `0/${nodes.length} nodes are available: ${parts.join(', ')}.` };
}

/**
 * Checks a pod that names its node (spec.nodeName bypasses the scheduler). As the
 * kubelet's admission does, the node must exist, match the pod's node selector and
 * affinity, and the pod must tolerate its NoExecute taints; NoSchedule taints do not apply.
 */
export function checkNamedNode(
  pod: SchedulingConstraints,
  nodeName: string,
  nodes: readonly SchedulingNode[],
): string | null {
  const node = nodes.find((n) => n.name === nodeName);
  if (!node) return `spec.nodeName: node "${nodeName}" does not exist`;
  const selectorOk =
    matchesMapSelector(pod.nodeSelector, node.labels) &&
    (pod.affinityTerms === undefined ||
      matchesNodeSelectorTerms(pod.affinityTerms, node.name, node.labels));
  if (!selectorOk) return `node "${nodeName}" does not match the pod's node selector/affinity`;
  const taint = firstUntoleratedTaint(node.taints, pod.tolerations, ['NoExecute']);
  if (taint) return `node "${nodeName}" has untolerated NoExecute taint ${taintText(taint)}`;
  return null;
}

/**
 * The index into the n feasible nodes (sorted by name) for replica `index` of the spread
 * group `key` ("<namespace>/<deployment>", or "<namespace>/<pod>" with index 0).
 */
export function spreadIndex(key: string, index: number, n: number): number {
  return (stableHash32(key) + index) % n;
}
