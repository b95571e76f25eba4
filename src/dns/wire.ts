/**
 * DNS wire format for the server's hot path.
 *
 * - Queries are read by a checked view (`parseQuery`): header, the one question, and the
 *   OPT record. It returns a parsed query, or a reason code (drop / FORMERR / NOTIMP) instead
 *   of throwing, so a malformed packet costs no exception.
 * - Responses are encoded by `encodeMessage`: owner names and the names inside CNAME, PTR
 *   and NS data are compressed (RFC 1035 4.1.4), the message is cut at a record boundary
 *   and TC set when it exceeds the client's size (as miekg/dns `Msg.Truncate`, which
 *   CoreDNS's `request.Scrub` uses), and the OPT record is always kept.
 * - Record data is built once, when an answer index is built, with dns-packet's record
 *   encoders (`rdataOf`); upstream responses (forward) are decoded by dns-packet.
 *
 * Names are presentation strings without the final dot (the root is ''), in the case the
 * client sent; a label byte that is '.', '\\' or not printable ASCII is written `\DDD`.
 */
import dnsPacket from 'dns-packet';

// ---------------------------------------------------------------------------------------
// Numbers (RFC 1035, RFC 6895 registries)

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  HINFO: 13,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

export const CLASS = { IN: 1, CH: 3, HS: 4, NONE: 254, ANY: 255 } as const;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;

export const OPCODE = { QUERY: 0, IQUERY: 1, STATUS: 2, NOTIFY: 4, UPDATE: 5 } as const;

const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([k, v]) => [v, k]));
const TYPE_NUMBERS = new Map<string, number>(Object.entries(TYPE));
const RCODE_NAMES = new Map<number, string>([
  [0, 'NOERROR'],
  [1, 'FORMERR'],
  [2, 'SERVFAIL'],
  [3, 'NXDOMAIN'],
  [4, 'NOTIMP'],
  [5, 'REFUSED'],
  [6, 'YXDOMAIN'],
  [7, 'YXRRSET'],
  [8, 'NXRRSET'],
  [9, 'NOTAUTH'],
  [10, 'NOTZONE'],
  [16, 'BADVERS'],
]);
const CLASS_NAMES = new Map<number, string>([
  [1, 'IN'],
  [3, 'CH'],
  [4, 'HS'],
  [254, 'NONE'],
  [255, 'ANY'],
]);

/** `A`, `SRV`, … or `TYPE65` (RFC 3597) for types without a mnemonic here. */
export function typeName(t: number): string {
  return TYPE_NAMES.get(t) ?? `TYPE${t}`;
}
export function typeNumber(name: string): number | undefined {
  const up = name.toUpperCase();
  const n = TYPE_NUMBERS.get(up);
  if (n !== undefined) return n;
  const m = /^TYPE(\d{1,5})$/.exec(up);
  return m && Number(m[1]) < 65536 ? Number(m[1]) : undefined;
}
export function rcodeName(r: number): string {
  return RCODE_NAMES.get(r) ?? `RCODE${r}`;
}
export function className(c: number): string {
  return CLASS_NAMES.get(c) ?? `CLASS${c}`;
}

// Header layout (RFC 1035 4.1.1).
const HDR_ID = 0;
const HDR_FLAGS = 2;
const HDR_QDCOUNT = 4;
const HDR_ANCOUNT = 6;
const HDR_NSCOUNT = 8;
const HDR_ARCOUNT = 10;
export const HEADER_LEN = 12;

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const FLAG_AD = 0x0020;
const FLAG_CD = 0x0010;
const EDNS_DO = 0x8000;

export const MAX_NAME_LEN = 255;
export const MAX_LABEL_LEN = 63;
/** Plain DNS over UDP (RFC 1035 4.2.1). */
export const MIN_UDP_SIZE = 512;
export const MAX_MSG_SIZE = 65535;

// ---------------------------------------------------------------------------------------
// Messages

export interface Question {
  /** As sent (case kept), without the final dot; '' is the root. */
  name: string;
  /** Lower-cased `name`: the key of every index. */
  lname: string;
  type: number;
  class: number;
  /** The question's bytes as received (name, type, class): copied into the response as is. */
  wire?: Buffer;
}

export interface EdnsOption {
  code: number;
  data: Buffer;
}

export interface Edns {
  udpSize: number;
  version: number;
  do: boolean;
  /** Upper 8 bits of the extended rcode (OPT TTL bits 24..31). */
  extRcode: number;
  options: EdnsOption[];
}

/** A parsed query: the header fields, the one question and the OPT record. */
export interface Query {
  id: number;
  opcode: number;
  rd: boolean;
  cd: boolean;
  ad: boolean;
  question: Question;
  edns: Edns | null;
  /** Bytes on the wire. */
  size: number;
}

/** A resource record ready for encoding: the data is wire bytes, names in it uncompressed. */
export interface RR {
  name: string;
  type: number;
  class: number;
  ttl: number;
  rdata: Buffer;
  /** For CNAME, PTR and NS: the target name, written compressed instead of `rdata`. */
  target?: string;
  /** Wire form of `name`, filled by the encoder on first use (records may be shared). */
  nameWire?: NameWire;
}

export interface DnsMessage {
  id: number;
  opcode: number;
  qr: boolean;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** Full rcode (values above 15 need EDNS). */
  rcode: number;
  question: Question | null;
  answer: RR[];
  authority: RR[];
  additional: RR[];
  /** Name of the plugin that wrote the message (metrics `plugin` label). */
  plugin?: string | undefined;
  /**
   * Where the encoder keeps the bytes of the answer, authority and additional sections
   * for these very record arrays (kubernetes memo, cache entries): encoded once, copied
   * afterwards while the arrays are the same ones.
   */
  sections?: SectionCache | undefined;
}

export interface SectionCache {
  answer: RR[] | null;
  authority: RR[] | null;
  additional: RR[] | null;
  /** Offset after the question the bytes were encoded behind. */
  qEnd: number;
  bytes: Buffer | null;
  /** Absolute end offset of each record. */
  ends: number[];
}

export function newSectionCache(): SectionCache {
  return { answer: null, authority: null, additional: null, qEnd: 0, bytes: null, ends: [] };
}

// ---------------------------------------------------------------------------------------
// Names

const UPPER_A = 0x41;

/** Appends the presentation form of the label at buf[off..off+len) to `out`. */
function labelToString(buf: Buffer, off: number, len: number): string {
  let s = '';
  let plainFrom = off;
  const end = off + len;
  for (let i = off; i < end; i++) {
    const c = buf[i]!;
    if (c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c) continue;
    s += latin1(buf, plainFrom, i) + '\\' + String(c).padStart(3, '0');
    plainFrom = i + 1;
  }
  return s + latin1(buf, plainFrom, end);
}

function latin1(buf: Buffer, from: number, to: number): string {
  return to <= from ? '' : buf.toString('latin1', from, to);
}

/** Splits a presentation name into raw label byte arrays (escapes decoded). */
export function nameToLabels(name: string): Uint8Array[] | null {
  if (name === '' || name === '.') return [];
  const n = name.endsWith('.') && !name.endsWith('\\.') ? name.slice(0, -1) : name;
  const labels: Uint8Array[] = [];
  if (!n.includes('\\')) {
    for (const l of n.split('.')) {
      if (l.length === 0 || l.length > MAX_LABEL_LEN) return null;
      const b = Buffer.from(l, 'latin1');
      if (b.length !== l.length) return null;
      labels.push(b);
    }
    return labels;
  }
  let cur: number[] = [];
  for (let i = 0; i < n.length; i++) {
    const ch = n.charCodeAt(i);
    if (ch === 0x5c) {
      const d = /^\d{3}/.exec(n.slice(i + 1, i + 4));
      if (d) {
        const v = Number(d[0]);
        if (v > 255) return null;
        cur.push(v);
        i += 3;
      } else if (i + 1 < n.length) {
        cur.push(n.charCodeAt(i + 1) & 0xff);
        i += 1;
      } else return null;
    } else if (ch === 0x2e) {
      if (cur.length === 0 || cur.length > MAX_LABEL_LEN) return null;
      labels.push(Uint8Array.from(cur));
      cur = [];
    } else {
      if (ch > 0xff) return null;
      cur.push(ch);
    }
  }
  if (cur.length === 0 || cur.length > MAX_LABEL_LEN) return null;
  labels.push(Uint8Array.from(cur));
  return labels;
}

/** Wire length of a name (uncompressed), or -1 when it is not a valid name. */
export function nameWireLength(name: string): number {
  const labels = nameToLabels(name);
  if (!labels) return -1;
  let n = 1;
  for (const l of labels) n += l.length + 1;
  return n > MAX_NAME_LEN ? -1 : n;
}

/** Canonical form for comparisons: lower case, no final dot. */
export function canonicalName(name: string): string {
  let n = name.toLowerCase();
  if (n.endsWith('.') && !n.endsWith('\\.')) n = n.slice(0, -1);
  return n;
}

/** Whether `name` equals `zone` or lies under it (both canonical). */
export function isSubdomain(name: string, zone: string): boolean {
  if (zone === '') return true;
  if (name.length === zone.length) return name === zone;
  return (
    name.length > zone.length && name.endsWith(zone) && name[name.length - zone.length - 1] === '.'
  );
}

/** Joins labels/names into one name ('' parts are skipped). */
export function joinName(...parts: string[]): string {
  return parts.filter((p) => p !== '').join('.');
}

/** `name.` for messages and logs ('.' for the root). */
export function fqdn(name: string): string {
  return name === '' ? '.' : `${name}.`;
}

// ---------------------------------------------------------------------------------------
// Parsing queries

const NO_OPTIONS: EdnsOption[] = [];

/** Outcome of parsing a query that cannot be answered normally. */
export const enum ParseFail {
  /** Too short for a header, or a response: nothing is sent back. */
  Drop = 1,
  /** FORMERR with the header (and the question when it parsed). */
  FormErr = 2,
  /** NOTIMP: an opcode other than QUERY. */
  NotImp = 3,
}

export interface ParseError {
  fail: ParseFail;
  id: number;
  opcode: number;
  rd: boolean;
  cd: boolean;
  question: Question | null;
  edns: Edns | null;
  reason: string;
}

/** Reads a name at `off` (no compression allowed in a query's question). */
/** Scratch for names made of plain labels: the dotted form is built here, then read once. */
const NAME_SCRATCH = Buffer.allocUnsafe(MAX_NAME_LEN + 1);

function readQuestionName(
  buf: Buffer,
  off: number,
  end: number,
): { name: string; lname: string; next: number } | null {
  let total = 1;
  let simple = true;
  let plainAll = true;
  let w = 0;
  const start = off;
  for (;;) {
    if (off >= end) return null;
    const len = buf[off]!;
    if (len === 0) {
      off += 1;
      break;
    }
    if (len > MAX_LABEL_LEN) return null; // pointers (0xC0) and reserved label types
    if (off + 1 + len > end) return null;
    total += len + 1;
    if (total > MAX_NAME_LEN) return null;
    if (w > 0) NAME_SCRATCH[w++] = 0x2e;
    for (let i = off + 1; i <= off + len; i++) {
      const c = buf[i]!;
      if (c <= 0x20 || c >= 0x7f || c === 0x2e || c === 0x5c) plainAll = false;
      else if (c >= UPPER_A && c <= 0x5a) simple = false;
      NAME_SCRATCH[w++] = c;
    }
    off += 1 + len;
  }
  let name: string;
  if (plainAll) name = w === 0 ? '' : NAME_SCRATCH.toString('latin1', 0, w);
  else {
    // Escape the odd bytes label by label (\DDD), as miekg/dns prints them.
    name = '';
    let o = start;
    while (buf[o] !== 0) {
      const label = labelToString(buf, o + 1, buf[o]!);
      name = name === '' ? label : `${name}.${label}`;
      o += buf[o]! + 1;
    }
  }
  return { name, lname: simple ? name : name.toLowerCase(), next: off };
}

/**
 * Skips one resource record at `off`; returns the next offset or -1 when it runs past the
 * end. Names may be compressed (pointer = 2 bytes ends the name).
 */
function skipRR(buf: Uint8Array, off: number, end: number): number {
  off = skipName(buf, off, end);
  if (off < 0 || off + 10 > end) return -1;
  const rdlen = (buf[off + 8]! << 8) | buf[off + 9]!;
  off += 10 + rdlen;
  return off > end ? -1 : off;
}

function skipName(buf: Uint8Array, off: number, end: number): number {
  for (let n = 0; n < 128; n++) {
    if (off >= end) return -1;
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= end ? off + 2 : -1;
    if (len > MAX_LABEL_LEN) return -1;
    off += len + 1;
  }
  return -1;
}

/**
 * Parses a query. Follows miekg/dns's default accept function (which CoreDNS uses):
 * responses are dropped; opcodes other than QUERY get NOTIMP; QDCOUNT ≠ 1, ANCOUNT > 1,
 * NSCOUNT > 1 or ARCOUNT > 2 get FORMERR, as does a record that runs past the end, a
 * second OPT, or an OPT with a non-root name.
 */
export function parseQuery(buf: Buffer): Query | ParseError {
  const end = buf.length;
  if (end < HEADER_LEN) return fail(ParseFail.Drop, 0, 0, 0, 'shorter than a header');
  const id = (buf[HDR_ID]! << 8) | buf[HDR_ID + 1]!;
  const flags = (buf[HDR_FLAGS]! << 8) | buf[HDR_FLAGS + 1]!;
  if (flags & FLAG_QR) return fail(ParseFail.Drop, id, flags, 0, 'a response, not a query');
  const opcode = (flags >>> 11) & 0xf;
  if (opcode !== OPCODE.QUERY) return fail(ParseFail.NotImp, id, flags, opcode, 'opcode');
  const qd = (buf[HDR_QDCOUNT]! << 8) | buf[HDR_QDCOUNT + 1]!;
  const an = (buf[HDR_ANCOUNT]! << 8) | buf[HDR_ANCOUNT + 1]!;
  const ns = (buf[HDR_NSCOUNT]! << 8) | buf[HDR_NSCOUNT + 1]!;
  const ar = (buf[HDR_ARCOUNT]! << 8) | buf[HDR_ARCOUNT + 1]!;
  if (qd !== 1) return fail(ParseFail.FormErr, id, flags, opcode, `QDCOUNT ${qd}`);
  if (an > 1 || ns > 1 || ar > 2) return fail(ParseFail.FormErr, id, flags, opcode, 'counts');
  const qn = readQuestionName(buf, HEADER_LEN, end);
  if (!qn || qn.next + 4 > end) return fail(ParseFail.FormErr, id, flags, opcode, 'question');
  let off = qn.next;
  const question: Question = {
    name: qn.name,
    lname: qn.lname,
    type: (buf[off]! << 8) | buf[off + 1]!,
    class: (buf[off + 2]! << 8) | buf[off + 3]!,
    wire: buf.subarray(HEADER_LEN, off + 4),
  };
  off += 4;
  for (let i = 0; i < an + ns; i++) {
    off = skipRR(buf, off, end);
    if (off < 0) return fail(ParseFail.FormErr, id, flags, opcode, 'record', question);
  }
  let edns: Edns | null = null;
  for (let i = 0; i < ar; i++) {
    const start = off;
    off = skipRR(buf, off, end);
    if (off < 0) return fail(ParseFail.FormErr, id, flags, opcode, 'additional', question);
    const nameEnd = skipName(buf, start, end);
    const type = (buf[nameEnd]! << 8) | buf[nameEnd + 1]!;
    if (type !== TYPE.OPT) continue;
    if (edns || nameEnd !== start + 1 || buf[start] !== 0) {
      return fail(ParseFail.FormErr, id, flags, opcode, 'OPT', question);
    }
    const p = nameEnd + 2;
    const rdlen = (buf[p + 6]! << 8) | buf[p + 7]!;
    let o = p + 8;
    const oend = o + rdlen;
    const options: EdnsOption[] = o < oend ? [] : NO_OPTIONS;
    while (o < oend) {
      if (o + 4 > oend) return fail(ParseFail.FormErr, id, flags, opcode, 'OPT option', question);
      const code = (buf[o]! << 8) | buf[o + 1]!;
      const len = (buf[o + 2]! << 8) | buf[o + 3]!;
      if (o + 4 + len > oend) {
        return fail(ParseFail.FormErr, id, flags, opcode, 'OPT option', question);
      }
      options.push({ code, data: Buffer.from(buf.subarray(o + 4, o + 4 + len)) });
      o += 4 + len;
    }
    edns = {
      udpSize: (buf[p]! << 8) | buf[p + 1]!,
      extRcode: buf[p + 2]!,
      version: buf[p + 3]!,
      do: (((buf[p + 4]! << 8) | buf[p + 5]!) & EDNS_DO) !== 0,
      options,
    };
  }
  // Bytes after the last record are ignored, as miekg/dns does.
  return {
    id,
    opcode,
    rd: (flags & FLAG_RD) !== 0,
    cd: (flags & FLAG_CD) !== 0,
    ad: (flags & FLAG_AD) !== 0,
    question,
    edns,
    size: end,
  };
}

function fail(
  kind: ParseFail,
  id: number,
  flags: number,
  opcode: number,
  reason: string,
  question: Question | null = null,
): ParseError {
  return {
    fail: kind,
    id,
    opcode,
    rd: (flags & FLAG_RD) !== 0,
    cd: (flags & FLAG_CD) !== 0,
    question,
    edns: null,
    reason,
  };
}

export function isParseError(q: Query | ParseError): q is ParseError {
  return (q as ParseError).fail !== undefined;
}

// ---------------------------------------------------------------------------------------
// Building messages

/** The reply skeleton for a query (miekg/dns `SetReply`): id, opcode, RD, CD, question. */
export function replyTo(q: Query, plugin?: string): DnsMessage {
  return {
    id: q.id,
    opcode: q.opcode,
    qr: true,
    aa: false,
    tc: false,
    rd: q.rd,
    ra: false,
    ad: false,
    cd: q.cd,
    rcode: RCODE.NOERROR,
    question: q.question,
    answer: [],
    authority: [],
    additional: [],
    plugin,
    sections: undefined,
  };
}

/** A header-only error reply (miekg/dns `SetRcode`), with the question when known. */
export function errorReply(
  q: { id: number; opcode: number; rd: boolean; cd: boolean; question: Question | null },
  rcode: number,
): DnsMessage {
  return {
    id: q.id,
    opcode: q.opcode,
    qr: true,
    aa: false,
    tc: false,
    rd: q.rd,
    ra: false,
    ad: false,
    cd: q.cd,
    rcode,
    question: q.question,
    answer: [],
    authority: [],
    additional: [],
  };
}

// ---------------------------------------------------------------------------------------
// Record data (built once per index, with dns-packet's encoders)

/** Encodes the data of one record with dns-packet; returns the rdata bytes. */
export function rdataOf(answer: dnsPacket.Answer): Buffer {
  const packet = dnsPacket.encode({
    type: 'response',
    id: 0,
    flags: 0,
    answers: [{ ...answer, name: '.' } as dnsPacket.Answer],
  });
  // header 12, root name 1, type 2, class 2, ttl 4, rdlength 2
  const rdlen = packet.readUInt16BE(HEADER_LEN + 9);
  return packet.subarray(HEADER_LEN + 11, HEADER_LEN + 11 + rdlen);
}

function nameRdata(target: string): Buffer {
  const labels = nameToLabels(target);
  if (!labels) throw new Error(`invalid domain name ${JSON.stringify(target)}`);
  let n = 1;
  for (const l of labels) n += l.length + 1;
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  for (const l of labels) {
    out[o++] = l.length;
    out.set(l, o);
    o += l.length;
  }
  out[o] = 0;
  return out;
}

export function aRdata(ip: string): Buffer {
  const parts = ip.split('.');
  const b = Buffer.allocUnsafe(4);
  for (let i = 0; i < 4; i++) b[i] = Number(parts[i]);
  return b;
}

export function rrA(name: string, ttl: number, ip: string | Buffer): RR {
  return {
    name,
    type: TYPE.A,
    class: CLASS.IN,
    ttl,
    rdata: typeof ip === 'string' ? aRdata(ip) : ip,
  };
}

export function rrAAAA(name: string, ttl: number, ip: string): RR {
  return {
    name,
    type: TYPE.AAAA,
    class: CLASS.IN,
    ttl,
    rdata: rdataOf({ type: 'AAAA', name, data: ip }),
  };
}

function rrName(type: number, name: string, ttl: number, target: string): RR {
  return { name, type, class: CLASS.IN, ttl, rdata: nameRdata(target), target };
}

export const rrCNAME = (name: string, ttl: number, target: string): RR =>
  rrName(TYPE.CNAME, name, ttl, target);
export const rrPTR = (name: string, ttl: number, target: string): RR =>
  rrName(TYPE.PTR, name, ttl, target);
export const rrNS = (name: string, ttl: number, target: string): RR =>
  rrName(TYPE.NS, name, ttl, target);

export function rrSRV(
  name: string,
  ttl: number,
  priority: number,
  weight: number,
  port: number,
  target: string,
): RR {
  const t = nameRdata(target);
  const rdata = Buffer.allocUnsafe(6 + t.length);
  rdata.writeUInt16BE(priority, 0);
  rdata.writeUInt16BE(weight, 2);
  rdata.writeUInt16BE(port, 4);
  t.copy(rdata, 6);
  return { name, type: TYPE.SRV, class: CLASS.IN, ttl, rdata };
}

export function rrTXT(name: string, ttl: number, texts: string[]): RR {
  return {
    name,
    type: TYPE.TXT,
    class: CLASS.IN,
    ttl,
    rdata: rdataOf({ type: 'TXT', name, data: texts }),
  };
}

export interface SoaFields {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

export function rrSOA(name: string, ttl: number, soa: SoaFields): RR {
  const m = nameRdata(soa.mname);
  const r = nameRdata(soa.rname);
  const rdata = Buffer.allocUnsafe(m.length + r.length + 20);
  m.copy(rdata, 0);
  r.copy(rdata, m.length);
  let o = m.length + r.length;
  for (const v of [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum]) {
    rdata.writeUInt32BE(v >>> 0, o);
    o += 4;
  }
  return { name, type: TYPE.SOA, class: CLASS.IN, ttl, rdata };
}

/** A copy of `rr` with another owner name and/or TTL (data shared). */
export function withName(rr: RR, name: string, ttl = rr.ttl): RR {
  return rr.target !== undefined
    ? { name, type: rr.type, class: rr.class, ttl, rdata: rr.rdata, target: rr.target }
    : { name, type: rr.type, class: rr.class, ttl, rdata: rr.rdata };
}

// ---------------------------------------------------------------------------------------
// Converting dns-packet records (upstream answers, hosts) to RRs

/** Converts a record decoded by dns-packet; OPT and unknown shapes give null. */
export function rrFromPacket(a: dnsPacket.Answer): RR | null {
  if (a.type === 'OPT') return null;
  const type = typeNumber(a.type);
  if (type === undefined) return null;
  const cls =
    a.class === undefined ? CLASS.IN : ((CLASS as Record<string, number>)[a.class] ?? CLASS.IN);
  const ttl = a.ttl ?? 0;
  const name = a.name === '.' ? '' : a.name.replace(/\.$/, '');
  switch (a.type) {
    case 'CNAME':
    case 'PTR':
    case 'NS': {
      const target = a.data.replace(/\.$/, '');
      return { name, type, class: cls, ttl, rdata: nameRdata(target), target };
    }
    default:
      try {
        return { name, type, class: cls, ttl, rdata: rdataOf(a) };
      } catch {
        return null;
      }
  }
}

// ---------------------------------------------------------------------------------------
// Encoding

const scratch = Buffer.allocUnsafe(MAX_MSG_SIZE + 512);

/** A name's uncompressed wire form with its label offsets and lower-cased suffixes. */
export interface NameWire {
  /** The presentation name this is the wire form of. */
  name: string;
  bytes: Buffer;
  /** Offset of each label in `bytes`. */
  starts: number[];
  /** Lower-cased presentation suffix starting at each label (compression keys). */
  keys: string[];
}

const nameCache = new Map<string, NameWire>();
const NAME_CACHE_MAX = 50_000;

/** The wire form of a presentation name (cached). Throws on an invalid name. */
export function nameWire(name: string): NameWire {
  let w = nameCache.get(name);
  if (w) return w;
  const labels = nameToLabels(name);
  if (!labels) throw new Error(`invalid domain name ${JSON.stringify(name)}`);
  let n = 1;
  for (const l of labels) n += l.length + 1;
  if (n > MAX_NAME_LEN) throw new Error(`domain name too long: ${JSON.stringify(name)}`);
  const bytes = Buffer.allocUnsafe(n);
  const starts: number[] = [];
  let o = 0;
  for (const l of labels) {
    starts.push(o);
    bytes[o] = l.length;
    bytes.set(l, o + 1);
    o += l.length + 1;
  }
  bytes[o] = 0;
  const lname = name.toLowerCase();
  const textStarts = labelStarts(lname, labels.length);
  const keys = textStarts.map((t) => lname.slice(t));
  w = { name, bytes, starts, keys };
  if (nameCache.size >= NAME_CACHE_MAX) nameCache.clear();
  nameCache.set(name, w);
  return w;
}

/**
 * The compression dictionary of the message being encoded: lower-cased name suffixes and
 * their offsets, in two arrays reused between messages (encoding is synchronous). A
 * message holds few distinct names, so a linear scan beats building a Map per message.
 */
const DICT_KEYS: string[] = [];
const DICT_OFFS: number[] = [];

class Compressor {
  /** Entries in the dictionary; -1 until first needed. */
  private n = -1;
  constructor(
    private readonly buf: Buffer,
    private readonly q: Question | null,
    private readonly qlname: string | null,
  ) {}

  /** Writes the question at offset 12; returns the offset after it. */
  writeQuestion(): number {
    const q = this.q!;
    const buf = this.buf;
    let off: number;
    if (q.wire) {
      q.wire.copy(buf, HEADER_LEN);
      off = HEADER_LEN + q.wire.length;
    } else {
      const w = q.name === '' ? null : nameWire(q.name);
      off = HEADER_LEN;
      if (w) {
        w.bytes.copy(buf, off);
        off += w.bytes.length;
      } else buf[off++] = 0;
      buf.writeUInt16BE(q.type, off);
      buf.writeUInt16BE(q.class, off + 2);
      off += 4;
    }
    return off;
  }

  private find(key: string): number {
    for (let i = 0; i < this.n; i++) if (DICT_KEYS[i] === key) return DICT_OFFS[i]!;
    return -1;
  }

  private add(key: string, off: number): void {
    if (off >= 0x3fff || this.find(key) >= 0) return;
    DICT_KEYS[this.n] = key;
    DICT_OFFS[this.n] = off;
    this.n++;
  }

  /** Starts the dictionary with the question name's suffixes (at offset 12). */
  private init(): void {
    this.n = 0;
    if (this.q && this.qlname !== null && this.qlname !== '') {
      const w = nameWire(this.qlname);
      for (let i = 0; i < w.keys.length; i++) this.add(w.keys[i]!, HEADER_LEN + w.starts[i]!);
    }
  }

  /** Writes `name` at `off`, compressed; returns the new offset. */
  write(name: string, off: number, rr?: RR): number {
    const buf = this.buf;
    const ql = this.qlname;
    if (ql !== null && name.length === ql.length && (name === ql || name.toLowerCase() === ql)) {
      if (ql === '') {
        buf[off] = 0;
        return off + 1;
      }
      buf[off] = 0xc0;
      buf[off + 1] = HEADER_LEN;
      return off + 2;
    }
    if (name === '') {
      buf[off] = 0;
      return off + 1;
    }
    if (this.n < 0) this.init();
    let w: NameWire;
    if (rr !== undefined) {
      w = rr.nameWire !== undefined && rr.nameWire.name === name ? rr.nameWire : nameWire(name);
      rr.nameWire = w;
    } else w = nameWire(name);
    const n = w.starts.length;
    let found = n;
    let ptr = 0;
    for (let i = 0; i < n; i++) {
      const p = this.find(w.keys[i]!);
      if (p >= 0) {
        found = i;
        ptr = p;
        break;
      }
    }
    const prefix = found < n ? w.starts[found]! : w.bytes.length;
    w.bytes.copy(buf, off, 0, prefix);
    for (let j = 0; j < found; j++) this.add(w.keys[j]!, off + w.starts[j]!);
    off += prefix;
    if (found === n) return off;
    buf[off] = 0xc0 | (ptr >> 8);
    buf[off + 1] = ptr & 0xff;
    return off + 2;
  }
}

/** Start offsets of each label in a presentation name (escapes respected). */
function labelStarts(name: string, count: number): number[] {
  const starts = [0];
  if (!name.includes('\\')) {
    let i = name.indexOf('.');
    while (i >= 0 && starts.length < count) {
      starts.push(i + 1);
      i = name.indexOf('.', i + 1);
    }
    return starts;
  }
  for (let i = 0; i < name.length && starts.length < count; i++) {
    if (name[i] === '\\') {
      i += /^\d{3}/.test(name.slice(i + 1, i + 4)) ? 3 : 1;
    } else if (name[i] === '.') starts.push(i + 1);
  }
  return starts;
}

/** Record end offsets of the message being encoded (reused: encoding is synchronous). */
const ENDS: number[] = [];

export interface EncodeResult {
  wire: Buffer;
  /** Whether records were cut to fit (TC set). */
  truncated: boolean;
}

/**
 * Encodes a message for a client that accepts `maxSize` bytes. `opt`, when given, is the
 * OPT record to send (it always fits: records are cut before it). With `view`, the result
 * is a view of the encoder's scratch buffer, valid until the next encode: for a caller that
 * copies it at once (the batched UDP listener); otherwise it is a buffer of its own.
 */
export function encodeMessage(
  m: DnsMessage,
  maxSize: number,
  opt: Edns | null,
  view = false,
): EncodeResult {
  const buf = scratch;
  let flags = FLAG_QR | ((m.opcode & 0xf) << 11) | (m.rcode & 0xf);
  if (m.aa) flags |= FLAG_AA;
  if (m.tc) flags |= FLAG_TC;
  if (m.rd) flags |= FLAG_RD;
  if (m.ra) flags |= FLAG_RA;
  if (m.ad) flags |= FLAG_AD;
  if (m.cd) flags |= FLAG_CD;
  buf.writeUInt16BE(m.id & 0xffff, HDR_ID);
  let off = HEADER_LEN;
  const q = m.question;
  const comp = new Compressor(buf, q, q ? q.lname : null);
  if (q) off = comp.writeQuestion();
  const qEnd = off;
  let ends: number[] = ENDS;
  let overflow = false;
  const sc = m.sections;
  if (
    sc !== undefined &&
    sc.bytes !== null &&
    sc.qEnd === qEnd &&
    sc.answer === m.answer &&
    sc.authority === m.authority &&
    sc.additional === m.additional
  ) {
    // The same records after a question of the same shape: the bytes encoded last time
    // (compression pointers into the question stay valid, the question is at 12).
    sc.bytes.copy(buf, qEnd);
    off = qEnd + sc.bytes.length;
    ends = sc.ends;
  } else {
    ends.length = 0;
    const limit = MAX_MSG_SIZE;
    outer: for (let s = 0; s < 3; s++) {
      const section = s === 0 ? m.answer : s === 1 ? m.authority : m.additional;
      for (let r = 0; r < section.length; r++) {
        const rr = section[r]!;
        if (off + 10 + MAX_NAME_LEN * 2 + rr.rdata.length > buf.length) {
          overflow = true;
          break outer;
        }
        off = comp.write(rr.name, off, rr);
        buf.writeUInt16BE(rr.type, off);
        buf.writeUInt16BE(rr.class, off + 2);
        buf.writeUInt32BE(rr.ttl >>> 0, off + 4);
        const rdStart = off + 10;
        let rdEnd: number;
        if (rr.target !== undefined) rdEnd = comp.write(rr.target, rdStart);
        else {
          rr.rdata.copy(buf, rdStart);
          rdEnd = rdStart + rr.rdata.length;
        }
        buf.writeUInt16BE(rdEnd - rdStart, off + 8);
        off = rdEnd;
        ends.push(off);
        if (off > limit) {
          overflow = true;
          break outer;
        }
      }
    }
    if (sc !== undefined && !overflow) {
      sc.answer = m.answer;
      sc.authority = m.authority;
      sc.additional = m.additional;
      sc.qEnd = qEnd;
      sc.bytes = Buffer.from(buf.subarray(qEnd, off));
      sc.ends = ends.slice();
    }
  }
  const optLen = opt ? 11 + optionsLength(opt.options) : 0;
  const max = Math.min(Math.max(maxSize, MIN_UDP_SIZE), MAX_MSG_SIZE);
  let kept = ends.length;
  let truncated = m.tc;
  if (overflow || off + optLen > max) {
    while (kept > 0 && ends[kept - 1]! + optLen > max) kept--;
    off = kept > 0 ? ends[kept - 1]! : qEnd;
    truncated = true;
  }
  if (truncated) flags |= FLAG_TC;
  buf.writeUInt16BE(flags, HDR_FLAGS);
  const an = Math.min(kept, m.answer.length);
  const ns = Math.min(Math.max(kept - m.answer.length, 0), m.authority.length);
  const ar = Math.max(kept - m.answer.length - m.authority.length, 0);
  buf.writeUInt16BE(m.question ? 1 : 0, HDR_QDCOUNT);
  buf.writeUInt16BE(an, HDR_ANCOUNT);
  buf.writeUInt16BE(ns, HDR_NSCOUNT);
  buf.writeUInt16BE(ar + (opt ? 1 : 0), HDR_ARCOUNT);
  if (opt) {
    buf[off] = 0;
    buf.writeUInt16BE(TYPE.OPT, off + 1);
    buf.writeUInt16BE(opt.udpSize, off + 3);
    buf[off + 5] = (m.rcode >> 4) & 0xff;
    buf[off + 6] = opt.version;
    buf.writeUInt16BE(opt.do ? EDNS_DO : 0, off + 7);
    buf.writeUInt16BE(optLen - 11, off + 9);
    off += 11;
    for (const o of opt.options) {
      buf.writeUInt16BE(o.code, off);
      buf.writeUInt16BE(o.data.length, off + 2);
      o.data.copy(buf, off + 4);
      off += 4 + o.data.length;
    }
  }
  if (view) return { wire: buf.subarray(0, off), truncated };
  const wire = Buffer.allocUnsafe(off);
  buf.copy(wire, 0, 0, off);
  return { wire, truncated };
}

function optionsLength(options: EdnsOption[]): number {
  let n = 0;
  for (const o of options) n += 4 + o.data.length;
  return n;
}

/** Encodes a query (for forward, loop and tests). */
export function encodeQuery(
  id: number,
  name: string,
  type: number,
  opts: { rd?: boolean; cd?: boolean; edns?: Edns | null; cls?: number } = {},
): Buffer {
  const m: DnsMessage = {
    id,
    opcode: OPCODE.QUERY,
    qr: false,
    aa: false,
    tc: false,
    rd: opts.rd ?? true,
    ra: false,
    ad: false,
    cd: opts.cd ?? false,
    rcode: 0,
    question: { name, lname: name.toLowerCase(), type, class: opts.cls ?? CLASS.IN },
    answer: [],
    authority: [],
    additional: [],
  };
  const { wire } = encodeMessage(m, MAX_MSG_SIZE, opts.edns ?? null);
  wire[2]! &= 0x7f; // clear QR
  return wire;
}

/** Keeps the EDNS options CoreDNS echoes (request.supportedOptions). */
export function supportedOptions(options: EdnsOption[]): EdnsOption[] {
  return options.filter((o) => o.code === 3 || (o.code >= 9 && o.code <= 12));
}

/** Decodes a full message with dns-packet (forward responses, tests). */
export function decodeMessage(wire: Buffer): DnsMessage {
  const p = dnsPacket.decode(wire);
  const flags = p.flags ?? 0;
  const q = p.questions?.[0];
  const opt = (p.additionals ?? []).find((a) => a.type === 'OPT') as
    { extendedRcode?: number } | undefined;
  const conv = (list: dnsPacket.Answer[] | undefined): RR[] =>
    (list ?? []).map(rrFromPacket).filter((r): r is RR => r !== null);
  const name = q ? (q.name === '.' ? '' : q.name) : '';
  return {
    id: p.id ?? 0,
    opcode: (flags >> 11) & 0xf,
    qr: (flags & FLAG_QR) !== 0,
    aa: (flags & FLAG_AA) !== 0,
    tc: (flags & FLAG_TC) !== 0,
    rd: (flags & FLAG_RD) !== 0,
    ra: (flags & FLAG_RA) !== 0,
    ad: (flags & FLAG_AD) !== 0,
    cd: (flags & FLAG_CD) !== 0,
    rcode: (flags & 0xf) | (((opt?.extendedRcode ?? 0) & 0xff) << 4),
    question: q
      ? {
          name,
          lname: name.toLowerCase(),
          type: typeNumber(q.type) ?? 0,
          class:
            q.class === undefined ? CLASS.IN : ((CLASS as Record<string, number>)[q.class] ?? 0),
        }
      : null,
    answer: conv(p.answers),
    authority: conv(p.authorities),
    additional: conv(p.additionals),
  };
}

/** `qr,aa,rd` as CoreDNS's log plugin prints the response flags. */
export function flagsText(m: DnsMessage): string {
  const f: string[] = [];
  if (m.qr) f.push('qr');
  if (m.aa) f.push('aa');
  if (m.tc) f.push('tc');
  if (m.rd) f.push('rd');
  if (m.ra) f.push('ra');
  if (m.ad) f.push('ad');
  if (m.cd) f.push('cd');
  return f.join(',');
}
