/**
 * Match extensions: tcp, udp, icmp, multiport, comment, conntrack, state, mark,
 * statistic, recent, addrtype, set, nfacct. Each follows its libxt_*.c for option
 * parsing, saving and printing, and its net/netfilter/xt_*.c for matching.
 */
import { ParameterProblem } from './errors.js';
import {
  Ext,
  MatchExt,
  markMaskString,
  parseMarkMask,
  parseUint32,
  type CheckCtx,
  type EvalEnv,
  type InlineMatch,
  type MatchFn,
  type Opt,
  type ParseCtx,
} from './ext.js';
import { portToService, serviceToPort } from './netdb.js';
import { CtState, CtStatus, Hook, type PacketMeta } from './packet-meta.js';
import {
  detached,
  fixed11,
  ipToName,
  ipToString,
  maskToListString,
  parseMask,
  resolveHost,
  saveString,
  strtoui,
} from './util.js';

const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_DCCP = 33;
const IPPROTO_SCTP = 132;
const IPPROTO_UDPLITE = 136;

/* ------------------------------------------------------------------ ports */

/** xtables_parse_port(port, proto): base-0 number or service name of that protocol. */
export function parsePort(s: string, proto: string): number {
  const n = strtoui(s, 0, 65535);
  if (n !== null) return n;
  const p = serviceToPort(s, proto);
  if (p >= 0) return p;
  throw new ParameterProblem(`invalid port/service \`${s}' specified`);
}

/** xtables_getportbyname (getaddrinfo service lookup): decimal or a service of any protocol. */
function getPortByName(s: string): number {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    return n <= 65535 ? n : -1;
  }
  return serviceToPort(s);
}

/** XTTYPE_PORTRC parsing (xtopt_parse_mport). */
function parsePortRange(ext: string, opt: string, arg: string): [number, number] {
  const r: [number, number] = [0, 65535];
  const parts = arg.split(':');
  if (parts.length > 2) {
    throw new ParameterProblem(`${ext}: Too many components for option "--${opt}" (max: 2)\n`);
  }
  // (iptables 1.8.9 does not reject a reversed range here; the rule then never matches)
  parts.forEach((p, i) => {
    if (p === '') return;
    const v = getPortByName(p);
    if (v < 0) throw new ParameterProblem(`Port "${p}" does not resolve to anything.\n`);
    r[i] = v;
  });
  if (parts.length === 1) r[1] = r[0];
  return r;
}

function printPort(port: number, numeric: boolean, proto: string): string {
  return (numeric ? null : portToService(port, proto)) ?? String(port);
}

/** The default port range (shared: parsing replaces it, never changes it). */
const ALL_PORTS: readonly [number, number] = Object.freeze([0, 65535] as const);

function skipPorts(min: number, max: number, inv: boolean): boolean {
  return min === 0 && max === 65535 && !inv;
}

function printPorts(
  name: string,
  min: number,
  max: number,
  inv: boolean,
  numeric: boolean,
  proto: string,
): string {
  if (skipPorts(min, max, inv)) return '';
  const i = inv ? '!' : '';
  if (min === max) return ` ${name}:${i}${printPort(min, numeric, proto)}`;
  return ` ${name}s:${i}${printPort(min, numeric, proto)}:${printPort(max, numeric, proto)}`;
}

function savePorts(opt: string, min: number, max: number, inv: boolean): string {
  if (skipPorts(min, max, inv)) return '';
  return `${inv ? ' !' : ''} --${opt} ${min === max ? min : `${min}:${max}`}`;
}

/* ------------------------------------------------------------------ tcp */

const TCP_FLAGS: ReadonlyArray<[string, number]> = [
  ['FIN', 0x01],
  ['SYN', 0x02],
  ['RST', 0x04],
  ['PSH', 0x08],
  ['ACK', 0x10],
  ['URG', 0x20],
  ['ALL', 0x3f],
  ['NONE', 0],
];

function parseTcpFlag(s: string): number {
  let r = 0;
  for (const f of s.split(',').filter((x) => x !== '')) {
    const e = TCP_FLAGS.find(([n]) => n.toLowerCase() === f.toLowerCase());
    if (!e) throw new ParameterProblem(`Unknown TCP flag \`${f}'`);
    r |= e[1];
  }
  return r;
}

function printTcpf(flags: number): string {
  const names: string[] = [];
  while (flags) {
    const e = TCP_FLAGS.find(([, f]) => flags & f)!;
    names.push(e[0]);
    flags &= ~e[1];
  }
  return names.length ? names.join(',') : 'NONE';
}

/** TCP option kinds present in the packet's TCP header (-m tcp --tcp-option). */
function tcpHasOption(m: PacketMeta, option: number): boolean {
  const ihl = (m.buf[m.ipOff]! & 0x0f) * 4;
  const th = m.ipOff + ihl;
  if (th + 20 > m.ipOff + m.ipLen) return false;
  const doff = (m.buf[th + 12]! >> 4) * 4;
  const end = Math.min(th + doff, m.ipOff + m.ipLen);
  for (let i = th + 20; i < end;) {
    const kind = m.buf[i]!;
    if (kind === option) return true;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = m.buf[i + 1] ?? 0;
    if (len < 2) break;
    i += len;
  }
  return false;
}

const TCP_MATCH_OPTS: readonly Opt[] = [
  { name: 'source-port', id: 1, arg: true },
  { name: 'sport', id: 1, arg: true },
  { name: 'destination-port', id: 2, arg: true },
  { name: 'dport', id: 2, arg: true },
  { name: 'syn', id: 3, arg: false },
  { name: 'tcp-flags', id: 4, arg: true },
  { name: 'tcp-option', id: 5, arg: true },
];

/**
 * The share key of a tcp or udp match: a plain match of one destination port (or of
 * none) is keyed by that port number, other inline ones by -1, the rest by their text.
 */
function portMatchShareKey(m: TcpMatch | UdpMatch): string | number {
  const d = m.exactDport();
  if (d >= 0 && skipPorts(m.spts[0], m.spts[1], m.invSpt)) return d;
  return m.inline() !== null ? -1 : m.save();
}

export class TcpMatch extends MatchExt {
  readonly name = 'tcp';
  get generic(): boolean {
    return false;
  }
  readonly opts: readonly Opt[] = TCP_MATCH_OPTS;
  spts: readonly [number, number] = ALL_PORTS;
  dpts: readonly [number, number] = ALL_PORTS;
  invSpt = false;
  invDpt = false;
  option = 0;
  invOption = false;
  flgMask = 0;
  flgCmp = 0;
  invFlags = false;
  private flags = 0;

  parse(id: number, arg: string, invert: boolean, ctx: ParseCtx): void {
    switch (id) {
      case 1:
        if (this.flags & 1) throw new ParameterProblem("Only one `--source-port' allowed");
        this.spts = parseTcpPorts(arg);
        this.invSpt = invert;
        this.flags |= 1;
        break;
      case 2:
        if (this.flags & 2) throw new ParameterProblem("Only one `--destination-port' allowed");
        this.dpts = parseTcpPorts(arg);
        this.invDpt = invert;
        this.flags |= 2;
        break;
      case 3:
      case 4: {
        if (this.flags & 4) {
          throw new ParameterProblem("Only one of `--syn' or `--tcp-flags'  allowed");
        }
        let mask = 'SYN,RST,ACK,FIN';
        let cmp = 'SYN';
        if (id === 4) {
          const next = ctx.peekArg();
          if (next === undefined || next[0] === '-' || next[0] === '!') {
            throw new ParameterProblem('--tcp-flags requires two args.');
          }
          mask = arg;
          cmp = ctx.takeArg();
        }
        this.flgMask = parseTcpFlag(mask);
        this.flgCmp = parseTcpFlag(cmp);
        this.invFlags = invert;
        this.flags |= 4;
        break;
      }
      case 5: {
        if (this.flags & 8) throw new ParameterProblem("Only one `--tcp-option' allowed");
        const v = strtoui(arg, 1, 255);
        if (v === null) throw new ParameterProblem(`Bad TCP option "${arg}"`);
        this.option = v;
        this.invOption = invert;
        this.flags |= 8;
        break;
      }
    }
  }

  save(): string {
    let s = savePorts('sport', this.spts[0], this.spts[1], this.invSpt);
    s += savePorts('dport', this.dpts[0], this.dpts[1], this.invDpt);
    if (this.option || this.invOption)
      s += `${this.invOption ? ' !' : ''} --tcp-option ${this.option}`;
    if (this.flgMask || this.invFlags) {
      s += `${this.invFlags ? ' !' : ''} --tcp-flags ${printTcpf(this.flgMask)} ${printTcpf(this.flgCmp)}`;
    }
    return s;
  }

  print(numeric: boolean): string {
    let s = ' tcp';
    s += printPorts('spt', this.spts[0], this.spts[1], this.invSpt, numeric, 'tcp');
    s += printPorts('dpt', this.dpts[0], this.dpts[1], this.invDpt, numeric, 'tcp');
    if (this.option || this.invOption) s += ` option=${this.invOption ? '!' : ''}${this.option}`;
    if (this.flgMask || this.invFlags) {
      s += ` flags:${this.invFlags ? '!' : ''}`;
      s += numeric
        ? `0x${hex2(this.flgMask)}/0x${hex2(this.flgCmp)}`
        : `${printTcpf(this.flgMask)}/${printTcpf(this.flgCmp)}`;
    }
    return s;
  }

  check(c: CheckCtx): boolean {
    return c.proto === IPPROTO_TCP && !c.invProto;
  }

  exactDport(): number {
    const plain =
      this.dpts[0] === this.dpts[1] &&
      !this.invDpt &&
      skipPorts(this.spts[0], this.spts[1], this.invSpt) &&
      !this.option &&
      !this.invOption &&
      !this.flgMask &&
      !this.invFlags;
    return plain ? this.dpts[0] : -1;
  }

  get shareable(): boolean {
    return true;
  }
  shareKey(): string | number {
    return portMatchShareKey(this);
  }

  inline(): InlineMatch | null {
    const plain =
      skipPorts(this.spts[0], this.spts[1], this.invSpt) &&
      skipPorts(this.dpts[0], this.dpts[1], this.invDpt) &&
      !this.option &&
      !this.invOption &&
      !this.flgMask &&
      !this.invFlags;
    return plain ? { kind: 'l4' } : null;
  }

  compile(): MatchFn {
    const [s0, s1] = this.spts;
    const [d0, d1] = this.dpts;
    const is = this.invSpt;
    const id = this.invDpt;
    const mask = this.flgMask;
    const cmp = this.flgCmp;
    const iflg = this.invFlags;
    const opt = this.option;
    const iopt = this.invOption;
    const checkFlags = mask !== 0 || iflg;
    return (m) => {
      if (m.fragOff !== 0 || m.sport < 0) return false;
      if ((m.sport >= s0 && m.sport <= s1) === is) return false;
      if ((m.dport >= d0 && m.dport <= d1) === id) return false;
      if (checkFlags && ((m.tcpFlags & mask) === cmp) === iflg) return false;
      if ((opt || iopt) && tcpHasOption(m, opt) === iopt) return false;
      return true;
    };
  }
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}

function parseTcpPorts(s: string): [number, number] {
  const c = s.indexOf(':');
  if (c < 0) {
    const p = parsePort(s, 'tcp');
    return [p, p];
  }
  const a = s.slice(0, c);
  const b = s.slice(c + 1);
  const r: [number, number] = [a ? parsePort(a, 'tcp') : 0, b ? parsePort(b, 'tcp') : 0xffff];
  if (r[0] > r[1]) throw new ParameterProblem('invalid portrange (min > max)');
  return r;
}

/* ------------------------------------------------------------------ udp */

const UDP_MATCH_OPTS: readonly Opt[] = [
  { name: 'source-port', id: 0, arg: true, invert: true },
  { name: 'sport', id: 0, arg: true, invert: true },
  { name: 'destination-port', id: 1, arg: true, invert: true },
  { name: 'dport', id: 1, arg: true, invert: true },
];

export class UdpMatch extends MatchExt {
  readonly name = 'udp';
  readonly opts: readonly Opt[] = UDP_MATCH_OPTS;
  spts: readonly [number, number] = ALL_PORTS;
  dpts: readonly [number, number] = ALL_PORTS;
  invSpt = false;
  invDpt = false;

  parse(id: number, arg: string, invert: boolean): void {
    const r = parsePortRange('udp', this.optName(id), arg);
    if (id === 0) {
      this.spts = r;
      this.invSpt = invert;
    } else {
      this.dpts = r;
      this.invDpt = invert;
    }
  }

  save(): string {
    return (
      savePorts('sport', this.spts[0], this.spts[1], this.invSpt) +
      savePorts('dport', this.dpts[0], this.dpts[1], this.invDpt)
    );
  }

  print(numeric: boolean): string {
    return (
      ' udp' +
      printPorts('spt', this.spts[0], this.spts[1], this.invSpt, numeric, 'udp') +
      printPorts('dpt', this.dpts[0], this.dpts[1], this.invDpt, numeric, 'udp')
    );
  }

  check(c: CheckCtx): boolean {
    return c.proto === IPPROTO_UDP && !c.invProto;
  }

  exactDport(): number {
    return this.dpts[0] === this.dpts[1] &&
      !this.invDpt &&
      skipPorts(this.spts[0], this.spts[1], this.invSpt)
      ? this.dpts[0]
      : -1;
  }

  get shareable(): boolean {
    return true;
  }
  shareKey(): string | number {
    return portMatchShareKey(this);
  }

  inline(): InlineMatch | null {
    const plain =
      skipPorts(this.spts[0], this.spts[1], this.invSpt) &&
      skipPorts(this.dpts[0], this.dpts[1], this.invDpt);
    return plain ? { kind: 'l4' } : null;
  }

  compile(): MatchFn {
    const [s0, s1] = this.spts;
    const [d0, d1] = this.dpts;
    const is = this.invSpt;
    const id = this.invDpt;
    return (m) => {
      if (m.fragOff !== 0 || m.sport < 0) return false;
      if ((m.sport >= s0 && m.sport <= s1) === is) return false;
      return (m.dport >= d0 && m.dport <= d1) !== id;
    };
  }
}

/* ------------------------------------------------------------------ icmp */

const ICMP_CODES: ReadonlyArray<[string, number, number, number]> = [
  ['any', 0xff, 0, 0xff],
  ['echo-reply', 0, 0, 0xff],
  ['pong', 0, 0, 0xff],
  ['destination-unreachable', 3, 0, 0xff],
  ['network-unreachable', 3, 0, 0],
  ['host-unreachable', 3, 1, 1],
  ['protocol-unreachable', 3, 2, 2],
  ['port-unreachable', 3, 3, 3],
  ['fragmentation-needed', 3, 4, 4],
  ['source-route-failed', 3, 5, 5],
  ['network-unknown', 3, 6, 6],
  ['host-unknown', 3, 7, 7],
  ['network-prohibited', 3, 9, 9],
  ['host-prohibited', 3, 10, 10],
  ['TOS-network-unreachable', 3, 11, 11],
  ['TOS-host-unreachable', 3, 12, 12],
  ['communication-prohibited', 3, 13, 13],
  ['host-precedence-violation', 3, 14, 14],
  ['precedence-cutoff', 3, 15, 15],
  ['source-quench', 4, 0, 0xff],
  ['redirect', 5, 0, 0xff],
  ['network-redirect', 5, 0, 0],
  ['host-redirect', 5, 1, 1],
  ['TOS-network-redirect', 5, 2, 2],
  ['TOS-host-redirect', 5, 3, 3],
  ['echo-request', 8, 0, 0xff],
  ['ping', 8, 0, 0xff],
  ['router-advertisement', 9, 0, 0xff],
  ['router-solicitation', 10, 0, 0xff],
  ['time-exceeded', 11, 0, 0xff],
  ['ttl-exceeded', 11, 0, 0xff],
  ['ttl-zero-during-transit', 11, 0, 0],
  ['ttl-zero-during-reassembly', 11, 1, 1],
  ['parameter-problem', 12, 0, 0xff],
  ['ip-header-bad', 12, 0, 0],
  ['required-option-missing', 12, 1, 1],
  ['timestamp-request', 13, 0, 0xff],
  ['timestamp-reply', 14, 0, 0xff],
  ['address-mask-request', 17, 0, 0xff],
  ['address-mask-reply', 18, 0, 0xff],
];

/** parse_range: "n" or "n:m", base 0, 0–255; returns values and the rest. */
function parseRange255(s: string): { lo: number; hi: number; rest: string } | null {
  const m = /^([^:/]*)(?::([^/]*))?(.*)$/.exec(s)!;
  const lo = strtoui(m[1]!, 0, 255);
  if (lo === null) return null;
  let hi = lo;
  if (m[2] !== undefined) {
    const h = strtoui(m[2], 0, 255);
    if (h === null) return null;
    hi = h;
  }
  return { lo, hi, rest: m[3]! };
}

const ICMP_MATCH_OPTS: readonly Opt[] = [
  { name: 'icmp-type', id: 0, arg: true, mand: true, invert: true },
];

export class IcmpMatch extends MatchExt {
  readonly name = 'icmp';
  readonly opts: readonly Opt[] = ICMP_MATCH_OPTS;
  type = 0xff;
  code: [number, number] = [0, 0xff];
  invert = false;

  parse(_id: number, arg: string, invert: boolean): void {
    let match = -1;
    ICMP_CODES.forEach(([name], i) => {
      if (!name.toLowerCase().startsWith(arg.toLowerCase())) return;
      if (match >= 0) {
        throw new ParameterProblem(
          `Ambiguous ICMP type \`${arg}': \`${ICMP_CODES[match]![0]}' or \`${name}'?`,
        );
      }
      match = i;
    });
    if (match >= 0) {
      const [, t, lo, hi] = ICMP_CODES[match]!;
      this.type = t;
      this.code = [lo, hi];
    } else {
      const r = parseRange255(arg);
      if (!r) throw new ParameterProblem(`Unknown ICMP type \`${arg}'`);
      if (r.lo !== r.hi) throw new ParameterProblem('ICMP type range not supported');
      this.type = r.lo;
      if (r.rest === '') this.code = [0, 255];
      else if (r.rest[0] === '/') {
        const c = parseRange255(r.rest.slice(1));
        if (!c || c.rest !== '')
          throw new ParameterProblem(`Unknown ICMP code \`${r.rest.slice(1)}'`);
        this.code = [c.lo, c.hi];
      } else throw new ParameterProblem(`Unknown ICMP type \`${arg}'`);
    }
    this.invert = invert;
  }

  save(): string {
    let s = this.invert ? ' !' : '';
    if (this.type === 0xff && this.code[0] === 0 && this.code[1] === 0xff)
      return `${s} --icmp-type any`;
    s += ` --icmp-type ${this.type}`;
    if (this.code[0] !== 0 || this.code[1] !== 0xff) s += `/${this.code[0]}`;
    return s;
  }

  print(numeric: boolean): string {
    let s = ' icmp';
    if (!numeric) {
      const e = ICMP_CODES.find(
        ([, t, lo, hi]) => t === this.type && lo === this.code[0] && hi === this.code[1],
      );
      if (e) return `${s} ${this.invert ? '!' : ''}${e[0]}`;
    }
    if (this.invert) s += ' !';
    s += `type ${this.type}`;
    if (this.code[0] === this.code[1]) s += ` code ${this.code[0]}`;
    else if (this.code[0] !== 0 || this.code[1] !== 0xff)
      s += ` codes ${this.code[0]}-${this.code[1]}`;
    return s;
  }

  check(c: CheckCtx): boolean {
    return c.proto === IPPROTO_ICMP && !c.invProto;
  }

  compile(): MatchFn {
    const t = this.type;
    const [lo, hi] = this.code;
    const inv = this.invert;
    return (m) => {
      if (m.fragOff !== 0 || m.icmpType < 0) return false;
      return (t === 0xff || (m.icmpType === t && m.icmpCode >= lo && m.icmpCode <= hi)) !== inv;
    };
  }
}

/* ------------------------------------------------------------------ multiport */

const MP_SRC = 1;
const MP_DST = 2;
const MP_EITHER = 3;

function multiportProtoName(p: number): string | null {
  return (
    (
      {
        [IPPROTO_TCP]: 'tcp',
        [IPPROTO_UDP]: 'udp',
        [IPPROTO_UDPLITE]: 'udplite',
        [IPPROTO_SCTP]: 'sctp',
        [IPPROTO_DCCP]: 'dccp',
      } as Record<number, string>
    )[p] ?? null
  );
}

const MULTIPORT_MATCH_OPTS: readonly Opt[] = [
  { name: 'source-ports', id: 0, arg: true, excl: 7, invert: true },
  { name: 'sports', id: 0, arg: true, excl: 7, invert: true },
  { name: 'destination-ports', id: 1, arg: true, excl: 7, invert: true },
  { name: 'dports', id: 1, arg: true, excl: 7, invert: true },
  { name: 'ports', id: 2, arg: true, excl: 7, invert: true },
];

export class MultiportMatch extends MatchExt {
  readonly name = 'multiport';
  readonly opts: readonly Opt[] = MULTIPORT_MATCH_OPTS;
  flags = 0;
  ports: number[] = [];
  pflags: boolean[] = [];
  invert = false;
  private protoName = 'tcp';

  parse(id: number, arg: string, invert: boolean, ctx: ParseCtx): void {
    if (ctx.invProto) {
      throw new ParameterProblem('multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP');
    }
    const pn = multiportProtoName(ctx.proto);
    if (pn === null) {
      throw new ParameterProblem(
        ctx.proto === 0
          ? "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'"
          : 'multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP',
      );
    }
    this.protoName = pn;
    const items = arg.split(',');
    const ports: number[] = [];
    const pflags: boolean[] = [];
    for (const item of items) {
      if (ports.length >= 15) throw new ParameterProblem('too many ports specified');
      const c = item.indexOf(':');
      if (c >= 0) {
        if (ports.length === 14) throw new ParameterProblem('too many ports specified');
        const a = parsePort(item.slice(0, c), pn);
        const b = parsePort(item.slice(c + 1), pn);
        if (a >= b) throw new ParameterProblem('invalid portrange specified');
        ports.push(a, b);
        pflags.push(true, false);
      } else {
        ports.push(parsePort(item, pn));
        pflags.push(false);
      }
    }
    this.ports = ports;
    this.pflags = pflags;
    this.flags = id === 0 ? MP_SRC : id === 1 ? MP_DST : MP_EITHER;
    this.invert = invert;
  }

  fcheck(): void {
    if (this.xflags === 0) throw new ParameterProblem('multiport expection an option');
  }

  private portList(numeric: boolean): string {
    let s = '';
    for (let i = 0; i < this.ports.length; i++) {
      s += (i ? ',' : '') + printPort(this.ports[i]!, numeric, this.protoName);
      if (this.pflags[i]) s += ':' + printPort(this.ports[++i]!, numeric, this.protoName);
    }
    return s;
  }

  save(): string {
    const opt = this.flags === MP_SRC ? 'sports' : this.flags === MP_DST ? 'dports' : 'ports';
    return `${this.invert ? ' !' : ''} --${opt} ${this.portList(true)}`;
  }

  print(numeric: boolean): string {
    const opt = this.flags === MP_SRC ? 'sports ' : this.flags === MP_DST ? 'dports ' : 'ports ';
    return ` multiport ${opt}${this.invert ? ' !' : ''}${this.portList(numeric)}`;
  }

  check(c: CheckCtx): boolean {
    return multiportProtoName(c.proto) !== null && !c.invProto;
  }

  compile(): MatchFn {
    const ports = this.ports;
    const pflags = this.pflags;
    const flags = this.flags;
    const inv = this.invert;
    return (m) => {
      if (m.fragOff !== 0 || m.sport < 0) return false;
      const src = m.sport;
      const dst = m.dport;
      for (let i = 0; i < ports.length; i++) {
        const s = ports[i]!;
        if (pflags[i]) {
          const e = ports[++i]!;
          if (flags === MP_SRC && src >= s && src <= e) return !inv;
          if (flags === MP_DST && dst >= s && dst <= e) return !inv;
          if (flags === MP_EITHER && ((src >= s && src <= e) || (dst >= s && dst <= e)))
            return !inv;
        } else {
          if (flags === MP_SRC && src === s) return !inv;
          if (flags === MP_DST && dst === s) return !inv;
          if (flags === MP_EITHER && (src === s || dst === s)) return !inv;
        }
      }
      return inv;
    };
  }
}

/* ------------------------------------------------------------------ comment */

const COMMENT_MATCH_OPTS: readonly Opt[] = [{ name: 'comment', id: 0, arg: true, mand: true }];

export class CommentMatch extends MatchExt {
  readonly name = 'comment';
  readonly opts: readonly Opt[] = COMMENT_MATCH_OPTS;
  comment = '';

  get shareable(): boolean {
    return true;
  }

  parse(_id: number, arg: string): void {
    if (arg.length > 255) {
      throw new ParameterProblem('Argument must have a maximum length of 255 characters\n');
    }
    this.comment = arg;
  }
  shareKey(): string {
    return this.comment;
  }
  own(): void {
    this.comment = detached(this.comment);
  }
  save(): string {
    return ` --comment${saveString(this.comment)}`;
  }
  print(): string {
    return ` /* ${this.comment} */`;
  }
  get inert(): boolean {
    return true;
  }
  compile(): MatchFn {
    return () => true;
  }
}

/* ------------------------------------------------------------------ conntrack, state */

/** Order and names as print_state prints them. */
const STATE_NAMES: ReadonlyArray<[string, number]> = [
  ['INVALID', CtState.INVALID],
  ['NEW', CtState.NEW],
  ['RELATED', CtState.RELATED],
  ['ESTABLISHED', CtState.ESTABLISHED],
  ['UNTRACKED', CtState.UNTRACKED],
  ['SNAT', CtState.SNAT],
  ['DNAT', CtState.DNAT],
];
/** Order conntrack_ps_state tests names in (prefix match, case-insensitive). */
const STATE_PARSE_ORDER = ['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED', 'SNAT', 'DNAT'];
const STATUS_NAMES: ReadonlyArray<[string, number]> = [
  ['EXPECTED', CtStatus.EXPECTED],
  ['SEEN_REPLY', CtStatus.SEEN_REPLY],
  ['ASSURED', CtStatus.ASSURED],
  ['CONFIRMED', CtStatus.CONFIRMED],
];

function parseList(
  arg: string,
  order: readonly string[],
  values: ReadonlyArray<[string, number]>,
  err: string,
  extra: Record<string, number> = {},
): number {
  let mask = 0;
  const items = arg.split(',');
  items.forEach((item, i) => {
    const rest = items.slice(i).join(',');
    if (item === '') throw new ParameterProblem(`${err} "${rest}"`);
    const up = item.toUpperCase();
    const name = [...Object.keys(extra), ...order].find((n) => n.startsWith(up));
    if (name === undefined) throw new ParameterProblem(`${err} "${rest}"`);
    mask |= extra[name] ?? values.find(([n]) => n === name)![1];
  });
  return mask;
}

function printStates(mask: number): string {
  const n = STATE_NAMES.filter(([, b]) => mask & b).map(([s]) => s);
  return n.length ? ` ${n.join(',')}` : '';
}

function printStatus(mask: number): string {
  const n = STATUS_NAMES.filter(([, b]) => mask & b).map(([s]) => s);
  return ` ${n.length ? n.join(',') : 'NONE'}`;
}

const CT_NONE = CtState.INVALID | CtState.UNTRACKED;

/** -m conntrack (revision 3). */
const CONNTRACK_MATCH_OPTS: readonly Opt[] = [
  { name: 'ctstate', id: 0, arg: true, invert: true },
  { name: 'ctproto', id: 1, arg: true, invert: true },
  { name: 'ctorigsrc', id: 2, arg: true, invert: true },
  { name: 'ctorigdst', id: 3, arg: true, invert: true },
  { name: 'ctreplsrc', id: 4, arg: true, invert: true },
  { name: 'ctrepldst', id: 5, arg: true, invert: true },
  { name: 'ctstatus', id: 6, arg: true, invert: true },
  { name: 'ctexpire', id: 7, arg: true, invert: true },
  { name: 'ctorigsrcport', id: 8, arg: true, invert: true },
  { name: 'ctorigdstport', id: 9, arg: true, invert: true },
  { name: 'ctreplsrcport', id: 10, arg: true, invert: true },
  { name: 'ctrepldstport', id: 11, arg: true, invert: true },
  { name: 'ctdir', id: 12, arg: true },
];

export class ConntrackMatch extends MatchExt {
  readonly name: string = 'conntrack';
  readonly opts: readonly Opt[] = CONNTRACK_MATCH_OPTS;
  stateMask = 0;
  statusMask = 0;
  l4proto = 0;
  addrs: Array<{ addr: number; mask: number } | null> = [null, null, null, null];
  portRanges: Array<[number, number] | null> = [null, null, null, null];
  expires: [number, number] = [0, 0];
  dirReply = false;
  /** Option ids given with '!'. */
  inv = 0;

  parse(id: number, arg: string, invert: boolean): void {
    if (invert) this.inv |= 1 << id;
    switch (id) {
      case 0:
        this.stateMask = parseList(arg, STATE_PARSE_ORDER, STATE_NAMES, 'Bad ctstate');
        break;
      case 1: {
        const p = parseProtocolArg(arg);
        if (p === 0) {
          throw new ParameterProblem(
            invert
              ? 'conntrack: condition would always match protocol'
              : 'conntrack: rule would never match protocol',
          );
        }
        this.l4proto = p;
        break;
      }
      case 2:
      case 3:
      case 4:
      case 5: {
        const slash = arg.lastIndexOf('/');
        const host = slash >= 0 ? arg.slice(0, slash) : arg;
        const mask = parseMask(slash >= 0 ? arg.slice(slash + 1) : undefined);
        const a = resolveHost(host);
        if (a === null) throw new ParameterProblem(`host/network \`${host}' not found`);
        this.addrs[id - 2] = { addr: (a & mask) >>> 0, mask };
        break;
      }
      case 6:
        this.statusMask = parseList(
          arg,
          ['NONE', 'EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED'],
          STATUS_NAMES,
          'Bad ctstatus',
          {
            NONE: 0,
          },
        );
        break;
      case 7: {
        const [a, b] = arg.split(':');
        const lo = strtoui(a ?? '', 0, 0xffffffff);
        const hi = b === undefined ? lo : strtoui(b, 0, 0xffffffff);
        if (lo === null || hi === null) {
          throw new ParameterProblem(
            `conntrack: bad value for option "--ctexpire", or out of range (0-4294967295).\n`,
          );
        }
        this.expires = [lo, hi];
        break;
      }
      case 8:
      case 9:
      case 10:
      case 11:
        this.portRanges[id - 8] = parsePortRange('conntrack', this.optName(id), arg);
        break;
      case 12:
        if (arg.toUpperCase() === 'ORIGINAL') this.dirReply = false;
        else if (arg.toUpperCase() === 'REPLY') this.dirReply = true;
        else throw new ParameterProblem(`conntrack: Bad value for "--ctdir" option: "${arg}"`);
        break;
    }
  }

  fcheck(): void {
    if (this.xflags === 0) throw new ParameterProblem('conntrack: At least one option is required');
  }

  protected stateKeyword(prefix: string): string {
    return `${prefix}ctstate`;
  }

  private dump(prefix: string, numeric: boolean): string {
    const has = (id: number) => (this.xflags & (1 << id)) !== 0;
    const neg = (id: number) => (this.inv & (1 << id) ? ' !' : '');
    let s = '';
    if (has(0)) s += `${neg(0)} ${this.stateKeyword(prefix)}${printStates(this.stateMask)}`;
    if (has(1)) s += `${neg(1)} ${prefix}ctproto ${this.l4proto}`;
    const an = ['ctorigsrc', 'ctorigdst', 'ctreplsrc', 'ctrepldst'];
    for (let i = 0; i < 4; i++) {
      const a = this.addrs[i];
      if (!has(2 + i) || !a) continue;
      s += `${neg(2 + i)} ${prefix}${an[i]}`;
      s +=
        !numeric && a.addr === 0
          ? ' anywhere'
          : ` ${numeric ? ipToString(a.addr) : ipToName(a.addr)}${maskToListString(a.mask)}`;
    }
    const pn = ['ctorigsrcport', 'ctorigdstport', 'ctreplsrcport', 'ctrepldstport'];
    for (let i = 0; i < 4; i++) {
      const r = this.portRanges[i];
      if (!has(8 + i) || !r) continue;
      s += `${neg(8 + i)} ${prefix}${pn[i]} ${r[0] === r[1] ? r[0] : `${r[0]}:${r[1]}`}`;
    }
    if (has(6)) s += `${neg(6)} ${prefix}ctstatus${printStatus(this.statusMask)}`;
    if (has(7)) {
      const [lo, hi] = this.expires;
      s += `${neg(7)} ${prefix}ctexpire ${lo === hi ? lo : `${lo}:${hi}`}`;
    }
    if (has(12)) s += ` ${prefix}ctdir ${this.dirReply ? 'REPLY' : 'ORIGINAL'}`;
    return s;
  }

  save(): string {
    return this.dump('--', true);
  }
  print(numeric: boolean): string {
    return this.dump('', numeric);
  }

  compile(env: EvalEnv): MatchFn {
    const has = (id: number) => (this.xflags & (1 << id)) !== 0;
    const isInv = (id: number) => (this.inv & (1 << id)) !== 0;
    const checkState = has(0);
    const stateMask = this.stateMask;
    const invState = isInv(0);
    const checkStatus = has(6);
    const statusMask = this.statusMask;
    const invStatus = isInv(6);
    const checkDir = has(12);
    const dirReply = this.dirReply;
    const needTuple =
      has(1) ||
      has(2) ||
      has(3) ||
      has(4) ||
      has(5) ||
      has(7) ||
      has(8) ||
      has(9) ||
      has(10) ||
      has(11);
    const tupleFn = env.conntrackTuple;
    const addrs = this.addrs;
    const ports = this.portRanges;
    const l4 = this.l4proto;
    const exp = this.expires;
    const inv = this.inv;
    return (m) => {
      const st = m.ctState === 0 ? CtState.INVALID : m.ctState;
      if (checkState && ((st & stateMask) !== 0) === invState) return false;
      if ((st & CT_NONE) !== 0) return checkState;
      if (checkDir && (m.ctDir === 1) !== dirReply) return false;
      if (needTuple) {
        const t = tupleFn ? tupleFn(m) : null;
        if (!t) return false;
        const bad = (id: number, ok: boolean) => has(id) && ok === ((inv & (1 << id)) !== 0);
        if (bad(1, t.proto === l4)) return false;
        const tuple = [t.origSrc, t.origDst, t.replSrc, t.replDst];
        for (let i = 0; i < 4; i++) {
          const a = addrs[i];
          if (a && bad(2 + i, (tuple[i]! & a.mask) >>> 0 === a.addr)) return false;
        }
        const tp = [t.origSport, t.origDport, t.replSport, t.replDport];
        for (let i = 0; i < 4; i++) {
          const r = ports[i];
          if (r && bad(8 + i, tp[i]! >= r[0] && tp[i]! <= r[1])) return false;
        }
        if (bad(7, t.expires >= exp[0] && t.expires <= exp[1])) return false;
      }
      if (checkStatus && ((m.ctStatus & statusMask) !== 0) === invStatus) return false;
      return true;
    };
  }
}

/** -m state --state (the conntrack match with the state alias). */
const STATE_MATCH_OPTS: readonly Opt[] = [
  { name: 'state', id: 0, arg: true, mand: true, invert: true },
];

export class StateMatch extends ConntrackMatch {
  readonly name: string = 'state';
  readonly opts: readonly Opt[] = STATE_MATCH_OPTS;

  parse(id: number, arg: string, invert: boolean): void {
    if (invert) this.inv |= 1;
    const bad = () => new ParameterProblem(`Bad state "${arg}"`);
    const items = arg.split(',');
    if (items[items.length - 1] === '' && items.length > 1) {
      throw new ParameterProblem(
        '"--state" requires a list of states with no spaces, e.g. ESTABLISHED,RELATED',
      );
    }
    let mask = 0;
    for (const item of items) {
      if (item === '') throw bad();
      const up = item.toUpperCase();
      const name = ['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED'].find((n) =>
        n.startsWith(up),
      );
      if (!name) throw bad();
      mask |= STATE_NAMES.find(([n]) => n === name)![1];
    }
    this.stateMask = mask;
    void id;
  }
  fcheck(): void {}
  protected stateKeyword(prefix: string): string {
    return `${prefix}state`;
  }
}

function parseProtocolArg(s: string): number {
  const n = strtoui(s, 0, 255);
  if (n !== null) return n;
  const known: Record<string, number> = {
    tcp: 6,
    udp: 17,
    icmp: 1,
    sctp: 132,
    udplite: 136,
    all: 0,
  };
  if (known[s] !== undefined) return known[s];
  throw new ParameterProblem(`unknown protocol "${s}" specified`);
}

/* ------------------------------------------------------------------ mark */

const MARK_MATCH_OPTS: readonly Opt[] = [
  { name: 'mark', id: 0, arg: true, mand: true, invert: true },
];

export class MarkMatch extends MatchExt {
  readonly name = 'mark';
  readonly opts: readonly Opt[] = MARK_MATCH_OPTS;
  mark = 0;
  mask = 0xffffffff;
  invert = false;

  parse(_id: number, arg: string, invert: boolean): void {
    const r = parseMarkMask('mark', 'mark', arg);
    this.mark = r.mark;
    this.mask = r.mask;
    this.invert = invert;
  }
  save(): string {
    return `${this.invert ? ' !' : ''} --mark${markMaskString(this.mark, this.mask)}`;
  }
  print(): string {
    return ` mark match${this.invert ? ' !' : ''}${markMaskString(this.mark, this.mask)}`;
  }
  compile(): MatchFn {
    const mark = this.mark;
    const mask = this.mask;
    const inv = this.invert;
    return (m) => ((m.mark & mask) >>> 0 === mark) !== inv;
  }
}

/* ------------------------------------------------------------------ statistic */

const STATISTIC_MATCH_OPTS: readonly Opt[] = [
  { name: 'mode', id: 0, arg: true, mand: true },
  { name: 'probability', id: 1, arg: true, invert: true, excl: (1 << 2) | (1 << 3) },
  { name: 'every', id: 2, arg: true, invert: true, excl: 1 << 1, also: 1 << 3 },
  { name: 'packet', id: 3, arg: true, excl: 1 << 1, also: 1 << 2 },
];

export class StatisticMatch extends MatchExt {
  readonly name = 'statistic';
  readonly opts: readonly Opt[] = STATISTIC_MATCH_OPTS;
  mode: 'random' | 'nth' = 'random';
  invert = false;
  /** lround(0x80000000 * p): what the kernel keeps. */
  probability = 0;
  every = 0; // stored decremented, as the kernel structure
  packet = 0;

  parse(id: number, arg: string, invert: boolean): void {
    if (invert) this.invert = true;
    switch (id) {
      case 0:
        if (arg === 'random') this.mode = 'random';
        else if (arg === 'nth') this.mode = 'nth';
        else throw new ParameterProblem(`Bad mode "${arg}"`);
        break;
      case 1: {
        const v = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(arg) ? Number(arg) : NaN;
        if (Number.isNaN(v) || v < 0 || v > 1) {
          throw new ParameterProblem(
            'statistic: bad value for option "--probability", or out of range (0-1).\n',
          );
        }
        this.probability = Math.round(0x80000000 * v);
        break;
      }
      case 2:
        this.every = parseUint32('statistic', 'every', arg, 1) - 1;
        break;
      case 3:
        this.packet = parseUint32('statistic', 'packet', arg);
        break;
    }
  }

  fcheck(): void {
    if (this.mode === 'random' && !(this.xflags & 2)) {
      throw new ParameterProblem('--probability must be specified when using random mode');
    }
    if (this.mode === 'nth' && !(this.xflags & 12)) {
      throw new ParameterProblem('--every and --packet must be specified when using nth mode');
    }
    if (this.packet > this.every)
      throw new ParameterProblem('the --packet p must be 0 <= p <= n-1');
  }

  private dump(prefix: string): string {
    const inv = this.invert ? ' !' : '';
    if (this.mode === 'random') {
      return ` ${prefix}mode random${inv} ${prefix}probability ${fixed11(this.probability / 0x80000000)}`;
    }
    let s = ` ${prefix}mode nth${inv} ${prefix}every ${this.every + 1}`;
    if (this.packet || prefix) s += ` ${prefix}packet ${this.packet}`;
    return s;
  }
  save(): string {
    return this.dump('--');
  }
  print(): string {
    return ` statistic${this.dump('')}`;
  }

  get stateful(): boolean {
    return this.mode !== 'random';
  }

  inline(): InlineMatch | null {
    return this.mode === 'random'
      ? { kind: 'random', probability: this.probability, invert: this.invert }
      : null;
  }

  get shareable(): boolean {
    return this.mode === 'random';
  }

  compile(env: EvalEnv): MatchFn {
    const inv = this.invert;
    if (this.mode === 'random') {
      const p = this.probability;
      // (get_random_u32() & 0x7FFFFFFF) < probability: 31 uniform random bits
      return () => Math.floor(env.random() * 0x80000000) < p !== inv;
    }
    const every = this.every;
    let count = this.every - this.packet;
    return () => {
      count = count === every ? 0 : count + 1;
      return (count === 0) !== inv;
    };
  }
}

/* ------------------------------------------------------------------ recent */

const R_SET = 1;
const R_CHECK = 2;
const R_UPDATE = 4;
const R_REMOVE = 8;
const R_TTL = 16;
const R_REAP = 32;

const RECENT_MATCH_OPTS: readonly Opt[] = [
  { name: 'set', id: 0, arg: false, excl: 15, invert: true },
  { name: 'rcheck', id: 1, arg: false, excl: 15, invert: true },
  { name: 'update', id: 2, arg: false, excl: 15, invert: true },
  { name: 'remove', id: 3, arg: false, excl: 15, invert: true },
  { name: 'seconds', id: 4, arg: true },
  { name: 'reap', id: 5, arg: false, also: 1 << 4 },
  { name: 'hitcount', id: 6, arg: true },
  { name: 'rttl', id: 7, arg: false, excl: 1 | 8 },
  { name: 'name', id: 8, arg: true },
  { name: 'rsource', id: 9, arg: false },
  { name: 'rdest', id: 10, arg: false },
  { name: 'mask', id: 11, arg: true },
];

export class RecentMatch extends MatchExt {
  readonly name = 'recent';
  readonly opts: readonly Opt[] = RECENT_MATCH_OPTS;
  checkSet = 0;
  invert = false;
  seconds = 0;
  hitCount = 0;
  listName = 'DEFAULT';
  dest = false;
  mask = 0xffffffff;

  parse(id: number, arg: string, invert: boolean): void {
    switch (id) {
      case 0:
      case 1:
      case 2:
      case 3:
        this.checkSet |= [R_SET, R_CHECK, R_UPDATE, R_REMOVE][id]!;
        if (invert) this.invert = true;
        break;
      case 4:
        this.seconds = parseUint32('recent', 'seconds', arg, 1);
        break;
      case 5:
        this.checkSet |= R_REAP;
        break;
      case 6:
        this.hitCount = parseUint32('recent', 'hitcount', arg);
        break;
      case 7:
        this.checkSet |= R_TTL;
        break;
      case 8:
        this.listName = arg.slice(0, 199);
        break;
      case 9:
        this.dest = false;
        break;
      case 10:
        this.dest = true;
        break;
      case 11: {
        const a = resolveHost(arg);
        if (a === null) throw new ParameterProblem(`host/network \`${arg}' not found`);
        this.mask = a;
        break;
      }
    }
  }

  fcheck(): void {
    if (!(this.xflags & 15)) {
      throw new ParameterProblem(
        "recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'",
      );
    }
  }

  check(): boolean {
    const ops = this.checkSet & (R_SET | R_REMOVE | R_CHECK | R_UPDATE);
    if (ops === 0 || (ops & (ops - 1)) !== 0) return false;
    if (
      ops & (R_SET | R_REMOVE) &&
      (this.seconds || this.hitCount || this.checkSet & (R_TTL | R_REAP))
    ) {
      return false;
    }
    if (this.checkSet & R_REAP && !this.seconds) return false;
    if (this.hitCount > 20) return false;
    return this.listName !== '';
  }

  recentNames(): string[] {
    return [this.listName];
  }

  save(): string {
    const c = this.checkSet;
    let s = this.invert ? ' !' : '';
    if (c & R_SET) s += ' --set';
    if (c & R_CHECK) s += ' --rcheck';
    if (c & R_UPDATE) s += ' --update';
    if (c & R_REMOVE) s += ' --remove';
    if (this.seconds) s += ` --seconds ${this.seconds}`;
    if (c & R_REAP) s += ' --reap';
    if (this.hitCount) s += ` --hitcount ${this.hitCount}`;
    if (c & R_TTL) s += ' --rttl';
    s += ` --name ${this.listName} --mask ${ipToString(this.mask)}`;
    s += this.dest ? ' --rdest' : ' --rsource';
    return s;
  }

  print(): string {
    const c = this.checkSet;
    let s = this.invert ? ' !' : '';
    s += ' recent:';
    if (c & R_SET) s += ' SET';
    if (c & R_CHECK) s += ' CHECK';
    if (c & R_UPDATE) s += ' UPDATE';
    if (c & R_REMOVE) s += ' REMOVE';
    if (this.seconds) s += ` seconds: ${this.seconds}`;
    if (c & R_REAP) s += ' reap';
    if (this.hitCount) s += ` hit_count: ${this.hitCount}`;
    if (c & R_TTL) s += ' TTL-Match';
    s += ` name: ${this.listName}`;
    s += this.dest ? ' side: dest' : ' side: source';
    s += ` mask: ${ipToString(this.mask)}`;
    return s;
  }

  compile(env: EvalEnv): MatchFn {
    const c = this.checkSet;
    const inv = this.invert;
    const dest = this.dest;
    const mask = this.mask;
    const seconds = this.seconds;
    const hitCount = this.hitCount;
    const t = env.recent.get(this.listName);
    return (m) => {
      const addr = ((dest ? m.dst : m.src) & mask) >>> 0;
      let ttl = m.ttl;
      if (m.outIf !== '' && m.inIf !== '') ttl++; // forwarded: the TTL as seen before forwarding
      let ret = inv;
      const now = env.now();
      const e = t.lookup(addr, c & R_TTL ? ttl : 0);
      if (!e) {
        if (!(c & R_SET)) return ret;
        t.init(addr, ttl, now);
        return !ret;
      }
      if (c & R_SET) ret = !ret;
      else if (c & R_REMOVE) {
        t.remove(e);
        return !ret;
      } else if (c & (R_CHECK | R_UPDATE)) {
        const time = now - seconds * 1000;
        let hits = 0;
        for (let i = 0; i < e.nstamps; i++) {
          if (seconds && time > e.stamps[i]!) continue;
          if (!hitCount || ++hits >= hitCount) {
            ret = !ret;
            break;
          }
        }
        if (c & R_REAP) t.reap(time, e, (c & R_UPDATE) !== 0 && ret);
      }
      if (c & R_SET || (c & R_UPDATE && ret)) {
        t.update(e, now);
        e.ttl = ttl;
      }
      return ret;
    };
  }
}

/* ------------------------------------------------------------------ addrtype */

const RTN_NAMES = [
  'UNSPEC',
  'UNICAST',
  'LOCAL',
  'BROADCAST',
  'ANYCAST',
  'MULTICAST',
  'BLACKHOLE',
  'UNREACHABLE',
  'PROHIBIT',
  'THROW',
  'NAT',
  'XRESOLVE',
];

function parseTypes(arg: string): number {
  let mask = 0;
  const items = arg.split(',');
  items.forEach((item, i) => {
    const last = i === items.length - 1;
    const rest = items.slice(i).join(',');
    const idx =
      item === '' ? -1 : RTN_NAMES.findIndex((n) => n.toLowerCase().startsWith(item.toLowerCase()));
    if (idx < 0) {
      throw new ParameterProblem(
        last ? `addrtype: bad type "${rest}"` : `addrtype: bad type \`${rest}'`,
      );
    }
    mask |= 1 << idx;
  });
  return mask;
}

function printTypes(mask: number): string {
  return RTN_NAMES.filter((_, i) => mask & (1 << i)).join(',');
}

const ADDRTYPE_MATCH_OPTS: readonly Opt[] = [
  { name: 'src-type', id: 0, arg: true, invert: true },
  { name: 'dst-type', id: 1, arg: true, invert: true },
  { name: 'limit-iface-in', id: 2, arg: false, excl: 1 << 3 },
  { name: 'limit-iface-out', id: 3, arg: false, excl: 1 << 2 },
];

export class AddrtypeMatch extends MatchExt {
  readonly name = 'addrtype';
  readonly opts: readonly Opt[] = ADDRTYPE_MATCH_OPTS;
  source = 0;
  dest = 0;
  invSource = false;
  invDest = false;
  limitIn = false;
  limitOut = false;

  parse(id: number, arg: string, invert: boolean): void {
    if (id === 0) {
      this.source |= parseTypes(arg);
      this.invSource = invert;
    } else if (id === 1) {
      this.dest |= parseTypes(arg);
      this.invDest = invert;
    } else if (id === 2) this.limitIn = true;
    else this.limitOut = true;
  }

  fcheck(): void {
    if (!(this.xflags & 3))
      throw new ParameterProblem('addrtype: you must specify --src-type or --dst-type');
  }

  check(c: CheckCtx): boolean {
    const inHooks = (1 << Hook.PREROUTING) | (1 << Hook.INPUT) | (1 << Hook.FORWARD);
    const outHooks = (1 << Hook.POSTROUTING) | (1 << Hook.OUTPUT) | (1 << Hook.FORWARD);
    if (this.limitIn && this.limitOut) return false;
    if (this.limitIn && c.hookMask & ~inHooks) return false;
    if (this.limitOut && c.hookMask & ~outHooks) return false;
    return true;
  }

  save(): string {
    let s = '';
    if (this.source) s += `${this.invSource ? ' !' : ''} --src-type ${printTypes(this.source)}`;
    if (this.dest) s += `${this.invDest ? ' !' : ''} --dst-type ${printTypes(this.dest)}`;
    if (this.limitIn) s += ' --limit-iface-in';
    if (this.limitOut) s += ' --limit-iface-out';
    return s;
  }

  print(): string {
    let s = ' ADDRTYPE match';
    if (this.source) s += ` src-type ${this.invSource ? '!' : ''}${printTypes(this.source)}`;
    if (this.dest) s += ` dst-type ${this.invDest ? '!' : ''}${printTypes(this.dest)}`;
    if (this.limitIn) s += ' limit-in';
    if (this.limitOut) s += ' limit-out';
    return s;
  }

  compile(env: EvalEnv): MatchFn {
    const src = this.source;
    const dst = this.dest;
    const is = this.invSource;
    const id = this.invDest;
    const a = env.addressing;
    return (m) => {
      if (src && ((a.addressType(m.src) & src) !== 0) === is) return false;
      if (dst && ((a.addressType(m.dst) & dst) !== 0) === id) return false;
      return true;
    };
  }
}

/* ------------------------------------------------------------------ set */

const SET_RETURN_NOMATCH = 1;
const SET_SKIP_COUNTERS = 2;
const SET_SKIP_SUBCOUNTERS = 4;

const SET_MATCH_OPTS: readonly Opt[] = [
  { name: 'match-set', id: 1, arg: true },
  { name: 'set', id: 2, arg: true },
  { name: 'return-nomatch', id: 3, arg: false },
  { name: 'update-counters', id: 4, arg: false },
  { name: 'update-subcounters', id: 5, arg: false },
];

export class SetMatch extends MatchExt {
  readonly name = 'set';
  get generic(): boolean {
    return false;
  }
  readonly opts: readonly Opt[] = SET_MATCH_OPTS;
  setName = '';
  dirs: boolean[] = []; // true = src
  invert = false;
  flags = 0;

  parse(id: number, arg: string, invert: boolean, ctx: ParseCtx): void {
    switch (id) {
      case 1:
      case 2: {
        if (this.dirs.length) throw new ParameterProblem('--match-set can be specified only once');
        if (invert) this.invert = true;
        const next = ctx.peekArg();
        if (next === undefined || next[0] === '-' || next[0] === '!') {
          throw new ParameterProblem('--match-set requires two args.');
        }
        if (arg.length > 31) {
          throw new ParameterProblem(`setname \`${arg}' too long, max 31 characters.`);
        }
        if (!ctx.services.ipsets.get(arg))
          throw new ParameterProblem(`Set ${arg} doesn't exist.\n`);
        this.setName = arg;
        const dirs = ctx.takeArg().split(',');
        if (dirs.length > 6) throw new ParameterProblem("Can't be more src/dst options than 6.");
        this.dirs = dirs.map((d) => {
          if (d.startsWith('src')) return true;
          if (d.startsWith('dst')) return false;
          throw new ParameterProblem(
            "You must specify (the comma separated list of) 'src' or 'dst'.",
          );
        });
        break;
      }
      case 3:
        if (invert) throw new ParameterProblem('--return-nomatch flag cannot be inverted');
        this.flags |= SET_RETURN_NOMATCH;
        break;
      case 4:
        if (invert) this.flags |= SET_SKIP_COUNTERS;
        break;
      case 5:
        if (invert) this.flags |= SET_SKIP_SUBCOUNTERS;
        break;
    }
  }

  fcheck(): void {
    if (!this.dirs.length)
      throw new ParameterProblem("You must specify `--match-set' with proper arguments");
  }

  setNames(): string[] {
    return [this.setName];
  }

  private dump(opt: string, sep: string): string {
    let s = `${this.invert ? ' !' : ''} ${opt} ${this.setName}`;
    s += this.dirs.map((d, i) => (i === 0 ? ' ' : ',') + (d ? 'src' : 'dst')).join('');
    if (this.flags & SET_RETURN_NOMATCH) s += ` ${sep}return-nomatch`;
    if (this.flags & SET_SKIP_COUNTERS) s += ` ! ${sep}update-counters`;
    if (this.flags & SET_SKIP_SUBCOUNTERS) s += ` ! ${sep}update-subcounters`;
    return s;
  }
  save(): string {
    return this.dump('--match-set', '--');
  }
  print(): string {
    return this.dump('match-set', '');
  }

  compile(env: EvalEnv): MatchFn {
    const set = env.ipsets.get(this.setName);
    const inv = this.invert;
    const dirs = this.dirs;
    if (!set) return () => inv;
    return (m) => {
      if (dirs.length < set.dimension) return inv;
      let hit: boolean;
      const a = dirs[0] ? m.src : m.dst;
      if (set.dimension === 2) {
        const port = dirs[1] ? m.sport : m.dport;
        hit = set.matchAddrPort(a, m.proto, port);
      } else hit = set.matchAddr(a);
      return hit !== inv;
    };
  }
}

/* ------------------------------------------------------------------ nfacct */

const NFACCT_MATCH_OPTS: readonly Opt[] = [{ name: 'nfacct-name', id: 0, arg: true, mand: true }];

export class NfacctMatch extends MatchExt {
  readonly name = 'nfacct';
  readonly opts: readonly Opt[] = NFACCT_MATCH_OPTS;
  acctName = '';

  parse(_id: number, arg: string): void {
    if (arg.length > 31)
      throw new ParameterProblem('Argument must have a maximum length of 31 characters\n');
    this.acctName = arg;
  }
  save(): string {
    return ` --nfacct-name ${saveString(this.acctName)}`;
  }
  print(): string {
    return ` nfacct-name ${saveString(this.acctName)}`;
  }
  compile(env: EvalEnv): MatchFn {
    let c = env.nfacct.get(this.acctName);
    if (!c) env.nfacct.set(this.acctName, (c = { packets: 0, bytes: 0 }));
    const counter = c;
    return (m) => {
      counter.packets++;
      counter.bytes += m.ipLen;
      return true;
    };
  }
}

/** The match extensions by name (-m NAME). */
export const MATCHES: Record<string, () => MatchExt> = {
  tcp: () => new TcpMatch(),
  udp: () => new UdpMatch(),
  icmp: () => new IcmpMatch(),
  multiport: () => new MultiportMatch(),
  comment: () => new CommentMatch(),
  conntrack: () => new ConntrackMatch(),
  state: () => new StateMatch(),
  mark: () => new MarkMatch(),
  statistic: () => new StatisticMatch(),
  recent: () => new RecentMatch(),
  addrtype: () => new AddrtypeMatch(),
  set: () => new SetMatch(),
  nfacct: () => new NfacctMatch(),
};

export type { Ext };
