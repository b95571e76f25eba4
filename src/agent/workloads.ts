import { fileURLToPath } from 'node:url';
import type { ContainerSpec } from '../cluster/index.js';

/** The program a container runs, chosen by image as ARCHITECTURE.md "Workloads" says. */
export interface WorkloadProgram {
  argv: string[];
  /** Environment the program needs besides the pod's (the container's own env wins). */
  env?: Record<string, string>;
  /** Stdout pattern that marks the container ready (built-in servers announce it). */
  readyPattern?: RegExp;
  kind: 'echo' | 'command' | 'dns' | 'ingress';
  /** echo: its ports, PORT/TCP or PORT/UDP (what the shared echo process serves). */
  echoPorts?: string[];
}

const builtin = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const echoScript = builtin('../workloads/echo.js');
const echoHostScript = builtin('../workloads/echo-host.js');
const dnsScript = builtin('../dns/main.js');
const ingressScript = builtin('../ingress/main.js');
const LISTENING = /"msg":"listening"/;

/**
 * Node.js flags of the agent (src/lab/netns-lab.ts, images/node-entrypoint.sh) and the
 * built-in programs, in their argv: nothing leaks into a pod's own command through
 * NODE_OPTIONS. One MiB semi-spaces: at start-up, reading the manifests, V8 would grow
 * the young generation to 16 MiB and keep it; capped, the agent settles ~14 MB lower and
 * the DNS and ingress programs ~10 MB (bench/compose/RESULTS.md), for more scavenges
 * that cost nothing measurable (forwarding, conntrack, dnsperf and ingress benchmarks).
 */
export const BUILTIN_NODE_FLAGS = ['--max-semi-space-size=1'];
/**
 * glibc otherwise gives each of V8's helper threads its own malloc arena, which keeps
 * what the compiler threads freed at start-up: 2 arenas save ~3 MB per program.
 */
const BUILTIN_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '2' };

function builtinProgram(
  kind: WorkloadProgram['kind'],
  script: string,
  args: string[],
): WorkloadProgram {
  return {
    kind,
    argv: [process.execPath, ...BUILTIN_NODE_FLAGS, script, ...args],
    env: { ...BUILTIN_ENV },
    readyPattern: LISTENING,
  };
}

/** CoreDNS images (registry.k8s.io/coredns/coredns, coredns/coredns, …). */
const COREDNS_IMAGE = /(^|\/)coredns(:|@|$)/;
/** ingress-nginx controller images (registry.k8s.io/ingress-nginx/controller, …). */
const INGRESS_NGINX_IMAGE = /ingress-nginx\/controller(:|@|$)|nginx-ingress-controller(:|@|$)/;

/**
 * Real manifests work unchanged: CoreDNS images run the built-in DNS server and
 * ingress-nginx controller images the built-in ingress (their args are the
 * real images' flags and are not ours to interpret); a container with
 * command/args runs that command; any other image runs the echo server on its
 * containerPorts.
 */
export function programFor(
  container: ContainerSpec,
  manifestsDir: string,
  /** The node agent's list of nodes it counts as down (LabLayout.downNodesFile). */
  downNodesFile?: string,
): WorkloadProgram {
  // CoreDNS and ingress-nginx read endpoint readiness from EndpointSlices; here, from the
  // manifests and the agent's liveness view, as the node's kube-proxy does.
  const clusterArgs = ['--manifests', manifestsDir];
  if (downNodesFile) clusterArgs.push('--down-nodes', downNodesFile);
  if (COREDNS_IMAGE.test(container.image)) return builtinProgram('dns', dnsScript, clusterArgs);
  if (INGRESS_NGINX_IMAGE.test(container.image)) {
    return builtinProgram('ingress', ingressScript, clusterArgs);
  }
  const command = container.command ?? [];
  const args = container.args ?? [];
  if (command.length > 0 || args.length > 0) {
    // Kubernetes: command replaces the image's entrypoint, args its CMD. Without an
    // image to read an entrypoint from, args alone are taken as the command line.
    return { kind: 'command', argv: command.length > 0 ? [...command, ...args] : [...args] };
  }
  const ports = (container.ports ?? []).map((p) => `${p.containerPort}/${p.protocol ?? 'TCP'}`);
  if (ports.length === 0) ports.push('8080/TCP');
  return {
    ...builtinProgram(
      'echo',
      echoScript,
      ports.map((p) => `--port=${p}`),
    ),
    echoPorts: ports,
  };
}

/** The node's shared echo process (src/workloads/echo-host.ts): its command line and environment. */
export function sharedEchoProgram(): { argv: string[]; env: Record<string, string> } {
  return {
    argv: [process.execPath, ...BUILTIN_NODE_FLAGS, echoHostScript],
    env: { ...BUILTIN_ENV },
  };
}
