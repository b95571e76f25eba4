/**
 * kubernetes — cluster.local records from the cluster state (CoreDNS plugin/kubernetes).
 *
 *   kubernetes [ZONES...] {
 *       pods disabled|insecure|verified
 *       ttl TTL                      (0..3600, default 5)
 *       fallthrough [ZONES...]
 *       endpoint_pod_names
 *       noendpoints
 *       namespaces NAMESPACE...
 *       ignore empty_service
 *       endpoint | tls | kubeconfig | resyncperiod | startup_timeout | apiserver_*   (accepted, ignored: the state comes from manifests)
 *   }
 */
import { parseKey } from '../corefile.js';
import {
  answerQuery,
  KubeIndex,
  soaRecord,
  type Answer,
  type KubeOptions,
  type PodMode,
} from '../kubernetes/index.js';

/**
 * An answer ready to be replied: the records, the SOA for negative answers, and (memoised
 * answers) the encoded sections. Always made by `memo()`, so every Memo has one hidden
 * class: the memo hit path reads them monomorphically (object spread gave each its own).
 */
interface Memo {
  status: Answer['status'];
  answer: RR[];
  extra: RR[];
  truncated: boolean;
  soa: RR | null;
  /** [soa] (negative answers), shared between replies. */
  authority: RR[] | null;
  sections: SectionCache | undefined;
}

function memo(a: Answer, soa: RR | null, memoised: boolean): Memo {
  return {
    status: a.status,
    answer: a.answer,
    extra: a.extra,
    truncated: a.truncated,
    soa,
    authority: soa !== null ? [soa] : null,
    sections: memoised ? newSectionCache() : undefined,
  };
}
const MEMO_MAX = 100_000;
/** The empty section of memoised replies (shared, so encoded sections can be reused). */
const NONE: RR[] = Object.freeze([]) as unknown as RR[];
import type { DnsClusterView } from '../kubernetes/view.js';
import {
  argError,
  intArg,
  type DnsRequest,
  type Handler,
  type MaybePromise,
  type PluginInstance,
  type PluginSpec,
  type Reply,
  type SetupContext,
} from '../plugin.js';
import {
  isSubdomain,
  newSectionCache,
  RCODE,
  replyTo,
  type DnsMessage,
  type RR,
  type SectionCache,
} from '../wire.js';
import type { Directive } from '../corefile.js';
import { Fallthrough, parseFallthrough } from './fallthrough.js';

const IGNORED = new Set([
  'endpoint',
  'tls',
  'kubeconfig',
  'resyncperiod',
  'startup_timeout',
  'apiserver_qps',
  'apiserver_burst',
  'apiserver_max_inflight',
  'upstream',
]);

export class KubernetesPlugin implements PluginInstance {
  readonly name = 'kubernetes';
  index: KubeIndex | null = null;
  /**
   * Answers computed for this state, by `<type>:<name>` (all-lower-case queries only, so
   * names keep the client's case). Cleared on every state change. Record arrays are
   * shared between replies: plugins replace them, never mutate them.
   */
  private readonly memo = new Map<number, Map<string, Memo>>();
  /** Zones longest first, for matching. */
  private readonly byLength: string[];

  constructor(
    readonly opts: KubeOptions,
    readonly fall: Fallthrough,
  ) {
    this.byLength = [...opts.zones].sort((a, b) => b.length - a.length);
  }

  onState(view: DnsClusterView): void {
    this.index = new KubeIndex(view, this.opts);
    this.memo.clear();
  }

  ready(): boolean {
    return this.index !== null;
  }

  private matchZone(lname: string): string | null {
    for (const z of this.byLength) if (isSubdomain(lname, z)) return z;
    return null;
  }

  serve(req: DnsRequest, next: Handler): MaybePromise<Reply> {
    const question = req.q.question;
    // All-lower-case names (the common case) are answered from the memo of this state.
    let memoOfType: Map<string, Memo> | undefined;
    if (question.name === question.lname) {
      memoOfType = this.memo.get(question.type);
      if (memoOfType === undefined) {
        memoOfType = new Map();
        this.memo.set(question.type, memoOfType);
      }
      const hit = memoOfType.get(question.lname);
      if (hit !== undefined) return this.reply(req, next, hit);
    }
    const zone = this.matchZone(question.lname);
    if (zone === null) return next(req);
    const qname = question.name;
    const zoneOrig = zone === '' ? '' : qname.slice(qname.length - zone.length);
    const idx = this.index;
    if (idx === null) {
      // Not synced with the cluster yet: SERVFAIL (CoreDNS: !APIConn.HasSynced()).
      if (this.fall.through(question.lname)) return next(req);
      return RCODE.SERVFAIL;
    }
    const upstream = (name: string, type: number) =>
      req.srv.lookup(req, name, type).then((m) => (m ? { answer: m.answer, tc: m.tc } : null));
    const a = answerQuery(idx, qname, question.lname, question.type, zone, zoneOrig, upstream);
    if (a instanceof Promise) {
      return a.then((ans) => this.reply(req, next, memo(ans, soaRecord(idx, zoneOrig), false)));
    }
    const soa = a.status === 'ok' && a.answer.length > 0 ? null : soaRecord(idx, zoneOrig);
    const m = memo(a, soa, memoOfType !== undefined);
    if (memoOfType !== undefined) {
      if (memoOfType.size >= MEMO_MAX) memoOfType.clear();
      memoOfType.set(question.lname, m);
    }
    return this.reply(req, next, m);
  }

  private reply(req: DnsRequest, next: Handler, ans: Memo): MaybePromise<Reply> {
    if (ans.status === 'refused') return RCODE.REFUSED;
    if (ans.status === 'nx') {
      if (this.fall.through(req.q.question.lname)) return next(req);
      return this.negative(req, ans, RCODE.NXDOMAIN);
    }
    if (ans.answer.length === 0) return this.negative(req, ans, RCODE.NOERROR);
    const m = replyTo(req.q, this.name);
    m.aa = true;
    m.tc = ans.truncated;
    m.answer = ans.answer;
    m.authority = NONE;
    m.additional = ans.extra;
    m.sections = ans.sections;
    return m;
  }

  /** plugin.BackendError: rcode with the zone's SOA in the authority section. */
  private negative(req: DnsRequest, ans: Memo, rcode: number): DnsMessage {
    const m = replyTo(req.q, this.name);
    m.aa = true;
    m.rcode = rcode;
    m.answer = NONE;
    m.authority = ans.authority ?? [];
    m.additional = NONE;
    m.sections = ans.sections;
    return m;
  }
}

function zonesFrom(ctx: SetupContext, d: Directive, args: string[], first: number): string[] {
  const zones: string[] = [];
  args.forEach((a, i) => {
    try {
      for (const k of parseKey(ctx.file, d.argLines[first + i] ?? d.line, a)) zones.push(k.zone);
    } catch {
      argError(ctx, d, `kubernetes: invalid zone '${a}'`, first + i);
    }
  });
  return zones;
}

export const kubernetes: PluginSpec = {
  name: 'kubernetes',
  once: true,
  setup(d, ctx) {
    const zones = d.args.length > 0 ? zonesFrom(ctx, d, d.args, 0) : [...ctx.zones];
    const opts: KubeOptions = {
      zones,
      ttl: 5,
      podMode: 'disabled',
      endpointPodNames: false,
      noEndpoints: false,
      namespaces: null,
      ignoreEmptyService: false,
      localIPs: ctx.localIPs,
    };
    let fall = new Fallthrough(null);
    for (const p of d.block ?? []) {
      switch (p.name) {
        case 'pods': {
          const mode = p.args[0];
          if (p.args.length !== 1 || !['disabled', 'insecure', 'verified'].includes(mode!)) {
            argError(ctx, p, `kubernetes: pods: expected one of disabled, insecure, verified`, 0);
          }
          opts.podMode = mode as PodMode;
          break;
        }
        case 'ttl':
          if (p.args.length !== 1) argError(ctx, p, 'kubernetes: ttl: expected one value');
          opts.ttl = intArg(ctx, p, 0, 0, 3600, 'kubernetes: ttl');
          break;
        case 'fallthrough':
          fall = parseFallthrough(ctx, p);
          break;
        case 'endpoint_pod_names':
          if (p.args.length)
            argError(ctx, p, 'kubernetes: endpoint_pod_names takes no argument', 0);
          opts.endpointPodNames = true;
          break;
        case 'noendpoints':
          if (p.args.length) argError(ctx, p, 'kubernetes: noendpoints takes no argument', 0);
          opts.noEndpoints = true;
          break;
        case 'namespaces':
          if (p.args.length === 0) argError(ctx, p, 'kubernetes: namespaces: expected names');
          opts.namespaces = new Set(p.args.map((a) => a.toLowerCase()));
          break;
        case 'ignore':
          if (p.args.length !== 1 || p.args[0] !== 'empty_service') {
            argError(ctx, p, "kubernetes: ignore: expected 'empty_service'", 0);
          }
          opts.ignoreEmptyService = true;
          break;
        default:
          if (IGNORED.has(p.name)) {
            ctx.logger.debug(
              { line: p.line },
              `kubernetes: '${p.name}' ignored (state from manifests)`,
            );
            break;
          }
          if (
            ['labels', 'namespace_labels', 'multicluster', 'zonal', 'transfer'].includes(p.name)
          ) {
            ctx.error(p.line, `kubernetes: '${p.name}' is not supported by kubewire`);
          }
          ctx.error(p.line, `kubernetes: unknown property '${p.name}'`);
      }
    }
    return new KubernetesPlugin(opts, fall);
  },
};
