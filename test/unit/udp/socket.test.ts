/**
 * The kubewire_udp addon on loopback (no root): batches of received datagrams with their
 * senders, replies sent with sendBatch to the right peers, datagrams cut to the slot,
 * per-datagram send errors, close while polling and inside the handler, IPv6 and dual-stack
 * peers in Node's text form, errno-named errors. Linux only (elsewhere the addon is a stub).
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { describe, it } from 'node:test';
import {
  BatchUdpSocket,
  peerAddress,
  peerPort,
  TxBatch,
  UDP_META_WORDS,
  UDP_PEER_WORDS,
  writePeer,
  type UdpOpenOptions,
} from '../../../src/udp/index.js';

const skip = process.platform !== 'linux' ? 'batched UDP I/O is Linux-only' : false;

interface Received {
  data: Buffer;
  wireLength: number;
  address: string;
  port: number;
}

/** A socket that records every datagram and the size of every batch. */
function recorder(opts: Partial<UdpOpenOptions> = {}): {
  sock: BatchUdpSocket;
  got: Received[];
  batches: number[];
  waitFor(n: number, ms?: number): Promise<void>;
} {
  const sock = BatchUdpSocket.open({ host: '127.0.0.1', ...opts });
  const got: Received[] = [];
  const batches: number[] = [];
  let wake: (() => void) | null = null;
  sock.start((arena, meta, peers, count) => {
    batches.push(count);
    for (let i = 0; i < count; i++) {
      const off = meta[i * UDP_META_WORDS]!;
      got.push({
        data: Buffer.from(arena.subarray(off, off + meta[i * UDP_META_WORDS + 1]!)),
        wireLength: meta[i * UDP_META_WORDS + 2]!,
        address: peerAddress(peers, i),
        port: peerPort(peers, i),
      });
    }
    wake?.();
  });
  const waitFor = async (n: number, ms = 5000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (got.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out with ${got.length} of ${n}`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
  };
  return { sock, got, batches, waitFor };
}

async function dgramClient(type: 'udp4' | 'udp6' = 'udp4', host = '127.0.0.1'): Promise<Socket> {
  const c = createSocket(type);
  await new Promise<void>((r) => c.bind(0, host, () => r()));
  return c;
}

function collect(c: Socket): Buffer[] {
  const out: Buffer[] = [];
  c.on('message', (m) => out.push(m));
  return out;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('BatchUdpSocket on loopback', { skip }, () => {
  it('reads a burst of 200 datagrams in batches and replies to the right peers with sendBatch', async () => {
    const server = BatchUdpSocket.open({ host: '127.0.0.1', maxBatch: 64 });
    const tx = new TxBatch(server);
    const batches: number[] = [];
    server.start((arena, meta, peers, count) => {
      batches.push(count);
      for (let i = 0; i < count; i++) {
        const off = meta[i * UDP_META_WORDS]!;
        const len = meta[i * UDP_META_WORDS + 1]!;
        const reply = Buffer.concat([Buffer.from('re:'), arena.subarray(off, off + len)]);
        tx.push(reply, peers, i);
      }
      tx.flush();
    });
    const a = await dgramClient();
    const b = await dgramClient();
    const gotA = collect(a);
    const gotB = collect(b);
    try {
      for (let i = 0; i < 100; i++) {
        a.send(`a${i}`, server.port, '127.0.0.1');
        b.send(`b${i}`, server.port, '127.0.0.1');
      }
      await until(() => gotA.length === 100 && gotB.length === 100);
      assert.deepEqual(
        gotA.map(String).sort(),
        Array.from({ length: 100 }, (_, i) => `re:a${i}`).sort(),
      );
      assert.deepEqual(
        gotB.map(String).sort(),
        Array.from({ length: 100 }, (_, i) => `re:b${i}`).sort(),
      );
      const st = server.stats();
      assert.equal(st.rxDatagrams, 200);
      assert.equal(st.txDatagrams, 200);
      assert.equal(st.txErrors + st.txAgain, 0);
      assert.equal(tx.dropped, 0);
      assert.equal(
        batches.reduce((x, y) => x + y, 0),
        200,
      );
      assert.ok(Math.max(...batches) > 1, `batches ${batches.join(',')}`);
      assert.ok(Math.max(...batches) <= 64);
      assert.ok(st.txCalls < 200, `${st.txCalls} sendmmsg calls for 200 replies`);
    } finally {
      a.close();
      b.close();
      server.close();
    }
  });

  it('sendBatch from one socket: 200 datagrams to another in one call, with sender address and port', async () => {
    const rx = recorder({ maxBatch: 256 });
    const sender = BatchUdpSocket.open({ host: '127.0.0.1' });
    try {
      const n = 200;
      const buf = Buffer.alloc(n * 8);
      const meta = new Uint32Array(n * 2);
      const peers = new Uint32Array(n * UDP_PEER_WORDS);
      for (let i = 0; i < n; i++) {
        buf.writeUInt32BE(i, i * 8);
        meta[2 * i] = i * 8;
        meta[2 * i + 1] = 4;
        writePeer(peers, i, '127.0.0.1', rx.sock.port);
      }
      assert.equal(sender.sendBatch(buf, meta, peers, n), n);
      await rx.waitFor(n);
      assert.deepEqual(
        rx.got.map((g) => g.data.readUInt32BE(0)),
        Array.from({ length: n }, (_, i) => i),
      );
      for (const g of rx.got) {
        assert.equal(g.address, '127.0.0.1');
        assert.equal(g.port, sender.port);
        assert.equal(g.wireLength, 4);
      }
      assert.ok(sender.stats().txCalls <= 2, 'one sendmmsg per 256 datagrams');
    } finally {
      sender.close();
      rx.sock.close();
    }
  });

  it('cuts a datagram longer than the slot and reports its wire length', async () => {
    const rx = recorder({ slotBytes: 64 });
    const c = await dgramClient();
    try {
      const big = Buffer.alloc(200, 0xab);
      big.write('head', 0);
      c.send(big, rx.sock.port, '127.0.0.1');
      c.send(Buffer.from('small'), rx.sock.port, '127.0.0.1');
      await rx.waitFor(2);
      assert.equal(rx.got[0]!.data.length, 64);
      assert.equal(rx.got[0]!.wireLength, 200);
      assert.equal(rx.got[0]!.data.subarray(0, 4).toString(), 'head');
      assert.equal(rx.got[1]!.data.toString(), 'small');
      assert.equal(rx.got[1]!.wireLength, 5);
      assert.equal(rx.sock.stats().rxTruncated, 1);
    } finally {
      c.close();
      rx.sock.close();
    }
  });

  it('an empty datagram is a datagram of length 0', async () => {
    const rx = recorder();
    const c = await dgramClient();
    try {
      c.send(Buffer.alloc(0), rx.sock.port, '127.0.0.1');
      await rx.waitFor(1);
      assert.equal(rx.got[0]!.data.length, 0);
    } finally {
      c.close();
      rx.sock.close();
    }
  });

  it('refuses oversized datagrams and peers of the wrong family one by one; the rest is sent', async () => {
    const rx = recorder();
    const sender = BatchUdpSocket.open({ host: '127.0.0.1' });
    try {
      const buf = Buffer.alloc(70_000, 1);
      buf.write('one', 0);
      buf.write('two', 10);
      buf.write('three', 20);
      const meta = Uint32Array.from([0, 3, 100, 69_000, 10, 3, 0, 3, 20, 5]);
      const peers = new Uint32Array(5 * UDP_PEER_WORDS);
      writePeer(peers, 0, '127.0.0.1', rx.sock.port);
      writePeer(peers, 1, '127.0.0.1', rx.sock.port); // 69,000 bytes: EMSGSIZE
      writePeer(peers, 2, '127.0.0.1', rx.sock.port);
      writePeer(peers, 3, '::1', rx.sock.port); // IPv6 peer on an IPv4 socket
      writePeer(peers, 4, '127.0.0.1', rx.sock.port);
      assert.equal(sender.sendBatch(buf, meta, peers, 5), 5);
      await rx.waitFor(3);
      assert.deepEqual(
        rx.got.map((g) => g.data.toString()),
        ['one', 'two', 'three'],
      );
      const st = sender.stats();
      assert.equal(st.txErrors, 2);
      assert.equal(st.txDatagrams, 3);
      // send() reports such a refusal as an error.
      assert.throws(
        () => sender.send(buf, 0, 69_000, peers, 0),
        (e: NodeJS.ErrnoException) => e.code === 'EMSGSIZE' && e.syscall === 'sendto',
      );
      assert.equal(sender.send(buf, 0, 3, peers, 0), true);
      await rx.waitFor(4);
    } finally {
      sender.close();
      rx.sock.close();
    }
  });

  it('checks offsets before sending anything', () => {
    const s = BatchUdpSocket.open({ host: '127.0.0.1' });
    try {
      const peers = new Uint32Array(2 * UDP_PEER_WORDS);
      writePeer(peers, 0, '127.0.0.1', 9);
      writePeer(peers, 1, '127.0.0.1', 9);
      const buf = Buffer.alloc(10);
      assert.throws(() => s.sendBatch(buf, Uint32Array.from([0, 4, 8, 4]), peers, 2), RangeError);
      assert.throws(() => s.sendBatch(buf, Uint32Array.from([0, 4]), peers, 2), RangeError);
      assert.throws(() => s.sendBatch(buf, Uint32Array.from([0, 4, 0, 4]), peers, 3), RangeError);
      assert.throws(() => s.send(buf, 8, 4, peers, 0), RangeError);
      assert.throws(() => s.send(buf, 0, 4, peers, 2), RangeError);
      assert.equal(s.stats().txDatagrams, 0);
    } finally {
      s.close();
    }
  });

  it('close while polling: no more batches, the port is free again, use after close is EBADF', async () => {
    const rx = recorder();
    const port = rx.sock.port;
    const c = await dgramClient();
    try {
      c.send('x', port, '127.0.0.1');
      await rx.waitFor(1);
      rx.sock.close();
      rx.sock.close(); // idempotent
      assert.equal(rx.sock.closed, true);
      c.send('y', port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(rx.got.length, 1);
      assert.throws(
        () => rx.sock.sendBatch(Buffer.alloc(1), new Uint32Array(2), new Uint32Array(8), 0),
        (e: NodeJS.ErrnoException) => e.code === 'EBADF',
      );
      assert.throws(() => rx.sock.start(() => undefined), { code: 'EBADF' });
      const again = BatchUdpSocket.open({ host: '127.0.0.1', port });
      again.close();
    } finally {
      c.close();
    }
  });

  it('close from inside the handler stops at once; the process carries on', async () => {
    const s = BatchUdpSocket.open({ host: '127.0.0.1', maxBatch: 4 });
    let calls = 0;
    s.start(() => {
      calls++;
      s.close();
    });
    const c = await dgramClient();
    try {
      for (let i = 0; i < 20; i++) c.send(`d${i}`, s.port, '127.0.0.1');
      await until(() => calls > 0);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(calls, 1);
      assert.equal(s.closed, true);
    } finally {
      c.close();
    }
  });

  it('stop() and start() again: datagrams queued meanwhile are read on restart', async () => {
    const rx = recorder();
    const c = await dgramClient();
    try {
      rx.sock.stop();
      c.send('while stopped', rx.sock.port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(rx.got.length, 0);
      const got: string[] = [];
      rx.sock.start((arena, meta, _peers, count) => {
        for (let i = 0; i < count; i++) {
          const off = meta[i * UDP_META_WORDS]!;
          got.push(arena.toString('latin1', off, off + meta[i * UDP_META_WORDS + 1]!));
        }
      });
      await until(() => got.length === 1);
      assert.deepEqual(got, ['while stopped']);
    } finally {
      c.close();
      rx.sock.close();
    }
  });

  it('bind errors are errno-named (EADDRINUSE, bind)', () => {
    const a = BatchUdpSocket.open({ host: '127.0.0.1' });
    try {
      assert.throws(
        () => BatchUdpSocket.open({ host: '127.0.0.1', port: a.port }),
        (e: NodeJS.ErrnoException) =>
          e.code === 'EADDRINUSE' && e.syscall === 'bind' && e.errno === -98,
      );
    } finally {
      a.close();
    }
  });

  it('IPv6 and dual-stack: peers in the text Node uses, replies reach IPv4 clients of ::', async (t) => {
    let probe: BatchUdpSocket;
    try {
      probe = BatchUdpSocket.open({ host: '::1' });
    } catch (e) {
      t.skip(`no IPv6 loopback: ${(e as Error).message}`);
      return;
    }
    probe.close();
    const server = BatchUdpSocket.open({ host: '::' });
    assert.equal(server.family, 6);
    const seen: string[] = [];
    const tx = new TxBatch(server);
    server.start((_arena, _meta, peers, count) => {
      for (let i = 0; i < count; i++) {
        seen.push(peerAddress(peers, i));
        tx.push(Buffer.from('pong'), peers, i);
      }
      tx.flush();
    });
    const c4 = await dgramClient('udp4', '127.0.0.1');
    const c6 = await dgramClient('udp6', '::1');
    const got4 = collect(c4);
    const got6 = collect(c6);
    try {
      c4.send('ping', server.port, '127.0.0.1');
      c6.send('ping', server.port, '::1');
      await until(() => got4.length === 1 && got6.length === 1);
      assert.deepEqual(seen.sort(), ['::1', '::ffff:127.0.0.1']);
    } finally {
      c4.close();
      c6.close();
      server.close();
    }
  });

  it('a TxBatch flushes by itself when full and sends a datagram larger than its arena alone', async () => {
    const rx = recorder({ maxBatch: 256, slotBytes: 65536 });
    const sender = BatchUdpSocket.open({ host: '127.0.0.1' });
    const tx = new TxBatch(sender, { arenaBytes: 1024, maxDatagrams: 8 });
    try {
      const peer = new Uint32Array(UDP_PEER_WORDS);
      writePeer(peer, 0, '127.0.0.1', rx.sock.port);
      for (let i = 0; i < 20; i++) tx.push(Buffer.from(`m${i}`), peer, 0);
      assert.equal(tx.count, 4); // two flushes of 8 happened
      tx.push(Buffer.alloc(5000, 7), peer, 0); // flushes the 4, then sent alone
      assert.equal(tx.count, 0);
      tx.push(Buffer.from('0123456789'), peer, 0, 2, 3);
      tx.flush();
      await rx.waitFor(22);
      assert.deepEqual(
        rx.got.slice(0, 20).map((g) => g.data.toString()),
        Array.from({ length: 20 }, (_, i) => `m${i}`),
      );
      assert.equal(rx.got[20]!.data.length, 5000);
      assert.equal(rx.got[21]!.data.toString(), '234');
      assert.equal(tx.dropped, 0);
    } finally {
      sender.close();
      rx.sock.close();
    }
  });
});

describe('BatchUdpSocket in a worker thread', { skip }, () => {
  it('a polling socket is closed when its worker ends (cleanup hook): the port is free again', async () => {
    const { Worker } = await import('node:worker_threads');
    const url = new URL('../../../src/udp/index.js', import.meta.url).href;
    const w = new Worker(
      `const { parentPort } = require('node:worker_threads');
       import(${JSON.stringify(url)}).then(({ BatchUdpSocket }) => {
         const s = BatchUdpSocket.open({ host: '127.0.0.1' });
         s.start(() => undefined);
         parentPort.postMessage(s.port);
       });`,
      { eval: true },
    );
    const port = await new Promise<number>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    assert.throws(() => BatchUdpSocket.open({ host: '127.0.0.1', port }), { code: 'EADDRINUSE' });
    await w.terminate();
    const again = BatchUdpSocket.open({ host: '127.0.0.1', port });
    again.close();
  });
});
