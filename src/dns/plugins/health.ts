/**
 * health — `GET /health` answers 200 OK while the process runs (CoreDNS plugin/health).
 *
 *   health [ADDRESS] { lameduck DURATION }      ADDRESS default :8080
 *
 * With lameduck, shutting down waits DURATION (still answering DNS and /health) before
 * the listeners close, as CoreDNS does for rolling updates.
 */
import { parseDuration } from '../corefile.js';
import { argError, type PluginInstance, type PluginSpec, type Runtime } from '../plugin.js';

export class HealthPlugin implements PluginInstance {
  readonly name = 'health';
  port = 0;
  constructor(
    readonly address: string,
    readonly lameduckMs: number,
  ) {}
  async start(rt: Runtime): Promise<void> {
    const { port } = await rt.http(this.address, '/health', () => {
      const t0 = performance.now();
      const res = { status: 200, body: 'OK' };
      rt.metrics.healthDuration.labels().observe((performance.now() - t0) / 1000);
      return res;
    });
    this.port = port;
  }
}

export const health: PluginSpec = {
  name: 'health',
  once: true,
  setup(d, ctx) {
    if (d.args.length > 1) argError(ctx, d, 'health: expected at most one address', 1);
    let lameduck = 0;
    for (const p of d.block ?? []) {
      if (p.name !== 'lameduck') ctx.error(p.line, `health: unknown property '${p.name}'`);
      const ms = p.args.length === 1 ? parseDuration(p.args[0]!) : null;
      if (ms === null) argError(ctx, p, 'health: lameduck: expected a duration', 0);
      lameduck = ms;
    }
    return new HealthPlugin(d.args[0] ?? ':8080', lameduck);
  },
};
