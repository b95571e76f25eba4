import { fileURLToPath } from 'node:url';
import type { ContainerSpec } from '../cluster/index.js';

/** The program a container runs, chosen by image as ARCHITECTURE.md "Workloads" says. */
export interface WorkloadProgram {
  argv: string[];
  /** Stdout pattern that marks the container ready (built-in servers announce it). */
  readyPattern?: RegExp;
  kind: 'echo' | 'command' | 'dns' | 'ingress';
}

const builtin = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const echoScript = builtin('../workloads/echo.js');
const dnsScript = builtin('../dns/main.js');
const ingressScript = builtin('../ingress/main.js');
const LISTENING = /"msg":"listening"/;

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
export function programFor(container: ContainerSpec, manifestsDir: string): WorkloadProgram {
  if (COREDNS_IMAGE.test(container.image)) {
    return {
      kind: 'dns',
      argv: [process.execPath, dnsScript, '--manifests', manifestsDir],
      readyPattern: LISTENING,
    };
  }
  if (INGRESS_NGINX_IMAGE.test(container.image)) {
    return {
      kind: 'ingress',
      argv: [process.execPath, ingressScript, '--manifests', manifestsDir],
      readyPattern: LISTENING,
    };
  }
  const command = container.command ?? [];
  const args = container.args ?? [];
  if (command.length > 0 || args.length > 0) {
    // Kubernetes: command replaces the image's entrypoint, args its CMD. Without an
    // image to read an entrypoint from, args alone are taken as the command line.
    return { kind: 'command', argv: command.length > 0 ? [...command, ...args] : [...args] };
  }
  const ports = (container.ports ?? []).map(
    (p) => `--port=${p.containerPort}/${p.protocol ?? 'TCP'}`,
  );
  if (ports.length === 0) ports.push('--port=8080/TCP');
  return { kind: 'echo', argv: [process.execPath, echoScript, ...ports], readyPattern: LISTENING };
}
