/** The Corefile parser and plugin setups: structure, defaults, errors with line numbers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CorefileError,
  defaultCorefile,
  parseCorefile,
  parseDuration,
  reverseZones,
} from '../../../src/dns/corefile.js';
import { PLUGIN_ORDER } from '../../../src/dns/plugins/index.js';
import { buildServer } from './helpers.js';

function setupError(text: string): CorefileError {
  try {
    buildServer(text);
  } catch (e) {
    assert.ok(e instanceof CorefileError, String(e));
    return e;
  }
  assert.fail('expected a CorefileError');
}

describe('Corefile syntax', () => {
  it('parses server blocks, keys, directives, blocks and lines', () => {
    const cf = parseCorefile(
      `# comment
.:53 {
    errors
    kubernetes cluster.local in-addr.arpa {   # trailing comment
       pods insecure
       fallthrough in-addr.arpa
    }
    forward . "127.0.0.53"
}

example.org:1053 dns://other.org {
    whoami
}
`,
    );
    assert.equal(cf.blocks.length, 2);
    assert.deepEqual(cf.blocks[0]!.keys, [{ zone: '', port: 53, text: '.:53' }]);
    const k = cf.blocks[0]!.directives[1]!;
    assert.equal(k.name, 'kubernetes');
    assert.equal(k.line, 4);
    assert.deepEqual(k.args, ['cluster.local', 'in-addr.arpa']);
    assert.deepEqual(
      k.block!.map((d) => [d.name, d.args, d.line]),
      [
        ['pods', ['insecure'], 5],
        ['fallthrough', ['in-addr.arpa'], 6],
      ],
    );
    assert.deepEqual(cf.blocks[0]!.directives[2]!.args, ['.', '127.0.0.53']);
    assert.deepEqual(
      cf.blocks[1]!.keys.map((x) => [x.zone, x.port]),
      [
        ['example.org', 1053],
        ['other.org', 53],
      ],
    );
  });

  it('expands CIDR keys into reverse zones (coredns plugin.SplitHostPort)', () => {
    assert.deepEqual(reverseZones('10.0.0.0', 8), ['10.in-addr.arpa']);
    assert.deepEqual(reverseZones('10.0.0.0', 17).length, 128);
    assert.deepEqual(reverseZones('192.168.0.0', 24), ['0.168.192.in-addr.arpa']);
    const cf = parseCorefile('10.0.0.0/24:53 {\n whoami\n}\n');
    assert.deepEqual(cf.blocks[0]!.keys[0]!.zone, '0.0.10.in-addr.arpa');
  });

  it('substitutes environment variables', () => {
    const cf = parseCorefile('.:{$DNSPORT} {\n whoami\n}\n', 'Corefile', { DNSPORT: '5300' });
    assert.equal(cf.blocks[0]!.keys[0]!.port, 5300);
  });

  it('accepts one block without braces (Caddy single-server form)', () => {
    const cf = parseCorefile('.:5300\nwhoami\n');
    assert.equal(cf.blocks[0]!.keys[0]!.port, 5300);
    assert.deepEqual(
      cf.blocks[0]!.directives.map((d) => d.name),
      ['whoami'],
    );
  });

  it('reads Go durations', () => {
    assert.equal(parseDuration('5s'), 5000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('10'), 10_000);
    assert.equal(parseDuration('5x'), null);
  });

  const syntaxErrors: [string, string, number, RegExp][] = [
    ['unclosed block', '.:53 {\n whoami\n', 1, /unclosed '\{'/],
    ['stray close', '.:53 {\n whoami\n}\n}\n', 4, /unexpected '\}'/],
    ['unterminated quote', '.:53 {\n forward . "1.2.3.4\n}\n', 2, /unterminated/],
    ['bad port', '.:99999 {\n whoami\n}\n', 1, /invalid port/],
    ['import', '.:53 {\n import foo\n}\n', 2, /import/],
    ['other transport', 'tls://.:853 {\n whoami\n}\n', 1, /tls:\/\//],
  ];
  for (const [what, text, line, re] of syntaxErrors) {
    it(`syntax error: ${what} (line ${line})`, () => {
      assert.throws(
        () => parseCorefile(text, '/etc/coredns/Corefile'),
        (e: unknown) =>
          e instanceof CorefileError &&
          e.line === line &&
          re.test(e.message) &&
          e.message.startsWith(`/etc/coredns/Corefile:${line} - Error during parsing: `),
      );
    });
  }
});

describe('plugin setup errors name the line', () => {
  const cases: [string, string, number, RegExp][] = [
    ['unknown plugin', '.:53 {\n errors\n bogus\n}\n', 3, /Unknown directive 'bogus'/],
    [
      'known, not supported',
      '.:53 {\n dnssec\n}\n',
      2,
      /plugin 'dnssec' is not supported by kubewire/,
    ],
    ['pods value', '.:53 {\n kubernetes {\n  pods maybe\n }\n}\n', 3, /pods: expected one of/],
    [
      'ttl range',
      '.:53 {\n kubernetes {\n  ttl 7200\n }\n}\n',
      3,
      /ttl: '7200' is not an integer in \[0, 3600\]/,
    ],
    [
      'kubernetes unknown property',
      '.:53 {\n kubernetes {\n  wat\n }\n}\n',
      3,
      /unknown property 'wat'/,
    ],
    ['twice in a block', '.:53 {\n cache\n cache 10\n}\n', 3, /only be used once per Server Block/],
    ['forward without TO', '.:53 {\n forward .\n}\n', 2, /expected FROM TO/],
    ['forward bad upstream', '.:53 {\n forward . not-an-ip\n}\n', 2, /not an IP address or file/],
    ['forward policy', '.:53 {\n forward . 127.0.0.1 {\n  policy fastest\n }\n}\n', 3, /policy/],
    ['cache bad capacity', '.:53 {\n cache {\n  success lots\n }\n}\n', 3, /success capacity/],
    ['reload too short', '.:53 {\n reload 1s\n}\n', 2, /greater or equal to 2s/],
    ['rewrite field', '.:53 {\n rewrite type A AAAA\n}\n', 2, /field 'type' is not supported/],
    ['rewrite regex', '.:53 {\n rewrite name regex ( x\n}\n', 2, /invalid regex/],
    ['hosts reload', '.:53 {\n hosts {\n  reload often\n }\n}\n', 3, /reload: expected a duration/],
    ['health lameduck', '.:53 {\n health {\n  lameduck soon\n }\n}\n', 3, /lameduck/],
    ['loadbalance weighted', '.:53 {\n loadbalance weighted /x\n}\n', 2, /weighted/],
    ['log class', '.:53 {\n log {\n  class sometimes\n }\n}\n', 3, /unknown class/],
    ['duplicate zone', '.:53 {\n whoami\n}\n.:53 {\n whoami\n}\n', 4, /already defined/],
  ];
  for (const [what, text, line, re] of cases) {
    it(`${what} → line ${line}`, () => {
      const e = setupError(text);
      assert.equal(e.line, line, e.message);
      assert.match(e.message, re);
      assert.match(e.message, new RegExp(`^Corefile:${line} - Error during parsing: `));
    });
  }
});

describe('defaults and order', () => {
  it("kubeadm's default Corefile parses and sets up", () => {
    const text = defaultCorefile('cluster.local');
    const cf = parseCorefile(text);
    assert.deepEqual(
      cf.blocks[0]!.directives.map((d) => d.name),
      [
        'errors',
        'health',
        'ready',
        'kubernetes',
        'prometheus',
        'forward',
        'cache',
        'loop',
        'reload',
        'loadbalance',
      ],
    );
    // forward . /etc/resolv.conf: read from a test file, never the host's.
    const s = buildServer(text.replace('/etc/resolv.conf', '127.0.0.1:9'));
    assert.ok(s.instances.length >= 10);
  });

  it('the chain follows plugin.cfg order, not the Corefile order', () => {
    const s = buildServer(
      '.:53 {\n whoami\n loadbalance\n kubernetes cluster.local\n errors\n cache\n log\n}\n',
    );
    assert.deepEqual(
      s.instances.map((i) => i.name),
      ['errors', 'log', 'loadbalance', 'cache', 'kubernetes', 'whoami'],
    );
    const order = [...PLUGIN_ORDER];
    assert.ok(order.indexOf('cache') < order.indexOf('kubernetes'));
    assert.ok(order.indexOf('kubernetes') < order.indexOf('forward'));
  });
});
