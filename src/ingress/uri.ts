/**
 * Request URIs as nginx handles them: the request target is split into path and
 * arguments; the path is percent-decoded, `//` merged and `.`/`..` resolved
 * (ngx_http_parse_complex_uri) to give `$uri`, which locations and `rewrite` match.
 * Strings here are byte strings (latin1: one char per byte), as PCRE sees them in nginx.
 */

export interface ParsedTarget {
  /** The normalized, decoded path ($uri), one char per byte. */
  uri: string;
  /** The arguments after '?', as received (without the '?'); '' when none. */
  args: string;
  /** Host from an absolute-form target (http://host/path), else null. */
  host: string | null;
}

const NEEDS_NORMALIZING = /%|\/\/|\/\.|[^\x21-\x7e]/;

/**
 * Parses a request target. Returns null for a target nginx answers with 400 (not
 * starting with '/', bad percent-encoding, '..' above the root).
 */
export function parseTarget(target: string): ParsedTarget | null {
  let host: string | null = null;
  let rest = target;
  if (rest.charCodeAt(0) !== 47 /* / */) {
    const m = /^https?:\/\/([^/?#]*)(.*)$/i.exec(rest);
    if (!m) return null;
    host = m[1]!;
    rest = m[2] === '' ? '/' : m[2]!;
    if (rest.charCodeAt(0) !== 47) {
      if (rest.charCodeAt(0) === 63 /* ? */) rest = '/' + rest;
      else return null;
    }
  }
  const q = rest.indexOf('?');
  let path = q < 0 ? rest : rest.slice(0, q);
  const args = q < 0 ? '' : rest.slice(q + 1);
  const hash = path.indexOf('#');
  if (hash >= 0) path = path.slice(0, hash);
  if (!NEEDS_NORMALIZING.test(path)) return { uri: path, args, host };
  const uri = normalizePath(path);
  return uri === null ? null : { uri, args, host };
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

/** Decodes %XX, merges slashes, resolves dot segments. null: invalid (400). */
export function normalizePath(path: string): string | null {
  // Decode into bytes (the raw target is ASCII; other bytes are kept as they came).
  const raw = Buffer.from(path, 'latin1');
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === 37 /* % */) {
      const h = i + 2 < raw.length ? hexValue(raw[i + 1]!) : -1;
      const l = i + 2 < raw.length ? hexValue(raw[i + 2]!) : -1;
      if (h < 0 || l < 0) return null;
      const v = h * 16 + l;
      if (v === 0) return null;
      bytes.push(v);
      i += 2;
    } else bytes.push(c);
  }
  const decoded = Buffer.from(bytes).toString('latin1');
  const segments: string[] = [];
  const parts = decoded.split('/');
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!;
    const last = i === parts.length - 1;
    if (seg === '' && !last) continue; // merge_slashes
    if (seg === '.') {
      if (last) segments.push('');
      continue;
    }
    if (seg === '..') {
      if (segments.length === 0) return null;
      segments.pop();
      if (last) segments.push('');
      continue;
    }
    segments.push(seg);
  }
  return '/' + segments.join('/');
}

/**
 * ngx_escape_uri(NGX_ESCAPE_URI): what nginx escapes in a rewritten URI before sending it
 * upstream — space, '#', '%', '?', control characters and bytes ≥ 0x80.
 */
export function escapeUri(uri: string): string {
  let out = '';
  let start = 0;
  for (let i = 0; i < uri.length; i++) {
    const c = uri.charCodeAt(i);
    if (c <= 0x20 || c === 0x23 || c === 0x25 || c === 0x3f || c >= 0x7f) {
      out += uri.slice(start, i) + '%' + (c < 16 ? '0' : '') + c.toString(16).toUpperCase();
      start = i + 1;
    }
  }
  return start === 0 ? uri : out + uri.slice(start);
}

/** A UTF-8 text (from a manifest) as the byte string nginx compares. */
export function toByteString(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(text) ? text : Buffer.from(text, 'utf8').toString('latin1');
}

// ---------------------------------------------------------------------------------------
// Rewrite replacement strings ($1, ${1}, $name, and a few nginx variables)

export type TemplatePart =
  | { kind: 'text'; text: string }
  | { kind: 'capture'; index: number }
  | { kind: 'named'; name: string }
  | { kind: 'var'; name: string };

/** Variables a replacement may use; anything else is kept as text (nginx would refuse it). */
export const TEMPLATE_VARIABLES = new Set([
  'scheme',
  'host',
  'http_host',
  'request_uri',
  'uri',
  'args',
  'is_args',
  'server_port',
  'remote_addr',
]);

export function compileTemplate(template: string, groupNames: ReadonlySet<string>): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let text = '';
  const flush = (): void => {
    if (text !== '') parts.push({ kind: 'text', text });
    text = '';
  };
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if (ch !== '$') {
      text += ch;
      continue;
    }
    const braced = template[i + 1] === '{';
    const m = (braced ? /^\{([A-Za-z0-9_]+)\}/ : /^([0-9]|[A-Za-z_][A-Za-z0-9_]*)/).exec(
      template.slice(i + 1),
    );
    if (!m) {
      text += ch;
      continue;
    }
    const name = m[1]!;
    flush();
    if (/^[0-9]+$/.test(name)) parts.push({ kind: 'capture', index: Number(name) });
    else if (groupNames.has(name)) parts.push({ kind: 'named', name });
    else if (TEMPLATE_VARIABLES.has(name)) parts.push({ kind: 'var', name });
    else parts.push({ kind: 'text', text: `$${m[0]}` });
    i += m[0].length;
  }
  flush();
  return parts;
}

export function expandTemplate(
  parts: readonly TemplatePart[],
  match: RegExpExecArray,
  vars: (name: string) => string,
): string {
  let out = '';
  for (const p of parts) {
    switch (p.kind) {
      case 'text':
        out += p.text;
        break;
      case 'capture':
        out += match[p.index] ?? '';
        break;
      case 'named':
        out += match.groups?.[p.name] ?? '';
        break;
      case 'var':
        out += vars(p.name);
        break;
    }
  }
  return out;
}

/**
 * A PCRE pattern as JavaScript takes it: nginx's `(?i)` prefix becomes the `i` flag.
 * Throws SyntaxError when JavaScript cannot compile it.
 */
export function compileNginxRegex(pattern: string, anchored: boolean): RegExp {
  let p = pattern;
  if (p.startsWith('(?i)')) p = p.slice(4);
  // Exactly as nginx writes it: `~* "^<path>"` (so `^a|b` anchors only `a`, as in PCRE).
  return new RegExp(anchored ? `^${p}` : p, 'i');
}
