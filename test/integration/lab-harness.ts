import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Repository root, from dist/test/integration/ or test/integration/. */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

export const cliPath = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
export const fixtures = join(repoRoot, 'test', 'integration', 'fixtures');

export const isRoot = process.getuid?.() === 0;
export const rootSkip = isRoot
  ? false
  : 'requires root (CAP_NET_ADMIN) to create network namespaces';

/** A unique lab name per test file, so a leftover of one run never collides with the next. */
export function labName(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}`.slice(0, 16);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `kubewire --lab LAB ARGS…` and returns its exit code and output (never throws). */
export async function kubewire(
  lab: string,
  args: string[],
  timeoutMs = 180_000,
): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileAsync(
      process.execPath,
      [cliPath, '--lab', lab, ...args],
      {
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? '',
    };
  }
}

/** Like kubewire() but fails with the command's output when it exits non-zero. */
export async function kubewireOk(lab: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await kubewire(lab, args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(
      `kubewire ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  }
  return r.stdout;
}

export interface PodInfo {
  namespace: string;
  name: string;
  ip: string;
  nodeName: string;
  status: { ready: boolean; netns: string } | null;
}

export async function pods(lab: string, namespace = '-A'): Promise<PodInfo[]> {
  const args =
    namespace === '-A'
      ? ['get', 'pods', '-A', '-o', 'json']
      : ['get', 'pods', '-n', namespace, '-o', 'json'];
  return JSON.parse(await kubewireOk(lab, args)) as PodInfo[];
}

/** Starts a long-running command (tcpdump…) inside a namespace; stop() ends it and returns its output. */
export function startInNetns(
  netns: string,
  argv: string[],
): { proc: ChildProcess; stop: () => Promise<string> } {
  const proc = spawn('ip', ['netns', 'exec', netns, ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  return {
    proc,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve(out);
        proc.once('close', () => resolve(out));
        proc.kill('SIGINT');
        setTimeout(() => proc.kill('SIGKILL'), 3000).unref();
      }),
  };
}

export function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The resolv.conf the kubelet writes for a ClusterFirst pod of `namespace` on this
 * machine (pkg/kubelet/network/dns/dns.go): the cluster's search path, then the node's
 * own search domains (the last `search` line of /etc/resolv.conf, without "." and
 * trailing dots), the cluster DNS, ndots:5 — in containerd's order.
 */
export function clusterFirstResolvConf(
  namespace: string,
  dnsIP = '10.96.0.10',
  zone = 'cluster.local',
): string {
  let nodeSearch: string[] = [];
  for (const line of readFileSync('/etc/resolv.conf', 'utf8').split('\n')) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key === 'search')
      nodeSearch = rest.filter((s) => s !== '.').map((s) => s.replace(/\.$/, ''));
  }
  const search = new Set([`${namespace}.svc.${zone}`, `svc.${zone}`, zone, ...nodeSearch]);
  return `search ${[...search].join(' ')}\nnameserver ${dnsIP}\noptions ndots:5\n`;
}
