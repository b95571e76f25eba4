/**
 * A rule as the kernel holds it (struct ipt_entry: IP header part, matches, target,
 * counters) and its canonical text as iptables-save prints it.
 */
import type { MatchExt, TargetExt } from './ext.js';
import { protoNumberToName } from './netdb.js';
import { ipToString, maskToSaveString } from './util.js';

/** Standard verdict names (the "standard" target). */
export const STANDARD_VERDICTS = new Set(['ACCEPT', 'DROP', 'RETURN', 'QUEUE']);

export class Rule {
  src = 0;
  smsk = 0;
  dst = 0;
  dmsk = 0;
  invSrc = false;
  invDst = false;
  inIf = '';
  outIf = '';
  invIn = false;
  invOut = false;
  proto = 0;
  invProto = false;
  frag = false;
  invFrag = false;
  matches: MatchExt[] = [];
  /** An extension target (REJECT, DNAT, …), or null for the standard target. */
  target: TargetExt | null = null;
  /** Standard target: '' (none), ACCEPT/DROP/RETURN/QUEUE, or a chain name. */
  jump = '';
  goto = false;

  packets = 0;
  bytes = 0;

  /** " -s …" up to (not including) the target: iptables-save's rule text before -c/-j. */
  matchText = '';
  /** " -j NAME …" / " -g CHAIN", or '' when the rule has no target. */
  targetText = '';

  /** Computes the texts; call once the rule is complete (rules are immutable afterwards). */
  finish(): this {
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
    this.matchText = s;
    if (this.target) this.targetText = ` -j ${this.target.name}${this.target.save()}`;
    else if (this.jump !== '') this.targetText = ` -${this.goto ? 'g' : 'j'} ${this.jump}`;
    else this.targetText = '';
    return this;
  }

  /** The rule as -S prints it after "-A CHAIN". */
  get text(): string {
    return this.matchText + this.targetText;
  }

  /** Name in iptables -L's target column. */
  get listTarget(): string {
    return this.target ? this.target.listName : this.jump;
  }

  /** A chain this rule jumps or goes to ('' if none). */
  get chainTarget(): string {
    return this.target === null && this.jump !== '' && !STANDARD_VERDICTS.has(this.jump)
      ? this.jump
      : '';
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
