/**
 * Errors as iptables reports them. `message` is what iptables prints before its
 * "Try `iptables -h'…" hint (without trailing newlines), `stderr` the whole text
 * it writes to standard error, `exitCode` its exit status (1 = the kernel or
 * libiptc refused, 2 = bad parameters, 3 = unknown table).
 */
export class IptablesError extends Error {
  readonly stderr: string;
  readonly exitCode: number;

  constructor(message: string, stderr: string, exitCode: number) {
    super(message);
    this.name = 'IptablesError';
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

/** The program whose messages are emulated ("iptables" or "iptables-restore"). */
export interface ErrorContext {
  program: string;
  version: string;
  /** Line of iptables-restore input being parsed, or -1. */
  line: number;
}

/**
 * A parameter problem detected while parsing (xtables_error(PARAMETER_PROBLEM, …)):
 * thrown inside the parser without context; the command layer turns it into an
 * IptablesError with iptables' framing.
 */
export class ParameterProblem extends Error {
  /** 'param': "prog vX (legacy): msg" + try-help; 'bare': msg + try-help (e.g. "Bad argument"). */
  readonly kind: 'param' | 'bare';
  constructor(message: string, kind: 'param' | 'bare' = 'param') {
    super(message);
    this.kind = kind;
  }
}

/**
 * A failure libiptc or the kernel reports (errno): iptables prints
 * "iptables: <strerror>." and exits 1.
 */
export class KernelError extends Error {
  constructor(readonly errno: Errno) {
    super(errnoText[errno]);
  }
}

export type Errno =
  | 'ENOENT'
  | 'EEXIST'
  | 'EINVAL'
  | 'ELOOP'
  | 'EMLINK'
  | 'ENOTEMPTY'
  | 'E2BIG_DEL'
  | 'E2BIG_INS'
  | 'E2BIG_REP'
  | 'EBADRULE'
  | 'EBADPOLICYCHAIN'
  | 'EBADPOLICY'
  | 'EEXIST_FILE'
  | 'E2BIG_ZERO';

/** iptc_strerror texts as iptables v1.8 prints them for each failing call. */
export const errnoText: Record<Errno, string> = {
  ENOENT: 'No chain/target/match by that name',
  EEXIST: 'Chain already exists',
  EINVAL: "Invalid argument. Run `dmesg' for more information",
  ELOOP: 'Too many levels of symbolic links',
  EMLINK: 'Too many links',
  ENOTEMPTY: 'Directory not empty',
  E2BIG_DEL: 'Index of deletion too big',
  E2BIG_INS: 'Index of insertion too big',
  E2BIG_REP: 'Index of replacement too big',
  EBADRULE: 'Bad rule (does a matching rule exist in that chain?)',
  EBADPOLICYCHAIN: 'Bad built-in chain name',
  EBADPOLICY: "Bad policy name. Run `dmesg' for more information",
  EEXIST_FILE: 'File exists',
  E2BIG_ZERO: 'Index of counter too big',
};

export function tryHelp(ctx: ErrorContext): string {
  return `Try \`${ctx.program} -h' or '${ctx.program} --help' for more information.\n`;
}

/** Frames a ParameterProblem as iptables' xtables_error(PARAMETER_PROBLEM) output. */
export function parameterError(p: ParameterProblem, ctx: ErrorContext): IptablesError {
  const line = ctx.line >= 0 ? `Error occurred at line: ${ctx.line}\n` : '';
  if (p.kind === 'bare') {
    return new IptablesError(p.message, `${p.message}\n${line}${tryHelp(ctx)}`, 2);
  }
  const head = `${ctx.program} v${ctx.version} (legacy): ${p.message}`;
  return new IptablesError(head.replace(/\n+$/, ''), `${head}\n${line}${tryHelp(ctx)}`, 2);
}
