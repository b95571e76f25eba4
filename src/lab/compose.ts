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
 * The node image's entrypoint (images/node-entrypoint.sh) runs, under a lock shared by
 * the containers:
 *   node dist/src/lab/compose.js prepare   validate and seed the manifests, write lab.json
 * and its healthcheck is
 *   node dist/src/lab/compose.js health    exit 0 when this container's agent is ready
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
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
 * Makes the shared lab directory ready for this container's agent: validates the seed
 * manifests (an invalid seed stops the container with the file, document and field
 * named), copies them into the manifests directory unless it already holds this very
 * seed — then the objects `kubewire apply` changed since are kept, as a cluster keeps
 * its state across restarts — and writes lab.json. The directory itself is never
 * replaced, only its files (running agents watch it). Callers serialize prepare
 * across containers (the entrypoint holds a lock).
 */
export async function prepareComposeLab(
  layout: LabLayout,
  opts: PrepareOptions,
): Promise<PrepareResult> {
  const { buildClusterState, listManifestFiles, loadManifests, ManifestErrors } =
    await import('../cluster/index.js');
  const { files, errors } = listManifestFiles(opts.seedPaths);
  if (errors.length > 0) throw new ManifestErrors(errors);
  if (files.length === 0)
    throw new Error(`no manifests under ${opts.seedPaths.join(', ')}: is the lab mounted?`);
  const seedState = buildClusterState(loadManifests(files));
  if (seedState.nodes.length === 0)
    throw new Error('the manifests define no Node: a lab needs at least one');

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
  let marker: SeedMarker | null;
  try {
    marker = JSON.parse(readFileSync(markerPath, 'utf8')) as SeedMarker;
  } catch {
    marker = null;
  }
  const now = opts.now ?? new Date();
  const seeded = marker?.hash !== seedHash;
  if (seeded) {
    const keep = new Set(named.map((f) => f.name));
    for (const entry of readdirSync(dir)) {
      if (!entry.startsWith('.') && !keep.has(entry)) rmSync(join(dir, entry), { force: true });
    }
    for (const f of named) writeAtomic(join(dir, f.name), f.content);
    writeAtomic(markerPath, JSON.stringify({ hash: seedHash, seededAt: now.toISOString() }) + '\n');
  }

  // The nodes as the manifests now say (an applied change may have added one).
  let state = seedState;
  try {
    state = buildClusterState(loadManifests([dir]));
  } catch {
    /* the agents report it; the seed's nodes are a fine record meanwhile */
  }
  const previous = existsSync(layout.labFile)
    ? (JSON.parse(readFileSync(layout.labFile, 'utf8')) as LabRecord)
    : null;
  const record: LabRecord = {
    name: layout.lab,
    createdAt:
      !seeded && previous?.mode === 'compose' && previous.createdAt
        ? previous.createdAt
        : now.toISOString(),
    mode: 'compose',
    nodes: state.nodes.map((n) => ({ name: n.name, netns: '', agentPid: null })),
    hosts: opts.hosts ?? COMPOSE_HOSTS,
    switchNetns: '',
  };
  mkdirSync(layout.dir, { recursive: true });
  writeAtomic(layout.labFile, JSON.stringify(record, null, 2) + '\n');
  return { seeded, nodes: record.nodes.map((n) => n.name), record };
}

/** The healthcheck: this container's agent answers and has converged once. */
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
  if (cmd === 'health') {
    const node = argv[1] ?? process.env.KUBEWIRE_NODE;
    if (!node) throw new Error('health needs the node name (argument or KUBEWIRE_NODE)');
    const { ok, line } = await composeHealth(layout, node);
    process.stdout.write(line + '\n');
    return ok ? 0 : 1;
  }
  process.stderr.write('usage: compose.js prepare | health [NODE]\n');
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
