/**
 * The ceiling for any DNS server on Node's dgram here: returns each query with QR set,
 * nothing parsed or built. bench/dns/run.sh measures it next to kubewire and nsd.
 *
 *   node dist/bench/dns/echo.js PORT
 */
import { createSocket } from 'node:dgram';

const port = Number(process.argv[2] ?? 5393);
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
sock.bind(port, '127.0.0.1', () => process.stdout.write('{"msg":"listening"}\n'));
