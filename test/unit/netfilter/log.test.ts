/** The LOG target's lines, in the kernel's nf_log_syslog format. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatLogLine,
  LOG_IPOPT,
  LOG_MACDECODE,
  LOG_TCPOPT,
  LOG_TCPSEQ,
} from '../../../src/netfilter/log.js';
import { Hook } from '../../../src/netfilter/packet-meta.js';
import { ACK, PSH, argv, echo, icmp, ipv4, makeNf, meta, run, tcp, udp } from './helpers.js';

const POD_MAC = '0a:58:c0:a8:68:41';
const CALI_MAC = 'ee:ee:ee:ee:ee:ee';

describe('LOG lines', () => {
  it('a pod SYN forwarded to the tunnel: IN, OUT, MAC (dst, src, type), IP and TCP fields, trailing space', () => {
    const p = ipv4({
      src: '192.168.104.65',
      dst: '10.96.0.10',
      proto: 6,
      id: 12345,
      df: true,
      payload: tcp({
        sport: 40000,
        dport: 53,
        options: Buffer.from([2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7, 0, 0, 0, 0, 0, 0, 0, 0]),
      }),
    });
    const m = meta(p, {
      hook: Hook.FORWARD,
      inIf: 'calie4d9dbaee1b',
      outIf: 'tunl0',
      eth: { dst: CALI_MAC, src: POD_MAC },
    });
    assert.equal(
      formatLogLine('KW: ', 0, m),
      'KW: IN=calie4d9dbaee1b OUT=tunl0 MAC=ee:ee:ee:ee:ee:ee:0a:58:c0:a8:68:41:08:00 SRC=192.168.104.65 DST=10.96.0.10 ' +
        'LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=12345 DF PROTO=TCP SPT=40000 DPT=53 WINDOW=64240 RES=0x00 SYN URGP=0 ',
    );
    assert.equal(
      formatLogLine('', LOG_TCPSEQ | LOG_TCPOPT | LOG_MACDECODE, m),
      'IN=calie4d9dbaee1b OUT=tunl0 MACSRC=0a:58:c0:a8:68:41 MACDST=ee:ee:ee:ee:ee:ee MACPROTO=0800 SRC=192.168.104.65 ' +
        'DST=10.96.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=12345 DF PROTO=TCP SPT=40000 DPT=53 SEQ=0 ACK=0 WINDOW=64240 ' +
        'RES=0x00 SYN URGP=0 OPT (020405B401010402010303070000000000000000) ',
    );
  });

  it('tunl0 has no link header (MAC= ), locally generated packets have no MAC field at all', () => {
    const p = ipv4({
      src: '192.168.8.193',
      dst: '192.168.104.65',
      proto: 17,
      ttl: 63,
      payload: udp(53, 40000, Buffer.alloc(4)),
    });
    assert.equal(
      formatLogLine(
        '',
        0,
        meta(p, { hook: Hook.FORWARD, inIf: 'tunl0', outIf: 'calie4d9dbaee1b' }),
      ),
      'IN=tunl0 OUT=calie4d9dbaee1b MAC= SRC=192.168.8.193 DST=192.168.104.65 LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=0 ' +
        'PROTO=UDP SPT=53 DPT=40000 LEN=12 ',
    );
    assert.equal(
      formatLogLine('', 0, meta(p, { hook: Hook.OUTPUT, outIf: 'eth0' })),
      'IN= OUT=eth0 SRC=192.168.8.193 DST=192.168.104.65 LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=0 PROTO=UDP SPT=53 DPT=40000 LEN=12 ',
    );
  });

  it('TCP flags in the kernel order, TOS/PREC split, MF and FRAG, IP options, the mark', () => {
    const p = ipv4({
      src: '1.2.3.4',
      dst: '5.6.7.8',
      proto: 6,
      tos: 0xb8,
      id: 7,
      options: Buffer.from([0x94, 0x04, 0, 0]),
      payload: tcp({
        sport: 1,
        dport: 2,
        flags: ACK | PSH | 0x80 | 0x40 | 0x20 | 0x01,
        res: 0x0f,
        window: 0,
        urg: 9,
      }),
    });
    assert.equal(
      formatLogLine('x ', LOG_IPOPT, meta(p, { hook: Hook.OUTPUT, outIf: 'eth0', mark: 0x4000 })),
      'x IN= OUT=eth0 SRC=1.2.3.4 DST=5.6.7.8 LEN=44 TOS=0x18 PREC=0xA0 TTL=64 ID=7 OPT (94040000) PROTO=TCP SPT=1 DPT=2 ' +
        'WINDOW=0 RES=0x38 AE CWR ECE URG ACK PSH FIN URGP=9 MARK=0x4000 ',
    );
    const frag = ipv4({
      src: '1.2.3.4',
      dst: '5.6.7.8',
      proto: 17,
      mf: true,
      frag: 185,
      payload: Buffer.alloc(16),
    });
    assert.equal(
      formatLogLine('', 0, meta(frag, { hook: Hook.OUTPUT, outIf: 'eth0' })),
      'IN= OUT=eth0 SRC=1.2.3.4 DST=5.6.7.8 LEN=36 TOS=0x00 PREC=0x00 TTL=64 ID=0 MF FRAG:185 PROTO=UDP ',
    );
  });

  it('ICMP echo, and an ICMP error with the offending header in brackets', () => {
    const ping = ipv4({
      src: '10.1.0.89',
      dst: '10.1.110.105',
      proto: 1,
      payload: echo(8, 4242, 3),
    });
    assert.equal(
      formatLogLine('', 0, meta(ping, { hook: Hook.OUTPUT, outIf: 'eth0' })),
      'IN= OUT=eth0 SRC=10.1.0.89 DST=10.1.110.105 LEN=36 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=8 CODE=0 ID=4242 SEQ=3 ',
    );
    const inner = ipv4({
      src: '10.1.0.89',
      dst: '10.96.0.10',
      proto: 17,
      ttl: 1,
      payload: udp(5000, 53),
    });
    const rest = Buffer.concat([Buffer.alloc(4), inner]);
    rest.writeUInt16BE(1480, 2);
    const err = ipv4({
      src: '10.1.110.102',
      dst: '10.1.0.89',
      proto: 1,
      payload: icmp(3, 4, rest),
    });
    assert.equal(
      formatLogLine('', 0, meta(err, { hook: Hook.OUTPUT, outIf: 'eth0' })),
      'IN= OUT=eth0 SRC=10.1.110.102 DST=10.1.0.89 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=3 CODE=4 ' +
        '[SRC=10.1.0.89 DST=10.96.0.10 LEN=28 TOS=0x00 PREC=0x00 TTL=1 ID=0 PROTO=UDP SPT=5000 DPT=53 LEN=8 ] MTU=1480 ',
    );
  });

  it('a truncated header ends the line early (no MARK)', () => {
    const p = ipv4({ src: '1.1.1.1', dst: '2.2.2.2', proto: 6, payload: Buffer.alloc(8) });
    assert.equal(
      formatLogLine('', 0, meta(p, { hook: Hook.OUTPUT, outIf: 'eth0', mark: 1 })),
      'IN= OUT=eth0 SRC=1.1.1.1 DST=2.2.2.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP INCOMPLETE [8 bytes] ',
    );
  });

  it('the LOG target is non-terminating and logs at its level', () => {
    const { nf, logs } = makeNf();
    nf.command(argv('-A OUTPUT -p udp -j LOG --log-prefix "dns: " --log-level 6'));
    nf.command(argv('-A OUTPUT -p udp -j DROP'));
    const m = meta(ipv4({ src: '1.1.1.1', dst: '2.2.2.2', proto: 17, payload: udp(1, 53) }), {
      hook: Hook.OUTPUT,
      outIf: 'eth0',
    });
    assert.equal(run(nf, 'filter', m).verdict, 1);
    assert.deepEqual(logs, [
      {
        line: 'dns: IN= OUT=eth0 SRC=1.1.1.1 DST=2.2.2.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=1 DPT=53 LEN=8 ',
        level: 6,
      },
    ]);
  });
});
