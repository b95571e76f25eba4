/**
 * log — one line per query in CoreDNS's log format (plugin/log, plugin/pkg/replacer),
 * written through pino at level info with the line as `msg`:
 *
 *   127.0.0.1:52312 - 4711 "A IN web.default.svc.cluster.local. udp 70 false 1232" NOERROR qr,aa,rd 102 0.000183s
 *
 *   log [NAMES...] [FORMAT]
 *   log [NAMES...] [FORMAT] { class all|success|denial|error ... }
 *
 * FORMAT is `{common}` (the default), `{combined}` or a format with the placeholders
 * {remote} {port} {local} {id} {type} {class} {name} {proto} {size} {do} {bufsize}
 * {rcode} {rflags} {rsize} {duration} {opcode} (the `>` forms are accepted).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../util/log.js';
import {
  afterWrite,
  argError,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
} from '../plugin.js';
import {
  className,
  flagsText,
  fqdn,
  isSubdomain,
  rcodeName,
  typeName,
  type DnsMessage,
} from '../wire.js';
import { parseKey } from '../corefile.js';

export const COMMON_LOG_FORMAT =
  '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}';
export const COMBINED_LOG_FORMAT = `${COMMON_LOG_FORMAT} "{>opcode}"`;

type LogClass = 'all' | 'success' | 'denial' | 'error';

interface Rule {
  zones: string[];
  format: string;
  classes: Set<LogClass>;
}

/** response.Classify: success, denial (NXDOMAIN, NODATA) or error. */
export function classify(m: DnsMessage): 'success' | 'denial' | 'error' {
  if (m.rcode === 0)
    return m.answer.length > 0 || m.authority.some((r) => r.type !== 6) ? 'success' : 'denial';
  if (m.rcode === 3) return 'denial';
  return 'error';
}

export function formatLogLine(
  format: string,
  req: DnsRequest,
  m: DnsMessage,
  size: number,
): string {
  const q = req.q.question;
  const remote = req.family === 6 ? `[${req.remoteAddress}]` : req.remoteAddress;
  const seconds = (performance.now() - req.start) / 1000;
  const values: Record<string, string> = {
    remote,
    port: String(req.remotePort),
    local: req.localAddress,
    id: String(req.q.id),
    type: typeName(q.type),
    class: className(q.class),
    name: fqdn(q.name),
    proto: req.proto,
    size: String(req.q.size),
    do: String(req.q.edns?.do ?? false),
    bufsize: String(
      req.proto === 'tcp' ? 65535 : req.q.edns ? Math.max(512, req.q.edns.udpSize) : 512,
    ),
    rcode: rcodeName(m.rcode),
    rflags: flagsText(m),
    rsize: String(size),
    duration: `${Number(seconds.toFixed(9))}s`,
    opcode: m.opcode === 0 ? 'QUERY' : String(m.opcode),
  };
  return format.replace(/\{>?([a-z]+)\}/g, (all, key: string) => values[key] ?? all);
}

export class LogPlugin implements PluginInstance {
  readonly name = 'log';
  private readonly write: (req: DnsRequest, m: DnsMessage, size: number) => void;
  constructor(
    readonly rules: Rule[],
    readonly logger: Logger,
  ) {
    // The most specific zone decides (CoreDNS matches the rules' zones longest first).
    rules.sort(
      (a, b) =>
        Math.max(...b.zones.map((z) => z.length)) - Math.max(...a.zones.map((z) => z.length)),
    );
    this.write = (req, m, size) => {
      const lname = req.q.question.lname;
      for (const rule of this.rules) {
        if (!rule.zones.some((z) => isSubdomain(lname, z))) continue;
        if (!rule.classes.has('all') && !rule.classes.has(classify(m))) return;
        this.logger.info({ plugin: 'log' }, formatLogLine(rule.format, req, m, size));
        return;
      }
    };
  }

  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    if (req.depth === 0) afterWrite(req, this.write);
    return next(req);
  }
}

export const log: PluginSpec = {
  name: 'log',
  setup(d, ctx) {
    const names: string[] = [];
    let format = COMMON_LOG_FORMAT;
    d.args.forEach((a, i) => {
      if (a === '{common}') format = COMMON_LOG_FORMAT;
      else if (a === '{combined}') format = COMBINED_LOG_FORMAT;
      else if (a.includes('{')) format = a;
      else {
        try {
          for (const k of parseKey(ctx.file, d.argLines[i] ?? d.line, a)) names.push(k.zone);
        } catch {
          argError(ctx, d, `log: invalid name '${a}'`, i);
        }
      }
    });
    const classes = new Set<LogClass>();
    for (const p of d.block ?? []) {
      if (p.name !== 'class') ctx.error(p.line, `log: unknown property '${p.name}'`);
      if (p.args.length === 0)
        ctx.error(p.line, 'log: class: expected all, success, denial or error');
      p.args.forEach((c, i) => {
        if (!['all', 'success', 'denial', 'error'].includes(c)) {
          argError(ctx, p, `log: unknown class '${c}'`, i);
        }
        classes.add(c as LogClass);
      });
    }
    if (classes.size === 0) classes.add('all');
    const rule: Rule = { zones: names.length ? names : [''], format, classes };
    return new LogPlugin([rule], ctx.logger);
  },
  merge(instances) {
    const all = instances as LogPlugin[];
    return new LogPlugin(
      all.flatMap((i) => i.rules),
      all[0]!.logger,
    );
  },
};
