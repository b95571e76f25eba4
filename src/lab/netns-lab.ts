import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildClusterState,
  loadManifests,
  renderAllocationsManifest,
  renderIpamManifest,
  type ClusterState,
} from '../cluster/index.js';
import { ipamManifestPath, loadBalancerManifestPath } from './apply.js';
import { callAgent } from '../agent/control.js';
import { LabLayout, type LabRecord } from '../agent/lab-layout.js';
import type { AgentStatus } from '../agent/node-agent.js';
import { BUILTIN_NODE_FLAGS } from '../agent/workloads.js';
import { ip, run } from '../util/exec.js';
import { labTopology, macForAddress, type LabTopology } from './topology.js';

const agentMain = fileURLToPath(new URL('../agent/main.js', import.meta.url));

export class LabError extends Error {
  override name = 'LabError';
}

export function readLabRecord(layout: LabLayout): LabRecord | null {
  if (!existsSync(layout.labFile)) return null;
  return JSON.parse(readFileSync(layout.labFile, 'utf8')) as LabRecord;
}

function writeLabRecord(layout: LabLayout, record: LabRecord): void {
  writeFileSync(layout.labFile, JSON.stringify(record, null, 2) + '\n');
}

/** Expands the user's paths into the manifest files they name (directories recursively). */
function manifestFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const entry of readdirSync(p).sort()) walk(join(p, entry));
    } else if (/\.(ya?ml|json)$/i.test(p) || paths.includes(p)) {
      out.push(p);
    }
  };
  for (const p of paths) {
    if (!existsSync(p)) throw new LabError(`${p}: no such file or directory`);
    walk(p);
  }
  return out;
}

export interface UpOptions {
  timeoutMs?: number;
  progress?: (message: string) => void;
}

/**
 * `kubewire up` in netns mode: validates the manifests (nothing is created if
 * they are invalid), copies them into the lab directory, creates one network
 * namespace per node with its agent, and waits for every pod to be ready.
 */
export async function labUp(
  layout: LabLayout,
  paths: string[],
  opts: UpOptions = {},
): Promise<LabRecord> {
  const progress = opts.progress ?? (() => undefined);
  const existing = readLabRecord(layout);
  if (existing) {
    throw new LabError(
      `lab '${layout.lab}' is already running (created ${existing.createdAt}, nodes ${existing.nodes
        .map((n) => n.name)
        .join(
          ', ',
        )}); run 'kubewire down${layout.lab === 'kw' ? '' : ` --lab ${layout.lab}`}' first`,
    );
  }
  const files = manifestFiles(paths);
  const state: ClusterState = buildClusterState(loadManifests(files));
  if (state.nodes.length === 0)
    throw new LabError('the manifests define no Node: a lab needs at least one');
  let topology: LabTopology;
  try {
    topology = labTopology(state);
  } catch (err) {
    throw new LabError((err as Error).message);
  }
  for (const w of state.warnings) progress(`warning: ${w}`);

  mkdirSync(layout.manifestsDir, { recursive: true });
  files.forEach((f, i) =>
    copyFileSync(f, join(layout.manifestsDir, `${String(i).padStart(3, '0')}-${basename(f)}`)),
  );
  writeFileSync(ipamManifestPath(layout), renderIpamManifest(state));
  writeFileSync(
    loadBalancerManifestPath(layout),
    renderAllocationsManifest(state.metallb.loadBalancers),
  );
  const record: LabRecord = {
    name: layout.lab,
    createdAt: new Date().toISOString(),
    mode: 'netns',
    nodes: state.nodes.map((n) => ({
      name: n.name,
      netns: layout.nodeNetns(n.name),
      agentPid: null,
    })),
    hosts: [
      {
        name: 'router',
        netns: layout.hostNetns('router'),
        address: topology.router.underlayAddress,
      },
      { name: 'client', netns: layout.hostNetns('client'), address: topology.client.address },
    ],
    switchNetns: layout.switchNetns,
  };
  writeLabRecord(layout, record);
  try {
    progress(
      `underlay ${topology.underlay.network}/${topology.underlay.prefixLen}: creating switch, router and client`,
    );
    await buildNetwork(layout, record, topology);
    for (const node of record.nodes) {
      progress(`node ${node.name}: starting agent in ${node.netns}`);
      node.agentPid = startAgent(layout, node.name, node.netns);
      writeLabRecord(layout, record);
    }
    await waitReady(layout, record, opts.timeoutMs ?? 120_000, progress);
  } catch (err) {
    progress(`error: ${(err as Error).message}; removing what was created`);
    await labDown(layout, () => undefined);
    throw err;
  }
  return record;
}

const UNDERLAY_BRIDGE = 'underlay';
const CLIENT_BRIDGE = 'clients';

/**
 * The lab's wires: two bridges in the switch namespace (no uplink, so nothing
 * leaves the lab), a veth from each node's eth0 to the underlay bridge, the
 * router on both bridges with forwarding on, and the client behind it.
 */
async function buildNetwork(
  layout: LabLayout,
  record: LabRecord,
  topo: LabTopology,
): Promise<void> {
  const sw = record.switchNetns;
  await ip(['netns', 'add', sw]);
  await ip(['link', 'set', 'lo', 'up'], sw);
  // A plain L2 switch: where br_netfilter is loaded (Docker loads it), bridged frames would
  // otherwise go through the switch namespace's (empty) iptables, a cost on every frame.
  for (const family of ['iptables', 'ip6tables', 'arptables']) {
    await run('ip', [
      'netns',
      'exec',
      sw,
      'sysctl',
      '-q',
      '-w',
      `net.bridge.bridge-nf-call-${family}=0`,
    ]).catch(() => undefined);
  }
  for (const br of [UNDERLAY_BRIDGE, CLIENT_BRIDGE]) {
    await ip(['link', 'add', br, 'type', 'bridge'], sw);
    await ip(['link', 'set', br, 'up'], sw);
  }
  const plug = async (
    netns: string,
    dev: string,
    port: string,
    bridge: string,
    addr: string,
    prefixLen: number,
  ) => {
    await ip(['link', 'add', port, 'type', 'veth', 'peer', 'name', dev, 'netns', netns], sw);
    await ip(['link', 'set', port, 'master', bridge, 'up'], sw);
    await ip(['link', 'set', 'dev', dev, 'address', macForAddress(addr), 'up'], netns);
    await ip(['addr', 'add', `${addr}/${prefixLen}`, 'dev', dev], netns);
  };
  const u = topo.underlay.prefixLen;
  for (const [i, node] of record.nodes.entries()) {
    const t = topo.nodes.find((n) => n.name === node.name)!;
    await ip(['netns', 'add', node.netns]);
    await ip(['link', 'set', 'lo', 'up'], node.netns);
    await plug(node.netns, 'eth0', `node${i}`, UNDERLAY_BRIDGE, t.address, u);
    await ip(
      ['route', 'add', 'default', 'via', topo.router.underlayAddress, 'dev', 'eth0'],
      node.netns,
    );
  }
  const router = layout.hostNetns('router');
  await ip(['netns', 'add', router]);
  await ip(['link', 'set', 'lo', 'up'], router);
  await plug(router, 'eth0', 'router0', UNDERLAY_BRIDGE, topo.router.underlayAddress, u);
  await plug(
    router,
    'eth1',
    'router1',
    CLIENT_BRIDGE,
    topo.router.clientAddress,
    topo.client.prefixLen,
  );
  await run('ip', ['netns', 'exec', router, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  const client = layout.hostNetns('client');
  await ip(['netns', 'add', client]);
  await ip(['link', 'set', 'lo', 'up'], client);
  await plug(client, 'eth0', 'client0', CLIENT_BRIDGE, topo.client.address, topo.client.prefixLen);
  await ip(['route', 'add', 'default', 'via', topo.router.clientAddress, 'dev', 'eth0'], client);
}

function startAgent(layout: LabLayout, node: string, netns: string): number {
  mkdirSync(layout.nodeDir(node), { recursive: true });
  const log = openSync(layout.agentLog(node), 'a');
  // nsenter, not `ip netns exec`: the latter gives the agent a private mount namespace,
  // and the pod namespaces the agent then creates (bind mounts under /run/netns) would
  // not be visible to anyone else, `kubewire exec` included.
  const args = [
    '--net=' + join('/run/netns', netns),
    process.execPath,
    ...BUILTIN_NODE_FLAGS,
    agentMain,
    '--lab',
    layout.lab,
    '--node',
    node,
  ];
  const child = spawn('nsenter', args, {
    detached: true,
    stdio: ['ignore', log, log],
    env: process.env,
  });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new LabError(`cannot start the agent of node ${node}`);
  return child.pid;
}

async function waitReady(
  layout: LabLayout,
  record: LabRecord,
  timeoutMs: number,
  progress: (m: string) => void,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(record.nodes.map((n) => n.name));
  let last = '';
  while (pending.size > 0) {
    for (const node of record.nodes) {
      if (!pending.has(node.name)) continue;
      if (node.agentPid !== null && !processAlive(node.agentPid)) {
        throw new LabError(
          `the agent of node ${node.name} exited:\n${tail(layout.agentLog(node.name), 20)}`,
        );
      }
      const status = await callAgent<AgentStatus>(
        layout.agentSocket(node.name),
        'status',
        {},
        2000,
      ).catch(() => null);
      if (!status) continue;
      const readyPods = status.pods.filter((p) => p.ready).length;
      const line = `node ${node.name}: ${readyPods}/${status.pods.length} pods ready`;
      if (status.ready) {
        pending.delete(node.name);
        progress(line);
      } else if (line !== last) {
        progress(line);
        last = line;
      }
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) {
      throw new LabError(
        `timed out after ${timeoutMs} ms waiting for nodes ${[...pending].join(', ')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when pid is the agent of this lab and node (never signal someone else's process). */
function isOurAgent(pid: number, lab: string, node: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes(agentMain) && argv.includes(lab) && argv.includes(node);
  } catch {
    return false;
  }
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * `kubewire down`: asks each agent to stop (it removes its pods), then makes
 * sure: signals only the recorded agent pids (after checking they are ours),
 * deletes every namespace the lab recorded, and removes the lab directory.
 */
export async function labDown(
  layout: LabLayout,
  progress: (m: string) => void = () => undefined,
): Promise<boolean> {
  const record = readLabRecord(layout);
  if (!record && !existsSync(layout.dir)) return false;
  const nodes = record?.nodes ?? [];
  await Promise.all(
    nodes.map(async (node) => {
      progress(`node ${node.name}: stopping agent`);
      await callAgent(layout.agentSocket(node.name), 'shutdown', {}, 3000).catch(() => undefined);
      const pid = node.agentPid;
      if (pid !== null && isOurAgent(pid, layout.lab, node.name)) {
        const deadline = Date.now() + 15_000;
        while (processAlive(pid) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
        if (processAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    }),
  );
  // Whatever an agent could not remove (it crashed, or was killed) is removed here.
  for (const node of nodes) {
    let podNamespaces: string[] = [];
    try {
      podNamespaces = JSON.parse(readFileSync(layout.netnsRecord(node.name), 'utf8')) as string[];
    } catch {
      /* no record */
    }
    for (const ns of podNamespaces) {
      await killNamespaceProcesses(ns);
      await ip(['netns', 'del', ns]).catch(() => undefined);
      rmSync(join('/etc/netns', ns), { recursive: true, force: true });
    }
    await killNamespaceProcesses(node.netns);
    await ip(['netns', 'del', node.netns]).catch(() => undefined);
  }
  // Hosts and the switch: by their recorded names, or the names `up` would have used.
  const extra = record
    ? [...(record.hosts ?? []).map((h) => h.netns), record.switchNetns]
    : [layout.hostNetns('router'), layout.hostNetns('client'), layout.switchNetns];
  for (const ns of extra) {
    if (!ns) continue;
    await killNamespaceProcesses(ns);
    await ip(['netns', 'del', ns]).catch(() => undefined);
  }
  rmSync(layout.dir, { recursive: true, force: true });
  progress(`lab '${layout.lab}' removed`);
  return true;
}

/** Kills what is left running inside a namespace the lab created (programs of a crashed agent). */
async function killNamespaceProcesses(netns: string): Promise<void> {
  const out = await ip(['netns', 'pids', netns]).catch(() => '');
  for (const pid of out.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/**
 * `kubewire node stop NAME`: stops one node's agent, and with it the node's pods and
 * its answers on the underlay. Without `leave` the agent says nothing to the others, as
 * a node that fails: they notice by its silence (see NodeLiveness). Returns when the
 * agent began stopping (ISO time), as it said.
 */
export async function stopNodeAgent(
  layout: LabLayout,
  nodeName: string,
  leave: boolean,
): Promise<string | null> {
  const record = readLabRecord(layout);
  const node = record?.nodes.find((n) => n.name === nodeName);
  if (!record || !node) throw new LabError(`no node '${nodeName}' in lab '${layout.lab}'`);
  const pid = node.agentPid;
  if (pid === null || !processAlive(pid) || !isOurAgent(pid, layout.lab, nodeName)) {
    throw new LabError(`the agent of node ${nodeName} is not running`);
  }
  const reply = await callAgent<{ at?: string }>(
    layout.agentSocket(nodeName),
    'shutdown',
    { leave },
    3000,
  ).catch(() => null);
  const deadline = Date.now() + 15_000;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  node.agentPid = null;
  writeLabRecord(layout, record);
  return reply?.at ?? null;
}

/** `kubewire node start NAME`: starts a stopped node's agent again and waits until it is ready. */
export async function startNodeAgent(
  layout: LabLayout,
  nodeName: string,
  timeoutMs: number,
  progress: (m: string) => void = () => undefined,
): Promise<void> {
  const record = readLabRecord(layout);
  const node = record?.nodes.find((n) => n.name === nodeName);
  if (!record || !node) throw new LabError(`no node '${nodeName}' in lab '${layout.lab}'`);
  if (record.mode !== 'netns') {
    throw new LabError(`lab '${layout.lab}' is run by docker compose: use 'docker compose start'`);
  }
  if (node.agentPid !== null && processAlive(node.agentPid)) {
    throw new LabError(`the agent of node ${nodeName} is already running (pid ${node.agentPid})`);
  }
  progress(`node ${nodeName}: starting agent in ${node.netns}`);
  node.agentPid = startAgent(layout, node.name, node.netns);
  writeLabRecord(layout, record);
  await waitReady(layout, { ...record, nodes: [node] }, timeoutMs, progress);
}
