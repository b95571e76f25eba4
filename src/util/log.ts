import { pino, type DestinationStream, type Logger } from 'pino';

export interface LoggerOptions {
  /**
   * Per-request logs: lines are gathered in memory and handed to pino's asynchronous
   * destination 4 KiB at a time (or after 1 s), like nginx's `access_log … buffer=4k
   * flush=1s`, instead of one synchronous write per line. Whatever is gathered is
   * written when the process exits.
   */
  buffered?: boolean;
}

/** Destination of a buffered logger (exported for tests). */
export class BatchedDestination implements DestinationStream {
  private buf = '';

  constructor(
    private readonly dest: DestinationStream & { flushSync?: () => void },
    private readonly limit = 4096,
    flushMs = 1000,
  ) {
    setInterval(() => this.flush(), flushMs).unref();
    process.on('exit', () => {
      this.flush();
      try {
        dest.flushSync?.();
      } catch {
        // the destination was not open yet, or is gone
      }
    });
  }

  write(line: string): boolean {
    // A string built by appending is a rope: no copy until it is written out.
    this.buf += line;
    if (this.buf.length >= this.limit) this.flush();
    return true;
  }

  flush(): void {
    if (this.buf === '') return;
    const b = this.buf;
    this.buf = '';
    this.dest.write(b);
  }
}

/**
 * A writer of `logger.info(msg)` lines whose message is already the contents of a JSON
 * string: it writes, byte for byte, what pino would (level, time, the logger's bindings,
 * msg) to the logger's own destination, without pino serializing the message again.
 * null when the logger is customised in a way that changes its lines (formatters, mixin,
 * hooks, message key, time function, message prefix, multistream): use `logger.info`.
 */
export function preformattedInfo(logger: Logger): ((jsonMsg: string) => void) | null {
  const s = pino.symbols as typeof pino.symbols & { readonly msgPrefixSym: unique symbol };
  const l = logger as unknown as Record<symbol, unknown> & { levelVal: number };
  const stream = l[s.streamSym] as { write?: (line: string) => unknown } | undefined;
  const lsCache = l[s.lsCacheSym] as Record<number, string> | undefined;
  const formatters = l[s.formattersSym] as { log?: unknown } | undefined;
  const hooks = l[s.hooksSym] as { logMethod?: unknown; streamWrite?: unknown } | undefined;
  const serializers = l[s.serializersSym] as Record<string, unknown> | undefined;
  const stringifiers = l[s.stringifiersSym] as Record<string, unknown> | undefined;
  if (
    typeof stream?.write !== 'function' ||
    (stream as Record<symbol, unknown>)[s.needsMetadataGsym] === true ||
    lsCache?.[30] !== '{"level":30' ||
    l[s.timeSym] !== pino.stdTimeFunctions.epochTime ||
    l[s.messageKeySym] !== 'msg' ||
    l[s.endSym] !== '}\n' ||
    l[s.mixinSym] ||
    l[s.msgPrefixSym] ||
    formatters?.log ||
    hooks?.logMethod ||
    hooks?.streamWrite ||
    serializers?.msg ||
    stringifiers?.msg ||
    (stringifiers as Record<symbol, unknown> | undefined)?.[s.wildcardFirstSym] ||
    typeof l[s.chindingsSym] !== 'string'
  ) {
    return null;
  }
  const write = stream.write.bind(stream);
  return (jsonMsg: string): void => {
    if (l.levelVal > 30) return;
    // child() bindings are fixed per logger object, so this stays valid.
    write(`{"level":30,"time":${Date.now()}${l[s.chindingsSym] as string},"msg":"${jsonMsg}"}\n`);
  };
}

/**
 * Structured logs through pino. On a terminal they are printed human-readable
 * (pino-pretty); otherwise (files, pipes, CI) they stay JSON lines, one object
 * per event, so they can be filtered with jq.
 */
export function createLogger(
  name: string,
  destination?: number | string,
  options: LoggerOptions = {},
): Logger {
  const level = process.env.KUBEWIRE_LOG_LEVEL ?? 'info';
  const fd = typeof destination === 'number' ? destination : 2;
  const pretty = typeof destination !== 'string' && process.stderr.isTTY && fd === 2;
  if (pretty) {
    return pino({
      name,
      level,
      transport: { target: 'pino-pretty', options: { destination: fd, ignore: 'pid,hostname' } },
    });
  }
  const dest = options.buffered
    ? new BatchedDestination(pino.destination({ dest: destination ?? 2, sync: false }))
    : pino.destination({ dest: destination ?? 2, sync: true });
  return pino({ name, level, base: { pid: process.pid } }, dest);
}

export type { Logger };
