/**
 * `kubewire get svc`, `kubewire describe svc` (kubectl's columns and layout, with the
 * LoadBalancer addresses MetalLB assigned and the node announcing each one), and
 * `kubewire node stop|start` to take a node's agent away and bring it back.
 */
import type { Command } from 'commander';
import {
  endpointsForService,
  serviceKey,
  type ClusterState,
  type LoadBalancerStatus,
  type ServiceState,
} from '../../cluster/index.js';
import type { RecordedEvent } from '../../agent/l2-speaker.js';
import { startNodeAgent, stopNodeAgent } from '../../lab/netns-lab.js';
import { LabClient } from '../lab-client.js';
import { formatAge, formatTable } from '../table.js';

interface MetalLBStatus {
  node: string;
  announcing: { ip: string; service: string }[];
  events: Record<string, RecordedEvent[]>;
  peers: { node: string; up: boolean }[];
  settled: boolean;
}

/** Every reachable agent's MetalLB view (a stopped node has none). */
async function speakerStatuses(lab: LabClient): Promise<MetalLBStatus[]> {
  const all = await Promise.all(
    lab.record.nodes.map((n) => lab.call<MetalLBStatus>(n.name, 'metallb').catch(() => null)),
  );
  return all.filter((s): s is MetalLBStatus => s !== null);
}

function loadBalancerOf(state: ClusterState, svc: ServiceState): LoadBalancerStatus | undefined {
  return state.metallb.loadBalancers.find(
    (lb) => lb.namespace === svc.namespace && lb.name === svc.name,
  );
}

/** kubectl's EXTERNAL-IP column. */
function externalIP(state: ClusterState, svc: ServiceState): string {
  if (svc.type === 'ExternalName') return svc.externalName ?? '<none>';
  const lbIPs = svc.type === 'LoadBalancer' ? (loadBalancerOf(state, svc)?.ips ?? []) : [];
  const all = [...lbIPs, ...svc.externalIPs];
  if (all.length > 0) return all.join(',');
  return svc.type === 'LoadBalancer' ? '<pending>' : '<none>';
}

function portsColumn(svc: ServiceState): string {
  if (svc.ports.length === 0) return '<none>';
  return svc.ports
    .map((p) => `${p.port}${p.nodePort !== null ? `:${p.nodePort}` : ''}/${p.protocol}`)
    .join(',');
}

function selectorText(svc: ServiceState): string {
  const sel = svc.selector ?? {};
  const keys = Object.keys(sel).sort();
  return keys.length === 0 ? '<none>' : keys.map((k) => `${k}=${sel[k]}`).join(',');
}

function announcersOf(statuses: MetalLBStatus[]): Map<string, string> {
  const out = new Map<string, string[]>();
  for (const st of statuses) {
    for (const a of st.announcing) out.set(a.ip, [...(out.get(a.ip) ?? []), st.node]);
  }
  return new Map([...out].map(([ip, nodes]) => [ip, nodes.sort().join(',')]));
}

function downNodesOf(statuses: MetalLBStatus[], state: ClusterState): Set<string> {
  const reachable = new Set(statuses.map((s) => s.node));
  const down = new Set(state.nodes.map((n) => n.name).filter((n) => !reachable.has(n)));
  for (const st of statuses) for (const p of st.peers) if (!p.up) down.add(p.node);
  return down;
}

function describeService(
  state: ClusterState,
  svc: ServiceState,
  statuses: MetalLBStatus[],
  nowMs: number,
): string {
  const lb = loadBalancerOf(state, svc);
  const lines: [string, string][] = [];
  const kv = (k: string, v: string) => lines.push([k, v]);
  const map = (m: Record<string, string>) => {
    const keys = Object.keys(m).sort();
    return keys.length === 0 ? ['<none>'] : keys.map((k) => `${k}=${m[k]}`);
  };
  kv('Name:', svc.name);
  kv('Namespace:', svc.namespace);
  const labels = map(svc.labels);
  kv('Labels:', labels[0]!);
  for (const l of labels.slice(1)) kv('', l);
  const annotations = { ...svc.annotations };
  if (lb?.pool) annotations['metallb.io/ip-allocated-from-pool'] = lb.pool;
  const ann = Object.keys(annotations)
    .sort()
    .map((k) => `${k}: ${annotations[k]}`);
  kv('Annotations:', ann[0] ?? '<none>');
  for (const a of ann.slice(1)) kv('', a);
  kv('Selector:', selectorText(svc));
  kv('Type:', svc.type);
  if (svc.type !== 'ExternalName') {
    kv('IP Family Policy:', 'SingleStack');
    kv('IP Families:', 'IPv4');
    kv('IP:', svc.headless ? 'None' : (svc.clusterIP ?? '<none>'));
    kv('IPs:', svc.headless ? 'None' : (svc.clusterIP ?? '<none>'));
  } else kv('External Name:', svc.externalName ?? '');
  if (svc.externalIPs.length > 0) kv('External IPs:', svc.externalIPs.join(','));
  if (svc.loadBalancerIP !== undefined) kv('Desired LoadBalancer IP:', svc.loadBalancerIP);
  if (lb && lb.ips.length > 0) kv('LoadBalancer Ingress:', lb.ips.join(', '));
  const endpoints = endpointsForService(state, svc, { downNodes: downNodesOf(statuses, state) });
  for (const p of svc.ports) {
    const name = p.name || '<unset>';
    kv('Port:', `${name}  ${p.port}/${p.protocol}`);
    kv('TargetPort:', `${p.targetPort}/${p.protocol}`);
    if (p.nodePort !== null) kv('NodePort:', `${name}  ${p.nodePort}/${p.protocol}`);
    const eps = endpoints.find((e) => e.portName === p.name && e.protocol === p.protocol);
    const ready = (eps?.endpoints ?? []).filter((e) => e.ready).map((e) => `${e.ip}:${e.port}`);
    kv('Endpoints:', ready.length > 0 ? ready.join(',') : '<none>');
  }
  kv('Session Affinity:', svc.sessionAffinity);
  if (svc.type === 'NodePort' || svc.type === 'LoadBalancer') {
    kv('External Traffic Policy:', svc.externalTrafficPolicy);
  }
  kv('Internal Traffic Policy:', svc.internalTrafficPolicy);
  if (svc.healthCheckNodePort !== null) {
    kv('HealthCheck NodePort:', String(svc.healthCheckNodePort));
  }
  const width = Math.max(...lines.map(([k]) => k.length)) + 2;
  let out = lines.map(([k, v]) => `${k.padEnd(width)}${v}`.trimEnd()).join('\n') + '\n';

  // Events: the controller's (the same on every agent: shown once) and each speaker's.
  const merged = new Map<string, RecordedEvent>();
  for (const st of statuses) {
    for (const e of st.events[serviceKey(svc)] ?? []) {
      const k = `${e.reason}\u0000${e.message}`;
      const prev = merged.get(k);
      if (!prev) merged.set(k, { ...e });
      else if (e.from === 'metallb-controller') {
        if (e.firstSeen < prev.firstSeen) prev.firstSeen = e.firstSeen;
      } else {
        prev.count += e.count;
        if (e.lastSeen > prev.lastSeen) prev.lastSeen = e.lastSeen;
        if (e.firstSeen < prev.firstSeen) prev.firstSeen = e.firstSeen;
      }
    }
  }
  const events = [...merged.values()].sort((a, b) => a.firstSeen.localeCompare(b.firstSeen));
  if (events.length === 0) return out + 'Events:                   <none>\n';
  const rows = events.map((e) => [
    e.type,
    e.reason,
    e.count > 1
      ? `${formatAge(e.lastSeen, nowMs)} (x${e.count} over ${formatAge(e.firstSeen, nowMs)})`
      : formatAge(e.firstSeen, nowMs),
    e.from,
    e.message,
  ]);
  const table = formatTable(
    ['Type', 'Reason', 'Age', 'From', 'Message'],
    [['----', '------', '----', '----', '-------'], ...rows],
  );
  out += 'Events:\n' + table.replace(/^/gm, '  ');
  return out;
}

export function registerServiceCommands(program: Command, labName: () => string): void {
  const get = program.commands.find((c) => c.name() === 'get')!;
  get
    .command('services')
    .alias('svc')
    .alias('service')
    .description('list Services (EXTERNAL-IP: the LoadBalancer address MetalLB assigned)')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-A, --all-namespaces', 'all namespaces')
    .option('-o, --output <format>', 'wide (adds SELECTOR and ANNOUNCED-BY) | json')
    .action(async (opts: { namespace: string; allNamespaces?: boolean; output?: string }) => {
      const lab = new LabClient(labName());
      const state = lab.state();
      const services = state.services.filter(
        (s) => opts.allNamespaces || s.namespace === opts.namespace,
      );
      const statuses = await speakerStatuses(lab);
      const announcers = announcersOf(statuses);
      if (opts.output === 'json') {
        const out = services.map((s) => ({
          ...s,
          status: {
            loadBalancer: {
              ingress: (loadBalancerOf(state, s)?.ips ?? []).map((ip) => ({
                ip,
                announcedBy: announcers.get(ip) ?? null,
              })),
            },
          },
        }));
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      if (services.length === 0) {
        process.stderr.write(
          opts.allNamespaces
            ? 'No resources found\n'
            : `No resources found in ${opts.namespace} namespace.\n`,
        );
        return;
      }
      const wide = opts.output === 'wide';
      const rows = services.map((s) => {
        const ips = loadBalancerOf(state, s)?.ips ?? [];
        return [
          ...(opts.allNamespaces ? [s.namespace] : []),
          s.name,
          s.type,
          s.headless ? 'None' : (s.clusterIP ?? '<none>'),
          externalIP(state, s),
          portsColumn(s),
          formatAge(lab.record.createdAt),
          ...(wide
            ? [
                selectorText(s),
                ips.length === 0
                  ? '<none>'
                  : ips.map((ip) => announcers.get(ip) ?? '<none>').join(','),
              ]
            : []),
        ];
      });
      const headers = [
        ...(opts.allNamespaces ? ['NAMESPACE'] : []),
        'NAME',
        'TYPE',
        'CLUSTER-IP',
        'EXTERNAL-IP',
        'PORT(S)',
        'AGE',
        ...(wide ? ['SELECTOR', 'ANNOUNCED-BY'] : []),
      ];
      process.stdout.write(formatTable(headers, rows));
    });

  program
    .command('describe')
    .description('describe a Service (kubectl describe svc), with MetalLB events')
    .argument('<kind>', 'svc | service')
    .argument('<name>', 'Service name')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .action(async (kind: string, name: string, opts: { namespace: string }) => {
      if (!['svc', 'service', 'services'].includes(kind)) {
        throw new Error(`describe: only services are supported (got ${JSON.stringify(kind)})`);
      }
      const lab = new LabClient(labName());
      const state = lab.state();
      const svc = state.services.find((s) => s.namespace === opts.namespace && s.name === name);
      if (!svc) {
        process.stderr.write(`Error from server (NotFound): services "${name}" not found\n`);
        process.exitCode = 1;
        return;
      }
      const statuses = await speakerStatuses(lab);
      process.stdout.write(describeService(state, svc, statuses, Date.now()));
    });

  const node = program
    .command('node')
    .description("stop or start a node's agent (netns labs): node loss and return");
  node
    .command('stop')
    .argument('<name>', 'node')
    .option('--graceful', 'say goodbye to the other nodes (memberlist Leave) before stopping')
    .description("stop the node's agent: its pods and underlay answers go, the others notice")
    .action(async (nodeName: string, opts: { graceful?: boolean }) => {
      const lab = new LabClient(labName());
      lab.node(nodeName);
      const at = await stopNodeAgent(lab.layout, nodeName, opts.graceful === true);
      process.stderr.write(
        `node ${nodeName}: agent stopped${at ? ` (it stopped answering at ${at})` : ''}\n`,
      );
    });
  node
    .command('start')
    .argument('<name>', 'node')
    .option('--timeout <seconds>', 'how long to wait for the node to be ready', '120')
    .description("start a stopped node's agent again and wait until it is ready")
    .action(async (nodeName: string, opts: { timeout: string }) => {
      const lab = new LabClient(labName());
      lab.node(nodeName);
      await startNodeAgent(lab.layout, nodeName, Number(opts.timeout) * 1000, (m) =>
        process.stderr.write(`${m}\n`),
      );
      process.stderr.write(`node ${nodeName}: ready\n`);
    });
}
