/**
 * reload — re-reads the Corefile every INTERVAL (± JITTER) and, when it changed, restarts
 * the server with it; a Corefile that does not parse or set up is logged and the running
 * configuration kept (CoreDNS plugin/reload). With the Corefile from the coredns
 * ConfigMap, a change of the manifests is also checked at once.
 *
 *   reload [INTERVAL] [JITTER]      default 30s 15s; INTERVAL ≥ 2s, JITTER ≥ 1s, JITTER < INTERVAL/2
 */
import { parseDuration } from '../corefile.js';
import {
  argError,
  noBlock,
  type PluginInstance,
  type PluginSpec,
  type Runtime,
} from '../plugin.js';

export class ReloadPlugin implements PluginInstance {
  readonly name = 'reload';
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  constructor(
    readonly intervalMs: number,
    readonly jitterMs: number,
  ) {}
  start(rt: Runtime): void {
    const schedule = (): void => {
      if (this.stopped) return;
      const delay = this.intervalMs + (Math.random() * 2 - 1) * this.jitterMs;
      this.timer = setTimeout(
        () => {
          void rt.readCorefile().then((text) => {
            if (this.stopped) return;
            if (text !== null && text !== rt.corefileText) rt.requestReload();
            else schedule();
          });
        },
        Math.max(0, delay),
      );
      this.timer.unref();
    };
    schedule();
  }
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

export const reload: PluginSpec = {
  name: 'reload',
  once: true,
  setup(d, ctx) {
    noBlock(ctx, d);
    if (d.args.length > 2) argError(ctx, d, 'reload: expected at most INTERVAL JITTER', 2);
    const interval = d.args[0] !== undefined ? parseDuration(d.args[0]) : 30_000;
    if (interval === null) argError(ctx, d, `reload: invalid interval '${d.args[0]}'`, 0);
    const jitter =
      d.args[1] !== undefined
        ? parseDuration(d.args[1])
        : interval > 30_000
          ? 15_000
          : interval / 2;
    if (jitter === null) argError(ctx, d, `reload: invalid jitter '${d.args[1]}'`, 1);
    if (interval < 2000)
      argError(ctx, d, 'reload: interval value must be greater or equal to 2s', 0);
    if (d.args[1] !== undefined && jitter < 1000)
      argError(ctx, d, 'reload: jitter value must be greater or equal to 1s', 1);
    if (d.args[1] !== undefined && jitter > interval / 2) {
      argError(ctx, d, 'reload: jitter value must be smaller than interval/2', 1);
    }
    return new ReloadPlugin(interval, Math.min(jitter, interval / 2));
  },
};
