import { buildClusterState, loadManifests, type ClusterState } from '../cluster/index.js';
import { callAgent } from '../agent/control.js';
import { LabLayout, labNameFromEnv, type LabRecord } from '../agent/lab-layout.js';
import type { AgentStatus } from '../agent/node-agent.js';
import type { PodStatus } from '../agent/pod-runtime.js';
import { readLabRecord } from '../lab/netns-lab.js';

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The running lab the CLI talks to: its record, its manifests' state and its agents. */
export class LabClient {
  readonly layout: LabLayout;
  readonly record: LabRecord;

  constructor(lab: string | undefined) {
    this.layout = new LabLayout(lab ?? labNameFromEnv());
    const record = readLabRecord(this.layout);
    if (!record) {
      throw new CliError(`no lab '${this.layout.lab}' is running (start one with 'kubewire up')`);
    }
    this.record = record;
  }

  state(): ClusterState {
    return buildClusterState(loadManifests([this.layout.manifestsDir]));
  }

  node(name: string) {
    const node = this.record.nodes.find((n) => n.name === name);
    if (!node) {
      throw new CliError(
        `no node '${name}' in lab '${this.layout.lab}' (nodes: ${this.record.nodes.map((n) => n.name).join(', ')})`,
      );
    }
    return node;
  }

  /** The namespace of a node or of a lab host (client, router). */
  hostNetns(name: string): string {
    const host = this.record.hosts?.find((h) => h.name === name);
    if (host) return host.netns;
    const node = this.record.nodes.find((n) => n.name === name);
    if (node) return node.netns;
    const names = [
      ...this.record.nodes.map((n) => n.name),
      ...(this.record.hosts ?? []).map((h) => h.name),
    ];
    throw new CliError(
      `no node or host '${name}' in lab '${this.layout.lab}' (known: ${names.join(', ')})`,
    );
  }

  call<T>(node: string, method: string, params: Record<string, unknown> = {}): Promise<T> {
    this.node(node);
    return callAgent<T>(this.layout.agentSocket(node), method, params).catch((err: Error) => {
      throw new CliError(`node ${node}: ${err.message}`);
    });
  }

  /** Each agent's state generation (how many times it has converged). */
  async generations(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const n of this.record.nodes) {
      const st = await callAgent<AgentStatus>(
        this.layout.agentSocket(n.name),
        'status',
        {},
        5000,
      ).catch(() => null);
      out.set(n.name, st?.generation ?? 0);
    }
    return out;
  }

  /** Waits until every agent has converged past the given generations, with its pods ready. */
  async waitConverged(before: Map<string, number>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const statuses = await Promise.all(
        this.record.nodes.map((n) =>
          callAgent<AgentStatus>(this.layout.agentSocket(n.name), 'status', {}, 5000).catch(
            () => null,
          ),
        ),
      );
      const pending = this.record.nodes.filter((n, i) => {
        const st = statuses[i];
        return !st || st.generation <= (before.get(n.name) ?? 0) || !st.ready;
      });
      const rejected = statuses.find((st) => st?.lastError);
      if (pending.length === 0) return;
      if (
        rejected &&
        pending.length === this.record.nodes.length &&
        Date.now() > deadline - timeoutMs + 3000
      ) {
        throw new CliError(`the agents rejected the change: ${rejected.lastError}`);
      }
      if (Date.now() > deadline) {
        throw new CliError(
          `timed out waiting for nodes ${pending.map((n) => n.name).join(', ')} to converge`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Pod statuses from every agent, keyed by namespace/name. */
  async podStatuses(): Promise<Map<string, PodStatus>> {
    const out = new Map<string, PodStatus>();
    await Promise.all(
      this.record.nodes.map(async (n) => {
        const st = await callAgent<AgentStatus>(
          this.layout.agentSocket(n.name),
          'status',
          {},
          5000,
        ).catch(() => null);
        for (const p of st?.pods ?? []) out.set(`${p.namespace}/${p.name}`, p);
      }),
    );
    return out;
  }
}
