/**
 * errors — logs the errors of the plugins after it (CoreDNS plugin/errors):
 * `[ERROR] plugin/errors: 2 example.org. A: <error>` at level error, and answers
 * SERVFAIL (or the PluginError's rcode).
 *
 *   errors { consolidate DURATION REGEXP [LEVEL]; stacktrace }   (accepted; consolidation is not done)
 */
import { parseDuration } from '../corefile.js';
import {
  argError,
  noArgs,
  PluginError,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
} from '../plugin.js';
import type { Logger } from '../../util/log.js';
import { fqdn, RCODE, typeName } from '../wire.js';

export class ErrorsPlugin implements PluginInstance {
  readonly name = 'errors';
  constructor(private readonly logger: Logger) {}

  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    let r: MaybePromise<Reply>;
    try {
      r = next(req);
    } catch (e) {
      return this.report(req, e);
    }
    if (r instanceof Promise) return r.catch((e: unknown) => this.report(req, e));
    return r;
  }

  private report(req: DnsRequest, e: unknown): number {
    const rcode = e instanceof PluginError ? e.rcode : RCODE.SERVFAIL;
    const detail = e instanceof Error ? e.message : String(e);
    const q = req.q.question;
    this.logger.error(
      { plugin: 'errors' },
      `plugin/errors: ${rcode} ${fqdn(q.name)} ${typeName(q.type)}: ${detail}`,
    );
    return rcode;
  }
}

export const errors: PluginSpec = {
  name: 'errors',
  once: true,
  setup(d, ctx) {
    noArgs(ctx, d);
    for (const p of d.block ?? []) {
      if (p.name === 'stacktrace') continue;
      if (p.name === 'consolidate') {
        if (p.args.length < 2 || parseDuration(p.args[0]!) === null) {
          argError(ctx, p, 'errors: consolidate: expected DURATION REGEXP [LEVEL]');
        }
        try {
          new RegExp(p.args[1]!);
        } catch {
          argError(ctx, p, `errors: consolidate: invalid regexp '${p.args[1]}'`, 1);
        }
        continue;
      }
      ctx.error(p.line, `errors: unknown property '${p.name}'`);
    }
    return new ErrorsPlugin(ctx.logger);
  },
};
