/**
 * xt_recent's per-name lists of addresses with timestamps (net/netfilter/xt_recent.c):
 * at most ip_list_tot (100) addresses per list, the least recently seen one recycled
 * when full; ip_pkt_list_tot (20) timestamps per address.
 */

export const IP_LIST_TOT = 100;
export const IP_PKT_LIST_TOT = 20;

export interface RecentEntry {
  addr: number;
  ttl: number;
  /** Ring of timestamps (ms); `index` is one past the newest. */
  stamps: number[];
  index: number;
  nstamps: number;
}

export class RecentTable {
  /** Insertion order of this Map is the LRU list: first = oldest. */
  readonly entries = new Map<number, RecentEntry>();

  constructor(readonly name: string) {}

  lookup(addr: number, ttl: number): RecentEntry | undefined {
    const e = this.entries.get(addr);
    if (e && (ttl === e.ttl || ttl === 0 || e.ttl === 0)) return e;
    return undefined;
  }

  init(addr: number, ttl: number, now: number): RecentEntry {
    if (this.entries.size >= IP_LIST_TOT) {
      const oldest = this.entries.keys().next().value as number;
      this.entries.delete(oldest);
    }
    const e: RecentEntry = { addr, ttl, stamps: [now], index: 1, nstamps: 1 };
    this.entries.set(addr, e);
    return e;
  }

  update(e: RecentEntry, now: number): void {
    e.index %= IP_PKT_LIST_TOT;
    e.stamps[e.index++] = now;
    if (e.index > e.nstamps) e.nstamps = e.index;
    this.entries.delete(e.addr);
    this.entries.set(e.addr, e);
  }

  remove(e: RecentEntry): void {
    this.entries.delete(e.addr);
  }

  /** recent_entry_reap: drops the oldest entry if its newest stamp is before `time`. */
  reap(time: number, working: RecentEntry, update: boolean): void {
    const first = this.entries.values().next();
    if (first.done) return;
    const e = first.value;
    if (e === working && update) return;
    if (time > e.stamps[e.index - 1]!) this.remove(e);
  }

  /** /proc/net/xt_recent/NAME lines (timestamps in ms instead of jiffies). */
  dump(): string {
    let out = '';
    for (const e of this.entries.values()) {
      const i = (e.index - 1) % IP_PKT_LIST_TOT;
      const a = e.addr;
      out += `src=${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255} ttl: ${e.ttl} last_seen: ${e.stamps[i]} oldest_pkt: ${e.index}`;
      for (let k = 0; k < e.nstamps; k++) out += `${k ? ',' : ''} ${e.stamps[k]}`;
      out += '\n';
    }
    return out;
  }
}

/** The lists of one network namespace, by name. */
export class RecentTables {
  private readonly tables = new Map<string, RecentTable>();

  get(name: string): RecentTable {
    let t = this.tables.get(name);
    if (!t) {
      t = new RecentTable(name);
      this.tables.set(name, t);
    }
    return t;
  }

  has(name: string): boolean {
    return this.tables.has(name);
  }

  names(): string[] {
    return [...this.tables.keys()];
  }

  /** Drops lists no rule refers to any more (xt_recent frees a table with its last rule). */
  retain(referenced: Set<string>): void {
    for (const name of [...this.tables.keys()]) if (!referenced.has(name)) this.tables.delete(name);
  }
}
