/**
 * ready — `GET /ready` answers 200 OK once every plugin that reports readiness is ready
 * (here: kubernetes, after the first cluster state), else 503 with their names
 * (CoreDNS plugin/ready).
 *
 *   ready [ADDRESS]      ADDRESS default :8181
 */
import {
  argError,
  noBlock,
  type PluginInstance,
  type PluginSpec,
  type Runtime,
} from '../plugin.js';

export class ReadyPlugin implements PluginInstance {
  readonly name = 'ready';
  port = 0;
  constructor(readonly address: string) {}
  async start(rt: Runtime): Promise<void> {
    const { port } = await rt.http(this.address, '/ready', () => {
      const notReady = [
        ...new Set(
          rt
            .instances()
            .filter((p) => p.ready && !p.ready())
            .map((p) => p.name),
        ),
      ].sort();
      return notReady.length === 0
        ? { status: 200, body: 'OK' }
        : { status: 503, body: notReady.join(', ') };
    });
    this.port = port;
  }
}

export const ready: PluginSpec = {
  name: 'ready',
  once: true,
  setup(d, ctx) {
    if (d.args.length > 1) argError(ctx, d, 'ready: expected at most one address', 1);
    noBlock(ctx, d);
    return new ReadyPlugin(d.args[0] ?? ':8181');
  },
};
