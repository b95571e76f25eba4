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
import { buildClusterState, loadManifests, type ClusterState } from '../cluster/index.js';
import { callAgent } from '../agent/control.js';
import { LabLayout, type LabRecord } from '../agent/lab-layout.js';
import type { AgentStatus } from '../agent/node-agent.js';
import { ip } from '../util/exec.js';

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
export async function labUp(layout: LabLayout, paths: string[], opts: UpOptions = {}): Promise<LabRecord> {
  const progress = opts.progress ?? (() => undefined);
  const existing = readLabRecord(layout);
  if (existing) {
    throw new LabError(
      `lab '${layout.lab}' is already running (created ${existing.createdAt}, nodes ${existing.nodes
        .map((n) => n.name)
        .join(', ')}); run 'kubewire down${layout.lab === 'kw' ? '' : ` --lab ${layout.lab}`}' first`,
    );
  }
  const files = manifestFiles(paths);
  const state: ClusterState = buildClusterState(loadManifests(files));
  if (state.nodes.length === 0) throw new LabError('the manifests define no Node: a lab needs at least one');
  for (const w of state.warnings) progress(`warning: ${w}`);

  mkdirSync(layout.manifestsDir, { recursive: true });
  files.forEach((f, i) => copyFileSync(f, join(layout.manifestsDir, `${String(i).padStart(3, '0')}-${basename(f)}`)));
  const record: LabRecord = {
    name: layout.lab,
    createdAt: new Date().toISOString(),
    mode: 'netns',
    nodes: state.nodes.map((n) => ({ name: n.name, netns: layout.nodeNetns(n.name), agentPid: null })),
  };
  writeLabRecord(layout, record);
  try {
    for (const node of record.nodes) {
      progress(`node ${node.name}: creating namespace ${node.netns}`);
      await ip(['netns', 'add', node.netns]);
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

function startAgent(layout: LabLayout, node: string, netns: string): number {
  mkdirSync(layout.nodeDir(node), { recursive: true });
  const log = openSync(layout.agentLog(node), 'a');
  // nsenter, not `ip netns exec`: the latter gives the agent a private mount namespace,
  // and the pod namespaces the agent then creates (bind mounts under /run/netns) would
  // not be visible to anyone else, `kubewire exec` included.
  const args = ['--net=' + join('/run/netns', netns), process.execPath, agentMain, '--lab', layout.lab, '--node', node];
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
        throw new LabError(`the agent of node ${node.name} exited:\n${tail(layout.agentLog(node.name), 20)}`);
      }
      const status = await callAgent<AgentStatus>(layout.agentSocket(node.name), 'status', {}, 2000).catch(
        () => null,
      );
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
      throw new LabError(`timed out after ${timeoutMs} ms waiting for nodes ${[...pending].join(', ')}`);
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
export async function labDown(layout: LabLayout, progress: (m: string) => void = () => undefined): Promise<boolean> {
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
        while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
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
