/**
 * The plugins one by one, each with a table or a small scenario (CoreDNS's README of each
 * plugin is the reference): cache, loadbalance, hosts, rewrite, log, errors, whoami,
 * prometheus, health/ready, forward, loop, reload.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { Metrics } from '../../../src/dns/metrics.js';
import type { DnsRequest, Handler, Reply } from '../../../src/dns/plugin.js';
import { CachePlugin } from '../../../src/dns/plugins/cache.js';
import { classify, formatLogLine } from '../../../src/dns/plugins/log.js';
import { roundRobin } from '../../../src/dns/plugins/loadbalance.js';
import { parseCorefile } from '../../../src/dns/corefile.js';
import { DnsServer } from '../../../src/dns/server.js';
import { DnsService } from '../../../src/dns/service.js';
import {
  encodeQuery,
  parseQuery,
  RCODE,
  replyTo,
  rrA,
  rrSOA,
  TYPE,
  type DnsMessage,
  type Query,
} from '../../../src/dns/wire.js';
import { ask, BASE_COREFILE, buildServer, decode, fixtureView, quietLogger } from './helpers.js';

/**
 * Servers these tests start listen on loopback, on a port the kernel picks: `.:53`
 * would bind 0.0.0.0:53 on the machine running the tests.
 */
const LOOPBACK_ANY_PORT = { host: '127.0.0.1', port: 0 };

function query(name: string, type: number, id = 1): Query {
  const q = parseQuery(encodeQuery(id, name, type));
  assert.ok(!('fail' in q));
  return q;
}

function request(name: string, type: number): DnsRequest {
  return {
    q: query(name, type),
    proto: 'udp',
    family: 4,
    remoteAddress: '10.9.8.7',
    remotePort: 40000,
    localAddress: '127.0.0.1',
    localPort: 53,
    zone: '',
    server: 'dns://:53',
    start: performance.now(),
    srv: { lookup: () => Promise.resolve(null) },
    depth: 0,
    after: null,
  };
}

const CACHE_CFG = {
  success: { capacity: 2, maxTTL: 3600, minTTL: 5, disabled: null },
  denial: { capacity: 9984, maxTTL: 1800, minTTL: 5, disabled: ['cluster.local'] },
};

describe('cache', () => {
  const answerer = (ttl: number): { next: Handler; calls: () => number } => {
    let n = 0;
    return {
      next: (req) => {
        n++;
        const m = replyTo(req.q, 'test');
        if (req.q.question.lname.startsWith('nx')) {
          m.rcode = RCODE.NXDOMAIN;
          m.authority = [
            rrSOA('example.org', 60, {
              mname: 'ns.example.org',
              rname: 'h.example.org',
              serial: 1,
              refresh: 1,
              retry: 1,
              expire: 1,
              minimum: 30,
            }),
          ];
        } else m.answer = [rrA(req.q.question.lname, ttl, '1.2.3.4')];
        return m;
      },
      calls: () => n,
    };
  };

  it("caches success with the remaining TTL, and answers with the client's case", () => {
    let now = 1_000_000;
    const c = new CachePlugin([''], CACHE_CFG, 5000, 0, false, false, new Metrics(), () => now);
    const up = answerer(60);
    const first = c.serve(request('a.example.org', TYPE.A), up.next) as DnsMessage;
    assert.equal(first.answer[0]!.ttl, 60);
    now += 10_500;
    const hit = c.serve(request('A.Example.org', TYPE.A), up.next) as DnsMessage;
    assert.equal(up.calls(), 1);
    assert.equal(hit.plugin, 'cache');
    assert.equal(hit.answer[0]!.ttl, 49);
    assert.equal(hit.answer[0]!.name, 'A.Example.org');
    now += 50_000;
    c.serve(request('a.example.org', TYPE.A), up.next);
    assert.equal(up.calls(), 2, 'expired');
  });

  it('keeps TTLs within [MINTTL, TTL] and caches denial for min(SOA TTL, MINIMUM)', () => {
    let now = 0;
    const c = new CachePlugin([''], CACHE_CFG, 5000, 0, false, false, new Metrics(), () => now);
    const up = answerer(1);
    c.serve(request('low.example.org', TYPE.A), up.next);
    now += 4000;
    c.serve(request('low.example.org', TYPE.A), up.next);
    assert.equal(up.calls(), 1, 'TTL 1 is kept for the 5 s minimum');
    c.serve(request('nx.example.org', TYPE.A), up.next);
    now += 29_000;
    c.serve(request('nx.example.org', TYPE.A), up.next);
    assert.equal(up.calls(), 2);
    now += 2000;
    c.serve(request('nx.example.org', TYPE.A), up.next);
    assert.equal(up.calls(), 3, 'denial expired after 30 s');
  });

  it('disable denial for a zone; success capacity evicts the oldest', () => {
    const c = new CachePlugin([''], CACHE_CFG, 5000, 0, false, false, new Metrics(), () => 0);
    const up = answerer(60);
    c.serve(request('nx.cluster.local', TYPE.A), up.next);
    c.serve(request('nx.cluster.local', TYPE.A), up.next);
    assert.equal(up.calls(), 2, 'denial in cluster.local not cached');
    for (const n of ['a', 'b', 'c']) c.serve(request(`${n}.example.org`, TYPE.A), up.next);
    assert.equal(c.sizes().success, 2);
  });

  it('serve_stale answers an expired entry with TTL 0 and refreshes it', async () => {
    let now = 0;
    const c = new CachePlugin(
      [''],
      CACHE_CFG,
      5000,
      3600_000,
      false,
      false,
      new Metrics(),
      () => now,
    );
    const up = answerer(10);
    c.serve(request('s.example.org', TYPE.A), up.next);
    now += 20_000;
    const stale = c.serve(request('s.example.org', TYPE.A), up.next) as DnsMessage;
    assert.equal(stale.answer[0]!.ttl, 0);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(up.calls(), 2, 'refreshed in the background');
  });

  it('serves hits through the whole server and counts them (coredns_cache_hits_total)', async () => {
    const metrics = new Metrics();
    const s = buildServer(
      `.:53 {\n prometheus 127.0.0.1:0\n cache 30\n ${BASE_COREFILE.split('\n').slice(1, 5).join('\n')}\n}\n`,
      fixtureView(),
      { metrics },
    );
    for (let i = 0; i < 3; i++) await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A);
    const text = metrics.registry.render();
    assert.match(
      text,
      /coredns_cache_hits_total\{server="dns:\/\/:53",type="success",zones="\.",view=""\} 2/,
    );
    assert.match(text, /coredns_cache_misses_total\{server="dns:\/\/:53",zones="\.",view=""\} 1/);
  });
});

describe('loadbalance', () => {
  it('shuffles A records, keeps CNAMEs first (coredns loadbalance round_robin)', () => {
    const cname = {
      name: 'x',
      type: TYPE.CNAME,
      class: 1,
      ttl: 5,
      rdata: Buffer.alloc(1),
      target: 'y',
    };
    const as = Array.from({ length: 8 }, (_, i) => rrA('y', 5, `10.0.0.${i}`));
    const orders = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const out = roundRobin([cname, ...as]);
      assert.equal(out[0], cname);
      assert.deepEqual(new Set(out.slice(1)), new Set(as));
      orders.add(out.map((r) => r.rdata[3]).join(','));
    }
    assert.ok(orders.size > 10, `${orders.size} orders seen`);
  });
});

describe('hosts', () => {
  const s = buildServer(`.:53 {
    hosts /nonexistent/hosts example.org {
        10.0.0.1 a.example.org
        10.0.0.2 b.example.org b2.example.org
        fd00::1 a.example.org
        ttl 60
    }
    whoami
}
`);
  it('answers A, AAAA and PTR from inline entries', async () => {
    assert.deepEqual(decode((await ask(s, 'a.example.org', TYPE.A))!).answer, [
      'a.example.org. 60 IN A 10.0.0.1',
    ]);
    assert.deepEqual(decode((await ask(s, 'a.example.org', TYPE.AAAA))!).answer, [
      'a.example.org. 60 IN AAAA fd00::1',
    ]);
    assert.deepEqual(decode((await ask(s, '2.0.0.10.in-addr.arpa', TYPE.PTR))!).answer, [
      '2.0.0.10.in-addr.arpa. 60 IN PTR b.example.org.',
      '2.0.0.10.in-addr.arpa. 60 IN PTR b2.example.org.',
    ]);
  });
  it('NODATA for another type of a known name; SERVFAIL for an unknown one without fallthrough', async () => {
    const nodata = decode((await ask(s, 'b.example.org', TYPE.AAAA))!);
    assert.equal(nodata.rcode, 'NOERROR');
    assert.deepEqual(nodata.answer, []);
    assert.equal(decode((await ask(s, 'zzz.example.org', TYPE.A))!).rcode, 'SERVFAIL');
  });
  it('fallthrough passes unknown names on; names outside the zones go on', async () => {
    const f = buildServer(
      '.:53 {\n hosts /nonexistent {\n  10.0.0.1 a.example.org\n  fallthrough\n }\n whoami\n}\n',
    );
    assert.equal(decode((await ask(f, 'zzz.example.org', TYPE.A))!).additional.length, 2);
    assert.equal(decode((await ask(s, 'www.other.net', TYPE.A))!).additional.length, 2);
  });
});

describe('rewrite', () => {
  const cases: [string, string, string, string][] = [
    [
      'exact',
      'rewrite name exact web.example.org svc1.testns.svc.cluster.local answer auto',
      'web.example.org',
      'web.example.org. 5 IN A 10.96.0.100',
    ],
    [
      'prefix',
      'rewrite name prefix old- svc',
      'old-1.testns.svc.cluster.local',
      'svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100',
    ],
    [
      'suffix',
      'rewrite name suffix .corp.example .svc.cluster.local answer auto',
      'svc1.testns.corp.example',
      'svc1.testns.corp.example. 5 IN A 10.96.0.100',
    ],
    [
      'substring',
      'rewrite name substring .internal. .svc.',
      'svc1.testns.internal.cluster.local',
      'svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100',
    ],
    [
      'regex',
      'rewrite name regex (.*)\\.apps\\.example\\.org {1}.testns.svc.cluster.local answer name (.*)\\.testns\\.svc\\.cluster\\.local {1}.apps.example.org',
      'svc1.apps.example.org',
      'svc1.apps.example.org. 5 IN A 10.96.0.100',
    ],
  ];
  for (const [what, rule, qname, answer] of cases) {
    it(`name ${what}: the plugins after it see the rewritten name; the client its own question`, async () => {
      const s = buildServer(`.:53 {\n ${rule}\n kubernetes cluster.local\n}\n`);
      const r = decode((await ask(s, qname, TYPE.A))!);
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(r.question, [`${qname}. IN A`]);
      assert.deepEqual(r.answer, [answer]);
    });
  }
  it('continue applies the next rule; stop (the default) ends', async () => {
    const s = buildServer(
      '.:53 {\n rewrite continue name prefix a- b-\n rewrite name prefix b- svc1.\n kubernetes cluster.local\n}\n',
    );
    const r = decode((await ask(s, 'a-testns.svc.cluster.local', TYPE.A))!);
    assert.deepEqual(r.answer, ['svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100']);
  });
});

describe('log, errors, whoami', () => {
  it('formats lines as CoreDNS {common}', () => {
    const req = request('svc1.testns.svc.cluster.local', TYPE.A);
    const m = replyTo(req.q);
    m.aa = true;
    m.answer = [rrA('svc1.testns.svc.cluster.local', 5, '10.96.0.100')];
    const line = formatLogLine(
      '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}',
      req,
      m,
      93,
    );
    assert.match(
      line,
      /^10\.9\.8\.7:40000 - 1 "A IN svc1\.testns\.svc\.cluster\.local\. udp 47 false 512" NOERROR qr,aa,rd 93 \d+(\.\d+)?s$/,
    );
    assert.equal(classify(m), 'success');
  });

  it('log writes one pino line per query with the CoreDNS line as msg; class filters', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const s = DnsServer.build({
      corefile: parseCorefile(
        '.:53 {\n log . {\n  class denial\n }\n kubernetes cluster.local\n}\n',
      ),
      text: '',
      logger,
      metrics: new Metrics(),
    });
    s.setState(fixtureView());
    await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A);
    await ask(s, 'nope.testns.svc.cluster.local', TYPE.A);
    assert.equal(lines.length, 1, 'only the denial');
    const o = JSON.parse(lines[0]!) as { msg: string; plugin: string };
    assert.equal(o.plugin, 'log');
    assert.match(
      o.msg,
      /"A IN nope\.testns\.svc\.cluster\.local\. udp \d+ false 512" NXDOMAIN qr,aa,rd \d+ /,
    );
  });

  it('errors logs a failing plugin as CoreDNS does and the client gets SERVFAIL', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const s = DnsServer.build({
      corefile: parseCorefile('.:53 {\n errors\n forward . 127.0.0.1:9 {\n  max_fails 0\n }\n}\n'),
      text: '',
      logger,
      metrics: new Metrics(),
    });
    // No start(): the forward plugin's socket is made on first use; 127.0.0.1:9 (discard) never answers.
    const r = decode((await ask(s, 'www.example.org', TYPE.A))!);
    assert.equal(r.rcode, 'SERVFAIL');
    assert.match(
      JSON.parse(lines[0]!).msg,
      /^plugin\/errors: 2 www\.example\.org\. A: read udp 127\.0\.0\.1:9: i\/o timeout$/,
    );
    await s.stop();
  });

  it('whoami: the client address and port in the additional section', async () => {
    const s = buildServer('.:53 {\n whoami\n}\n');
    const r = decode((await ask(s, 'example.org', TYPE.A))!);
    assert.deepEqual(r.answer, []);
    assert.deepEqual(r.additional, [
      'example.org. 0 IN A 10.9.8.7',
      '_udp.example.org. 0 IN SRV 0 0 40000 .',
    ]);
    assert.ok(r.flags.includes('aa'));
  });
});

/** A lab-internal upstream on 127.0.0.1: answers A with 203.0.113.7 (TEST-NET-3), counts queries. */
async function fakeUpstream(): Promise<{
  port: number;
  count: () => number;
  close: () => void;
  sock: Socket;
}> {
  const sock = createSocket('udp4');
  let n = 0;
  sock.on('message', (msg, rinfo) => {
    n++;
    const q = dnsPacket.decode(msg);
    const question = q.questions![0]!;
    const answers =
      question.type === 'A'
        ? [{ name: question.name, type: 'A' as const, ttl: 300, data: '203.0.113.7' }]
        : [];
    const out = dnsPacket.encode({
      id: q.id,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions,
      answers,
    });
    sock.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, count: () => n, close: () => sock.close(), sock };
}

describe('forward (to a lab-internal upstream on 127.0.0.1)', () => {
  it('forwards, keeps the upstream flags, and counts per upstream', async () => {
    const up = await fakeUpstream();
    const metrics = new Metrics();
    const s = buildServer(
      `.:53 {\n prometheus 127.0.0.1:0\n kubernetes cluster.local\n forward . 127.0.0.1:${up.port}\n}\n`,
      fixtureView(),
      { metrics, listen: LOOPBACK_ANY_PORT },
    );
    await s.start();
    try {
      const r = decode((await ask(s, 'www.example.org', TYPE.A))!);
      assert.deepEqual(r.answer, ['www.example.org. 300 IN A 203.0.113.7']);
      assert.ok(r.flags.includes('ra'));
      const text = metrics.registry.render();
      assert.match(
        text,
        new RegExp(`coredns_forward_requests_total\\{to="127.0.0.1:${up.port}"\\} 1`),
      );
      assert.match(text, /coredns_dns_responses_total\{[^}]*rcode="NOERROR",plugin="forward"\} 1/);
    } finally {
      await s.stop();
      up.close();
    }
  });

  it('resolves an ExternalName target through the chain (CNAME + upstream A)', async () => {
    const up = await fakeUpstream();
    const s = buildServer(
      `.:53 {\n kubernetes cluster.local\n forward . 127.0.0.1:${up.port}\n}\n`,
      fixtureView(),
      { listen: LOOPBACK_ANY_PORT },
    );
    await s.start();
    try {
      const r = decode((await ask(s, 'ext.testns.svc.cluster.local', TYPE.A))!);
      assert.deepEqual(r.answer, [
        'ext.testns.svc.cluster.local. 5 IN CNAME www.example.com.',
        'www.example.com. 300 IN A 203.0.113.7',
      ]);
    } finally {
      await s.stop();
      up.close();
    }
  });

  it('sequential policy skips a dead upstream, marks it down after max_fails, and except keeps names local', async () => {
    const up = await fakeUpstream();
    const dead = createSocket('udp4');
    await new Promise<void>((r) => dead.bind(0, '127.0.0.1', () => r()));
    const deadPort = dead.address().port;
    const s = buildServer(
      `.:53 {\n forward . 127.0.0.1:${deadPort} 127.0.0.1:${up.port} {\n  policy sequential\n  max_fails 1\n  health_check 10s\n  except internal.example\n }\n whoami\n}\n`,
      fixtureView(),
      { listen: LOOPBACK_ANY_PORT },
    );
    await s.start();
    try {
      const t0 = Date.now();
      const r1 = decode((await ask(s, 'one.example.org', TYPE.A))!);
      assert.deepEqual(r1.answer, ['one.example.org. 300 IN A 203.0.113.7']);
      assert.ok(Date.now() - t0 >= 1900, 'waited for the dead one');
      const t1 = Date.now();
      const r2 = decode((await ask(s, 'two.example.org', TYPE.A))!);
      assert.deepEqual(r2.answer, ['two.example.org. 300 IN A 203.0.113.7']);
      assert.ok(Date.now() - t1 < 1000, 'the dead upstream is skipped');
      const local = decode((await ask(s, 'x.internal.example', TYPE.A))!);
      assert.equal(local.additional.length, 2, 'whoami answered');
    } finally {
      await s.stop();
      up.close();
      dead.close();
    }
  });
});

describe('loop', () => {
  it('detects a forward to itself and reports it as fatal', async () => {
    const probe = createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
    const port = probe.address().port;
    probe.close();
    let fatal = '';
    const done = new Promise<void>((resolve) => {
      const s = DnsServer.build({
        corefile: parseCorefile(`.:${port} {\n loop\n forward . 127.0.0.1:${port}\n}\n`),
        text: '',
        logger: quietLogger,
        metrics: new Metrics(),
        bindHost: '127.0.0.1',
        onFatal: (m) => {
          fatal = m;
          void s.stop().then(resolve);
        },
      });
      void s.start();
    });
    await done;
    assert.match(
      fatal,
      /^plugin\/loop: Loop \(127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+\) detected for zone "\.", .* Query: "HINFO \d+\.\d+\."$/,
    );
  });
});

describe('health, ready, prometheus over HTTP', () => {
  it('/health OK, /ready OK once the state is there, /metrics moves', async () => {
    const metrics = new Metrics();
    const s = buildServer(
      '.:53 {\n health 127.0.0.1:0\n ready 127.0.0.1:0\n prometheus 127.0.0.1:0\n kubernetes cluster.local\n}\n',
      null,
      { metrics, listen: LOOPBACK_ANY_PORT },
    );
    await s.start();
    try {
      const { http } = s.addresses();
      const get = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${http[path]}${path}`);
        return { status: res.status, body: await res.text() };
      };
      assert.deepEqual(await get('/health'), { status: 200, body: 'OK' });
      assert.deepEqual(await get('/ready'), { status: 503, body: 'kubernetes' });
      s.setState(fixtureView());
      assert.deepEqual(await get('/ready'), { status: 200, body: 'OK' });
      const count = async () => {
        const m =
          /coredns_dns_requests_total\{server="dns:\/\/:\d+",zone="\.",view="",proto="udp",family="1",type="A"\} (\d+)/.exec(
            (await get('/metrics')).body,
          );
        return m ? Number(m[1]) : 0;
      };
      const before = await count();
      await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A);
      await ask(s, 'svc1.testns.svc.cluster.local', TYPE.A);
      assert.equal(await count(), before + 2);
      const body = (await get('/metrics')).body;
      for (const name of [
        'coredns_dns_responses_total',
        'coredns_dns_request_duration_seconds_bucket',
        'coredns_dns_request_size_bytes_bucket',
        'coredns_dns_response_size_bytes_bucket',
        'coredns_build_info',
        'coredns_plugin_enabled',
      ]) {
        assert.ok(body.includes(name), name);
      }
    } finally {
      await s.stop();
    }
  });
});

describe('reload (DnsService)', () => {
  it('applies a changed Corefile, and keeps the last good one when the new one is bad', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-dns-'));
    const file = join(dir, 'Corefile');
    const good = (ttl: number) =>
      `.:0 {\n reload 2s\n kubernetes cluster.local {\n  ttl ${ttl}\n }\n}\n`;
    writeFileSync(file, good(5));
    const svc = new DnsService({ logger: quietLogger, corefileFile: file, bindHost: '127.0.0.1' });
    await svc.start(fixtureView());
    try {
      const ttlOf = async () =>
        decode((await ask(svc.server!, 'svc1.testns.svc.cluster.local', TYPE.A))!).answer[0];
      assert.equal(await ttlOf(), 'svc1.testns.svc.cluster.local. 5 IN A 10.96.0.100');
      writeFileSync(file, good(30));
      assert.equal(await svc.reload(), true);
      assert.equal(await ttlOf(), 'svc1.testns.svc.cluster.local. 30 IN A 10.96.0.100');
      writeFileSync(file, '.:0 {\n reload 2s\n kubernetes cluster.local {\n  ttl banana\n }\n}\n');
      assert.equal(await svc.reload(), false);
      assert.equal(await ttlOf(), 'svc1.testns.svc.cluster.local. 30 IN A 10.96.0.100');
      assert.match(svc.metrics.registry.render(), /coredns_reload_failed_total 1/);
    } finally {
      await svc.stop();
    }
  });
});

describe('reload from the coredns ConfigMap', () => {
  it('a changed ConfigMap Corefile applies on the next state (with the reload plugin)', async () => {
    const cm = (ttl: number) =>
      `.:0 {\n reload\n kubernetes cluster.local {\n  ttl ${ttl}\n }\n}\n`;
    const svc = new DnsService({ logger: quietLogger, bindHost: '127.0.0.1' });
    await svc.start({ ...fixtureView(), corefile: cm(5) });
    try {
      assert.equal(svc.source, 'configmap');
      svc.setState({ ...fixtureView(), corefile: cm(60) });
      for (let i = 0; i < 50 && !svc.corefileText.includes('ttl 60'); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const r = decode((await ask(svc.server!, 'svc1.testns.svc.cluster.local', TYPE.A))!);
      assert.deepEqual(r.answer, ['svc1.testns.svc.cluster.local. 60 IN A 10.96.0.100']);
    } finally {
      await svc.stop();
    }
  });
});

// Keep the Reply type referenced for readers of the handler signature.
export type { Reply };
