import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../util/log.js';
import type { EchoHostEvent, EchoHostRequest } from '../workloads/echo-host.js';
import { RestartingContainer, type ContainerProgram } from './supervisor.js';

/** How long the shared echo process is kept without pods before it is stopped. */
const IDLE_STOP_MS = 10_000;

/**
 * The node's shared echo process (src/workloads/echo-host.ts): every echo container of
 * this node is served by it rather than by a Node.js process of its own (~11 MB each).
 * Started with the first echo container, stopped when the last has gone (after a pause,
 * as pods are often replaced), restarted on demand. If it dies, each of its containers
 * exits as its own process would have (exit code, restart per restartPolicy, back-off).
 */
export class SharedEchoHost {
  private child: ChildProcess | null = null;
  private hello = false;
  private outbox: EchoHostRequest[] = [];
  private readonly members = new Map<string, SharedEchoContainer>();
  private readonly removals = new Map<string, () => void>();
  private idleTimer: NodeJS.Timeout | null = null;
  private seq = 0;

  /**
   * @param argv the echo host's command line (node, flags, script)
   * @param env its environment besides PATH
   */
  constructor(
    private readonly argv: string[],
    private readonly env: Record<string, string>,
    private readonly logger: Logger,
  ) {}

  /** An echo container served by this process. */
  container(program: ContainerProgram, ports: string[]): SharedEchoContainer {
    return new SharedEchoContainer(program, ports, this, this.logger);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Serves a container; returns the id its events carry and the pid serving it. */
  add(member: SharedEchoContainer): { id: string; pid: number | undefined } {
    const id = `${member.name}#${++this.seq}`;
    this.members.set(id, member);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const child = this.child ?? this.spawn();
    this.send({
      op: 'add',
      id,
      netns: member.netns,
      identity: member.identity,
      ports: member.ports,
    });
    return { id, pid: child.pid };
  }

  /**
   * Stops serving a container: its listeners and connections are closed. Resolves when the
   * process says so, or after `timeoutMs` (then the process is not answering, and is ended).
   */
  remove(id: string, timeoutMs = 5_000): Promise<void> {
    if (!this.members.delete(id) || !this.child) return Promise.resolve();
    if (this.members.size === 0) {
      this.idleTimer = setTimeout(() => void this.stop(), IDLE_STOP_MS);
      this.idleTimer.unref();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.logger.warn({ container: id }, 'shared echo process not answering: ending it');
        void this.stop();
      }, timeoutMs);
      this.removals.set(id, () => {
        clearTimeout(timer);
        resolve();
      });
      this.send({ op: 'remove', id });
    });
  }

  /** Ends the process (SIGTERM, SIGKILL after the grace period); its containers exit. */
  async stop(gracePeriodMs = 5_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    const members = this.detach();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), gracePeriodMs);
      await exited;
      clearTimeout(timer);
    }
    for (const m of members) m.hostExited(null, 'SIGTERM');
  }

  /** Forgets the running process (a new one starts with the next container); returns its containers. */
  private detach(): SharedEchoContainer[] {
    this.child = null;
    this.hello = false;
    this.outbox = [];
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    for (const resolve of this.removals.values()) resolve();
    this.removals.clear();
    const members = [...this.members.values()];
    this.members.clear();
    return members;
  }

  private spawn(): ChildProcess {
    const [cmd, ...args] = this.argv;
    const child = spawn(cmd!, args, {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child = child;
    this.hello = false;
    this.logger.info({ pid: child.pid }, 'shared echo process started');
    const forward = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line) this.logger.warn({ pid: child.pid, line }, 'shared echo process');
      }
    };
    child.stdout!.on('data', forward);
    child.stderr!.on('data', forward);
    child.on('message', (event: EchoHostEvent) => this.onEvent(event));
    child.on('error', (err) => this.logger.error({ err }, 'shared echo process: cannot start'));
    child.on('close', (code, signal) => this.onExit(child, code, signal));
    return child;
  }

  private send(req: EchoHostRequest): void {
    if (this.hello && this.child?.connected) this.child.send(req);
    else this.outbox.push(req);
  }

  private onEvent(event: EchoHostEvent): void {
    if (event.event === 'hello') {
      this.hello = true;
      const outbox = this.outbox;
      this.outbox = [];
      for (const req of outbox) this.send(req);
      return;
    }
    if (event.event === 'removed') {
      this.removals.get(event.id)?.();
      this.removals.delete(event.id);
      return;
    }
    const member = this.members.get(event.id);
    if (!member) return;
    if (event.event === 'log') {
      member.hostOutput(event.text + '\n');
    } else if (event.event === 'failed') {
      this.members.delete(event.id);
      member.hostExited(event.code, null);
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return; // stopped: stop() tells its containers
    const members = this.detach();
    if (members.length > 0) {
      this.logger.warn({ pid: child.pid, code, signal }, 'shared echo process exited');
    }
    for (const m of members) m.hostExited(code, signal);
  }
}

/** One echo container, served by the node's shared echo process. */
export class SharedEchoContainer extends RestartingContainer {
  private id: string | null = null;

  constructor(
    program: ContainerProgram,
    readonly ports: string[],
    private readonly host: SharedEchoHost,
    logger: Logger,
  ) {
    super(program, logger);
  }

  get name(): string {
    return `${this.program.pod}/${this.program.container}`;
  }

  get netns(): string {
    return this.program.netns;
  }

  /** Who the pod is, from the environment the agent gives a container (the downward API's). */
  get identity() {
    const env = this.program.env;
    return {
      pod: env.POD_NAME ?? '',
      namespace: env.POD_NAMESPACE ?? '',
      node: env.NODE_NAME ?? '',
      podIP: env.POD_IP ?? '',
    };
  }

  protected launch(): number | undefined {
    const { id, pid } = this.host.add(this);
    this.id = id;
    return pid;
  }

  protected async terminate(): Promise<void> {
    const id = this.id;
    this.id = null;
    if (id) await this.host.remove(id);
  }

  hostOutput(text: string): void {
    this.output(text);
  }

  hostExited(code: number | null, signal: NodeJS.Signals | null): void {
    this.id = null;
    this.exited(code, signal);
  }
}
