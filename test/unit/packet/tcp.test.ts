import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ParseResult,
  TCPOPT_MSS,
  TCPOPT_NOP,
  TCPOPT_SACK_PERM,
  TCPOPT_TIMESTAMP,
  TCPOPT_WINDOW,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
  TcpFlags,
  TcpView,
  emitIpv4Header,
  emitTcp,
  parseIpv4Repr,
} from '../../../src/packet/index.js';
import { type FrameName, frame } from './fixtures/frames.js';
import { everyPrefixRejected, expectResult, ipOf, tcpOf } from './helpers.js';

const NAMES: FrameName[] = [
  'tcpSyn',
  'tcpSynAck',
  'tcpAck',
  'tcpClientData',
  'tcpServerAck',
  'tcpServerData',
  'tcpClientAck',
  'tcpFirstFin',
  'tcpSecondFin',
  'tcpLastAck',
];

// tshark -r tcp.pcap -Y tcp -T fields -E separator=' ' -e tcp.srcport -e tcp.dstport
//   -e tcp.seq_raw -e tcp.ack_raw -e tcp.flags -e tcp.window_size_value -e tcp.checksum
//   -e tcp.hdr_len -e tcp.len -e tcp.options.mss_val -e tcp.options.wscale.shift
//   -e tcp.options.timestamp.tsval -e tcp.options.timestamp.tsecr -e tcp.option_kind
const TSHARK = `
46120 8080 1223751425 0 0x0002 64480 0x1d20 40 0 1240 10 3721209292 0 2,4,8,1,3
8080 46120 2101784858 1223751426 0x0012 65084 0x4541 40 0 1240 10 4225608498 3721209292 2,4,8,1,3
46120 8080 1223751426 2101784859 0x0010 63 0x7132 32 0   3721209292 4225608498 1,1,8
46120 8080 1223751426 2101784859 0x0018 63 0x2d48 32 6   3721209292 4225608498 1,1,8
8080 46120 2101784859 1223751432 0x0010 64 0x712b 32 0   4225608498 3721209292 1,1,8
8080 46120 2101784859 1223751432 0x0018 64 0x2337 32 6   4225608498 3721209292 1,1,8
46120 8080 1223751432 2101784865 0x0010 63 0x7126 32 0   3721209292 4225608498 1,1,8
46120 8080 1223751432 2101784865 0x0011 63 0x7125 32 0   3721209292 4225608498 1,1,8
8080 46120 2101784865 1223751433 0x0011 64 0x711d 32 0   4225608504 3721209292 1,1,8
46120 8080 1223751433 2101784866 0x0010 63 0x7118 32 0   3721209298 4225608504 1,1,8
`;

interface Expected {
  name: FrameName;
  sp: number;
  dp: number;
  seq: number;
  ack: number;
  flags: number;
  win: number;
  csum: number;
  hl: number;
  dl: number;
  mss: number;
  wscale: number;
  tsval: number;
  tsecr: number;
  kinds: number[];
}

const TABLE: Expected[] = TSHARK.trim()
  .split('\n')
  .map((line, i) => {
    const f = line.split(' ');
    const n = (s: string): number => (s === '' ? -1 : Number(s));
    return {
      name: NAMES[i],
      sp: n(f[0]),
      dp: n(f[1]),
      seq: n(f[2]),
      ack: n(f[3]),
      flags: n(f[4]),
      win: n(f[5]),
      csum: n(f[6]),
      hl: n(f[7]),
      dl: n(f[8]),
      mss: n(f[9]),
      wscale: n(f[10]),
      tsval: n(f[11]),
      tsecr: n(f[12]),
      kinds: f[13].split(',').map(Number),
    };
  });

function optionKinds(t: TcpView): number[] {
  const kinds: number[] = [];
  const end = t.offset + t.headerLength;
  for (let i = t.optionsOffset; i < end;) {
    const k = t.buf[i];
    if (k === 0) break;
    kinds.push(k);
    i += k === TCPOPT_NOP ? 1 : t.buf[i + 1];
  }
  return kinds;
}

describe('TcpView on the captured connection', () => {
  it('the table covers the whole capture', () => {
    assert.equal(TABLE.length, NAMES.length);
  });

  for (const x of TABLE) {
    const { name, sp, dp, seq, ack, flags, win, csum, hl, dl, tsval, tsecr, kinds } = x;
    it(`${name}: fields as tshark printed them, checksum verifies`, () => {
      const ipv = ipOf(name);
      const t = tcpOf(ipv);
      assert.equal(t.srcPort, sp);
      assert.equal(t.dstPort, dp);
      assert.equal(t.seq, seq);
      assert.equal(t.ack, ack);
      assert.equal(t.flags, flags);
      assert.equal(t.syn, (flags & TCP_SYN) !== 0);
      assert.equal(t.fin, (flags & TCP_FIN) !== 0);
      assert.equal(t.ackFlag, (flags & TCP_ACK) !== 0);
      assert.equal(t.rst, false);
      assert.equal(t.window, win);
      assert.equal(t.checksum, csum);
      assert.equal(t.urgentPointer, 0);
      assert.equal(t.headerLength, hl);
      assert.equal(t.dataOffset, hl / 4);
      assert.equal(t.optionsLength, hl - 20);
      assert.equal(t.payloadLength, dl);
      assert.equal(t.payloadOffset, 34 + hl);
      assert.equal(t.length, hl + dl);
      assert.deepEqual(optionKinds(t), kinds);
      assert.equal(t.mss, x.mss);
      assert.equal(t.windowScale, x.wscale);
      const ts = t.findOption(TCPOPT_TIMESTAMP);
      assert.ok(ts > 0);
      assert.equal(t.buf[ts + 1], 10);
      assert.equal(t.buf.readUInt32BE(ts + 2), tsval);
      assert.equal(t.buf.readUInt32BE(ts + 6), tsecr);
      assert.ok(t.verifyChecksum(ipv));
    });
  }

  it('SYN options: mss 1240, sackOK, wscale 10', () => {
    for (const name of ['tcpSyn', 'tcpSynAck'] as const) {
      const t = tcpOf(ipOf(name));
      assert.equal(t.mss, 1240);
      assert.equal(t.windowScale, 10);
      assert.equal(t.findOption(TCPOPT_SACK_PERM), t.optionsOffset + 4);
      assert.equal(t.findOption(TCPOPT_MSS), t.optionsOffset);
      assert.equal(t.findOption(TCPOPT_WINDOW), t.optionsOffset + 17);
    }
    const ack = tcpOf(ipOf('tcpAck'));
    assert.equal(ack.mss, -1);
    assert.equal(ack.windowScale, -1);
  });

  it('payloads: hello / world', () => {
    const c = tcpOf(ipOf('tcpClientData'));
    assert.equal(c.flags, TcpFlags.PSH | TcpFlags.ACK);
    assert.equal(c.flags, TCP_PSH | TCP_ACK);
    assert.equal(c.buf.toString('latin1', c.payloadOffset, c.payloadOffset + 6), 'hello\n');
    const s = tcpOf(ipOf('tcpServerData'));
    assert.equal(s.buf.toString('latin1', s.payloadOffset, s.payloadOffset + 6), 'world\n');
  });

  it('emitTcp rebuilds every captured segment byte for byte', () => {
    for (const name of NAMES) {
      const orig = frame(name);
      const ipv = ipOf(name);
      const t = tcpOf(ipv);
      const out = Buffer.alloc(orig.length);
      orig.copy(out, 0, 0, 14);
      emitIpv4Header(out, 14, parseIpv4Repr(ipv));
      orig.copy(out, t.payloadOffset, t.payloadOffset);
      const hl = emitTcp(
        out,
        34,
        {
          srcPort: t.srcPort,
          dstPort: t.dstPort,
          seq: t.seq,
          ack: t.ack,
          flags: t.flags,
          window: t.window,
          options: orig.subarray(t.optionsOffset, t.optionsOffset + t.optionsLength),
        },
        ipv.src,
        ipv.dst,
        t.payloadLength,
      );
      assert.equal(hl, t.headerLength);
      assert.deepEqual(out, orig, name);
    }
  });

  it('emitTcp pads options with EOL and refuses more than 40 bytes', () => {
    const out = Buffer.alloc(60);
    const repr = { srcPort: 1, dstPort: 2, seq: 0xffffffff, ack: 0, flags: TCP_SYN, window: 0 };
    const hl = emitTcp(out, 0, { ...repr, options: Buffer.from([2, 4, 5, 0xb4, 1]) }, 1, 2, 0);
    assert.equal(hl, 28);
    assert.equal(out.subarray(20, 28).toString('hex'), '020405b401000000');
    const t = new TcpView();
    expectResult(t.wrap(out, 0, 28), ParseResult.Ok);
    assert.equal(t.seq, 0xffffffff);
    assert.equal(t.mss, 1460);
    assert.throws(() => emitTcp(out, 0, { ...repr, options: Buffer.alloc(41, 1) }, 1, 2, 0));
  });

  it('setters update the checksum incrementally, equal to a full recomputation', () => {
    for (const name of NAMES) {
      const ipv = ipOf(name);
      const t = tcpOf(ipv);
      t.setSrcPort(31000);
      t.setDstPort(0xffff);
      t.setWindow(1);
      assert.equal(t.srcPort, 31000);
      assert.equal(t.dstPort, 0xffff);
      assert.equal(t.window, 1);
      assert.ok(t.verifyChecksum(ipv), name);
      const c = t.checksum;
      t.fillChecksum(ipv);
      assert.equal(t.checksum, c, name);
    }
  });
});

describe('TcpView rejects bad segments', () => {
  const t = new TcpView();
  it('data offset < 5 is Malformed, beyond the segment Truncated', () => {
    for (const doff of [0, 1, 4]) {
      const f = frame('tcpSyn');
      f[34 + 12] = doff << 4;
      expectResult(t.wrap(f, 34, 40), ParseResult.Malformed, `doff ${doff}`);
    }
    const f = frame('tcpAck');
    f[34 + 12] = 0xf0;
    expectResult(t.wrap(f, 34, 32), ParseResult.Truncated);
  });

  it('every prefix shorter than the header is Truncated; longer ones are Ok', () => {
    const f = frame('tcpSyn');
    everyPrefixRejected((b, o, l) => t.wrap(b, o, l), f, 34, 40, [ParseResult.Truncated]);
    const d = frame('tcpClientData');
    for (let l = 32; l <= 38; l++) {
      expectResult(t.wrap(d, 34, l), ParseResult.Ok);
      assert.equal(t.payloadLength, l - 32);
    }
  });

  it('findOption stops at malformed options without reading past the header', () => {
    const f = frame('tcpSyn');
    const t2 = tcpOf(ipOf('tcpSyn', f));
    f[t2.optionsOffset + 1] = 0; // MSS length 0
    assert.equal(t2.findOption(TCPOPT_TIMESTAMP), -1);
    assert.equal(t2.mss, -1);
    f[t2.optionsOffset + 1] = 30; // past the 40-byte header
    assert.equal(t2.findOption(TCPOPT_TIMESTAMP), -1);
    f[t2.optionsOffset + 1] = 3; // wrong MSS length, walk continues misaligned
    assert.equal(t2.mss, -1);
    f.fill(TCPOPT_NOP, t2.optionsOffset, t2.optionsOffset + 19);
    f[t2.optionsOffset + 19] = TCPOPT_MSS; // kind in the last byte, no length
    assert.equal(t2.findOption(TCPOPT_MSS), -1);
  });
});
