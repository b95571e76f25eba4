import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Error of a failed external command, carrying what it printed so callers can say why. */
export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${argv.join(' ')} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim()}`);
    this.name = 'CommandError';
  }
}

/** Runs a command (no shell) and returns its stdout; throws CommandError with stderr on failure. */
export async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { code?: number | string; stderr?: string; message: string };
    throw new CommandError(
      [cmd, ...args],
      typeof e.code === 'number' ? e.code : null,
      e.stderr ?? e.message,
    );
  }
}

export function runSync(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { status?: number | null; stderr?: string; message: string };
    throw new CommandError([cmd, ...args], e.status ?? null, e.stderr ?? e.message);
  }
}

/** `ip` from iproute2, optionally inside a named network namespace (`ip -n NS ...`). */
export function ip(args: string[], netns?: string): Promise<string> {
  return run('ip', netns ? ['-n', netns, ...args] : args);
}
