/**
 * The pod resolv.conf by dnsPolicy, as the kubelet forms it (pkg/kubelet/network/dns/dns.go:
 * parseResolvConf, GetPodDNS, generateSearchesForDNSClusterFirst, formDNSSearchFitsLimits).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseResolvConf, resolvConfFor } from '../../../src/agent/resolv-conf.js';
import type { PodState } from '../../../src/cluster/index.js';

const pod = (over: Partial<PodState> = {}): PodState =>
  ({ namespace: 'demo', dnsPolicy: 'ClusterFirst', hostNetwork: false, ...over }) as PodState;

const NODE = `# written by the node's resolver
nameserver 10.255.255.53
search old.example
options timeout:1
search lan corp.example. .
nameserver 10.255.255.54
options edns0 attempts:2
`;

describe('pod resolv.conf (kubelet)', () => {
  it("parses the node's file as the kubelet does: last search and options lines win", () => {
    const r = parseResolvConf(NODE);
    assert.deepEqual(r.nameservers, ['10.255.255.53', '10.255.255.54']);
    assert.deepEqual(r.searches, ['lan', 'corp.example']);
    assert.deepEqual(
      [...r.options],
      [
        ['edns0', undefined],
        ['attempts', '2'],
      ],
    );
  });

  it("ClusterFirst: the cluster DNS, the namespace's search path then the node's, ndots:5", () => {
    assert.equal(
      resolvConfFor(pod(), '10.96.0.10', 'cluster.local', NODE),
      'search demo.svc.cluster.local svc.cluster.local cluster.local lan corp.example\n' +
        'nameserver 10.96.0.10\noptions ndots:5\n',
    );
    // Nothing to add from a node without a search line; duplicates are omitted.
    assert.equal(
      resolvConfFor(pod(), '10.96.0.10', 'cluster.local', 'nameserver 1.1.1.1\n'),
      'search demo.svc.cluster.local svc.cluster.local cluster.local\n' +
        'nameserver 10.96.0.10\noptions ndots:5\n',
    );
    assert.match(
      resolvConfFor(pod(), '10.96.0.10', 'cluster.local', 'search cluster.local lan\n'),
      /^search demo\.svc\.cluster\.local svc\.cluster\.local cluster\.local lan\n/,
    );
  });

  it('hostNetwork with ClusterFirst is Default; ClusterFirstWithHostNet is ClusterFirst', () => {
    assert.equal(
      resolvConfFor(pod({ hostNetwork: true }), '10.96.0.10', 'cluster.local', NODE),
      'search lan corp.example\nnameserver 10.255.255.53\nnameserver 10.255.255.54\n' +
        'options edns0 attempts:2\n',
    );
    assert.match(
      resolvConfFor(
        pod({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }),
        '10.96.0.10',
        'cluster.local',
        NODE,
      ),
      /^search demo\.svc\.cluster\.local .*\nnameserver 10\.96\.0\.10\noptions ndots:5\n$/,
    );
  });

  it('None takes dnsConfig alone; dnsConfig is merged into the others', () => {
    const dnsConfig = {
      nameservers: ['192.0.2.1'],
      searches: ['extra.example', 'svc.cluster.local'],
      options: [{ name: 'ndots', value: '2' }, { name: 'single-request' }],
    };
    assert.equal(
      resolvConfFor(pod({ dnsPolicy: 'None', dnsConfig }), '10.96.0.10', 'cluster.local', NODE),
      'search extra.example svc.cluster.local\nnameserver 192.0.2.1\n' +
        'options ndots:2 single-request\n',
    );
    assert.equal(
      resolvConfFor(pod({ dnsConfig }), '10.96.0.10', 'cluster.local', ''),
      'search demo.svc.cluster.local svc.cluster.local cluster.local extra.example\n' +
        'nameserver 10.96.0.10\nnameserver 192.0.2.1\noptions ndots:2 single-request\n',
    );
  });

  it('keeps the search line within 32 domains and 2048 characters', () => {
    const many = Array.from({ length: 40 }, (_, i) => `d${i}.example`).join(' ');
    const line = resolvConfFor(pod(), '10.96.0.10', 'cluster.local', `search ${many}\n`)
      .split('\n')[0]!
      .split(' ')
      .slice(1);
    assert.equal(line.length, 32);
    assert.equal(line[31], 'd28.example');
    const long = Array.from({ length: 20 }, (_, i) => `${'x'.repeat(120)}${i}.example`).join(' ');
    const cut = resolvConfFor(pod(), '10.96.0.10', 'cluster.local', `search ${long}\n`).split(
      '\n',
    )[0]!;
    assert.ok(cut.length - 'search '.length <= 2048, String(cut.length));
    assert.match(cut, /^search demo\.svc\.cluster\.local svc\.cluster\.local cluster\.local x/);
  });
});
