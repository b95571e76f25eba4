import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { PodState } from '../cluster/index.js';
import { ipv4FromString, macFromString } from '../packet/addr.js';
import { NetInterface } from '../dataplane/interface.js';
import type { Forwarder } from '../dataplane/forwarder.js';
import { TapDevice } from '../tap/index.js';
import { openAgentTap } from './taps.js';
import { ip, run } from '../util/exec.js';
import type { Logger } from '../util/log.js';
import type { LabLayout } from './lab-layout.js';
import type { SharedEchoHost } from './shared-echo.js';
import {
  ContainerSupervisor,
  type ContainerProgram,
  type ContainerStatus,
  type PodContainer,
  type RestartPolicy,
} from './supervisor.js';
import { programFor } from './workloads.js';
import { resolvConfFor } from './resolv-conf.js';

/** Calico's MAC for the host side of every workload link. */
export const CALICO_HOST_MAC = macFromString('ee:ee:ee:ee:ee:ee');
/** Calico's pod MTU with IPIP: host MTU 1500 minus the 20-byte outer header. */
export const POD_MTU = 1480;

export interface PodContext {
  layout: LabLayout;
  nodeName: string;
  forwarder: Forwarder;
  logger: Logger;
  dnsServiceIP: string;
  clusterDomain: string;
  nextIfIndex: () => number;
  /** Serves the echo containers; without it each runs its own process. */
  sharedEcho?: SharedEchoHost;
}

export interface PodStatus {
  namespace: string;
  name: string;
  node: string;
  ip: string | null;
  netns: string;
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  ready: boolean;
  containers: ContainerStatus[];
  startedAt: string;
}

/**
 * One pod on this node: a real network namespace whose eth0 is a TAP the
 * agent holds the other end of (as Calico's caliXXXX veth), plus its
 * containers' programs running inside it.
 */
export class PodRuntime {
  readonly netns: string;
  private tap: TapDevice | null = null;
  private iface: NetInterface | null = null;
  private readonly containers: PodContainer[] = [];
  private readonly startedAt = new Date().toISOString();

  constructor(
    readonly pod: PodState,
    private readonly ctx: PodContext,
  ) {
    this.netns = ctx.layout.podNetns(pod.namespace, pod.name);
  }

  get key(): string {
    return `${this.pod.namespace}/${this.pod.name}`;
  }

  async create(): Promise<void> {
    const { pod, ctx } = this;
    if (!pod.ip) throw new Error(`pod ${this.key} has no address`);
    const ns = this.netns;
    await ip(['netns', 'del', ns]).catch(() => undefined); // a leftover of a crashed agent
    await ip(['netns', 'add', ns]);
    const resolv = join('/etc/netns', ns, 'resolv.conf');
    mkdirSync(dirname(resolv), { recursive: true });
    writeFileSync(resolv, resolvConfFor(pod, ctx.dnsServiceIP, ctx.clusterDomain));

    // The TAP is created here, in the node's namespace, then moved into the pod and
    // renamed eth0: the agent's descriptor stays attached to it across the move.
    const tap = openAgentTap(pod.vethName);
    this.tap = tap;
    await ip(['link', 'set', 'dev', pod.vethName, 'netns', ns]);
    await ip(['link', 'set', 'dev', pod.vethName, 'name', 'eth0'], ns);
    await ip(['link', 'set', 'dev', 'lo', 'up'], ns);
    await ip(
      ['link', 'set', 'dev', 'eth0', 'mtu', String(POD_MTU), 'addrgenmode', 'none', 'up'],
      ns,
    );
    await ip(['addr', 'add', `${pod.ip}/32`, 'dev', 'eth0'], ns);
    await ip(['route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link'], ns);
    await ip(['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0'], ns);
    const podMac = await readMac(ns, 'eth0');

    const iface = new NetInterface(
      ctx.nextIfIndex(),
      pod.vethName,
      'pod',
      CALICO_HOST_MAC,
      POD_MTU,
      tap,
    );
    this.iface = iface;
    const fwd = ctx.forwarder;
    fwd.addInterface(iface);
    const podAddr = ipv4FromString(pod.ip);
    fwd.routes.add({ dst: podAddr, prefixLen: 32, dev: iface, scope: 'link', proto: 'boot' });
    fwd.neighbours.setPermanent(iface, podAddr, podMac);
    tap.start(
      (buf, offsets, count) => fwd.receiveBatch(iface, buf, offsets, count),
      (err) => {
        ctx.logger.warn({ err, pod: this.key, dev: pod.vethName }, 'pod link failed');
        iface.up = false;
      },
    );
    this.startContainers();
  }

  private startContainers(): void {
    const { pod, ctx } = this;
    const logDir = join(ctx.layout.nodeDir(ctx.nodeName), 'logs');
    mkdirSync(logDir, { recursive: true });
    for (const container of pod.containers) {
      const program = programFor(
        container,
        ctx.layout.manifestsDir,
        ctx.layout.downNodesFile(ctx.nodeName),
      );
      const env: Record<string, string> = {
        ...program.env,
        POD_NAME: pod.name,
        POD_NAMESPACE: pod.namespace,
        NODE_NAME: ctx.nodeName,
        POD_IP: pod.ip ?? '',
        HOSTNAME: pod.hostname ?? pod.name,
      };
      for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
      const spec: ContainerProgram = {
        pod: this.key,
        container: container.name,
        netns: this.netns,
        argv: program.argv,
        env,
        logFile: ctx.layout.containerLog(ctx.nodeName, pod.namespace, pod.name, container.name),
        restartPolicy: (pod.restartPolicy ?? 'Always') as RestartPolicy,
        ...(program.readyPattern ? { readyPattern: program.readyPattern } : {}),
      };
      const sup =
        program.echoPorts && ctx.sharedEcho
          ? ctx.sharedEcho.container(spec, program.echoPorts)
          : new ContainerSupervisor(spec, ctx.logger);
      this.containers.push(sup);
      sup.start();
    }
  }

  whenReady(): Promise<void> {
    return Promise.all(this.containers.map((c) => c.whenReady())).then(() => undefined);
  }

  status(): PodStatus {
    const containers = this.containers.map((c) => ({ ...c.status }));
    const ready = containers.length > 0 && containers.every((c) => c.ready);
    const terminated = containers.length > 0 && containers.every((c) => c.state === 'Terminated');
    let phase: PodStatus['phase'] = 'Running';
    if (terminated && this.pod.restartPolicy !== 'Always') {
      phase = containers.every((c) => c.exitCode === 0) ? 'Succeeded' : 'Failed';
    }
    return {
      namespace: this.pod.namespace,
      name: this.pod.name,
      node: this.ctx.nodeName,
      ip: this.pod.ip,
      netns: this.netns,
      phase,
      ready,
      containers,
      startedAt: this.startedAt,
    };
  }

  /** Stops the containers, detaches the link and deletes the namespace and its files. */
  async destroy(): Promise<void> {
    await Promise.all(this.containers.map((c) => c.stop()));
    const fwd = this.ctx.forwarder;
    if (this.iface) fwd.removeInterface(this.iface);
    this.tap?.close();
    this.tap = null;
    await ip(['netns', 'del', this.netns]).catch(() => undefined);
    rmSync(join('/etc/netns', this.netns), { recursive: true, force: true });
  }
}

async function readMac(netns: string, dev: string): Promise<Buffer> {
  const out = await run('ip', ['-n', netns, '-j', 'link', 'show', 'dev', dev]);
  const [link] = JSON.parse(out) as { address: string }[];
  return macFromString(link!.address);
}
