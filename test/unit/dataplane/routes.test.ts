import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RouteTable, formatPrefix, formatRoute } from '../../../src/dataplane/routes.js';
import { CALI_MAC, W1, ip, ipStr, makeInterface } from './helpers.js';

const eth0 = makeInterface(2, 'eth0', 'underlay', W1.eth0Mac, 1500).dev;
const tunl0 = makeInterface(3, 'tunl0', 'tunnel', CALI_MAC, 1480).dev;
const cali = makeInterface(4, 'cali1234567890a', 'pod', CALI_MAC, 1480).dev;

/** worker-1's table as Calico programs it, plus a default route. */
function worker1Table(): RouteTable {
  const t = new RouteTable();
  t.add({ dst: 0, prefixLen: 0, dev: eth0, via: ip('10.1.110.1') });
  t.add({ dst: ip('10.1.110.0'), prefixLen: 24, dev: eth0, proto: 'kernel', src: W1.nodeIp });
  t.add({ dst: ip('192.168.104.64'), prefixLen: 26, type: 'blackhole', proto: 'bird' });
  t.add({ dst: ip('192.168.104.66'), prefixLen: 32, dev: cali });
  t.add({
    dst: ip('192.168.8.192'),
    prefixLen: 26,
    dev: tunl0,
    via: ip('10.1.110.107'),
    onlink: true,
    proto: 'bird',
  });
  t.add({
    dst: ip('192.168.165.192'),
    prefixLen: 26,
    dev: tunl0,
    via: ip('10.1.110.108'),
    onlink: true,
    proto: 'bird',
  });
  return t;
}

function lookupStr(t: RouteTable, addr: string): string {
  const r = t.lookup(ip(addr));
  return r ? formatRoute(r) : 'none';
}

describe('RouteTable', () => {
  it('longest prefix wins: /32 over /26 over /24 over /0', () => {
    const t = worker1Table();
    t.add({ dst: ip('10.1.110.107'), prefixLen: 32, dev: eth0, mtu: 1400 });
    assert.equal(lookupStr(t, '192.168.104.66'), '192.168.104.66 dev cali1234567890a scope link');
    assert.equal(lookupStr(t, '192.168.104.65'), 'blackhole 192.168.104.64/26 proto bird');
    assert.equal(lookupStr(t, '192.168.104.127'), 'blackhole 192.168.104.64/26 proto bird');
    assert.equal(lookupStr(t, '192.168.104.128'), 'default via 10.1.110.1 dev eth0');
    assert.equal(
      lookupStr(t, '192.168.8.222'),
      '192.168.8.192/26 via 10.1.110.107 dev tunl0 proto bird onlink',
    );
    assert.equal(lookupStr(t, '10.1.110.107'), '10.1.110.107 dev eth0 scope link mtu 1400');
    assert.equal(
      lookupStr(t, '10.1.110.108'),
      '10.1.110.0/24 dev eth0 proto kernel scope link src 10.1.110.102',
    );
    assert.equal(lookupStr(t, '10.1.111.1'), 'default via 10.1.110.1 dev eth0');
    assert.equal(lookupStr(t, '255.255.255.255'), 'default via 10.1.110.1 dev eth0');
    assert.equal(lookupStr(t, '0.0.0.0'), 'default via 10.1.110.1 dev eth0');
  });

  it('masks the destination on add, and a same prefix replaces (ip route replace)', () => {
    const t = new RouteTable();
    const r = t.add({ dst: ip('192.168.104.77'), prefixLen: 26, type: 'blackhole', proto: 'bird' });
    assert.equal(ipStr(r.dst), '192.168.104.64');
    t.add({ dst: ip('192.168.104.64'), prefixLen: 26, type: 'unreachable' });
    assert.equal(t.all().length, 1);
    assert.equal(lookupStr(t, '192.168.104.70'), 'unreachable 192.168.104.64/26');
  });

  it('without a default route an address outside every prefix has no route', () => {
    const t = worker1Table();
    assert.ok(t.delete(0, 0));
    assert.equal(t.lookup(ip('8.8.8.8')), undefined);
    assert.equal(t.lookup(ip('192.168.104.128')), undefined);
  });

  it('delete removes only the exact prefix, and falls back to the next longest', () => {
    const t = worker1Table();
    assert.equal(t.delete(ip('192.168.104.66'), 31), false, 'no /31 there');
    assert.equal(t.delete(ip('192.168.104.66'), 32), true);
    assert.equal(t.delete(ip('192.168.104.66'), 32), false, 'already gone');
    assert.equal(lookupStr(t, '192.168.104.66'), 'blackhole 192.168.104.64/26 proto bird');
    // Host bits in the argument are masked, as for add.
    assert.equal(t.delete(ip('192.168.104.99'), 26), true);
    assert.equal(lookupStr(t, '192.168.104.66'), 'default via 10.1.110.1 dev eth0');
    assert.equal(t.delete(ip('9.9.9.9'), 12), false, 'a length never used');
  });

  it('deleteByDevice drops every route through the device; clear empties the table', () => {
    const t = worker1Table();
    t.deleteByDevice(tunl0);
    assert.deepEqual(
      t.all().map((r) => r.dev?.name ?? r.type),
      ['eth0', 'eth0', 'blackhole', 'cali1234567890a'],
    );
    assert.equal(lookupStr(t, '192.168.8.222'), 'default via 10.1.110.1 dev eth0');
    t.clear();
    assert.deepEqual(t.all(), []);
    assert.equal(t.lookup(ip('10.1.110.1')), undefined);
  });

  it('blackhole, unreachable and prohibit routes need no device', () => {
    const t = new RouteTable();
    for (const type of ['blackhole', 'unreachable', 'prohibit'] as const) {
      const r = t.add({ dst: ip('172.16.0.0'), prefixLen: 12, type });
      assert.equal(r.type, type);
      assert.equal(r.dev, null);
      assert.equal(r.scope, 'universe');
    }
    assert.throws(
      () => t.add({ dst: ip('10.0.0.0'), prefixLen: 8 }),
      /route 10\.0\.0\.0\/8: a unicast route needs a device/,
    );
    assert.throws(() => t.add({ dst: 0, prefixLen: 33, dev: eth0 }), RangeError);
  });

  it('default scope: link without a gateway, universe with one (as ip route add)', () => {
    const t = new RouteTable();
    assert.equal(t.add({ dst: ip('10.0.0.0'), prefixLen: 8, dev: eth0 }).scope, 'link');
    assert.equal(
      t.add({ dst: ip('10.2.0.0'), prefixLen: 16, dev: eth0, via: ip('10.1.110.1') }).scope,
      'universe',
    );
    assert.equal(t.add({ dst: ip('10.3.0.0'), prefixLen: 16, dev: eth0 }).proto, 'boot');
  });
});

describe('formatRoute / all(): ip route show', () => {
  it('prints the lines of `ip route` on a Calico node, in its order', () => {
    const t = worker1Table();
    t.add({ dst: ip('192.168.104.65'), prefixLen: 32, dev: cali, scope: 'link' });
    assert.deepEqual(t.all().map(formatRoute), [
      'default via 10.1.110.1 dev eth0',
      '10.1.110.0/24 dev eth0 proto kernel scope link src 10.1.110.102',
      '192.168.8.192/26 via 10.1.110.107 dev tunl0 proto bird onlink',
      'blackhole 192.168.104.64/26 proto bird',
      '192.168.104.65 dev cali1234567890a scope link',
      '192.168.104.66 dev cali1234567890a scope link',
      '192.168.165.192/26 via 10.1.110.108 dev tunl0 proto bird onlink',
    ]);
  });

  it('orders one destination longest prefix first, as the kernel dumps it', () => {
    // `ip route` after `ip route add 0.0.0.0/1 ...; ip route add 10.0.0.0/24 ...` (checked on
    // Linux 6.x): 0.0.0.0/1 before default, 10.0.0.0/24 before 10.0.0.0/8.
    const t = new RouteTable();
    t.add({ dst: 0, prefixLen: 0, dev: eth0, via: ip('10.1.110.1') });
    t.add({ dst: 0, prefixLen: 1, dev: eth0, via: ip('10.1.110.1') });
    t.add({ dst: ip('10.0.0.0'), prefixLen: 8, dev: eth0, via: ip('10.1.110.1') });
    t.add({ dst: ip('10.0.0.0'), prefixLen: 24, dev: eth0, via: ip('10.1.110.1') });
    t.add({ dst: ip('128.0.0.0'), prefixLen: 1, dev: eth0, via: ip('10.1.110.1') });
    assert.deepEqual(t.all().map(formatRoute), [
      '0.0.0.0/1 via 10.1.110.1 dev eth0',
      'default via 10.1.110.1 dev eth0',
      '10.0.0.0/24 via 10.1.110.1 dev eth0',
      '10.0.0.0/8 via 10.1.110.1 dev eth0',
      '128.0.0.0/1 via 10.1.110.1 dev eth0',
    ]);
  });

  it('prints every attribute in iproute2 order: flags (onlink) before metrics (mtu)', () => {
    const t = new RouteTable();
    const r = t.add({
      dst: ip('10.0.0.0'),
      prefixLen: 24,
      dev: eth0,
      via: ip('10.1.110.1'),
      onlink: true,
      mtu: 1400,
      proto: 'static',
      src: W1.nodeIp,
    });
    // ip route add 10.0.0.0/24 via 10.1.110.1 dev eth0 onlink mtu 1400 proto static src 10.1.110.102
    assert.equal(
      formatRoute(r),
      '10.0.0.0/24 via 10.1.110.1 dev eth0 proto static src 10.1.110.102 onlink mtu 1400',
    );
    assert.equal(
      formatRoute(t.add({ dst: ip('172.16.0.0'), prefixLen: 12, type: 'unreachable' })),
      'unreachable 172.16.0.0/12',
    );
    assert.equal(
      formatRoute(t.add({ dst: ip('172.20.0.0'), prefixLen: 16, type: 'prohibit' })),
      'prohibit 172.20.0.0/16',
    );
    assert.equal(
      formatRoute(t.add({ dst: ip('10.5.0.0'), prefixLen: 16, dev: eth0, scope: 'host' })),
      '10.5.0.0/16 dev eth0 scope host',
    );
  });

  it('formatPrefix: default, a host address without /32, a network with its length', () => {
    assert.equal(formatPrefix({ dst: 0, prefixLen: 0 }), 'default');
    assert.equal(formatPrefix({ dst: ip('192.168.104.66'), prefixLen: 32 }), '192.168.104.66');
    assert.equal(formatPrefix({ dst: ip('192.168.104.64'), prefixLen: 26 }), '192.168.104.64/26');
    assert.equal(formatPrefix({ dst: 0, prefixLen: 1 }), '0.0.0.0/1');
  });
});
