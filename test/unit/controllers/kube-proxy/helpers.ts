import type {
  ServiceEndpoint,
  ServicePortEndpoints,
  ServicePortState,
  ServiceState,
} from '../../../../src/cluster/index.js';

/** A ServiceState with the API server's defaults, for tests. */
export function makeService(
  namespace: string,
  name: string,
  over: Partial<ServiceState> = {},
): ServiceState {
  return {
    namespace,
    name,
    uid: `uid-${namespace}-${name}`,
    type: 'ClusterIP',
    clusterIP: null,
    headless: false,
    ports: [],
    selector: { app: name },
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    publishNotReadyAddresses: false,
    externalIPs: [],
    loadBalancerSourceRanges: [],
    healthCheckNodePort: null,
    labels: {},
    annotations: {},
    ...over,
  };
}

export function makePort(
  name: string,
  port: number,
  over: Partial<ServicePortState> = {},
): ServicePortState {
  return { name, protocol: 'TCP', port, targetPort: port, nodePort: null, ...over };
}

export interface Ep {
  ip: string;
  port: number;
  node?: string | null;
  ready?: boolean;
}

export function makeEndpoints(
  portName: string,
  servicePort: number,
  list: readonly Ep[],
  protocol: ServicePortEndpoints['protocol'] = 'TCP',
): ServicePortEndpoints {
  return {
    portName,
    protocol,
    servicePort,
    endpoints: list.map((e, i): ServiceEndpoint => ({
      ip: e.ip,
      port: e.port,
      nodeName: e.node ?? null,
      podNamespace: 'ns',
      podName: `pod-${i}`,
      ready: e.ready ?? true,
    })),
  };
}

// ---------------------------------------------------------------------------------------
// iptables-restore text: parsing, the upstream test's normalisation, jump checks

export interface ParsedRule {
  raw: string;
  chain: string;
  comment: string | null;
  jump: string | null;
}

export interface ParsedChain {
  name: string;
  rules: ParsedRule[];
}

export interface ParsedTable {
  name: string;
  chains: ParsedChain[];
  deleted: string[];
}

/** Splits a rule line into words, honouring double quotes (quotes removed). */
export function words(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) out.push(m[1] ?? m[2]!);
  return out;
}

/** iptablestest.ParseIPTablesDump, for the subset kube-proxy writes. */
export function parseDump(text: string): ParsedTable[] {
  const tables: ParsedTable[] = [];
  let table: ParsedTable | null = null;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      table = { name: line.slice(1), chains: [], deleted: [] };
      tables.push(table);
      continue;
    }
    if (table === null) throw new Error(`line outside a table: ${line}`);
    if (line === 'COMMIT') {
      table = null;
      continue;
    }
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (!table.chains.some((c) => c.name === name)) table.chains.push({ name, rules: [] });
      continue;
    }
    const w = words(line);
    if (w[0] === '-X') {
      table.deleted.push(w[1]!);
      continue;
    }
    if (w[0] !== '-A') throw new Error(`unexpected line: ${line}`);
    const chain = table.chains.find((c) => c.name === w[1]);
    if (!chain) throw new Error(`rule for undeclared chain: ${line}`);
    const ci = w.indexOf('--comment');
    const ji = w.indexOf('-j');
    chain.rules.push({
      raw: line,
      chain: w[1]!,
      comment: ci >= 0 ? w[ci + 1]! : null,
      jump: ji >= 0 ? w[ji + 1]! : null,
    });
  }
  return tables;
}

function commentServiceName(r: ParsedRule): string | null {
  if (r.comment === null) return null;
  const i = r.comment.search(/[ :]/);
  return i === -1 ? r.comment : r.comment.slice(0, i);
}

/** orderByCommentServiceName as a comparator (rules without a comment compare equal). */
function byCommentServiceName(a: ParsedRule, b: ParsedRule): number {
  const x = commentServiceName(a);
  const y = commentServiceName(b);
  if (x === null || y === null) return 0;
  return x < y ? -1 : x > y ? 1 : 0;
}

function chainRank(name: string): number {
  if (name === 'KUBE-NODEPORTS') return 0;
  if (name === 'KUBE-SERVICES') return 1;
  return name.startsWith('KUBE-') ? 2 : 3;
}

/**
 * sortIPTablesRules of proxier_test.go: tables by name; chains KUBE-NODEPORTS,
 * KUBE-SERVICES, other KUBE-* alphabetically, then the rest; rules of KUBE-NODEPORTS and
 * KUBE-SERVICES stably by the service name of their comment (the "must be the last
 * rule" rule of nat KUBE-SERVICES last). Printed as IPTablesDump.String().
 */
export function sortIPTablesRules(text: string): string {
  const tables = parseDump(text).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let out = '';
  for (const t of tables) {
    t.chains.sort(
      (a, b) =>
        chainRank(a.name) - chainRank(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
    for (const c of t.chains) {
      if (c.name === 'KUBE-NODEPORTS') c.rules.sort(byCommentServiceName);
      if (c.name === 'KUBE-SERVICES') {
        const isLast = (r: ParsedRule) => r.comment?.includes('must be the last rule') ?? false;
        c.rules.sort((a, b) => (isLast(a) ? 1 : isLast(b) ? -1 : byCommentServiceName(a, b)));
      }
    }
    out += `*${t.name}\n`;
    for (const c of t.chains) out += `:${c.name} - [0:0]\n`;
    for (const c of t.chains) for (const r of c.rules) out += `${r.raw}\n`;
    out += 'COMMIT\n';
  }
  return out;
}

const TOP_LEVEL = new Set([
  'KUBE-SERVICES',
  'KUBE-EXTERNAL-SERVICES',
  'KUBE-NODEPORTS',
  'KUBE-POSTROUTING',
  'KUBE-FORWARD',
  'KUBE-MARK-MASQ',
  'KUBE-PROXY-FIREWALL',
  'KUBE-FIREWALL',
]);
const TARGETS = new Set(['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'DNAT', 'MARK', 'MASQUERADE']);

/**
 * checkIPTablesRuleJumps of proxier_test.go: every jump target and every filled chain is
 * declared, every jumped-to chain has rules (KUBE-NODEPORTS excepted), every declared
 * per-service chain is jumped to. Returns the problems found.
 */
export function checkRuleJumps(text: string): string[] {
  const problems: string[] = [];
  for (const t of parseDump(text)) {
    const created = new Set(t.chains.map((c) => c.name));
    const filled = new Set(t.chains.filter((c) => c.rules.length > 0).map((c) => c.name));
    const jumped = new Set<string>();
    for (const c of t.chains) {
      for (const r of c.rules) if (r.jump !== null && !TARGETS.has(r.jump)) jumped.add(r.jump);
    }
    const deleted = new Set(t.deleted);
    for (const j of jumped) {
      if (!created.has(j)) problems.push(`${t.name}: jump to undeclared ${j}`);
      else if (!filled.has(j) && j !== 'KUBE-NODEPORTS')
        problems.push(`${t.name}: jump to empty ${j}`);
    }
    for (const c of created) {
      if (!jumped.has(c) && !TOP_LEVEL.has(c) && !deleted.has(c))
        problems.push(`${t.name}: created but unused ${c}`);
    }
  }
  return problems;
}

/** The rules (raw lines) of one chain of one table. */
export function rulesOf(text: string, table: string, chain: string): string[] {
  const t = parseDump(text).find((x) => x.name === table);
  return t?.chains.find((c) => c.name === chain)?.rules.map((r) => r.raw) ?? [];
}
