/**
 * Issue 5's "must show", in the reference lab (`kubewire up` with no arguments): the
 * cluster DNS asked by real dig, host, nslookup, getent and curl run inside pods, through
 * the kube-dns ClusterIP 10.96.0.10 (kube-proxy's DNAT to a CoreDNS pod, over IPIP when
 * the CoreDNS pod is on another node).
 *
 * The reference lab has no `main` namespace, no headless Service and no Service with a
 * named port that pods outside it would ask for, so the test applies them
 * (`kubewire apply`, the file written to a temp dir): namespace `main` with the seed's
 * `webserver` (ClusterIP, port `http`, three pods), the headless `webserver-pods` over
 * the same pods, and two pods with hostname and subdomain `db`, db-0 on worker-1 and db-1
 * on worker-2, behind the headless `db` (both) and `db-primary` (db-0). The client is the
 * wordpress pod (namespace wordpress, on worker-2): another namespace than `main`. The
 * last case stops worker-1.
 *
 * Cases cite the Kubernetes DNS-Based Service Discovery specification
 * (https://github.com/kubernetes/dns/blob/master/docs/specification.md, schema 1.1.0) as
 * "spec 2.x", and CoreDNS's plugin/kubernetes where the spec leaves the form open.
 * TTLs: the lab's Corefile says `ttl 30` and `cache 30`, so every TTL is at most 30.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  clusterFirstResolvConf,
  kubewire,
  kubewireOk,
  labName,
  pods,
  rootSkip,
  sleep,
  type PodInfo,
} from '../lab-harness.js';

const lab = labName('dnsl');
const ZONE = 'cluster.local';
const KUBE_DNS = '10.96.0.10';

const MAIN = `apiVersion: v1
kind: Namespace
metadata: {name: main}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: webserver, namespace: main}
spec:
  replicas: 3
  selector: {matchLabels: {app: webserver}}
  template:
    metadata: {labels: {app: webserver}}
    spec:
      containers:
        - name: web
          image: nginx:1.25
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: webserver, namespace: main}
spec:
  selector: {app: webserver}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: webserver-pods, namespace: main}
spec:
  clusterIP: None
  selector: {app: webserver}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: main, labels: {app: db, role: primary}}
spec:
  nodeName: worker-1
  hostname: db-0
  subdomain: db
  containers: [{name: db, image: postgres:16, ports: [{name: postgres, containerPort: 5432}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: main, labels: {app: db, role: replica}}
spec:
  nodeName: worker-2
  hostname: db-1
  subdomain: db
  containers: [{name: db, image: postgres:16, ports: [{name: postgres, containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: main}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: postgres, port: 5432, targetPort: postgres}]
---
apiVersion: v1
kind: Service
metadata: {name: db-primary, namespace: main}
spec:
  clusterIP: None
  selector: {app: db, role: primary}
  ports: [{name: postgres, port: 5432, targetPort: postgres}]
`;

interface Rr {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

interface DigResult {
  status: string;
  flags: string[];
  answer: Rr[];
  authority: Rr[];
  additional: Rr[];
  /** `;; SERVER:` — who answered, and over which transport. */
  server: string;
  raw: string;
}

/** dig's output with +noall +comments +answer +authority +additional +stats, parsed. */
function parseDig(raw: string): DigResult {
  const r: DigResult = {
    status: '',
    flags: [],
    answer: [],
    authority: [],
    additional: [],
    server: '',
    raw,
  };
  let section: Rr[] | null = null;
  for (const line of raw.split('\n')) {
    const header = /status: ([A-Z]+),/.exec(line);
    if (header) r.status = header[1]!;
    const flags = /^;; flags: ([a-z ]*);/.exec(line);
    if (flags) r.flags = flags[1]!.trim().split(/\s+/);
    const server = /^;; SERVER: (.*)$/.exec(line);
    if (server) r.server = server[1]!.trim();
    const sec = /^;; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:/.exec(line);
    if (sec) section = r[sec[1]!.toLowerCase() as 'answer' | 'authority' | 'additional'];
    else if (line.trim() === '') section = null;
    else if (section && !line.startsWith(';')) {
      const m = /^(\S+)\s+(\d+)\s+IN\s+(\S+)\s+(.*)$/.exec(line);
      assert.ok(m, `unparsed record line: ${line}`);
      section.push({
        name: m[1]!,
        ttl: Number(m[2]),
        type: m[3]!,
        data: m[4]!.replace(/\s+/g, ' '),
      });
    }
  }
  assert.ok(r.status, `no header in dig's output:\n${raw}`);
  return r;
}

/** `name TYPE data`, sorted: record sets compared without TTLs (checked apart) and order. */
const rrset = (rrs: Rr[]) => rrs.map((r) => `${r.name} ${r.type} ${r.data}`).sort();

/** Authoritative answers of the kubernetes plugin: qr aa rd, no ra (CoreDNS does not recurse). */
const AA = ['qr', 'aa', 'rd'];

function assertTtls(d: DigResult): void {
  for (const r of [...d.answer, ...d.authority, ...d.additional])
    assert.ok(r.ttl >= 0 && r.ttl <= 30, `TTL ${r.ttl} of ${r.name} ${r.type}: ${d.raw}`);
}

/** The SOA of the cluster zone that negative answers carry (CoreDNS plugin/backend_lookup.go SOA). */
const SOA =
  /^cluster\.local\. SOA ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\. (\d+) 7200 1800 86400 30$/;

describe('DNS from pods in the reference lab', { skip: rootSkip, timeout: 420_000 }, () => {
  let dir: string;
  let client: PodInfo;
  let web: PodInfo[];
  let db0: PodInfo;
  let db1: PodInfo;
  let corednsIPs: string[];
  let webserverIP: string;

  const exec = (pod: PodInfo, cmd: string[]) =>
    kubewire(lab, ['exec', '-n', pod.namespace, pod.name, '--', ...cmd]);
  const execOk = async (pod: PodInfo, cmd: string[]) => {
    const r = await exec(pod, cmd);
    assert.equal(r.code, 0, `${cmd.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  /** dig in the client pod (its resolv.conf: nameserver 10.96.0.10 unless @ is given). */
  const dig = async (...args: string[]) =>
    parseDig(
      await execOk(client, [
        'dig',
        '+noall',
        '+comments',
        '+answer',
        '+authority',
        '+additional',
        '+stats',
        ...args,
      ]),
    );
  /** A question no cache holds (a new name each time): NXDOMAIN, with the SOA serial. */
  let probe = 0;
  const soaSerial = async (server: string): Promise<number> => {
    const d = await dig(`@${server}`, `probe-${process.pid}-${++probe}.main.svc.${ZONE}`);
    assert.equal(d.status, 'NXDOMAIN', d.raw);
    return Number(SOA.exec(rrset(d.authority)[0] ?? '')?.[1]);
  };

  before(async () => {
    dir = mkdtempSync('/tmp/kw-dnslab-');
    await kubewireOk(lab, ['up']);
    writeFileSync(join(dir, 'main.yaml'), MAIN);
    await kubewireOk(lab, ['apply', '-f', join(dir, 'main.yaml'), '--wait']);
    const all = await pods(lab);
    client = all.find((p) => p.namespace === 'wordpress' && /^wordpress-(?!db)/.test(p.name))!;
    web = all.filter((p) => p.namespace === 'main' && p.name.startsWith('webserver-'));
    db0 = all.find((p) => p.namespace === 'main' && p.name === 'db-0')!;
    db1 = all.find((p) => p.namespace === 'main' && p.name === 'db-1')!;
    corednsIPs = all.filter((p) => p.name.startsWith('coredns-')).map((p) => p.ip);
    assert.ok(client && db0 && db1 && web.length === 3, JSON.stringify(all));
    assert.deepEqual(corednsIPs.sort(), ['192.168.165.196', '192.168.8.207']);
    const svcs = JSON.parse(await kubewireOk(lab, ['get', 'svc', '-n', 'main', '-o', 'json'])) as {
      name: string;
      clusterIP: string | null;
    }[];
    webserverIP = svcs.find((s) => s.name === 'webserver')!.clusterIP!;
    assert.match(webserverIP, /^10\.96\.\d+\.\d+$/);
    // The CoreDNS pods read the applied manifests within a second (src/dns/README.md); ask
    // each, with names no cache holds, until its zone has namespace `main` (pods insecure:
    // any address in an existing namespace answers).
    for (const server of corednsIPs) {
      const deadline = Date.now() + 10_000;
      for (let i = 1; ; i++) {
        const d = await dig(`@${server}`, `10-255-0-${i}.main.pod.${ZONE}`);
        if (d.status === 'NOERROR') break;
        assert.ok(Date.now() < deadline, `CoreDNS ${server} never saw namespace main: ${d.raw}`);
        await sleep(200);
      }
    }
  });

  after(async () => {
    await kubewire(lab, ['down']);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the kubernetes Service is a real cluster's: 10.96.0.1, 443/TCP named https", async () => {
    // The API server creates default/kubernetes (src/cluster/services.ts): the first
    // address of the service CIDR, port https 443 → 6443 on the control-plane node.
    const svcs = JSON.parse(
      await kubewireOk(lab, ['get', 'svc', '-n', 'default', '-o', 'json']),
    ) as { name: string; clusterIP: string; selector: unknown; ports: unknown[] }[];
    const k = svcs.find((s) => s.name === 'kubernetes')!;
    assert.equal(k.clusterIP, '10.96.0.1');
    assert.equal(k.selector, null);
    assert.deepEqual(k.ports, [
      { name: 'https', protocol: 'TCP', port: 443, targetPort: 6443, nodePort: null },
    ]);
    const described = await kubewireOk(lab, ['describe', 'svc', 'kubernetes', '-n', 'default']);
    assert.match(described, /^Endpoints:\s+10\.1\.110\.108:6443$/m);
  });

  test('dig @10.96.0.10 kubernetes.default.svc.cluster.local (spec 2.3.1), over UDP and TCP', async () => {
    for (const proto of ['+notcp', '+tcp']) {
      const d = await dig(`@${KUBE_DNS}`, `kubernetes.default.svc.${ZONE}`, proto);
      assert.equal(d.status, 'NOERROR', d.raw);
      assert.deepEqual(d.flags, AA, d.raw);
      assert.deepEqual(rrset(d.answer), ['kubernetes.default.svc.cluster.local. A 10.96.0.1']);
      assert.deepEqual(d.authority, []);
      assert.equal(d.server, `10.96.0.10#53(10.96.0.10) (${proto === '+tcp' ? 'TCP' : 'UDP'})`);
      assertTtls(d);
    }
    // spec 2.3.2's own example: SRV of the named port, the Service's A in additional.
    const srv = await dig('SRV', `_https._tcp.kubernetes.default.svc.${ZONE}`);
    assert.equal(srv.status, 'NOERROR', srv.raw);
    assert.deepEqual(srv.flags, AA);
    assert.deepEqual(rrset(srv.answer), [
      '_https._tcp.kubernetes.default.svc.cluster.local. SRV 0 100 443 kubernetes.default.svc.cluster.local.',
    ]);
    assert.deepEqual(rrset(srv.additional), ['kubernetes.default.svc.cluster.local. A 10.96.0.1']);
    // spec 2.3.3's example: the ClusterIP's PTR.
    const ptr = await dig('-x', '10.96.0.1');
    assert.equal(ptr.status, 'NOERROR', ptr.raw);
    assert.deepEqual(rrset(ptr.answer), [
      '1.0.96.10.in-addr.arpa. PTR kubernetes.default.svc.cluster.local.',
    ]);
    // spec 2.2: the schema version.
    const txt = await dig('TXT', `dns-version.${ZONE}`);
    assert.deepEqual(rrset(txt.answer), ['dns-version.cluster.local. TXT "1.1.0"']);
  });

  test('SRV _http._tcp.webserver.main.svc.cluster.local: the named port (spec 2.3.2, 2.4.2)', async () => {
    const d = await dig('SRV', `_http._tcp.webserver.main.svc.${ZONE}`);
    assert.equal(d.status, 'NOERROR', d.raw);
    assert.deepEqual(d.flags, AA);
    // ClusterIP: one SRV to the Service name with the Service port; CoreDNS: priority 0,
    // weight 100 / records.
    assert.deepEqual(rrset(d.answer), [
      '_http._tcp.webserver.main.svc.cluster.local. SRV 0 100 80 webserver.main.svc.cluster.local.',
    ]);
    assert.deepEqual(rrset(d.additional), [`webserver.main.svc.cluster.local. A ${webserverIP}`]);
    assertTtls(d);
    // Headless: one SRV per ready endpoint, target <hostname>.<svc> (the dashed IP when the
    // pod has none, CoreDNS), the endpoint's port; their A records in additional.
    const h = await dig('SRV', `_http._tcp.webserver-pods.main.svc.${ZONE}`);
    assert.equal(h.status, 'NOERROR', h.raw);
    const dashed = (ip: string) =>
      `${ip.replace(/\./g, '-')}.webserver-pods.main.svc.cluster.local.`;
    assert.deepEqual(
      rrset(h.answer),
      web
        .map(
          (p) => `_http._tcp.webserver-pods.main.svc.cluster.local. SRV 0 33 8080 ${dashed(p.ip)}`,
        )
        .sort(),
    );
    assert.deepEqual(rrset(h.additional), web.map((p) => `${dashed(p.ip)} A ${p.ip}`).sort());
    // An undeclared port: the name does not exist.
    const none = await dig('SRV', `_https._tcp.webserver.main.svc.${ZONE}`);
    assert.equal(none.status, 'NXDOMAIN', none.raw);
  });

  test("a headless Service's A records are the ready pods' addresses (spec 2.4.1)", async () => {
    const listed = (await pods(lab, 'main')).filter(
      (p) => p.name.startsWith('webserver-') && p.status?.ready,
    );
    assert.equal(listed.length, 3);
    const d = await dig(`webserver-pods.main.svc.${ZONE}`);
    assert.equal(d.status, 'NOERROR', d.raw);
    assert.deepEqual(d.flags, AA);
    assert.deepEqual(
      rrset(d.answer),
      listed.map((p) => `webserver-pods.main.svc.cluster.local. A ${p.ip}`).sort(),
    );
    assertTtls(d);
    // The same addresses `kubewire get pods -o wide` prints for the Deployment's pods.
    const wide = await kubewireOk(lab, ['get', 'pods', '-n', 'main', '-o', 'wide']);
    const wideIPs = wide
      .split('\n')
      .filter((l) => /^webserver-\S+\s+1\/1\s+Running\s/.test(l))
      .map((l) => l.trim().split(/\s+/)[5]!);
    assert.deepEqual(wideIPs.sort(), listed.map((p) => p.ip).sort());
    // A pod with hostname and subdomain = the Service: <hostname>.<svc>.<ns>.svc.<zone>.
    const host = await dig(`db-0.db.main.svc.${ZONE}`);
    assert.equal(host.status, 'NOERROR', host.raw);
    assert.deepEqual(rrset(host.answer), [`db-0.db.main.svc.cluster.local. A ${db0.ip}`]);
  });

  test('dig -x: a pod address (CoreDNS style) and a Service address (spec 2.4.3, 2.3.3)', async () => {
    const rev = (ip: string) => `${ip.split('.').reverse().join('.')}.in-addr.arpa.`;
    // A pod that backs two Services has one PTR per Service (CoreDNS reverse.go), each
    // <hostname>.<svc>.<ns>.svc.<zone> with the dashed IP as hostname.
    const pod = web[0]!;
    const dashed = pod.ip.replace(/\./g, '-');
    const d = await dig('-x', pod.ip);
    assert.equal(d.status, 'NOERROR', d.raw);
    assert.deepEqual(d.flags, AA);
    assert.deepEqual(rrset(d.answer), [
      `${rev(pod.ip)} PTR ${dashed}.webserver-pods.main.svc.cluster.local.`,
      `${rev(pod.ip)} PTR ${dashed}.webserver.main.svc.cluster.local.`,
    ]);
    assertTtls(d);
    // The pod's hostname where its subdomain is the Service (spec 2.4.3's my-pet
    // example); the dashed IP in db-primary, which is not its subdomain.
    const named = await dig('-x', db0.ip);
    assert.deepEqual(rrset(named.answer), [
      `${rev(db0.ip)} PTR ${db0.ip.replace(/\./g, '-')}.db-primary.main.svc.cluster.local.`,
      `${rev(db0.ip)} PTR db-0.db.main.svc.cluster.local.`,
    ]);
    // The Service's ClusterIP → the Service.
    const svc = await dig('-x', webserverIP);
    assert.equal(svc.status, 'NOERROR', svc.raw);
    assert.deepEqual(rrset(svc.answer), [
      `${rev(webserverIP)} PTR webserver.main.svc.cluster.local.`,
    ]);
    // An address nobody has: the kubernetes plugin falls through (`fallthrough
    // in-addr.arpa`) and the lab's Corefile has no upstream (no `forward`: the lab never
    // leaks), so the chain ends unanswered: SERVFAIL, as CoreDNS's plugin.NextOrFailure.
    const nobody = await dig('-x', '10.96.255.254');
    assert.equal(nobody.status, 'SERVFAIL', nobody.raw);
    assert.deepEqual(nobody.flags, ['qr', 'rd']);
  });

  test('from another namespace: webserver.main, .svc and .svc.cluster.local through the search path (spec 2.3.1)', async () => {
    // getaddrinfo (getent, curl) walks the pod's search list: wordpress.svc.cluster.local
    // (NXDOMAIN) first, then svc.cluster.local (webserver.main) or cluster.local
    // (webserver.main.svc); the FQDN goes as it is (ndots:5 → search first, then as is).
    for (const name of [
      'webserver.main',
      'webserver.main.svc',
      'webserver.main.svc.cluster.local',
    ]) {
      const getent = await execOk(client, ['getent', 'hosts', name]);
      assert.match(
        getent,
        new RegExp(
          `^${webserverIP.replace(/\./g, '\\.')}\\s+webserver\\.main\\.svc\\.cluster\\.local\\n$`,
        ),
        name,
      );
      const curl = await execOk(client, [
        'curl',
        '-sS',
        '-m',
        '5',
        '-o',
        '/dev/null',
        '-w',
        '%{remote_ip} %{http_code}',
        `http://${name}/`,
      ]);
      assert.equal(curl, `${webserverIP} 200`, name);
      const d = await dig('+search', name);
      assert.equal(d.status, 'NOERROR', `${name}: ${d.raw}`);
      assert.deepEqual(d.flags, AA);
      assert.deepEqual(
        rrset(d.answer),
        [`webserver.main.svc.cluster.local. A ${webserverIP}`],
        name,
      );
    }
    // Through kube-proxy's DNAT to a webserver pod, which sees the client's own address.
    const body = JSON.parse(
      await execOk(client, ['curl', '-sS', '-m', '5', 'http://webserver.main/dnslab']),
    ) as {
      pod: string;
      namespace: string;
      podIP: string;
      client: { address: string };
    };
    assert.equal(body.namespace, 'main');
    assert.ok(
      web.some((p) => p.name === body.pod && p.ip === body.podIP),
      JSON.stringify(body),
    );
    assert.equal(body.client.address, client.ip);
  });

  test('a pod name a-b-c-d.<ns>.pod.cluster.local resolves to that address (spec 2.6)', async () => {
    const pod = web[0]!;
    const dashed = pod.ip.replace(/\./g, '-');
    const d = await dig(`${dashed}.main.pod.${ZONE}`);
    assert.equal(d.status, 'NOERROR', d.raw);
    assert.deepEqual(d.flags, AA);
    assert.deepEqual(rrset(d.answer), [`${dashed}.main.pod.cluster.local. A ${pod.ip}`]);
    // The short form through the search path (…cluster.local).
    const getent = await execOk(client, ['getent', 'hosts', `${dashed}.main.pod`]);
    assert.equal(
      getent.trim().split(/\s+/).join(' '),
      `${pod.ip} ${dashed}.main.pod.cluster.local`,
    );
    // A namespace that does not exist: NXDOMAIN.
    const none = await dig(`${dashed}.nosuchns.pod.${ZONE}`);
    assert.equal(none.status, 'NXDOMAIN', none.raw);
  });

  test('host and nslookup (bind9-host, bind9-dnsutils) answer the same', async () => {
    assert.equal(
      await execOk(client, ['host', 'webserver.main']),
      `webserver.main.svc.cluster.local has address ${webserverIP}\n`,
    );
    assert.equal(
      await execOk(client, ['host', '-t', 'SRV', `_http._tcp.webserver.main.svc.${ZONE}`]),
      `_http._tcp.webserver.main.svc.cluster.local has SRV record 0 100 80 webserver.main.svc.cluster.local.\n`,
    );
    const pod = web[1]!;
    const rev = `${pod.ip.split('.').reverse().join('.')}.in-addr.arpa`;
    const ptrs = (await execOk(client, ['host', pod.ip])).trim().split('\n').sort();
    const dashed = pod.ip.replace(/\./g, '-');
    assert.deepEqual(ptrs, [
      `${rev} domain name pointer ${dashed}.webserver-pods.main.svc.cluster.local.`,
      `${rev} domain name pointer ${dashed}.webserver.main.svc.cluster.local.`,
    ]);
    const missing = await exec(client, ['host', `nosuch.main.svc.${ZONE}`]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stdout, `Host nosuch.main.svc.cluster.local not found: 3(NXDOMAIN)\n`);

    // nslookup also says ";; Got recursion not available from 10.96.0.10", as against CoreDNS.
    const ns = await execOk(client, ['nslookup', 'webserver.main']);
    assert.match(ns, /^Server:\s+10\.96\.0\.10\nAddress:\s+10\.96\.0\.10#53\n/m);
    assert.match(
      ns,
      new RegExp(
        `^Name:\\s+webserver\\.main\\.svc\\.cluster\\.local\\nAddress: ${webserverIP.replace(/\./g, '\\.')}$`,
        'm',
      ),
    );
    const nsPtr = await execOk(client, ['nslookup', webserverIP]);
    assert.match(
      nsPtr,
      new RegExp(`in-addr\\.arpa\\s+name = webserver\\.main\\.svc\\.cluster\\.local\\.$`, 'm'),
    );
    const nsMissing = await exec(client, ['nslookup', `nosuch.main.svc.${ZONE}`]);
    assert.equal(nsMissing.code, 1);
    assert.match(
      nsMissing.stdout,
      /\*\* server can't find nosuch\.main\.svc\.cluster\.local: NXDOMAIN/,
    );
  });

  test("a pod's /etc/resolv.conf is the kubelet's for ClusterFirst", async () => {
    // Kubelet (pkg/kubelet/network/dns/dns.go, GetPodDNS; the docs' "Pod's DNS Policy"):
    // the cluster DNS only, the namespace's search path followed by the node's own search
    // domains, ndots:5; containerd writes search, nameserver, options. (The spec does not
    // cover resolv.conf.) On this machine: see clusterFirstResolvConf.
    assert.equal(
      await execOk(client, ['cat', '/etc/resolv.conf']),
      clusterFirstResolvConf('wordpress'),
    );
    assert.match(
      clusterFirstResolvConf('wordpress'),
      /^search wordpress\.svc\.cluster\.local svc\.cluster\.local cluster\.local[ \n]/,
    );
    assert.equal(
      await execOk(web[0]!, ['cat', '/etc/resolv.conf']),
      clusterFirstResolvConf('main'),
    );
  });

  test('a missing Service: NXDOMAIN with the zone SOA in authority (RFC 2308; CoreDNS)', async () => {
    // The spec defines no record for it (2.3, 2.4); CoreDNS answers NXDOMAIN with
    // `<zone> min(ttl,300) SOA ns.dns.<zone> hostmaster.<zone> <serial> 7200 1800 86400 <ttl>`.
    const out = await execOk(client, ['dig', '+noall', '+authority', `nosuch.main.svc.${ZONE}`]);
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 1, out);
    assert.match(
      lines[0]!.replace(/\s+/g, ' '),
      /^cluster\.local\. ([0-9]|[12][0-9]|30) IN SOA ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\. \d+ 7200 1800 86400 30$/,
    );
    const d = await dig(`nosuch.main.svc.${ZONE}`);
    assert.equal(d.status, 'NXDOMAIN');
    assert.deepEqual(d.flags, AA);
    assert.deepEqual(d.answer, []);
    assert.equal(d.authority.length, 1);
    assert.match(rrset(d.authority)[0]!, SOA);
    // A name that exists with another type: NOERROR, no answer, the same SOA (NODATA).
    const nodata = await dig('AAAA', `webserver.main.svc.${ZONE}`);
    assert.equal(nodata.status, 'NOERROR', nodata.raw);
    assert.deepEqual(nodata.answer, []);
    assert.match(rrset(nodata.authority)[0]!, SOA);
    // Through the search path (dig +search +showsearch): each cluster candidate is
    // NXDOMAIN; the name as it is lies outside cluster.local and, with no upstream in the
    // lab's Corefile, gets SERVFAIL (see the PTR case). getent: not found (exit 2).
    const walk = await execOk(client, [
      'dig',
      '+search',
      '+showsearch',
      '+noall',
      '+comments',
      '+question',
      'nosuch.main',
    ]);
    const tries: string[] = [];
    for (const line of walk.split('\n')) {
      const st = /status: ([A-Z]+),/.exec(line);
      if (st) tries.push(st[1]!);
      const q = /^;([^;\s]\S*)\s+IN\s+A$/.exec(line);
      if (q) tries[tries.length - 1] += ` ${q[1]}`;
    }
    assert.deepEqual(tries, [
      'NXDOMAIN nosuch.main.wordpress.svc.cluster.local.',
      'NXDOMAIN nosuch.main.svc.cluster.local.',
      'NXDOMAIN nosuch.main.cluster.local.',
      'SERVFAIL nosuch.main.',
    ]);
    assert.equal((await exec(client, ['getent', 'hosts', 'nosuch.main'])).code, 2);
  });

  // Last: stops worker-1 for good (the lab goes away after it).
  test('a node that stops: its pods are no longer ready and leave the headless answers (spec 2.1, 2.4.1)', async () => {
    // Names asked for the first time here: CoreDNS's cache (cache 30) would serve an
    // earlier answer for up to 30 s, as in a cluster.
    const before = await Promise.all(corednsIPs.map((s) => soaSerial(s)));
    await kubewireOk(lab, ['node', 'stop', 'worker-1']);
    // Both CoreDNS pods (control-plane, worker-2) take the change: their zone's SOA serial,
    // the time of the last state change, moves on.
    for (const [i, server] of corednsIPs.entries()) {
      const deadline = Date.now() + 15_000;
      while ((await soaSerial(server)) <= before[i]!) {
        assert.ok(Date.now() < deadline, `CoreDNS ${server} did not see worker-1 go`);
        await sleep(250);
      }
    }
    const ready = (await pods(lab, 'main')).filter(
      (p) => p.name.startsWith('db-') && p.status?.ready,
    );
    assert.deepEqual(
      ready.map((p) => p.name),
      ['db-1'],
    );
    const d = await dig(`db.main.svc.${ZONE}`);
    assert.equal(d.status, 'NOERROR', d.raw);
    assert.deepEqual(rrset(d.answer), [`db.main.svc.cluster.local. A ${db1.ip}`]);
    // No ready endpoint left: NXDOMAIN (spec 2.4.1), the SOA in authority.
    const primary = await dig(`db-primary.main.svc.${ZONE}`);
    assert.equal(primary.status, 'NXDOMAIN', primary.raw);
    assert.match(rrset(primary.authority)[0]!, SOA);
  });
});
