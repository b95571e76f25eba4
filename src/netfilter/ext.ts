/**
 * The extension framework: a match or target is an object that parses its own
 * options (with libxtables' generic checks), saves itself in iptables-save syntax,
 * prints itself as `iptables -L` does, states the kernel's constraints
 * (table, hooks, protocol) and compiles into a closure for the hot path.
 */
import { ParameterProblem } from './errors.js';
import type { HookResult, NatRequest, NodeAddressing, PacketMeta } from './packet-meta.js';
import type { IpSetStore } from './ipset.js';
import type { RecentTables } from './recent.js';
import { strtoui } from './util.js';

/** One long option of an extension (struct xt_option_entry / struct option). */
export interface Opt {
  name: string;
  id: number;
  arg: boolean;
  /** XTOPT_INVERT: `! --opt` allowed. */
  invert?: boolean;
  /** XTOPT_MAND */
  mand?: boolean;
  /** XTOPT_MULTI */
  multi?: boolean;
  /** Bit set of option ids this one excludes / requires. */
  excl?: number;
  also?: number;
}

/** Parse-time view of the rule being built (cs->fw at the time of the option). */
export interface ParseCtx {
  readonly table: string;
  readonly proto: number;
  readonly invProto: boolean;
  /** argv[optind]: the word after the option's argument (two-argument options). */
  peekArg(): string | undefined;
  /** optind++ */
  takeArg(): string;
  readonly services: ParseServices;
}

/** What parsing may look up (ipset existence, as libxt_set asks the kernel). */
export interface ParseServices {
  ipsets: IpSetStore;
}

/** What compiled closures may use. */
export interface EvalEnv {
  /** Uniform in [0, 1). */
  random(): number;
  /** Milliseconds (jiffies with HZ=1000). */
  now(): number;
  addressing: NodeAddressing;
  recent: RecentTables;
  ipsets: IpSetStore;
  log(line: string, level: number): void;
  nfacct: Map<string, { packets: number; bytes: number }>;
  conntrackTuple: ((meta: PacketMeta) => CtTuple | null) | null;
}

/** The conntrack tuple of the packet's connection, for -m conntrack --ctorig…/--ctrepl…/--ctexpire. */
export interface CtTuple {
  proto: number;
  origSrc: number;
  origDst: number;
  origSport: number;
  origDport: number;
  replSrc: number;
  replDst: number;
  replSport: number;
  replDport: number;
  /** Seconds until the entry expires. */
  expires: number;
}

/** Kernel checkentry context (xt_mtchk_param / xt_tgchk_param). */
export interface CheckCtx {
  table: string;
  /** Bit mask of hooks (1 << Hook) the rule can be reached from; 0 for unreachable chains. */
  hookMask: number;
  proto: number;
  invProto: boolean;
}

export type MatchFn = (meta: PacketMeta) => boolean;

/** Verdict codes target closures return. */
export const T_CONTINUE = -1;
export const T_ACCEPT = 0;
export const T_DROP = 1;
export const T_REJECT = 2;
export type TargetFn = (meta: PacketMeta, result: HookResult) => number;

/**
 * Per option table: the first entry of each id, in order, and the ids that are mandatory
 * or take part in an also/excl rule (an option table without any needs no final check).
 */
const OPTION_RULES = new WeakMap<readonly Opt[], { first: Opt[]; constrained: boolean }>();

function optionRules(opts: readonly Opt[]): { first: Opt[]; constrained: boolean } {
  let rules = OPTION_RULES.get(opts);
  if (rules === undefined) {
    const seen = new Set<number>();
    const first = opts.filter((o) => !seen.has(o.id) && seen.add(o.id) !== undefined);
    const constrained = opts.some((o) => o.mand || (o.also ?? 0) !== 0 || (o.excl ?? 0) !== 0);
    rules = { first, constrained };
    OPTION_RULES.set(opts, rules);
  }
  return rules;
}

export abstract class Ext {
  abstract readonly name: string;
  abstract readonly opts: readonly Opt[];
  /** Options seen (1 << id). */
  declare xflags: number;

  constructor() {
    // Assigned here rather than as a class field: a field initializer shared by every
    // extension class defines the property megamorphically, which is slow.
    this.xflags = 0;
  }

  /** x6 options: libxtables checks once-only, invert and mandatory options itself. */
  get generic(): boolean {
    return true;
  }

  /** One option occurrence. `arg` is '' for options without argument. */
  abstract parse(id: number, arg: string, invert: boolean, ctx: ParseCtx): void;
  /** x6_fcheck / final_check (after the generic checks). */
  fcheck(_ctx: ParseCtx): void {}
  /** iptables-save text after "-m name" / "-j NAME", with leading spaces. */
  abstract save(): string;
  /** iptables -L text, with leading space. */
  abstract print(numeric: boolean): string;
  /** Kernel checkentry; false = EINVAL. */
  check(_ctx: CheckCtx): boolean {
    return true;
  }
  /** Names of recent lists / ipsets the rule refers to. */
  recentNames(): string[] {
    return [];
  }
  setNames(): string[] {
    return [];
  }

  /** The first option entry with this id (libxtables names options that way in messages). */
  optName(id: number): string {
    return this.opts.find((o) => o.id === id)!.name;
  }

  /** xtables_option_parse's generic checks, then the extension's parse. */
  handle(opt: Opt, arg: string, invert: boolean, ctx: ParseCtx): void {
    if (this.generic) {
      const eflag = 1 << opt.id;
      if ((!opt.multi || (opt.excl ?? 0) & eflag) && this.xflags & eflag) {
        throw new ParameterProblem(
          `${this.name}: option "--${this.optName(opt.id)}" can only be used once.\n`,
        );
      }
      if (invert && !opt.invert) {
        throw new ParameterProblem(
          `${this.name}: option "--${this.optName(opt.id)}" cannot be inverted.\n`,
        );
      }
    }
    this.parse(opt.id, arg, invert, ctx);
    this.xflags |= 1 << opt.id;
  }

  /** xtables_options_fcheck (mandatory / also / excl), then the extension's fcheck. */
  finalCheck(ctx: ParseCtx): void {
    const rules = this.generic ? optionRules(this.opts) : null;
    if (rules !== null && rules.constrained) {
      for (const e of rules.first) {
        const ef = 1 << e.id;
        if (e.mand && !(this.xflags & ef)) {
          throw new ParameterProblem(`${this.name}: option "--${e.name}" must be specified\n`);
        }
        if (!(this.xflags & ef)) continue;
        for (const o of this.opts) {
          if (o.id === e.id) continue;
          const of = 1 << o.id;
          if ((e.also ?? 0) & of && !(this.xflags & of)) {
            throw new ParameterProblem(
              `${this.name}: option "--${e.name}" also requires "--${this.optName(o.id)}".\n`,
            );
          }
          if ((e.excl ?? 0) & of && this.xflags & of) {
            throw new ParameterProblem(
              `${this.name}: option "--${e.name}" cannot be used together with "--${this.optName(o.id)}".\n`,
            );
          }
        }
      }
    }
    this.fcheck(ctx);
  }
}

/** See MatchExt.inline. */
export type InlineMatch =
  { kind: 'l4' } | { kind: 'random'; /** 31-bit threshold */ probability: number; invert: boolean };

export abstract class MatchExt extends Ext {
  /** The name printed after "-m" (the alias: "state" for the conntrack-based state match). */
  get saveName(): string {
    return this.name;
  }
  abstract compile(env: EvalEnv): MatchFn;
  /** For the chain index: a plain `-m tcp/udp --dport N` (nothing else). */
  exactDport(): number {
    return -1;
  }
  /**
   * The compiled match keeps state that the kernel restarts with every table change
   * (statistic --mode nth): its chain is compiled again whenever its table changes.
   */
  get stateful(): boolean {
    return false;
  }
  /**
   * A match the engine tests itself when it is a rule's only one (no closure to call):
   * `l4` for a plain -m tcp/udp (true when the packet has its ports), `random` for
   * statistic --mode random. null: compile() it.
   */
  inline(): InlineMatch | null {
    return null;
  }
  /**
   * Two parsed instances that save the same text behave the same and keep no state of
   * their own once parsed: a restore keeps one of them for all its rules.
   */
  get shareable(): boolean {
    return false;
  }
  /**
   * What tells two shareable instances apart: equal keys, equal saved text (the key need
   * not be the text itself when that is cheaper to get).
   */
  shareKey(): string | number {
    return this.save();
  }
  /**
   * The instance is kept by a restore: strings it took from the words of the restore
   * input are copied, so that they do not keep the whole input alive.
   */
  own(): void {}
  /** Matches that never affect the verdict (-m comment) do not break an index run. */
  get inert(): boolean {
    return false;
  }
}

export abstract class TargetExt extends Ext {
  /** Name in the -L target column (the kernel's target name: CT for NOTRACK). */
  get listName(): string {
    return this.name;
  }
  abstract compile(env: EvalEnv): TargetFn;
  /** DNAT/SNAT to fixed addresses: the (frozen) request every packet gets; else null. */
  natRequest(): NatRequest | null {
    return null;
  }
}

/** Parses "value[/mask]" as xtables_parse_mark_mask (base 0, 32 bits). */
export function parseMarkMask(
  ext: string,
  opt: string,
  arg: string,
): { mark: number; mask: number } {
  const bad = () =>
    new ParameterProblem(`${ext}: bad integer value for option "--${opt}", or out of range.\n`);
  const slash = arg.indexOf('/');
  const v = slash >= 0 ? arg.slice(0, slash) : arg;
  const mark = strtouiOrNull(v);
  if (mark === null) {
    // garbage after a number vs. no number at all
    if (/^\s*\+?(0[xX][0-9a-fA-F]+|\d+)/.test(v)) {
      throw new ParameterProblem(`${ext}: trailing garbage after value for option "--${opt}".\n`);
    }
    throw bad();
  }
  if (slash < 0) return { mark, mask: 0xffffffff };
  const mask = strtouiOrNull(arg.slice(slash + 1));
  if (mask === null) throw bad();
  return { mark, mask };
}

function strtouiOrNull(s: string): number | null {
  return strtoui(s, 0, 0xffffffff);
}

/** xtables_print_mark_mask */
export function markMaskString(mark: number, mask: number): string {
  return mask !== 0xffffffff ? ` 0x${hex(mark)}/0x${hex(mask)}` : ` 0x${hex(mark)}`;
}

export function hex(n: number): string {
  return (n >>> 0).toString(16);
}

/** An unsigned 32-bit option (XTTYPE_UINT32) with libxtables' message. */
export function parseUint32(
  ext: string,
  opt: string,
  arg: string,
  min = 0,
  max = 0xffffffff,
): number {
  const v = strtoui(arg, min, max);
  if (v === null) {
    throw new ParameterProblem(
      `${ext}: bad value for option "--${opt}", or out of range (${min}-${max}).\n`,
    );
  }
  return v;
}
