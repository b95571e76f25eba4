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
    const names = [...this.record.nodes.map((n) => n.name), ...(this.record.hosts ?? []).map((h) => h.name)];
    throw new CliError(`no node or host '${name}' in lab '${this.layout.lab}' (known: ${names.join(', ')})`);
  }

  call<T>(node: string, method: string, params: Record<string, unknown> = {}): Promise<T> {
    this.node(node);
    return callAgent<T>(this.layout.agentSocket(node), method, params).catch((err: Error) => {
      throw new CliError(`node ${node}: ${err.message}`);
    });
  }

  /** Pod statuses from every agent, keyed by namespace/name. */
  async podStatuses(): Promise<Map<string, PodStatus>> {
    const out = new Map<string, PodStatus>();
    await Promise.all(
      this.record.nodes.map(async (n) => {
        const st = await callAgent<AgentStatus>(this.layout.agentSocket(n.name), 'status', {}, 5000).catch(
          () => null,
        );
        for (const p of st?.pods ?? []) out.set(`${p.namespace}/${p.name}`, p);
      }),
    );
    return out;
  }
}
