/**
 * The node agent's down-nodes file (`<run>/<lab>/nodes/<node>/down-nodes.json`, JSON
 * `{"downNodes": [...]}`): the nodes the agent's liveness counts as down. The node's
 * kube-proxy rules drop their pods' endpoints; the programs of the node's pods that pick
 * endpoints themselves (CoreDNS, the ingress controller) read this file to do the same,
 * as they would read EndpointSlice readiness in Kubernetes.
 */
import { readFileSync } from 'node:fs';

/** The nodes listed in a down-nodes file; none when it is missing or unreadable. */
export function readDownNodes(file: string | undefined): Set<string> {
  if (!file) return new Set();
  try {
    const o = JSON.parse(readFileSync(file, 'utf8')) as { downNodes?: unknown };
    return new Set(
      Array.isArray(o.downNodes) ? o.downNodes.filter((n) => typeof n === 'string') : [],
    );
  } catch {
    return new Set();
  }
}
