import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emitIpv4Header } from '../../../src/packet/index.js';
import {
  type ConntrackEntryView,
  formatConntrackEntry,
  formatConntrackEvent,
  formatConntrackStats,
} from '../../../src/conntrack/index.js';
import { F, dnatTo, forward, icmp, ip, makeConntrack, tcp, udp } from './helpers.js';

function tuple(src: string, dst: string, sport = -1, dport = -1) {
  return { src: ip(src), dst: ip(dst), sport, dport, type: -1, code: -1, id: -1 };
}

describe('conntrack -L lines (libnetfilter_conntrack default format)', () => {
  it('TCP, as in kube-proxy clusters', () => {
    const v: ConntrackEntryView = {
      id: 0,
      proto: 6,
      timeout: 86397,
      tcpState: 'ESTABLISHED',
      orig: tuple('192.168.104.65', '10.96.23.229', 40000, 3306),
      reply: tuple('192.168.8.223', '192.168.104.65', 3306, 40000),
      status: 14,
      seenReply: true,
      assured: true,
      snat: false,
      dnat: true,
      mark: 0,
      use: 1,
    };
    assert.equal(
      formatConntrackEntry(v),
      'tcp      6 86397 ESTABLISHED src=192.168.104.65 dst=10.96.23.229 sport=40000 dport=3306 src=192.168.8.223 dst=192.168.104.65 sport=3306 dport=40000 [ASSURED] mark=0 use=1',
    );
  });

  it('UDP unreplied, ICMP, an unknown protocol, GRE', () => {
    const { ct, clock } = makeConntrack();
    forward(ct, udp('192.168.104.65', '10.96.0.10', 43210, 53), {
      dnat: dnatTo('192.168.165.196', 53),
    });
    forward(ct, icmp('192.168.104.65', '192.168.8.222', 8, 4242));
    forward(ct, icmp('192.168.8.222', '192.168.104.65', 0, 4242));
    const gen = (proto: number) => {
      const b = Buffer.alloc(40);
      emitIpv4Header(b, 0, {
        src: ip('10.1.110.102'),
        dst: ip('10.1.110.107'),
        protocol: proto,
        ttl: 64,
        id: 1,
        dontFragment: false,
        tos: 0,
        payloadLength: 20,
      });
      return b;
    };
    forward(ct, gen(4));
    forward(ct, gen(47));
    clock.advance(2);
    assert.deepEqual(ct.list({ proto: 'udp' }).map(formatConntrackEntry), [
      'udp      17 28 src=192.168.104.65 dst=10.96.0.10 sport=43210 dport=53 [UNREPLIED] src=192.168.165.196 dst=192.168.104.65 sport=53 dport=43210 mark=0 use=1',
    ]);
    assert.deepEqual(ct.list({ proto: 'icmp' }).map(formatConntrackEntry), [
      'icmp     1 28 src=192.168.104.65 dst=192.168.8.222 type=8 code=0 id=4242 src=192.168.8.222 dst=192.168.104.65 type=0 code=0 id=4242 mark=0 use=1',
    ]);
    assert.deepEqual(ct.list({ proto: 4 }).map(formatConntrackEntry), [
      'unknown  4 598 src=10.1.110.102 dst=10.1.110.107 [UNREPLIED] src=10.1.110.107 dst=10.1.110.102 mark=0 use=1',
    ]);
    assert.deepEqual(ct.list({ proto: 47 }).map(formatConntrackEntry), [
      'gre      47 28 src=10.1.110.102 dst=10.1.110.107 srckey=0x0 dstkey=0x0 [UNREPLIED] src=10.1.110.107 dst=10.1.110.102 srckey=0x0 dstkey=0x0 mark=0 use=1',
    ]);
  });
});

describe('conntrack -E lines', () => {
  it('a TCP connection: [NEW], [UPDATE]s with the state, [DESTROY]', () => {
    const { ct, clock, events } = makeConntrack();
    const c = { src: '10.0.0.1', dst: '10.0.0.2', sport: 40000, dport: 80 };
    const s = { src: '10.0.0.2', dst: '10.0.0.1', sport: 80, dport: 40000 };
    forward(ct, tcp({ ...c, seq: 1, flags: F.SYN }));
    forward(ct, tcp({ ...s, seq: 9, ack: 2, flags: F.SYN | F.ACK }));
    forward(ct, tcp({ ...c, seq: 2, ack: 10, flags: F.ACK }));
    forward(ct, tcp({ ...c, seq: 2, ack: 10, flags: F.ACK | F.PSH, payload: 10 })); // no event
    const e = ct.list()[0].id;
    ct.setMark(e, 7);
    clock.advance(1);
    ct.delete({});
    assert.deepEqual(events.map(formatConntrackEvent), [
      '    [NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000',
      ' [UPDATE] tcp      6 60 SYN_RECV src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000',
      ' [UPDATE] tcp      6 432000 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED]',
      ' [UPDATE] tcp      6 300 src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=7',
      '[DESTROY] tcp      6 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=7',
    ]);
  });

  it('UDP: [NEW] unreplied, [UPDATE] when the reply is seen', () => {
    const { ct, events } = makeConntrack();
    forward(ct, udp('10.0.0.1', '10.0.0.2', 5000, 53));
    forward(ct, udp('10.0.0.2', '10.0.0.1', 53, 5000));
    assert.deepEqual(events.map(formatConntrackEvent), [
      '    [NEW] udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5000',
      ' [UPDATE] udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=53 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5000',
    ]);
  });
});

describe('conntrack -S', () => {
  it('prints the per-CPU counters line', () => {
    const { ct } = makeConntrack();
    forward(ct, udp('10.0.0.1', '10.0.0.2', 5000, 53));
    forward(ct, icmp('10.0.0.1', '10.0.0.2', 0, 1));
    assert.equal(
      formatConntrackStats(ct.stats()),
      'cpu=0 found=0 invalid=1 insert=1 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0',
    );
    assert.equal(ct.stats().entries, 1);
  });
});
