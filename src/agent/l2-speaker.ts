import {
  advertisementsFor,
  electAnnouncer,
  endpointsForService,
  serviceKey,
  type ClusterState,
  type ElectionResult,
  type ServiceEvent,
} from '../cluster/index.js';
import type { Forwarder } from '../dataplane/forwarder.js';
import type { NetInterface } from '../dataplane/interface.js';
import { ipv4FromString } from '../packet/addr.js';
import type { Logger } from '../util/log.js';

/** MetalLB's announcer: re-send gratuitous ARP every 1.1 s for 5 s after taking an address. */
const GARP_REPEAT_MS = 1100;
const GARP_DURATION_MS = 5000;

export interface RecordedEvent extends ServiceEvent {
  count: number;
  firstSeen: string;
  lastSeen: string;
}

export interface Election {
  service: string;
  ips: string[];
  /** The node announcing the addresses in this agent's view, or null with the reason. */
  announcer: string | null;
  reason?: string;
  candidates?: string[];
}

export interface SpeakerView {
  liveNodes: string[];
  downNodes: ReadonlySet<string>;
  /** false until this agent knows who is up (see NodeLiveness): it then takes no address. */
  settled: boolean;
}

/**
 * MetalLB's speaker in layer-2 mode for this node: for each LoadBalancer address the
 * election (the same pure function on every node) says whether this node announces it;
 * announced addresses are answered in ARP by the forwarder, and taking one over sends
 * gratuitous ARP bursts. Events (the controller's and this speaker's) are kept for
 * `kubewire describe svc`.
 */
export class L2Speaker {
  private readonly announced = new Map<string, string>(); // ip → service key
  private readonly spam = new Map<string, { until: number; timer: NodeJS.Timeout }>();
  private readonly events = new Map<string, RecordedEvent[]>();
  private elections: Election[] = [];

  constructor(
    private readonly nodeName: string,
    private readonly forwarder: Forwarder,
    private readonly uplink: () => NetInterface | null,
    private readonly logger: Logger,
  ) {}

  update(state: ClusterState, view: SpeakerView): void {
    const live = new Set(view.liveNodes);
    const wanted = new Map<string, string>();
    const elections: Election[] = [];
    for (const lb of state.metallb.loadBalancers) {
      const key = `${lb.namespace}/${lb.name}`;
      for (const e of lb.events) this.record(key, e);
      if (lb.ips.length === 0 || lb.pool === null) continue;
      const svc = state.services.find((s) => serviceKey(s) === key);
      const pool = state.metallb.pools.find((p) => p.name === lb.pool);
      if (!svc || !pool) continue;
      const ads = advertisementsFor(state.metallb.advertisements, pool, svc);
      const readyNodes = new Set<string>();
      for (const port of endpointsForService(state, svc, { downNodes: view.downNodes })) {
        for (const ep of port.endpoints) if (ep.ready && ep.nodeName) readyNodes.add(ep.nodeName);
      }
      const result: ElectionResult = electAnnouncer(
        svc,
        lb.ips[0]!,
        ads,
        state.nodes.map((n) => ({
          name: n.name,
          labels: n.labels,
          live: live.has(n.name),
          hasReadyEndpoint: readyNodes.has(n.name),
        })),
      );
      elections.push(
        result.node !== null
          ? { service: key, ips: lb.ips, announcer: result.node, candidates: result.candidates }
          : { service: key, ips: lb.ips, announcer: null, reason: result.reason },
      );
      if (view.settled && result.node === this.nodeName) {
        for (const ip of lb.ips) wanted.set(ip, key);
      }
    }
    this.elections = elections;
    for (const [ip, key] of this.announced) {
      if (wanted.get(ip) === key) continue;
      this.announced.delete(ip);
      this.forwarder.announced.delete(ipv4FromString(ip));
      this.stopSpam(ip);
      this.logger.info({ ip, service: key }, 'withdrawing service announcement');
    }
    for (const [ip, key] of wanted) {
      if (this.announced.has(ip)) continue;
      this.announced.set(ip, key);
      this.forwarder.announced.add(ipv4FromString(ip));
      this.startSpam(ip);
      this.record(key, {
        type: 'Normal',
        reason: 'nodeAssigned',
        message: `announcing from node "${this.nodeName}" with protocol "layer2"`,
        from: 'metallb-speaker',
      });
      this.logger.info({ ip, service: key }, 'announcing service');
    }
  }

  /** Gratuitous ARP now, then every 1.1 s until 5 s have passed (MetalLB's spamLoop). */
  private startSpam(ip: string): void {
    this.stopSpam(ip);
    const addr = ipv4FromString(ip);
    const send = () => {
      const dev = this.uplink();
      if (dev) this.forwarder.sendGratuitousArp(dev, addr);
    };
    send();
    const until = Date.now() + GARP_DURATION_MS;
    const timer = setInterval(() => {
      if (Date.now() >= until) return this.stopSpam(ip);
      send();
    }, GARP_REPEAT_MS);
    this.spam.set(ip, { until, timer });
  }

  private stopSpam(ip: string): void {
    const s = this.spam.get(ip);
    if (!s) return;
    clearInterval(s.timer);
    this.spam.delete(ip);
  }

  private record(key: string, e: ServiceEvent): void {
    const now = new Date().toISOString();
    const list = this.events.get(key) ?? [];
    const last = list[list.length - 1];
    if (last && last.reason === e.reason && last.message === e.message) {
      // A standing condition is one event; a repeated action (announcing again) counts up.
      if (e.from === 'metallb-speaker') {
        last.count++;
        last.lastSeen = now;
      }
    } else if (
      !list.some((x) => x.reason === e.reason && x.message === e.message) ||
      e.from === 'metallb-speaker'
    ) {
      list.push({ ...e, count: 1, firstSeen: now, lastSeen: now });
    }
    if (list.length > 50) list.splice(0, list.length - 50);
    this.events.set(key, list);
  }

  status(): {
    node: string;
    announcing: { ip: string; service: string }[];
    elections: Election[];
    events: Record<string, RecordedEvent[]>;
  } {
    return {
      node: this.nodeName,
      announcing: [...this.announced].map(([ip, service]) => ({ ip, service })),
      elections: this.elections,
      events: Object.fromEntries(this.events),
    };
  }

  stop(): void {
    for (const ip of [...this.spam.keys()]) this.stopSpam(ip);
    for (const ip of this.announced.keys()) this.forwarder.announced.delete(ipv4FromString(ip));
    this.announced.clear();
  }
}
