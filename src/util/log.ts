import { pino, type Logger } from 'pino';

/**
 * Structured logs through pino. On a terminal they are printed human-readable
 * (pino-pretty); otherwise (files, pipes, CI) they stay JSON lines, one object
 * per event, so they can be filtered with jq.
 */
export function createLogger(name: string, destination?: number | string): Logger {
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
  return pino(
    { name, level, base: { pid: process.pid } },
    pino.destination({ dest: destination ?? 2, sync: true }),
  );
}

export type { Logger };
