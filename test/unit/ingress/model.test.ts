import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManifestErrors } from '../../../src/cluster/index.js';
import {
  escapeUri,
  explainRoute,
  normalizePath,
  parseAnnotations,
  parseNginxSize,
  parseTarget,
  readIngresses,
} from '../../../src/ingress/index.js';
import { compile, docs, ingress, INGRESS_CLASS, join, service } from './helpers.js';

function problems(yaml: string): string[] {
  try {
    compile(yaml);
  } catch (e) {
    if (e instanceof ManifestErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  return [];
}

describe('Ingress objects', () => {
  it('reads the extensions/v1beta1 form (serviceName / servicePort, spec.backend, no pathType)', () => {
    const yaml = `apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: webapp
  annotations: {kubernetes.io/ingress.class: nginx}
spec:
  backend: {serviceName: webapp, servicePort: http}
  rules:
  - host: webapp.com
    http:
      paths:
      - path: /
        backend: {serviceName: webapp, servicePort: 80}`;
    const { ingresses, errors } = readIngresses(docs(yaml));
    assert.deepEqual(errors, []);
    assert.equal(ingresses.length, 1);
    const ing = ingresses[0]!;
    assert.deepEqual(ing.defaultBackend, { service: 'webapp', port: 'http' });
    assert.equal(ing.rules[0]!.paths![0]!.pathType, 'ImplementationSpecific');
    assert.deepEqual(ing.rules[0]!.paths![0]!.backend, { service: 'webapp', port: 80 });
    const c = compile(join(service('webapp', 80, [9]), yaml));
    // ImplementationSpecific is Prefix for ingress-nginx (SetDefaultNGINXPathType)
    assert.equal(explainRoute(c, 'webapp.com', '/x').upstream, 'default-webapp-80');
  });

  it('refuses invalid objects naming file, document, field and line', () => {
    const yaml = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: "Bad_Host"
    http:
      paths:
      - path: /x
        backend:
          service: {name: web, port: {number: 80, name: http}}
      - path: relative
        pathType: Prefix
        backend: {service: {name: web, port: {number: 70000}}}`;
    const msgs = problems(yaml);
    assert.deepEqual(msgs, [
      "ingress.yaml document 1 (Ingress default/bad): spec.rules[0].host: \"Bad_Host\" is not a valid DNS-1123 subdomain (lowercase letters, digits, '-' and '.') (line 6)",
      'ingress.yaml document 1 (Ingress default/bad): spec.rules[0].http.paths[0].backend.service.port: exactly one of number or name must be set (line 11)',
      'ingress.yaml document 1 (Ingress default/bad): spec.rules[0].http.paths[0].pathType: required field is missing (Exact, Prefix or ImplementationSpecific) (line 9)',
      'ingress.yaml document 1 (Ingress default/bad): spec.rules[0].http.paths[1].backend.service.port.number: must be between 1 and 65535, got 70000 (line 14)',
      'ingress.yaml document 1 (Ingress default/bad): spec.rules[0].http.paths[1].path: "relative" must be an absolute path (start with \'/\') (line 12)',
    ]);
  });

  it('refuses annotation values that do not parse, and paths that are no regex where one is needed', () => {
    const msgs = problems(
      join(
        INGRESS_CLASS,
        service('s', 80, [1]),
        ingress({
          name: 'a',
          annotations: {
            'nginx.ingress.kubernetes.io/proxy-body-size': 'lots',
            'nginx.ingress.kubernetes.io/use-regex': 'true',
          },
          host: 'a.com',
          paths: [{ path: '/foo/(unclosed', service: 's', port: 80 }],
        }),
      ),
    );
    assert.equal(msgs.length, 2);
    assert.match(
      msgs[0]!,
      /^ingress\.yaml document 4 \(Ingress default\/a\): metadata\.annotations\["nginx\.ingress\.kubernetes\.io\/proxy-body-size"\]: expected a size such as 8m, 512k or 0, got "lots"/,
    );
    assert.match(
      msgs[1]!,
      /spec\.rules\[0\]\.http\.paths\[0\]\.path: "\/foo\/\(unclosed" is used as a regular expression/,
    );
  });

  it('warns once per Ingress about annotations kubewire does not implement', () => {
    const c = compile(
      join(
        INGRESS_CLASS,
        service('s', 80, [1]),
        ingress({
          name: 'a',
          annotations: {
            'nginx.ingress.kubernetes.io/limit-rps': '5',
            'nginx.ingress.kubernetes.io/auth-url': 'http://auth',
            'nginx.ingress.kubernetes.io/ssl-redirect': 'false',
          },
          paths: [{ path: '/', pathType: 'Prefix', service: 's', port: 80 }],
        }),
      ),
    );
    const w = c.warnings.filter((x) => x.includes('not supported'));
    assert.deepEqual(w, [
      'Ingress default/a: annotations not supported by kubewire, ignored: nginx.ingress.kubernetes.io/auth-url, nginx.ingress.kubernetes.io/limit-rps',
    ]);
  });

  it('explains a missing Service and a Service without endpoints', () => {
    const c = compile(
      join(
        INGRESS_CLASS,
        service('empty', 80, []),
        ingress({
          name: 'a',
          paths: [
            { path: '/a', pathType: 'Prefix', service: 'empty', port: 80 },
            { path: '/b', pathType: 'Prefix', service: 'nope', port: 80 },
          ],
        }),
      ),
    );
    assert.ok(
      c.warnings.includes(
        'upstream default-empty-80: Service default/empty does not have any active Endpoint',
      ),
    );
    assert.ok(c.warnings.includes('upstream default-nope-80: Service default/nope not found'));
  });
});

describe('annotations', () => {
  it('nginx sizes', () => {
    assert.equal(parseNginxSize('1m'), 1048576);
    assert.equal(parseNginxSize('8k'), 8192);
    assert.equal(parseNginxSize('0'), 0);
    assert.equal(parseNginxSize('1g'), 1073741824);
    assert.equal(parseNginxSize('1.5m'), null);
  });
  it('defaults are ingress-nginx ConfigMap defaults', () => {
    const { settings } = parseAnnotations({});
    assert.equal(settings.sslRedirect, true);
    assert.equal(settings.proxyBodySize, 1024 * 1024);
    assert.equal(settings.proxyReadTimeout, 60);
    assert.equal(settings.backendProtocol, 'HTTP');
  });
  it('temporal-redirect wins over permanent-redirect; codes default to 302 and 301', () => {
    const p = 'nginx.ingress.kubernetes.io/';
    assert.deepEqual(
      parseAnnotations({ [`${p}permanent-redirect`]: 'https://a.example/' }).settings.redirect,
      {
        url: 'https://a.example/',
        code: 301,
      },
    );
    assert.deepEqual(
      parseAnnotations({
        [`${p}permanent-redirect`]: 'https://a/',
        [`${p}temporal-redirect`]: 'https://b/',
      }).settings.redirect,
      { url: 'https://b/', code: 302 },
    );
  });
  it('whitelist-source-range takes addresses and CIDRs', () => {
    const r = parseAnnotations({
      'nginx.ingress.kubernetes.io/whitelist-source-range': '10.0.0.0/8, 192.168.1.7',
    });
    assert.deepEqual(r.problems, []);
    assert.equal(r.settings.whitelist!.length, 2);
    const bad = parseAnnotations({
      'nginx.ingress.kubernetes.io/whitelist-source-range': '10.0.0.0/40',
    });
    assert.equal(bad.problems.length, 1);
  });
});

describe('request URIs (ngx_http_parse_complex_uri)', () => {
  it('normalizes $uri', () => {
    assert.equal(normalizePath('/a//b/./c/../d'), '/a/b/d');
    assert.equal(normalizePath('/a/%2e%2e/b'), '/b');
    assert.equal(normalizePath('/%41%20b'), '/A b');
    assert.equal(normalizePath('/a/..'), '/');
    assert.equal(normalizePath('/..'), null);
    assert.equal(normalizePath('/%zz'), null);
  });
  it('splits the target and takes the host of an absolute-form target', () => {
    assert.deepEqual(parseTarget('/a?b=1'), { uri: '/a', args: 'b=1', host: null });
    assert.deepEqual(parseTarget('http://Example.com/x'), {
      uri: '/x',
      args: '',
      host: 'Example.com',
    });
    assert.equal(parseTarget('x'), null);
  });
  it('escapes a rewritten URI as ngx_escape_uri does', () => {
    // bytes (UTF-8 of é is C3 A9), as nginx sees them
    assert.equal(
      escapeUri(`/a b/%/${Buffer.from('é').toString('latin1')}?#`),
      '/a%20b/%25/%C3%A9%3F%23',
    );
    assert.equal(escapeUri('/plain'), '/plain');
  });
});
