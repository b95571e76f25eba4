/**
 * `kubewire trace --node NAME [filter]`: matching packets followed through the
 * node, step by step, live; and `kubewire metrics --node NAME`: the node's
 * Prometheus metrics (also served at http://<node IP>:10249/metrics).
 */
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { streamFromAgent } from '../../agent/control.js';
import type { TracedPacket } from '../../dataplane/trace.js';
import {
  TraceFilterError,
  parseTraceFilter,
  traceFilterText,
} from '../../dataplane/trace-filter.js';
import { CliError, LabClient } from '../lab-client.js';
import { formatTracedPacket } from '../trace-format.js';

export const TRACE_FILTER_HELP = `
Filter (a subset of tcpdump's expressions, pcap-filter(7)):
  host ADDR, src host ADDR, dst host ADDR     an address (src ADDR / dst ADDR also work)
  net ADDR/LEN, src net …, dst net …          a network (net 10.1 = 10.1.0.0/16)
  port N, src port N, dst port N              a TCP or UDP port (number or name: http, domain)
  portrange N-M                               a range of ports
  tcp, udp, icmp, proto N                     a protocol; tcp port 80 = tcp and port 80
  and (&&), or (||), not (!), ( … )           combinations; host A or B = host A or host B
iptables-style options are joined with 'and': -s ADDR[/LEN] -d ADDR[/LEN] -p PROTO --sport N --dport N.

A packet is traced when it matches as it arrives (for IPIP, the inner packet),
or when it belongs to a connection whose original or reply tuple matches:
replies that conntrack un-NATs are traced from their conntrack step on.

Each step: in (interface), the rules hit per hook and table (as iptables -S
prints them, => the verdict that ended the table), conntrack state and entry
(as conntrack -L prints it), NAT before -> after, the route (as ip route
prints it), IPIP encapsulation, out (interface, next hop, MAC), or drop
(reason, as kubewire stats counts it). Tables the packet passed without a rule
hit are not shown (-v shows their policies).

Examples:
  kubewire trace --node worker-1 -c 4 host 10.1.0.89 and tcp port 30080
  kubewire trace --node worker-2 -p udp --dport 53
  kubewire trace --node worker-1 -o json icmp`;

interface TraceOptions {
  node: string;
  count?: string;
  source?: string;
  destination?: string;
  protocol?: string;
  sport?: string;
  dport?: string;
  verbose?: boolean;
  output?: string;
}

/** Splits the agent's stream into lines and hands each JSON object on. */
class JsonLines extends Writable {
  private pending = '';
  constructor(private readonly onObject: (o: TracedPacket) => void) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.pending += chunk.toString('utf8');
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const text = this.pending.slice(0, nl);
      this.pending = this.pending.slice(nl + 1);
      if (text.trim() === '') continue;
      const o = JSON.parse(text) as TracedPacket | { error: string };
      if ('error' in o) return cb(new Error(o.error));
      this.onObject(o);
    }
    cb();
  }
}

export function registerTraceCommands(program: Command, labName: () => string): void {
  program
    .command('trace')
    .description(
      'follow matching packets through a node: rules hit, conntrack, NAT, routing, out or drop',
    )
    .requiredOption('--node <name>', 'node')
    .argument('[filter...]', 'filter expression (tcpdump syntax, below)')
    .option('-c, --count <n>', 'stop after n packets')
    .option('-s, --source <addr[/len]>', 'source address (iptables -s)')
    .option('-d, --destination <addr[/len]>', 'destination address (iptables -d)')
    .option('-p, --protocol <proto>', 'tcp, udp, icmp or a number (iptables -p)')
    .option('--sport <port>', 'source port')
    .option('--dport <port>', 'destination port')
    .option('-v, --verbose', 'also show the policies of tables without a rule hit')
    .option('-o, --output <format>', 'json: one JSON object per packet')
    .addHelpText('after', TRACE_FILTER_HELP)
    .action(async (words: string[], opts: TraceOptions) => {
      let filter: string;
      try {
        filter = traceFilterText(words.join(' '), {
          ...(opts.source !== undefined ? { source: opts.source } : {}),
          ...(opts.destination !== undefined ? { destination: opts.destination } : {}),
          ...(opts.protocol !== undefined ? { protocol: opts.protocol } : {}),
          ...(opts.sport !== undefined ? { sport: opts.sport } : {}),
          ...(opts.dport !== undefined ? { dport: opts.dport } : {}),
        });
        parseTraceFilter(filter);
      } catch (err) {
        if (err instanceof TraceFilterError) throw new CliError(`trace: ${err.message}`, 2);
        throw err;
      }
      const count = opts.count === undefined ? 0 : Number(opts.count);
      if (opts.count !== undefined && (!Number.isInteger(count) || count < 1))
        throw new CliError('trace: -c needs a number >= 1', 2);
      if (opts.output !== undefined && opts.output !== 'json')
        throw new CliError(`trace: unknown output format '${opts.output}' (json)`, 2);
      const lab = new LabClient(labName());
      lab.node(opts.node);
      process.stderr.write(
        `tracing on node ${opts.node}${filter ? `: ${filter}` : ' (every packet)'}` +
          `${count ? `, ${count} packet${count === 1 ? '' : 's'}` : ''}; Ctrl-C to stop\n`,
      );
      const sink = new JsonLines((p) => {
        process.stdout.write(
          opts.output === 'json'
            ? JSON.stringify(p) + '\n'
            : formatTracedPacket(p, { verbose: opts.verbose === true }) + '\n',
        );
      });
      const failed = new Promise<never>((_, reject) => sink.once('error', reject));
      await Promise.race([
        streamFromAgent(lab.layout.agentSocket(opts.node), 'trace', { filter, count }, sink),
        failed,
      ]).catch((err: Error) => {
        throw new CliError(`node ${opts.node}: ${err.message}`);
      });
    });

  program
    .command('metrics')
    .description(
      "a node's Prometheus metrics (text format; also at http://<node IP>:10249/metrics)",
    )
    .requiredOption('--node <name>', 'node')
    .action(async (opts: { node: string }) => {
      const lab = new LabClient(labName());
      process.stdout.write(await lab.call<string>(opts.node, 'metrics'));
    });
}
