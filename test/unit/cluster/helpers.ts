import assert from 'node:assert/strict';
import {
  buildClusterState,
  ManifestErrors,
  type ClusterState,
  type ManifestDocument,
  type PodState,
  type ServiceState,
} from '../../../src/cluster/index.js';

/** Wraps objects as documents 1..n of one file. */
export function docs(...objects: unknown[]): ManifestDocument[] {
  return objects.map((object, i) => ({ file: 'test.yaml', index: i + 1, object }));
}

export function build(...objects: unknown[]): ClusterState {
  return buildClusterState(docs(...objects));
}

/** Builds and expects ManifestErrors; returns the error messages. */
export function buildErrors(...objects: unknown[]): string[] {
  try {
    buildClusterState(docs(...objects));
  } catch (e) {
    assert.ok(e instanceof ManifestErrors, `expected ManifestErrors, got ${String(e)}`);
    return e.errors.map((x) => x.message);
  }
  assert.fail('expected buildClusterState to throw');
}

export function node(
  name: string,
  ip: string,
  opts: {
    podCIDR?: string;
    labels?: Record<string, string>;
    taints?: { key: string; value?: string; effect: string }[];
    unschedulable?: boolean;
  } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, ...(opts.labels ? { labels: opts.labels } : {}) },
    spec: {
      ...(opts.podCIDR ? { podCIDR: opts.podCIDR } : {}),
      ...(opts.taints ? { taints: opts.taints } : {}),
      ...(opts.unschedulable !== undefined ? { unschedulable: opts.unschedulable } : {}),
    },
    status: { addresses: [{ type: 'InternalIP', address: ip }] },
  };
}

export const CONTROL_PLANE_TAINT = {
  key: 'node-role.kubernetes.io/control-plane',
  effect: 'NoSchedule',
};

/** The reference lab's three nodes. */
export function labNodes(): Record<string, unknown>[] {
  return [
    node('control-plane', '10.1.110.108', {
      podCIDR: '192.168.165.192/26',
      labels: { 'node-role.kubernetes.io/control-plane': '' },
      taints: [CONTROL_PLANE_TAINT],
    }),
    node('worker-1', '10.1.110.102', { podCIDR: '192.168.104.64/26' }),
    node('worker-2', '10.1.110.107', { podCIDR: '192.168.8.192/26' }),
  ];
}

export function container(
  name = 'app',
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { name, image: 'example/echo:1', ...extra };
}

export function pod(
  name: string,
  opts: {
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    spec?: Record<string, unknown>;
  } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
      ...(opts.labels ? { labels: opts.labels } : {}),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec: { containers: [container()], ...(opts.spec ?? {}) },
  };
}

export function deployment(
  name: string,
  replicas: number | undefined,
  opts: {
    namespace?: string;
    podSpec?: Record<string, unknown>;
    annotations?: Record<string, string>;
  } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, ...(opts.namespace ? { namespace: opts.namespace } : {}) },
    spec: {
      ...(replicas !== undefined ? { replicas } : {}),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: {
          labels: { app: name },
          ...(opts.annotations ? { annotations: opts.annotations } : {}),
        },
        spec: { containers: [container()], ...(opts.podSpec ?? {}) },
      },
    },
  };
}

export function daemonSet(
  name: string,
  opts: { namespace?: string; podSpec?: Record<string, unknown> } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, ...(opts.namespace ? { namespace: opts.namespace } : {}) },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [container()], ...(opts.podSpec ?? {}) },
      },
    },
  };
}

export function ipPool(
  name: string,
  spec: Record<string, unknown>,
  apiVersion = 'crd.projectcalico.org/v1',
): Record<string, unknown> {
  return { apiVersion, kind: 'IPPool', metadata: { name }, spec };
}

export function findPod(state: ClusterState, namespace: string, name: string): PodState {
  const p = state.pods.find((x) => x.namespace === namespace && x.name === name);
  assert.ok(p, `pod ${namespace}/${name} not found`);
  return p;
}

export function podsOf(state: ClusterState, ownerName: string): PodState[] {
  return state.pods
    .filter((p) => p.owner?.name === ownerName)
    .sort((a, b) => (a.ownerIndex ?? 0) - (b.ownerIndex ?? 0));
}

/** Deterministic Fisher–Yates shuffle (mulberry32). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  let s = seed >>> 0;
  const rand = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export function service(
  name: string,
  spec: Record<string, unknown>,
  opts: {
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
      ...(opts.labels ? { labels: opts.labels } : {}),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec,
  };
}

export function findService(state: ClusterState, namespace: string, name: string): ServiceState {
  const s = state.services.find((x) => x.namespace === namespace && x.name === name);
  assert.ok(s, `service ${namespace}/${name} not found`);
  return s;
}
