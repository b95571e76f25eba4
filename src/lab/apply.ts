import { readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  buildClusterState,
  parseManifestText,
  renderAllocationsManifest,
  renderIpamManifest,
  type ManifestDocument,
} from '../cluster/index.js';
import type { LabLayout } from '../agent/lab-layout.js';

/** Kinds without a namespace: their identity is kind and name only. */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'Node',
  'IngressClass',
  'IPPool',
  'ClusterConfiguration',
  'GlobalNetworkPolicy',
  'BGPConfiguration',
  'FelixConfiguration',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PersistentVolume',
  'StorageClass',
]);

interface ObjectRef {
  key: string;
  /** kubectl's way to name it: deployment.apps/web. */
  display: string;
}

function refOf(obj: unknown): ObjectRef | null {
  if (typeof obj !== 'object' || obj === null) return null;
  const o = obj as {
    apiVersion?: unknown;
    kind?: unknown;
    metadata?: { name?: unknown; namespace?: unknown };
  };
  if (typeof o.kind !== 'string') return null;
  const name = typeof o.metadata?.name === 'string' ? o.metadata.name : '';
  const ns = CLUSTER_SCOPED.has(o.kind)
    ? ''
    : typeof o.metadata?.namespace === 'string'
      ? o.metadata.namespace
      : 'default';
  const group =
    typeof o.apiVersion === 'string' && o.apiVersion.includes('/')
      ? o.apiVersion.split('/')[0]
      : '';
  return {
    key: `${o.kind}/${ns}/${name}`,
    display: `${o.kind.toLowerCase()}${group ? `.${group}` : ''}/${name || o.kind.toLowerCase()}`,
  };
}

interface LabFile {
  path: string;
  /** Each document's text and parsed value, in order. */
  docs: { text: string; object: unknown }[];
}

function readLabFiles(dir: string): LabFile[] {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('.') && /\.(ya?ml|json)$/i.test(f))
    .sort()
    .map((f) => {
      const path = join(dir, f);
      const docs = parseAllDocuments(readFileSync(path, 'utf8'))
        .filter((d) => d.contents !== null)
        .map((d) => ({ text: String(d), object: d.toJSON() as unknown }));
      return { path, docs };
    });
}

export interface ApplyResult {
  lines: string[];
  changed: boolean;
}

/**
 * `kubewire apply -f FILE` / `kubewire delete -f FILE` for a running lab: the
 * objects of FILE replace (or remove) the objects with the same kind,
 * namespace and name in the lab's manifests. The whole result is validated
 * first; if it is invalid nothing is written and the error names the file,
 * document and field. Files are written under hidden names and renamed into
 * place, so the agents, which skip hidden files, never read half a change.
 */
export function applyManifestFile(
  layout: LabLayout,
  file: string,
  mode: 'apply' | 'delete',
): ApplyResult {
  const text = readFileSync(file, 'utf8');
  const incoming = parseManifestText(text, file);
  const refs = new Map<string, { ref: ObjectRef; doc: ManifestDocument }>();
  for (const doc of incoming) {
    const ref = refOf(doc.object);
    if (ref) refs.set(ref.key, { ref, doc });
  }
  const existing = readLabFiles(layout.manifestsDir);
  const before = new Map<string, string>();
  const rewritten: { path: string; docs: LabFile['docs'] }[] = [];
  for (const f of existing) {
    const kept = f.docs.filter((d) => {
      const ref = refOf(d.object);
      if (ref && refs.has(ref.key)) {
        before.set(ref.key, JSON.stringify(d.object));
        return false;
      }
      return true;
    });
    rewritten.push({ path: f.path, docs: kept });
  }

  const lines: string[] = [];
  for (const { ref, doc } of refs.values()) {
    const old = before.get(ref.key);
    if (mode === 'delete') {
      lines.push(
        old === undefined
          ? `Error from server (NotFound): ${ref.display} not found`
          : `${ref.display} deleted`,
      );
    } else {
      lines.push(
        `${ref.display} ${old === undefined ? 'created' : old === JSON.stringify(doc.object) ? 'unchanged' : 'configured'}`,
      );
    }
  }
  const changed = lines.some((l) => / (created|configured|deleted)$/.test(l));
  if (!changed) return { lines, changed };

  // Validate the lab as it would be, before touching anything.
  const candidate: ManifestDocument[] = [];
  for (const f of rewritten) {
    if (f.docs.length)
      candidate.push(...parseManifestText(f.docs.map((d) => d.text).join('---\n'), f.path));
  }
  if (mode === 'apply') candidate.push(...incoming);
  const next = buildClusterState(candidate);

  const writes: { path: string; content: string | null }[] = [];
  for (const f of rewritten) {
    const orig = existing.find((e) => e.path === f.path)!;
    if (f.docs.length === orig.docs.length) continue;
    writes.push({
      path: f.path,
      content: f.docs.length ? f.docs.map((d) => d.text).join('---\n') : null,
    });
  }
  if (mode === 'apply') {
    const stamp = Date.now().toString(36);
    writes.push({
      path: join(layout.manifestsDir, `900-apply-${stamp}-${basename(file)}`),
      content: text,
    });
  }
  // Last, the IPAM records of the new state (computed with the old records, so running
  // pods keep their addresses): an agent reading between the renames computes the same.
  writes.push({ path: ipamManifestPath(layout), content: renderIpamManifest(next) });
  writes.push({
    path: loadBalancerManifestPath(layout),
    content: renderAllocationsManifest(next.metallb.loadBalancers),
  });
  const staged = writes.map((w) => {
    if (w.content === null) return { ...w, tmp: null };
    const tmp = join(layout.manifestsDir, `.${basename(w.path)}.tmp`);
    writeFileSync(tmp, w.content);
    return { ...w, tmp };
  });
  for (const w of staged) {
    if (w.tmp) renameSync(w.tmp, w.path);
    else rmSync(w.path, { force: true });
  }
  return { lines, changed };
}

/** Where the lab keeps Calico's IPAM records (IPAMBlock objects) among its manifests. */
export function ipamManifestPath(layout: LabLayout): string {
  return join(layout.manifestsDir, '999-calico-ipam-blocks.yaml');
}

/** Where the lab keeps the LoadBalancer addresses MetalLB assigned (a ConfigMap). */
export function loadBalancerManifestPath(layout: LabLayout): string {
  return join(layout.manifestsDir, '998-metallb-loadbalancer-ips.yaml');
}
