/**
 * loop — detects forwarding loops (CoreDNS plugin/loop). After start it sends
 * `<random>.<random>.<zone> HINFO` to the server itself; if that query comes back through
 * the chain more than twice, a forwarder sends our queries back to us: the server stops
 * with `Loop (<client> -> <server>) detected for zone "<zone>"`. Probing ends after the
 * first answer or 3 tries.
 */
import { randomBytes } from 'node:crypto';
import {
  noArgs,
  noBlock,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
  type Runtime,
} from '../plugin.js';
import { fqdn, TYPE } from '../wire.js';

export class LoopPlugin implements PluginInstance {
  readonly name = 'loop';
  readonly probe: string;
  private seen = 0;
  private done = false;
  private rt: Runtime | null = null;

  constructor(readonly zone: string) {
    const r = () => randomBytes(8).readBigUInt64BE().toString();
    this.probe = [r(), r(), zone].filter((p) => p !== '').join('.');
  }

  start(rt: Runtime): void {
    this.rt = rt;
    const send = async (): Promise<void> => {
      for (let attempt = 0; attempt < 3 && !this.done; attempt++) {
        const m = await rt.query(this.zone, this.probe, TYPE.HINFO).catch(() => null);
        if (m) break;
      }
      this.done = true;
    };
    setTimeout(() => void send(), 50).unref();
  }

  stop(): void {
    this.done = true;
  }

  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    if (!this.done && req.q.question.type === TYPE.HINFO && req.q.question.lname === this.probe) {
      this.seen++;
      if (this.seen > 2) {
        this.done = true;
        this.rt?.fatal(
          `plugin/loop: Loop (${req.remoteAddress}:${req.remotePort} -> ${req.localAddress}:${req.localPort}) detected for zone "${fqdn(this.zone)}", see https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO ${fqdn(this.probe)}"`,
        );
      }
    }
    return next(req);
  }
}

export const loop: PluginSpec = {
  name: 'loop',
  once: true,
  setup(d, ctx) {
    noArgs(ctx, d);
    noBlock(ctx, d);
    return new LoopPlugin(ctx.zones[0] ?? '');
  },
};
