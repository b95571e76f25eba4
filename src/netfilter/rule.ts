/**
 * A rule as the kernel holds it (struct ipt_entry: IP header part, matches, target,
 * counters) and its canonical text as iptables-save prints it.
 */
import type { MatchExt, TargetExt } from './ext.js';
import { protoNumberToName } from './netdb.js';
import { ipToString, maskToSaveString } from './util.js';

/** Standard verdict names (the "standard" target). */
export const STANDARD_VERDICTS = new Set(['ACCEPT', 'DROP', 'RETURN', 'QUEUE']);

/** Rule.flags bits behind the boolean properties. */
const INV_SRC = 1;
const INV_DST = 2;
const INV_IN = 4;
const INV_OUT = 8;
const INV_PROTO = 16;
const FRAG = 32;
const INV_FRAG = 64;
const GOTO = 128;
const HAS_REFS = 256;
const STATEFUL = 512;

export class Rule {
  /**
   * Addresses and masks as signed 32-bit integers (`addr | 0`): V8 keeps those as small
   * integers inside the object, where unsigned values above 2^31 would each be boxed.
   */
  src = 0;
  smsk = 0;
  dst = 0;
  dmsk = 0;
  inIf = '';
  outIf = '';
  proto = 0;
  matches: MatchExt[] = [];
  /** An extension target (REJECT, DNAT, …), or null for the standard target. */
  target: TargetExt | null = null;
  /** Standard target: '' (none), ACCEPT/DROP/RETURN/QUEUE, or a chain name. */
  jump = '';

  packets = 0;
  bytes = 0;

  /** A chain this rule jumps or goes to ('' if none). */
  chainTarget = '';
  /** The boolean properties below, as bits (a rule set has hundreds of thousands of rules). */
  flags = 0;

  private bit(b: number): boolean {
    return (this.flags & b) !== 0;
  }
  private setBit(b: number, v: boolean): void {
    this.flags = v ? this.flags | b : this.flags & ~b;
  }
  get invSrc(): boolean {
    return this.bit(INV_SRC);
  }
  set invSrc(v: boolean) {
    this.setBit(INV_SRC, v);
  }
  get invDst(): boolean {
    return this.bit(INV_DST);
  }
  set invDst(v: boolean) {
    this.setBit(INV_DST, v);
  }
  get invIn(): boolean {
    return this.bit(INV_IN);
  }
  set invIn(v: boolean) {
    this.setBit(INV_IN, v);
  }
  get invOut(): boolean {
    return this.bit(INV_OUT);
  }
  set invOut(v: boolean) {
    this.setBit(INV_OUT, v);
  }
  get invProto(): boolean {
    return this.bit(INV_PROTO);
  }
  set invProto(v: boolean) {
    this.setBit(INV_PROTO, v);
  }
  get frag(): boolean {
    return this.bit(FRAG);
  }
  set frag(v: boolean) {
    this.setBit(FRAG, v);
  }
  get invFrag(): boolean {
    return this.bit(INV_FRAG);
  }
  set invFrag(v: boolean) {
    this.setBit(INV_FRAG, v);
  }
  /** -g rather than -j. */
  get goto(): boolean {
    return this.bit(GOTO);
  }
  set goto(v: boolean) {
    this.setBit(GOTO, v);
  }
  /** The rule has a match that names recent lists or ipsets. */
  get hasRefs(): boolean {
    return this.bit(HAS_REFS);
  }
  /** A match keeps state in its compiled form (statistic --mode nth): see Netfilter's compile. */
  get stateful(): boolean {
    return this.bit(STATEFUL);
  }

  /** Call once the rule is complete (rules are immutable afterwards). */
  finish(): this {
    this.chainTarget =
      this.target === null && this.jump !== '' && !STANDARD_VERDICTS.has(this.jump)
        ? this.jump
        : '';
    let refs = false;
    let stateful = false;
    for (const m of this.matches) {
      if (m.name === 'recent' || m.name === 'set') refs = true;
      if (m.stateful) stateful = true;
    }
    this.setBit(HAS_REFS, refs);
    this.setBit(STATEFUL, stateful);
    return this;
  }

  /**
   * " -s …" up to (not including) the target: iptables-save's rule text before -c/-j.
   * Computed when asked (saving and listing are rare; a rule set is large).
   */
  get matchText(): string {
    let s = saveAddr('s', this.src, this.smsk, this.invSrc);
    s += saveAddr('d', this.dst, this.dmsk, this.invDst);
    s += saveIface('i', this.inIf, this.invIn);
    s += saveIface('o', this.outIf, this.invOut);
    if (this.proto > 0) {
      if (this.invProto) s += ' !';
      s += ` -p ${protoNumberToName(this.proto) ?? String(this.proto)}`;
    }
    if (this.frag) s += `${this.invFrag ? ' !' : ''} -f`;
    for (const m of this.matches) s += ` -m ${m.saveName}${m.save()}`;
    return s;
  }

  /** " -j NAME …" / " -g CHAIN", or '' when the rule has no target. */
  get targetText(): string {
    if (this.target) return ` -j ${this.target.name}${this.target.save()}`;
    if (this.jump !== '') return ` -${this.goto ? 'g' : 'j'} ${this.jump}`;
    return '';
  }

  /** The rule as -S prints it after "-A CHAIN". */
  get text(): string {
    return this.matchText + this.targetText;
  }

  /** Name in iptables -L's target column. */
  get listTarget(): string {
    return this.target ? this.target.listName : this.jump;
  }
}

function saveAddr(letter: string, addr: number, mask: number, inv: boolean): string {
  if (mask === 0 && !inv && addr === 0) return '';
  return `${inv ? ' !' : ''} -${letter} ${ipToString(addr)}/${maskToSaveString(mask)}`;
}

/** save_iface of iptables 1.8.9: a bare "+" (an all-zero mask) is not printed, even inverted. */
function saveIface(letter: string, iface: string, inv: boolean): string {
  if (iface !== '' && iface !== '+') return `${inv ? ' !' : ''} -${letter} ${iface}`;
  return '';
}
