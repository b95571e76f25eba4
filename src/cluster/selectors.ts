/**
 * Selectors: Kubernetes label selectors (matchLabels / matchExpressions), node selector
 * terms of required node affinity, and the subset of Calico's selector language used by
 * IPPool.spec.nodeSelector.
 */

export type Labels = Record<string, string>;

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: LabelSelectorRequirement[];
}

/**
 * metav1.LabelSelector semantics: all requirements ANDed; an empty selector matches
 * everything. NotIn and DoesNotExist match objects without the key.
 */
export function matchesLabelSelector(selector: LabelSelector, labels: Labels): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, req.key);
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In':
        if (!has || !values.includes(labels[req.key]!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[req.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** True when the selector is empty (no matchLabels and no matchExpressions). */
export function isEmptyLabelSelector(selector: LabelSelector): boolean {
  return (
    Object.keys(selector.matchLabels ?? {}).length === 0 &&
    (selector.matchExpressions ?? []).length === 0
  );
}

/** A plain map selector (Pod.spec.nodeSelector, Service.spec.selector). */
export function matchesMapSelector(selector: Labels, labels: Labels): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

// ---------------------------------------------------------------------------------------
// Node affinity (requiredDuringSchedulingIgnoredDuringExecution)

export interface NodeSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

function matchesNodeRequirement(req: NodeSelectorRequirement, fields: Labels): boolean {
  const has = Object.prototype.hasOwnProperty.call(fields, req.key);
  const value = fields[req.key];
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return has && values.includes(value!);
    case 'NotIn':
      return !has || !values.includes(value!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'Gt':
    case 'Lt': {
      if (!has || values.length !== 1) return false;
      const left = Number.parseInt(value!, 10);
      const right = Number.parseInt(values[0]!, 10);
      if (!Number.isFinite(left) || !Number.isFinite(right)) return false;
      return req.operator === 'Gt' ? left > right : left < right;
    }
  }
}

/**
 * core/v1 NodeSelector semantics: terms are ORed, requirements inside a term ANDed; an
 * empty term matches no node. matchFields supports the field `metadata.name`.
 */
export function matchesNodeSelectorTerms(
  terms: NodeSelectorTerm[],
  nodeName: string,
  nodeLabels: Labels,
): boolean {
  return terms.some((term) => {
    const exprs = term.matchExpressions ?? [];
    const fields = term.matchFields ?? [];
    if (exprs.length === 0 && fields.length === 0) return false;
    return (
      exprs.every((r) => matchesNodeRequirement(r, nodeLabels)) &&
      fields.every((r) => matchesNodeRequirement(r, { 'metadata.name': nodeName }))
    );
  });
}

// ---------------------------------------------------------------------------------------
// Calico selectors

/** Parsed Calico selector (plain data, JSON-serialisable). */
export type CalicoSelector =
  | { op: 'all' }
  | { op: 'has'; key: string }
  | { op: 'eq'; key: string; value: string }
  | { op: 'ne'; key: string; value: string }
  | { op: 'not'; expr: CalicoSelector }
  | { op: 'and'; exprs: CalicoSelector[] }
  | { op: 'or'; exprs: CalicoSelector[] };

export class CalicoSelectorError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
    this.name = 'CalicoSelectorError';
  }
}

const SUPPORTED =
  "kubewire supports all(), key == 'value', key != 'value', has(key), !has(key), &&, || and parentheses";

const KEY_CHAR = /[A-Za-z0-9_./-]/;

/**
 * Parses the subset of Calico's selector syntax that kubewire evaluates. Everything else
 * (`in {…}`, `not in`, `contains`, `starts with`, `ends with`, `global()`, …) is refused
 * with a CalicoSelectorError naming the position. An empty selector means all().
 */
export function parseCalicoSelector(text: string): CalicoSelector {
  let pos = 0;

  const skipSpace = (): void => {
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
  };
  const fail = (what: string, at = pos): never => {
    const near = text.slice(at, at + 20);
    throw new CalicoSelectorError(
      `${what} at position ${at}${near ? ` (near "${near}")` : ''}; ${SUPPORTED}`,
      at,
    );
  };
  const peek = (s: string): boolean => text.startsWith(s, pos);
  const readKey = (): string => {
    const start = pos;
    while (pos < text.length && KEY_CHAR.test(text[pos]!)) pos++;
    if (pos === start) fail('expected a label key');
    return text.slice(start, pos);
  };
  const readString = (): string => {
    const quote = text[pos];
    if (quote !== "'" && quote !== '"') return fail('expected a quoted string');
    const end = text.indexOf(quote, pos + 1);
    if (end < 0) fail('unterminated string');
    const value = text.slice(pos + 1, end);
    pos = end + 1;
    return value;
  };

  const parseOr = (): CalicoSelector => {
    const exprs = [parseAnd()];
    skipSpace();
    while (peek('||')) {
      pos += 2;
      exprs.push(parseAnd());
      skipSpace();
    }
    return exprs.length === 1 ? exprs[0]! : { op: 'or', exprs };
  };
  const parseAnd = (): CalicoSelector => {
    const exprs = [parseUnary()];
    skipSpace();
    while (peek('&&')) {
      pos += 2;
      exprs.push(parseUnary());
      skipSpace();
    }
    return exprs.length === 1 ? exprs[0]! : { op: 'and', exprs };
  };
  const parseUnary = (): CalicoSelector => {
    skipSpace();
    if (peek('!') && !peek('!=')) {
      pos++;
      return { op: 'not', expr: parseUnary() };
    }
    return parsePrimary();
  };
  const parsePrimary = (): CalicoSelector => {
    skipSpace();
    if (peek('(')) {
      pos++;
      const inner = parseOr();
      skipSpace();
      if (!peek(')')) fail("expected ')'");
      pos++;
      return inner;
    }
    if (/^all\s*\(\s*\)/.test(text.slice(pos))) {
      pos += /^all\s*\(\s*\)/.exec(text.slice(pos))![0].length;
      return { op: 'all' };
    }
    if (/^has\s*\(/.test(text.slice(pos))) {
      pos += /^has\s*\(/.exec(text.slice(pos))![0].length;
      skipSpace();
      const key = readKey();
      skipSpace();
      if (!peek(')')) fail("expected ')' after has(key");
      pos++;
      return { op: 'has', key };
    }
    if (/^[a-z]+\s*\(/.test(text.slice(pos))) {
      fail(`unsupported function "${/^[a-z]+/.exec(text.slice(pos))![0]}()"`);
    }
    const key = readKey();
    skipSpace();
    let op: 'eq' | 'ne';
    if (peek('==')) op = 'eq';
    else if (peek('!=')) op = 'ne';
    else {
      const rest = text.slice(pos);
      const word = /^(not\s+in|in|contains|starts\s+with|ends\s+with)\b/.exec(rest);
      if (word) return fail(`unsupported operator "${word[1]}"`);
      return fail(
        pos >= text.length ? `expected == or != after "${key}"` : 'unexpected input',
        pos,
      );
    }
    pos += 2;
    skipSpace();
    const value = readString();
    return { op, key, value };
  };

  skipSpace();
  if (pos >= text.length) return { op: 'all' };
  const result = parseOr();
  skipSpace();
  if (pos < text.length) fail('unexpected input');
  return result;
}

/**
 * Evaluates a Calico selector against labels. As in Calico, `key == 'v'` is false and
 * `key != 'v'` is true when the label is absent.
 */
export function matchesCalicoSelector(selector: CalicoSelector, labels: Labels): boolean {
  switch (selector.op) {
    case 'all':
      return true;
    case 'has':
      return Object.prototype.hasOwnProperty.call(labels, selector.key);
    case 'eq':
      return labels[selector.key] === selector.value;
    case 'ne':
      return labels[selector.key] !== selector.value;
    case 'not':
      return !matchesCalicoSelector(selector.expr, labels);
    case 'and':
      return selector.exprs.every((e) => matchesCalicoSelector(e, labels));
    case 'or':
      return selector.exprs.some((e) => matchesCalicoSelector(e, labels));
  }
}
