/**
 * TCP connection tracking, ported from Linux 6.1 `net/netfilter/nf_conntrack_proto_tcp.c`:
 * the `tcp_conntracks[dir][flags][state]` table, `tcp_error`, `tcp_new`, `tcp_in_window`
 * (Rooij's window tracking with SACK and window scaling), `nf_tcp_handle_invalid` and the
 * timeout selection of `nf_conntrack_tcp_packet`. Everything works on the {@link CtStore}
 * arrays and the packet bytes; nothing allocates.
 *
 * Not ported: NAT sequence adjustment (no helpers mangle payloads here, so the offset is 0),
 * SYN proxy, per-connection timeout policies (CT --timeout), logging of invalid packets.
 */
import {
  B_TCPSTATE,
  CtStore,
  D_EXPIRES,
  H_STATUS,
  ST_ASSURED,
  ST_SEEN_REPLY,
  TF_BE_LIBERAL,
  TF_CLOSE_INIT,
  TF_DATA_UNACKNOWLEDGED,
  TF_EXP_CHALLENGE_ACK,
  TF_MAXACK_SET,
  TF_SACK_PERM,
  TF_SIMULTANEOUS_OPEN,
  TF_WINDOW_SCALE,
} from './store.js';

/** TCP conntrack states (enum tcp_conntrack). */
export const TcpState = {
  NONE: 0,
  SYN_SENT: 1,
  SYN_RECV: 2,
  ESTABLISHED: 3,
  FIN_WAIT: 4,
  CLOSE_WAIT: 5,
  LAST_ACK: 6,
  TIME_WAIT: 7,
  CLOSE: 8,
  SYN_SENT2: 9,
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];

/** `tcp_conntrack_names[]` (what `conntrack -L` prints). */
export const tcpStateNames: readonly string[] = Object.freeze([
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
  'SYN_SENT2',
]);

/** Table results beyond the states: sIV (invalid) and sIG (ignore). */
export const S_IV = 10;
export const S_IG = 11;
/** Timeout slots after the ten states. */
export const T_RETRANS = 10;
export const T_UNACK = 11;

/** Flag classes (enum tcp_bit_set), the table's middle index. */
export const TCP_SYN_SET = 0;
export const TCP_SYNACK_SET = 1;
export const TCP_FIN_SET = 2;
export const TCP_ACK_SET = 3;
export const TCP_RST_SET = 4;
export const TCP_NONE_SET = 5;
export const tcpFlagClassNames: readonly string[] = Object.freeze([
  'syn',
  'synack',
  'fin',
  'ack',
  'rst',
  'none',
]);

const sSS = 1;
const sSR = 2;
const sES = 3;
const sFW = 4;
const sCW = 5;
const sLA = 6;
const sTW = 7;
const sCL = 8;
const sS2 = 9;
const sIV = S_IV;
const sIG = S_IG;

/**
 * `tcp_conntracks[2][6][10]` of Linux 6.1, flattened: `[dir * 60 + class * 10 + state]`.
 * Columns: sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2.
 */
// prettier-ignore
export const TCP_CONNTRACKS: Uint8Array = Uint8Array.from([
  /* ORIGINAL */
  /* syn    */ sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2,
  /* synack */ sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR,
  /* fin    */ sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
  /* ack    */ sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV,
  /* rst    */ sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
  /* none   */ sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
  /* REPLY */
  /* syn    */ sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2,
  /* synack */ sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR,
  /* fin    */ sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
  /* ack    */ sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG,
  /* rst    */ sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
  /* none   */ sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
]);

/** The table cell for (dir, flag class, state). */
export function tcpTransition(dir: number, flagClass: number, state: number): number {
  return TCP_CONNTRACKS[dir * 60 + flagClass * 10 + state];
}

const F_FIN = 0x01;
const F_SYN = 0x02;
const F_RST = 0x04;
const F_ACK = 0x10;
const F_URG = 0x20;

/** get_conntrack_index(): RST beats SYN (SYN / SYN+ACK), beats FIN, beats ACK. */
export function tcpFlagClass(flags: number): number {
  if (flags & F_RST) return TCP_RST_SET;
  if (flags & F_SYN) return flags & F_ACK ? TCP_SYNACK_SET : TCP_SYN_SET;
  if (flags & F_FIN) return TCP_FIN_SET;
  if (flags & F_ACK) return TCP_ACK_SET;
  return TCP_NONE_SET;
}

/** tcp_valid_flags[]: the combinations allowed once ECE, CWR and PSH are masked off. */
const VALID_FLAGS = new Uint8Array(0x40);
for (const f of [
  F_SYN,
  F_SYN | F_URG,
  F_SYN | F_ACK,
  F_RST,
  F_RST | F_ACK,
  F_FIN | F_ACK,
  F_FIN | F_ACK | F_URG,
  F_ACK,
  F_ACK | F_URG,
]) {
  VALID_FLAGS[f] = 1;
}

/**
 * tcp_error() minus the checksum: the header is whole (data offset >= 5 and within the
 * segment) and the flag combination is valid. True if the packet is broken (INVALID).
 */
export function tcpMalformed(buf: Uint8Array, l4: number, l4Len: number): boolean {
  if (l4Len < 20) return true;
  const doff = (buf[l4 + 12] >>> 4) << 2;
  if (doff < 20 || l4Len < doff) return true;
  return VALID_FLAGS[buf[l4 + 13] & 0x37] === 0;
}

/** Sequence space comparisons (before()/after() of include/net/tcp.h). */
function before(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}
function after(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** segment_seq_plus_len(): seq + payload length + SYN + FIN. */
function segEnd(b: Uint8Array, l4: number, l4Len: number): number {
  const doff = (b[l4 + 12] >>> 4) << 2;
  const f = b[l4 + 13];
  return (rd32(b, l4 + 4) + l4Len - doff + (f & F_SYN ? 1 : 0) + (f & F_FIN ? 1 : 0)) >>> 0;
}

// Scratch results of parseOptions() (single-threaded, no allocation).
let optScale = 0;
let optFlags = 0;

/** tcp_options(): window scale (capped at 14) and SACK-permitted into optScale/optFlags. */
function parseOptions(b: Uint8Array, l4: number): void {
  optScale = 0;
  optFlags = 0;
  let length = ((b[l4 + 12] >>> 4) << 2) - 20;
  let p = l4 + 20;
  while (length > 0) {
    const opcode = b[p++];
    if (opcode === 0) return;
    if (opcode === 1) {
      length--;
      continue;
    }
    if (length < 2) return;
    const opsize = b[p++];
    if (opsize < 2 || opsize > length) return;
    if (opcode === 4 && opsize === 2) optFlags |= TF_SACK_PERM;
    else if (opcode === 3 && opsize === 3) {
      optScale = b[p] > 14 ? 14 : b[p];
      optFlags |= TF_WINDOW_SCALE;
    }
    p += opsize - 2;
    length -= opsize;
  }
}

/** tcp_sack(): the highest right edge among the SACK blocks, or `sack` unchanged. */
function highestSack(b: Uint8Array, l4: number, sack: number): number {
  let length = ((b[l4 + 12] >>> 4) << 2) - 20;
  if (length === 0) return sack;
  let p = l4 + 20;
  // Fast path for a timestamp-only option block (NOP NOP TS 10).
  if (length === 12 && b[p] === 1 && b[p + 1] === 1 && b[p + 2] === 8 && b[p + 3] === 10) {
    return sack;
  }
  while (length > 0) {
    const opcode = b[p++];
    if (opcode === 0) return sack;
    if (opcode === 1) {
      length--;
      continue;
    }
    if (length < 2) return sack;
    const opsize = b[p++];
    if (opsize < 2 || opsize > length) return sack;
    if (opcode === 5 && opsize >= 10 && (opsize - 2) % 8 === 0) {
      for (let i = 0; i < opsize - 2; i += 8) {
        const edge = rd32(b, p + i + 4);
        if (after(edge, sack)) sack = edge;
      }
      return sack;
    }
    p += opsize - 2;
    length -= opsize;
  }
  return sack;
}

/** Tunables of the TCP tracker (the nf_conntrack_tcp_* sysctls). */
export interface TcpConfig {
  /** nf_conntrack_tcp_be_liberal: only out-of-window RSTs are INVALID. */
  beLiberal: boolean;
  /** nf_conntrack_tcp_loose: pick up connections from mid-stream packets. */
  loose: boolean;
  /** nf_conntrack_tcp_max_retrans. */
  maxRetrans: number;
  /** nf_conntrack_tcp_ignore_invalid_rst. */
  ignoreInvalidRst: boolean;
  /** nf_conntrack_tcp_no_window_check. */
  noWindowCheck: boolean;
  /** Timeouts in ms by state 0..9, then T_RETRANS and T_UNACK; [0] = SYN_SENT's. */
  timeoutMs: Float64Array;
}

/** Results of {@link tcpPacket}. */
export const TCP_ACCEPT = 0;
/** -NF_ACCEPT: the packet is INVALID, the entry untouched (except by nf_tcp_handle_invalid). */
export const TCP_INVALID = 1;
/** -NF_REPEAT: kill the entry and look the packet up again (reopened connection). */
export const TCP_REPEAT = 2;
/** NF_ACCEPT without updating the entry (an ignored packet: sIG, or in-window "ignore"). */
export const TCP_IGNORED = 3;
/** NF_ACCEPT after nf_ct_kill_acct(): an RST when no reply was ever seen. */
export const TCP_KILL = 4;

/** Event bits {@link tcpPacket} reports through {@link tcpEvents}. */
export const EV_PROTOINFO = 1;
export const EV_ASSURED = 2;

/** Events raised by the last {@link tcpPacket} call. */
export let tcpEvents = 0;

/**
 * tcp_new(): initialises a fresh (unconfirmed) entry from its first packet. False when the
 * packet cannot create a connection (the ORIGINAL/sNO cell is sIV, or a mid-stream pickup
 * with `loose` off).
 */
export function tcpNew(
  s: CtStore,
  e: number,
  b: Uint8Array,
  l4: number,
  l4Len: number,
  loose: boolean,
): boolean {
  const newState = TCP_CONNTRACKS[tcpFlagClass(b[l4 + 13]) * 10];
  if (newState >= S_IV) return false;
  s.resetTcp(e);
  const o = 2 * e;
  const win = (b[l4 + 14] << 8) | b[l4 + 15];
  s.tdEnd[o] = segEnd(b, l4, l4Len);
  s.tdMaxwin[o] = win === 0 ? 1 : win;
  if (newState === sSS) {
    s.tdMaxend[o] = s.tdEnd[o];
    parseOptions(b, l4);
    s.tdScale[o] = optScale;
    s.tdFlags[o] = optFlags;
  } else {
    if (!loose) return false;
    // Mid-stream pickup: history is lost; assume SACK and be liberal with the window.
    s.tdMaxend[o] = (s.tdEnd[o] + s.tdMaxwin[o]) >>> 0;
    s.tdFlags[o] = TF_SACK_PERM | TF_BE_LIBERAL;
    s.tdFlags[o + 1] = TF_SACK_PERM | TF_BE_LIBERAL;
  }
  s.lastIndex[e] = TCP_NONE_SET;
  return true;
}

/** tcp_init_sender(): (re)initialises the sender side from a SYN or SYN/ACK. */
function initSender(
  s: CtStore,
  e: number,
  dir: number,
  b: Uint8Array,
  l4: number,
  end: number,
  win: number,
): void {
  const snd = 2 * e + dir;
  const rcv = 2 * e + (dir ^ 1);
  s.tdEnd[snd] = end;
  s.tdMaxend[snd] = end;
  s.tdMaxwin[snd] = win === 0 ? 1 : win;
  parseOptions(b, l4);
  s.tdScale[snd] = optScale;
  s.tdFlags[snd] = (s.tdFlags[snd] & TF_BE_LIBERAL) | optFlags;
  // RFC 1323: both sides must send the window scale option to enable scaling.
  if (dir === 1 && !(s.tdFlags[snd] & TF_WINDOW_SCALE && s.tdFlags[rcv] & TF_WINDOW_SCALE)) {
    s.tdScale[snd] = 0;
    s.tdScale[rcv] = 0;
  }
}

const W_ACCEPT = 0;
const W_INVALID = 1;
const W_IGNORE = 2;

function logInvalid(s: CtStore, snd: number, cfg: TcpConfig, ret: number): number {
  if (s.tdFlags[snd] & TF_BE_LIBERAL || cfg.beLiberal) return W_ACCEPT;
  return ret;
}

/** tcp_in_window(). */
function inWindow(
  s: CtStore,
  e: number,
  dir: number,
  index: number,
  b: Uint8Array,
  l4: number,
  l4Len: number,
  cfg: TcpConfig,
): number {
  if (cfg.noWindowCheck) return W_ACCEPT;
  const snd = 2 * e + dir;
  const rcv = 2 * e + (dir ^ 1);
  const flags = b[l4 + 13];
  const syn = (flags & F_SYN) !== 0;
  const ackf = (flags & F_ACK) !== 0;
  let seq = rd32(b, l4 + 4);
  let ack = rd32(b, l4 + 8);
  let sack = ack;
  const winRaw = (b[l4 + 14] << 8) | b[l4 + 15];
  let win = winRaw;
  let end = segEnd(b, l4, l4Len);
  const state = s.u8[e * 64 + B_TCPSTATE];

  if (s.tdFlags[rcv] & TF_SACK_PERM) sack = highestSack(b, l4, sack);

  if (s.tdMaxwin[snd] === 0) {
    // Initialise sender data.
    if (syn) {
      initSender(s, e, dir, b, l4, end, win);
      if (!ackf) return W_ACCEPT; // simultaneous open
    } else {
      // Mid-stream: use what the packet says.
      s.tdEnd[snd] = end;
      const swin = (win << s.tdScale[snd]) >>> 0;
      s.tdMaxwin[snd] = swin === 0 ? 1 : swin;
      s.tdMaxend[snd] = (end + s.tdMaxwin[snd]) >>> 0;
      if (s.tdMaxwin[rcv] === 0) {
        // No traffic seen the other way yet: tweak so that III and IV pass.
        s.tdEnd[rcv] = sack;
        s.tdMaxend[rcv] = sack;
      } else if (sack === (s.tdEnd[rcv] + 1) >>> 0) {
        // Likely a reply to a keepalive.
        s.tdEnd[rcv] = (s.tdEnd[rcv] + 1) >>> 0;
      }
    }
  } else if (syn && after(end, s.tdEnd[snd]) && (state === sSS || state === sSR)) {
    // RFC 793: a reinitialised TCP may reuse the connection with higher sequence numbers.
    initSender(s, e, dir, b, l4, end, win);
    if (dir === 1 && !ackf) return W_ACCEPT;
  }

  if (!ackf) {
    ack = sack = s.tdEnd[rcv];
  } else if ((flags & (F_ACK | F_RST)) === (F_ACK | F_RST) && ack === 0) {
    // Broken stacks that send RST+ACK with a zero ack.
    ack = sack = s.tdEnd[rcv];
  }

  if (flags & F_RST && seq === 0 && state === sSS) {
    // RST answering a SYN.
    seq = end = s.tdEnd[snd];
  }

  const maxAckWin = s.tdMaxwin[snd] > 66000 ? s.tdMaxwin[snd] : 66000;
  const seqOk = before(seq, (s.tdMaxend[snd] + 1) >>> 0);
  if (!seqOk) {
    const overshot = (end - s.tdMaxend[snd] + 1) >>> 0;
    const ackOk = after(sack, (s.tdEnd[rcv] - maxAckWin - 1) >>> 0);
    const inRecvWin =
      s.tdMaxwin[rcv] !== 0 && after(end, (s.tdEnd[snd] - s.tdMaxwin[rcv] - 1) >>> 0);
    if (
      inRecvWin &&
      ackOk &&
      overshot <= s.tdMaxwin[rcv] &&
      before(sack, (s.tdEnd[rcv] + 1) >>> 0)
    ) {
      // A TCP sending more than the receive window allows: remember the data so that its ACK
      // does not trip the ACK upper bound later.
      s.tdEnd[snd] = end;
      s.tdFlags[snd] |= TF_DATA_UNACKNOWLEDGED;
      return logInvalid(s, snd, cfg, W_IGNORE);
    }
    return logInvalid(s, snd, cfg, W_INVALID); // SEQ is over the upper bound
  }
  if (!before(sack, (s.tdEnd[rcv] + 1) >>> 0)) {
    return logInvalid(s, snd, cfg, W_INVALID); // ACK is over the upper bound
  }
  const inRecvWin = s.tdMaxwin[rcv] === 0 || after(end, (s.tdEnd[snd] - s.tdMaxwin[rcv] - 1) >>> 0);
  if (!inRecvWin) return logInvalid(s, snd, cfg, W_IGNORE); // already ACKed data retransmitted
  if (!after(sack, (s.tdEnd[rcv] - maxAckWin - 1) >>> 0)) {
    return logInvalid(s, snd, cfg, W_IGNORE); // ACK under the lower bound
  }

  // Window scaling (RFC 1323).
  if (!syn) win = (win << s.tdScale[snd]) >>> 0;

  // Update sender data.
  const swin = (win + sack - ack) >>> 0;
  if (s.tdMaxwin[snd] < swin) s.tdMaxwin[snd] = swin;
  if (after(end, s.tdEnd[snd])) {
    s.tdEnd[snd] = end;
    s.tdFlags[snd] |= TF_DATA_UNACKNOWLEDGED;
  }
  if (ackf) {
    if (!(s.tdFlags[snd] & TF_MAXACK_SET)) {
      s.tdMaxack[snd] = ack;
      s.tdFlags[snd] |= TF_MAXACK_SET;
    } else if (after(ack, s.tdMaxack[snd])) {
      s.tdMaxack[snd] = ack;
    }
  }

  // Update receiver data.
  if (s.tdMaxwin[rcv] !== 0 && after(end, s.tdMaxend[snd])) {
    s.tdMaxwin[rcv] = (s.tdMaxwin[rcv] + end - s.tdMaxend[snd]) >>> 0;
  }
  if (after((sack + win) >>> 0, (s.tdMaxend[rcv] - 1) >>> 0)) {
    s.tdMaxend[rcv] = (sack + win) >>> 0;
    if (win === 0) s.tdMaxend[rcv] = (s.tdMaxend[rcv] + 1) >>> 0;
  }
  if (ack === s.tdEnd[rcv]) s.tdFlags[rcv] &= ~TF_DATA_UNACKNOWLEDGED;

  // Retransmissions.
  if (index === TCP_ACK_SET) {
    if (
      s.lastDir[e] === dir &&
      s.lastSeq[e] === seq &&
      s.lastAck[e] === ack &&
      s.lastEnd[e] === end &&
      s.lastWin[e] === winRaw
    ) {
      if (s.retrans[e] < 255) s.retrans[e]++;
    } else {
      s.lastDir[e] = dir;
      s.lastSeq[e] = seq;
      s.lastAck[e] = ack;
      s.lastEnd[e] = end;
      s.lastWin[e] = winRaw;
      s.retrans[e] = 0;
    }
  }
  return W_ACCEPT;
}

/** nf_tcp_handle_invalid(): an out-of-window FIN/RST answering one shortens the timeout. */
function handleInvalid(
  s: CtStore,
  e: number,
  dir: number,
  index: number,
  status: number,
  cfg: TcpConfig,
  now: number,
): void {
  if (!(status & ST_ASSURED)) return;
  if (index !== TCP_RST_SET && index !== TCP_FIN_SET) return;
  if (s.lastDir[e] !== dir && (s.lastIndex[e] === TCP_FIN_SET || s.lastIndex[e] === TCP_RST_SET)) {
    const remaining = s.f64[e * 8 + D_EXPIRES] - now;
    if (remaining < 120000) return;
    const t = cfg.timeoutMs[T_UNACK];
    if (remaining > t) s.f64[e * 8 + D_EXPIRES] = now + t;
  } else {
    s.lastIndex[e] = index;
    s.lastDir[e] = dir;
  }
}

/** tcp_can_early_drop(): closing states. */
export function tcpClosing(state: number): boolean {
  return state === sFW || state === sLA || state === sTW || state === sCL || state === sCW;
}

/**
 * nf_conntrack_tcp_packet() for a packet already checked by {@link tcpMalformed} (and by the
 * checksum) and, for a new entry, initialised by {@link tcpNew}. Updates the state, window
 * data, ASSURED bit and expiry (`s.f64[e * 8 + D_EXPIRES]`), sets {@link tcpEvents}, returns a TCP_* code.
 */
export function tcpPacket(
  s: CtStore,
  e: number,
  dir: number,
  b: Uint8Array,
  l4: number,
  l4Len: number,
  cfg: TcpConfig,
  now: number,
): number {
  tcpEvents = 0;
  const flags = b[l4 + 13];
  const index = tcpFlagClass(flags);
  let oldState = s.u8[e * 64 + B_TCPSTATE];
  let newState = TCP_CONNTRACKS[dir * 60 + index * 10 + oldState];
  const status = s.u16[e * 32 + H_STATUS];
  let checkWindow = true;

  let ignore = false;
  switch (newState) {
    case sSS:
      if (oldState < sTW) break;
      // RFC 1122: a SYN may reopen a connection in TIME_WAIT; also an aborted connection
      // the client restarts. Kill this entry and look the packet up again.
      if (
        (s.tdFlags[2 * e + dir] | s.tdFlags[2 * e + (dir ^ 1)]) & TF_CLOSE_INIT ||
        (s.lastDir[e] === dir && s.lastIndex[e] === TCP_RST_SET)
      ) {
        return TCP_REPEAT;
      }
      ignore = true;
      break;
    case sIG:
      ignore = true;
      break;
    case sIV:
      return TCP_INVALID;
    case sTW:
      if (
        oldState === sLA &&
        index === TCP_ACK_SET &&
        s.lastDir[e] !== dir &&
        s.lastIndex[e] === TCP_SYN_SET &&
        s.lastFlags[e] & TF_EXP_CHALLENGE_ACK
      ) {
        // RFC 5961 challenge ACK: not the last ACK.
        s.lastFlags[e] &= ~TF_EXP_CHALLENGE_ACK;
        return TCP_IGNORED;
      }
      break;
    case sS2:
      s.lastFlags[e] |= TF_SIMULTANEOUS_OPEN;
      break;
    case sSR:
      if (dir === 1 && index === TCP_ACK_SET && s.lastFlags[e] & TF_SIMULTANEOUS_OPEN) {
        newState = sES;
      }
      break;
    case sCL: {
      if (index !== TCP_RST_SET) break;
      if (tcpClosing(s.u8[e * 64 + B_TCPSTATE])) {
        // Closing: the tuple may be reused already; skip the checks.
        checkWindow = false;
        break;
      }
      const seq = rd32(b, l4 + 4);
      const peer = 2 * e + (dir ^ 1);
      if (s.tdFlags[peer] & TF_MAXACK_SET && s.lastIndex[e] !== TCP_SYN_SET) {
        const established = s.u8[e * 64 + B_TCPSTATE] === sES && (status & ST_ASSURED) !== 0;
        if (seq === 0 && !established) {
          // An answer to a SYN we let through.
        } else if (before(seq, s.tdMaxack[peer]) && !cfg.ignoreInvalidRst) {
          return TCP_INVALID; // invalid RST
        } else if (!established || seq === s.tdMaxack[peer]) {
          // fine
        } else if (s.lastIndex[e] === TCP_ACK_SET && s.lastDir[e] === dir && seq === s.lastEnd[e]) {
          // RST at the end of a train of segments.
        } else {
          // The sequence does not match exactly: keep the state for a possible challenge ACK.
          newState = oldState;
        }
      }
      const ackSeq = rd32(b, l4 + 8);
      if (
        ((status & ST_SEEN_REPLY && s.lastIndex[e] === TCP_SYN_SET) ||
          (!(status & ST_ASSURED) && s.lastIndex[e] === TCP_ACK_SET)) &&
        ackSeq === s.lastEnd[e]
      ) {
        // RST to a SYN or ACK we let through as ignored (a, c above): no window check.
        checkWindow = false;
        break;
      }
      if (
        oldState === sSS &&
        s.lastIndex[e] === TCP_ACK_SET &&
        s.lastDir[e] === 1 &&
        seq === s.lastAck[e]
      ) {
        // Reset answering a challenge ACK we let through.
        checkWindow = false;
      }
      break;
    }
    default:
      break;
  }

  if (ignore) {
    const ackSeq = rd32(b, l4 + 8);
    if (
      index === TCP_SYNACK_SET &&
      s.lastIndex[e] === TCP_SYN_SET &&
      s.lastDir[e] !== dir &&
      ackSeq === s.lastEnd[e]
    ) {
      // This SYN/ACK answers a SYN we ignored: client and server are in sync, we are not.
      // Resynchronise from the annotated values.
      oldState = sSS;
      newState = sSR;
      const ld = 2 * e + s.lastDir[e];
      s.tdEnd[ld] = s.lastEnd[e];
      s.tdMaxend[ld] = s.lastEnd[e];
      s.tdMaxwin[ld] = s.lastWin[e] === 0 ? 1 : s.lastWin[e];
      s.tdScale[ld] = s.lastWscale[e];
      s.lastFlags[e] &= ~TF_EXP_CHALLENGE_ACK;
      s.tdFlags[ld] = s.lastFlags[e];
      const cur = 2 * e + dir;
      s.tdEnd[cur] = 0;
      s.tdMaxend[cur] = 0;
      s.tdMaxwin[cur] = 0;
      s.tdMaxack[cur] = 0;
      s.tdScale[cur] = 0;
      s.tdFlags[cur] &= TF_BE_LIBERAL;
    } else {
      s.lastIndex[e] = index;
      s.lastDir[e] = dir;
      s.lastSeq[e] = rd32(b, l4 + 4);
      s.lastEnd[e] = segEnd(b, l4, l4Len);
      s.lastWin[e] = (b[l4 + 14] << 8) | b[l4 + 15];
      if (index === TCP_SYN_SET && dir === 0) {
        // A SYN in ORIGINAL we are out of sync with: annotate its options; if it is valid the
        // server answers with a SYN/ACK and we resynchronise above.
        parseOptions(b, l4);
        let lf = 0;
        s.lastWscale[e] = 0;
        if (optFlags & TF_WINDOW_SCALE) {
          lf |= TF_WINDOW_SCALE;
          s.lastWscale[e] = optScale;
        }
        if (optFlags & TF_SACK_PERM) lf |= TF_SACK_PERM;
        // RFC 5961 challenge ACK expected: an ACK in LAST_ACK would look like the last ACK.
        if (oldState === sLA) lf |= TF_EXP_CHALLENGE_ACK;
        s.lastFlags[e] = lf;
      }
      if (oldState === sSS && index === TCP_ACK_SET && dir === 1) s.lastAck[e] = ackSeq;
      return TCP_IGNORED;
    }
  }

  if (checkWindow) {
    const res = inWindow(s, e, dir, index, b, l4, l4Len, cfg);
    if (res === W_IGNORE) return TCP_IGNORED;
    if (res === W_INVALID) {
      handleInvalid(s, e, dir, index, status, cfg, now);
      return TCP_INVALID;
    }
  }

  // In-window packet.
  s.lastIndex[e] = index;
  s.lastDir[e] = dir;
  s.u8[e * 64 + B_TCPSTATE] = newState;
  if (oldState !== newState && newState === sFW) s.tdFlags[2 * e + dir] |= TF_CLOSE_INIT;

  const T = cfg.timeoutMs;
  let timeout: number;
  if (s.retrans[e] >= cfg.maxRetrans && T[newState] > T[T_RETRANS]) timeout = T[T_RETRANS];
  else if (index === TCP_RST_SET) timeout = T[sCL];
  else if (
    (s.tdFlags[2 * e] | s.tdFlags[2 * e + 1]) & TF_DATA_UNACKNOWLEDGED &&
    T[newState] > T[T_UNACK]
  ) {
    timeout = T[T_UNACK];
  } else if (!cfg.noWindowCheck && s.lastWin[e] === 0 && T[newState] > T[T_RETRANS]) {
    timeout = T[T_RETRANS];
  } else timeout = T[newState];

  if (newState !== oldState) tcpEvents |= EV_PROTOINFO;

  if (!(status & ST_SEEN_REPLY)) {
    // Only reply an RST: not an established connection, delete it right away.
    if (flags & F_RST) return TCP_KILL;
    // Do not renew the timeout on SYN retransmits (port reuse could keep it alive forever).
    if (index === TCP_SYN_SET && oldState === sSS) return TCP_ACCEPT;
    // Mid-stream pickup without a reply yet: no long ESTABLISHED timeout.
    if (newState === sES && timeout > T[T_UNACK]) timeout = T[T_UNACK];
  } else if (!(status & ST_ASSURED) && (oldState === sSR || oldState === sES) && newState === sES) {
    s.u16[e * 32 + H_STATUS] = status | ST_ASSURED;
    tcpEvents |= EV_ASSURED;
  }
  s.f64[e * 8 + D_EXPIRES] = now + timeout;
  return TCP_ACCEPT;
}
