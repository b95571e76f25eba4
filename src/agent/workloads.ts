import { fileURLToPath } from 'node:url';
import type { ContainerSpec, PodState } from '../cluster/index.js';

/** The program a container runs, chosen by image as ARCHITECTURE.md "Workloads" says. */
export interface WorkloadProgram {
  argv: string[];
  /** Stdout pattern that marks the container ready (built-in servers announce it). */
  readyPattern?: RegExp;
  kind: 'echo' | 'command';
}

const echoScript = fileURLToPath(new URL('../workloads/echo.js', import.meta.url));

export function programFor(pod: PodState, container: ContainerSpec): WorkloadProgram {
  const command = container.command ?? [];
  const args = container.args ?? [];
  if (command.length > 0 || args.length > 0) {
    // Kubernetes: command replaces the image's entrypoint, args its CMD. Without an
    // image to read an entrypoint from, args alone are taken as the command line.
    return { kind: 'command', argv: command.length > 0 ? [...command, ...args] : [...args] };
  }
  const ports = (container.ports ?? []).map((p) => `--port=${p.containerPort}/${p.protocol ?? 'TCP'}`);
  if (ports.length === 0) ports.push('--port=8080/TCP');
  void pod;
  return {
    kind: 'echo',
    argv: [process.execPath, echoScript, ...ports],
    readyPattern: /"msg":"listening"/,
  };
}
