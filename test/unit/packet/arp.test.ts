import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ARP_LEN,
  ARP_OP_REPLY,
  ARP_OP_REQUEST,
  ArpView,
  ETHERTYPE_ARP,
  EthernetView,
  MAC_BROADCAST,
  MAC_ZERO,
  ParseResult,
  emitArp,
  emitEthernetHeader,
  macFromString,
  macToString,
} from '../../../src/packet/index.js';
import { frame } from './fixtures/frames.js';
import { everyPrefixRejected, expectResult, ip } from './helpers.js';

const MAC_A = macFromString('02:00:0a:c8:01:02');
const MAC_R = macFromString('02:00:0a:c8:01:01');

function arpOf(f: Buffer): ArpView {
  const a = new ArpView();
  expectResult(a.wrap(f, 14, f.length - 14), ParseResult.Ok);
  return a;
}

describe('ArpView', () => {
  it('parses the captured request: who-has 10.200.1.1 tell 10.200.1.2', () => {
    const a = arpOf(frame('arpRequest'));
    assert.equal(a.op, ARP_OP_REQUEST);
    assert.equal(a.length, ARP_LEN);
    assert.equal(macToString(a.buf, a.senderMacOffset), '02:00:0a:c8:01:02');
    assert.ok(a.senderMacIs(MAC_A));
    assert.equal(a.senderIp, ip('10.200.1.2'));
    assert.equal(macToString(a.buf, a.targetMacOffset), '00:00:00:00:00:00');
    assert.equal(a.targetIp, ip('10.200.1.1'));
    assert.ok(!a.isGratuitous);
  });

  it('parses the captured reply: 10.200.1.1 is-at 02:00:0a:c8:01:01', () => {
    const a = arpOf(frame('arpReply'));
    assert.equal(a.op, ARP_OP_REPLY);
    assert.equal(macToString(a.buf, a.senderMacOffset), '02:00:0a:c8:01:01');
    assert.equal(a.senderIp, ip('10.200.1.1'));
    assert.equal(macToString(a.buf, a.targetMacOffset), '02:00:0a:c8:01:02');
    assert.equal(a.targetIp, ip('10.200.1.2'));
    const m = Buffer.alloc(8);
    a.copySenderMacTo(m, 1);
    assert.equal(m.toString('hex'), '0002000ac8010100');
    m.fill(0);
    a.copyTargetMacTo(m, 2);
    assert.equal(m.toString('hex'), '000002000ac80102');
  });

  it('emitArp + emitEthernetHeader rebuild both captured frames', () => {
    const req = Buffer.alloc(42);
    emitEthernetHeader(req, 0, MAC_BROADCAST, MAC_A, ETHERTYPE_ARP);
    assert.equal(
      emitArp(req, 14, ARP_OP_REQUEST, MAC_A, ip('10.200.1.2'), MAC_ZERO, ip('10.200.1.1')),
      28,
    );
    assert.deepEqual(req, frame('arpRequest'));
    const rep = Buffer.alloc(42);
    emitEthernetHeader(rep, 0, MAC_A, MAC_R, ETHERTYPE_ARP);
    emitArp(rep, 14, ARP_OP_REPLY, MAC_R, ip('10.200.1.1'), MAC_A, ip('10.200.1.2'));
    assert.deepEqual(rep, frame('arpReply'));
  });

  it('turnRequestIntoReply turns the captured request into the captured reply', () => {
    const f = frame('arpRequest');
    const e = new EthernetView();
    e.wrap(f, 0, f.length);
    const a = arpOf(f);
    a.turnRequestIntoReply(MAC_R);
    e.copySrcTo(f, e.dstOffset);
    e.setSrc(MAC_R);
    assert.deepEqual(f, frame('arpReply'));
  });

  it('setters write in place', () => {
    const f = frame('arpRequest');
    const a = arpOf(f);
    a.setOp(ARP_OP_REPLY);
    a.setSenderMac(MAC_R);
    a.setTargetMac(MAC_A);
    a.setSenderIp(ip('10.200.1.1'));
    a.setTargetIp(ip('10.200.1.1'));
    assert.ok(a.isGratuitous);
    assert.equal(a.op, 2);
    assert.equal(macToString(f, 22), '02:00:0a:c8:01:01');
    assert.equal(macToString(f, 32), '02:00:0a:c8:01:02');
  });

  it('ignores Ethernet padding', () => {
    const padded = Buffer.alloc(60);
    frame('arpReply').copy(padded);
    const a = arpOf(padded);
    assert.equal(a.length, 28);
    assert.equal(a.targetIp, ip('10.200.1.2'));
  });

  it('rejects other hardware/protocol types and operations as Unrecognized', () => {
    const cases: [number, number][] = [
      [15, 6], // htype 6 (IEEE 802)
      [16, 0x86], // ptype 0x8600
      [18, 8], // hlen 8
      [19, 16], // plen 16
      [21, 3], // RARP request
      [20, 1], // op 0x0101
    ];
    for (const [at, v] of cases) {
      const f = frame('arpRequest');
      f[at] = v;
      expectResult(new ArpView().wrap(f, 14, 28), ParseResult.Unrecognized, `byte ${at}`);
    }
  });

  it('rejects every truncation', () => {
    const f = frame('arpRequest');
    const a = new ArpView();
    everyPrefixRejected((b, o, l) => a.wrap(b, o, l), f, 14, 28, [ParseResult.Truncated]);
    expectResult(a.wrap(f, 14, 29), ParseResult.Truncated);
  });
});
