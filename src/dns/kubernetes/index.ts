/**
 * The kubernetes plugin's records, as CoreDNS's plugin/kubernetes answers them
 * (kubernetes.go Services/Records/findServices/findPods, parse.go, reverse.go, ns.go,
 * and plugin/backend_lookup.go A/AAAA/SRV/PTR/TXT/SOA), from an index built once per
 * cluster state change: maps keyed by lower-cased names and by address. Nothing here is
 * computed per query beyond one parse of the name and a few map look-ups.
 *
 * The Kubernetes DNS specification (github.com/kubernetes/dns docs/specification.md) is
 * followed; where CoreDNS differs, CoreDNS wins (README.md in this folder's parent lists
 * the differences).
 */
import { isIPv4 } from 'node:net';
import {
  aRdata,
  canonicalName,
  isSubdomain,
  rrA,
  rrAAAA,
  rrCNAME,
  rrNS,
  rrPTR,
  rrSOA,
  rrSRV,
  rrTXT,
  type RR,
} from '../wire.js';
import type { DnsClusterView } from './view.js';

/** CoreDNS kubernetes.go DNSSchemaVersion. */
export const DNS_SCHEMA_VERSION = '1.1.0';
export const DNS_VERSION_TTL = 28800;
export const DEFAULT_TTL = 5;
const MAX_CNAME_CHAIN = 10;

export type PodMode = 'disabled' | 'insecure' | 'verified';

export interface KubeOptions {
  /** Canonical zones the plugin is authoritative for. */
  zones: string[];
  ttl: number;
  podMode: PodMode;
  endpointPodNames: boolean;
  noEndpoints: boolean;
  /** `namespaces` option: only these are exposed (null: all). */
  namespaces: Set<string> | null;
  ignoreEmptyService: boolean;
  /** This server's own addresses (NS records; CoreDNS's localIPs). */
  localIPs: string[];
}

interface PortRec {
  name: string;
  protocol: string;
  port: number;
}

interface EpRec {
  ip: string;
  /** endpointHostname(): hostname, pod name (endpoint_pod_names) or the dashed IP. */
  hostname: string;
  lhost: string;
  ports: PortRec[];
}

interface SvcRec {
  name: string;
  namespace: string;
  headless: boolean;
  externalName: string | null;
  clusterIPs: string[];
  ports: PortRec[];
  endpoints: EpRec[];
}

/** CoreDNS msg.Service: one thing a name resolves to. */
export interface Item {
  /** An IP address, or a name (CNAME target). */
  host: string;
  port: number;
  /** The domain the item stands for (SRV target, NS name). */
  key: string;
  ttl: number;
  text?: string;
}

export interface Lookup {
  items: Item[];
  /** CoreDNS's errNoItems / errNsNotExposed / errInvalidRequest: NXDOMAIN. */
  nameError: boolean;
}

const NX: Lookup = { items: [], nameError: true };
const EMPTY: Lookup = { items: [], nameError: false };

function endpointHostname(
  hostname: string | undefined,
  podName: string,
  ip: string,
  podNames: boolean,
): string {
  if (hostname) return hostname;
  if (podNames && podName && podName.length <= 63) return podName;
  if (ip.includes('.')) return ip.replaceAll('.', '-');
  const v6 = ip.replaceAll(':', '-');
  return v6.endsWith('-') ? `${v6}0` : v6;
}

function ipOrder(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 4; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}

/** The answer index for one kubernetes plugin instance and one cluster state. */
export class KubeIndex {
  readonly namespaces = new Set<string>();
  readonly services = new Map<string, SvcRec>();
  readonly svcByIP = new Map<string, SvcRec>();
  readonly epByIP = new Map<string, { svc: SvcRec; ep: EpRec }[]>();
  readonly podsByIP = new Map<string, Set<string>>();
  readonly serial: number;
  readonly primaryZone: string;
  readonly counts: { services: number; endpoints: number; pods: number };

  constructor(
    view: DnsClusterView,
    readonly opts: KubeOptions,
  ) {
    this.serial = view.modified >>> 0;
    this.primaryZone =
      opts.zones.find((z) => !z.endsWith('in-addr.arpa') && !z.endsWith('ip6.arpa')) ??
      opts.zones[0] ??
      '';
    for (const ns of view.namespaces) this.namespaces.add(ns.toLowerCase());
    let endpointCount = 0;
    for (const { svc, endpoints } of view.services) {
      const ports: PortRec[] = svc.ports.map((p) => ({
        name: p.name.toLowerCase(),
        protocol: p.protocol.toLowerCase(),
        port: p.port,
      }));
      // object.ToService: a Service without ports gets one port -1, so A records still work.
      if (ports.length === 0) ports.push({ name: '', protocol: '', port: -1 });
      const byIP = new Map<string, EpRec>();
      if (!opts.noEndpoints) {
        for (const pe of endpoints) {
          for (const e of pe.endpoints) {
            if (!e.ready && !svc.publishNotReadyAddresses) continue;
            let rec = byIP.get(e.ip);
            if (!rec) {
              const hostname = endpointHostname(e.hostname, e.podName, e.ip, opts.endpointPodNames);
              rec = { ip: e.ip, hostname, lhost: hostname.toLowerCase(), ports: [] };
              byIP.set(e.ip, rec);
            }
            rec.ports.push({
              name: pe.portName.toLowerCase(),
              protocol: pe.protocol.toLowerCase(),
              port: e.port,
            });
          }
        }
      }
      const rec: SvcRec = {
        name: svc.name.toLowerCase(),
        namespace: svc.namespace.toLowerCase(),
        headless: svc.headless && svc.type !== 'ExternalName',
        externalName:
          svc.type === 'ExternalName' && svc.externalName
            ? svc.externalName.replace(/\.$/, '')
            : null,
        clusterIPs: svc.clusterIP && !svc.headless ? [svc.clusterIP] : [],
        ports,
        endpoints: [...byIP.values()].sort((a, b) => ipOrder(a.ip, b.ip)),
      };
      endpointCount += rec.endpoints.length;
      this.services.set(`${rec.name}.${rec.namespace}`, rec);
      for (const ip of rec.clusterIPs) if (!this.svcByIP.has(ip)) this.svcByIP.set(ip, rec);
      for (const ep of rec.endpoints) {
        const list = this.epByIP.get(ep.ip);
        if (list) list.push({ svc: rec, ep });
        else this.epByIP.set(ep.ip, [{ svc: rec, ep }]);
      }
    }
    for (const pod of view.pods) {
      const set = this.podsByIP.get(pod.ip);
      if (set) set.add(pod.namespace.toLowerCase());
      else this.podsByIP.set(pod.ip, new Set([pod.namespace.toLowerCase()]));
    }
    this.counts = {
      services: this.services.size,
      endpoints: endpointCount,
      pods: view.pods.length,
    };
  }

  private namespaceExposed(ns: string): boolean {
    if (this.opts.namespaces && !this.opts.namespaces.has(ns)) return false;
    return this.namespaces.has(ns);
  }

  // -------------------------------------------------------------------------------------
  // kubernetes.go

  /** Services(): what `lname` (in `zone`, canonical) stands for, for query type `qtype`. */
  services_(lname: string, zone: string, zoneOrig: string, qtype: number): Lookup {
    if (qtype === 16 /* TXT */) {
      const base = trimZone(lname, zone);
      if (base === 'dns-version') {
        return {
          items: [{ host: '', port: 0, key: '', ttl: DNS_VERSION_TTL, text: DNS_SCHEMA_VERSION }],
          nameError: false,
        };
      }
      const r = this.records(lname, zone, zoneOrig);
      if (r.items.length > 0) return EMPTY;
      return NX;
    }
    if (qtype === 2 /* NS */) {
      return { items: this.nsAddrs(zoneOrig, zone), nameError: false };
    }
    if (lname === `ns.dns.${zone}` || (zone === '' && lname === 'ns.dns')) {
      const items = this.nsAddrs(zoneOrig, zone).filter((i) =>
        qtype === 1 ? isIPv4(i.host) : qtype === 28 ? i.host.includes(':') : false,
      );
      return { items, nameError: false };
    }
    const r = this.records(lname, zone, zoneOrig);
    if (qtype !== 33 /* SRV */) return r;
    return { items: r.items.filter((i) => isAddress(i.host)), nameError: r.nameError };
  }

  /** Records(): parse.go parseRequest, then findPods / findServices. */
  records(lname: string, zone: string, zoneOrig: string): Lookup {
    const base = trimZone(lname, zone);
    if (base === '' || base === 'svc' || base === 'pod') return EMPTY;
    const segs = base.split('.');
    let last = segs.length - 1;
    const podOrSvc = segs[last]!;
    if (podOrSvc !== 'pod' && podOrSvc !== 'svc') return NX;
    last--;
    const namespace = segs[last] ?? '';
    last--;
    const service = last >= 0 ? segs[last]! : '';
    last--;
    let endpoint = '';
    let port = '';
    let protocol = '';
    if (last === 0) endpoint = segs[0]!;
    else if (last === 1) {
      protocol = stripUnderscore(segs[1]!);
      port = stripUnderscore(segs[0]!);
    } else if (last > 1) return NX; // zone-scoped names (`zonal`) are not supported
    if (isReverse(lname)) return NX;
    if (!this.namespaceExposed(namespace)) return NX;
    if (podOrSvc === 'pod') return this.findPods(namespace, service, zoneOrig);
    return this.findServices(namespace, service, endpoint, port, protocol, zoneOrig);
  }

  private findPods(namespace: string, podname: string, zoneOrig: string): Lookup {
    if (this.opts.podMode === 'disabled') return NX;
    if (podname === '') return EMPTY;
    const ip =
      (podname.match(/-/g)?.length ?? 0) === 3 && !podname.includes('--')
        ? podname.replaceAll('-', '.')
        : podname.replaceAll('-', ':');
    const key = `${podname}.${namespace}.pod.${zoneOrig}`;
    if (this.opts.podMode === 'insecure') {
      if (!isIPv4(ip) && !isIPv6Text(ip)) return NX;
      return { items: [{ host: ip, port: 0, key, ttl: this.opts.ttl }], nameError: false };
    }
    const set = this.podsByIP.get(ip);
    if (!set || !set.has(namespace)) return NX;
    return { items: [{ host: ip, port: 0, key, ttl: this.opts.ttl }], nameError: false };
  }

  private findServices(
    namespace: string,
    service: string,
    endpoint: string,
    port: string,
    protocol: string,
    zoneOrig: string,
  ): Lookup {
    if (service === '') return EMPTY;
    const svc = this.services.get(`${service}.${namespace}`);
    if (!svc) return NX;
    const ttl = this.opts.ttl;
    const items: Item[] = [];
    let found = false;
    if (
      this.opts.ignoreEmptyService &&
      svc.externalName === null &&
      !svc.headless &&
      svc.endpoints.length === 0
    ) {
      return NX;
    }
    const svcDomain = `${svc.name}.${svc.namespace}.svc.${zoneOrig}`;
    if (svc.externalName !== null) {
      if (endpoint !== '' || port !== '' || protocol !== '') return NX;
      if (isAddress(svc.externalName)) return NX;
      items.push({ host: svc.externalName, port: 0, key: svcDomain, ttl });
      return { items, nameError: false };
    }
    if (svc.headless || endpoint !== '') {
      for (const ep of svc.endpoints) {
        if (endpoint !== '' && ep.lhost !== endpoint) continue;
        for (const p of ep.ports) {
          if (!matchPortProto(port, p.name, protocol, p.protocol)) continue;
          found = true;
          items.push({ host: ep.ip, port: p.port, key: `${ep.hostname}.${svcDomain}`, ttl });
        }
      }
      return found ? { items, nameError: false } : NX;
    }
    for (const p of svc.ports) {
      if (!matchPortProto(port, p.name, protocol, p.protocol)) continue;
      found = true;
      for (const ip of svc.clusterIPs) items.push({ host: ip, port: p.port, key: svcDomain, ttl });
    }
    return found ? { items, nameError: false } : NX;
  }

  /** reverse.go: a Service's ClusterIP first, else every endpoint with the address. */
  reverse(lname: string, zone: string, zoneOrig: string): Lookup {
    const ip = addressFromReverse(lname);
    if (ip === '') {
      const r = this.records(lname, zone, zoneOrig);
      return r.nameError ? NX : EMPTY;
    }
    const zonePart = this.primaryZone;
    const svc = this.svcByIP.get(ip);
    if (svc && (!this.opts.namespaces || this.opts.namespaces.has(svc.namespace))) {
      return {
        items: [
          {
            host: `${svc.name}.${svc.namespace}.svc.${zonePart}`,
            port: 0,
            key: '',
            ttl: this.opts.ttl,
          },
        ],
        nameError: false,
      };
    }
    const items: Item[] = [];
    for (const { svc: s, ep } of this.epByIP.get(ip) ?? []) {
      if (this.opts.namespaces && !this.opts.namespaces.has(s.namespace)) continue;
      items.push({
        host: `${ep.hostname}.${s.name}.${s.namespace}.svc.${zonePart}`,
        port: 0,
        key: '',
        ttl: this.opts.ttl,
      });
    }
    return items.length ? { items, nameError: false } : NX;
  }

  /** ns.go nsAddrs: the Services this server backs, or ns.dns.<zone> with its own addresses. */
  nsAddrs(zoneOrig: string, _zone: string): Item[] {
    const items: Item[] = [];
    let found = false;
    for (const local of this.opts.localIPs) {
      for (const { svc, ep } of this.epByIP.get(local) ?? []) {
        found = true;
        const svcName = `${svc.name}.${svc.namespace}.svc.${zoneOrig}`;
        if (svc.headless) {
          items.push({
            host: ep.ip,
            port: 0,
            key: `${ep.hostname}.${svcName}`,
            ttl: this.opts.ttl,
          });
        } else {
          for (const ip of svc.clusterIPs) {
            items.push({ host: ip, port: 0, key: svcName, ttl: this.opts.ttl });
          }
        }
      }
    }
    if (!found) {
      for (const local of this.opts.localIPs) {
        items.push({ host: local, port: 0, key: `ns.dns.${zoneOrig}`, ttl: this.opts.ttl });
      }
    }
    return items;
  }
}

// ---------------------------------------------------------------------------------------
// Answers (plugin/backend_lookup.go)

export interface Answer {
  /** 'nx': name error; 'refused': REFUSED (zone transfers). */
  status: 'ok' | 'nx' | 'refused';
  answer: RR[];
  extra: RR[];
  truncated: boolean;
}

/** Resolves a name outside the plugin's zones (CoreDNS's upstream.Lookup through the server). */
export type Upstream = (
  name: string,
  type: number,
) => Promise<{ answer: RR[]; tc: boolean } | null>;

type Parts = (RR[] | Promise<RR[]>)[];

function flatten(parts: Parts): RR[] | Promise<RR[]> {
  if (parts.every((p) => Array.isArray(p))) return (parts as RR[][]).flat();
  return Promise.all(parts).then((all) => all.flat());
}

/**
 * The answer for (qname, qtype) in `zone` (canonical; `zoneOrig` keeps the query's case),
 * as kubernetes handler.go ServeDNS switches on the type. Synchronous unless an
 * ExternalName target must be resolved upstream.
 */
export function answerQuery(
  idx: KubeIndex,
  qname: string,
  lname: string,
  qtype: number,
  zone: string,
  zoneOrig: string,
  upstream: Upstream,
): Answer | Promise<Answer> {
  switch (qtype) {
    case 1: // A
    case 28: {
      // AAAA
      const tc = { v: false };
      const r = address(idx, qname, lname, qtype, zone, zoneOrig, [], upstream, tc);
      if (r === null) return { status: 'nx', answer: [], extra: [], truncated: false };
      if (Array.isArray(r)) return { status: 'ok', answer: r, extra: [], truncated: tc.v };
      return r.then((answer) => ({ status: 'ok', answer, extra: [], truncated: tc.v }));
    }
    case 16: {
      // TXT
      const l = idx.services_(lname, zone, zoneOrig, qtype);
      if (l.nameError) return { status: 'nx', answer: [], extra: [], truncated: false };
      const answer = l.items
        .filter((i) => i.text !== undefined)
        .map((i) => rrTXT(qname, i.ttl, [i.text!]));
      return { status: 'ok', answer, extra: [], truncated: false };
    }
    case 5: {
      // CNAME
      const l = idx.services_(lname, zone, zoneOrig, qtype);
      if (l.nameError) return { status: 'nx', answer: [], extra: [], truncated: false };
      const first = l.items[0];
      const answer =
        first && !isAddress(first.host) && first.text === undefined
          ? [rrCNAME(qname, first.ttl, first.host)]
          : [];
      return { status: 'ok', answer, extra: [], truncated: false };
    }
    case 12: {
      // PTR
      const l = idx.reverse(lname, zone, zoneOrig);
      if (l.nameError) return { status: 'nx', answer: [], extra: [], truncated: false };
      const seen = new Set<string>();
      const answer: RR[] = [];
      for (const i of l.items) {
        if (isAddress(i.host) || seen.has(i.host)) continue;
        seen.add(i.host);
        answer.push(rrPTR(qname, i.ttl, i.host));
      }
      return { status: 'ok', answer, extra: [], truncated: false };
    }
    case 33:
      return srv(idx, qname, lname, zone, zoneOrig);
    case 15: {
      // MX: the kubernetes backend has no mail records; only the name's existence matters.
      const l = idx.services_(lname, zone, zoneOrig, qtype);
      return { status: l.nameError ? 'nx' : 'ok', answer: [], extra: [], truncated: false };
    }
    case 6: // SOA
      return {
        status: 'ok',
        answer: lname === zone ? [soaRecord(idx, zoneOrig)] : [],
        extra: [],
        truncated: false,
      };
    case 252: // AXFR
    case 251: // IXFR
      return { status: 'refused', answer: [], extra: [], truncated: false };
    case 2: // NS
      if (lname === zone) return nsRecords(idx, qname, zone, zoneOrig);
      return fakeA(idx, lname, zone, zoneOrig);
    default:
      return fakeA(idx, lname, zone, zoneOrig);
  }
}

/** Other types: a fake A look-up tells NODATA from NXDOMAIN. */
function fakeA(idx: KubeIndex, lname: string, zone: string, zoneOrig: string): Answer {
  const l = idx.services_(lname, zone, zoneOrig, 1);
  return { status: l.nameError ? 'nx' : 'ok', answer: [], extra: [], truncated: false };
}

function address(
  idx: KubeIndex,
  qname: string,
  lname: string,
  qtype: number,
  zone: string,
  zoneOrig: string,
  previous: RR[],
  upstream: Upstream,
  tc: { v: boolean },
): RR[] | Promise<RR[]> | null {
  const l = idx.services_(lname, zone, zoneOrig, qtype);
  if (l.nameError) return null;
  const parts: Parts = [];
  const seen = new Set<string>();
  for (const item of l.items) {
    if (item.text !== undefined) continue;
    if (isIPv4(item.host)) {
      if (qtype === 1 && !seen.has(item.host)) {
        seen.add(item.host);
        parts.push([rrA(qname, item.ttl, aRdata(item.host))]);
      }
      continue;
    }
    if (item.host.includes(':')) {
      if (qtype === 28 && !seen.has(item.host)) {
        seen.add(item.host);
        parts.push([rrAAAA(qname, item.ttl, item.host)]);
      }
      continue;
    }
    // A name: CNAME, then the target's addresses.
    const target = canonicalName(item.host);
    if (target === lname) continue;
    if (previous.length > MAX_CNAME_CHAIN) continue;
    if (previous.some((p) => p.type === 5 && p.target?.toLowerCase() === target)) continue;
    const cname = rrCNAME(qname, item.ttl, item.host);
    if (isSubdomain(target, zone)) {
      const next = address(
        idx,
        item.host,
        target,
        qtype,
        zone,
        zoneOrig,
        [...previous, cname],
        upstream,
        tc,
      );
      if (next === null) continue;
      if (Array.isArray(next)) {
        if (next.length > 0) parts.push([cname, ...next]);
      } else {
        parts.push(next.then((n) => (n.length > 0 ? [cname, ...n] : [])));
      }
      continue;
    }
    parts.push(
      upstream(item.host, qtype).then((m) => {
        if (!m) return [cname];
        if (m.tc) tc.v = true;
        return [cname, ...m.answer];
      }),
    );
  }
  return flatten(parts);
}

function srv(idx: KubeIndex, qname: string, lname: string, zone: string, zoneOrig: string): Answer {
  const l = idx.services_(lname, zone, zoneOrig, 33);
  if (l.nameError) return { status: 'nx', answer: [], extra: [], truncated: false };
  // Every record has priority 0 and weight 100 before normalisation: 100/n each.
  const n = l.items.length;
  const weight = Math.max(1, Math.floor((100 / (100 * n)) * 100));
  const answer: RR[] = [];
  const extra: RR[] = [];
  const dup = new Set<string>();
  for (const item of l.items) {
    if (item.port === -1 || !isAddress(item.host)) continue;
    const target = item.key;
    const k1 = `${target.toLowerCase()}|${item.port}`;
    if (!dup.has(k1)) {
      dup.add(k1);
      answer.push(rrSRV(qname, item.ttl, 0, weight, item.port, target));
    }
    const k2 = `${target.toLowerCase()}|${item.host}`;
    if (!dup.has(k2)) {
      dup.add(k2);
      extra.push(
        isIPv4(item.host) ? rrA(target, item.ttl, item.host) : rrAAAA(target, item.ttl, item.host),
      );
    }
  }
  return { status: 'ok', answer, extra, truncated: false };
}

function nsRecords(idx: KubeIndex, qname: string, zone: string, zoneOrig: string): Answer {
  const answer: RR[] = [];
  const extra: RR[] = [];
  const seen = new Set<string>();
  for (const item of idx.nsAddrs(zoneOrig, zone)) {
    extra.push(
      isIPv4(item.host)
        ? rrA(item.key, item.ttl, item.host)
        : rrAAAA(item.key, item.ttl, item.host),
    );
    if (seen.has(item.key)) continue;
    seen.add(item.key);
    answer.push(rrNS(qname, item.ttl, item.key));
  }
  return { status: 'ok', answer, extra, truncated: false };
}

/** The SOA CoreDNS puts in answers and in the authority section of negative answers. */
export function soaRecord(idx: KubeIndex, zoneOrig: string): RR {
  const ttl = idx.opts.ttl;
  return rrSOA(zoneOrig, Math.min(ttl, 300), {
    mname: zoneOrig === '' ? 'ns.dns' : `ns.dns.${zoneOrig}`,
    rname: zoneOrig === '' ? 'hostmaster' : `hostmaster.${zoneOrig}`,
    serial: idx.serial,
    refresh: 7200,
    retry: 1800,
    expire: 86400,
    minimum: ttl,
  });
}

// ---------------------------------------------------------------------------------------
// Helpers

export function trimZone(lname: string, zone: string): string {
  if (zone === '') return lname;
  if (lname === zone) return '';
  return lname.slice(0, lname.length - zone.length - 1);
}

function stripUnderscore(s: string): string {
  return s.startsWith('_') ? s.slice(1) : s;
}

function matchPortProto(aPort: string, bPort: string, aProto: string, bProto: string): boolean {
  return (aPort === '' || aPort === bPort) && (aProto === '' || aProto === bProto);
}

function isAddress(host: string): boolean {
  return isIPv4(host) || isIPv6Text(host);
}

function isIPv6Text(s: string): boolean {
  return s.includes(':') && /^[0-9a-f:.]+$/i.test(s) && s.split(':').length <= 9 && s.length >= 2;
}

export function isReverse(lname: string): boolean {
  return lname.endsWith('in-addr.arpa') || lname.endsWith('ip6.arpa');
}

/** dnsutil.ExtractAddressFromReverse for IPv4: `4.3.2.1.in-addr.arpa` → `1.2.3.4`, else ''. */
export function addressFromReverse(lname: string): string {
  const suffix = '.in-addr.arpa';
  if (!lname.endsWith(suffix)) return '';
  const parts = lname.slice(0, -suffix.length).split('.');
  if (parts.length !== 4) return '';
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return '';
  }
  return parts.reverse().join('.');
}
