/**
 * whoami — answers every query with the client's address and port (CoreDNS plugin/whoami):
 * the additional section holds `<qname> A|AAAA <client IP>` and
 * `_<proto>.<qname> SRV 0 0 <client port> .`, TTL 0.
 */
import {
  noArgs,
  noBlock,
  type DnsRequest,
  type PluginInstance,
  type PluginSpec,
  type Reply,
} from '../plugin.js';
import { CLASS, replyTo, rrA, rrAAAA, rrSRV } from '../wire.js';

export class WhoamiPlugin implements PluginInstance {
  readonly name = 'whoami';
  serve(req: DnsRequest): Reply {
    const m = replyTo(req.q, this.name);
    m.aa = true;
    const qname = req.q.question.name;
    const addr =
      req.family === 4 ? rrA(qname, 0, req.remoteAddress) : rrAAAA(qname, 0, req.remoteAddress);
    const srvName = qname === '' ? `_${req.proto}` : `_${req.proto}.${qname}`;
    const srv = rrSRV(srvName, 0, 0, 0, req.remotePort, '');
    addr.class = req.q.question.class || CLASS.IN;
    srv.class = addr.class;
    m.additional = [addr, srv];
    return m;
  }
}

export const whoami: PluginSpec = {
  name: 'whoami',
  once: true,
  setup(d, ctx) {
    noArgs(ctx, d);
    noBlock(ctx, d);
    return new WhoamiPlugin();
  },
};
