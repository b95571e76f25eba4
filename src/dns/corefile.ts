/**
 * The Corefile (Caddyfile syntax, as CoreDNS reads it): server blocks with their keys
 * (`[dns://]zone[:port]`, several per block) and directives, each directive with its
 * arguments and an optional `{ … }` block of sub-directives. Every token keeps its line so
 * plugin setups can name the line of a bad argument.
 *
 * Supported: comments (`#`), double quotes and backquotes, `{$ENV}` / `{env.ENV}`
 * substitution, one block without braces (Caddy's single-server form), reverse zones
 * given as CIDRs (`10.0.0.0/17` → `0.10.in-addr.arpa` … per octet boundary, as CoreDNS
 * `plugin.SplitHostPort`). Refused with the line: `import`, snippets, other transports
 * (`tls://`, `https://`, `grpc://`, `quic://`).
 */

export interface Directive {
  name: string;
  line: number;
  args: string[];
  /** Line of each argument. */
  argLines: number[];
  /** The `{ … }` block, one Directive per line; null without a block. */
  block: Directive[] | null;
}

export interface ServerKey {
  /** Canonical zone: lower case, no final dot; '' is the root. */
  zone: string;
  port: number;
  /** As written. */
  text: string;
}

export interface ServerBlock {
  keys: ServerKey[];
  directives: Directive[];
  line: number;
}

export interface Corefile {
  file: string;
  blocks: ServerBlock[];
}

export class CorefileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(`${file}:${line} - Error during parsing: ${detail}`);
    this.name = 'CorefileError';
  }
}

export const DEFAULT_DNS_PORT = 53;

interface Tok {
  text: string;
  line: number;
  /** Quoted tokens are never braces or comments. */
  quoted: boolean;
}

function substituteEnv(text: string, env: Record<string, string | undefined>): string {
  return text
    .replace(/\{\$([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, v: string) => env[v] ?? '')
    .replace(/\{env\.([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, v: string) => env[v] ?? '');
}

/** Splits the text into tokens with line numbers. */
function lex(file: string, text: string, env: Record<string, string | undefined>): Tok[] {
  const toks: Tok[] = [];
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (c === '"' || c === '`') {
      const startLine = line;
      let s = '';
      i++;
      while (i < n && text[i] !== c) {
        if (c === '"' && text[i] === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) {
          s += text[i + 1];
          i += 2;
          continue;
        }
        if (text[i] === '\n') line++;
        s += text[i];
        i++;
      }
      if (i >= n) throw new CorefileError(file, startLine, 'unterminated quoted string');
      i++;
      toks.push({ text: substituteEnv(s, env), line: startLine, quoted: true });
      continue;
    }
    let s = '';
    while (i < n && !/\s/.test(text[i]!)) {
      s += text[i];
      i++;
    }
    toks.push({ text: substituteEnv(s, env), line, quoted: false });
  }
  return toks;
}

const isOpen = (t: Tok | undefined): boolean => !!t && !t.quoted && t.text === '{';
const isClose = (t: Tok | undefined): boolean => !!t && !t.quoted && t.text === '}';

/** Parses a Corefile. Throws CorefileError with the line of the first problem. */
export function parseCorefile(
  text: string,
  file = 'Corefile',
  env: Record<string, string | undefined> = process.env,
): Corefile {
  const toks = lex(file, text, env);
  const blocks: ServerBlock[] = [];
  let i = 0;

  const parseLines = (closing: boolean, openLine: number): Directive[] => {
    const out: Directive[] = [];
    while (i < toks.length) {
      const t = toks[i]!;
      if (isClose(t)) {
        if (!closing) throw new CorefileError(file, t.line, "unexpected '}'");
        i++;
        return out;
      }
      if (isOpen(t)) throw new CorefileError(file, t.line, "unexpected '{'");
      if (!t.quoted && t.text === 'import') {
        throw new CorefileError(file, t.line, "'import' is not supported by kubewire");
      }
      const d: Directive = { name: t.text, line: t.line, args: [], argLines: [], block: null };
      i++;
      while (i < toks.length && toks[i]!.line === t.line && !isOpen(toks[i]) && !isClose(toks[i])) {
        d.args.push(toks[i]!.text);
        d.argLines.push(toks[i]!.line);
        i++;
      }
      if (isOpen(toks[i]) && toks[i]!.line === t.line) {
        const open = toks[i]!;
        i++;
        d.block = parseLines(true, open.line);
      }
      out.push(d);
    }
    if (closing) throw new CorefileError(file, openLine, "unclosed '{': missing '}'");
    return out;
  };

  while (i < toks.length) {
    const first = toks[i]!;
    if (isOpen(first) || isClose(first)) {
      throw new CorefileError(file, first.line, `unexpected '${first.text}'`);
    }
    const keyToks: Tok[] = [];
    // Keys: tokens up to '{' (they may span lines when separated by commas).
    while (i < toks.length && !isOpen(toks[i])) {
      const t = toks[i]!;
      if (isClose(t)) throw new CorefileError(file, t.line, "unexpected '}'");
      keyToks.push(t);
      i++;
      const next = toks[i];
      if (next && !isOpen(next) && next.line !== t.line && !t.text.endsWith(',')) break;
    }
    if (isOpen(toks[i])) {
      const open = toks[i]!;
      i++;
      const directives = parseLines(true, open.line);
      blocks.push({ keys: parseKeys(file, keyToks), directives, line: first.line });
    } else {
      if (blocks.length > 0) {
        throw new CorefileError(file, first.line, "expected '{' after the server block keys");
      }
      // Single server block without braces: the rest of the file is its directives.
      const directives = parseLines(false, first.line);
      blocks.push({ keys: parseKeys(file, keyToks), directives, line: first.line });
    }
  }
  if (blocks.length === 0) throw new CorefileError(file, 1, 'no server blocks');
  return { file, blocks };
}

function parseKeys(file: string, toks: Tok[]): ServerKey[] {
  const keys: ServerKey[] = [];
  for (const t of toks) {
    if (t.text.startsWith('(')) {
      throw new CorefileError(file, t.line, 'snippets are not supported by kubewire');
    }
    for (const part of t.text.split(',')) {
      if (part === '') continue;
      keys.push(...parseKey(file, t.line, part));
    }
  }
  if (keys.length === 0) throw new CorefileError(file, toks[0]?.line ?? 1, 'no server keys');
  return keys;
}

/** `[dns://]zone[:port]`; a CIDR zone expands to its reverse zones. */
export function parseKey(file: string, line: number, text: string): ServerKey[] {
  let rest = text;
  const scheme = /^([a-z0-9]+):\/\//i.exec(rest);
  if (scheme) {
    if (scheme[1]!.toLowerCase() !== 'dns') {
      throw new CorefileError(
        file,
        line,
        `transport '${scheme[1]}://' is not supported by kubewire (only dns://)`,
      );
    }
    rest = rest.slice(scheme[0].length);
  }
  let port = DEFAULT_DNS_PORT;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    const p = rest.slice(colon + 1);
    if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) {
      throw new CorefileError(file, line, `invalid port in '${text}'`);
    }
    port = Number(p);
    rest = rest.slice(0, colon);
  }
  if (rest === '') rest = '.';
  const cidr = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(rest);
  if (cidr) {
    return reverseZones(cidr[1]!, Number(cidr[2])).map((zone) => ({ zone, port, text }));
  }
  if (!/^[A-Za-z0-9_.*-]+$/.test(rest) && rest !== '.') {
    throw new CorefileError(file, line, `invalid zone '${rest}'`);
  }
  const zone = rest === '.' ? '' : rest.toLowerCase().replace(/\.$/, '');
  return [{ zone, port, text }];
}

/** Reverse zones covering an IPv4 CIDR, split on octet boundaries. */
export function reverseZones(ip: string, bits: number): string[] {
  const o = ip.split('.').map(Number);
  if (bits > 32 || o.some((x) => x > 255)) return [];
  const whole = Math.floor(bits / 8);
  const rem = bits % 8;
  const base = o.slice(0, whole);
  const zoneOf = (octets: number[]): string =>
    [...octets]
      .reverse()
      .concat(['in-addr', 'arpa'] as never[])
      .join('.');
  if (rem === 0) return [zoneOf(base)];
  const start = o[whole]! & (0xff << (8 - rem)) & 0xff;
  const count = 1 << (8 - rem);
  const out: string[] = [];
  for (let k = 0; k < count; k++) out.push(zoneOf([...base, start + k]));
  return out;
}

/** kubeadm's default Corefile (cmd/kubeadm/app/phases/addons/dns/manifests.go). */
export function defaultCorefile(dnsDomain = 'cluster.local'): string {
  return `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes ${dnsDomain} in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success ${dnsDomain}
       disable denial ${dnsDomain}
    }
    loop
    reload
    loadbalance
}
`;
}

/** Reads a duration as CoreDNS does (Go syntax: 5s, 1m30s, 250ms); a bare number is seconds. */
export function parseDuration(text: string): number | null {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let ms = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const v = Number(m[1]);
    const unit = m[2]!;
    ms +=
      unit === 'h'
        ? v * 3600_000
        : unit === 'm'
          ? v * 60_000
          : unit === 's'
            ? v * 1000
            : unit === 'ms'
              ? v
              : unit === 'ns'
                ? v / 1e6
                : v / 1000;
    pos = re.lastIndex;
  }
  return pos === text.length && text.length > 0 ? ms : null;
}
