/**
 * Compose mode (compose/docker-compose.yml): one container per emulated node, each
 * running the same agent as the netns lab. The containers share one volume mounted
 * at the run directory (/run/kubewire), so the lab's layout is the netns lab's:
 *
 *   <run>/<lab>/manifests/               the cluster's manifests: seeded from the read-only
 *                                        mounts, changed by `kubewire apply` in any container,
 *                                        watched by every agent
 *   <run>/<lab>/lab.json                 the lab record (mode "compose") the CLI reads
 *   <run>/<lab>/nodes/<node>/agent.sock  each agent's control socket: a unix socket on the
 *                                        shared volume, so the CLI in any container reaches
 *                                        every agent (get pods -A, ip route --node …)
 *
 * Pods' network namespaces stay inside their node's container: `kubewire exec` runs
 * in the container of the pod's node.
 *
 * The node image's entrypoint (images/node-entrypoint.sh) runs
 *   node dist/src/lab/compose.js prepare      (under a lock shared by the containers)
 *                                             validate and seed the manifests, write lab.json
 * then the agent with `--ready-file <node dir>/ready`, the marker the compose healthcheck
 * tests (a `test -e`, so a healthcheck every second costs nothing). Also:
 *   node dist/src/lab/compose.js wait-ready   wait for the agent's first convergence, then
 *                                             write the same marker (for an agent started
 *                                             without --ready-file)
 *   node dist/src/lab/compose.js health       the agent's status in one line; exit 0 if ready
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { callAgent } from '../agent/control.js';
import { LabLayout, labNameFromEnv, type LabRecord } from '../agent/lab-layout.js';
import type { AgentStatus } from '../agent/node-agent.js';

/** Where the compose file mounts the reference lab's Node objects and manifests. */
export const DEFAULT_SEED = '/etc/kubewire/nodes:/etc/kubewire/manifests';
/** Marker in the manifests directory (hidden: agents and `apply` skip it). */
const SEED_MARKER = '.seed.json';

interface SeedMarker {
  hash: string;
  seededAt: string;
}

export interface PrepareResult {
  /** True when the manifests were (re)written from the seed; false when they were kept. */
  seeded: boolean;
  nodes: string[];
  record: LabRecord;
}

export interface PrepareOptions {
  seedPaths: string[];
  hosts?: LabRecord['hosts'];
  now?: Date;
}

/** The ready marker of a node (written by the agent or wait-ready, tested by the healthcheck). */
export function readyFile(layout: LabLayout, node: string): string {
  return join(layout.nodeDir(node), 'ready');
}

/**
 * The seed's manifest files in the order the loader reads them (src/cluster/load.ts:
 * directories recursively, names in byte order, .yaml/.yml/.json, hidden entries
 * skipped), without loading the cluster model: a container whose seed is already in
 * place starts its agent at once.
 */
export function seedFiles(paths: readonly string[]): string[] {
  const out: string[] = [];
  const visit = (path: string, explicit: boolean): void => {
    if (!existsSync(path)) throw new Error(`${path}: no such file or directory`);
    if (!statSync(path).isDirectory()) {
      if (explicit || /\.(ya?ml|json)$/i.test(path)) out.push(path);
      return;
    }
    const entries = readdirSync(path).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const e of entries) if (!e.startsWith('.')) visit(join(path, e), false);
  };
  for (const p of paths) visit(p, true);
  return out;
}

/** The lab's client and router, as the compose file places them. */
export const COMPOSE_HOSTS: LabRecord['hosts'] = [
  { name: 'router', netns: '', address: '10.1.110.1' },
  { name: 'client', netns: '', address: '10.1.0.89' },
];

function writeAtomic(path: string, content: string): void {
  const tmp = join(
    join(path, '..'),
    `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`,
  );
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}

/**
 * Makes the shared lab directory ready for this container's agent: copies the seed
 * manifests into the manifests directory unless it already holds this very seed —
 * then the objects `kubewire apply` changed since are kept, as a cluster keeps its
 * state across restarts — and writes lab.json. The directory itself is never
 * replaced, only its files (running agents watch it). The manifests are not validated
 * here: the agent does, and stops naming file, document and field. Callers serialize
 * prepare across containers (the entrypoint holds a lock); it is quick, so the
 * containers that wait are not held up.
 */
export async function prepareComposeLab(
  layout: LabLayout,
  opts: PrepareOptions,
): Promise<PrepareResult> {
  const files = seedFiles(opts.seedPaths);
  if (files.length === 0)
    throw new Error(`no manifests under ${opts.seedPaths.join(', ')}: is the lab mounted?`);
  const named = files.map((f, i) => ({
    name: `${String(i).padStart(3, '0')}-${basename(f)}`,
    content: readFileSync(f, 'utf8'),
  }));
  const hash = createHash('sha256');
  for (const f of named) hash.update(`${f.name}\0${f.content}\0`);
  const seedHash = hash.digest('hex');

  const dir = layout.manifestsDir;
  mkdirSync(dir, { recursive: true });
  const markerPath = join(dir, SEED_MARKER);
  const marker = readJson<SeedMarker>(markerPath);
  const previous = readJson<LabRecord>(layout.labFile);
  const now = opts.now ?? new Date();
  const seeded = marker?.hash !== seedHash;
  // Another container has put this seed in place and written the record: nothing to do.
  if (!seeded && previous?.mode === 'compose' && previous.nodes.length > 0) {
    return { seeded, nodes: previous.nodes.map((n) => n.name), record: previous };
  }

  // No validation here: the agent validates, and stops with the file, document and field
  // named when the manifests are invalid (the slow part of starting stays off the lock).
  if (seeded) {
    const keep = new Set(named.map((f) => f.name));
    for (const entry of readdirSync(dir)) {
      if (!entry.startsWith('.') && !keep.has(entry)) rmSync(join(dir, entry), { force: true });
    }
    for (const f of named) writeAtomic(join(dir, f.name), f.content);
    writeAtomic(markerPath, JSON.stringify({ hash: seedHash, seededAt: now.toISOString() }) + '\n');
  }
  // The nodes as the manifests now say (an applied change may have added one).
  const nodes = await nodeNames(seedFiles([dir]));
  if (nodes.length === 0) throw new Error('the manifests define no Node: a lab needs at least one');
  const record: LabRecord = {
    name: layout.lab,
    createdAt:
      !seeded && previous?.mode === 'compose' && previous.createdAt
        ? previous.createdAt
        : now.toISOString(),
    mode: 'compose',
    nodes: nodes.map((name) => ({ name, netns: '', agentPid: null })),
    hosts: opts.hosts ?? COMPOSE_HOSTS,
    switchNetns: '',
  };
  mkdirSync(layout.dir, { recursive: true });
  writeAtomic(layout.labFile, JSON.stringify(record, null, 2) + '\n');
  return { seeded, nodes: record.nodes.map((n) => n.name), record };
}

/** Names of the Node objects in these files (YAML or JSON, many documents each). */
async function nodeNames(files: string[]): Promise<string[]> {
  const { parseAllDocuments } = await import('yaml');
  const names = new Set<string>();
  for (const f of files) {
    for (const doc of parseAllDocuments(readFileSync(f, 'utf8'))) {
      const o = doc.toJSON() as { kind?: unknown; metadata?: { name?: unknown } } | null;
      if (o?.kind === 'Node' && typeof o.metadata?.name === 'string') names.add(o.metadata.name);
    }
  }
  return [...names];
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/**
 * Waits until the agent has converged once, then writes its ready marker. Gives up
 * (without a marker: the container turns unhealthy) after `timeoutMs`.
 */
export async function waitReady(
  layout: LabLayout,
  node: string,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { ok, line } = await composeHealth(layout, node);
    if (ok) {
      writeAtomic(readyFile(layout, node), `${new Date().toISOString()} ${line}\n`);
      return true;
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** This container's agent answers and has converged once. */
export async function composeHealth(
  layout: LabLayout,
  node: string,
): Promise<{ ok: boolean; line: string }> {
  const st = await callAgent<AgentStatus>(layout.agentSocket(node), 'status', {}, 3000).catch(
    (err: Error) => err,
  );
  if (st instanceof Error)
    return { ok: false, line: `${node}: agent not answering: ${st.message}` };
  const ready = st.pods.filter((p) => p.ready).length;
  const line = `${node}: ${st.ready ? 'ready' : 'converging'}, generation ${st.generation}, ${ready}/${st.pods.length} pods ready${st.lastError ? `, last error: ${st.lastError}` : ''}`;
  return { ok: st.ready, line };
}

async function main(argv: string[]): Promise<number> {
  const layout = new LabLayout(labNameFromEnv());
  const cmd = argv[0];
  if (cmd === 'prepare') {
    const seedPaths = (process.env.KUBEWIRE_SEED ?? DEFAULT_SEED).split(':').filter(Boolean);
    const res = await prepareComposeLab(layout, { seedPaths });
    process.stderr.write(
      `kubewire: lab '${layout.lab}' (${res.nodes.join(', ')}): manifests ${
        res.seeded ? `seeded from ${seedPaths.join(', ')}` : 'kept (seed unchanged)'
      } in ${layout.manifestsDir}\n`,
    );
    return 0;
  }
  if (cmd === 'wait-ready') {
    const node = process.env.KUBEWIRE_NODE;
    if (!node) throw new Error('wait-ready needs KUBEWIRE_NODE');
    const ok = await waitReady(
      layout,
      node,
      Number(process.env.KUBEWIRE_READY_TIMEOUT ?? 300) * 1000,
    );
    if (!ok) process.stderr.write(`kubewire: node ${node} did not become ready\n`);
    return ok ? 0 : 1;
  }
  if (cmd === 'health') {
    const node = argv[1] ?? process.env.KUBEWIRE_NODE;
    if (!node) throw new Error('health needs the node name (argument or KUBEWIRE_NODE)');
    const { ok, line } = await composeHealth(layout, node);
    process.stdout.write(line + '\n');
    return ok ? 0 : 1;
  }
  process.stderr.write('usage: compose.js prepare | wait-ready | health [NODE]\n');
  return 2;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`kubewire: ${err.message}\n`);
      process.exit(1);
    },
  );
}
