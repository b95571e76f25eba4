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

/** A pod's container as the pod runtime drives it (a process of its own, or a shared one). */
export interface PodContainer {
  readonly status: ContainerStatus;
  start(): void;
  /** Resolves when the container is ready (or at once if it already is). */
  whenReady(): Promise<void>;
  stop(gracePeriodMs?: number): Promise<void>;
}

/**
 * What every container has, whatever runs it: its log file (what `kubewire logs` reads),
 * readiness from its output, and the kubelet's restarts per the pod's restartPolicy with
 * the crash-loop back-off. Subclasses launch and terminate the program and report its
 * output and exit.
 */
export abstract class RestartingContainer implements PodContainer {
  private readonly log: WriteStream;
  private stopped = false;
  private backoffMs = BACKOFF_START_MS;
  private restartTimer: NodeJS.Timeout | null = null;
  private startedAtMs = 0;
  private readyWaiters: (() => void)[] = [];
  private pending = '';
  readonly status: ContainerStatus;

  constructor(
    protected readonly program: ContainerProgram,
    protected readonly logger: Logger,
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

  /** Starts the program; returns the pid of the process that runs it. */
  protected abstract launch(): number | undefined;
  /** Ends the running program (a no-op when it is not running); resolves once it has. */
  protected abstract terminate(gracePeriodMs: number): Promise<void>;

  start(): void {
    if (this.stopped) return;
    this.pending = '';
    this.startedAtMs = Date.now();
    const pid = this.launch();
    Object.assign(this.status, {
      state: 'Running',
      reason: undefined,
      exitCode: undefined,
      pid,
      startedAt: new Date(this.startedAtMs).toISOString(),
      ready: !this.program.readyPattern,
    });
    if (this.status.ready) this.flushReadyWaiters();
  }

  /** Output of the program: to the log file; stdout is matched against the ready pattern. */
  protected output(chunk: Buffer | string, stdout = true): void {
    this.log.write(chunk);
    if (stdout && !this.status.ready && this.program.readyPattern) {
      this.pending = (this.pending + chunk.toString()).slice(-4096);
      if (this.program.readyPattern.test(this.pending)) {
        this.status.ready = true;
        this.flushReadyWaiters();
      }
    }
  }

  /** The program ended: restart it per the restartPolicy, with the kubelet's back-off. */
  protected exited(code: number | null, signal: NodeJS.Signals | null): void {
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

  whenReady(): Promise<void> {
    if (this.status.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Stops the program (the grace period as the kubelet's) and closes the log. */
  async stop(gracePeriodMs = 5_000): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.terminate(gracePeriodMs);
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}

/**
 * Runs one container's program inside its pod's netns and keeps it running per
 * the pod's restartPolicy, as the kubelet does. Output goes to the container's
 * log file (what `kubewire logs` reads). Only the process it started is ever
 * signalled, by its own pid (the program leads its own process group).
 */
export class ContainerSupervisor extends RestartingContainer {
  private child: ChildProcess | null = null;

  protected launch(): number | undefined {
    const { netns, argv, env } = this.program;
    const child = spawn('ip', ['netns', 'exec', netns, ...argv], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    child.stdout!.on('data', (chunk: Buffer) => this.output(chunk));
    child.stderr!.on('data', (chunk: Buffer) => this.output(chunk, false));
    child.on('error', (err) => {
      this.output(`kubewire: cannot start ${argv[0]}: ${err.message}\n`, false);
    });
    child.on('close', (code, signal) => {
      this.child = null;
      this.exited(code, signal);
    });
    return child.pid;
  }

  /** SIGTERM to the program's process group, SIGKILL after the grace period. */
  protected async terminate(gracePeriodMs: number): Promise<void> {
    const child = this.child;
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      signalGroup(child.pid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), gracePeriodMs);
      await exited;
      clearTimeout(timer);
    }
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
