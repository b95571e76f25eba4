/**
 * Services at scale (issue 4): 10, 1,000 and 10,000 Services × 5 endpoints in one run.
 *
 *   npm run build && node --expose-gc dist/bench/services/bench.js
 *   node --expose-gc dist/bench/services/bench.js --scales 10,10000 --rounds 21 --json out.json
 *
 * For each scale the cluster is generated as manifests (a kubeadm ClusterConfiguration, 10
 * Nodes, 100 Namespaces, per Service a Deployment of 5 replicas and a Service selecting it,
 * every tenth a NodePort) and goes through the real cluster model (buildClusterState:
 * validation, scheduling, IPAM, endpoints). Node `node-0`'s NodeKernel — the agent's
 * netfilter, conntrack and kube-proxy sync, wired into a Forwarder's HookPipeline — is
 * created fresh and then measured:
 *
 * - first sync: `syncKubeProxy(state)` as the agent runs it on start (kube-proxy's rule
 *   generation, iptables-restore --noflush into the empty netfilter, then the jump rules
 *   with `iptables -C`/`-I`), wall and CPU time, split into generation and apply;
 * - memory: heapUsed and RSS after forced GC, before the kernel existed and after the sync;
 * - a one-Service change at scale: one Deployment scaled 5 → 6 replicas (its Service gains an
 *   endpoint), then back to 5 (the endpoint's chain is deleted): buildClusterState of the
 *   changed manifests on top of the previous state (as the agent builds it), then
 *   `syncKubeProxy` (the diff path: kube-proxy's rules computed against the previous sync,
 *   restore --noflush); also a resync of an unchanged state;
 * - per-packet cost through the HookPipeline (the forwarder's calls, in its order: prerouting,
 *   forward, postrouting): TCP SYNs from pods on node-0 to random ClusterIPs (new connections:
 *   full rule evaluation, conntrack entry creation, DNAT, confirm), and established flows
 *   (data segments client → Service and ACKs endpoint → client: the conntrack fast path with
 *   NAT of every packet). The packets are real IPv4/TCP bytes built with src/packet's emitters.
 *   The rounds of the three scales are interleaved (10, 1,000, 10,000, 10, …) so that a change
 *   in the machine's load hits all of them alike; every round processes the same number of
 *   packets into a conntrack table of the same size; medians over the rounds are reported.
 */
import * as os from 'node:os';
import { writeFileSync } from 'node:fs';
import pino from 'pino';
import {
  buildClusterState,
  type ClusterState,
  type ManifestDocument,
} from '../../src/cluster/index.js';
import { NodeKernel } from '../../src/agent/node-kernel.js';
import { Forwarder } from '../../src/dataplane/forwarder.js';
import type { HookPipeline } from '../../src/dataplane/hooks.js';
import { Verdict } from '../../src/netfilter/packet-meta.js';
import {
  IPPROTO_TCP,
  TcpFlags,
  emitIpv4Header,
  emitTcp,
  ipv4FromString,
} from '../../src/packet/index.js';
import { settle } from '../gc.js';

/* ------------------------------------------------------------------ options */

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

const SCALES = arg('scales', '10,1000,10000')
  .split(',')
  .map((s) => Number(s.replace(/_/g, '')));
const ROUNDS = Number(arg('rounds', '15'));
/** New connections per round (one SYN each); the conntrack table is flushed between rounds. */
const NEW_PER_ROUND = Number(arg('new', '16384'));
/** Established flows, and data/ACK pairs per flow per round. */
const FLOWS = Number(arg('flows', '4096'));
const PAIRS_PER_FLOW = Number(arg('pairs', '8'));
const CHANGES = Number(arg('changes', '3'));
const JSON_OUT = arg('json', '');
const ENDPOINTS = 5;
const NODES = 10;
const NAMESPACES = 100;
const NODE = 'node-0';
/** Pods on node-0 that open the connections (the same number at every scale). */
const CLIENTS = 4;

interface Timing {
  wallMs: number;
  cpuMs: number;
}

function timed<T>(fn: () => T): [T, Timing] {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const v = fn();
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = process.cpuUsage(c0);
  return [v, { wallMs, cpuMs: (c.user + c.system) / 1000 }];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) >> 1]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/* ------------------------------------------------------------------ manifests */

/** Names carry the scale so that no scale profits from another's cached chain names. */
function manifests(n: number, replicasOf: (i: number) => number): ManifestDocument[] {
  const docs: ManifestDocument[] = [];
  const add = (object: unknown) =>
    docs.push({ file: `generated-${n}.yaml`, index: docs.length + 1, object });
  add({
    apiVersion: 'kubeadm.k8s.io/v1beta3',
    kind: 'ClusterConfiguration',
    networking: { podSubnet: '10.32.0.0/11', serviceSubnet: '10.96.0.0/12' },
  });
  for (let i = 0; i < NODES; i++) {
    add({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: `node-${i}` },
      status: { addresses: [{ type: 'InternalIP', address: `10.1.110.${10 + i}` }] },
    });
  }
  for (let i = 0; i < NAMESPACES; i++) {
    add({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `s${n}-ns${i}` } });
  }
  // The clients: bare Pods on node-0 that no Service selects (so no connection hairpins).
  for (let i = 0; i < CLIENTS; i++) {
    add({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `client${i}`, namespace: `s${n}-ns0`, labels: { role: 'client' } },
      spec: { nodeName: NODE, containers: [{ name: 'client', image: 'curl' }] },
    });
  }
  for (let i = 0; i < n; i++) {
    const namespace = `s${n}-ns${i % NAMESPACES}`;
    const app = `app${i}`;
    add({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: app, namespace },
      spec: {
        replicas: replicasOf(i),
        selector: { matchLabels: { app } },
        template: {
          metadata: { labels: { app } },
          spec: {
            containers: [{ name: 'web', image: 'echo', ports: [{ containerPort: 8080 }] }],
          },
        },
      },
    });
    add({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc${i}`, namespace },
      spec: {
        type: i % 10 === 0 ? 'NodePort' : 'ClusterIP',
        selector: { app },
        ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      },
    });
  }
  return docs;
}

/* ------------------------------------------------------------------ packets */

const SLOT = 128;
const IP_OFF = 16;
const SYN_OPTIONS = new Uint8Array([2, 4, 0x05, 0xb4]); // MSS 1460
const PAYLOAD = 64;

function emitSegment(
  buf: Buffer,
  slot: number,
  src: number,
  dst: number,
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  payload: number,
): void {
  const o = slot * SLOT + IP_OFF;
  const tcpLen = (flags & TcpFlags.SYN ? 24 : 20) + payload;
  buf.fill(0x61, o + 20 + tcpLen - payload, o + 20 + tcpLen);
  emitTcp(
    buf,
    o + 20,
    {
      srcPort: sport,
      dstPort: dport,
      seq: seq >>> 0,
      ack: ack >>> 0,
      flags,
      window: 65535,
      ...(flags & TcpFlags.SYN ? { options: SYN_OPTIONS } : {}),
    },
    src,
    dst,
    payload,
  );
  emitIpv4Header(buf, o, {
    src,
    dst,
    protocol: IPPROTO_TCP,
    ttl: 64,
    id: slot & 0xffff,
    dontFragment: true,
    tos: 0,
    payloadLength: tcpLen,
  });
}

function ipLenAt(buf: Buffer, slot: number): number {
  return buf.readUInt16BE(slot * SLOT + IP_OFF + 2);
}

/** A pod of node-0 that sends: its address and its host-side interface. */
interface Client {
  ip: number;
  veth: string;
}

/** Deterministic pseudo-random numbers (the same sequence at every scale). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
}

/* ------------------------------------------------------------------ one scale */

interface Scale {
  n: number;
  kernel: NodeKernel;
  hooks: HookPipeline;
  clients: Client[];
  clusterIPs: number[];
  result: Record<string, number | string>;
  newWall: number[];
  newCpu: number[];
  estWall: number[];
  estCpu: number[];
  /** Established flows: client, ClusterIP, sport, endpoint chosen, client ISN, server ISN. */
  flows: Array<{
    c: Client;
    vip: number;
    sport: number;
    ep: number;
    epPort: number;
    cisn: number;
    sisn: number;
  }>;
  sent: number;
}

const silent = pino({ level: 'silent' });

function syncTimed(
  kernel: NodeKernel,
  state: ClusterState,
): { wall: number; cpu: number; gen: number; apply: number } {
  const [, t] = timed(() => kernel.syncKubeProxy(state));
  const s = kernel.lastSync!;
  return { wall: t.wallMs, cpu: t.cpuMs, gen: s.generateMs ?? NaN, apply: s.applyMs ?? NaN };
}

function setUp(n: number): Scale {
  const result: Record<string, number | string> = { services: n };
  const replicas = new Map<number, number>();
  const docs = manifests(n, (i) => replicas.get(i) ?? ENDPOINTS);
  const [state, stateT] = timed(() => buildClusterState(docs));
  result.stateMs = stateT.wallMs;
  result.pods = state.pods.length;

  const before = settle();
  const fwd = new Forwarder(silent);
  const node = state.nodes.find((x) => x.name === NODE)!;
  const nodeIp = ipv4FromString(node.internalIP);
  fwd.primaryAddress = nodeIp;
  fwd.local.set(nodeIp, { answerEcho: true, deliverTo: null });
  const kernel = new NodeKernel(fwd, NODE, silent, () => 0);
  const hooks = fwd.hooks!;

  const first = syncTimed(kernel, state);
  result.firstSyncMs = first.wall;
  result.firstSyncCpuMs = first.cpu;
  result.generateMs = first.gen;
  result.applyMs = first.apply;
  const after = settle();
  result.heapUsedMiB = after.heapUsed / 1048576;
  result.rssMiB = after.rss / 1048576;
  result.heapDeltaMiB = (after.heapUsed - before.heapUsed) / 1048576;
  result.rssDeltaMiB = (after.rss - before.rss) / 1048576;
  const save = kernel.netfilter.save({ table: 'nat' });
  result.natRules = save.split('\n').filter((l) => l.startsWith('-A ')).length;
  result.natChains = save.split('\n').filter((l) => l.startsWith(':KUBE-')).length;

  // A resync of the same state (nothing changed), then one-Service changes.
  const resync = syncTimed(kernel, state);
  result.resyncMs = resync.wall;
  result.resyncGenerateMs = resync.gen;
  result.resyncApplyMs = resync.apply;
  let previous = state;
  const changeState: number[] = [];
  const changeSync: number[] = [];
  const changeGen: number[] = [];
  const changeApply: number[] = [];
  for (let k = 0; k < CHANGES; k++) {
    const which = (k * 7919 + 1) % n;
    for (const r of [ENDPOINTS + 1, ENDPOINTS]) {
      replicas.set(which, r);
      const changed = manifests(n, (i) => replicas.get(i) ?? ENDPOINTS);
      // As the agent builds it: on top of the state before (unchanged documents are
      // not worked out again).
      const [s2, t2] = timed(() => buildClusterState(changed, { previous }));
      previous = s2;
      changeState.push(t2.wallMs);
      const c = syncTimed(kernel, s2);
      changeSync.push(c.wall);
      changeGen.push(c.gen);
      changeApply.push(c.apply);
    }
    replicas.delete(which);
  }
  result.changeStateMs = median(changeState);
  result.changeSyncMs = median(changeSync);
  result.changeGenerateMs = median(changeGen);
  result.changeApplyMs = median(changeApply);
  // Back to the original state (the last change restored 5 replicas: same rules).
  kernel.syncKubeProxy(state);

  const clients: Client[] = state.pods
    .filter((p) => p.labels.role === 'client' && p.ip !== null)
    .map((p) => ({ ip: ipv4FromString(p.ip!), veth: p.vethName }));
  const clusterIPs = state.services
    .filter((s) => s.namespace.startsWith(`s${n}-`) && s.clusterIP !== null)
    .map((s) => ipv4FromString(s.clusterIP!));
  if (clusterIPs.length !== n)
    throw new Error(`expected ${n} Services, found ${clusterIPs.length}`);
  return {
    n,
    kernel,
    hooks,
    clients,
    clusterIPs,
    result,
    newWall: [],
    newCpu: [],
    estWall: [],
    estCpu: [],
    flows: [],
    sent: 0,
  };
}

/** The forwarder's calls for a packet forwarded from `inIf` to `outIf`; true when accepted. */
function forwardPacket(
  h: HookPipeline,
  inIf: string,
  outIf: string,
  buf: Buffer,
  slot: number,
): boolean {
  const off = slot * SLOT + IP_OFF;
  let v = h.prerouting(inIf, buf, off, ipLenAt(buf, slot), -1, false, true);
  if (v === Verdict.ACCEPT) v = h.forward(outIf);
  if (v === Verdict.ACCEPT) v = h.postrouting(outIf, false);
  if (v !== Verdict.ACCEPT) {
    h.dropped();
    return false;
  }
  return true;
}

const OUT_IF = 'tunl0';

/** New connections: K SYNs from the node's pods to random Services. */
function newConnectionRound(sc: Scale, pristine: Buffer, work: Buffer, inIfs: string[]): void {
  sc.kernel.conntrack.flush();
  pristine.copy(work);
  settle();
  const h = sc.hooks;
  let accepted = 0;
  const [, t] = timed(() => {
    for (let i = 0; i < NEW_PER_ROUND; i++) {
      if (forwardPacket(h, inIfs[i]!, OUT_IF, work, i)) accepted++;
    }
  });
  if (accepted !== NEW_PER_ROUND)
    throw new Error(`${sc.n}: ${accepted} of ${NEW_PER_ROUND} SYNs accepted`);
  // Every SYN was DNATed to an endpoint (10.32.0.0/11) on port 8080.
  for (let i = 0; i < NEW_PER_ROUND; i += 997) {
    const o = i * SLOT + IP_OFF;
    if (work.readUInt32BE(o + 16) >>> 21 !== 0x0a20 >>> 5 || work.readUInt16BE(o + 22) !== 8080) {
      throw new Error(`${sc.n}: SYN ${i} not DNATed`);
    }
  }
  if (sc.kernel.conntrack.count() !== NEW_PER_ROUND)
    throw new Error(`${sc.n}: conntrack count ${sc.kernel.conntrack.count()}`);
  sc.newWall.push((t.wallMs * 1e6) / NEW_PER_ROUND);
  sc.newCpu.push((t.cpuMs * 1e6) / NEW_PER_ROUND);
}

function buildNewConnections(sc: Scale): { pristine: Buffer; inIfs: string[] } {
  const rnd = lcg(42);
  const pristine = Buffer.alloc(NEW_PER_ROUND * SLOT);
  const inIfs: string[] = [];
  for (let i = 0; i < NEW_PER_ROUND; i++) {
    const c = sc.clients[i % sc.clients.length]!;
    const vip = sc.clusterIPs[rnd() % sc.clusterIPs.length]!;
    emitSegment(
      pristine,
      i,
      c.ip,
      vip,
      1024 + Math.floor(i / CLIENTS),
      80,
      rnd(),
      0,
      TcpFlags.SYN,
      0,
    );
    inIfs.push(c.veth);
  }
  return { pristine, inIfs };
}

/** Opens FLOWS connections with a full handshake; they stay in the conntrack table. */
function openFlows(sc: Scale): void {
  const ct = sc.kernel.conntrack;
  ct.flush();
  const rnd = lcg(7);
  const buf = Buffer.alloc(SLOT);
  sc.flows = [];
  for (let f = 0; f < FLOWS; f++) {
    const c = sc.clients[f % sc.clients.length]!;
    const vip = sc.clusterIPs[rnd() % sc.clusterIPs.length]!;
    const sport = 40000 + Math.floor(f / CLIENTS);
    const cisn = rnd();
    const sisn = rnd();
    emitSegment(buf, 0, c.ip, vip, sport, 80, cisn, 0, TcpFlags.SYN, 0);
    if (!forwardPacket(sc.hooks, c.veth, OUT_IF, buf, 0)) throw new Error('SYN dropped');
    const ep = buf.readUInt32BE(IP_OFF + 16);
    const epPort = buf.readUInt16BE(IP_OFF + 22);
    emitSegment(buf, 0, ep, c.ip, epPort, sport, sisn, cisn + 1, TcpFlags.SYN | TcpFlags.ACK, 0);
    if (!forwardPacket(sc.hooks, OUT_IF, c.veth, buf, 0)) throw new Error('SYN-ACK dropped');
    emitSegment(buf, 0, c.ip, vip, sport, 80, cisn + 1, sisn + 1, TcpFlags.ACK, 0);
    if (!forwardPacket(sc.hooks, c.veth, OUT_IF, buf, 0)) throw new Error('ACK dropped');
    sc.flows.push({ c, vip, sport, ep, epPort, cisn, sisn });
  }
  if (ct.count() !== FLOWS) throw new Error(`${sc.n}: ${ct.count()} flows in conntrack`);
  sc.sent = 0;
}

/** Established traffic: per flow PAIRS_PER_FLOW data segments and their ACKs, flows interleaved. */
function establishedRound(sc: Scale, work: Buffer, inIfs: string[], outIfs: string[]): void {
  // Build this round's packets (untimed): sequence numbers go on from the last round.
  let slot = 0;
  for (let p = 0; p < PAIRS_PER_FLOW; p++) {
    const k = sc.sent + p;
    for (const fl of sc.flows) {
      const seq = fl.cisn + 1 + k * PAYLOAD;
      emitSegment(
        work,
        slot,
        fl.c.ip,
        fl.vip,
        fl.sport,
        80,
        seq,
        fl.sisn + 1,
        TcpFlags.ACK | TcpFlags.PSH,
        PAYLOAD,
      );
      inIfs[slot] = fl.c.veth;
      outIfs[slot++] = OUT_IF;
      emitSegment(
        work,
        slot,
        fl.ep,
        fl.c.ip,
        fl.epPort,
        fl.sport,
        fl.sisn + 1,
        seq + PAYLOAD,
        TcpFlags.ACK,
        0,
      );
      inIfs[slot] = OUT_IF;
      outIfs[slot++] = fl.c.veth;
    }
  }
  sc.sent += PAIRS_PER_FLOW;
  settle();
  const h = sc.hooks;
  const total = slot;
  let accepted = 0;
  const [, t] = timed(() => {
    for (let i = 0; i < total; i++)
      if (forwardPacket(h, inIfs[i]!, outIfs[i]!, work, i)) accepted++;
  });
  if (accepted !== total)
    throw new Error(`${sc.n}: ${accepted} of ${total} established packets accepted`);
  // Replies were un-DNATed: the ACK of flow 0 comes from its ClusterIP:80.
  const fl = sc.flows[0]!;
  if (
    work.readUInt32BE(SLOT + IP_OFF + 12) !== fl.vip ||
    work.readUInt16BE(SLOT + IP_OFF + 20) !== 80
  ) {
    throw new Error(`${sc.n}: reply not un-DNATed`);
  }
  if (sc.kernel.conntrack.count() !== FLOWS) throw new Error(`${sc.n}: flows changed`);
  sc.estWall.push((t.wallMs * 1e6) / total);
  sc.estCpu.push((t.cpuMs * 1e6) / total);
}

/* ------------------------------------------------------------------ main */

function fmt(x: number | string | undefined, digits = 0): string {
  if (typeof x === 'string') return x;
  if (x === undefined || Number.isNaN(x)) return '–';
  return x.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function main(): void {
  const load0 = os.loadavg();
  const started = new Date();
  const scales: Scale[] = [];
  for (const n of SCALES) {
    const sc = setUp(n);
    scales.push(sc);
    const r = sc.result;
    console.log(
      `${n} Services: state ${fmt(r.stateMs)} ms; first sync ${fmt(r.firstSyncMs)} ms ` +
        `(generate ${fmt(r.generateMs)} + apply ${fmt(r.applyMs)}; CPU ${fmt(r.firstSyncCpuMs)} ms); ` +
        `${fmt(r.natRules)} nat rules, ${fmt(r.natChains)} chains; heap ${fmt(r.heapUsedMiB)} MiB ` +
        `(+${fmt(r.heapDeltaMiB)}), rss ${fmt(r.rssMiB)} MiB (+${fmt(r.rssDeltaMiB)}); ` +
        `resync ${fmt(r.resyncMs)} ms (${fmt(r.resyncGenerateMs)} + ${fmt(r.resyncApplyMs)}); ` +
        `one-Service change: state ${fmt(r.changeStateMs)} ms + sync ${fmt(r.changeSyncMs)} ms ` +
        `(${fmt(r.changeGenerateMs)} + ${fmt(r.changeApplyMs)})`,
    );
  }

  // Per-packet rounds, interleaved across the scales.
  const work = Buffer.alloc(Math.max(NEW_PER_ROUND, FLOWS * PAIRS_PER_FLOW * 2) * SLOT);
  const newPkts = scales.map(buildNewConnections);
  const estIn: string[] = [];
  const estOut: string[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    scales.forEach((sc, i) =>
      newConnectionRound(sc, newPkts[i]!.pristine, work, newPkts[i]!.inIfs),
    );
  }
  for (const sc of scales) openFlows(sc);
  for (let r = 0; r < ROUNDS; r++) {
    for (const sc of scales) establishedRound(sc, work, estIn, estOut);
  }
  const load1 = os.loadavg();

  // The rounds are interleaved, so the machine's load weighs on every scale alike. Per
  // packet: the median over the rounds by wall-clock and by process CPU time (which also
  // counts the collector's helper threads), and the fastest round (the cost without
  // interference from other jobs); each compared with the first scale.
  const min = (xs: number[]) => Math.min(...xs);
  const base = scales[0]!;
  for (const sc of scales) {
    const r = sc.result;
    r.newNsWall = median(sc.newWall);
    r.newNsCpu = median(sc.newCpu);
    r.newNsMin = min(sc.newWall);
    r.estNsWall = median(sc.estWall);
    r.estNsCpu = median(sc.estCpu);
    r.estNsMin = min(sc.estWall);
    r.newKpps = 1e6 / (r.newNsWall as number);
    r.estKpps = 1e6 / (r.estNsWall as number);
    r.newVsBaseWall = (r.newNsWall as number) / median(base.newWall);
    r.newVsBaseCpu = (r.newNsCpu as number) / median(base.newCpu);
    r.newVsBaseMin = (r.newNsMin as number) / min(base.newWall);
    r.estVsBaseWall = (r.estNsWall as number) / median(base.estWall);
    r.estVsBaseCpu = (r.estNsCpu as number) / median(base.estCpu);
    r.estVsBaseMin = (r.estNsMin as number) / min(base.estWall);
  }

  const lines: string[] = [];
  lines.push(
    `node ${process.version} ${process.arch}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}; ` +
      `load average ${load0.map((l) => l.toFixed(2)).join(' ')} at start, ${load1
        .map((l) => l.toFixed(2))
        .join(' ')} at end; ${started.toISOString()}`,
  );
  lines.push('');
  lines.push(
    '| Services | nat rules | first sync ms (generate + apply) | CPU ms | resync ms (generate + apply) | one-Service change: state ms + sync ms (generate + apply) | heap MiB after GC (Δ) | RSS MiB (Δ) |',
  );
  lines.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const sc of scales) {
    const r = sc.result;
    lines.push(
      `| ${fmt(sc.n)} | ${fmt(r.natRules)} | ${fmt(r.firstSyncMs)} (${fmt(r.generateMs)} + ${fmt(r.applyMs)}) | ` +
        `${fmt(r.firstSyncCpuMs)} | ${fmt(r.resyncMs)} (${fmt(r.resyncGenerateMs)} + ${fmt(r.resyncApplyMs)}) | ` +
        `${fmt(r.changeStateMs)} + ${fmt(r.changeSyncMs)} (${fmt(r.changeGenerateMs)} + ${fmt(r.changeApplyMs)}) | ` +
        `${fmt(r.heapUsedMiB)} (+${fmt(r.heapDeltaMiB)}) | ${fmt(r.rssMiB)} (+${fmt(r.rssDeltaMiB)}) |`,
    );
  }
  lines.push('');
  lines.push(
    `Per packet: ${ROUNDS} rounds × ${NEW_PER_ROUND} new connections (SYN) and × ` +
      `${FLOWS * PAIRS_PER_FLOW * 2} established packets (${FLOWS} flows); ns/packet as ` +
      `median wall / median CPU / fastest round; k packets/s from the median wall; ratios to ` +
      `${fmt(base.n)} Services in the same three measures.`,
  );
  lines.push('');
  lines.push(
    '| Services | new conn ns/pkt | kpps | vs first | established ns/pkt | kpps | vs first |',
  );
  lines.push('|---:|---:|---:|---:|---:|---:|---:|');
  for (const sc of scales) {
    const r = sc.result;
    const three = (a: unknown, b: unknown, c: unknown, d = 0) =>
      `${fmt(a as number, d)} / ${fmt(b as number, d)} / ${fmt(c as number, d)}`;
    lines.push(
      `| ${fmt(sc.n)} | ${three(r.newNsWall, r.newNsCpu, r.newNsMin)} | ${fmt(r.newKpps)} | ` +
        `${three(r.newVsBaseWall, r.newVsBaseCpu, r.newVsBaseMin, 2)} | ` +
        `${three(r.estNsWall, r.estNsCpu, r.estNsMin)} | ${fmt(r.estKpps)} | ` +
        `${three(r.estVsBaseWall, r.estVsBaseCpu, r.estVsBaseMin, 2)} |`,
    );
  }
  for (const l of lines) console.log(l);
  if (JSON_OUT !== '') {
    writeFileSync(
      JSON_OUT,
      JSON.stringify(
        {
          node: process.version,
          cpus: os.cpus().length,
          loadavgStart: load0,
          loadavgEnd: load1,
          started: started.toISOString(),
          rounds: ROUNDS,
          scales: scales.map((s) => ({
            ...s.result,
            roundsNewNsWall: s.newWall,
            roundsNewNsCpu: s.newCpu,
            roundsEstNsWall: s.estWall,
            roundsEstNsCpu: s.estCpu,
          })),
        },
        null,
        2,
      ) + '\n',
    );
  }
}

main();
