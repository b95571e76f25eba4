import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ARP_MAX_PROBES,
  ARP_RETRANS_MS,
  NeighbourTable,
  REACHABLE_MS,
  formatNeighbour,
  type Neighbour,
} from '../../../src/dataplane/neighbours.js';
import { CALI_MAC, W1, ip, makeInterface } from './helpers.js';

const eth0 = makeInterface(2, 'eth0', 'underlay', W1.eth0Mac, 1500).dev;
const cali = makeInterface(5, 'cali1234567890a', 'pod', CALI_MAC, 1480).dev;

function show(t: NeighbourTable): string[] {
  return t.all().map(formatNeighbour);
}

describe('NeighbourTable', () => {
  it('learn makes a REACHABLE entry, printed as ip neigh shows it', () => {
    const t = new NeighbourTable();
    const frame = Buffer.alloc(20);
    W1.worker2Mac.copy(frame, 7);
    assert.equal(t.learn(eth0, W1.worker2, frame, 7, 1000), undefined, 'nothing was waiting');
    const n = t.get(eth0, W1.worker2)!;
    assert.equal(n.state, 'REACHABLE');
    assert.equal(n.updatedAtMs, 1000);
    assert.deepEqual(n.mac, W1.worker2Mac);
    assert.equal(formatNeighbour(n), '10.1.110.107 dev eth0 lladdr 02:42:0a:01:6e:6b REACHABLE');
    // The MAC is a copy: the frame's buffer is reused by the next receive batch.
    frame.fill(0);
    assert.deepEqual(n.mac, W1.worker2Mac);
  });

  it('permanent entries are not overridden by ARP, and survive ticks', () => {
    const t = new NeighbourTable();
    t.setPermanent(cali, W1.podA, W1.podAMac);
    assert.equal(t.learn(cali, W1.podA, W1.worker2Mac, 0, 5), undefined);
    const n = t.get(cali, W1.podA)!;
    assert.deepEqual(n.mac, W1.podAMac);
    assert.equal(n.state, 'PERMANENT');
    t.tick(Date.now() + 10 * REACHABLE_MS, () => assert.fail('no probe'));
    assert.deepEqual(show(t), [
      '192.168.104.65 dev cali1234567890a lladdr 0a:58:c0:a8:68:41 PERMANENT',
    ]);
  });

  it('neighbours are per device', () => {
    const t = new NeighbourTable();
    t.setPermanent(eth0, W1.router, W1.routerMac);
    assert.equal(t.get(cali, W1.router), undefined);
    assert.ok(t.get(eth0, W1.router));
  });

  it('resolution: probe now, every retrans time, FAILED after 3 probes, forgotten after 60 s', () => {
    const t = new NeighbourTable();
    const n = t.resolve(eth0, W1.worker2);
    n.queue.push(Buffer.from('pkt1'), Buffer.from('pkt2'));
    assert.equal(n.state, 'INCOMPLETE');
    assert.equal(formatNeighbour(n), '10.1.110.107 dev eth0 INCOMPLETE');
    const probes: number[] = [];
    const t0 = Date.now();
    const tick = (ms: number): Neighbour[] => t.tick(t0 + ms, (p) => probes.push(p.probes));
    assert.deepEqual(tick(0), []);
    assert.deepEqual(probes, [1], 'a new entry is probed on the first tick');
    assert.deepEqual(tick(ARP_RETRANS_MS - 1), []);
    assert.deepEqual(probes, [1], 'not before the retransmit time');
    tick(ARP_RETRANS_MS);
    tick(2 * ARP_RETRANS_MS);
    assert.deepEqual(probes, [1, 2, 3]);
    assert.equal(n.probes, ARP_MAX_PROBES);
    const failed = tick(3 * ARP_RETRANS_MS);
    assert.deepEqual(probes, [1, 2, 3], 'no fourth probe');
    assert.equal(failed.length, 1);
    assert.deepEqual(failed[0]!.queue.map(String), ['pkt1', 'pkt2']);
    assert.equal(n.queue.length, 0, 'the table keeps no packets of a failed entry');
    assert.equal(n.state, 'FAILED');
    assert.deepEqual(show(t), ['10.1.110.107 dev eth0 FAILED']);
    assert.deepEqual(tick(3 * ARP_RETRANS_MS + 60_000), []);
    assert.equal(show(t).length, 1, 'kept for 60 s');
    tick(3 * ARP_RETRANS_MS + 60_001);
    assert.deepEqual(show(t), []);
  });

  it('a FAILED entry is resolved again from scratch', () => {
    const t = new NeighbourTable();
    const n = t.resolve(eth0, W1.worker2);
    n.probes = ARP_MAX_PROBES;
    t.tick(Date.now(), () => undefined);
    assert.equal(n.state, 'FAILED');
    assert.equal(t.resolve(eth0, W1.worker2), n);
    assert.equal(n.state, 'INCOMPLETE');
    assert.equal(n.probes, 0);
  });

  it('an ARP answer completes resolution and hands back the waiting packets', () => {
    const t = new NeighbourTable();
    const n = t.resolve(eth0, W1.worker2);
    n.probes = 2;
    n.queue.push(Buffer.from('x'));
    const waiting = t.learn(eth0, W1.worker2, W1.worker2Mac, 0, 77);
    assert.equal(waiting, n);
    assert.equal(n.state, 'REACHABLE');
    assert.equal(n.probes, 0);
    assert.deepEqual(n.mac, W1.worker2Mac);
  });

  it('REACHABLE ages to STALE after base_reachable_time, and is then still printed with its MAC', () => {
    const t = new NeighbourTable();
    const t0 = Date.now();
    t.learn(eth0, W1.worker2, W1.worker2Mac, 0, t0);
    t.tick(t0 + REACHABLE_MS, () => undefined);
    assert.equal(t.get(eth0, W1.worker2)!.state, 'REACHABLE');
    t.tick(t0 + REACHABLE_MS + 1, () => undefined);
    assert.deepEqual(show(t), ['10.1.110.107 dev eth0 lladdr 02:42:0a:01:6e:6b STALE']);
  });

  it('a wall-clock step backwards does not stall resolution', () => {
    // Date.now() is not monotonic (NTP steps it). An entry stamped "in the future" must still
    // be probed, or packets queue until the clock catches up.
    const t = new NeighbourTable();
    const n = t.resolve(eth0, W1.worker2);
    let probes = 0;
    const future = Date.now() + 3_600_000;
    t.tick(future, () => probes++);
    assert.equal(probes, 1);
    t.tick(future - 3_000_000, () => probes++);
    assert.equal(probes, 2, 'probed again after the step back');
    assert.equal(n.state, 'INCOMPLETE');
  });

  it('delete, deleteDevice, and all() ordered by device index then address', () => {
    const t = new NeighbourTable();
    t.setPermanent(eth0, W1.router, W1.routerMac);
    t.learn(eth0, W1.worker2, W1.worker2Mac, 0, 1);
    t.setPermanent(cali, W1.podA, W1.podAMac);
    t.resolve(eth0, ip('10.1.110.50'));
    assert.deepEqual(show(t), [
      '10.1.110.1 dev eth0 lladdr 02:42:0a:01:6e:01 PERMANENT',
      '10.1.110.50 dev eth0 INCOMPLETE',
      '10.1.110.107 dev eth0 lladdr 02:42:0a:01:6e:6b REACHABLE',
      '192.168.104.65 dev cali1234567890a lladdr 0a:58:c0:a8:68:41 PERMANENT',
    ]);
    t.delete(eth0, ip('10.1.110.50'));
    t.delete(eth0, ip('10.1.110.51'));
    assert.equal(show(t).length, 3);
    t.deleteDevice(eth0);
    assert.deepEqual(show(t), [
      '192.168.104.65 dev cali1234567890a lladdr 0a:58:c0:a8:68:41 PERMANENT',
    ]);
  });
});
