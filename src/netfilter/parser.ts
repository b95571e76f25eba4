/**
 * iptables' command-line parser (xshared.c do_parse, legacy 1.8.9 messages):
 * getopt_long with "-" ordering, abbreviated long options, "!" inversion,
 * extension options merged as extensions load, implicit protocol matches.
 */
import { ParameterProblem } from './errors.js';
import type { Ext, MatchExt, Opt, ParseCtx, ParseServices, TargetExt } from './ext.js';
import { MATCHES } from './matches.js';
import { protoNameToNumber } from './netdb.js';
import { STANDARD_VERDICTS } from './rule.js';
import { KNOWN_TARGET_NAMES, TARGETS } from './targets.js';
import { parseHostNetworkMasks, strtoui } from './util.js';

export const CMD_NONE = 0;
export const CMD_INSERT = 1 << 0;
export const CMD_DELETE = 1 << 1;
export const CMD_DELETE_NUM = 1 << 2;
export const CMD_REPLACE = 1 << 3;
export const CMD_APPEND = 1 << 4;
export const CMD_LIST = 1 << 5;
export const CMD_FLUSH = 1 << 6;
export const CMD_ZERO = 1 << 7;
export const CMD_NEW_CHAIN = 1 << 8;
export const CMD_DELETE_CHAIN = 1 << 9;
export const CMD_SET_POLICY = 1 << 10;
export const CMD_RENAME_CHAIN = 1 << 11;
export const CMD_LIST_RULES = 1 << 12;
export const CMD_ZERO_NUM = 1 << 13;
export const CMD_CHECK = 1 << 14;
export const CMD_VERSION = 1 << 20;
export const CMD_HELP = 1 << 21;

const CMD_CHARS = ['I', 'D', 'D', 'R', 'A', 'L', 'F', 'Z', 'N', 'X', 'P', 'E', 'S', 'Z', 'C'];

function cmd2char(cmd: number): string {
  let i = 0;
  for (; cmd > 1; cmd >>= 1) i++;
  return CMD_CHARS[i]!;
}

export const OPT_NUMERIC = 1 << 0;
export const OPT_SOURCE = 1 << 1;
export const OPT_DESTINATION = 1 << 2;
export const OPT_PROTOCOL = 1 << 3;
export const OPT_JUMP = 1 << 4;
export const OPT_VERBOSE = 1 << 5;
export const OPT_EXPANDED = 1 << 6;
export const OPT_VIANAMEIN = 1 << 7;
export const OPT_VIANAMEOUT = 1 << 8;
export const OPT_LINENUMBERS = 1 << 9;
export const OPT_COUNTERS = 1 << 10;
export const OPT_FRAGMENT = 1 << 11;
const OPT_FLAGS = ['n', 's', 'd', 'p', 'j', 'v', 'x', 'i', 'o', '0', 'c', 'f'];
const INVERTIBLE = new Set([
  OPT_SOURCE,
  OPT_DESTINATION,
  OPT_PROTOCOL,
  OPT_VIANAMEIN,
  OPT_VIANAMEOUT,
  OPT_FRAGMENT,
]);

function opt2char(o: number): string {
  let i = 0;
  for (; 1 << i !== o; i++);
  return OPT_FLAGS[i]!;
}

/** commands_v_options of iptables 1.8.9: x = illegal. Rows in CMD bit order. */
const COMMANDS_V_OPTIONS = [
  /*INSERT*/ 'x     x  x  ',
  /*DELETE*/ 'x     x  xx ',
  /*DELETE_NUM*/ 'xxxxx xxxxxx',
  /*REPLACE*/ 'x     x  x  ',
  /*APPEND*/ 'x     x  x  ',
  /*LIST*/ ' xxxx  xx xx',
  /*FLUSH*/ 'xxxxx xxxxxx',
  /*ZERO*/ 'xxxxx xxxxxx',
  /*NEW_CHAIN*/ 'xxxxx xxxxxx',
  /*DEL_CHAIN*/ 'xxxxx xxxxxx',
  /*SET_POLICY*/ 'xxxxx xxxx x',
  /*RENAME*/ 'xxxxx xxxxxx',
  /*LIST_RULES*/ 'xxxxx xxxxxx',
  /*ZERO_NUM*/ 'xxxxx xxxxxx',
  /*CHECK*/ 'x     x  xx ',
];

/** Long options of iptables itself: name, has_arg (0 none, 1 required, 2 optional), short letter. */
const BASE_OPTS: ReadonlyArray<[string, 0 | 1 | 2, string]> = [
  ['append', 1, 'A'],
  ['delete', 1, 'D'],
  ['check', 1, 'C'],
  ['insert', 1, 'I'],
  ['replace', 1, 'R'],
  ['list', 2, 'L'],
  ['list-rules', 2, 'S'],
  ['flush', 2, 'F'],
  ['zero', 2, 'Z'],
  ['new-chain', 1, 'N'],
  ['delete-chain', 2, 'X'],
  ['rename-chain', 1, 'E'],
  ['policy', 1, 'P'],
  ['source', 1, 's'],
  ['destination', 1, 'd'],
  ['src', 1, 's'],
  ['dst', 1, 'd'],
  ['protocol', 1, 'p'],
  ['in-interface', 1, 'i'],
  ['jump', 1, 'j'],
  ['table', 1, 't'],
  ['match', 1, 'm'],
  ['numeric', 0, 'n'],
  ['out-interface', 1, 'o'],
  ['verbose', 0, 'v'],
  ['wait', 2, 'w'],
  ['wait-interval', 2, 'W'],
  ['exact', 0, 'x'],
  ['fragments', 0, 'f'],
  ['version', 0, 'V'],
  ['help', 2, 'h'],
  ['line-numbers', 0, '0'],
  ['modprobe', 1, 'M'],
  ['set-counters', 1, 'c'],
  ['goto', 1, 'g'],
  ['ipv4', 0, '4'],
  ['ipv6', 0, '6'],
];

const BASE_ENTRIES: OptEntry[] = BASE_OPTS.map(([n, a, b]) => ({ name: n, hasArg: a, base: b }));
const BASE_BY_NAME = new Map(BASE_ENTRIES.map((e) => [e.name, e]));
/** The same by the word as typed ("--append"), for exact matches without slicing. */
const BASE_BY_WORD = new Map(BASE_ENTRIES.map((e) => [`--${e.name}`, e]));

function sameOption(a: OptEntry, b: OptEntry): boolean {
  if (a.hasArg !== b.hasArg) return false;
  if (a.base !== undefined || b.base !== undefined) return a.base === b.base;
  return (
    a.ext!.name === b.ext!.name && a.ext!.kind === b.ext!.kind && a.ext!.opt.id === b.ext!.opt.id
  );
}

/** IPT_OPTSTRING: letter → 0 no arg, 1 required, 2 optional. */
const SHORT_OPTS: Record<string, 0 | 1 | 2> = {
  A: 1,
  C: 1,
  D: 1,
  E: 1,
  F: 2,
  I: 1,
  L: 2,
  M: 1,
  N: 1,
  P: 1,
  R: 1,
  S: 2,
  V: 0,
  X: 2,
  Z: 2,
  c: 1,
  d: 1,
  i: 1,
  j: 1,
  o: 1,
  p: 1,
  s: 1,
  t: 1,
  v: 0,
  W: 2,
  '4': 0,
  '6': 0,
  f: 0,
  g: 1,
  h: 2,
  m: 1,
  n: 0,
  w: 2,
  x: 0,
};

/** SHORT_OPTS by character code (-1: no such option). */
const SHORT_SPEC = new Int8Array(128).fill(-1);
for (const [c, spec] of Object.entries(SHORT_OPTS)) SHORT_SPEC[c.charCodeAt(0)] = spec;

/** The chain protocols xtables_parse_protocol knows before getprotobyname. */
const CHAIN_PROTOS: Record<string, number> = {
  tcp: 6,
  sctp: 132,
  udp: 17,
  udplite: 136,
  icmp: 1,
  'ipv6-icmp': 58,
  icmpv6: 58,
  esp: 50,
  ah: 51,
  'mobility-header': 135,
  'ipv6-mh': 135,
  mh: 135,
  dccp: 33,
  ipcomp: 108,
  all: 0,
};

/**
 * The extension factories and chain protocols as Maps: a property lookup with a word of
 * the input (a string V8 has not internalized, usually a chain name that is no target)
 * searches the engine's string table, a Map lookup only hashes the word.
 */
const MATCH_FACTORIES = new Map(Object.entries(MATCHES));
const TARGET_FACTORIES = new Map(Object.entries(TARGETS));
const CHAIN_PROTO_NUMBERS = new Map(Object.entries(CHAIN_PROTOS));

export function parseProtocol(s: string): number {
  const n = strtoui(s, 0, 255);
  if (n !== null) return n;
  const chainProto = CHAIN_PROTO_NUMBERS.get(s);
  if (chainProto !== undefined) return chainProto;
  const p = protoNameToNumber(s);
  if (p >= 0) return p;
  throw new ParameterProblem(`unknown protocol "${s}" specified`);
}

/** proto_to_name(proto, 1): the chain protocols only (for implicit protocol matches). */
function protoToChainName(n: number): string | null {
  for (const [name, num] of Object.entries(CHAIN_PROTOS)) if (num === n) return name;
  return null;
}

export function parseRuleNumber(s: string): number {
  const n = strtoui(s, 1, 0x7fffffff);
  if (n === null) throw new ParameterProblem(`Invalid rule number \`${s}'`);
  return n;
}

/** Checks of -N (assert_valid_chain_name). */
export function assertValidChainName(name: string): void {
  if (name.length >= 29) {
    throw new ParameterProblem(`chain name \`${name}' too long (must be under 29 chars)`);
  }
  if (name[0] === '-' || name[0] === '!') {
    throw new ParameterProblem(`chain name not allowed to start with \`${name[0]}'`);
  }
  if (KNOWN_TARGET_NAMES.has(name))
    throw new ParameterProblem('chain name may not clash with target name');
  if (/\s/.test(name)) throw new ParameterProblem(`Invalid chain name \`${name}'`);
}

export interface Parsed {
  command: number;
  chain: string | null;
  rulenum: number;
  newname: string | null;
  policy: string | null;
  table: string;
  options: number;
  verbose: number;
  pcnt: number;
  bcnt: number;
  /* the rule */
  srcs: ReadonlyArray<{ addr: number; mask: number }>;
  dsts: ReadonlyArray<{ addr: number; mask: number }>;
  invSrc: boolean;
  invDst: boolean;
  inIf: string;
  outIf: string;
  invIn: boolean;
  invOut: boolean;
  proto: number;
  invProto: boolean;
  frag: boolean;
  invFrag: boolean;
  matches: MatchExt[];
  target: TargetExt | null;
  /** -j/-g name ('' none). */
  jumpto: string;
  goto: boolean;
}

interface OptEntry {
  name: string;
  hasArg: 0 | 1 | 2;
  /** base option letter, or the extension owning it */
  base?: string;
  ext?: { kind: 'match' | 'target'; name: string; opt: Opt };
}

/** An extension's options as merged into getopt's table, with the first entry of each word. */
interface ExtOptBlock {
  entries: OptEntry[];
  byWord: Map<string, OptEntry>;
}

/** The option entries of an extension (the same for every instance): built once per option table. */
const EXT_OPT_BLOCKS = {
  match: new WeakMap<readonly Opt[], Map<string, ExtOptBlock>>(),
  target: new WeakMap<readonly Opt[], Map<string, ExtOptBlock>>(),
};

function extOptBlock(kind: 'match' | 'target', ext: Ext): ExtOptBlock {
  let byName = EXT_OPT_BLOCKS[kind].get(ext.opts);
  if (byName === undefined) EXT_OPT_BLOCKS[kind].set(ext.opts, (byName = new Map()));
  const cached = byName.get(ext.name);
  if (cached !== undefined) return cached;
  const entries = ext.opts.map((o): OptEntry => ({
    name: o.name,
    hasArg: o.arg ? 1 : 0,
    ext: { kind, name: ext.name, opt: o },
  }));
  const byWord = new Map<string, OptEntry>();
  for (const e of entries) if (!byWord.has(`--${e.name}`)) byWord.set(`--${e.name}`, e);
  const block = { entries, byWord };
  byName.set(ext.name, block);
  return block;
}

/** xtables_parse_target's name checks, without a regular expression for the usual names. */
function plainName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const ok =
      (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95;
    if (!ok) return false;
  }
  return true;
}

function xtParseTarget(name: string): string {
  if (name.length < 1) throw new ParameterProblem('Invalid target name (too short)');
  if (name.length >= 29)
    throw new ParameterProblem(`Invalid target name \`${name}' (28 chars max)`);
  if (!plainName(name) && /\s/.test(name))
    throw new ParameterProblem(`Invalid target name \`${name}'`);
  return name;
}

function newParsed(): Parsed {
  return {
    command: CMD_NONE,
    chain: null,
    rulenum: 0,
    newname: null,
    policy: null,
    table: 'filter',
    options: 0,
    verbose: 0,
    pcnt: 0,
    bcnt: 0,
    srcs: NO_ADDRESSES,
    dsts: NO_ADDRESSES,
    invSrc: false,
    invDst: false,
    inIf: '',
    outIf: '',
    invIn: false,
    invOut: false,
    proto: 0,
    invProto: false,
    frag: false,
    invFrag: false,
    matches: NO_MATCHES,
    target: null,
    jumpto: '',
    goto: false,
  };
}

const NO_ADDRESSES: ReadonlyArray<{ addr: number; mask: number }> = [];
const NO_MATCHES: MatchExt[] = [];
const NO_WORDS: readonly string[] = [];

/**
 * iptables' do_parse over an argv (getopt_long state and the rule being built). One
 * parser can parse line after line (a restore): its scratch arrays are reused.
 */
class CommandParser implements ParseCtx {
  p: Parsed = newParsed();
  shostnetworkmask: string | null = null;
  dhostnetworkmask: string | null = null;
  protocol: string | null = null;
  protoUsed = false;
  tableSet = false;
  invert = false;
  optind = 0;
  /** Extension option blocks, oldest first (looked up newest first: xtables_merge_options order). */
  private readonly extOpts: ExtOptBlock[] = [];
  private extCount = 0;
  /** The matches loaded, in order (p.matches is set from them at the end). */
  private readonly matchList: MatchExt[] = [];
  private matchCount = 0;
  targetLoaded = false;
  /** The last -j name that passed xtParseTarget and names no extension (see 'j'). */
  private lastPlainTarget: string | null = null;
  private argv: readonly string[] = NO_WORDS;
  /** The words of argv that are the command line (a restore reuses one array). */
  private argc = 0;

  constructor(
    readonly services: ParseServices,
    private readonly restore: boolean,
  ) {}

  /** Parses argv[0, argc): the Parsed is new, the parser's own state starts afresh. */
  parse(argv: readonly string[], argc: number): Parsed {
    this.p = newParsed();
    this.shostnetworkmask = null;
    this.dhostnetworkmask = null;
    this.protocol = null;
    this.protoUsed = false;
    this.tableSet = false;
    this.invert = false;
    this.optind = 0;
    this.extCount = 0;
    this.matchCount = 0;
    this.targetLoaded = false;
    this.argv = argv;
    this.argc = argc;
    return this.run();
  }

  get table(): string {
    return this.p.table;
  }
  get proto(): number {
    return this.p.proto;
  }
  get invProto(): boolean {
    return this.p.invProto;
  }
  peekArg(): string | undefined {
    return this.optind < this.argc ? this.argv[this.optind] : undefined;
  }
  takeArg(): string {
    return this.argv[this.optind++]!;
  }

  private hasArg(): boolean {
    return (
      this.optind < this.argc &&
      this.argv[this.optind]![0] !== '-' &&
      this.argv[this.optind]![0] !== '!'
    );
  }

  private setOption(o: number, inv: boolean) {
    if (this.p.options & o)
      throw new ParameterProblem(`multiple -${opt2char(o)} flags not allowed`);
    this.p.options |= o;
    if (inv && !INVERTIBLE.has(o))
      throw new ParameterProblem(`cannot have ! before -${opt2char(o)}`);
  }

  private addCommand(newcmd: number, othercmds: number, inv: boolean) {
    if (inv) throw new ParameterProblem("unexpected '!' flag");
    if (this.p.command & ~othercmds) {
      throw new ParameterProblem(
        `Cannot use -${cmd2char(newcmd)} with -${cmd2char(this.p.command & ~othercmds)}`,
      );
    }
    this.p.command |= newcmd;
  }

  /** Merges an extension's options, unless they are merged already (a second -m tcp). */
  private addExtOpts(kind: 'match' | 'target', ext: Ext) {
    const block = extOptBlock(kind, ext);
    const blocks = this.extOpts;
    for (let i = 0; i < this.extCount; i++) if (blocks[i] === block) return;
    blocks[this.extCount++] = block;
  }

  private loadMatch(name: string): MatchExt {
    const f = MATCH_FACTORIES.get(name);
    if (!f)
      throw new ParameterProblem(`Couldn't load match \`${name}':No such file or directory\n`);
    const m = f();
    this.matchList[this.matchCount++] = m;
    this.addExtOpts('match', m);
    return m;
  }

  private lookupLong(name: string): OptEntry | 'ambiguous' | null {
    // getopt_long: an exact name wins (iptables' own options first, then the newest extension's)
    const exact = BASE_BY_NAME.get(name);
    if (exact) return exact;
    const blocks = this.extOpts;
    for (let i = this.extCount - 1; i >= 0; i--)
      for (const e of blocks[i]!.entries) if (e.name === name) return e;
    // else a unique abbreviation (entries for the same option count once)
    let first: OptEntry | null = null;
    let ambiguous = false;
    const consider = (e: OptEntry) => {
      if (!e.name.startsWith(name)) return;
      if (first === null) first = e;
      else if (!sameOption(first, e)) ambiguous = true;
    };
    BASE_ENTRIES.forEach(consider);
    for (let i = this.extCount - 1; i >= 0; i--) blocks[i]!.entries.forEach(consider);
    return ambiguous ? 'ambiguous' : first;
  }

  private dispatchExt(e: OptEntry, arg: string, inv: boolean) {
    const x = e.ext!;
    let owner: Ext | undefined;
    if (x.kind === 'target') owner = this.p.target ?? undefined;
    else {
      for (let i = this.matchCount - 1; i >= 0; i--) {
        if (this.matchList[i]!.name === x.name) {
          owner = this.matchList[i];
          break;
        }
      }
    }
    if (!owner) throw new ParameterProblem(`unknown option "${arg}"`);
    owner.handle(x.opt, arg, inv, this);
  }

  private handleBase(c: string, optarg: string | null, word: string) {
    const inv = this.invert;
    switch (c) {
      case 'A':
        this.addCommand(CMD_APPEND, CMD_NONE, inv);
        this.p.chain = optarg;
        break;
      case 'C':
        this.addCommand(CMD_CHECK, CMD_NONE, inv);
        this.p.chain = optarg;
        break;
      case 'D':
        this.addCommand(CMD_DELETE, CMD_NONE, inv);
        this.p.chain = optarg;
        if (this.hasArg()) {
          this.p.rulenum = parseRuleNumber(this.argv[this.optind++]!);
          this.p.command = CMD_DELETE_NUM;
        }
        break;
      case 'R':
        this.addCommand(CMD_REPLACE, CMD_NONE, inv);
        this.p.chain = optarg;
        if (this.hasArg()) this.p.rulenum = parseRuleNumber(this.argv[this.optind++]!);
        else throw new ParameterProblem('-R requires a rule number');
        break;
      case 'I':
        this.addCommand(CMD_INSERT, CMD_NONE, inv);
        this.p.chain = optarg;
        this.p.rulenum = this.hasArg() ? parseRuleNumber(this.argv[this.optind++]!) : 1;
        break;
      case 'L':
      case 'S':
        this.addCommand(c === 'L' ? CMD_LIST : CMD_LIST_RULES, CMD_ZERO | CMD_ZERO_NUM, inv);
        if (optarg !== null) this.p.chain = optarg;
        else if (this.hasArg()) this.p.chain = this.argv[this.optind++]!;
        if (this.hasArg()) this.p.rulenum = parseRuleNumber(this.argv[this.optind++]!);
        break;
      case 'F':
        this.addCommand(CMD_FLUSH, CMD_NONE, inv);
        if (optarg !== null) this.p.chain = optarg;
        else if (this.hasArg()) this.p.chain = this.argv[this.optind++]!;
        break;
      case 'Z':
        this.addCommand(CMD_ZERO, CMD_LIST | CMD_LIST_RULES, inv);
        if (optarg !== null) this.p.chain = optarg;
        else if (this.hasArg()) this.p.chain = this.argv[this.optind++]!;
        if (this.hasArg()) {
          this.p.rulenum = parseRuleNumber(this.argv[this.optind++]!);
          this.p.command = (this.p.command & ~CMD_ZERO) | CMD_ZERO_NUM;
        }
        break;
      case 'N':
        assertValidChainName(optarg!);
        this.addCommand(CMD_NEW_CHAIN, CMD_NONE, inv);
        this.p.chain = optarg;
        break;
      case 'X':
        this.addCommand(CMD_DELETE_CHAIN, CMD_NONE, inv);
        if (optarg !== null) this.p.chain = optarg;
        else if (this.hasArg()) this.p.chain = this.argv[this.optind++]!;
        break;
      case 'E':
        this.addCommand(CMD_RENAME_CHAIN, CMD_NONE, inv);
        this.p.chain = optarg;
        if (this.hasArg()) this.p.newname = this.argv[this.optind++]!;
        else throw new ParameterProblem('-E requires old-chain-name and new-chain-name');
        break;
      case 'P':
        this.addCommand(CMD_SET_POLICY, CMD_NONE, inv);
        if (this.hasArg()) {
          this.p.chain = optarg;
          this.p.policy = this.argv[this.optind++]!;
        } else throw new ParameterProblem('-P requires a chain and a policy');
        break;
      case 'h':
        this.p.command |= CMD_HELP;
        break;
      case 'V':
        this.p.command |= CMD_VERSION;
        break;
      case 'p': {
        this.setOption(OPT_PROTOCOL, inv);
        this.protocol = optarg!.toLowerCase();
        this.p.proto = parseProtocol(this.protocol);
        this.p.invProto = inv;
        if (this.p.proto === 0 && inv)
          throw new ParameterProblem('rule would never match protocol');
        break;
      }
      case 's':
        this.setOption(OPT_SOURCE, inv);
        this.p.invSrc = inv;
        this.shostnetworkmask = optarg;
        break;
      case 'd':
        this.setOption(OPT_DESTINATION, inv);
        this.p.invDst = inv;
        this.dhostnetworkmask = optarg;
        break;
      case 'g':
        this.setOption(OPT_JUMP, inv);
        this.p.goto = true;
        this.p.jumpto = xtParseTarget(optarg!);
        break;
      case 'j': {
        this.setOption(OPT_JUMP, inv);
        if (optarg === 'CONTINUE') break;
        // A restore jumps to the same chain line after line (KUBE-MARK-MASQ): a name
        // that passed the checks and is no extension is remembered.
        if (optarg !== null && optarg === this.lastPlainTarget) {
          this.p.jumpto = optarg;
          break;
        }
        this.p.jumpto = xtParseTarget(optarg!);
        const f = TARGET_FACTORIES.get(this.p.jumpto);
        if (f === undefined && !KNOWN_TARGET_NAMES.has(this.p.jumpto))
          this.lastPlainTarget = this.p.jumpto;
        if (f) {
          this.p.target = f();
          if (!this.targetLoaded) {
            this.targetLoaded = true;
            this.addExtOpts('target', this.p.target);
          }
        } else if (KNOWN_TARGET_NAMES.has(this.p.jumpto) && !STANDARD_VERDICTS.has(this.p.jumpto)) {
          throw new ParameterProblem(
            `Couldn't load target \`${this.p.jumpto}':No such file or directory\n`,
          );
        }
        break;
      }
      case 'i':
      case 'o': {
        if (optarg === '') throw new ParameterProblem('Empty interface is likely to be undesired');
        this.setOption(c === 'i' ? OPT_VIANAMEIN : OPT_VIANAMEOUT, inv);
        if (optarg!.length + 1 > 16) {
          throw new ParameterProblem(
            `interface name \`${optarg}' must be shorter than IFNAMSIZ (15)`,
          );
        }
        if (c === 'i') {
          this.p.inIf = optarg!;
          this.p.invIn = inv;
        } else {
          this.p.outIf = optarg!;
          this.p.invOut = inv;
        }
        break;
      }
      case 'f':
        this.setOption(OPT_FRAGMENT, inv);
        this.p.frag = true;
        this.p.invFrag = inv;
        break;
      case 'v':
        if (!this.p.verbose) this.setOption(OPT_VERBOSE, inv);
        this.p.verbose++;
        break;
      case 'm':
        if (inv) throw new ParameterProblem('unexpected ! flag before --match');
        this.loadMatch(optarg!);
        break;
      case 'n':
        this.setOption(OPT_NUMERIC, inv);
        break;
      case 't':
        if (inv) throw new ParameterProblem('unexpected ! flag before --table');
        if (this.restore && this.tableSet) {
          throw new ParameterProblem('The -t option cannot be used in iptables-restore.\n');
        }
        this.p.table = optarg!;
        this.tableSet = true;
        break;
      case 'x':
        this.setOption(OPT_EXPANDED, inv);
        break;
      case 'w':
        if (this.restore) throw new ParameterProblem("You cannot use `-w' from iptables-restore");
        if (optarg === null && this.hasArg()) this.optind++;
        break;
      case 'W':
        if (this.restore) throw new ParameterProblem("You cannot use `-W' from iptables-restore");
        if (optarg === null && this.hasArg()) this.optind++;
        break;
      case '0':
        this.setOption(OPT_LINENUMBERS, inv);
        break;
      case 'M':
        break;
      case 'c': {
        this.setOption(OPT_COUNTERS, inv);
        const pc = optarg!;
        let bc: string | null = null;
        const comma = pc.indexOf(',');
        if (comma >= 0) bc = pc.slice(comma + 1);
        if (bc === null && this.hasArg()) bc = this.argv[this.optind++]!;
        if (bc === null) throw new ParameterProblem('-c requires packet and byte counter');
        const num = (s: string) => /^\s*\+?\d+/.exec(s);
        const pm = num(pc);
        if (!pm) throw new ParameterProblem('-c packet counter not numeric');
        const bm = num(bc);
        if (!bm) throw new ParameterProblem('-c byte counter not numeric');
        this.p.pcnt = Number(pm[0].trim());
        this.p.bcnt = Number(bm[0].trim());
        break;
      }
      case '4':
        break;
      case '6':
        throw new ParameterProblem('', 'bare');
      default:
        throw new ParameterProblem(`unknown option "${word}"`);
    }
  }

  /** An exact long option without "=": iptables' own first, then the newest extension's. */
  private lookupWord(word: string): OptEntry | undefined {
    const base = BASE_BY_WORD.get(word);
    if (base !== undefined) return base;
    const blocks = this.extOpts;
    for (let i = this.extCount - 1; i >= 0; i--) {
      const e = blocks[i]!.byWord.get(word);
      if (e !== undefined) return e;
    }
    return undefined;
  }

  /** An extension's long option: its argument, then the extension's parse. */
  private extOption(e: OptEntry, word: string, eqArg: string | null): void {
    let arg = '';
    if (e.hasArg === 1) {
      if (eqArg !== null) arg = eqArg;
      else if (this.optind < this.argc) arg = this.argv[this.optind++]!;
      else throw new ParameterProblem(`option "${word}" requires an argument`);
    } else if (eqArg !== null) {
      throw new ParameterProblem(`unknown option "${word}"`);
    }
    this.dispatchExt(e, arg, this.invert);
  }

  private handleUnknownLong(word: string, name: string, eqArg: string | null): void {
    for (;;) {
      const e = this.lookupLong(name);
      if (e && e !== 'ambiguous') {
        if (e.base !== undefined) {
          this.processBase(e, word, eqArg);
          return;
        }
        this.extOption(e, word, eqArg);
        return;
      }
      // load_proto
      if (this.protocol !== null && !this.protoUsed) {
        this.protoUsed = true;
        const n = strtoui(this.protocol, 0, 255);
        const pname = n !== null ? protoToChainName(n) : this.protocol;
        if (pname !== null && MATCH_FACTORIES.has(pname)) {
          this.loadMatch(pname);
          continue;
        }
      }
      throw new ParameterProblem(`unknown option "${word}"`);
    }
  }

  private processBase(e: OptEntry, word: string, eqArg: string | null) {
    let optarg: string | null = null;
    if (e.hasArg === 1) {
      if (eqArg !== null) optarg = eqArg;
      else if (this.optind < this.argc) optarg = this.argv[this.optind++]!;
      else throw new ParameterProblem(`option "${word}" requires an argument`);
    } else if (e.hasArg === 2) optarg = eqArg;
    else if (eqArg !== null) throw new ParameterProblem(`unknown option "${word}"`);
    this.handleBase(e.base!, optarg, word);
    this.invert = false;
  }

  run(): Parsed {
    while (this.optind < this.argc) {
      const word = this.argv[this.optind++]!;
      if (word === '--') break;
      if (word.startsWith('--')) {
        const eq = word.indexOf('=');
        if (eq < 0) {
          // The usual case: the whole word is an option's name.
          const exact = this.lookupWord(word);
          if (exact !== undefined) {
            if (exact.base !== undefined) this.processBase(exact, word, null);
            else {
              this.extOption(exact, word, null);
              this.invert = false;
            }
            continue;
          }
        }
        const name = eq >= 0 ? word.slice(2, eq) : word.slice(2);
        const eqArg = eq >= 0 ? word.slice(eq + 1) : null;
        const e = this.lookupLong(name);
        if (e && e !== 'ambiguous' && e.base !== undefined) {
          this.processBase(e, word, eqArg);
          continue;
        }
        this.handleUnknownLong(word, name, eqArg);
        this.invert = false;
        continue;
      }
      if (word.length > 1 && word[0] === '-') {
        // a cluster of short options
        for (let k = 1; k < word.length; k++) {
          const c = word[k]!;
          const code = word.charCodeAt(k);
          const spec = code < 128 ? SHORT_SPEC[code]! : -1;
          if (spec < 0) throw new ParameterProblem(`unknown option "-${c}"`);
          let optarg: string | null = null;
          const rest = word.slice(k + 1);
          if (spec === 1) {
            if (rest !== '') optarg = rest;
            else if (this.optind < this.argc) optarg = this.argv[this.optind++]!;
            else throw new ParameterProblem(`option "-${c}" requires an argument`);
            k = word.length;
          } else if (spec === 2) {
            if (rest !== '') optarg = rest;
            k = rest !== '' ? word.length : k;
          }
          this.handleBase(c, optarg, `-${c}`);
          this.invert = false;
        }
        continue;
      }
      // non-option
      if (word === '!') {
        if (this.invert) throw new ParameterProblem('multiple consecutive ! not allowed');
        this.invert = true;
        continue;
      }
      throw new ParameterProblem(`Bad argument \`${word}'`, 'bare');
    }

    if (
      this.p.table === 'nat' &&
      ((this.p.policy !== null && this.p.policy === 'DROP') ||
        (this.p.jumpto !== '' && this.p.jumpto === 'DROP'))
    ) {
      throw new ParameterProblem(
        '\nThe "nat" table is not intended for filtering, the use of DROP is therefore inhibited.\n\n',
      );
    }
    // The matches, in an array of exactly their number (rules keep it).
    const matches = this.matchCount === 0 ? [] : this.matchList.slice(0, this.matchCount);
    this.p.matches = matches;
    for (let i = 0; i < matches.length; i++) matches[i]!.finalCheck(this);
    if (this.p.target) this.p.target.finalCheck(this);
    if (this.optind < this.argc)
      throw new ParameterProblem('unknown arguments found on commandline');
    if (this.p.command === CMD_NONE) throw new ParameterProblem('no command specified');
    if (this.invert) throw new ParameterProblem('nothing appropriate following !');

    if (this.p.command & (CMD_REPLACE | CMD_INSERT | CMD_DELETE | CMD_APPEND | CMD_CHECK)) {
      if (!(this.p.options & OPT_DESTINATION)) this.dhostnetworkmask = '0.0.0.0/0';
      if (!(this.p.options & OPT_SOURCE)) this.shostnetworkmask = '0.0.0.0/0';
    }
    if (this.shostnetworkmask !== null) this.p.srcs = parseHostNetworkMasks(this.shostnetworkmask);
    if (this.dhostnetworkmask !== null) this.p.dsts = parseHostNetworkMasks(this.dhostnetworkmask);
    if ((this.p.srcs.length > 1 || this.p.dsts.length > 1) && (this.p.invSrc || this.p.invDst)) {
      throw new ParameterProblem('! not allowed with multiple source or destination IP addresses');
    }

    genericOptCheck(this.p.command & ~(CMD_VERSION | CMD_HELP), this.p.options);

    if (this.p.chain !== null && this.p.chain.length >= 29) {
      throw new ParameterProblem(`chain name \`${this.p.chain}' too long (must be under 29 chars)`);
    }
    if (this.p.command & (CMD_APPEND | CMD_DELETE | CMD_CHECK | CMD_INSERT | CMD_REPLACE)) {
      if (
        (this.p.chain === 'PREROUTING' || this.p.chain === 'INPUT') &&
        this.p.options & OPT_VIANAMEOUT
      ) {
        throw new ParameterProblem(`Can't use -o with ${this.p.chain}\n`);
      }
      if (
        (this.p.chain === 'POSTROUTING' || this.p.chain === 'OUTPUT') &&
        this.p.options & OPT_VIANAMEIN
      ) {
        throw new ParameterProblem(`Can't use -i with ${this.p.chain}\n`);
      }
    }
    return this.p;
  }
}

/**
 * Parses one iptables command line (argv without the program name).
 * `restore`: as iptables-restore calls it (-t was given by the restore, -w refused).
 */
export function parseCommand(
  argv: readonly string[],
  services: ParseServices,
  restore = false,
): Parsed {
  return new CommandParser(services, restore).parse(argv, argv.length);
}

/** parseCommand for line after line of a restore: parse(argv, argc) with one parser. */
export function restoreLineParser(
  services: ParseServices,
): (argv: readonly string[], argc: number) => Parsed {
  const parser = new CommandParser(services, true);
  return (argv, argc) => parser.parse(argv, argc);
}

/** Per command bit (COMMANDS_V_OPTIONS row), the options it allows, as a bit set. */
const ALLOWED_OPTIONS = COMMANDS_V_OPTIONS.map((row) => {
  let m = 0;
  for (let i = 0; i < OPT_FLAGS.length; i++) if (row[i] !== 'x') m |= 1 << i;
  return m;
});

/**
 * generic_opt_check: an option is illegal when every command given forbids it (one
 * command allowing it is enough); the lowest such option is reported.
 */
function genericOptCheck(command: number, options: number): void {
  let allowed = 0;
  let any = false;
  for (let j = 0; j < ALLOWED_OPTIONS.length; j++) {
    if (!(command & (1 << j))) continue;
    any = true;
    allowed |= ALLOWED_OPTIONS[j]!;
  }
  if (!any) return;
  const illegal = options & ~allowed & ((1 << OPT_FLAGS.length) - 1);
  if (illegal === 0) return;
  for (let i = 0; i < OPT_FLAGS.length; i++) {
    if (illegal & (1 << i))
      throw new ParameterProblem(`Illegal option \`-${OPT_FLAGS[i]}' with this command`);
  }
}
