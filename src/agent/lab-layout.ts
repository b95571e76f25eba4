import { join } from 'node:path';

/**
 * Where a lab keeps its files. One directory per lab under the run directory
 * (default /run/kubewire, tmpfs: a reboot leaves nothing behind):
 *
 *   <run>/<lab>/lab.json                 what `up` created (nodes, netns, agent pids)
 *   <run>/<lab>/manifests/               the cluster's source of truth, watched by agents
 *   <run>/<lab>/nodes/<node>/agent.sock  the agent's control socket (root only)
 *   <run>/<lab>/nodes/<node>/agent.log   the agent's own log (JSON lines)
 *   <run>/<lab>/nodes/<node>/netns.json  pod namespaces the agent created (for cleanup)
 *   <run>/<lab>/nodes/<node>/down-nodes.json  the nodes this agent counts as down
 *                                        (liveness), read by the node's CoreDNS pods
 *   <run>/<lab>/nodes/<node>/logs/       container output, <ns>_<pod>_<container>.log
 */
export const DEFAULT_LAB = 'kw';

export function runDir(): string {
  return process.env.KUBEWIRE_RUN_DIR ?? '/run/kubewire';
}

export function labNameFromEnv(): string {
  return process.env.KUBEWIRE_LAB ?? DEFAULT_LAB;
}

export class LabLayout {
  readonly dir: string;
  constructor(readonly lab: string) {
    if (!/^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$/.test(lab)) {
      throw new Error(
        `invalid lab name '${lab}': use 1-16 lowercase letters, digits and '-', starting and ending with a letter or digit`,
      );
    }
    this.dir = join(runDir(), lab);
  }
  get labFile(): string {
    return join(this.dir, 'lab.json');
  }
  get manifestsDir(): string {
    return join(this.dir, 'manifests');
  }
  nodeDir(node: string): string {
    return join(this.dir, 'nodes', node);
  }
  agentSocket(node: string): string {
    return join(this.nodeDir(node), 'agent.sock');
  }
  agentLog(node: string): string {
    return join(this.nodeDir(node), 'agent.log');
  }
  netnsRecord(node: string): string {
    return join(this.nodeDir(node), 'netns.json');
  }
  downNodesFile(node: string): string {
    return join(this.nodeDir(node), 'down-nodes.json');
  }
  containerLog(node: string, namespace: string, pod: string, container: string): string {
    return join(this.nodeDir(node), 'logs', `${namespace}_${pod}_${container}.log`);
  }
  nodeNetns(node: string): string {
    return `${this.lab}-${node}`;
  }
  hostNetns(host: string): string {
    return `${this.lab}-${host}`;
  }
  get switchNetns(): string {
    return `${this.lab}-switch`;
  }
  podNetns(namespace: string, pod: string): string {
    return `${this.lab}-${namespace}.${pod}`; // namespaces never contain a dot: no collisions
  }
}

/** What `kubewire up` records about a running lab. */
export interface LabRecord {
  name: string;
  createdAt: string;
  /** netns: `kubewire up`; compose: containers of compose/docker-compose.yml (src/lab/compose.ts). */
  mode: 'netns' | 'compose';
  nodes: { name: string; netns: string; agentPid: number | null }[];
  /** Lab hosts that are not nodes (client, router), reachable with `exec --host`. */
  hosts: { name: string; netns: string; address: string }[];
  /** The namespace holding the lab's bridges. */
  switchNetns: string;
}
