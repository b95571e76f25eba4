import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DropCounters, DropReason, dropReasonNames } from '../../../src/dataplane/drops.js';
import { FRAME_CONTINUES, NetInterface } from '../../../src/dataplane/interface.js';
import { WRITE_CONTINUES } from '../../../src/tap/options.js';
import { CALI_MAC, RecordingSink, makeInterface } from './helpers.js';

function frames(n: number, size: number): Buffer {
  const b = Buffer.alloc(n * size);
  for (let i = 0; i < n; i++) b.fill(i & 0xff, i * size, (i + 1) * size);
  return b;
}

describe('NetInterface', () => {
  it('queues views into the caller’s buffer and writes them in one batch on flush', () => {
    const { dev, sink } = makeInterface(1, 'cali1', 'pod', CALI_MAC, 1480);
    const buf = frames(3, 60);
    dev.enqueue(buf, 0, 60);
    dev.enqueue(buf, 120, 50);
    assert.equal(dev.dirty, true);
    assert.equal(sink.sent.length, 0, 'nothing written before flush');
    dev.flush();
    assert.equal(dev.dirty, false);
    assert.equal(sink.batches, 1);
    assert.deepEqual(
      sink.sent.map((f) => [f.from === buf, f.offset, f.bytes.length, f.bytes[0]]),
      [
        [true, 0, 60, 0],
        [true, 120, 50, 2],
      ],
    );
    assert.deepEqual(dev.counters, {
      rxPackets: 0,
      rxBytes: 0,
      txPackets: 2,
      txBytes: 110,
      txDropped: 0,
    });
    dev.flush();
    assert.equal(sink.batches, 1, 'an empty flush writes nothing');
  });

  it('a third buffer, or a full batch (256), flushes what was queued first', () => {
    const { dev, sink } = makeInterface(1, 'cali1', 'pod', CALI_MAC, 1480);
    const a = frames(300, 64);
    const b = frames(1, 64);
    const c = frames(1, 64);
    dev.enqueue(a, 0, 64);
    dev.enqueue(b, 0, 64);
    dev.enqueue(a, 64, 64);
    assert.equal(sink.batches, 0, 'two buffers share a batch');
    dev.enqueue(c, 0, 64);
    assert.equal(sink.batches, 1, 'a third buffer flushed');
    dev.flush();
    assert.equal(sink.batches, 2);
    assert.deepEqual(
      sink.sent.map((f) => [f.from === a ? 'a' : f.from === b ? 'b' : 'c', f.offset]),
      [
        ['a', 0],
        ['b', 0],
        ['a', 64],
        ['c', 0],
      ],
    );
    for (let i = 0; i < 300; i++) dev.enqueue(a, i * 64, 64);
    assert.equal(sink.batches, 3, 'the 257th frame flushed the first 256');
    dev.flush();
    assert.equal(sink.batches, 4);
    assert.equal(sink.sent.length, 304);
    assert.deepEqual(
      sink.sent.slice(4).map((f) => f.bytes[0]),
      Array.from({ length: 300 }, (_, i) => i & 0xff),
    );
    assert.equal(dev.counters.txPackets, 304);
    assert.equal(dev.counters.txBytes, 304 * 64);
  });

  it('down, or without a device, queued frames are dropped and counted', () => {
    const { dev, sink } = makeInterface(1, 'cali1', 'pod', CALI_MAC, 1480);
    dev.up = false;
    dev.enqueue(frames(2, 60), 0, 60);
    dev.enqueue(frames(2, 60), 60, 60);
    dev.flush();
    assert.equal(sink.batches, 0);
    const bare = new NetInterface(2, 'cali2', 'pod', CALI_MAC, 1480, null);
    bare.enqueue(frames(1, 60), 0, 60);
    bare.flush();
    for (const d of [dev, bare]) {
      assert.equal(d.counters.txPackets, 0);
      assert.equal(d.counters.txBytes, 0, 'bytes count only what was written');
    }
    assert.equal(dev.counters.txDropped, 2);
    assert.equal(bare.counters.txDropped, 1);
  });

  it('frames the device refuses or a throwing write are counted as tx drops, not tx bytes', () => {
    const { dev, sink } = makeInterface(1, 'cali1', 'pod', CALI_MAC, 1480);
    const buf = frames(3, 100);
    sink.accept = 1; // EAGAIN after the first frame
    dev.enqueue(buf, 0, 100);
    dev.enqueue(buf, 100, 70);
    dev.enqueue(buf, 200, 80);
    dev.flush();
    assert.deepEqual(dev.counters, {
      rxPackets: 0,
      rxBytes: 0,
      txPackets: 1,
      txBytes: 100,
      txDropped: 2,
    });
    sink.accept = Infinity;
    sink.fail = true;
    dev.enqueue(buf, 0, 100);
    dev.flush();
    assert.equal(dev.counters.txDropped, 3);
    assert.equal(dev.counters.txBytes, 100);
    assert.equal(dev.dirty, false);
  });

  it('marks continuation pairs as the TAP addon does', () => {
    assert.equal(FRAME_CONTINUES, WRITE_CONTINUES);
  });

  it('a gathered frame is one frame: one packet, all its bytes, seen whole by a capture', () => {
    const { dev, sink } = makeInterface(1, 'cali1', 'pod', CALI_MAC, 1480);
    const buf = frames(10, 100);
    const captured: Buffer[] = [];
    dev.capture = (b, o, l) => captured.push(Buffer.from(b.subarray(o, o + l)));
    // Frame 1: bytes 0..99, then 250..299 and 500..509; frame 2: 700..799 alone.
    dev.queueGathered(buf, 0, 100, Uint32Array.from([250, 50, 500, 10]), 2);
    dev.queueFrame(buf, 700, 100);
    // Frame 3 gathered from 800..849 and 900..999, refused below.
    dev.queueGathered(buf, 800, 50, Uint32Array.from([900, 100]), 1);
    sink.accept = 2;
    dev.flush();
    assert.deepEqual(
      sink.sent.map((f) => f.bytes.length),
      [160, 100],
    );
    assert.deepEqual(
      sink.sent[0]!.bytes,
      Buffer.concat([buf.subarray(0, 100), buf.subarray(250, 300), buf.subarray(500, 510)]),
    );
    assert.deepEqual(dev.counters, {
      rxPackets: 0,
      rxBytes: 0,
      txPackets: 2,
      txBytes: 260,
      txDropped: 1,
    });
    assert.deepEqual(
      captured.map((c) => c.length),
      [160, 100, 150],
    );
    assert.deepEqual(captured[0], sink.sent[0]!.bytes);
  });

  it('a gathered frame that does not fit the batch flushes what was queued first', () => {
    const { dev, sink } = makeInterface(1, 'cali1', 'pod', CALI_MAC, 1480);
    const buf = frames(300, 64);
    for (let i = 0; i < 250; i++) dev.queueFrame(buf, i * 64, 64);
    const parts = new Uint32Array(2 * 10);
    for (let k = 0; k < 10; k++) {
      parts[2 * k] = (250 + k) * 64;
      parts[2 * k + 1] = 64;
    }
    dev.queueGathered(buf, 260 * 64, 64, parts, 10);
    assert.equal(sink.batches, 1, '250 + 11 pairs > 256: the 250 went first');
    dev.flush();
    assert.equal(sink.sent.length, 251);
    assert.equal(sink.sent[250]!.bytes.length, 11 * 64);
    assert.equal(dev.counters.txPackets, 251);
    assert.equal(dev.counters.txBytes, 261 * 64);
  });

  it('RecordingSink.write keeps a copy', () => {
    const sink = new RecordingSink();
    const b = Buffer.from([1, 2, 3, 4]);
    assert.equal(sink.write(b, 1, 2), true);
    b.fill(0);
    assert.deepEqual([...sink.take()[0]!], [2, 3]);
  });
});

describe('DropCounters', () => {
  it('counts by reason, totals, and names only non-zero counters', () => {
    const d = new DropCounters();
    assert.equal(dropReasonNames.length, Object.keys(DropReason).length);
    assert.deepEqual(d.toJSON(), {});
    d.count(DropReason.NoRoute);
    d.count(DropReason.NoRoute);
    d.count(DropReason.Martian);
    assert.equal(d.total(), 3);
    assert.deepEqual(d.toJSON(), { 'no-route': 2, 'martian-source': 1 });
    // Every reason has a distinct name.
    assert.equal(new Set(dropReasonNames).size, dropReasonNames.length);
    for (const [k, v] of Object.entries(DropReason)) {
      assert.ok(dropReasonNames[v], `${k} has a name`);
    }
  });
});
