/**
 * rewrite — rewrites the query name before the plugins after it see it, and the response
 * back (CoreDNS plugin/rewrite, field `name`).
 *
 *   rewrite [continue|stop] name [exact|prefix|suffix|substring|regex] FROM TO [answer auto | answer name FROM TO | answer value FROM TO]
 *
 * The question section of the response is always the client's. `answer auto` rewrites
 * answer owner names that equal the rewritten name back to the client's name;
 * `answer name` applies a regex (with {1}… groups) to owner names, `answer value` to the
 * targets of CNAME/PTR/NS/SRV records. Other fields (type, class, edns0, ttl, cname,
 * rcode) are refused as not supported.
 */
import {
  argError,
  then,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
} from '../plugin.js';
import { canonicalName, nameWireLength, rrFromPacket, RCODE, TYPE, type RR } from '../wire.js';
import type { Directive } from '../corefile.js';

type Match = 'exact' | 'prefix' | 'suffix' | 'substring' | 'regex';

interface AnswerRule {
  kind: 'auto' | 'name' | 'value';
  from?: RegExp;
  to?: string;
}

interface Rule {
  stop: boolean;
  match: Match;
  from: string;
  re: RegExp | null;
  to: string;
  answers: AnswerRule[];
}

function expand(template: string, groups: RegExpExecArray): string {
  return template.replace(/\{(\d+)\}/g, (_, n: string) => groups[Number(n)] ?? '');
}

/** Applies a rule to a canonical name; null when it does not match. */
export function applyRule(rule: Rule, lname: string): string | null {
  switch (rule.match) {
    case 'exact':
      return lname === rule.from ? rule.to : null;
    case 'prefix':
      return lname.startsWith(rule.from) ? rule.to + lname.slice(rule.from.length) : null;
    case 'suffix':
      return lname.endsWith(rule.from)
        ? lname.slice(0, lname.length - rule.from.length) + rule.to
        : null;
    case 'substring':
      return lname.includes(rule.from) ? lname.replace(rule.from, rule.to) : null;
    case 'regex': {
      const m = rule.re!.exec(`${lname}.`);
      return m ? canonicalName(expand(rule.to, m)) : null;
    }
  }
}

function rewriteTarget(rr: RR, re: RegExp, to: string): RR {
  if (rr.target !== undefined) {
    const m = re.exec(`${rr.target}.`);
    if (!m) return rr;
    const target = canonicalName(expand(to, m));
    return (
      rrFromPacket({
        type: typeNameOf(rr.type),
        name: rr.name,
        ttl: rr.ttl,
        data: target,
      } as never) ?? rr
    );
  }
  return rr;
}

function typeNameOf(t: number): string {
  return t === TYPE.CNAME ? 'CNAME' : t === TYPE.PTR ? 'PTR' : 'NS';
}

export class RewritePlugin implements PluginInstance {
  readonly name = 'rewrite';
  constructor(readonly rules: Rule[]) {}

  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    const orig = req.q.question;
    let lname = orig.lname;
    const applied: { rule: Rule; before: string; after: string }[] = [];
    for (const rule of this.rules) {
      const out = applyRule(rule, lname);
      if (out === null) continue;
      applied.push({ rule, before: lname, after: out });
      lname = out;
      if (rule.stop) break;
    }
    if (applied.length === 0) return next(req);
    if (nameWireLength(lname) < 0) return RCODE.SERVFAIL;
    const rewritten: DnsRequest = {
      ...req,
      q: { ...req.q, question: { name: lname, lname, type: orig.type, class: orig.class } },
    };
    return then(next(rewritten), (r) => {
      if (typeof r === 'number') return r;
      r.question = orig;
      // Encoded sections were laid out behind the rewritten question: encode afresh.
      r.sections = undefined;
      for (let i = applied.length - 1; i >= 0; i--) {
        const { rule, before, after } = applied[i]!;
        for (const a of rule.answers) {
          if (a.kind === 'auto') {
            r.answer = r.answer.map((rr) =>
              rr.name.toLowerCase() === after ? { ...rr, name: i === 0 ? orig.name : before } : rr,
            );
          } else if (a.kind === 'name') {
            r.answer = r.answer.map((rr) => {
              const m = a.from!.exec(`${rr.name}.`);
              return m ? { ...rr, name: canonicalName(expand(a.to!, m)) } : rr;
            });
          } else {
            r.answer = r.answer.map((rr) => rewriteTarget(rr, a.from!, a.to!));
          }
        }
      }
      return r;
    });
  }
}

const FIELDS_UNSUPPORTED = ['type', 'class', 'edns0', 'ttl', 'cname', 'rcode'];

function parseRule(d: Directive, ctx: Parameters<PluginSpec['setup']>[1]): Rule {
  const a = d.args;
  let i = 0;
  let stop = true;
  if (a[i] === 'continue' || a[i] === 'stop') {
    stop = a[i] === 'stop';
    i++;
  }
  const field = a[i];
  if (field === undefined) argError(ctx, d, 'rewrite: expected a field (name)');
  if (FIELDS_UNSUPPORTED.includes(field)) {
    argError(ctx, d, `rewrite: field '${field}' is not supported by kubewire (only 'name')`, i);
  }
  if (field !== 'name') argError(ctx, d, `rewrite: unknown field '${field}'`, i);
  i++;
  let match: Match = 'exact';
  if (
    ['exact', 'prefix', 'suffix', 'substring', 'regex'].includes(a[i] ?? '') &&
    a.length - i >= 3
  ) {
    match = a[i] as Match;
    i++;
  }
  const from = a[i];
  const to = a[i + 1];
  if (from === undefined || to === undefined) argError(ctx, d, 'rewrite: name: expected FROM TO');
  let re: RegExp | null = null;
  if (match === 'regex') {
    if (from.length > 10000) argError(ctx, d, 'rewrite: regex pattern too long', i);
    try {
      re = new RegExp(from, 'i');
    } catch {
      argError(ctx, d, `rewrite: invalid regex '${from}'`, i);
    }
  }
  i += 2;
  const answers: AnswerRule[] = [];
  while (i < a.length) {
    if (a[i] !== 'answer') argError(ctx, d, `rewrite: unexpected '${a[i]}'`, i);
    const kind = a[i + 1];
    if (kind === 'auto') {
      answers.push({ kind: 'auto' });
      i += 2;
    } else if (kind === 'name' || kind === 'value') {
      const f = a[i + 2];
      const t = a[i + 3];
      if (f === undefined || t === undefined)
        argError(ctx, d, `rewrite: answer ${kind}: expected FROM TO`, i);
      let r: RegExp;
      try {
        r = new RegExp(f, 'i');
      } catch {
        return argError(ctx, d, `rewrite: invalid regex '${f}'`, i + 2);
      }
      answers.push({ kind, from: r, to: t });
      i += 4;
    } else argError(ctx, d, "rewrite: answer: expected 'auto', 'name' or 'value'", i + 1);
  }
  const norm = (s: string): string =>
    match === 'exact' || match === 'suffix' ? canonicalName(s) : s.toLowerCase();
  return {
    stop,
    match,
    from: match === 'regex' ? from : norm(from),
    re,
    to: match === 'regex' ? to : norm(to),
    answers,
  };
}

export const rewrite: PluginSpec = {
  name: 'rewrite',
  setup(d, ctx) {
    if (d.block)
      ctx.error(
        d.line,
        'rewrite: the block form is not supported by kubewire; write one rule per line',
      );
    return new RewritePlugin([parseRule(d, ctx)]);
  },
  merge(instances) {
    return new RewritePlugin(instances.flatMap((i) => (i as RewritePlugin).rules));
  },
};
