/**
 * The ceiling for any DNS server on a given UDP I/O path here: returns each query with QR
 * set, nothing parsed or built. bench/dns/run.sh measures it next to kubewire and nsd.
 *
 *   node dist/bench/dns/echo.js PORT            # node:dgram, one receive and one send per query
 *   node dist/bench/dns/echo.js PORT batched    # src/udp: one recvmmsg per wake-up, one sendmmsg per batch
 */
import { createSocket } from 'node:dgram';
import { BatchUdpSocket, TxBatch, UDP_META_WORDS } from '../../src/udp/index.js';

const port = Number(process.argv[2] ?? 5393);
const io = process.argv[3] ?? 'dgram';
const ready = (): boolean => process.stdout.write(`{"msg":"listening","udp":"${io}"}\n`);

if (io === 'batched') {
  const sock = BatchUdpSocket.open({
    host: '127.0.0.1',
    port,
    maxBatch: 64,
    recvBufferSize: 8 << 20,
    sendBufferSize: 8 << 20,
  });
  const tx = new TxBatch(sock);
  sock.start((arena, meta, peers, count) => {
    for (let i = 0; i < count; i++) {
      const off = meta[i * UDP_META_WORDS]!;
      const len = meta[i * UDP_META_WORDS + 1]!;
      if (len < 12) continue;
      arena[off + 2]! |= 0x80;
      tx.push(arena, peers, i, off, len);
    }
    tx.flush();
  });
  ready();
} else {
  const sock = createSocket({
    type: 'udp4',
    recvBufferSize: 8 << 20,
    sendBufferSize: 8 << 20,
    lookup: (address, _opts, cb) => cb(null, address, 4),
  });
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    msg[2]! |= 0x80;
    sock.send(msg, rinfo.port, rinfo.address);
  });
  sock.bind(port, '127.0.0.1', ready);
}
