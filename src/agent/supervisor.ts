import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from '../util/log.js';

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

export interface ContainerProgram {
  /** Pod/container identity for logs and status. */
  pod: string;
  container: string;
  /** Network namespace the program runs in (through `ip netns exec`). */
  netns: string;
  argv: string[];
  env: Record<string, string>;
  logFile: string;
  restartPolicy: RestartPolicy;
  /** When set, the container is Ready only after a stdout line matches. */
  readyPattern?: RegExp;
}

export interface ContainerStatus {
  name: string;
  state: 'Waiting' | 'Running' | 'Terminated';
  reason?: string;
  ready: boolean;
  restartCount: number;
  exitCode?: number | null;
  pid?: number;
  startedAt?: string;
}

/** Kubelet's crash-loop back-off: 10 s doubling up to 5 minutes, reset after 10 minutes of running. */
const BACKOFF_START_MS = 10_000;
const BACKOFF_MAX_MS = 300_000;
const BACKOFF_RESET_AFTER_MS = 600_000;

/**
 * Runs one container's program inside its pod's netns and keeps it running per
 * the pod's restartPolicy, as the kubelet does. Output goes to the container's
 * log file (what `kubewire logs` reads). Only the process it started is ever
 * signalled, by its own pid (the program leads its own process group).
 */
export class ContainerSupervisor {
  private child: ChildProcess | null = null;
  private log: WriteStream;
  private stopped = false;
  private backoffMs = BACKOFF_START_MS;
  private restartTimer: NodeJS.Timeout | null = null;
  private startedAtMs = 0;
  private readyWaiters: (() => void)[] = [];
  readonly status: ContainerStatus;

  constructor(
    private readonly program: ContainerProgram,
    private readonly logger: Logger,
  ) {
    this.log = createWriteStream(program.logFile, { flags: 'a' });
    this.status = {
      name: program.container,
      state: 'Waiting',
      reason: 'ContainerCreating',
      ready: false,
      restartCount: 0,
    };
  }

  start(): void {
    if (this.stopped) return;
    const { netns, argv, env } = this.program;
    const child = spawn('ip', ['netns', 'exec', netns, ...argv], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    this.startedAtMs = Date.now();
    Object.assign(this.status, {
      state: 'Running',
      reason: undefined,
      exitCode: undefined,
      pid: child.pid,
      startedAt: new Date(this.startedAtMs).toISOString(),
      ready: !this.program.readyPattern,
    });
    if (this.status.ready) this.flushReadyWaiters();
    let pending = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      this.log.write(chunk);
      if (!this.status.ready && this.program.readyPattern) {
        pending = (pending + chunk.toString('utf8')).slice(-4096);
        if (this.program.readyPattern.test(pending)) {
          this.status.ready = true;
          this.flushReadyWaiters();
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => this.log.write(chunk));
    child.on('error', (err) => {
      this.log.write(`kubewire: cannot start ${argv[0]}: ${err.message}\n`);
    });
    child.on('close', (code, signal) => this.onExit(code, signal));
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.child = null;
    const exitCode = code ?? (signal ? 128 : 1);
    Object.assign(this.status, {
      state: 'Terminated',
      ready: false,
      exitCode,
      pid: undefined,
      reason: exitCode === 0 ? 'Completed' : 'Error',
    });
    if (this.stopped) return;
    this.logger.info(
      { pod: this.program.pod, container: this.program.container, exitCode, signal },
      'container exited',
    );
    const policy = this.program.restartPolicy;
    if (policy === 'Never' || (policy === 'OnFailure' && exitCode === 0)) return;
    if (Date.now() - this.startedAtMs > BACKOFF_RESET_AFTER_MS) this.backoffMs = BACKOFF_START_MS;
    const delay = this.status.restartCount === 0 ? 0 : this.backoffMs;
    if (delay > 0) {
      this.status.state = 'Waiting';
      this.status.reason = 'CrashLoopBackOff';
      this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.status.restartCount++;
      this.start();
    }, delay);
  }

  private flushReadyWaiters(): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    waiters.forEach((w) => w());
  }

  /** Resolves when the container is ready (or at once if it already is). */
  whenReady(): Promise<void> {
    if (this.status.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Stops the program: SIGTERM to its process group, SIGKILL after the grace period. */
  async stop(gracePeriodMs = 5_000): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      signalGroup(child.pid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), gracePeriodMs);
      await exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}
