/**
 * The text form of `kubewire trace`: one block per packet, a header line (time,
 * node, packet as it arrived) then one line per step — where it happened (the
 * hook, or in / routing / out), what acted (table, conntrack, NAT, device) and
 * the detail (the rule as iptables -S prints it, the conntrack entry as
 * conntrack -L prints it, the route as ip route prints it).
 */
import type { PacketSummary, TracedPacket, TraceStep } from '../dataplane/trace.js';

export interface TraceFormatOptions {
  /** Show every policy (default: only those of tables where a rule matched, and non-ACCEPT ones). */
  verbose?: boolean;
  /** Times in UTC (default: local time, as tcpdump). */
  utc?: boolean;
}

const ICMP_TYPES: Record<number, string> = {
  0: 'echo reply',
  3: 'destination unreachable',
  5: 'redirect',
  8: 'echo request',
  11: 'time exceeded',
};

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 4: 'ipip', 6: 'tcp', 17: 'udp' };

function endpoint(addr: string, port: number): string {
  return port >= 0 ? `${addr}:${port}` : addr;
}

/** `tcp 10.1.0.89:40112 > 10.1.110.102:30090 [S] len 60 ttl 63`. */
export function formatPacketSummary(p: PacketSummary): string {
  const name = PROTO_NAMES[p.proto] ?? `proto ${p.proto}`;
  let s = `${name} ${endpoint(p.src, p.sport)} > ${endpoint(p.dst, p.dport)}`;
  if (p.flags !== undefined) s += ` [${p.flags}]`;
  if (p.icmpType !== undefined) {
    s += ` ${ICMP_TYPES[p.icmpType] ?? `type ${p.icmpType}`}`;
    if (p.icmpCode) s += ` code ${p.icmpCode}`;
  }
  s += ` len ${p.len} ttl ${p.ttl}`;
  if (p.inner) s += `: ${formatPacketSummary(p.inner)}`;
  return s;
}

function time(ms: number, utc: boolean): string {
  const d = new Date(Math.floor(ms));
  const p2 = (n: number) => String(n).padStart(2, '0');
  const [h, m, s] = utc
    ? [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    : [d.getHours(), d.getMinutes(), d.getSeconds()];
  const micros = Math.floor((ms - Math.floor(ms / 1000) * 1000) * 1000);
  return `${p2(h)}:${p2(m)}:${p2(s)}.${String(micros).padStart(6, '0')}`;
}

function line(where: string, what: string, detail: string): string {
  return `  ${where.padEnd(12)} ${what.padEnd(10)} ${detail}`.trimEnd() + '\n';
}

function stepLine(st: TraceStep): string {
  switch (st.step) {
    case 'in':
      return line('in', st.dev, st.local ? "sent by the node's own processes (OUTPUT)" : '');
    case 'decap':
      return line(
        'in',
        st.tunnel,
        `IPIP ${st.outerSrc} > ${st.outerDst} decapsulated: ${formatPacketSummary(st.inner)}`,
      );
    case 'rule':
      return line(
        st.hook,
        st.table,
        `${st.chain} #${st.num}: ${st.rule}${st.verdict !== undefined ? `  => ${st.verdict}` : ''}`,
      );
    case 'policy':
      return line(st.hook, st.table, `${st.chain} policy ${st.policy}`);
    case 'conntrack': {
      let d = `${st.state} (${st.dir})`;
      if (st.dropped) d += ' refused: table full';
      if (st.entry !== null) d += `: ${st.entry}`;
      if (st.byConnection) d += '  [traced: its connection matches]';
      return line(st.hook, 'conntrack', d);
    }
    case 'nat':
      return line(st.hook, st.kind, `${st.before} -> ${st.after}`);
    case 'confirm':
      return line(
        st.hook,
        'conntrack',
        st.ok ? `confirmed: ${st.entry ?? ''}` : 'insert failed (clash with an existing entry)',
      );
    case 'route':
      return line('routing', 'route', st.route ?? `none for ${st.dst}`);
    case 'local':
      return line('routing', 'local', `${st.addr} is the node's own address: local delivery`);
    case 'encap':
      return line('out', st.dev, `IPIP encapsulation ${st.outerSrc} > ${st.outerDst}`);
    case 'out':
      return line(
        'out',
        st.dev,
        `to ${st.nextHop} ${st.mac ?? '(waiting for ARP)'}: ${formatPacketSummary(st.packet)}`,
      );
    case 'drop':
      return line('drop', st.reason, st.rejectWith !== undefined ? `(${st.rejectWith})` : '');
  }
}

/** One packet's block of text. */
export function formatTracedPacket(p: TracedPacket, opts: TraceFormatOptions = {}): string {
  let out = '';
  if (p.lost) out += `(${p.lost} matching packets not shown: the reader was too slow)\n`;
  out += `${time(p.time, opts.utc ?? false)} ${p.node} #${p.seq} ${formatPacketSummary(p.packet)}\n`;
  // Tables where some rule matched, per hook: their policy is worth a line.
  const hit = new Set<string>();
  for (const st of p.steps) if (st.step === 'rule') hit.add(`${st.hook}/${st.table}`);
  for (const st of p.steps) {
    if (
      st.step === 'policy' &&
      !opts.verbose &&
      st.policy === 'ACCEPT' &&
      !hit.has(`${st.hook}/${st.table}`)
    ) {
      continue;
    }
    out += stepLine(st);
  }
  return out;
}
