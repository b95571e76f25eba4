/**
 * Forwarding benchmark (issue 2): pod → pod through one agent, side by side in
 * one run with the kernel path (two netns joined by a veth pair).
 *
 *   sudo node dist/bench/forwarding.js [--seconds 5]
 *
 * Measures iperf3 TCP throughput, small-packet rate (iperf3 UDP, 64-byte
 * payloads, unlimited rate: packets received per second) and ping RTT p50.
 * Everything runs inside namespaces this script creates and removes.
 */
import { execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const lab = 'kwbench';
const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' } } });
const seconds = Number(values.seconds);

interface PathResult {
  tcpGbps: number;
  udpPps: number;
  udpLossPct: number;
  pingP50Ms: number;
}

const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
const inNs = (ns: string, args: string[]) => sh('ip', ['netns', 'exec', ns, ...args]);

async function measure(clientNs: string, serverNs: string, serverIp: string): Promise<PathResult> {
  const server = spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-p', '5201'], {
    stdio: 'ignore',
  });
  await new Promise((r) => setTimeout(r, 500));
  try {
    const tcp = JSON.parse(
      inNs(clientNs, ['iperf3', '-c', serverIp, '-t', String(seconds), '-J']),
    ) as {
      end: { sum_received: { bits_per_second: number } };
    };
    const udp = JSON.parse(
      inNs(clientNs, [
        'iperf3',
        '-c',
        serverIp,
        '-u',
        '-b',
        '0',
        '-l',
        '64',
        '-t',
        String(seconds),
        '-J',
      ]),
    ) as { end: { sum: { packets: number; lost_packets: number; seconds: number } } };
    const pingTimes = inNs(clientNs, ['ping', '-c', '200', '-i', '0.005', '-n', serverIp])
      .split('\n')
      .map((l) => /time=([\d.]+) ms/.exec(l)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const s = udp.end.sum;
    return {
      tcpGbps: tcp.end.sum_received.bits_per_second / 1e9,
      udpPps: (s.packets - s.lost_packets) / s.seconds,
      udpLossPct: (100 * s.lost_packets) / Math.max(1, s.packets),
      pingP50Ms: pingTimes[Math.floor(pingTimes.length / 2)] ?? NaN,
    };
  } finally {
    server.kill('SIGTERM');
  }
}

async function kernelPath(): Promise<PathResult> {
  const a = 'kwbench-veth-a';
  const b = 'kwbench-veth-b';
  try {
    sh('ip', ['netns', 'add', a]);
    sh('ip', ['netns', 'add', b]);
    sh('ip', ['-n', a, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b]);
    for (const [ns, addr] of [
      [a, '10.200.0.1/24'],
      [b, '10.200.0.2/24'],
    ] as const) {
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'mtu', '1480', 'up']);
      sh('ip', ['-n', ns, 'addr', 'add', addr, 'dev', 'eth0']);
    }
    return await measure(a, b, '10.200.0.2');
  } finally {
    for (const ns of [a, b]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* not created */
      }
    }
  }
}

async function agentPath(): Promise<PathResult> {
  sh(process.execPath, [cli, '--lab', lab, 'up', join(root, 'bench', 'fixtures', 'forwarding')]);
  try {
    const pods = JSON.parse(
      sh(process.execPath, [cli, '--lab', lab, 'get', 'pods', '-o', 'json']),
    ) as {
      name: string;
      ip: string;
    }[];
    const receiver = pods.find((p) => p.name === 'receiver')!;
    return await measure(`${lab}-default.sender`, `${lab}-default.receiver`, receiver.ip);
  } finally {
    sh(process.execPath, [cli, '--lab', lab, 'down']);
  }
}

const kernel = await kernelPath();
const agent = await agentPath();
const row = (name: string, r: PathResult) =>
  `| ${name} | ${r.tcpGbps.toFixed(2)} | ${Math.round(r.udpPps).toLocaleString('en')} | ${r.udpLossPct.toFixed(1)}% | ${r.pingP50Ms.toFixed(3)} |`;
console.log(`forwarding benchmark, ${seconds} s per measurement, ${new Date().toISOString()}`);
console.log('| path | iperf3 TCP Gbit/s | UDP 64 B pps received | UDP loss | ping p50 ms |');
console.log('|---|---|---|---|---|');
console.log(row('kernel veth (baseline)', kernel));
console.log(row('kubewire agent', agent));
console.log(
  `| ratio agent/kernel | ${(agent.tcpGbps / kernel.tcpGbps).toFixed(3)} | ${(agent.udpPps / kernel.udpPps).toFixed(3)} | | ${(agent.pingP50Ms / kernel.pingP50Ms).toFixed(2)}× |`,
);
