/**
 * Shared fixtures for the DNS tests: a hand-built cluster view (Services with endpoints,
 * pods), a server built from a Corefile without binding sockets, and a presentation-form
 * rendering of decoded responses so tables read like dig output.
 */
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import type {
  ServiceEndpoint,
  ServicePortEndpoints,
  ServicePortState,
  ServiceState,
} from '../../../src/cluster/index.js';
import { parseCorefile } from '../../../src/dns/corefile.js';
import type { DnsClusterView, DnsService } from '../../../src/dns/kubernetes/view.js';
import { Metrics } from '../../../src/dns/metrics.js';
import { DnsServer } from '../../../src/dns/server.js';
import type { UdpIo } from '../../../src/dns/udp.js';
import { CLASS, encodeQuery, type Edns } from '../../../src/dns/wire.js';

export const quietLogger = pino({ level: 'silent' });

export const SERIAL = 1700000000;

export function service(
  namespace: string,
  name: string,
  opts: Omit<Partial<ServiceState>, 'ports'> & { ports?: Partial<ServicePortState>[] } = {},
): ServiceState {
  const { ports, ...rest } = opts;
  return {
    namespace,
    name,
    uid: `uid-${namespace}-${name}`,
    type: 'ClusterIP',
    clusterIP: null,
    headless: false,
    selector: {},
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
    ...rest,
    ports: (ports ?? []).map((p) => ({
      name: p.name ?? '',
      protocol: p.protocol ?? 'TCP',
      port: p.port ?? 80,
      targetPort: p.targetPort ?? p.port ?? 80,
      nodePort: null,
    })),
  };
}

export function endpoint(
  ip: string,
  port: number,
  podName: string,
  opts: Partial<ServiceEndpoint> = {},
): ServiceEndpoint {
  return {
    ip,
    port,
    nodeName: 'worker-1',
    podNamespace: 'testns',
    podName,
    ready: true,
    ...opts,
  };
}

export function portEndpoints(
  portName: string,
  protocol: 'TCP' | 'UDP',
  servicePort: number,
  endpoints: ServiceEndpoint[],
): ServicePortEndpoints {
  return { portName, protocol, servicePort, endpoints };
}

/** The cluster the record tables are written against. */
export function fixtureView(extra: DnsService[] = []): DnsClusterView {
  const hdlsEndpoints = [
    endpoint('172.16.0.1', 8080, 'pet-0', { hostname: 'pet-0' }),
    endpoint('172.16.0.2', 8080, 'web-7d4b9-abcde'),
    endpoint('172.16.0.3', 8080, 'web-7d4b9-fghij', { ready: false }),
  ];
  const services: DnsService[] = [
    {
      svc: service('default', 'kubernetes', {
        clusterIP: '10.96.0.1',
        ports: [{ name: 'https', port: 443, targetPort: 6443 }],
      }),
      endpoints: [
        portEndpoints('https', 'TCP', 443, [
          endpoint('10.1.110.108', 6443, '', { podNamespace: '' }),
        ]),
      ],
    },
    {
      svc: service('kube-system', 'kube-dns', {
        clusterIP: '10.96.0.10',
        ports: [
          { name: 'dns', protocol: 'UDP', port: 53 },
          { name: 'dns-tcp', protocol: 'TCP', port: 53 },
          { name: 'metrics', protocol: 'TCP', port: 9153 },
        ],
      }),
      endpoints: [
        portEndpoints('dns', 'UDP', 53, [
          endpoint('192.168.8.207', 53, 'coredns-b-2', { podNamespace: 'kube-system' }),
          endpoint('192.168.165.196', 53, 'coredns-a-1', { podNamespace: 'kube-system' }),
        ]),
      ],
    },
    {
      svc: service('testns', 'svc1', {
        clusterIP: '10.96.0.100',
        ports: [
          { name: 'http', port: 80 },
          { name: 'dns', protocol: 'UDP', port: 53 },
        ],
      }),
      endpoints: [portEndpoints('http', 'TCP', 80, [endpoint('172.16.0.9', 80, 'svc1-pod')])],
    },
    {
      svc: service('testns', 'unnamed', { clusterIP: '10.96.0.101', ports: [{ port: 8080 }] }),
      endpoints: [],
    },
    {
      svc: service('main', 'webserver', {
        clusterIP: '10.96.0.102',
        ports: [{ name: 'http', port: 80 }],
      }),
      endpoints: [],
    },
    {
      svc: service('testns', 'hdls', {
        headless: true,
        ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      }),
      endpoints: [portEndpoints('http', 'TCP', 80, hdlsEndpoints)],
    },
    {
      svc: service('testns', 'empty-hl', { headless: true, ports: [{ name: 'http', port: 80 }] }),
      endpoints: [portEndpoints('http', 'TCP', 80, [])],
    },
    {
      svc: service('testns', 'ext', { type: 'ExternalName', externalName: 'www.example.com' }),
      endpoints: [],
    },
    {
      svc: service('testns', 'ext-int', {
        type: 'ExternalName',
        externalName: 'svc1.testns.svc.cluster.local',
      }),
      endpoints: [],
    },
    ...extra,
  ];
  return {
    dnsDomain: 'cluster.local',
    clusterDNSIP: '10.96.0.10',
    namespaces: ['default', 'kube-node-lease', 'kube-public', 'kube-system', 'main', 'testns'],
    pods: [
      { namespace: 'testns', name: 'pet-0', ip: '172.16.0.1' },
      { namespace: 'testns', name: 'web-7d4b9-abcde', ip: '172.16.0.2' },
      { namespace: 'kube-system', name: 'coredns-a-1', ip: '192.168.165.196' },
    ],
    services,
    corefile: null,
    modified: SERIAL,
  };
}

export const BASE_COREFILE = `.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    whoami
}
`;

export function buildServer(
  corefile: string,
  view: DnsClusterView | null = fixtureView(),
  opts: {
    localIPs?: string[];
    metrics?: Metrics;
    listen?: { host: string; port: number };
    udpIo?: UdpIo;
  } = {},
): DnsServer {
  const server = DnsServer.build({
    corefile: parseCorefile(corefile, 'Corefile'),
    text: corefile,
    logger: quietLogger,
    metrics: opts.metrics ?? new Metrics(),
    localIPs: opts.localIPs ?? ['10.0.0.53'],
    ...(opts.listen ? { listen: opts.listen } : {}),
    ...(opts.udpIo ? { udpIo: opts.udpIo } : {}),
  });
  if (view) server.setState(view);
  return server;
}

export interface QueryOptions {
  id?: number;
  edns?: Partial<Edns> | false;
  proto?: 'udp' | 'tcp';
  cls?: number;
  rd?: boolean;
}

/** Sends a query through a built (unbound) server; returns the response bytes. */
export async function ask(
  server: DnsServer,
  name: string,
  type: number,
  opts: QueryOptions = {},
): Promise<Buffer | null> {
  const edns: Edns | null =
    opts.edns === false || opts.edns === undefined
      ? null
      : { udpSize: 1232, version: 0, do: false, extRcode: 0, options: [], ...opts.edns };
  const wire = encodeQuery(opts.id ?? 4242, name, type, {
    edns,
    rd: opts.rd ?? true,
    cls: opts.cls ?? CLASS.IN,
  });
  return await server.handle(wire, opts.proto ?? 'udp', '10.9.8.7', 40000);
}

/** One record in dig's presentation form, e.g. `a.b. 5 IN A 1.2.3.4`. */
export function rrText(a: dnsPacket.Answer): string {
  const name = a.name === '.' || a.name === '' ? '.' : `${a.name}.`;
  const head = `${name} ${'ttl' in a ? a.ttl : 0} ${'class' in a ? a.class : 'IN'} ${a.type}`;
  switch (a.type) {
    case 'A':
    case 'AAAA':
      return `${head} ${a.data}`;
    case 'CNAME':
    case 'PTR':
    case 'NS':
      return `${head} ${a.data}.`;
    case 'SRV':
      return `${head} ${a.data.priority} ${a.data.weight} ${a.data.port} ${a.data.target === '.' ? '' : a.data.target}.`;
    case 'TXT': {
      const parts = Array.isArray(a.data) ? a.data : [a.data];
      return `${head} ${parts.map((p) => JSON.stringify(p.toString())).join(' ')}`;
    }
    case 'SOA':
      return `${head} ${a.data.mname}. ${a.data.rname}. ${a.data.serial} ${a.data.refresh} ${a.data.retry} ${a.data.expire} ${a.data.minimum}`;
    case 'OPT':
      return `OPT udp=${a.udpPayloadSize}`;
    default:
      return head;
  }
}

export interface Decoded {
  id: number;
  rcode: string;
  flags: string[];
  question: string[];
  answer: string[];
  authority: string[];
  additional: string[];
  opt: dnsPacket.OptAnswer | null;
  raw: dnsPacket.DecodedPacket;
}

export function decode(wire: Buffer): Decoded {
  const p = dnsPacket.decode(wire);
  const f = p.flags ?? 0;
  const flags: string[] = [];
  if (p.type === 'response') flags.push('qr');
  if (f & 0x0400) flags.push('aa');
  if (f & 0x0200) flags.push('tc');
  if (f & 0x0100) flags.push('rd');
  if (f & 0x0080) flags.push('ra');
  const additionals = p.additionals ?? [];
  const opt =
    (additionals.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer | undefined) ?? null;
  return {
    id: p.id ?? 0,
    rcode: (p as { rcode?: string }).rcode ?? 'NOERROR',
    flags,
    question: (p.questions ?? []).map((q) => `${q.name}. ${q.class} ${q.type}`),
    answer: (p.answers ?? []).map(rrText),
    authority: (p.authorities ?? []).map(rrText),
    additional: additionals.filter((a) => a.type !== 'OPT').map(rrText),
    opt,
    raw: p,
  };
}

/** The SOA CoreDNS puts in negative answers for cluster.local with ttl 5. */
export const SOA_5 = `cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. ${SERIAL} 7200 1800 86400 5`;
