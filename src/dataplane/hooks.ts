import {
  Hook,
  HookResult,
  PacketMeta,
  Verdict,
  CtState,
  type NatRequest,
  type NodeAddressing,
} from '../netfilter/packet-meta.js';
import type { PacketTracer } from './trace.js';

/** The rule engine as the pipeline uses it (src/netfilter's Netfilter). */
export interface RuleEngine {
  evaluate(table: 'raw' | 'mangle' | 'nat' | 'filter', meta: PacketMeta, result: HookResult): void;
}

/** Connection tracking as the pipeline uses it (src/conntrack's Conntrack). */
export interface Tracker {
  /** false: the packet must be dropped (table full). `l4ChecksumTrusted` skips the L4 checksum check. */
  inbound(meta: PacketMeta, l4ChecksumTrusted?: boolean): boolean;
  /** false: no binding possible (drop). */
  setupNat(meta: PacketMeta, manip: 'SRC' | 'DST', req: NatRequest | null, addr?: number): boolean;
  /** false: the packet cannot be translated (drop). */
  natPacket(meta: PacketMeta, manip: 'SRC' | 'DST', partialChecksum: boolean): boolean;
  /** false: a clash with an existing entry (drop). */
  confirm(meta: PacketMeta): boolean;
  /** Forgets the unconfirmed entry of a packet that was dropped (it never existed). */
  discard?(meta: PacketMeta): void;
}

/** Outcome of a hook: go on, drop silently, or reject (see result.rejectWith). */
export const HookVerdict = {
  ACCEPT: Verdict.ACCEPT,
  DROP: Verdict.DROP,
  REJECT: Verdict.REJECT,
} as const;

/**
 * The netfilter hooks of ARCHITECTURE.md's packet path, in Linux's order:
 *
 *   received:       PREROUTING raw → conntrack → mangle → nat (NEW only) → DNAT applied
 *   local delivery: INPUT mangle → filter → nat (NEW only) → SNAT applied → confirm
 *   forwarded:      FORWARD mangle → filter, then POSTROUTING
 *   local out:      OUTPUT raw → conntrack → mangle → nat (NEW only) → DNAT applied,
 *                   routing, OUTPUT filter, then POSTROUTING
 *   POSTROUTING:    mangle → nat (NEW only) → SNAT / MASQUERADE applied → confirm
 *
 * The nat table sees only a connection's first packet; every later packet is
 * translated from its conntrack entry. One PacketMeta carries the packet's
 * state from hook to hook (a packet is processed start to end synchronously).
 */
export class HookPipeline {
  readonly meta = new PacketMeta();
  readonly result = new HookResult();
  /**
   * Packets by hook and verdict, at verdicts[hook * 3 + verdict] (Hook and Verdict
   * numbering), for the metrics. OUTPUT counts a packet once: its filter verdict, or the
   * verdict of the earlier OUTPUT tables when they did not accept it.
   */
  readonly verdicts = new Float64Array(15);
  /** Set while `kubewire trace` runs (null otherwise: one check per step). */
  tracer: PacketTracer | null = null;

  constructor(
    private readonly rules: RuleEngine,
    private readonly tracker: Tracker | null,
    private readonly addressing: NodeAddressing,
  ) {}

  private run(table: 'raw' | 'mangle' | 'nat' | 'filter'): number {
    const r = this.result;
    r.reset();
    this.rules.evaluate(table, this.meta, r);
    return r.verdict;
  }

  private track(checksumTrusted: boolean): number {
    const m = this.meta;
    if (m.notrack) {
      m.ctState = CtState.UNTRACKED;
      if (this.tracer !== null) this.tracer.conntrack(m, true);
      return Verdict.ACCEPT;
    }
    const ok = !this.tracker || this.tracker.inbound(m, checksumTrusted);
    if (this.tracer !== null) this.tracer.conntrack(m, ok);
    return ok ? Verdict.ACCEPT : Verdict.DROP;
  }

  /** nat table for a connection's first packet, then the translation for every packet. */
  private nat(manip: 'SRC' | 'DST', partial: boolean, dev: string): number {
    const m = this.meta;
    const t = this.tracker;
    if (!t || m.ctEntry < 0) return Verdict.ACCEPT;
    if ((m.ctState & CtState.NEW) !== 0) {
      const v = this.run('nat');
      if (v !== Verdict.ACCEPT) return v;
      const req = this.result.nat;
      // MASQUERADE takes the output device's address; REDIRECT the input device's.
      const addr =
        req?.kind === 'MASQUERADE' || req?.kind === 'REDIRECT'
          ? this.addressing.interfaceAddress(dev)
          : undefined;
      if (!t.setupNat(m, manip, req, addr)) return Verdict.DROP;
    }
    const tr = this.tracer;
    if (tr !== null && tr.active) tr.beforeNat(m);
    if (!t.natPacket(m, manip, partial)) return Verdict.DROP;
    if (tr !== null && tr.active) tr.afterNat(m, manip);
    return Verdict.ACCEPT;
  }

  /** A packet received on `inIf` (a pod link, the underlay, or tunl0 after decapsulation). */
  prerouting(
    inIf: string,
    buf: Buffer,
    ipOff: number,
    ipLen: number,
    macOff: number,
    partial: boolean,
    checksumTrusted: boolean,
  ): number {
    const v = this.preroutingTables(inIf, buf, ipOff, ipLen, macOff, partial, checksumTrusted);
    this.verdicts[Hook.PREROUTING * 3 + v]++;
    return v;
  }

  private preroutingTables(
    inIf: string,
    buf: Buffer,
    ipOff: number,
    ipLen: number,
    macOff: number,
    partial: boolean,
    checksumTrusted: boolean,
  ): number {
    const m = this.meta;
    m.reset();
    m.parse(buf, ipOff, ipLen);
    m.hook = Hook.PREROUTING;
    m.inIf = inIf;
    m.macOff = macOff;
    let v = this.run('raw');
    if (v !== Verdict.ACCEPT) return v;
    v = this.track(checksumTrusted);
    if (v !== Verdict.ACCEPT) return v;
    v = this.run('mangle');
    if (v !== Verdict.ACCEPT) return v;
    return this.nat('DST', partial, inIf);
  }

  /** A packet the node's own processes sent (it arrived from the node's kernel link). */
  localOut(buf: Buffer, ipOff: number, ipLen: number, partial: boolean): number {
    const v = this.localOutTables(buf, ipOff, ipLen, partial);
    if (v !== Verdict.ACCEPT) this.verdicts[Hook.OUTPUT * 3 + v]++;
    return v;
  }

  private localOutTables(buf: Buffer, ipOff: number, ipLen: number, partial: boolean): number {
    const m = this.meta;
    m.reset();
    m.parse(buf, ipOff, ipLen);
    m.hook = Hook.OUTPUT;
    let v = this.run('raw');
    if (v !== Verdict.ACCEPT) return v;
    // Locally generated: Linux does not verify checksums at OUTPUT.
    v = this.track(true);
    if (v !== Verdict.ACCEPT) return v;
    v = this.run('mangle');
    if (v !== Verdict.ACCEPT) return v;
    return this.nat('DST', partial, '');
  }

  /** OUTPUT filter, once the route (output interface) is known. */
  outputFilter(outIf: string): number {
    const m = this.meta;
    m.hook = Hook.OUTPUT;
    m.outIf = outIf;
    const v = this.run('filter');
    this.verdicts[Hook.OUTPUT * 3 + v]++;
    return v;
  }

  /** Local delivery to the node. */
  input(partial: boolean): number {
    const v = this.inputTables(partial);
    this.verdicts[Hook.INPUT * 3 + v]++;
    return v;
  }

  private inputTables(partial: boolean): number {
    const m = this.meta;
    m.hook = Hook.INPUT;
    m.outIf = '';
    let v = this.run('mangle');
    if (v !== Verdict.ACCEPT) return v;
    v = this.run('filter');
    if (v !== Verdict.ACCEPT) return v;
    v = this.nat('SRC', partial, '');
    if (v !== Verdict.ACCEPT) return v;
    return this.confirm();
  }

  forward(outIf: string): number {
    const m = this.meta;
    m.hook = Hook.FORWARD;
    m.outIf = outIf;
    let v = this.run('mangle');
    if (v === Verdict.ACCEPT) v = this.run('filter');
    this.verdicts[Hook.FORWARD * 3 + v]++;
    return v;
  }

  postrouting(outIf: string, partial: boolean): number {
    const v = this.postroutingTables(outIf, partial);
    this.verdicts[Hook.POSTROUTING * 3 + v]++;
    return v;
  }

  private postroutingTables(outIf: string, partial: boolean): number {
    const m = this.meta;
    m.hook = Hook.POSTROUTING;
    m.outIf = outIf;
    let v = this.run('mangle');
    if (v !== Verdict.ACCEPT) return v;
    v = this.nat('SRC', partial, outIf);
    if (v !== Verdict.ACCEPT) return v;
    return this.confirm();
  }

  /** The packet was dropped or rejected: an entry it created is not kept. */
  dropped(): void {
    if (this.tracker?.discard && this.meta.ctEntry >= 0) this.tracker.discard(this.meta);
  }

  private confirm(): number {
    const m = this.meta;
    if (!this.tracker || m.ctEntry < 0) return Verdict.ACCEPT;
    const entry = m.ctEntry;
    const ok = this.tracker.confirm(m);
    if (this.tracer !== null) this.tracer.confirm(m, ok, entry);
    return ok ? Verdict.ACCEPT : Verdict.DROP;
  }
}
