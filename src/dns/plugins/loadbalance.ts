/**
 * loadbalance — shuffles A and AAAA (and MX) records of every response (CoreDNS
 * plugin/loadbalance, round_robin): CNAMEs first, then other records, then the shuffled
 * addresses, then MX; in the answer, authority and additional sections.
 *
 *   loadbalance [round_robin]
 */
import { randomInt } from 'node:crypto';
import {
  argError,
  noBlock,
  then,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
} from '../plugin.js';
import { TYPE, type RR } from '../wire.js';

/** roundRobinShuffle: a swap driven by a random id, as CoreDNS does with dns.Id(). */
function shuffle(list: RR[]): void {
  const l = list.length;
  if (l < 2) return;
  if (l === 2) {
    if (randomInt(2) === 0) [list[0], list[1]] = [list[1]!, list[0]!];
    return;
  }
  for (let j = 0; j < l; j++) {
    const p = j + (randomInt(65536) % (l - j));
    if (p === j) continue;
    [list[j], list[p]] = [list[p]!, list[j]!];
  }
}

export function roundRobin(input: RR[]): RR[] {
  if (input.length < 2) return input;
  const cname: RR[] = [];
  const address: RR[] = [];
  const mx: RR[] = [];
  const rest: RR[] = [];
  for (const r of input) {
    if (r.type === TYPE.CNAME) cname.push(r);
    else if (r.type === TYPE.A || r.type === TYPE.AAAA) address.push(r);
    else if (r.type === TYPE.MX) mx.push(r);
    else rest.push(r);
  }
  shuffle(address);
  shuffle(mx);
  return [...cname, ...rest, ...address, ...mx];
}

export class LoadbalancePlugin implements PluginInstance {
  readonly name = 'loadbalance';
  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    return then(next(req), (r) => {
      if (typeof r === 'number') return r;
      if (r.answer.length > 1) r.answer = roundRobin(r.answer);
      if (r.authority.length > 1) r.authority = roundRobin(r.authority);
      if (r.additional.length > 1) r.additional = roundRobin(r.additional);
      return r;
    });
  }
}

export const loadbalance: PluginSpec = {
  name: 'loadbalance',
  once: true,
  setup(d, ctx) {
    const policy = d.args[0] ?? 'round_robin';
    if (policy === 'weighted') {
      argError(ctx, d, "loadbalance: policy 'weighted' is not supported by kubewire", 0);
    }
    if (d.args.length > 1) argError(ctx, d, 'loadbalance: expected at most one policy', 1);
    if (policy !== 'round_robin') argError(ctx, d, `loadbalance: unknown policy '${policy}'`, 0);
    noBlock(ctx, d);
    return new LoadbalancePlugin();
  },
};
