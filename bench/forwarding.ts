/**
 * Forwarding benchmark (issues 2 and 3), side by side in one run:
 *
 *   same node:   pod → agent → pod          vs  two netns joined by a veth pair
 *   cross node:  pod → agent → IPIP → agent → pod  vs  two netns on a bridge (no encapsulation)
 *
 *   sudo node dist/bench/forwarding.js [--seconds 5]
 *
 * For each path: iperf3 TCP throughput, with the CPU the agents used meanwhile
 * (core-seconds per Gbit is the cost of the path, less dependent than the
 * throughput on what else runs on the machine); small packets (hping3 --flood,
 * 18-byte UDP payloads) counted at the receiver's eth0, with the CPU the agents
 * used, so the agents' capacity per core can be read off when the generator,
 * not the agent, is the limit; ping RTT p50. Everything runs in namespaces this script
 * creates and removes; nothing leaves them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' } } });
const seconds = Number(values.seconds);
const CLK_TCK = 100;
/** Names unique to this run: other benchmarks or tests may run on the machine at the same time. */
const tag = process.pid.toString(36);

interface PathResult {
  tcpGbps: number;
  /** CPU seconds the agents used per second during the TCP run (1.0 = one core). */
  tcpAgentCpu: number | null;
  pps: number;
  /** CPU seconds the agents used per second during the small-packet run (1.0 = one core). */
  agentCpu: number | null;
  pingP50Ms: number;
}

const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
const inNs = (ns: string, args: string[]) => sh('ip', ['netns', 'exec', ns, ...args]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cpuTicks(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    sum += Number(fields[11]) + Number(fields[12]); // utime + stime
  }
  return sum;
}

async function measure(
  clientNs: string,
  serverNs: string,
  serverIp: string,
  agentPids: number[],
): Promise<PathResult> {
  const server = spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-p', '5201'], {
    stdio: 'ignore',
  });
  await sleep(500);
  try {
    const tcpCpu0 = cpuTicks(agentPids);
    const tcpT0 = process.hrtime.bigint();
    const tcp = JSON.parse(
      inNs(clientNs, ['iperf3', '-c', serverIp, '-t', String(seconds), '-J']),
    ) as {
      end: { sum_received: { bits_per_second: number } };
    };
    const tcpElapsed = Number(process.hrtime.bigint() - tcpT0) / 1e9;
    const tcpAgentCpu = agentPids.length
      ? (cpuTicks(agentPids) - tcpCpu0) / CLK_TCK / tcpElapsed
      : null;
    const rx = () =>
      Number(inNs(serverNs, ['cat', '/sys/class/net/eth0/statistics/rx_packets']).trim());
    const rx0 = rx();
    const cpu0 = cpuTicks(agentPids);
    const t0 = process.hrtime.bigint();
    try {
      sh('timeout', [
        String(seconds),
        'ip',
        'netns',
        'exec',
        clientNs,
        'hping3',
        '--flood',
        '-q',
        '-2',
        '-p',
        '9',
        '-d',
        '18',
        serverIp,
      ]);
    } catch {
      /* timeout ends hping3 with a non-zero status */
    }
    await sleep(200);
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    const pps = (rx() - rx0) / elapsed;
    const agentCpu = agentPids.length ? (cpuTicks(agentPids) - cpu0) / CLK_TCK / elapsed : null;
    const times = inNs(clientNs, ['ping', '-c', '200', '-i', '0.005', '-n', serverIp])
      .split('\n')
      .map((l) => /time=([\d.]+) ms/.exec(l)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    return {
      tcpGbps: tcp.end.sum_received.bits_per_second / 1e9,
      tcpAgentCpu,
      pps,
      agentCpu,
      pingP50Ms: times[Math.floor(times.length / 2)] ?? NaN,
    };
  } finally {
    server.kill('SIGTERM');
  }
}

/** Two namespaces joined by a veth pair, or each by a veth to a bridge in a third. */
async function kernelPath(bridged: boolean): Promise<PathResult> {
  const a = `kwb-${tag}-a`;
  const b = `kwb-${tag}-b`;
  const br = `kwb-${tag}-br`;
  const all = bridged ? [a, b, br] : [a, b];
  try {
    for (const ns of all) sh('ip', ['netns', 'add', ns]);
    if (bridged) {
      sh('ip', ['-n', br, 'link', 'add', 'br0', 'type', 'bridge']);
      sh('ip', ['-n', br, 'link', 'set', 'br0', 'up']);
      for (const [i, ns] of [a, b].entries()) {
        sh('ip', [
          '-n',
          br,
          'link',
          'add',
          `p${i}`,
          'type',
          'veth',
          'peer',
          'name',
          'eth0',
          'netns',
          ns,
        ]);
        sh('ip', ['-n', br, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      }
    } else {
      sh('ip', [
        '-n',
        a,
        'link',
        'add',
        'eth0',
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        b,
      ]);
    }
    for (const [ns, addr] of [
      [a, '10.200.0.1/24'],
      [b, '10.200.0.2/24'],
    ] as const) {
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'mtu', '1480', 'up']);
      sh('ip', ['-n', ns, 'addr', 'add', addr, 'dev', 'eth0']);
    }
    return await measure(a, b, '10.200.0.2', []);
  } finally {
    for (const ns of all) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* not created */
      }
    }
  }
}

async function agentPath(lab: string, manifests: string[]): Promise<PathResult> {
  sh(process.execPath, [cli, '--lab', lab, 'up', ...manifests]);
  try {
    const pods = JSON.parse(
      sh(process.execPath, [cli, '--lab', lab, 'get', 'pods', '-o', 'json']),
    ) as {
      name: string;
      ip: string;
    }[];
    const record = JSON.parse(readFileSync(`/run/kubewire/${lab}/lab.json`, 'utf8')) as {
      nodes: { agentPid: number }[];
    };
    const receiver = pods.find((p) => p.name === 'receiver')!;
    return await measure(
      `${lab}-default.sender`,
      `${lab}-default.receiver`,
      receiver.ip,
      record.nodes.map((n) => n.agentPid),
    );
  } finally {
    sh(process.execPath, [cli, '--lab', lab, 'down']);
  }
}

const fx = join(root, 'bench', 'fixtures');
const loadBefore = loadavg();
const rows: [string, PathResult][] = [
  ['same node: kernel veth pair', await kernelPath(false)],
  ['same node: kubewire agent', await agentPath(`kwb1${tag}`, [join(fx, 'forwarding-single')])],
  ['cross node: kernel veth + bridge', await kernelPath(true)],
  [
    'cross node: kubewire IPIP (2 agents)',
    await agentPath(`kwb2${tag}`, [
      join(root, 'nodes'),
      join(root, 'compose', 'manifests', '00-cluster.yaml'),
      join(fx, 'forwarding'),
    ]),
  ],
];
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
console.log(
  `forwarding benchmark: ${seconds} s per measurement, ${new Date().toISOString()}, ${sh('nproc', []).trim()} cores, ` +
    `load average ${load(loadBefore)} before, ${load(loadavg())} after`,
);
console.log(
  '| path | iperf3 TCP Gbit/s | agent CPU during TCP (cores) | agent core-s per Gbit | small packets pps (received) | agent CPU (cores) | pps per agent core | ping p50 ms |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const [name, r] of rows) {
  const perCore = r.agentCpu ? Math.round(r.pps / r.agentCpu).toLocaleString('en') : '';
  console.log(
    `| ${name} | ${r.tcpGbps.toFixed(2)} | ${r.tcpAgentCpu?.toFixed(2) ?? ''} | ${r.tcpAgentCpu ? (r.tcpAgentCpu / r.tcpGbps).toFixed(2) : ''} | ${Math.round(r.pps).toLocaleString('en')} | ${r.agentCpu?.toFixed(2) ?? ''} | ${perCore} | ${r.pingP50Ms.toFixed(3)} |`,
  );
}
