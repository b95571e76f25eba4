/**
 * What one frame costs the agent that sends it on the underlay (issue 3): CPU time per frame
 * for the two ways the agent can send on a node's uplink, on a wire like the lab's (a veth
 * into a bridge in a switch namespace, a second veth to a namespace that drops the frames):
 *
 *   tap:    write to a TAP whose frames tc redirects (ingress, u32 + mirred) out of eth0
 *   packet: sendmmsg on a packet socket bound to eth0
 *
 * for 1.5 KB TCP segments with checksum offload (what the agent's software segmentation
 * sends) and 60-byte UDP frames. The kernel's work on the way (redirect, veth, bridge) runs
 * in the sender's system call, so it is in its CPU time.
 *
 *   sudo node dist/bench/uplink-tx.js [--frames 300000]
 *
 * Everything runs in namespaces this script creates and removes.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PacketSocket, TapDevice } from '../src/tap/index.js';

const { values } = parseArgs({
  options: {
    frames: { type: 'string', default: '300000' },
    writer: { type: 'string' },
    kind: { type: 'string' },
    dst: { type: 'string' },
  },
});
const frames = Number(values.frames);
const BATCH = 64;

const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** In the sender's namespace: sends `frames` frames one way and prints ns of CPU per frame. */
function writer(mode: string, kind: string, dstMac: Buffer): void {
  const tcp = kind === 'tcp';
  const len = 10 + 14 + 20 + (tcp ? 20 + 1448 : 8 + 18);
  const slot = len + 64;
  const buf = Buffer.alloc(BATCH * slot);
  const offsets = new Uint32Array(BATCH * 2);
  for (let i = 0; i < BATCH; i++) {
    const f = buf.subarray(i * slot, i * slot + len);
    if (tcp) {
      f[0] = 1; // NEEDS_CSUM from the TCP header on, as the agent's segments
      f.writeUInt16LE(14 + 20, 6);
      f.writeUInt16LE(16, 8);
    }
    dstMac.copy(f, 10);
    Buffer.from('020000000001', 'hex').copy(f, 16);
    f.writeUInt16BE(0x0800, 22);
    const ip = 24;
    f[ip] = 0x45;
    f.writeUInt16BE(len - 24, ip + 2);
    f[ip + 6] = 0x40;
    f[ip + 8] = 64;
    f[ip + 9] = tcp ? 6 : 17;
    f.writeUInt32BE(0x0a0a0001, ip + 12);
    f.writeUInt32BE(0x0a0a0002, ip + 16);
    let sum = 0;
    for (let k = 0; k < 20; k += 2) sum += f.readUInt16BE(ip + k);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    f.writeUInt16BE(~sum & 0xffff, ip + 10);
    offsets[2 * i] = i * slot;
    offsets[2 * i + 1] = len;
  }
  let sink: { writeBatch(b: Buffer, o: Uint32Array, n: number): number; close(): void };
  if (mode === 'tap') {
    const tap = TapDevice.open('kwup', { vnetHdr: true });
    tap.setOffload(0x0f);
    sh('ip', ['link', 'set', 'kwup', 'up']);
    sh('tc', ['qdisc', 'add', 'dev', 'kwup', 'ingress']);
    sh('tc', [
      ...['filter', 'add', 'dev', 'kwup', 'parent', 'ffff:', 'protocol', 'all'],
      ...['u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', 'eth0'],
    ]);
    sink = tap;
  } else {
    sink = PacketSocket.open('eth0', { vnetHdr: true, sndbufBytes: 4 << 20 });
  }
  for (let i = 0; i < 200; i++) sink.writeBatch(buf, offsets, BATCH);
  const c0 = process.cpuUsage();
  let sent = 0;
  for (let i = 0; i < frames / BATCH; i++) sent += sink.writeBatch(buf, offsets, BATCH);
  const c = process.cpuUsage(c0);
  sink.close();
  console.log(String(Math.round(((c.user + c.system) * 1000) / sent)));
}

if (values.writer) {
  writer(values.writer, values.kind!, Buffer.from(values.dst!.replace(/:/g, ''), 'hex'));
} else {
  const tag = process.pid.toString(36);
  const [a, s, b] = ['a', 's', 'b'].map((x) => `kwtx-${tag}-${x}`) as [string, string, string];
  const self = fileURLToPath(import.meta.url);
  const before = loadavg();
  try {
    for (const ns of [a, s, b]) sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', s, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', s, 'link', 'set', 'br0', 'up']);
    for (const f of ['iptables', 'ip6tables', 'arptables']) {
      sh('ip', ['netns', 'exec', s, 'sysctl', '-q', '-w', `net.bridge.bridge-nf-call-${f}=0`]);
    }
    for (const [port, ns] of [
      ['p1', a],
      ['p2', b],
    ] as const) {
      sh('ip', ['-n', s, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      sh('ip', ['-n', s, 'link', 'set', port, 'master', 'br0', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    }
    const dst = (
      JSON.parse(sh('ip', ['-n', b, '-j', 'link', 'show', 'eth0'])) as { address: string }[]
    )[0]!.address;
    const rows: string[] = [];
    for (const kind of ['tcp', 'udp']) {
      const cost: Record<string, number> = {};
      for (const mode of ['tap', 'packet']) {
        const out = sh('ip', [
          ...['netns', 'exec', a, process.execPath, self],
          ...['--writer', mode, '--kind', kind, '--dst', dst, '--frames', String(frames)],
        ]);
        cost[mode] = Number(out.trim());
      }
      rows.push(
        `| ${kind === 'tcp' ? '1514-byte TCP segment, checksum offload' : '60-byte UDP frame'} | ${cost.tap} | ${cost.packet} |`,
      );
    }
    const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
    console.log(
      `uplink transmit: ${frames} frames each, ${new Date().toISOString()}, load average ${load(before)} before, ${load(loadavg())} after`,
    );
    console.log(
      '| frame | TAP + tc redirect, ns CPU per frame | packet socket, ns CPU per frame |',
    );
    console.log('|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    for (const ns of [a, s, b]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* not created */
      }
    }
  }
}
