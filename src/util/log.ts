import { pino, type Logger } from 'pino';

export interface LoggerOptions {
  /**
   * Write in batches (at least 4 KiB, or after 1 s) from a buffer, asynchronously, instead
   * of one synchronous write per line: for per-request logs (nginx's `access_log …
   * buffer=4k flush=1s`). Whatever is buffered is written when the process exits.
   */
  buffered?: boolean;
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
    ? pino.destination({
        dest: destination ?? 2,
        sync: false,
        minLength: 4096,
        periodicFlush: 1000,
      })
    : pino.destination({ dest: destination ?? 2, sync: true });
  return pino({ name, level, base: { pid: process.pid } }, dest);
}

export type { Logger };
