import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  TraceFilterError,
  parseTraceFilter,
  traceFilterText,
} from '../../../src/dataplane/trace-filter.js';
import { ip } from './helpers.js';

/** [src, dst, proto, sport, dport] */
type Flow = [string, string, number, number, number];

const CLIENT_SYN: Flow = ['10.1.0.89', '10.1.110.102', 6, 40000, 30080];
const REPLY: Flow = ['10.1.110.102', '10.1.0.89', 6, 30080, 40000];
const DNS: Flow = ['192.168.104.65', '10.96.0.10', 17, 5353, 53];
const PING: Flow = ['10.1.0.89', '192.168.8.222', 1, -1, -1];
const FLOWS = { CLIENT_SYN, REPLY, DNS, PING };

function matching(expr: string): string[] {
  const f = parseTraceFilter(expr);
  return Object.entries(FLOWS)
    .filter(([, [s, d, p, sp, dp]]) => f.matches(ip(s), ip(d), p, sp, dp))
    .map(([name]) => name);
}

describe('trace filter (tcpdump subset)', () => {
  const table: Array<[string, string[]]> = [
    ['', ['CLIENT_SYN', 'REPLY', 'DNS', 'PING']],
    ['ip', ['CLIENT_SYN', 'REPLY', 'DNS', 'PING']],
    ['host 10.1.0.89', ['CLIENT_SYN', 'REPLY', 'PING']],
    ['src host 10.1.0.89', ['CLIENT_SYN', 'PING']],
    ['dst host 10.1.0.89', ['REPLY']],
    ['src 10.1.0.89', ['CLIENT_SYN', 'PING']],
    ['10.96.0.10', ['DNS']],
    ['net 192.168.0.0/16', ['DNS', 'PING']],
    ['net 192.168', ['DNS', 'PING']],
    ['dst net 10.96.0.0/12', ['DNS']],
    ['192.168.8.0/24', ['PING']],
    ['port 30080', ['CLIENT_SYN', 'REPLY']],
    ['dst port 30080', ['CLIENT_SYN']],
    ['src port 30080', ['REPLY']],
    ['port domain', ['DNS']],
    ['udp port 53', ['DNS']],
    ['tcp port 53', []],
    ['tcp dst port 30080', ['CLIENT_SYN']],
    ['portrange 30000-32767', ['CLIENT_SYN', 'REPLY']],
    ['tcp', ['CLIENT_SYN', 'REPLY']],
    ['udp', ['DNS']],
    ['icmp', ['PING']],
    ['proto 17', ['DNS']],
    ['proto \\icmp', ['PING']],
    ['host 10.1.0.89 and port 30080', ['CLIENT_SYN', 'REPLY']],
    ['host 10.1.0.89 && tcp', ['CLIENT_SYN', 'REPLY']],
    ['icmp or udp', ['DNS', 'PING']],
    ['icmp || udp', ['DNS', 'PING']],
    ['not tcp', ['DNS', 'PING']],
    ['! tcp', ['DNS', 'PING']],
    ['not (tcp or udp)', ['PING']],
    ['host 10.1.0.89 and not port 30080', ['PING']],
    ['tcp and (dst port 30080 or dst port 1)', ['CLIENT_SYN']],
    // tcpdump's carried keywords: `host A or B` is `host A or host B`.
    ['host 10.96.0.10 or 192.168.8.222', ['DNS', 'PING']],
    ['dst port 53 or 30080', ['CLIENT_SYN', 'DNS']],
    ['port 53 and 10.96.0.10', ['DNS']],
    // and binds tighter than or
    ['icmp or tcp and dst port 30080', ['CLIENT_SYN', 'PING']],
  ];
  for (const [expr, want] of table) {
    it(`'${expr}' matches ${want.join(', ') || 'nothing'}`, () => {
      assert.deepEqual(matching(expr), want);
    });
  }

  it('port primitives never match packets without ports', () => {
    assert.deepEqual(matching('port 0'), []);
    assert.deepEqual(matching('not port 1'), ['CLIENT_SYN', 'REPLY', 'DNS', 'PING']);
  });

  it('normalises its text', () => {
    assert.equal(
      parseTraceFilter('  host   10.1.0.89  and(tcp)').text,
      'host 10.1.0.89 and ( tcp )',
    );
  });

  const errors: Array<[string, RegExp]> = [
    ['host', /ends early/],
    ['host 10.1.0', /not an IPv4 address/],
    ['host 10.1.0.256', /not an IPv4 address/],
    ['port 70000', /out of range/],
    ['port nosuchservice', /unknown port 'nosuchservice'/],
    ['portrange 10-5', /empty port range/],
    ['net 10.1.0.1/16', /non-network bits/],
    ['net 10.1.0.0/33', /bad prefix length/],
    ['tcp and', /ends early/],
    ['(tcp', /missing '\)'/],
    ['tcp)', /near '\)'/],
    ['frobnicate', /near 'frobnicate'/],
    ['icmp port 1', /'icmp' has no ports/],
    ['proto sctpx', /unknown protocol/],
    ['tcp tcp', /near 'tcp'/],
    ['host 1.2.3.4 $', /near '\$'|is not an IPv4/],
  ];
  for (const [expr, re] of errors) {
    it(`refuses '${expr}'`, () => {
      assert.throws(
        () => parseTraceFilter(expr),
        (e: unknown) => {
          assert.ok(e instanceof TraceFilterError, String(e));
          assert.match(e.message, re);
          return true;
        },
      );
    });
  }

  it('iptables-style flags join the expression with and', () => {
    assert.equal(
      traceFilterText('host 10.1.0.89', { protocol: 'tcp', dport: '30080' }),
      '( host 10.1.0.89 ) and proto tcp and tcp dst port 30080',
    );
    assert.equal(
      traceFilterText('', { source: '10.1.0.89', destination: '10.96.0.0/12' }),
      'src net 10.1.0.89/32 and dst net 10.96.0.0/12',
    );
    assert.equal(traceFilterText(' icmp ', {}), 'icmp');
    assert.equal(traceFilterText('', {}), '');
    assert.throws(() => traceFilterText('', { protocol: 'gre2' }), TraceFilterError);
    assert.deepEqual(matching(traceFilterText('', { protocol: 'udp', dport: '53' })), ['DNS']);
  });
});
