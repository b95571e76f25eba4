/**
 * Query → answer tables for the kubernetes plugin, written from the Kubernetes DNS-Based
 * Service Discovery specification (github.com/kubernetes/dns docs/specification.md,
 * schema 1.1.0; sections cited as "spec 2.x") and, where CoreDNS answers differently or
 * the spec is silent, CoreDNS's plugin/kubernetes (README, handler.go, kubernetes.go,
 * parse.go, reverse.go, ns.go, plugin/backend_lookup.go; cited as "coredns …").
 *
 * Every case checks the rcode, the header flags and the answer, authority and additional
 * sections as dig would print them (the OPT record is checked by the protocol tests).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TYPE } from '../../../src/dns/wire.js';
import {
  ask,
  BASE_COREFILE,
  buildServer,
  decode,
  endpoint,
  fixtureView,
  portEndpoints,
  SERIAL,
  service,
  SOA_5,
} from './helpers.js';

interface Case {
  cite: string;
  name: string;
  type: keyof typeof TYPE;
  rcode: string;
  flags?: string[];
  answer?: string[];
  authority?: string[];
  additional?: string[];
  /** Compare sections as sets (records whose order is not specified). */
  unordered?: boolean;
}

const AA = ['qr', 'aa', 'rd'];

const CASES: Case[] = [
  // 2.2 Record for Schema Version
  {
    cite: 'spec 2.2; coredns kubernetes.go DNSSchemaVersion "1.1.0", TTL 28800',
    name: 'dns-version.cluster.local',
    type: 'TXT',
    rcode: 'NOERROR',
    answer: ['dns-version.cluster.local. 28800 IN TXT "1.1.0"'],
  },
  // 2.3.1 A record for a Service with ClusterIP
  {
    cite: 'spec 2.3.1',
    name: 'kubernetes.default.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: ['kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1'],
  },
  {
    cite: 'spec 2.3.1; coredns README ttl: default 5',
    name: 'svc1.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: ['svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100'],
  },
  {
    cite: 'spec 2.1 "All comparisons between query data and data in Kubernetes is case-insensitive"; coredns answers with the query\'s case (state.QName())',
    name: 'WebServer.Main.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: ['WebServer.Main.svc.cluster.local. 5 IN A 10.96.0.102'],
  },
  {
    cite: "spec 2.1 case-insensitive; coredns keeps the zone in the query's case in the SOA owner",
    name: 'nope.testns.svc.Cluster.Local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [
      `Cluster.Local. 5 IN SOA ns.dns.Cluster.Local. hostmaster.Cluster.Local. ${SERIAL} 7200 1800 86400 5`,
    ],
  },
  // 2.3.2 SRV records
  {
    cite: 'spec 2.3.2 (priority/weight not prescribed; coredns: priority 0, weight 100/n); additional A per spec 2.3.2 "may include"',
    name: '_https._tcp.kubernetes.default.svc.cluster.local',
    type: 'SRV',
    rcode: 'NOERROR',
    answer: [
      '_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local.',
    ],
    additional: ['kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1'],
  },
  {
    cite: 'spec 2.3.2, protocol matched: _dns._udp',
    name: '_dns._udp.kube-dns.kube-system.svc.cluster.local',
    type: 'SRV',
    rcode: 'NOERROR',
    answer: [
      '_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.',
    ],
    additional: ['kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10'],
  },
  {
    cite: 'spec 2.3.2 port and protocol must both match: _dns._tcp has no port on svc1 → NXDOMAIN (coredns errNoItems)',
    name: '_dns._tcp.svc1.testns.svc.cluster.local',
    type: 'SRV',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'spec 2.3.2 "Unnamed ports do not have an SRV record"',
    name: '_8080._tcp.unnamed.testns.svc.cluster.local',
    type: 'SRV',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'coredns (beyond the spec): SRV on the bare service name lists every port, named or not, weight 100/n',
    name: 'svc1.testns.svc.cluster.local',
    type: 'SRV',
    rcode: 'NOERROR',
    answer: [
      'svc1.testns.svc.cluster.local. 5 IN SRV 0 50 80 svc1.testns.svc.cluster.local.',
      'svc1.testns.svc.cluster.local. 5 IN SRV 0 50 53 svc1.testns.svc.cluster.local.',
    ],
    additional: ['svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100'],
  },
  // 2.3.3 PTR for a ClusterIP
  {
    cite: 'spec 2.3.3',
    name: '1.0.96.10.in-addr.arpa',
    type: 'PTR',
    rcode: 'NOERROR',
    answer: ['1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local.'],
  },
  {
    cite: 'spec 2.3.3',
    name: '100.0.96.10.in-addr.arpa',
    type: 'PTR',
    rcode: 'NOERROR',
    answer: ['100.0.96.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local.'],
  },
  // 2.4.1 Headless A records
  {
    cite: 'spec 2.4.1: one A per ready endpoint; spec 2.1 ready: not-ready 172.16.0.3 left out',
    name: 'hdls.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: [
      'hdls.testns.svc.cluster.local. 5 IN A 172.16.0.1',
      'hdls.testns.svc.cluster.local. 5 IN A 172.16.0.2',
    ],
  },
  {
    cite: 'spec 2.4.1: <hostname>.<service>.<ns>.svc.<zone> (pod spec.hostname with spec.subdomain = service)',
    name: 'pet-0.hdls.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: ['pet-0.hdls.testns.svc.cluster.local. 5 IN A 172.16.0.1'],
  },
  {
    cite: 'spec 2.1 hostname "a unique, system-assigned identifier"; coredns endpointHostname: the dashed IP',
    name: '172-16-0-2.hdls.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: ['172-16-0-2.hdls.testns.svc.cluster.local. 5 IN A 172.16.0.2'],
  },
  {
    cite: 'spec 2.1 ready: a not-ready endpoint has no name',
    name: '172-16-0-3.hdls.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'spec 2.4.1 "If there are no ready endpoints for the headless Service, the answer should be NXDOMAIN"',
    name: 'empty-hl.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'coredns findServices: endpoint names also resolve for ClusterIP services ("Endpoint query or headless service")',
    name: '172-16-0-9.svc1.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: ['172-16-0-9.svc1.testns.svc.cluster.local. 5 IN A 172.16.0.9'],
  },
  // 2.4.2 Headless SRV
  {
    cite: 'spec 2.4.2: one SRV per ready endpoint × named port, target <hostname>.<service>…; coredns: the endpoint (target) port, weight 100/n; additional A per target',
    name: '_http._tcp.hdls.testns.svc.cluster.local',
    type: 'SRV',
    rcode: 'NOERROR',
    answer: [
      '_http._tcp.hdls.testns.svc.cluster.local. 5 IN SRV 0 50 8080 pet-0.hdls.testns.svc.cluster.local.',
      '_http._tcp.hdls.testns.svc.cluster.local. 5 IN SRV 0 50 8080 172-16-0-2.hdls.testns.svc.cluster.local.',
    ],
    additional: [
      'pet-0.hdls.testns.svc.cluster.local. 5 IN A 172.16.0.1',
      '172-16-0-2.hdls.testns.svc.cluster.local. 5 IN A 172.16.0.2',
    ],
  },
  // 2.4.3 Headless PTR
  {
    cite: 'spec 2.4.3',
    name: '1.0.16.172.in-addr.arpa',
    type: 'PTR',
    rcode: 'NOERROR',
    answer: ['1.0.16.172.in-addr.arpa. 5 IN PTR pet-0.hdls.testns.svc.cluster.local.'],
  },
  {
    cite: 'spec 2.4.3 with the system-assigned hostname; pod addresses behind a Service (coredns reverse.go: endpoints)',
    name: '196.165.168.192.in-addr.arpa',
    type: 'PTR',
    rcode: 'NOERROR',
    answer: [
      '196.165.168.192.in-addr.arpa. 5 IN PTR 192-168-165-196.kube-dns.kube-system.svc.cluster.local.',
    ],
  },
  // 2.5 ExternalName
  {
    cite: 'spec 2.5',
    name: 'ext.testns.svc.cluster.local',
    type: 'CNAME',
    rcode: 'NOERROR',
    answer: ['ext.testns.svc.cluster.local. 5 IN CNAME www.example.com.'],
  },
  {
    cite: 'spec 2.5 (A question): CNAME; the target is resolved upstream — none here, so the CNAME alone',
    name: 'ext.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: ['ext.testns.svc.cluster.local. 5 IN CNAME www.example.com.'],
  },
  {
    cite: 'spec 2.5; coredns backend_lookup A(): a target inside the zone is followed',
    name: 'ext-int.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: [
      'ext-int.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.',
      'svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100',
    ],
  },
  {
    cite: 'coredns Services(): "SRV for external services is not yet implemented" → NODATA',
    name: 'ext.testns.svc.cluster.local',
    type: 'SRV',
    rcode: 'NOERROR',
    authority: [SOA_5],
  },
  // 2.6 Pod A records (pods insecure)
  {
    cite: 'spec 2.6; coredns pods insecure: the address from the name',
    name: '10-244-1-5.testns.pod.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: ['10-244-1-5.testns.pod.cluster.local. 5 IN A 10.244.1.5'],
  },
  {
    cite: 'coredns findPods insecure: a name that is not an address → NXDOMAIN',
    name: 'not-an-ip.testns.pod.cluster.local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'coredns findPods: the namespace must exist',
    name: '10-244-1-5.nons.pod.cluster.local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  // NXDOMAIN vs NODATA, SOA as CoreDNS builds it (plugin.BackendError, plugin.SOA)
  {
    cite: 'coredns BackendError NXDOMAIN + SOA (ns.dns.<zone>, hostmaster.<zone>, refresh 7200, retry 1800, expire 86400, minimum ttl)',
    name: 'nope.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'IPv4-only name, AAAA → NODATA (NOERROR, SOA)',
    name: 'svc1.testns.svc.cluster.local',
    type: 'AAAA',
    rcode: 'NOERROR',
    authority: [SOA_5],
  },
  {
    cite: 'coredns: MX for an existing name → NODATA',
    name: 'svc1.testns.svc.cluster.local',
    type: 'MX',
    rcode: 'NOERROR',
    authority: [SOA_5],
  },
  {
    cite: 'coredns Services() TXT: an existing name without TXT → NODATA',
    name: 'svc1.testns.svc.cluster.local',
    type: 'TXT',
    rcode: 'NOERROR',
    authority: [SOA_5],
  },
  {
    cite: 'coredns findServices: an existing namespace without a service label → NODATA',
    name: 'testns.svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    authority: [SOA_5],
  },
  {
    cite: 'coredns Records: namespace not found → NXDOMAIN (errNsNotExposed)',
    name: 'svc1.nons.svc.cluster.local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'coredns parseRequest: neither svc nor pod → NXDOMAIN (errInvalidRequest)',
    name: 'svc1.testns.foo.cluster.local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'coredns parseRequest: base "svc" → NODATA',
    name: 'svc.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    authority: [SOA_5],
  },
  {
    cite: 'coredns checkForApex: the zone apex has no A → NODATA',
    name: 'cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    authority: [SOA_5],
  },
  {
    cite: 'coredns handler.go: SOA at the apex, in the answer',
    name: 'cluster.local',
    type: 'SOA',
    rcode: 'NOERROR',
    answer: [SOA_5],
  },
  {
    cite: "coredns ns.go: NS at the apex → ns.dns.<zone> with this server's address",
    name: 'cluster.local',
    type: 'NS',
    rcode: 'NOERROR',
    answer: ['cluster.local. 5 IN NS ns.dns.cluster.local.'],
    additional: ['ns.dns.cluster.local. 5 IN A 10.0.0.53'],
  },
  {
    cite: 'coredns isDefaultNS: ns.dns.<zone> A',
    name: 'ns.dns.cluster.local',
    type: 'A',
    rcode: 'NOERROR',
    answer: ['ns.dns.cluster.local. 5 IN A 10.0.0.53'],
  },
  {
    cite: 'wildcards: CoreDNS removed them (v1.9.0); kubewire does not support them → NXDOMAIN',
    name: '*.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'wildcards (any): not supported → NXDOMAIN',
    name: 'any.testns.svc.cluster.local',
    type: 'A',
    rcode: 'NXDOMAIN',
    authority: [SOA_5],
  },
  {
    cite: 'coredns handler.go: AXFR/IXFR → REFUSED',
    name: 'cluster.local',
    type: 'AXFR',
    rcode: 'REFUSED',
    flags: ['qr', 'rd'],
  },
  {
    cite: 'coredns fallthrough in-addr.arpa: an unknown address passes to the next plugin (whoami here)',
    name: '4.3.2.1.in-addr.arpa',
    type: 'PTR',
    rcode: 'NOERROR',
    additional: [
      '4.3.2.1.in-addr.arpa. 0 IN A 10.9.8.7',
      '_udp.4.3.2.1.in-addr.arpa. 0 IN SRV 0 0 40000 .',
    ],
  },
];

describe('kubernetes records (spec and CoreDNS tables)', () => {
  const server = buildServer(BASE_COREFILE);
  for (const c of CASES) {
    it(`${c.name} ${c.type} → ${c.rcode}  [${c.cite}]`, async () => {
      const wire = await ask(server, c.name, TYPE[c.type]);
      assert.ok(wire, 'a response');
      const r = decode(wire);
      assert.equal(r.id, 4242);
      assert.equal(r.rcode, c.rcode);
      assert.deepEqual(r.flags, c.flags ?? AA);
      assert.deepEqual(r.question, [`${c.name}. IN ${c.type}`]);
      const norm = (l: string[]) => (c.unordered ? [...l].sort() : l);
      assert.deepEqual(norm(r.answer), norm(c.answer ?? []), 'answer');
      assert.deepEqual(norm(r.authority), norm(c.authority ?? []), 'authority');
      assert.deepEqual(norm(r.additional), norm(c.additional ?? []), 'additional');
    });
  }
});

describe('kubernetes plugin options', () => {
  it('pods disabled (the default): pod names are NXDOMAIN (coredns README pods)', async () => {
    const s = buildServer('.:53 {\n kubernetes cluster.local\n}\n');
    const r = decode((await ask(s, '172-16-0-1.testns.pod.cluster.local', TYPE.A))!);
    assert.equal(r.rcode, 'NXDOMAIN');
    assert.deepEqual(r.authority, [SOA_5]);
  });

  it('pods verified: only a pod with that address in that namespace (coredns README pods)', async () => {
    const s = buildServer('.:53 {\n kubernetes cluster.local {\n pods verified\n }\n}\n');
    const ok = decode((await ask(s, '172-16-0-1.testns.pod.cluster.local', TYPE.A))!);
    assert.equal(ok.rcode, 'NOERROR');
    assert.deepEqual(ok.answer, ['172-16-0-1.testns.pod.cluster.local. 5 IN A 172.16.0.1']);
    const wrongNs = decode((await ask(s, '172-16-0-1.default.pod.cluster.local', TYPE.A))!);
    assert.equal(wrongNs.rcode, 'NXDOMAIN');
    const noPod = decode((await ask(s, '10-244-1-5.testns.pod.cluster.local', TYPE.A))!);
    assert.equal(noPod.rcode, 'NXDOMAIN');
  });

  it('ttl sets record TTLs, the SOA minimum and its TTL (min(ttl, 300)) (coredns README ttl, plugin.SOA)', async () => {
    const s = buildServer('.:53 {\n kubernetes cluster.local {\n ttl 30\n }\n}\n');
    const a = decode((await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A))!);
    assert.deepEqual(a.answer, ['svc1.testns.svc.cluster.local. 30 IN A 10.96.0.100']);
    const nx = decode((await ask(s, 'nope.testns.svc.cluster.local', TYPE.A))!);
    assert.deepEqual(nx.authority, [
      `cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. ${SERIAL} 7200 1800 86400 30`,
    ]);
    const big = buildServer('.:53 {\n kubernetes cluster.local {\n ttl 3600\n }\n}\n');
    const nx2 = decode((await ask(big, 'nope.testns.svc.cluster.local', TYPE.A))!);
    assert.match(nx2.authority[0]!, /^cluster\.local\. 300 IN SOA .* 3600$/);
  });

  it('endpoint_pod_names: endpoints without a hostname are named by their pod (coredns README)', async () => {
    const s = buildServer('.:53 {\n kubernetes cluster.local {\n endpoint_pod_names\n }\n}\n');
    const r = decode((await ask(s, 'web-7d4b9-abcde.hdls.testns.svc.cluster.local', TYPE.A))!);
    assert.deepEqual(r.answer, [
      'web-7d4b9-abcde.hdls.testns.svc.cluster.local. 5 IN A 172.16.0.2',
    ]);
    const srv = decode((await ask(s, '_http._tcp.hdls.testns.svc.cluster.local', TYPE.SRV))!);
    assert.ok(
      srv.answer.some((l) => l.endsWith(' 8080 web-7d4b9-abcde.hdls.testns.svc.cluster.local.')),
    );
  });

  it('noendpoints: headless services and endpoint names are NXDOMAIN (coredns README)', async () => {
    const s = buildServer('.:53 {\n kubernetes cluster.local {\n noendpoints\n }\n}\n');
    assert.equal(
      decode((await ask(s, 'hdls.testns.svc.cluster.local', TYPE.A))!).rcode,
      'NXDOMAIN',
    );
    assert.equal(decode((await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A))!).rcode, 'NOERROR');
  });

  it('fallthrough without zones passes every NXDOMAIN on; without fallthrough it is answered (coredns README)', async () => {
    const s = buildServer('.:53 {\n kubernetes cluster.local {\n fallthrough\n }\n whoami\n}\n');
    const r = decode((await ask(s, 'nope.testns.svc.cluster.local', TYPE.A))!);
    assert.equal(r.rcode, 'NOERROR');
    assert.equal(r.additional.length, 2, 'whoami answered');
    const s2 = buildServer(
      '.:53 {\n kubernetes cluster.local {\n fallthrough in-addr.arpa\n }\n whoami\n}\n',
    );
    assert.equal(
      decode((await ask(s2, 'nope.testns.svc.cluster.local', TYPE.A))!).rcode,
      'NXDOMAIN',
    );
  });

  it('namespaces limits the exposed namespaces (coredns README namespaces)', async () => {
    const s = buildServer('.:53 {\n kubernetes cluster.local {\n namespaces testns\n }\n}\n');
    assert.equal(decode((await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A))!).rcode, 'NOERROR');
    assert.equal(
      decode((await ask(s, 'kubernetes.default.svc.cluster.local', TYPE.A))!).rcode,
      'NXDOMAIN',
    );
  });

  it('publishNotReadyAddresses makes not-ready endpoints count (spec 2.1 ready)', async () => {
    const extra = {
      svc: service('testns', 'pnr', {
        headless: true,
        publishNotReadyAddresses: true,
        ports: [{ name: 'http', port: 80 }],
      }),
      endpoints: [
        portEndpoints('http', 'TCP', 80, [endpoint('172.16.1.1', 80, 'p', { ready: false })]),
      ],
    };
    const s = buildServer(BASE_COREFILE, fixtureView([extra]));
    const r = decode((await ask(s, 'pnr.testns.svc.cluster.local', TYPE.A))!);
    assert.deepEqual(r.answer, ['pnr.testns.svc.cluster.local. 5 IN A 172.16.1.1']);
  });

  it('before the first cluster state, SERVFAIL (coredns: !HasSynced) and /ready says kubernetes', async () => {
    const s = buildServer(BASE_COREFILE, null);
    const r = decode((await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A))!);
    assert.equal(r.rcode, 'SERVFAIL');
    assert.equal(s.instances.find((i) => i.name === 'kubernetes')!.ready!(), false);
    s.setState(fixtureView());
    assert.equal(s.instances.find((i) => i.name === 'kubernetes')!.ready!(), true);
  });

  it('a new state changes the answers (index rebuilt, memo cleared)', async () => {
    const s = buildServer(BASE_COREFILE);
    assert.equal(
      decode((await ask(s, 'late.testns.svc.cluster.local', TYPE.A))!).rcode,
      'NXDOMAIN',
    );
    s.setState(
      fixtureView([
        {
          svc: service('testns', 'late', { clusterIP: '10.96.0.200', ports: [{ port: 80 }] }),
          endpoints: [],
        },
      ]),
    );
    assert.deepEqual(decode((await ask(s, 'late.testns.svc.cluster.local', TYPE.A))!).answer, [
      'late.testns.svc.cluster.local. 5 IN A 10.96.0.200',
    ]);
  });

  it('a Service without ports still has its A record; SRV has none (coredns object.ToService port -1)', async () => {
    const extra = {
      svc: service('testns', 'noports', { clusterIP: '10.96.0.150' }),
      endpoints: [],
    };
    const s = buildServer(BASE_COREFILE, fixtureView([extra]));
    assert.deepEqual(decode((await ask(s, 'noports.testns.svc.cluster.local', TYPE.A))!).answer, [
      'noports.testns.svc.cluster.local. 5 IN A 10.96.0.150',
    ]);
    const srv = decode((await ask(s, 'noports.testns.svc.cluster.local', TYPE.SRV))!);
    assert.equal(srv.rcode, 'NOERROR');
    assert.deepEqual(srv.answer, []);
  });

  it('NS names the kube-dns Service when this server is one of its endpoints (coredns ns.go)', async () => {
    const s = buildServer(BASE_COREFILE, fixtureView(), { localIPs: ['192.168.165.196'] });
    const r = decode((await ask(s, 'cluster.local', TYPE.NS))!);
    assert.deepEqual(r.answer, ['cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local.']);
    assert.deepEqual(r.additional, ['kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10']);
  });
});
