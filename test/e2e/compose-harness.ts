/**
 * The e2e tier's harness: the reference lab of compose/docker-compose.yml, brought up
 * with the machine's compose (`docker compose` v2 or `docker-compose` 1.29), real tools
 * run inside its containers with `compose exec`, and everything torn down (`down -v`)
 * whatever happens.
 *
 * Environment:
 *   KUBEWIRE_COMPOSE       the compose command (default: `docker compose` if it answers,
 *                          else `docker-compose`)
 *   KUBEWIRE_E2E_BUILD=0   use the images as they are (default: scripts/build-images.sh
 *                          first, which takes seconds when nothing changed)
 *   KUBEWIRE_E2E_PROJECT   compose project name (default kubewire-e2e)
 *   KUBEWIRE_E2E_KEEP=1    leave the lab running after the tests (to look at it)
 *   CI=true                no Docker is a failure, not a skip
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

export const composeFile = join(repoRoot, 'compose', 'docker-compose.yml');
export const NODE_SERVICES = ['control-plane', 'worker-1', 'worker-2'] as const;
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function answers(argv: string[]): boolean {
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore', timeout: 30_000 });
  return r.status === 0;
}

/** The compose command of this machine, or null. */
export function composeCommand(): string[] | null {
  const env = process.env.KUBEWIRE_COMPOSE;
  if (env) return env.split(/\s+/).filter(Boolean);
  if (answers(['docker', 'compose', 'version'])) return ['docker', 'compose'];
  if (answers(['docker-compose', 'version'])) return ['docker-compose'];
  return null;
}

/** Why the e2e tier cannot run here, or null when it can. */
export function dockerUnavailable(): string | null {
  if (!answers(['docker', '--version'])) return 'the docker command is not installed';
  if (!answers(['docker', 'info'])) return 'no Docker engine answers (`docker info` fails)';
  if (!composeCommand()) return 'neither `docker compose` nor `docker-compose` is installed';
  return null;
}

const LOCK_DIR = join(tmpdir(), 'kubewire-e2e.lock');

/**
 * One e2e lab per machine at a time (two runs, e.g. two CI runs or a developer's and
 * CI's, would tear each other's lab down): a lock directory holding the owner's pid,
 * taken over when that process is gone. Waits up to `timeoutMs`.
 */
export async function acquireMachineLock(timeoutMs = 30 * 60_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    try {
      mkdirSync(LOCK_DIR);
      writeFileSync(join(LOCK_DIR, 'pid'), String(process.pid));
      return () => rmSync(LOCK_DIR, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(join(LOCK_DIR, 'pid'), 'utf8'));
    } catch {
      /* being written, or gone */
    }
    const alive = (() => {
      if (!Number.isInteger(owner) || owner <= 0) return true; // give the writer a moment
      try {
        process.kill(owner, 0);
        return true;
      } catch {
        return false;
      }
    })();
    if (!alive) {
      rmSync(LOCK_DIR, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`another e2e run (pid ${owner}) holds ${LOCK_DIR}`);
    if (!told) {
      process.stderr.write(`# waiting for the e2e run of pid ${owner} to finish (${LOCK_DIR})\n`);
      told = true;
    }
    await sleep(1000);
  }
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export class ComposeLab {
  readonly compose: string[];
  readonly project: string;
  /** Seconds from `up` to every node container healthy, once up() returned. */
  readySeconds = 0;

  constructor(project = process.env.KUBEWIRE_E2E_PROJECT ?? 'kubewire-e2e') {
    const cmd = composeCommand();
    if (!cmd) throw new Error('no compose command');
    this.compose = cmd;
    this.project = project;
  }

  private argv(args: string[]): string[] {
    return [...this.compose, '-p', this.project, '-f', composeFile, ...args];
  }

  /** Runs a compose subcommand; never throws. */
  async run(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<Result> {
    const [cmd, ...rest] = this.argv(args);
    return new Promise((resolve) => {
      const child = spawn(cmd!, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
      child.on('error', (err) => {
        clearTimeout(timer);
        resolve({ code: 127, stdout, stderr: stderr + err.message });
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin.end(opts.input ?? '');
    });
  }

  async runOk(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.run(args, opts);
    if (r.code !== 0) {
      throw new Error(
        `${this.compose.join(' ')} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
      );
    }
    return r.stdout;
  }

  /** `compose exec -T SERVICE ARGV…` */
  exec(
    service: string,
    argv: string[],
    opts: { input?: string; timeoutMs?: number } = {},
  ): Promise<Result> {
    return this.run(['exec', '-T', service, ...argv], opts);
  }

  execOk(
    service: string,
    argv: string[],
    opts: { input?: string; timeoutMs?: number } = {},
  ): Promise<string> {
    return this.runOk(['exec', '-T', service, ...argv], opts);
  }

  /** Starts `compose exec` in the background (tcpdump while traffic flows). */
  spawnExec(service: string, argv: string[]): ChildProcess {
    const [cmd, ...rest] = this.argv(['exec', '-T', service, ...argv]);
    return spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Builds the images the way this machine allows (scripts/build-images.sh). */
  async buildImages(): Promise<void> {
    if (process.env.KUBEWIRE_E2E_BUILD === '0') return;
    await execFileAsync('bash', [join(repoRoot, 'scripts', 'build-images.sh')], {
      cwd: repoRoot,
      timeout: 20 * 60_000,
      maxBuffer: 64 * 1024 * 1024,
    }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`scripts/build-images.sh failed: ${err.message}\n${err.stderr ?? ''}`);
    });
  }

  /**
   * Another compose lab on this machine (same subnets and bridge names: only one lab
   * can run at a time): its project name, or null.
   */
  async otherLab(): Promise<string | null> {
    const r = await execFileAsync('docker', [
      'network',
      'ls',
      '--filter',
      'label=com.docker.compose.network=underlay',
      '--format',
      '{{.Label "com.docker.compose.project"}}',
    ]).catch(() => ({ stdout: '' }));
    return r.stdout.split('\n').find((p) => p.trim() && p.trim() !== this.project) ?? null;
  }

  /** `up -d`, then waits until every node container is healthy (compose 1.29 has no --wait). */
  async up(timeoutMs = 180_000): Promise<void> {
    await this.run(['down', '-v', '--remove-orphans'], { timeoutMs: 120_000 });
    this.ids.clear();
    const other = await this.otherLab();
    if (other) {
      throw new Error(
        `another compose lab (project '${other}') holds the lab's networks; stop it first: ` +
          `docker compose -p ${other} -f compose/docker-compose.yml down -v`,
      );
    }
    const started = Date.now();
    await this.runOk(['up', '-d', '--no-build'], { timeoutMs: 180_000 });
    const deadline = started + timeoutMs;
    for (;;) {
      const health = await this.health();
      const bad = Object.entries(health).filter(([, h]) => h === 'unhealthy' || h === 'exited');
      if (bad.length > 0) {
        throw new Error(
          `node containers failed: ${bad.map(([s, h]) => `${s} ${h}`).join(', ')}\n${await this.logs()}`,
        );
      }
      if (Object.values(health).every((h) => h === 'healthy')) break;
      if (Date.now() > deadline) {
        throw new Error(
          `the lab was not ready after ${timeoutMs} ms: ${JSON.stringify(health)}\n${await this.logs()}`,
        );
      }
      await sleep(250);
    }
    this.readySeconds = (Date.now() - started) / 1000;
  }

  private readonly ids = new Map<string, string>();

  /** The service's container (remembered: compose 1.29 takes a second to answer `ps`). */
  async containerId(service: string): Promise<string> {
    const known = this.ids.get(service);
    if (known) return known;
    const id = (await this.runOk(['ps', '-q', service])).trim();
    if (id) this.ids.set(service, id);
    return id;
  }

  /** Each node container's health: starting, healthy, unhealthy, exited (or missing). */
  async health(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const s of NODE_SERVICES) {
      const id = await this.containerId(s).catch(() => '');
      if (!id) {
        out[s] = 'missing';
        continue;
      }
      const r = await execFileAsync('docker', [
        'inspect',
        '-f',
        '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}',
        id,
      ]).catch(() => ({ stdout: 'missing' }));
      const [state, hc] = r.stdout.trim().split(' ');
      out[s] = state === 'running' ? (hc ?? 'running') : (state ?? 'missing');
    }
    return out;
  }

  /** Memory use of each running container, as `docker stats` reports it (MiB). */
  async memoryMiB(): Promise<Record<string, number>> {
    const services = [...NODE_SERVICES, 'router', 'client'];
    const ids = await Promise.all(services.map((s) => this.containerId(s).catch(() => '')));
    const r = await execFileAsync('docker', [
      'stats',
      '--no-stream',
      '--format',
      '{{.ID}} {{.MemUsage}}',
      ...ids.filter(Boolean),
    ]);
    const out: Record<string, number> = {};
    for (const line of r.stdout.trim().split('\n')) {
      const [id, ...usage] = line.split(' ');
      const i = ids.findIndex((full) => full && id && full.startsWith(id));
      if (i >= 0) out[services[i]!] = toMiB(usage.join(' ').split('/')[0]!.trim());
    }
    return out;
  }

  async logs(tail = 60): Promise<string> {
    const r = await this.run(['logs', '--no-color', '--tail', String(tail)], { timeoutMs: 60_000 });
    return r.stdout + r.stderr;
  }

  /** `down -v`: containers, networks and the lab volume. */
  async down(): Promise<void> {
    if (process.env.KUBEWIRE_E2E_KEEP === '1') return;
    await this.run(['down', '-v', '--remove-orphans', '-t', '20'], { timeoutMs: 180_000 });
  }

  /** For signal handlers: the same, synchronously. */
  downSync(): void {
    if (process.env.KUBEWIRE_E2E_KEEP === '1') return;
    const [cmd, ...rest] = this.argv(['down', '-v', '--remove-orphans', '-t', '5']);
    try {
      execFileSync(cmd!, rest, { stdio: 'ignore', timeout: 120_000 });
    } catch {
      /* best effort */
    }
  }
}

function toMiB(s: string): number {
  const m = /^([\d.]+)\s*([KMG]i?B|B)$/.exec(s);
  if (!m) return NaN;
  const v = Number(m[1]);
  const unit = m[2]!;
  if (unit.startsWith('K')) return v / 1024;
  if (unit.startsWith('M')) return v;
  if (unit.startsWith('G')) return v * 1024;
  return v / 1024 / 1024;
}

export interface PodJson {
  namespace: string;
  name: string;
  ip: string | null;
  nodeName: string | null;
  status: { ready: boolean; phase: string } | null;
}

/** `kubewire get pods -A -o json`, run in a node container. */
export async function podsOf(lab: ComposeLab, service = 'worker-1'): Promise<PodJson[]> {
  return JSON.parse(
    await lab.execOk(service, ['kubewire', 'get', 'pods', '-A', '-o', 'json']),
  ) as PodJson[];
}

/** Waits until `pred` holds, polling every 250 ms. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T>,
  pred: (v: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (pred(last)) return last;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(250);
  }
}
