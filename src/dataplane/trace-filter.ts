/**
 * The packet filter of `kubewire trace`: a subset of tcpdump's expression
 * language (pcap-filter(7)) over the IPv4 5-tuple, compiled once into a
 * predicate of plain numbers (no allocation when it runs).
 *
 *   expr      := and ( ('or' | '||') and )*
 *   and       := unary ( ('and' | '&&') unary )*
 *   unary     := ('not' | '!') unary | '(' expr ')' | primitive
 *   primitive := [src|dst] host ADDR
 *              | [src|dst] net ADDR[/LEN]          (net 10.1 = 10.1.0.0/16, as tcpdump)
 *              | [tcp|udp] [src|dst] port PORT     (a number or a service name: http, domain)
 *              | [tcp|udp] [src|dst] portrange N-M
 *              | tcp | udp | icmp | ip | proto (tcp|udp|icmp|NUMBER)
 *              | [src|dst] ADDR                    (host implied)
 *              | ADDR-or-PORT                      (the previous primitive's keywords, as tcpdump:
 *                                                   `host A or B` = `host A or host B`)
 *
 * `src`/`dst` without a direction means either. Ports exist only for TCP and
 * UDP: `port 53` never matches ICMP.
 */
import { ipv4FromString, prefixMask } from '../packet/addr.js';
import { serviceToPort } from '../netfilter/netdb.js';

/** src, dst: unsigned 32-bit addresses; sport/dport -1 when the packet has no ports. */
export type FlowPredicate = (
  src: number,
  dst: number,
  proto: number,
  sport: number,
  dport: number,
) => boolean;

export class TraceFilterError extends Error {
  override name = 'TraceFilterError';
}

export interface TraceFilter {
  /** The expression as given ('' matches every packet). */
  readonly text: string;
  readonly matches: FlowPredicate;
}

const MATCH_ALL: FlowPredicate = () => true;

type Dir = 'src' | 'dst' | null;
type Kind = 'host' | 'net' | 'port' | 'portrange';

interface Qualifiers {
  proto: number;
  dir: Dir;
  kind: Kind;
}

const PROTOS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17 };

/** Splits an expression into words, parentheses, `!`, `&&` and `||`. */
function tokenize(text: string): string[] {
  const out: string[] = [];
  const re = /\s*(&&|\|\||[()!]|[^\s()!&|]+)/g;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(text)) !== null) {
    out.push(m[1]!);
    end = re.lastIndex;
  }
  const rest = text.slice(end).trim();
  if (rest !== '') throw new TraceFilterError(`syntax error in filter expression near '${rest}'`);
  return out;
}

function parseAddress(word: string): number {
  try {
    return ipv4FromString(word);
  } catch {
    throw new TraceFilterError(`'${word}' is not an IPv4 address`);
  }
}

/** ADDR/LEN, or a dotted prefix of 1-4 octets whose length is implied (10.1 → /16). */
function parseNet(word: string): { net: number; mask: number } {
  const slash = word.indexOf('/');
  if (slash >= 0) {
    const len = word.slice(slash + 1);
    if (!/^\d{1,2}$/.test(len) || Number(len) > 32)
      throw new TraceFilterError(`'${word}': bad prefix length`);
    const octets = word.slice(0, slash).split('.');
    while (octets.length < 4) octets.push('0');
    const mask = prefixMask(Number(len));
    const addr = parseAddress(octets.join('.'));
    if ((addr & ~mask) >>> 0 !== 0)
      throw new TraceFilterError(`'${word}': non-network bits set in the address`);
    return { net: addr, mask };
  }
  const octets = word.split('.');
  if (octets.length > 4 || octets.some((o) => !/^\d{1,3}$/.test(o)))
    throw new TraceFilterError(`'${word}' is not a network`);
  const len = octets.length * 8;
  while (octets.length < 4) octets.push('0');
  return { net: parseAddress(octets.join('.')), mask: prefixMask(len) };
}

function parsePort(word: string, proto: number): number {
  if (/^\d+$/.test(word)) {
    const n = Number(word);
    if (n > 65535) throw new TraceFilterError(`port ${word} is out of range (0-65535)`);
    return n;
  }
  const p = serviceToPort(word, proto === 17 ? 'udp' : proto === 6 ? 'tcp' : undefined);
  if (p < 0) throw new TraceFilterError(`unknown port '${word}'`);
  return p;
}

const isAddressLike = (w: string) => /^\d+(\.\d+){0,3}(\/\d+)?$/.test(w);

class Parser {
  private i = 0;
  /** The keywords of the last primitive, for bare identifiers that follow `and`/`or`. */
  private last: Qualifiers | null = null;

  constructor(private readonly tokens: string[]) {}

  parse(): FlowPredicate {
    const p = this.or();
    if (this.i < this.tokens.length)
      throw new TraceFilterError(`syntax error in filter expression near '${this.peek()}'`);
    return p;
  }

  private peek(): string | undefined {
    return this.tokens[this.i];
  }

  private next(what: string): string {
    const t = this.tokens[this.i++];
    if (t === undefined) throw new TraceFilterError(`filter expression ends early: ${what}`);
    return t;
  }

  private or(): FlowPredicate {
    let p = this.and();
    while (this.peek() === 'or' || this.peek() === '||') {
      this.i++;
      const a = p;
      const b = this.and();
      p = (s, d, pr, sp, dp) => a(s, d, pr, sp, dp) || b(s, d, pr, sp, dp);
    }
    return p;
  }

  private and(): FlowPredicate {
    let p = this.unary();
    while (this.peek() === 'and' || this.peek() === '&&') {
      this.i++;
      const a = p;
      const b = this.unary();
      p = (s, d, pr, sp, dp) => a(s, d, pr, sp, dp) && b(s, d, pr, sp, dp);
    }
    return p;
  }

  private unary(): FlowPredicate {
    const t = this.peek();
    if (t === 'not' || t === '!') {
      this.i++;
      const a = this.unary();
      return (s, d, pr, sp, dp) => !a(s, d, pr, sp, dp);
    }
    if (t === '(') {
      this.i++;
      const p = this.or();
      if (this.next("missing ')'") !== ')') throw new TraceFilterError("missing ')'");
      return p;
    }
    return this.primitive();
  }

  private primitive(): FlowPredicate {
    let word = this.next('expected a primitive (host, net, port, tcp, udp, icmp …)');
    if (word === 'ip') return MATCH_ALL;
    if (word === 'proto') {
      const w = this.next("expected a protocol after 'proto'");
      const n = /^\d+$/.test(w) && Number(w) < 256 ? Number(w) : PROTOS[w.replace(/^\\/, '')];
      if (n === undefined) throw new TraceFilterError(`unknown protocol '${w}'`);
      return (_s, _d, pr) => pr === n;
    }
    let proto = 0;
    let protoGiven = false;
    if (PROTOS[word] !== undefined) {
      proto = PROTOS[word]!;
      protoGiven = true;
      const after = this.peek();
      // `tcp` alone, or `tcp [src|dst] port …`
      if (after !== 'src' && after !== 'dst' && after !== 'port' && after !== 'portrange') {
        const n = proto;
        return (_s, _d, pr) => pr === n;
      }
      if (proto === 1) throw new TraceFilterError("'icmp' has no ports");
      word = this.next('expected port after the protocol');
    }
    let dir: Dir = null;
    let dirGiven = false;
    if (word === 'src' || word === 'dst') {
      dir = word;
      dirGiven = true;
      word = this.next(`expected host, net, port or an address after '${dir}'`);
    }
    let kind: Kind;
    let value: string;
    if (word === 'host' || word === 'net' || word === 'port' || word === 'portrange') {
      kind = word;
      value = this.next(`expected a value after '${word}'`);
    } else if (
      !protoGiven &&
      !dirGiven &&
      this.last !== null &&
      (isAddressLike(word) || /^[a-z][\w-]*$/.test(word))
    ) {
      // A bare identifier: the previous primitive's keywords apply (an address after
      // a port primitive is a host: `port 80 and 10.1.0.89`).
      ({ proto, dir, kind } = this.last);
      if ((kind === 'port' || kind === 'portrange') && word.includes('.')) {
        kind = word.includes('/') ? 'net' : 'host';
        proto = 0;
        dir = null;
      }
      value = word;
    } else if (isAddressLike(word)) {
      kind = word.includes('/') ? 'net' : 'host';
      value = word;
    } else {
      throw new TraceFilterError(`syntax error in filter expression near '${word}'`);
    }
    if ((kind === 'host' || kind === 'net') && protoGiven)
      throw new TraceFilterError(`'${kind}' cannot follow a protocol here`);
    this.last = { proto, dir, kind };
    switch (kind) {
      case 'host': {
        const a = parseAddress(value);
        if (dir === 'src') return (s) => s === a;
        if (dir === 'dst') return (_s, d) => d === a;
        return (s, d) => s === a || d === a;
      }
      case 'net': {
        const { net, mask } = parseNet(value);
        if (dir === 'src') return (s) => (s & mask) >>> 0 === net;
        if (dir === 'dst') return (_s, d) => (d & mask) >>> 0 === net;
        return (s, d) => (s & mask) >>> 0 === net || (d & mask) >>> 0 === net;
      }
      case 'port':
      case 'portrange': {
        let lo: number;
        let hi: number;
        if (kind === 'port') lo = hi = parsePort(value, proto);
        else {
          const m = /^(\w+)-(\w+)$/.exec(value);
          if (!m) throw new TraceFilterError(`'${value}': a port range is N-M`);
          lo = parsePort(m[1]!, proto);
          hi = parsePort(m[2]!, proto);
          if (lo > hi) throw new TraceFilterError(`'${value}': empty port range`);
        }
        const p = proto;
        const inRange = (x: number) => x >= lo && x <= hi;
        const protoOk = (pr: number) => (p === 0 ? pr === 6 || pr === 17 : pr === p);
        if (dir === 'src') return (_s, _d, pr, sp) => protoOk(pr) && inRange(sp);
        if (dir === 'dst') return (_s, _d, pr, _sp, dp) => protoOk(pr) && inRange(dp);
        return (_s, _d, pr, sp, dp) => protoOk(pr) && (inRange(sp) || inRange(dp));
      }
    }
  }
}

/** Compiles a filter expression; throws TraceFilterError with what is wrong. */
export function parseTraceFilter(text: string): TraceFilter {
  const tokens = tokenize(text);
  if (tokens.length === 0) return { text: '', matches: MATCH_ALL };
  return { text: tokens.join(' '), matches: new Parser(tokens).parse() };
}

/** iptables-style options of `kubewire trace`, turned into the equivalent expression. */
export interface TraceFlagOptions {
  /** -s ADDR[/LEN] */
  source?: string;
  /** -d ADDR[/LEN] */
  destination?: string;
  /** -p tcp|udp|icmp */
  protocol?: string;
  sport?: string;
  dport?: string;
}

/** Joins an expression and iptables-style flags with `and`. */
export function traceFilterText(expression: string, flags: TraceFlagOptions): string {
  const parts: string[] = [];
  if (expression.trim() !== '') parts.push(`( ${expression.trim()} )`);
  const proto = flags.protocol;
  if (proto !== undefined) {
    if (PROTOS[proto] === undefined && !/^\d+$/.test(proto))
      throw new TraceFilterError(`-p ${proto}: use tcp, udp, icmp or a protocol number`);
    parts.push(`proto ${proto}`);
  }
  if (flags.source !== undefined) parts.push(`src net ${withPrefix(flags.source)}`);
  if (flags.destination !== undefined) parts.push(`dst net ${withPrefix(flags.destination)}`);
  const portProto = proto === 'tcp' || proto === 'udp' ? `${proto} ` : '';
  if (flags.sport !== undefined) parts.push(`${portProto}src port ${flags.sport}`);
  if (flags.dport !== undefined) parts.push(`${portProto}dst port ${flags.dport}`);
  if (parts.length === 1 && parts[0]!.startsWith('( ')) return expression.trim();
  return parts.join(' and ');
}

/** iptables reads -s 10.1.0.89 as 10.1.0.89/32. */
function withPrefix(addr: string): string {
  return addr.includes('/') ? addr : `${addr}/32`;
}
