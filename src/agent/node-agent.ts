import { existsSync, mkdirSync, renameSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import {
  buildClusterState,
  loadManifests,
  type ClusterState,
  type NodeState,
  type PodState,
} from '../cluster/index.js';
import { Forwarder } from '../dataplane/forwarder.js';
import { NetInterface } from '../dataplane/interface.js';
import { formatNeighbour } from '../dataplane/neighbours.js';
import { formatRoute } from '../dataplane/routes.js';
import { ipv4FromString, ipv4ToString, macFromString, parseCidr } from '../packet/addr.js';
import { PacketSocket, TapDevice } from '../tap/index.js';
import { AGENT_VNET_HDR, openAgentTap } from './taps.js';
import { ip, run } from '../util/exec.js';
import type { Logger } from '../util/log.js';
import { ControlServer, StreamReply } from './control.js';
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  pcapGlobalHeader,
  pcapRecord,
} from '../dataplane/pcap.js';
import type { LabLayout } from './lab-layout.js';
import { CALICO_HOST_MAC, PodRuntime, type PodStatus } from './pod-runtime.js';
import { releaseUnderlay, takeOverUnderlay, type UnderlayConfig } from './underlay.js';
import { calicoRoutes } from '../controllers/calico-routes.js';
import { NodeKernel } from './node-kernel.js';
import { conntrackCommand } from './conntrack-command.js';
import { collectAgentMetrics, renderAgentMetrics, serveMetrics } from './metrics.js';
import { traceSession } from './trace-session.js';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { NodeLiveness } from './liveness.js';
import { L2Speaker } from './l2-speaker.js';
import { SharedEchoHost } from './shared-echo.js';
import { sharedEchoProgram } from './workloads.js';

/** Outer IPv4 header of IPIP: tunl0's MTU is the underlay's minus 20. */
const IPIP_OVERHEAD = 20;

/** The link between the agent and the node's own kernel (processes "on the node"). */
export const HOST_LINK = 'kubewire0';
const HOST_MTU = 1500;
/**
 * kube-proxy's metrics endpoint (--metrics-bind-address; kube-proxy's default
 * binds 127.0.0.1, kubeadm clusters scraped by Prometheus use 0.0.0.0): in the
 * node's own network namespace, so reachable at http://<node IP>:10249/metrics.
 */
export const METRICS_BIND_ADDRESS = '0.0.0.0:10249';

export interface AgentStatus {
  node: string;
  ready: boolean;
  generation: number;
  lastError: string | null;
  pods: PodStatus[];
}

/**
 * The node agent: the node's network stack and its kubelet. It computes the
 * cluster state from the manifests (the same pure function on every node),
 * creates this node's pods, programs routes, forwards every frame, and
 * converges when the manifests change. A change that fails validation is
 * logged and ignored: the last good state keeps running.
 */
export class NodeAgent {
  readonly forwarder: Forwarder;
  readonly kernel: NodeKernel;
  private tunnelAddr = 0;
  private state: ClusterState | null = null;
  /** The last state built from the manifests (the next build starts from it). */
  private lastBuilt: ClusterState | undefined;
  private readonly pods = new Map<string, { runtime: PodRuntime; fingerprint: string }>();
  private hostTap: TapDevice | null = null;
  private uplinkTap: TapDevice | null = null;
  /** What the agent sends on the uplink goes out here (null: through the TAP). */
  private uplinkTx: PacketSocket | null = null;
  private underlay: UnderlayConfig | null = null;
  private underlayIf: NetInterface | null = null;
  private clusterRoutes: { dst: number; prefixLen: number }[] = [];
  private control: ControlServer | null = null;
  private metricsServer: Server | null = null;
  private watcher: FSWatcher | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private ifIndex = 1;
  private ready = false;
  private generation = 0;
  private lastError: string | null = null;
  private converging: Promise<void> = Promise.resolve();
  private liveness: NodeLiveness | null = null;
  readonly speaker: L2Speaker;
  /** One process serves all the echo pods of this node (src/workloads/echo-host.ts). */
  private readonly sharedEcho: SharedEchoHost;

  constructor(
    private readonly layout: LabLayout,
    private readonly nodeName: string,
    private readonly logger: Logger,
    /** The node's uplink to take over; null for a node without one (a lone netns). */
    private readonly underlayDev: string | null = 'eth0',
  ) {
    this.forwarder = new Forwarder(logger, AGENT_VNET_HDR);
    this.kernel = new NodeKernel(this.forwarder, nodeName, logger, () => this.tunnelAddr);
    this.speaker = new L2Speaker(nodeName, this.forwarder, () => this.underlayIf, logger);
    const echo = sharedEchoProgram();
    this.sharedEcho = new SharedEchoHost(echo.argv, echo.env, logger);
  }

  async start(): Promise<void> {
    mkdirSync(this.layout.nodeDir(this.nodeName), { recursive: true });
    this.writeDownNodes(); // none yet: not what a previous run of this agent left
    const state = this.computeState();
    const node = state.nodes.find((n) => n.name === this.nodeName);
    if (!node) throw new Error(`no Node named ${this.nodeName} in the manifests`);
    // The uplink first: taking it over reads the kernel's routes, which the host link then replaces.
    await this.setUpUnderlay(node);
    await this.setUpHostLink(node);
    this.setUpTunnel(node);
    this.control = new ControlServer(
      this.layout.agentSocket(this.nodeName),
      this.controlHandlers(),
    );
    await this.control.listen();
    await this.serveMetrics();
    this.tickTimer = setInterval(() => {
      this.forwarder.tick();
      this.kernel.tick();
    }, 1000);
    await this.apply(state);
    this.watchManifests();
    // Heartbeats start once this node serves: the others count it up from the first one.
    this.liveness = new NodeLiveness(this.nodeName, node.internalIP, this.logger, {
      onChange: () => this.livenessChanged(),
    });
    this.liveness.setPeers(this.peersOf(state));
    await this.liveness.start().catch((err: Error) => {
      this.logger.error({ err: err.message }, 'liveness heartbeats unavailable');
      this.liveness = null;
    });
  }

  private peersOf(state: ClusterState): { name: string; address: string }[] {
    return state.nodes.map((n) => ({ name: n.name, address: n.internalIP }));
  }

  /** Nodes whose agents are down, in this agent's view (none before heartbeats start). */
  private downNodes(): Set<string> {
    return this.liveness?.downNodes() ?? new Set();
  }

  /**
   * A node went down or came back: the cluster DNS's endpoints (the down-nodes file, at
   * once), kube-proxy's endpoints and the LoadBalancer announcements follow (queued
   * behind any convergence in progress).
   */
  private livenessChanged(): void {
    this.writeDownNodes();
    this.converging = this.converging.then(() => {
      const state = this.state;
      if (!state) return;
      // Addresses first: taking one over is what the clients are waiting for.
      this.updateSpeaker(state);
      try {
        this.kernel.syncKubeProxy(state, this.downNodes());
      } catch (err) {
        this.logger.error({ err }, 'kube-proxy sync failed');
      }
    });
  }

  /**
   * The nodes this agent counts as down, for the node's CoreDNS pods (src/dns/main.ts
   * --down-nodes): their endpoints there are not ready, as in kube-proxy's rules. Written
   * under a temporary name and renamed, so a reader never sees half of it.
   */
  private writeDownNodes(): void {
    const file = this.layout.downNodesFile(this.nodeName);
    const tmp = `${file}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify({ downNodes: [...this.downNodes()].sort() }) + '\n');
      renameSync(tmp, file);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, file }, 'cannot write the down-nodes file');
    }
  }

  private updateSpeaker(state: ClusterState): void {
    const down = this.downNodes();
    this.speaker.update(state, {
      liveNodes: state.nodes.map((n) => n.name).filter((n) => !down.has(n)),
      downNodes: down,
      // Before heartbeats run this agent cannot know who else announces: it waits.
      settled: this.liveness?.settled ?? false,
    });
  }

  private async serveMetrics(): Promise<void> {
    try {
      this.metricsServer = await serveMetrics(METRICS_BIND_ADDRESS, () => this.metricsText());
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message, address: METRICS_BIND_ADDRESS },
        'cannot serve metrics over HTTP (kubewire metrics still works)',
      );
    }
  }

  metricsText(): string {
    return renderAgentMetrics(collectAgentMetrics(this.forwarder, this.kernel));
  }

  private computeState(): ClusterState {
    // On top of the last state built: unchanged documents are not worked out again.
    const previous = this.lastBuilt;
    const state = buildClusterState(
      loadManifests([this.layout.manifestsDir]),
      previous ? { previous } : {},
    );
    this.lastBuilt = state;
    return state;
  }

  private async setUpHostLink(node: NodeState): Promise<void> {
    const fwd = this.forwarder;
    const nodeIp = ipv4FromString(node.internalIP);
    fwd.primaryAddress = nodeIp;
    await ip(['link', 'set', 'dev', 'lo', 'up']);
    await ip(['link', 'del', 'dev', HOST_LINK]).catch(() => undefined);
    const tap = openAgentTap(HOST_LINK);
    this.hostTap = tap;
    await ip([
      'link',
      'set',
      'dev',
      HOST_LINK,
      'mtu',
      String(HOST_MTU),
      'addrgenmode',
      'none',
      'up',
    ]);
    const kernelMac = macFromString(
      (
        JSON.parse(await run('ip', ['-j', 'link', 'show', 'dev', HOST_LINK])) as {
          address: string;
        }[]
      )[0]!.address,
    );
    const hostIf = new NetInterface(
      this.ifIndex++,
      HOST_LINK,
      'host',
      CALICO_HOST_MAC,
      HOST_MTU,
      tap,
    );
    fwd.addInterface(hostIf);
    const own = [node.internalIP, ...(node.tunnelAddress ? [node.tunnelAddress] : [])];
    for (const addr of own) {
      await ip(['addr', 'add', `${addr}/32`, 'dev', HOST_LINK]);
      const a = ipv4FromString(addr);
      fwd.local.set(a, { answerEcho: true, deliverTo: hostIf });
      fwd.neighbours.setPermanent(hostIf, a, kernelMac);
    }
    // The node's kernel reaches everything through the agent, as a pod does.
    await ip(['route', 'replace', '169.254.1.1', 'dev', HOST_LINK, 'scope', 'link']);
    await ip([
      'route',
      'replace',
      'default',
      'via',
      '169.254.1.1',
      'dev',
      HOST_LINK,
      'src',
      node.internalIP,
    ]);
    void nodeIp;
    tap.start(
      (buf, offsets, count) => fwd.receiveBatch(hostIf, buf, offsets, count),
      (err) => this.logger.error({ err }, 'host link failed'),
    );
  }

  /**
   * Owns the node's uplink when it has one: its address and MAC become the
   * agent's, its connected and gateway routes move into the agent's table.
   */
  private async setUpUnderlay(node: NodeState): Promise<void> {
    const dev = this.underlayDev;
    if (!dev) return;
    const exists = await ip(['link', 'show', 'dev', dev]).then(
      () => true,
      () => false,
    );
    if (!exists) {
      this.logger.info({ dev }, 'no underlay interface: pods reach only this node');
      return;
    }
    const { config, tap, tx, txError } = await takeOverUnderlay(
      dev,
      join(this.layout.nodeDir(this.nodeName), 'underlay.json'),
    );
    if (tx === null) {
      this.logger.warn(
        { dev, err: txError },
        'no packet socket on the uplink: sending through the TAP',
      );
    }
    if (config.address !== node.internalIP) {
      this.logger.warn(
        { dev, kernel: config.address, node: node.internalIP },
        'underlay address differs from the Node InternalIP',
      );
    }
    this.underlay = config;
    this.uplinkTap = tap;
    this.uplinkTx = tx;
    const fwd = this.forwarder;
    const uplink = new NetInterface(
      this.ifIndex++,
      dev,
      'underlay',
      macFromString(config.mac),
      config.mtu,
      tx ?? tap,
    );
    this.underlayIf = uplink;
    fwd.addInterface(uplink);
    const addr = ipv4FromString(config.address);
    fwd.routes.add({
      dst: addr,
      prefixLen: config.prefixLen,
      dev: uplink,
      proto: 'kernel',
      scope: 'link',
      src: addr,
    });
    for (const g of config.gateways) {
      fwd.routes.add({
        dst: ipv4FromString(g.dst),
        prefixLen: g.prefixLen,
        dev: uplink,
        via: ipv4FromString(g.via),
      });
    }
    tap.start(
      (buf, offsets, count) => fwd.receiveBatch(uplink, buf, offsets, count),
      (err) => this.logger.error({ err }, 'underlay link failed'),
    );
    this.logger.info({ dev, address: config.address, mac: config.mac }, 'underlay taken over');
  }

  /** tunl0: the IPIP device, with the node's tunnel address (Calico installs it as /32). */
  private setUpTunnel(node: NodeState): void {
    if (!node.tunnelAddress || !this.underlay) return;
    const fwd = this.forwarder;
    const tunl0 = new NetInterface(
      this.ifIndex++,
      'tunl0',
      'tunnel',
      Buffer.alloc(6),
      this.underlay.mtu - IPIP_OVERHEAD,
      null,
    );
    fwd.addInterface(tunl0);
    fwd.tunnel = tunl0;
    this.tunnelAddr = ipv4FromString(node.tunnelAddress);
  }

  /** Replaces the pod-network routes (blocks, tunnels) with those of the new state, in one step. */
  private programClusterRoutes(state: ClusterState): void {
    const fwd = this.forwarder;
    for (const r of this.clusterRoutes) fwd.routes.delete(r.dst, r.prefixLen);
    this.clusterRoutes = [];
    fwd.tunnelPeers.clear();
    for (const n of state.nodes)
      if (n.name !== this.nodeName) fwd.tunnelPeers.add(ipv4FromString(n.internalIP));
    const prefixLen = this.underlay?.prefixLen ?? 24;
    for (const r of calicoRoutes(state, this.nodeName, prefixLen)) {
      if (r.type === 'blackhole') {
        fwd.routes.add({ dst: r.dst, prefixLen: r.prefixLen, type: 'blackhole', proto: 'bird' });
      } else {
        const dev = r.via === 'tunl0' ? fwd.tunnel : this.underlayIf;
        if (!dev) continue;
        fwd.routes.add({
          dst: r.dst,
          prefixLen: r.prefixLen,
          dev,
          via: r.gateway,
          onlink: true,
          proto: 'bird',
        });
      }
      this.clusterRoutes.push({ dst: r.dst, prefixLen: r.prefixLen });
    }
  }

  /** Brings this node's pods to the given state: removes, recreates and creates by diff. */
  private apply(state: ClusterState): Promise<void> {
    this.converging = this.converging.then(() => this.converge(state));
    return this.converging;
  }

  private async converge(state: ClusterState): Promise<void> {
    this.programClusterRoutes(state);
    this.liveness?.setPeers(this.peersOf(state));
    try {
      this.kernel.syncKubeProxy(state, this.downNodes());
    } catch (err) {
      this.logger.error({ err }, 'kube-proxy sync failed');
      this.lastError = `kube-proxy: ${(err as Error).message}`;
    }
    const wanted = new Map<string, PodState>();
    for (const pod of state.pods) {
      if (pod.nodeName === this.nodeName && pod.ip && !pod.hostNetwork) {
        wanted.set(`${pod.namespace}/${pod.name}`, pod);
      }
    }
    const removals: Promise<void>[] = [];
    for (const [key, entry] of this.pods) {
      const pod = wanted.get(key);
      if (!pod || fingerprint(pod) !== entry.fingerprint) {
        this.pods.delete(key);
        removals.push(entry.runtime.destroy());
      }
    }
    await Promise.all(removals);
    const dnsServiceIP = kubeDnsAddress(state.config.serviceSubnet);
    const created: PodRuntime[] = [];
    for (const [key, pod] of wanted) {
      if (this.pods.has(key)) continue;
      const runtime = new PodRuntime(pod, {
        layout: this.layout,
        nodeName: this.nodeName,
        forwarder: this.forwarder,
        logger: this.logger,
        dnsServiceIP,
        clusterDomain: state.config.dnsDomain,
        nextIfIndex: () => this.ifIndex++,
        sharedEcho: this.sharedEcho,
      });
      this.pods.set(key, { runtime, fingerprint: fingerprint(pod) });
      this.recordNetns();
      try {
        await runtime.create();
        created.push(runtime);
      } catch (err) {
        this.logger.error({ err, pod: key }, 'cannot create pod');
        this.lastError = `pod ${key}: ${(err as Error).message}`;
      }
    }
    this.recordNetns();
    this.state = state;
    this.updateSpeaker(state);
    await Promise.race([
      Promise.all(created.map((p) => p.whenReady())),
      new Promise((resolve) => setTimeout(resolve, 30_000)),
    ]);
    this.generation++;
    this.ready = true;
    this.logger.info({ generation: this.generation, pods: this.pods.size }, 'converged');
  }

  /** Keeps the list of namespaces this agent made, so `kubewire down` can clean up after a crash. */
  private recordNetns(): void {
    const names = [...this.pods.values()].map((p) => p.runtime.netns);
    writeFileSync(this.layout.netnsRecord(this.nodeName), JSON.stringify(names) + '\n');
  }

  private watchManifests(): void {
    const dir = this.layout.manifestsDir;
    if (!existsSync(dir)) return;
    this.watcher = watch(dir, { recursive: false }, () => {
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.reload(), 200);
    });
  }

  private reload(): void {
    let state: ClusterState;
    try {
      state = this.computeState();
    } catch (err) {
      this.lastError = (err as Error).message;
      this.logger.error(
        { err: (err as Error).message },
        'manifests rejected; keeping the last good state',
      );
      return;
    }
    this.lastError = null;
    void this.apply(state);
  }

  status(): AgentStatus {
    return {
      node: this.nodeName,
      ready: this.ready,
      generation: this.generation,
      lastError: this.lastError,
      pods: [...this.pods.values()].map((p) => p.runtime.status()),
    };
  }

  private controlHandlers() {
    const fwd = this.forwarder;
    return {
      status: () => this.status(),
      routes: () => fwd.routes.all().map(formatRoute),
      neighbours: () => fwd.neighbours.all().map(formatNeighbour),
      stats: () => ({
        node: this.nodeName,
        drops: fwd.drops.toJSON(),
        interfaces: fwd.interfaces.map((i) => ({ name: i.name, kind: i.kind, ...i.counters })),
      }),
      pcap: (params: Record<string, unknown>) => this.capture(String(params.iface ?? '')),
      trace: (params: Record<string, unknown>) =>
        traceSession(fwd, this.kernel, this.nodeName, params),
      metrics: () => this.metricsText(),
      iptables: (params: Record<string, unknown>) => this.kernel.netfilter.command(argvOf(params)),
      'iptables-save': (params: Record<string, unknown>) =>
        this.kernel.netfilter.save({
          ...(typeof params.table === 'string' ? { table: params.table } : {}),
          counters: params.counters === true,
        }),
      conntrack: (params: Record<string, unknown>) => {
        const out = conntrackCommand(this.kernel, argvOf(params));
        if (typeof out === 'string') return out;
        return new StreamReply((sock) => {
          const write = (line: string) => sock.write(line + '\n');
          this.kernel.conntrackFollowers.add(write);
          return () => this.kernel.conntrackFollowers.delete(write);
        });
      },
      dmesg: (params: Record<string, unknown>) => {
        const lines = this.kernel.dmesgLines();
        if (params.follow !== true) return lines.map((l) => l + '\n').join('');
        return new StreamReply((sock) => {
          for (const l of lines) sock.write(l + '\n');
          return this.kernel.followDmesg((l) => sock.write(l + '\n'));
        });
      },
      metallb: () => ({
        ...this.speaker.status(),
        settled: this.liveness?.settled ?? false,
        peers: this.liveness?.snapshot() ?? [],
      }),
      shutdown: (params: Record<string, unknown>) => {
        // leave: false stops as a failing node does, without telling the others.
        const leave = params.leave !== false;
        setImmediate(() => void this.stop(leave).then(() => process.exit(0)));
        return { stopping: true, leave, at: new Date().toISOString() };
      },
    };
  }

  /** Streams one interface's frames as pcap until the client disconnects. */
  private capture(name: string): StreamReply {
    const dev = this.forwarder.interfaces.find((i) => i.name === name);
    if (!dev) {
      const names = this.forwarder.interfaces.map((i) => i.name).join(', ');
      throw new Error(`no interface ${name} on node ${this.nodeName} (interfaces: ${names})`);
    }
    if (dev.capture) throw new Error(`interface ${name} is already being captured`);
    return new StreamReply((sock) => {
      sock.write(pcapGlobalHeader(dev.kind === 'tunnel' ? LINKTYPE_RAW : LINKTYPE_ETHERNET));
      // A slow reader loses packets rather than growing the agent's memory.
      dev.capture = (buf, off, len) => {
        if (sock.writableLength < 32 * 1024 * 1024)
          sock.write(pcapRecord(buf, off, len, Date.now()));
      };
      return () => {
        dev.capture = null;
      };
    });
  }

  async stop(leave = true): Promise<void> {
    await this.liveness?.stop(leave);
    // A node that fails (no goodbye) is gone from the underlay at once, not after its pods.
    if (!leave) {
      this.uplinkTap?.close();
      this.uplinkTap = null;
    }
    this.speaker.stop();
    this.watcher?.close();
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.debounce) clearTimeout(this.debounce);
    await this.converging.catch(() => undefined);
    await Promise.all([...this.pods.values()].map((p) => p.runtime.destroy()));
    this.pods.clear();
    await this.sharedEcho.stop();
    this.recordNetns();
    this.hostTap?.close();
    this.uplinkTap?.close();
    this.uplinkTx?.close();
    if (this.underlay) await releaseUnderlay(this.underlay);
    await this.control?.close();
    this.metricsServer?.closeAllConnections();
    await new Promise<void>((resolve) =>
      this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve(),
    );
    this.logger.info('agent stopped');
  }

  get currentState(): ClusterState | null {
    return this.state;
  }
}

function fingerprint(pod: PodState): string {
  return JSON.stringify([
    pod.ip,
    pod.vethName,
    pod.containers,
    pod.restartPolicy,
    pod.dnsPolicy,
    pod.dnsConfig,
  ]);
}

/** kubeadm gives the cluster DNS Service the tenth address of the service CIDR (10.96.0.10). */
export function kubeDnsAddress(serviceSubnet: string): string {
  const { addr } = parseCidr(serviceSubnet);
  return ipv4ToString((addr + 10) >>> 0);
}

function argvOf(params: Record<string, unknown>): string[] {
  const argv = params.argv;
  if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) {
    throw new Error('argv: expected an array of strings');
  }
  return argv as string[];
}
