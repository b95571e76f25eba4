import type { Forwarder } from '../dataplane/forwarder.js';
import { PacketTracer, type TracedPacket } from '../dataplane/trace.js';
import { parseTraceFilter } from '../dataplane/trace-filter.js';
import { StreamReply } from './control.js';
import type { NodeKernel } from './node-kernel.js';

/** A reader this far behind loses packets rather than growing the agent's memory. */
const MAX_BACKLOG = 8 * 1024 * 1024;

/**
 * `kubewire trace`: installs a PacketTracer on the node's forwarder and hooks
 * and streams one JSON object per traced packet (TracedPacket), until `count`
 * packets were traced (the agent then ends the stream) or the client goes.
 * One trace at a time per node.
 */
export function traceSession(
  fwd: Forwarder,
  kernel: NodeKernel,
  node: string,
  params: Record<string, unknown>,
): StreamReply {
  const filter = parseTraceFilter(typeof params.filter === 'string' ? params.filter : '');
  const count = params.count === undefined ? 0 : Number(params.count);
  if (!Number.isInteger(count) || count < 0) throw new Error(`count: expected a number >= 0`);
  if (fwd.tracer !== null) throw new Error(`a trace is already running on node ${node}`);
  const hooks = fwd.hooks;
  return new StreamReply((sock) => {
    let lost = 0;
    let tracer: PacketTracer | null = null;
    const stop = () => {
      if (tracer === null || fwd.tracer !== tracer) return;
      fwd.tracer = null;
      if (hooks) hooks.tracer = null;
      kernel.netfilter.trace = null;
      fwd.drops.onDrop = null;
    };
    if (fwd.tracer !== null) {
      // (another trace started in between: cannot happen in one event loop turn, but be sure)
      sock.end(JSON.stringify({ error: `a trace is already running on node ${node}` }) + '\n');
      return stop;
    }
    tracer = new PacketTracer({
      node,
      filter,
      count,
      meta: hooks?.meta ?? null,
      result: hooks?.result ?? null,
      connections: kernel.conntrack,
      drops: fwd.drops,
      ruleTrace: (fn) => {
        kernel.netfilter.trace = fn;
      },
      emit: (p: TracedPacket) => {
        if (sock.destroyed || sock.writableLength > MAX_BACKLOG) {
          lost++;
          return;
        }
        if (lost > 0) p.lost = lost;
        lost = 0;
        sock.write(JSON.stringify(p) + '\n');
      },
      done: () => {
        stop();
        sock.end();
      },
    });
    fwd.tracer = tracer;
    if (hooks) hooks.tracer = tracer;
    return stop;
  });
}
