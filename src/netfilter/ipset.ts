/**
 * A minimal ipset: sets of type hash:ip, hash:net and hash:ip,port (IPv4), with a
 * command API in ipset(8) syntax (create, add, del, test, flush, destroy, list,
 * save, swap, rename) and the lookups -m set needs.
 */
import { numericToIp, cidrToMask, ipToString, strtoui } from './util.js';
import { serviceToPort } from './netdb.js';

export const IPSET_VERSION = '7.17';

export class IpsetError extends Error {
  constructor(message: string) {
    super(`ipset v${IPSET_VERSION}: ${message}`);
    this.name = 'IpsetError';
  }
}

export type IpSetType = 'hash:ip' | 'hash:net' | 'hash:ip,port';

const PROTO_NUM: Record<string, number> = { tcp: 6, udp: 17, sctp: 132, udplite: 136, icmp: 1 };
const PROTO_NAME: Record<number, string> = {
  6: 'tcp',
  17: 'udp',
  132: 'sctp',
  136: 'udplite',
  1: 'icmp',
};

export class IpSet {
  /** hash:ip: addresses; hash:ip,port: "addr/proto/port" keys. */
  private readonly keys = new Set<number | string>();
  /** hash:net: prefix length → network addresses. */
  private readonly nets = new Map<number, Set<number>>();
  /** Entries in insertion order, as ipset prints them. */
  private readonly order: string[] = [];

  constructor(
    public name: string,
    readonly type: IpSetType,
    readonly options: { hashsize: number; maxelem: number },
  ) {}

  /** The number of address/port dimensions the type has. */
  get dimension(): number {
    return this.type === 'hash:ip,port' ? 2 : 1;
  }

  get size(): number {
    return this.order.length;
  }

  entries(): string[] {
    return [...this.order];
  }

  /** Parses an entry in ipset syntax; returns its canonical text and key. */
  private parseEntry(text: string): {
    key: number | string;
    net?: number;
    len?: number;
    canon: string;
  } {
    const bad = () => new IpsetError(`Syntax error: '${text}' is invalid as IPv4 address`);
    if (this.type === 'hash:ip') {
      const a = numericToIp(text);
      if (a === null || text.split('.').length !== 4) throw bad();
      return { key: a, canon: ipToString(a) };
    }
    if (this.type === 'hash:net') {
      const [addr, lenText] = text.split('/');
      const a = numericToIp(addr ?? '');
      const len = lenText === undefined ? 32 : strtoui(lenText, 1, 32);
      if (a === null || len === null) throw bad();
      const net = (a & cidrToMask(len)) >>> 0;
      return {
        key: net,
        net,
        len,
        canon: len === 32 ? ipToString(net) : `${ipToString(net)}/${len}`,
      };
    }
    const comma = text.indexOf(',');
    if (comma < 0)
      throw new IpsetError(`Syntax error: Missing second mandatory argument to command add`);
    const a = numericToIp(text.slice(0, comma));
    if (a === null) throw bad();
    let pp = text.slice(comma + 1);
    let proto = 6;
    const colon = pp.indexOf(':');
    if (colon >= 0) {
      const pn = PROTO_NUM[pp.slice(0, colon)];
      if (pn === undefined)
        throw new IpsetError(`Syntax error: cannot parse '${pp}' as a protocol`);
      proto = pn;
      pp = pp.slice(colon + 1);
    }
    const port = /^\d+$/.test(pp) ? Number(pp) : serviceToPort(pp, PROTO_NAME[proto]);
    if (port < 0 || port > 65535)
      throw new IpsetError(`Syntax error: cannot parse '${pp}' as a port`);
    return { key: `${a}/${proto}/${port}`, canon: `${ipToString(a)},${PROTO_NAME[proto]}:${port}` };
  }

  add(text: string, exist = false): void {
    const e = this.parseEntry(text);
    if (this.testParsed(e)) {
      if (exist) return;
      throw new IpsetError("Element cannot be added to the set: it's already added");
    }
    if (this.order.length >= this.options.maxelem) {
      throw new IpsetError(`Hash is full, cannot add more elements`);
    }
    if (e.len !== undefined) {
      let s = this.nets.get(e.len);
      if (!s) this.nets.set(e.len, (s = new Set()));
      s.add(e.net!);
    } else this.keys.add(e.key);
    this.order.push(e.canon);
  }

  del(text: string, exist = false): void {
    const e = this.parseEntry(text);
    if (!this.testParsed(e)) {
      if (exist) return;
      throw new IpsetError("Element cannot be deleted from the set: it's not added");
    }
    if (e.len !== undefined) this.nets.get(e.len)!.delete(e.net!);
    else this.keys.delete(e.key);
    this.order.splice(this.order.indexOf(e.canon), 1);
  }

  private testParsed(e: { key: number | string; net?: number; len?: number }): boolean {
    if (e.len !== undefined) return this.nets.get(e.len)?.has(e.net!) ?? false;
    return this.keys.has(e.key);
  }

  test(text: string): boolean {
    if (this.type === 'hash:net') {
      const [addr] = text.split('/');
      const a = numericToIp(addr ?? '');
      if (a !== null && !text.includes('/')) return this.matchAddr(a);
    }
    return this.testParsed(this.parseEntry(text));
  }

  flush(): void {
    this.keys.clear();
    this.nets.clear();
    this.order.length = 0;
  }

  /** Hot path: is the address (hash:ip, hash:net) in the set? */
  matchAddr(addr: number): boolean {
    if (this.type === 'hash:ip') return this.keys.has(addr);
    if (this.type === 'hash:net') {
      for (const [len, s] of this.nets) if (s.has((addr & cidrToMask(len)) >>> 0)) return true;
      return false;
    }
    return false;
  }

  /** Hot path for hash:ip,port. */
  matchAddrPort(addr: number, proto: number, port: number): boolean {
    return this.type === 'hash:ip,port' && port >= 0 && this.keys.has(`${addr}/${proto}/${port}`);
  }

  swapContents(other: IpSet): void {
    const a = [this.keys, this.nets, this.order] as const;
    const b = [other.keys, other.nets, other.order] as const;
    const tk = new Set(a[0]);
    const tn = new Map(a[1]);
    const to = [...a[2]];
    a[0].clear();
    b[0].forEach((k) => a[0].add(k));
    a[1].clear();
    b[1].forEach((v, k) => a[1].set(k, v));
    a[2].length = 0;
    a[2].push(...b[2]);
    b[0].clear();
    tk.forEach((k) => b[0].add(k));
    b[1].clear();
    tn.forEach((v, k) => b[1].set(k, v));
    b[2].length = 0;
    b[2].push(...to);
  }
}

/** The sets of one node, by name. */
export class IpSetStore {
  private readonly sets = new Map<string, IpSet>();
  /** Set by the netfilter engine: is a set referenced by a rule (cannot be destroyed)? */
  isReferenced: (name: string) => number = () => 0;

  get(name: string): IpSet | undefined {
    return this.sets.get(name);
  }

  names(): string[] {
    return [...this.sets.keys()];
  }

  create(
    name: string,
    type: string,
    opts: { hashsize?: number; maxelem?: number } = {},
    exist = false,
  ): IpSet {
    const old = this.sets.get(name);
    if (old) {
      if (exist && old.type === type) return old;
      throw new IpsetError('Set cannot be created: set with the same name already exists');
    }
    if (type !== 'hash:ip' && type !== 'hash:net' && type !== 'hash:ip,port') {
      throw new IpsetError(`Syntax error: typename '${type}' is unknown`);
    }
    const s = new IpSet(name, type, {
      hashsize: opts.hashsize ?? 1024,
      maxelem: opts.maxelem ?? 65536,
    });
    this.sets.set(name, s);
    return s;
  }

  private must(name: string): IpSet {
    const s = this.sets.get(name);
    if (!s) throw new IpsetError('The set with the given name does not exist');
    return s;
  }

  destroy(name?: string): void {
    const names = name === undefined ? [...this.sets.keys()] : [name];
    for (const n of names) {
      this.must(n);
      if (this.isReferenced(n)) {
        throw new IpsetError('Set cannot be destroyed: it is in use by a kernel component');
      }
    }
    for (const n of names) this.sets.delete(n);
  }

  /**
   * One ipset command, argv as typed after `ipset`: create NAME TYPE [hashsize N]
   * [maxelem N] [family inet] [-exist], add/del NAME ENTRY [-exist], test NAME ENTRY,
   * flush [NAME], destroy|x [NAME], list [-n] [NAME], save [NAME], swap A B, rename A B.
   * Returns what ipset prints; throws IpsetError with ipset's message.
   */
  command(argv: string[]): string {
    let exist = false;
    const args = argv.filter((a) => {
      if (a === '-exist' || a === '-!') {
        exist = true;
        return false;
      }
      return true;
    });
    const [cmd, ...rest] = args;
    switch (cmd) {
      case 'create':
      case 'n': {
        const [name, type, ...o] = rest;
        if (!name || !type) throw new IpsetError('Syntax error: Missing mandatory argument');
        const opts: { hashsize?: number; maxelem?: number } = {};
        for (let i = 0; i < o.length; i++) {
          const k = o[i];
          if (k === 'hashsize' || k === 'maxelem') {
            const v = strtoui(o[++i] ?? '', 1, 0xffffffff);
            if (v === null) throw new IpsetError(`Syntax error: '${o[i]}' is invalid as number`);
            opts[k] = v;
          } else if (k === 'family') {
            if (o[++i] !== 'inet') throw new IpsetError(`Syntax error: unsupported family`);
          } else throw new IpsetError(`Syntax error: Unknown argument: '${k}'`);
        }
        this.create(name, type, opts, exist);
        return '';
      }
      case 'add':
      case 'a':
      case 'del':
      case 'd':
      case 'test':
      case 't': {
        const [name, entry] = rest;
        if (!name || !entry) throw new IpsetError('Syntax error: Missing mandatory argument');
        const s = this.must(name);
        if (cmd[0] === 'a') s.add(entry, exist);
        else if (cmd[0] === 'd') s.del(entry, exist);
        else if (!s.test(entry)) throw new IpsetError(`${entry} is NOT in set ${name}.`);
        else return `${entry} is in set ${name}.\n`;
        return '';
      }
      case 'flush':
      case 'f':
        for (const n of rest.length ? [rest[0]!] : this.names()) this.must(n).flush();
        return '';
      case 'destroy':
      case 'x':
        this.destroy(rest[0]);
        return '';
      case 'swap':
      case 'w': {
        const [a, b] = rest;
        const sa = this.must(a ?? '');
        const sb = this.must(b ?? '');
        if (sa.type !== sb.type) {
          throw new IpsetError('The sets cannot be swapped: their type does not match');
        }
        sa.swapContents(sb);
        return '';
      }
      case 'rename':
      case 'e': {
        const [a, b] = rest;
        const s = this.must(a ?? '');
        if (this.sets.has(b ?? '')) {
          throw new IpsetError('Set cannot be renamed: a set with the new name already exists');
        }
        if (this.isReferenced(s.name)) {
          throw new IpsetError('Set cannot be renamed: it is in use by another system');
        }
        this.sets.delete(s.name);
        s.name = b!;
        this.sets.set(b!, s);
        return '';
      }
      case 'list':
      case 'l': {
        const namesOnly = rest.includes('-n') || rest.includes('-name');
        const name = rest.find((a) => !a.startsWith('-'));
        const sets = name !== undefined ? [this.must(name)] : [...this.sets.values()];
        if (namesOnly) return sets.map((s) => `${s.name}\n`).join('');
        return sets
          .map(
            (s) =>
              `Name: ${s.name}\nType: ${s.type}\nRevision: 0\n` +
              `Header: family inet hashsize ${s.options.hashsize} maxelem ${s.options.maxelem}\n` +
              `References: ${this.isReferenced(s.name)}\nNumber of entries: ${s.size}\nMembers:\n` +
              s
                .entries()
                .map((e) => `${e}\n`)
                .join(''),
          )
          .join('\n');
      }
      case 'save':
      case 's': {
        const name = rest[0];
        const sets = name !== undefined ? [this.must(name)] : [...this.sets.values()];
        return sets
          .map(
            (s) =>
              `create ${s.name} ${s.type} family inet hashsize ${s.options.hashsize} maxelem ${s.options.maxelem}\n` +
              s
                .entries()
                .map((e) => `add ${s.name} ${e}\n`)
                .join(''),
          )
          .join('');
      }
      default:
        throw new IpsetError(`Syntax error: unknown command '${cmd ?? ''}'`);
    }
  }
}
