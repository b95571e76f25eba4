/**
 * Target extensions: REJECT, DNAT, SNAT, MASQUERADE, REDIRECT, MARK, LOG, CT and
 * NOTRACK (libxt_*.c syntax, kernel semantics). ACCEPT, DROP, RETURN and jumps to
 * chains are the standard target, handled by the rule itself.
 */
import { ParameterProblem } from './errors.js';
import {
  TargetExt,
  T_ACCEPT,
  T_CONTINUE,
  T_DROP,
  T_REJECT,
  hex,
  parseMarkMask,
  parseUint32,
  type CheckCtx,
  type EvalEnv,
  type Opt,
  type ParseCtx,
  type TargetFn,
} from './ext.js';
import { formatLogLine, LOG_IPOPT, LOG_MACDECODE, LOG_TCPOPT, LOG_TCPSEQ, LOG_UID } from './log.js';
import { serviceToPort } from './netdb.js';
import { Hook, type NatRequest, type RejectWith } from './packet-meta.js';
import { dottedQuad, ipToString, saveString, strtoulPrefix, strtoui } from './util.js';

const H = (h: number) => 1 << h;

/* ------------------------------------------------------------------ REJECT */

const REJECT_TABLE: ReadonlyArray<[RejectWith, string]> = [
  ['icmp-net-unreachable', 'net-unreach'],
  ['icmp-host-unreachable', 'host-unreach'],
  ['icmp-proto-unreachable', 'proto-unreach'],
  ['icmp-port-unreachable', 'port-unreach'],
  ['icmp-net-prohibited', 'net-prohib'],
  ['icmp-host-prohibited', 'host-prohib'],
  ['tcp-reset', 'tcp-rst'],
  ['icmp-admin-prohibited', 'admin-prohib'],
];

const REJECT_TARGET_OPTS: readonly Opt[] = [{ name: 'reject-with', id: 0, arg: true }];

export class RejectTarget extends TargetExt {
  readonly name = 'REJECT';
  readonly opts: readonly Opt[] = REJECT_TARGET_OPTS;
  with: RejectWith = 'icmp-port-unreachable';

  parse(_id: number, arg: string): void {
    const a = arg.toLowerCase();
    const e = REJECT_TABLE.find(([n, alias]) => n.startsWith(a) || alias.startsWith(a));
    if (!e) throw new ParameterProblem(`unknown reject type "${arg}"`);
    this.with = e[0];
  }
  save(): string {
    return ` --reject-with ${this.with}`;
  }
  print(): string {
    return ` reject-with ${this.with}`;
  }
  check(c: CheckCtx): boolean {
    if (c.table !== 'filter') return false;
    if (c.hookMask & ~(H(Hook.INPUT) | H(Hook.FORWARD) | H(Hook.OUTPUT))) return false;
    if (this.with === 'tcp-reset' && (c.proto !== 6 || c.invProto)) return false;
    return true;
  }
  compile(): TargetFn {
    const w = this.with;
    return (_m, r) => {
      r.rejectWith = w;
      return T_REJECT;
    };
  }
}

/* ------------------------------------------------------------------ NAT */

interface NatRange {
  mapIps: boolean;
  minAddr: number;
  maxAddr: number;
  protoSpecified: boolean;
  minPort: number;
  maxPort: number;
  /** NF_NAT_RANGE_PROTO_OFFSET (DNAT "a-b/base") */
  basePort: number;
  random: boolean;
  randomFully: boolean;
  persistent: boolean;
}

function emptyRange(): NatRange {
  return {
    mapIps: false,
    minAddr: 0,
    maxAddr: 0,
    protoSpecified: false,
    minPort: 0,
    maxPort: 0,
    basePort: -1,
    random: false,
    randomFully: false,
    persistent: false,
  };
}

function portOk(proto: number): boolean {
  return proto === 6 || proto === 17 || proto === 132 || proto === 33 || proto === 1;
}

/** libxt_NAT parse_ports */
function parseNatPorts(arg: string, ok: boolean, r: NatRange, allowOffset: boolean): void {
  if (!ok) throw new ParameterProblem('Need TCP, UDP, SCTP or DCCP with port specification');
  r.protoSpecified = true;
  let port: number;
  let rest: string;
  const p = strtoulPrefix(arg);
  if (p && p.value <= 65535) {
    port = p.value;
    rest = arg.slice(p.end);
  } else {
    port = serviceToPort(arg);
    if (port < 0) throw new ParameterProblem(`Port \`${arg}' not valid`);
    rest = '';
  }
  if (rest === '') {
    r.minPort = r.maxPort = port;
    return;
  }
  if (rest[0] === ':') throw new ParameterProblem('Invalid port:port syntax - use dash');
  if (rest[0] !== '-') throw new ParameterProblem(`Garbage after port value: \`${rest}'`);
  const a2 = rest.slice(1);
  const q = strtoulPrefix(a2);
  if (!q || q.value > 65535) throw new ParameterProblem(`Port \`${a2}' not valid`);
  if (q.value < port) throw new ParameterProblem(`Port range \`${a2}' funky`);
  r.minPort = port;
  r.maxPort = q.value;
  const tail = a2.slice(q.end);
  if (tail === '') return;
  if (tail[0] !== '/' || !allowOffset)
    throw new ParameterProblem(`Garbage after port range: \`${tail}'`);
  const base = strtoui(tail.slice(1), 1, 65535) ?? serviceToPort(tail.slice(1));
  if (base < 0) throw new ParameterProblem(`Port \`${tail.slice(1)}' not valid`);
  r.basePort = base;
}

/** libxt_NAT parse_to: [ip[-ip]][:port[-port]] */
function parseTo(arg: string, ok: boolean, r: NatRange, allowOffset: boolean): void {
  if (arg.includes('[')) throw new ParameterProblem('Invalid address format');
  let colon = arg.indexOf(':');
  if (colon >= 0 && arg.indexOf(':', colon + 1) >= 0) colon = -1;
  let ipPart = arg;
  if (colon >= 0) {
    parseNatPorts(arg.slice(colon + 1), ok, r, allowOffset);
    if (colon === 0) return;
    ipPart = arg.slice(0, colon);
  }
  r.mapIps = true;
  const dash = ipPart.indexOf('-');
  const a = dash >= 0 ? ipPart.slice(0, dash) : ipPart;
  const min = inetPton(a);
  if (min === null) throw new ParameterProblem(`Bad IP address "${a}"`);
  r.minAddr = r.maxAddr = min;
  if (dash >= 0) {
    const b = ipPart.slice(dash + 1);
    const max = inetPton(b);
    if (max === null) throw new ParameterProblem(`Bad IP address "${b}"`);
    r.maxAddr = max;
  }
}

/** inet_pton(AF_INET): exactly four decimal parts. */
function inetPton(s: string): number | null {
  const a = dottedQuad(s);
  return a < 0 ? null : a;
}

function sprintRange(r: NatRange): string {
  let s = '';
  if (r.mapIps) {
    s += ipToString(r.minAddr);
    if (r.minAddr !== r.maxAddr) s += `-${ipToString(r.maxAddr)}`;
  }
  if (r.protoSpecified) {
    s += `:${r.minPort}`;
    if (r.maxPort !== r.minPort) s += `-${r.maxPort}`;
    if (r.basePort >= 0) s += `/${r.basePort}`;
  }
  return s;
}

function natPrint(r: NatRange, rangeOpt: string, flagPfx: string, skipColon: boolean): string {
  let s = '';
  let range = sprintRange(r);
  if (range.length) {
    if (range[0] === ':' && skipColon) range = range.slice(1);
    s += ` ${rangeOpt}${range}`;
  }
  if (r.random) s += ` ${flagPfx}random`;
  if (r.randomFully) s += ` ${flagPfx}random-fully`;
  if (r.persistent) s += ` ${flagPfx}persistent`;
  return s;
}

abstract class NatTarget extends TargetExt {
  range = emptyRange();
  protected abstract readonly kind: NatRequest['kind'];
  protected abstract readonly printOpt: string;
  protected abstract readonly saveOpt: string;
  protected readonly skipColon: boolean = false;
  protected abstract readonly hooks: number;

  parse(id: number, arg: string, _invert: boolean, ctx: ParseCtx): void {
    const ok = portOk(ctx.proto);
    switch (id) {
      case 0:
        parseTo(arg, ok, this.range, this.kind === 'DNAT');
        break;
      case 1:
        parseNatPorts(arg, ok, this.range, false);
        break;
      case 2:
        this.range.random = true;
        break;
      case 3:
        this.range.randomFully = true;
        break;
      case 4:
        this.range.persistent = true;
        break;
    }
  }

  save(): string {
    return natPrint(this.range, this.saveOpt, '--', this.skipColon);
  }
  print(): string {
    return natPrint(this.range, this.printOpt, '', this.skipColon);
  }
  check(c: CheckCtx): boolean {
    return c.table === 'nat' && (c.hookMask & ~this.hooks) === 0;
  }

  natRequest(): NatRequest | null {
    const r = this.range;
    if ((this.kind !== 'DNAT' && this.kind !== 'SNAT') || !r.mapIps) return null;
    return Object.freeze({
      kind: this.kind,
      minAddr: r.minAddr,
      maxAddr: r.maxAddr,
      minPort: r.protoSpecified ? r.minPort : 0,
      maxPort: r.protoSpecified ? r.maxPort : 0,
      random: r.random,
      randomFully: r.randomFully,
      persistent: r.persistent,
    });
  }

  /** The NatRequest for a packet (address fields may depend on interfaces). */
  compile(env: EvalEnv): TargetFn {
    const r = this.range;
    const kind = this.kind;
    const req: NatRequest = {
      kind,
      minAddr: r.mapIps ? r.minAddr : 0,
      maxAddr: r.mapIps ? r.maxAddr : 0,
      minPort: r.protoSpecified ? r.minPort : 0,
      maxPort: r.protoSpecified ? r.maxPort : 0,
      random: r.random,
      randomFully: r.randomFully,
      persistent: r.persistent,
    };
    const a = env.addressing;
    if (kind === 'MASQUERADE') {
      return (m, res) => {
        const addr = a.interfaceAddress(m.outIf);
        if (addr === 0) return T_DROP;
        res.nat = { ...req, minAddr: addr, maxAddr: addr };
        return T_ACCEPT;
      };
    }
    if (kind === 'REDIRECT') {
      return (m, res) => {
        let addr: number;
        if (m.hook === Hook.OUTPUT) addr = 0x7f000001;
        else {
          addr = a.interfaceAddress(m.inIf);
          if (addr === 0) return T_DROP;
        }
        res.nat = { ...req, minAddr: addr, maxAddr: addr };
        return T_ACCEPT;
      };
    }
    if (!r.mapIps) {
      // ports only: the address stays what it is
      return (m, res) => {
        const addr = kind === 'DNAT' ? m.dst : m.src;
        res.nat = { ...req, minAddr: addr, maxAddr: addr };
        return T_ACCEPT;
      };
    }
    return (_m, res) => {
      res.nat = { ...req };
      return T_ACCEPT;
    };
  }
}

const DNAT_TARGET_OPTS: readonly Opt[] = [
  { name: 'to-destination', id: 0, arg: true, mand: true },
  { name: 'random', id: 2, arg: false },
  { name: 'persistent', id: 4, arg: false },
];

/** Its constant properties are getters: a rule set has one DNAT target per endpoint. */
export class DnatTarget extends NatTarget {
  get name(): string {
    return 'DNAT';
  }
  get opts(): readonly Opt[] {
    return DNAT_TARGET_OPTS;
  }
  protected get kind(): 'DNAT' {
    return 'DNAT';
  }
  protected get printOpt(): string {
    return 'to:';
  }
  protected get saveOpt(): string {
    return '--to-destination ';
  }
  protected get hooks(): number {
    return DNAT_HOOKS;
  }
}
const DNAT_HOOKS = H(Hook.PREROUTING) | H(Hook.OUTPUT);

const SNAT_TARGET_OPTS: readonly Opt[] = [
  { name: 'to-source', id: 0, arg: true, mand: true },
  { name: 'random', id: 2, arg: false },
  { name: 'random-fully', id: 3, arg: false },
  { name: 'persistent', id: 4, arg: false },
];

export class SnatTarget extends NatTarget {
  readonly name = 'SNAT';
  readonly opts: readonly Opt[] = SNAT_TARGET_OPTS;
  protected readonly kind = 'SNAT' as const;
  protected readonly printOpt = 'to:';
  protected readonly saveOpt = '--to-source ';
  protected readonly hooks = H(Hook.POSTROUTING) | H(Hook.INPUT);
}

const MASQUERADE_TARGET_OPTS: readonly Opt[] = [
  { name: 'to-ports', id: 1, arg: true },
  { name: 'random', id: 2, arg: false },
  { name: 'random-fully', id: 3, arg: false },
];

export class MasqueradeTarget extends NatTarget {
  readonly name = 'MASQUERADE';
  readonly opts: readonly Opt[] = MASQUERADE_TARGET_OPTS;
  protected readonly kind = 'MASQUERADE' as const;
  protected readonly printOpt = 'masq ports: ';
  protected readonly saveOpt = '--to-ports ';
  protected readonly skipColon = true;
  protected readonly hooks = H(Hook.POSTROUTING);
}

const REDIRECT_TARGET_OPTS: readonly Opt[] = [
  { name: 'to-ports', id: 1, arg: true },
  { name: 'random', id: 2, arg: false },
];

export class RedirectTarget extends NatTarget {
  readonly name = 'REDIRECT';
  readonly opts: readonly Opt[] = REDIRECT_TARGET_OPTS;
  protected readonly kind = 'REDIRECT' as const;
  protected readonly printOpt = 'redir ports ';
  protected readonly saveOpt = '--to-ports ';
  protected readonly skipColon = true;
  protected readonly hooks = H(Hook.PREROUTING) | H(Hook.OUTPUT);
}

/* ------------------------------------------------------------------ MARK */

const MARK_TARGET_OPTS: readonly Opt[] = [
  { name: 'set-xmark', id: 0, arg: true, excl: 31 },
  { name: 'set-mark', id: 1, arg: true, excl: 31 },
  { name: 'and-mark', id: 2, arg: true, excl: 31 },
  { name: 'or-mark', id: 3, arg: true, excl: 31 },
  { name: 'xor-mark', id: 4, arg: true, excl: 31 },
];

export class MarkTarget extends TargetExt {
  readonly name = 'MARK';
  readonly opts: readonly Opt[] = MARK_TARGET_OPTS;
  mark = 0;
  mask = 0;

  parse(id: number, arg: string): void {
    const name = this.optName(id);
    if (id === 0 || id === 1) {
      const r = parseMarkMask('MARK', name, arg);
      this.mark = r.mark;
      this.mask = id === 0 ? r.mask : (r.mark | r.mask) >>> 0;
      return;
    }
    const v = parseUint32('MARK', name, arg);
    if (id === 2) {
      this.mark = 0;
      this.mask = ~v >>> 0;
    } else if (id === 3) {
      this.mark = this.mask = v;
    } else {
      this.mark = v;
      this.mask = 0;
    }
  }
  fcheck(): void {
    if (this.xflags === 0) {
      throw new ParameterProblem(
        'MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required',
      );
    }
  }
  save(): string {
    return ` --set-xmark 0x${hex(this.mark)}/0x${hex(this.mask)}`;
  }
  print(): string {
    if (this.mark === 0) return ` MARK and 0x${hex(~this.mask)}`;
    if (this.mark === this.mask) return ` MARK or 0x${hex(this.mark)}`;
    if (this.mask === 0) return ` MARK xor 0x${hex(this.mark)}`;
    if (this.mask === 0xffffffff) return ` MARK set 0x${hex(this.mark)}`;
    return ` MARK xset 0x${hex(this.mark)}/0x${hex(this.mask)}`;
  }
  compile(): TargetFn {
    const mark = this.mark;
    const nmask = ~this.mask;
    return (m) => {
      m.mark = ((m.mark & nmask) ^ mark) >>> 0;
      return T_CONTINUE;
    };
  }
}

/* ------------------------------------------------------------------ LOG */

const LEVEL_NAMES: Record<string, number> = {
  alert: 1,
  crit: 2,
  debug: 7,
  emerg: 0,
  error: 3,
  info: 6,
  notice: 5,
  panic: 0,
  warning: 4,
};
/** glibc prioritynames order: the first name of a level is printed. */
const PRIORITY_NAMES: ReadonlyArray<[string, number]> = [
  ['alert', 1],
  ['crit', 2],
  ['debug', 7],
  ['emerg', 0],
  ['err', 3],
  ['error', 3],
  ['info', 6],
  ['notice', 5],
  ['panic', 0],
  ['warn', 4],
  ['warning', 4],
];

const LOG_TARGET_OPTS: readonly Opt[] = [
  { name: 'log-level', id: 6, arg: true },
  { name: 'log-prefix', id: 7, arg: true },
  { name: 'log-tcp-sequence', id: 0, arg: false },
  { name: 'log-tcp-options', id: 1, arg: false },
  { name: 'log-ip-options', id: 2, arg: false },
  { name: 'log-uid', id: 3, arg: false },
  { name: 'log-macdecode', id: 5, arg: false },
];

export class LogTarget extends TargetExt {
  readonly name = 'LOG';
  readonly opts: readonly Opt[] = LOG_TARGET_OPTS;
  level = 4;
  prefix = '';
  logflags = 0;

  parse(id: number, arg: string): void {
    switch (id) {
      case 6: {
        const n = strtoui(arg, 0, 7);
        if (n !== null) this.level = n;
        else {
          const l = LEVEL_NAMES[arg];
          if (l === undefined) throw new ParameterProblem(`log level "${arg}" unknown\n`);
          this.level = l;
        }
        break;
      }
      case 7:
        if (arg.length < 1)
          throw new ParameterProblem('Argument must have a minimum length of 1 characters\n');
        if (arg.includes('\n')) throw new ParameterProblem('Newlines not allowed in --log-prefix');
        this.prefix = arg.slice(0, 29);
        break;
      default:
        this.logflags |= 1 << id;
    }
  }
  save(): string {
    let s = '';
    if (this.prefix !== '') s += ` --log-prefix${saveString(this.prefix)}`;
    if (this.level !== 4) s += ` --log-level ${this.level}`;
    if (this.logflags & LOG_TCPSEQ) s += ' --log-tcp-sequence';
    if (this.logflags & LOG_TCPOPT) s += ' --log-tcp-options';
    if (this.logflags & LOG_IPOPT) s += ' --log-ip-options';
    if (this.logflags & LOG_UID) s += ' --log-uid';
    if (this.logflags & LOG_MACDECODE) s += ' --log-macdecode';
    return s;
  }
  print(numeric: boolean): string {
    let s = ' LOG';
    if (numeric) s += ` flags ${this.logflags} level ${this.level}`;
    else {
      const n = PRIORITY_NAMES.find(([, l]) => l === this.level);
      s += n ? ` level ${n[0]}` : ` UNKNOWN level ${this.level}`;
      if (this.logflags & LOG_TCPSEQ) s += ' tcp-sequence';
      if (this.logflags & LOG_TCPOPT) s += ' tcp-options';
      if (this.logflags & LOG_IPOPT) s += ' ip-options';
      if (this.logflags & LOG_UID) s += ' uid';
      if (this.logflags & LOG_MACDECODE) s += ' macdecode';
    }
    if (this.prefix !== '') s += ` prefix "${this.prefix}"`;
    return s;
  }
  compile(env: EvalEnv): TargetFn {
    const prefix = this.prefix;
    const flags = this.logflags;
    const level = this.level;
    return (m) => {
      env.log(formatLogLine(prefix, flags, m), level);
      return T_CONTINUE;
    };
  }
}

/* ------------------------------------------------------------------ CT, NOTRACK */

const CT_TARGET_OPTS: readonly Opt[] = [{ name: 'notrack', id: 0, arg: false }];

export class CtTarget extends TargetExt {
  readonly name: string = 'CT';
  readonly opts: readonly Opt[] = CT_TARGET_OPTS;
  notrack = false;

  parse(): void {
    this.notrack = true;
  }
  save(): string {
    return this.notrack ? ' --notrack' : '';
  }
  print(): string {
    return ` CT${this.notrack ? ' notrack' : ''}`;
  }
  check(c: CheckCtx): boolean {
    return c.table === 'raw';
  }
  compile(): TargetFn {
    const notrack = this.notrack;
    return (m) => {
      if (notrack) m.notrack = true;
      return T_CONTINUE;
    };
  }
}

const NOTRACK_TARGET_OPTS: readonly Opt[] = [];

export class NotrackTarget extends CtTarget {
  readonly name: string = 'NOTRACK';
  readonly opts: readonly Opt[] = NOTRACK_TARGET_OPTS;
  notrack = true;
  get listName(): string {
    return 'CT';
  }
  save(): string {
    return '';
  }
  print(): string {
    return ' NOTRACK';
  }
}

/** Target extensions by name (-j NAME). */
export const TARGETS: Record<string, () => TargetExt> = {
  REJECT: () => new RejectTarget(),
  DNAT: () => new DnatTarget(),
  SNAT: () => new SnatTarget(),
  MASQUERADE: () => new MasqueradeTarget(),
  REDIRECT: () => new RedirectTarget(),
  MARK: () => new MarkTarget(),
  LOG: () => new LogTarget(),
  CT: () => new CtTarget(),
  NOTRACK: () => new NotrackTarget(),
};

/**
 * Target extensions a Debian iptables 1.8.9 installation knows: chain names may not
 * clash with them, and the ones not implemented here are refused as iptables refuses
 * an extension whose library is missing.
 */
export const KNOWN_TARGET_NAMES = new Set([
  'AUDIT',
  'CHECKSUM',
  'CLASSIFY',
  'CLUSTERIP',
  'CONNMARK',
  'CONNSECMARK',
  'CT',
  'DNAT',
  'DSCP',
  'ECN',
  'HMARK',
  'IDLETIMER',
  'LED',
  'LOG',
  'MARK',
  'MASQUERADE',
  'NETMAP',
  'NFLOG',
  'NFQUEUE',
  'NOTRACK',
  'RATEEST',
  'REDIRECT',
  'REJECT',
  'SECMARK',
  'SET',
  'SNAT',
  'SYNPROXY',
  'TCPMSS',
  'TCPOPTSTRIP',
  'TEE',
  'TOS',
  'TPROXY',
  'TRACE',
  'TTL',
  'ULOG',
  'ACCEPT',
  'DROP',
  'RETURN',
  'QUEUE',
  'standard',
]);
