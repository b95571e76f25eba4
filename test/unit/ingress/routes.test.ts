import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explainRoute, formatRoutes, type IngressConfig } from '../../../src/ingress/index.js';
import { compile, ingress, INGRESS_CLASS, join, service } from './helpers.js';

const route = (c: IngressConfig, host: string, path: string) => explainRoute(c, host, path);
const backendPath = (c: IngressConfig, host: string, path: string) => route(c, host, path).path;

describe('ingress-nginx rewrite example (docs/examples/rewrite)', () => {
  // path /something(/|$)(.*), rewrite-target /$2, pathType ImplementationSpecific
  const c = compile(
    join(
      INGRESS_CLASS,
      service('http-svc', 80, [1]),
      ingress({
        name: 'rewrite',
        annotations: {
          'nginx.ingress.kubernetes.io/use-regex': 'true',
          'nginx.ingress.kubernetes.io/rewrite-target': '/$2',
        },
        host: 'rewrite.bar.com',
        paths: [{ path: '/something(/|$)(.*)', service: 'http-svc', port: 80 }],
      }),
    ),
  );
  const table: [string, string][] = [
    ['/something', '/'],
    ['/something/', '/'],
    ['/something/new', '/new'],
  ];
  for (const [from, to] of table) {
    it(`rewrite.bar.com${from} rewrites to rewrite.bar.com${to}`, () => {
      const r = route(c, 'rewrite.bar.com', from);
      assert.equal(r.upstream, 'default-http-svc-80');
      assert.equal(r.path, to);
    });
  }
  it('keeps the query string and matches case-insensitively (location ~*)', () => {
    assert.equal(backendPath(c, 'rewrite.bar.com', '/SomeThing/new?a=1'), '/new?a=1');
  });
  it('a path outside the regex goes to the default backend', () => {
    assert.equal(route(c, 'rewrite.bar.com', '/other').upstream, 'upstream-default-backend');
  });
});

describe('the seed: /blog(/|$)(.*) → /blogroll/$2, by host and by path', () => {
  const c = compile(
    join(
      INGRESS_CLASS,
      service('webapp', 80, [1]),
      service('blog', 80, [2]),
      ingress({
        name: 'blog',
        annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/blogroll/$2' },
        host: 'blog.webapp.com',
        paths: [{ path: '/blog(/|$)(.*)', service: 'blog', port: 80 }],
      }),
      ingress({
        name: 'webapp',
        host: 'webapp.com',
        paths: [
          { path: '/', pathType: 'Prefix', service: 'webapp', port: 80 },
          { path: '/blog', pathType: 'Prefix', service: 'blog', port: 80 },
        ],
      }),
    ),
  );
  it('/blog → /blogroll/ and /blog/hello-world → /blogroll/hello-world', () => {
    assert.equal(backendPath(c, 'blog.webapp.com', '/blog'), '/blogroll/');
    assert.equal(backendPath(c, 'blog.webapp.com', '/blog/hello-world'), '/blogroll/hello-world');
    assert.equal(route(c, 'blog.webapp.com', '/blog').location, '~* "^/blog(/|$)(.*)"');
  });
  it('routes by path: / → webapp, /blog → blog (Prefix by path elements)', () => {
    assert.equal(route(c, 'webapp.com', '/').upstream, 'default-webapp-80');
    assert.equal(route(c, 'webapp.com', '/index.html').upstream, 'default-webapp-80');
    assert.equal(route(c, 'webapp.com', '/blog').upstream, 'default-blog-80');
    assert.equal(route(c, 'webapp.com', '/blog/').upstream, 'default-blog-80');
    assert.equal(route(c, 'webapp.com', '/blog/post/1').upstream, 'default-blog-80');
    assert.equal(route(c, 'webapp.com', '/blogger').upstream, 'default-webapp-80');
    assert.equal(route(c, 'webapp.com', '/blog').location, '= /blog');
    assert.equal(route(c, 'webapp.com', '/blog/x').location, '/blog/');
    // no rewrite: the original target goes upstream
    assert.equal(backendPath(c, 'webapp.com', '/blog/x?y=1'), '/blog/x?y=1');
  });
  it('routes by host; a Host with a port is the same server; unknown hosts get the default server', () => {
    assert.equal(route(c, 'WebApp.com:8080', '/').upstream, 'default-webapp-80');
    assert.equal(route(c, 'blog.webapp.com', '/').upstream, 'upstream-default-backend');
    assert.equal(route(c, 'other.com', '/blog').server, '_');
    assert.equal(route(c, 'other.com', '/blog').upstream, 'upstream-default-backend');
  });
});

describe('the guestbook rewrite', () => {
  const make = (path: string, target: string) =>
    compile(
      join(
        INGRESS_CLASS,
        service('frontend', 80, [1]),
        ingress({
          name: 'guestbook',
          annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': target },
          paths: [{ path, service: 'frontend', port: 80 }],
        }),
      ),
    );
  it('/guestbook with rewrite-target / sends every page to / (the whole URI is replaced)', () => {
    const c = make('/guestbook', '/');
    assert.equal(backendPath(c, 'any', '/guestbook'), '/');
    assert.equal(backendPath(c, 'any', '/guestbook/controllers.js'), '/');
  });
  it('the capture-group fix /guestbook(/|$)(.*) → /$2 keeps the rest of the path', () => {
    const c = make('/guestbook(/|$)(.*)', '/$2');
    assert.equal(backendPath(c, 'any', '/guestbook'), '/');
    assert.equal(backendPath(c, 'any', '/guestbook/'), '/');
    assert.equal(backendPath(c, 'any', '/guestbook/controllers.js'), '/controllers.js');
    assert.equal(route(c, 'any', '/guestbook/controllers.js').upstream, 'default-frontend-80');
  });
});

describe('path matching (docs/user-guide/ingress-path-matching.md)', () => {
  it('use-regex: locations are ordered by descending length, first match wins', () => {
    const c = compile(
      join(
        INGRESS_CLASS,
        service('svc-a', 80, [1]),
        service('svc-b', 80, [2]),
        ingress({
          name: 'test-ingress',
          annotations: { 'nginx.ingress.kubernetes.io/use-regex': 'true' },
          host: 'test.com',
          paths: [
            { path: '/foo/bar/bar', pathType: 'Prefix', service: 'svc-a', port: 80 },
            {
              path: '/foo/bar/[A-Z0-9]{3}',
              pathType: 'ImplementationSpecific',
              service: 'svc-b',
              port: 80,
            },
          ],
        }),
      ),
    );
    const server = c.servers.get('test.com')!;
    assert.deepEqual(
      server.locations.map((l) => l.nginx),
      ['~* "^/foo/bar/[A-Z0-9]{3}"', '~* "^/foo/bar/bar"', '~* "^/"'],
    );
    // "a request to test.com/foo/bar/bar would match the ^/foo/bar/[A-Z0-9]{3} location"
    assert.equal(route(c, 'test.com', '/foo/bar/bar').upstream, 'default-svc-b-80');
    assert.equal(route(c, 'test.com', '/foo/bar/ba').upstream, 'upstream-default-backend');
  });
  it('rewrite-target on one Ingress makes every path of the host a regex (case-insensitive, prefix)', () => {
    const c = compile(
      join(
        INGRESS_CLASS,
        service('svc-a', 80, [1]),
        service('svc-b', 80, [2]),
        ingress({
          name: 'test-ingress-1',
          host: 'test.com',
          paths: [{ path: '/foo/bar', pathType: 'Prefix', service: 'svc-a', port: 80 }],
        }),
        ingress({
          name: 'test-ingress-2',
          annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/$1' },
          host: 'test.com',
          paths: [
            {
              path: '/foo/bar/(.+)',
              pathType: 'ImplementationSpecific',
              service: 'svc-b',
              port: 80,
            },
          ],
        }),
      ),
    );
    assert.deepEqual(
      c.servers.get('test.com')!.locations.map((l) => l.nginx),
      ['~* "^/foo/bar/(.+)"', '~* "^/foo/bar/"', '~* "^/foo/bar"', '~* "^/"'],
    );
    assert.equal(route(c, 'test.com', '/foo/bar/bar').upstream, 'default-svc-b-80');
    assert.equal(backendPath(c, 'test.com', '/foo/bar/bar'), '/bar');
    assert.equal(route(c, 'test.com', '/foo/bar').upstream, 'default-svc-a-80');
    // the Prefix path is now a regex prefix: /foo/barbaz and /FOO/BAR match it too
    assert.equal(route(c, 'test.com', '/foo/barbaz').upstream, 'default-svc-a-80');
    assert.equal(route(c, 'test.com', '/FOO/BAR').upstream, 'default-svc-a-80');
  });
  it('Exact matches only the path; Exact wins over Prefix of the same path', () => {
    const c = compile(
      join(
        INGRESS_CLASS,
        service('exact', 80, [1]),
        service('prefix', 80, [2]),
        ingress({
          name: 'a',
          host: 'x.com',
          paths: [
            { path: '/foo', pathType: 'Exact', service: 'exact', port: 80 },
            { path: '/foo', pathType: 'Prefix', service: 'prefix', port: 80 },
          ],
        }),
      ),
    );
    assert.equal(route(c, 'x.com', '/foo').upstream, 'default-exact-80');
    assert.equal(route(c, 'x.com', '/foo/').upstream, 'default-prefix-80');
    assert.equal(route(c, 'x.com', '/foo/a').upstream, 'default-prefix-80');
    assert.equal(route(c, 'x.com', '/foobar').upstream, 'upstream-default-backend');
  });
  it('$uri is normalized before matching: %-decoding, merged slashes, dot segments', () => {
    const c = compile(
      join(
        INGRESS_CLASS,
        service('a', 80, [1]),
        ingress({
          name: 'a',
          host: 'x.com',
          paths: [{ path: '/foo', pathType: 'Prefix', service: 'a', port: 80 }],
        }),
      ),
    );
    assert.equal(route(c, 'x.com', '/%66oo/bar').upstream, 'default-a-80');
    assert.equal(route(c, 'x.com', '//foo//bar').upstream, 'default-a-80');
    assert.equal(route(c, 'x.com', '/bar/../foo/x').upstream, 'default-a-80');
    assert.equal(route(c, 'x.com', '/Foo').upstream, 'upstream-default-backend');
  });
  it('the oldest Ingress (then namespace/name) wins a path defined twice', () => {
    const c = compile(
      join(
        INGRESS_CLASS,
        service('one', 80, [1]),
        service('two', 80, [2]),
        ingress({
          name: 'b',
          host: 'x.com',
          paths: [{ path: '/p', pathType: 'Prefix', service: 'two', port: 80 }],
        }),
        ingress({
          name: 'a',
          host: 'x.com',
          paths: [{ path: '/p', pathType: 'Prefix', service: 'one', port: 80 }],
        }),
      ),
    );
    assert.equal(route(c, 'x.com', '/p').upstream, 'default-one-80');
    assert.ok(
      c.warnings.some(
        (w) => w.includes('default/b') && w.includes('already defined by Ingress default/a'),
      ),
    );
  });
});

describe('hosts', () => {
  const c = compile(
    join(
      INGRESS_CLASS,
      service('exact', 80, [1]),
      service('wild', 80, [2]),
      service('catch', 80, [3]),
      ingress({
        name: 'e',
        host: 'blog.webapp.com',
        paths: [{ path: '/', pathType: 'Prefix', service: 'exact', port: 80 }],
      }),
      ingress({
        name: 'w',
        host: '*.webapp.com',
        paths: [{ path: '/', pathType: 'Prefix', service: 'wild', port: 80 }],
      }),
      ingress({
        name: 'c',
        paths: [{ path: '/', pathType: 'Prefix', service: 'catch', port: 80 }],
      }),
    ),
  );
  it('exact host before wildcard', () => {
    assert.equal(route(c, 'blog.webapp.com', '/').upstream, 'default-exact-80');
    assert.equal(route(c, 'shop.webapp.com', '/').upstream, 'default-wild-80');
  });
  it('a wildcard covers exactly one label; other hosts take the rules without host', () => {
    assert.equal(route(c, 'a.b.webapp.com', '/').upstream, 'default-catch-80');
    assert.equal(route(c, 'webapp.com', '/').upstream, 'default-catch-80');
    assert.equal(route(c, '', '/').upstream, 'default-catch-80');
  });
  it('formats the table with hosts, ordered locations and backends', () => {
    const text = formatRoutes(c);
    assert.match(text, /server \*\.webapp\.com {2}no TLS/);
    assert.match(
      text,
      /location \/ +-> default-exact-80 \[127\.0\.0\.1:1\] {2}\(Ingress default\/e\)/,
    );
  });
});

describe('ingress class (ingress-nginx store.go / ingressclass.go)', () => {
  const svc = service('s', 80, [1]);
  const ing = (name: string, extra: Partial<Parameters<typeof ingress>[0]> = {}) =>
    ingress({
      name,
      host: `${name}.com`,
      paths: [{ path: '/', pathType: 'Prefix', service: 's', port: 80 }],
      ...extra,
    });
  it('the legacy annotation decides when present', () => {
    const c = compile(
      join(
        svc,
        ing('a', { annotations: { 'kubernetes.io/ingress.class': 'nginx' } }),
        ing('b', { annotations: { 'kubernetes.io/ingress.class': 'traefik' } }),
      ),
    );
    assert.deepEqual(c.accepted, ['default/a']);
    assert.match(c.ignored[0]!.reason, /traefik/);
  });
  it('ingressClassName must name an IngressClass of controller k8s.io/ingress-nginx', () => {
    const other = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: other}
spec: {controller: example.com/other}`;
    const c = compile(
      join(
        INGRESS_CLASS,
        other,
        svc,
        ing('a', { ingressClassName: 'nginx' }),
        ing('b', { ingressClassName: 'other' }),
        ing('c', { ingressClassName: 'missing' }),
        ing('d'),
      ),
    );
    assert.deepEqual(c.accepted, ['default/a', 'default/d']);
    assert.deepEqual(
      c.ignored.map((i) => i.ingress),
      ['default/b', 'default/c'],
    );
  });
  it('without a default IngressClass, class-less Ingresses are ignored unless --watch-ingress-without-class', () => {
    const yaml = join(svc, ing('a'));
    assert.deepEqual(compile(yaml).accepted, []);
    assert.deepEqual(compile(yaml, { watchWithoutClass: true }).accepted, ['default/a']);
  });
});
