import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CtState, Hook } from '../../../src/netfilter/packet-meta.js';
import {
  type Conntrack,
  S_IG,
  S_IV,
  tcpFlagClassNames,
  tcpStateNames,
  tcpTransition,
} from '../../../src/conntrack/index.js';
import { F, forward, ip, makeConntrack, meta, tcp } from './helpers.js';

/** §4.2 of the reference, verbatim (rows: flag class; columns: old state). */
const COLUMNS = ['NO', 'SS', 'SR', 'ES', 'FW', 'CW', 'LA', 'TW', 'CL', 'S2'];
const ORIGINAL_TABLE = `
| syn | SS | SS | IG | IG | IG | IG | IG | SS | SS | S2 |
| synack | IV | IV | SR | IV | IV | IV | IV | IV | IV | SR |
| fin | IV | IV | FW | FW | LA | LA | LA | TW | CL | IV |
| ack | ES | IV | ES | ES | CW | CW | TW | TW | CL | IV |
| rst | IV | CL | CL | CL | CL | CL | CL | CL | CL | CL |
| none | IV | IV | IV | IV | IV | IV | IV | IV | IV | IV |`;
const REPLY_TABLE = `
| syn | IV | S2 | IV | IV | IV | IV | IV | SS | IV | S2 |
| synack | IV | SR | IG | IG | IG | IG | IG | IG | IG | SR |
| fin | IV | IV | FW | FW | LA | LA | LA | TW | CL | IV |
| ack | IV | IG | SR | ES | CW | CW | TW | TW | CL | IG |
| rst | IV | CL | CL | CL | CL | CL | CL | CL | CL | CL |
| none | IV | IV | IV | IV | IV | IV | IV | IV | IV | IV |`;

const ABBREV: Record<string, number> = {
  NO: 0,
  SS: 1,
  SR: 2,
  ES: 3,
  FW: 4,
  CW: 5,
  LA: 6,
  TW: 7,
  CL: 8,
  S2: 9,
  IV: S_IV,
  IG: S_IG,
};

function parseTable(t: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of t.trim().split('\n')) {
    const cells = line
      .split('|')
      .map((c) => c.trim())
      .filter((c) => c !== '');
    rows.set(cells[0], cells.slice(1));
  }
  return rows;
}
const TABLES = [parseTable(ORIGINAL_TABLE), parseTable(REPLY_TABLE)];

const CLASS_FLAGS: Record<string, number> = {
  syn: F.SYN,
  synack: F.SYN | F.ACK,
  fin: F.FIN | F.ACK,
  ack: F.ACK,
  rst: F.RST,
  none: 0,
};

describe('TCP state table (§4.2) as data', () => {
  for (const dir of [0, 1]) {
    for (const cls of tcpFlagClassNames) {
      it(`${dir === 0 ? 'ORIGINAL' : 'REPLY'} ${cls}: every cell`, () => {
        const row = TABLES[dir].get(cls)!;
        assert.equal(row.length, 10);
        for (let st = 0; st < 10; st++) {
          assert.equal(
            tcpTransition(dir, tcpFlagClassNames.indexOf(cls), st),
            ABBREV[row[st]],
            `${cls} from ${COLUMNS[st]}`,
          );
        }
      });
    }
  }
});

/** A client (ORIGINAL) and a server (REPLY) exchanging segments through the tracker. */
class Conn {
  readonly side = [
    { addr: '10.0.0.1', port: 40000, nxt: 1000 },
    { addr: '10.0.0.2', port: 80, nxt: 5000 },
  ];
  constructor(readonly ct: Conntrack) {}

  send(dir: 0 | 1, flags: number, payload = 0, seq?: number, ack?: number) {
    const me = this.side[dir];
    const peer = this.side[dir ^ 1];
    const buf = tcp({
      src: me.addr,
      dst: peer.addr,
      sport: me.port,
      dport: peer.port,
      seq: seq ?? me.nxt,
      ack: ack ?? (flags & F.ACK ? peer.nxt : 0),
      flags,
      payload,
    });
    if (seq === undefined) {
      me.nxt = (me.nxt + payload + (flags & F.SYN ? 1 : 0) + (flags & F.FIN ? 1 : 0)) >>> 0;
    }
    return forward(this.ct, buf);
  }

  /** The entry of this connection seen from `dir`'s sender, or -1. */
  entry(fromDir: 0 | 1 = 0): number {
    const a = this.side[fromDir];
    const b = this.side[fromDir ^ 1];
    return this.ct.lookup(ip(a.addr), ip(b.addr), a.port, b.port, 6);
  }

  state(fromDir: 0 | 1 = 0): string | null {
    const e = this.entry(fromDir);
    return e < 0 ? null : this.ct.tcpState(e);
  }
}

/** Packets that bring a fresh connection into each state. */
const SETUP: Record<string, (c: Conn) => void> = {
  SS: (c) => c.send(0, F.SYN),
  S2: (c) => {
    c.send(0, F.SYN);
    c.send(1, F.SYN);
  },
  SR: (c) => {
    c.send(0, F.SYN);
    c.send(1, F.SYN | F.ACK);
  },
  ES: (c) => {
    SETUP.SR(c);
    c.send(0, F.ACK);
  },
  FW: (c) => {
    SETUP.ES(c);
    c.send(0, F.FIN | F.ACK);
  },
  CW: (c) => {
    SETUP.FW(c);
    c.send(1, F.ACK);
  },
  LA: (c) => {
    SETUP.CW(c);
    c.send(1, F.FIN | F.ACK);
  },
  TW: (c) => {
    SETUP.LA(c);
    c.send(0, F.ACK);
  },
  CL: (c) => {
    SETUP.ES(c);
    c.send(0, F.RST);
  },
};

describe('TCP state machine on real packets: every cell from every reachable state', () => {
  for (const dir of [0, 1] as const) {
    for (const cls of tcpFlagClassNames) {
      for (let st = 1; st < 10; st++) {
        const from = COLUMNS[st];
        const expected = TABLES[dir].get(cls)![st];
        it(`${dir === 0 ? 'ORIGINAL' : 'REPLY'} ${cls} in ${tcpStateNames[st]} -> ${expected}`, () => {
          // Liberal window checks isolate the state machine from sequence tracking.
          const { ct } = makeConntrack({ tcpBeLiberal: true });
          const c = new Conn(ct);
          SETUP[from](c);
          assert.equal(c.state(), tcpStateNames[st], 'setup');
          const m = c.send(dir, CLASS_FLAGS[cls]);
          if (expected === 'IV') {
            assert.equal(m.ctState, CtState.INVALID);
            assert.equal(c.state(), tcpStateNames[st], 'state unchanged');
          } else if (expected === 'IG') {
            assert.notEqual(m.ctState, CtState.INVALID);
            assert.equal(c.state(), tcpStateNames[st], 'ignored: state unchanged');
          } else if (cls === 'rst' && from === 'SS') {
            // Linux: an RST while no reply was ever seen deletes the entry at once.
            assert.notEqual(m.ctState, CtState.INVALID);
            assert.equal(c.state(), null);
          } else if (cls === 'syn' && expected === 'SS' && (from === 'TW' || from === 'CL')) {
            // Reopen: the old entry is killed and the SYN creates a new connection (NF_REPEAT).
            assert.equal(m.ctState & CtState.NEW, CtState.NEW);
            assert.equal(c.state(dir), 'SYN_SENT');
            assert.equal(ct.get(c.entry(dir))!.orig.src, ip(c.side[dir].addr));
          } else {
            assert.notEqual(m.ctState, CtState.INVALID);
            assert.equal(c.state(), tcpStateNames[ABBREV[expected]]);
          }
        });
      }
    }
  }

  for (const cls of tcpFlagClassNames) {
    const expected = TABLES[0].get(cls)![0];
    it(`first packet (sNO, ORIGINAL) ${cls} -> ${expected}`, () => {
      const { ct } = makeConntrack();
      const c = new Conn(ct);
      const m = c.send(0, CLASS_FLAGS[cls]);
      if (expected === 'IV') {
        assert.equal(m.ctState, CtState.INVALID);
        assert.equal(ct.count(), 0);
      } else {
        assert.equal(m.ctState & CtState.NEW, CtState.NEW);
        assert.equal(c.state(), tcpStateNames[ABBREV[expected]]);
      }
    });
  }
});

describe('TCP tracker details', () => {
  it('handshake: NEW, NEW, then ESTABLISHED both ways; ASSURED on the third packet', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    assert.equal(c.send(0, F.SYN).ctState, CtState.NEW);
    const synack = c.send(1, F.SYN | F.ACK);
    assert.equal(synack.ctState, CtState.ESTABLISHED);
    assert.equal(synack.ctDir, 1);
    assert.equal(ct.get(c.entry())!.assured, false);
    assert.equal(c.send(0, F.ACK).ctState, CtState.ESTABLISHED);
    const v = ct.get(c.entry())!;
    assert.equal(v.assured, true);
    assert.equal(v.tcpState, 'ESTABLISHED');
  });

  it('a retransmitted SYN stays NEW and does not renew the timeout', () => {
    const { ct, clock } = makeConntrack();
    const c = new Conn(ct);
    c.send(0, F.SYN);
    clock.advance(50);
    const m = c.send(0, F.SYN, 0, 1000);
    assert.equal(m.ctState, CtState.NEW);
    assert.equal(ct.get(c.entry())!.timeout, 70);
  });

  it('a SYN in ESTABLISHED is ignored (passes, state kept, annotated for resync)', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    SETUP.ES(c);
    const m = c.send(0, F.SYN, 0, 777);
    assert.equal(m.ctState, CtState.ESTABLISHED);
    assert.equal(c.state(), 'ESTABLISHED');
  });

  it('resynchronises when a SYN/ACK answers a SYN it ignored', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    SETUP.ES(c);
    c.send(0, F.SYN, 0, 90000); // new ISN, ignored
    // The server answers that SYN: ack = 90001.
    const m = c.send(1, F.SYN | F.ACK, 0, 70000, 90001);
    assert.notEqual(m.ctState, CtState.INVALID);
    assert.equal(c.state(), 'SYN_RECV');
  });

  it('simultaneous open: SYN both ways, SYN/ACKs, then ESTABLISHED', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    c.send(0, F.SYN);
    c.send(1, F.SYN);
    assert.equal(c.state(), 'SYN_SENT2');
    c.send(0, F.SYN | F.ACK, 0, 1000);
    assert.equal(c.state(), 'SYN_RECV');
    c.send(1, F.ACK);
    assert.equal(c.state(), 'ESTABLISHED');
  });

  it('invalid flag combinations are INVALID (SYN+FIN, FIN without ACK, PSH alone, none)', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    SETUP.ES(c);
    for (const flags of [F.SYN | F.FIN, F.FIN, F.PSH, F.SYN | F.FIN | F.ACK, 0]) {
      assert.equal(c.send(0, flags, 0, c.side[0].nxt).ctState, CtState.INVALID, `flags ${flags}`);
    }
    // PSH, ECE and CWR are masked off: PSH|ACK is plain ACK.
    assert.equal(c.send(0, F.PSH | F.ACK, 10).ctState, CtState.ESTABLISHED);
    assert.equal(ct.stats().invalid, 5);
  });

  it('a truncated TCP header is INVALID', () => {
    const { ct } = makeConntrack();
    const buf = tcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, flags: F.SYN });
    buf[20 + 12] = 0x40; // data offset 4
    assert.equal(forward(ct, buf).ctState, CtState.INVALID);
  });

  it('loose pickup: a mid-stream ACK creates ESTABLISHED, capped at the unacknowledged timeout', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    const m = c.send(0, F.ACK, 100);
    assert.equal(m.ctState, CtState.NEW);
    let v = ct.get(c.entry())!;
    assert.equal(v.tcpState, 'ESTABLISHED');
    assert.equal(v.timeout, 300);
    // The answer is handled before SEEN_REPLY is set: still capped, not assured ...
    assert.equal(c.send(1, F.ACK).ctState, CtState.ESTABLISHED);
    v = ct.get(c.entry())!;
    assert.equal(v.assured, false);
    assert.equal(v.timeout, 300);
    // ... the next packet makes it a two-way, ASSURED connection.
    c.send(0, F.ACK);
    v = ct.get(c.entry())!;
    assert.equal(v.assured, true);
    assert.equal(v.timeout, 432000);
  });

  it('tcpLoose=false refuses mid-stream pickups', () => {
    const { ct } = makeConntrack({ tcpLoose: false });
    const c = new Conn(ct);
    assert.equal(c.send(0, F.ACK).ctState, CtState.INVALID);
    assert.equal(ct.count(), 0);
  });

  it('window: data beyond the receive window is INVALID; be_liberal accepts it', () => {
    for (const liberal of [false, true]) {
      const { ct } = makeConntrack({ tcpBeLiberal: liberal });
      const c = new Conn(ct);
      SETUP.ES(c);
      const m = c.send(0, F.ACK, 10, 1000 + 10_000_000);
      assert.equal(m.ctState === CtState.INVALID, !liberal, `liberal=${liberal}`);
    }
  });

  it('window: an ACK for data never sent is INVALID', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    SETUP.ES(c);
    const m = c.send(0, F.ACK, 0, undefined, 5001 + 100000);
    assert.equal(m.ctState, CtState.INVALID);
  });

  it('window: an old retransmission below the window is let through without update', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    SETUP.ES(c);
    c.send(0, F.ACK | F.PSH, 1000);
    c.send(1, F.ACK);
    // Way below: more than the receiver's max window behind.
    const m = c.send(0, F.ACK, 10, (1001 - 200000) >>> 0);
    assert.equal(m.ctState, CtState.ESTABLISHED);
  });

  it('RST with a sequence number before what the peer acknowledged is INVALID ("invalid rst")', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    SETUP.ES(c);
    c.send(0, F.ACK | F.PSH, 500);
    c.send(1, F.ACK); // server acks 1501
    assert.equal(c.send(0, F.RST, 0, 1200).ctState, CtState.INVALID);
    assert.equal(c.state(), 'ESTABLISHED');
    const ignoring = makeConntrack({ tcpIgnoreInvalidRst: true });
    const d = new Conn(ignoring.ct);
    SETUP.ES(d);
    d.send(0, F.ACK | F.PSH, 500);
    d.send(1, F.ACK);
    assert.notEqual(d.send(0, F.RST, 0, 1200).ctState, CtState.INVALID);
  });

  it('RST in ESTABLISHED with an inexact sequence keeps the state (challenge ACK)', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    SETUP.ES(c);
    c.send(1, F.ACK | F.PSH, 100);
    const m = c.send(0, F.RST, 0, 1001 + 10);
    assert.notEqual(m.ctState, CtState.INVALID);
    assert.equal(c.state(), 'ESTABLISHED');
    assert.equal(ct.get(c.entry())!.timeout, 10, 'the CLOSE timeout applies to any RST');
  });

  it('RST answering the SYN deletes the entry (reply only RST)', () => {
    const { ct, events } = makeConntrack();
    const c = new Conn(ct);
    c.send(0, F.SYN);
    const m = c.send(1, F.RST | F.ACK, 0, 0);
    assert.equal(m.ctState, CtState.ESTABLISHED);
    assert.equal(m.ctDir, 1);
    assert.equal(c.entry(), -1);
    assert.equal(ct.count(), 0);
    assert.deepEqual(
      events.map((e) => e.type),
      ['NEW', 'DESTROY'],
    );
  });

  it('SYN in TIME_WAIT reopens: DESTROY of the old entry, NEW of the new one', () => {
    const { ct, events } = makeConntrack();
    const c = new Conn(ct);
    SETUP.TW(c);
    const before = c.entry();
    events.length = 0;
    const m = c.send(0, F.SYN, 0, 50000);
    assert.equal(m.ctState, CtState.NEW);
    assert.deepEqual(
      events.map((e) => e.type),
      ['DESTROY', 'NEW'],
    );
    assert.equal(c.state(), 'SYN_SENT');
    assert.equal(ct.count(), 1);
    assert.ok(before >= 0);
  });

  it('retransmissions: after 3 identical ACKs the timeout drops to max_retrans', () => {
    const { ct } = makeConntrack();
    const c = new Conn(ct);
    SETUP.ES(c);
    c.send(0, F.ACK | F.PSH, 100);
    const seq = c.side[0].nxt - 100;
    for (let i = 0; i < 3; i++) c.send(0, F.ACK | F.PSH, 100, seq);
    assert.equal(ct.get(c.entry())!.timeout, 300);
  });

  it('window scaling is honoured only when both sides offer it', () => {
    for (const serverScales of [true, false]) {
      const { ct } = makeConntrack();
      const buf = (dir: 0 | 1, flags: number, seq: number, ack: number, payload = 0) =>
        tcp({
          src: dir === 0 ? '10.0.0.1' : '10.0.0.2',
          dst: dir === 0 ? '10.0.0.2' : '10.0.0.1',
          sport: dir === 0 ? 40000 : 80,
          dport: dir === 0 ? 80 : 40000,
          seq,
          ack,
          flags,
          payload,
          win: 1000,
          // window scale 7, NOP
          options: flags & F.SYN && (dir === 0 || serverScales) ? [3, 3, 7, 1] : undefined,
        });
      forward(ct, buf(0, F.SYN, 100, 0));
      forward(ct, buf(1, F.SYN | F.ACK, 900, 101));
      forward(ct, buf(0, F.ACK, 101, 901));
      // The server announces its (scaled) window: 1000 << 7 = 128000 bytes.
      forward(ct, buf(1, F.ACK, 901, 101));
      const m = forward(ct, buf(0, F.ACK, 101 + 90000, 901, 1000));
      assert.equal(
        m.ctState === CtState.ESTABLISHED,
        serverScales,
        `server scales: ${serverScales}`,
      );
    }
  });

  it('UNTRACKED and looped-back packets', () => {
    const { ct } = makeConntrack();
    const m = meta(tcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, flags: F.SYN }));
    m.notrack = true;
    assert.ok(ct.inbound(m));
    assert.equal(m.ctState, CtState.UNTRACKED);
    assert.equal(m.ctEntry, -1);
    // A packet that already carries its entry (OUTPUT, then looped back to PREROUTING).
    const o = meta(
      tcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, flags: F.SYN }),
      Hook.OUTPUT,
    );
    ct.inbound(o);
    const e = o.ctEntry;
    ct.confirm(o);
    o.hook = Hook.PREROUTING;
    ct.inbound(o);
    assert.equal(o.ctEntry, e);
    assert.equal(o.ctState, CtState.NEW);
  });
});
