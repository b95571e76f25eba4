/**
 * The kernel's LOG line for IPv4 (net/netfilter/nf_log_syslog.c: nf_log_ip_packet,
 * dump_mac_header, dump_ipv4_packet, nf_log_dump_tcp_header/udp_header), field
 * for field, including the trailing space.
 */
import type { PacketMeta } from './packet-meta.js';

export const LOG_TCPSEQ = 0x01;
export const LOG_TCPOPT = 0x02;
export const LOG_IPOPT = 0x04;
export const LOG_UID = 0x08;
export const LOG_MACDECODE = 0x20;

function ip(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function hx2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function u16(b: Buffer, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function u32(b: Buffer, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** The message of one LOG target hit (what the kernel hands to printk after the level). */
export function formatLogLine(prefix: string, logflags: number, m: PacketMeta): string {
  let s = `${prefix}IN=${m.inIf} OUT=${m.outIf} `;
  if (m.inIf !== '') s += macHeader(logflags, m);
  const end = Math.min(m.buf.length, m.ipOff + m.ipLen);
  const st = { early: false };
  s += dumpIpv4(m.buf, m.ipOff, end, logflags, true, st);
  // UID= needs a local socket (none here); MARK= at the top level unless a header was cut short
  if (!st.early && m.mark !== 0) s += `MARK=0x${(m.mark >>> 0).toString(16)} `;
  return s;
}

function macHeader(logflags: number, m: PacketMeta): string {
  const b = m.buf;
  if (m.macOff >= 0 && m.macOff + 14 <= b.length && logflags & LOG_MACDECODE) {
    const src = Array.from(b.subarray(m.macOff + 6, m.macOff + 12), hx2).join(':');
    const dst = Array.from(b.subarray(m.macOff, m.macOff + 6), hx2).join(':');
    return `MACSRC=${src} MACDST=${dst} MACPROTO=${u16(b, m.macOff + 12)
      .toString(16)
      .padStart(4, '0')} `;
  }
  if (m.macOff < 0 || m.macOff + 14 > b.length) return 'MAC= ';
  return `MAC=${Array.from(b.subarray(m.macOff, m.macOff + 14), hx2).join(':')} `;
}

const ICMP_REQUIRED: Record<number, number> = {
  0: 4,
  3: 28,
  4: 28,
  5: 28,
  8: 4,
  11: 28,
  12: 28,
  13: 20,
  14: 20,
  17: 12,
  18: 12,
};

function dumpIpv4(
  b: Buffer,
  off: number,
  end: number,
  logflags: number,
  top: boolean,
  st: { early: boolean },
): string {
  if (off + 20 > end) {
    if (top) st.early = true;
    return 'TRUNCATED';
  }
  const ihl = (b[off]! & 0x0f) * 4;
  const tos = b[off + 1]!;
  const fragOff = u16(b, off + 6);
  let s = `SRC=${ip(b, off + 12)} DST=${ip(b, off + 16)} `;
  s += `LEN=${u16(b, off + 2)} TOS=0x${hx2(tos & 0x1e).toUpperCase()} PREC=0x${hx2(tos & 0xe0).toUpperCase()} TTL=${b[off + 8]} ID=${u16(b, off + 4)} `;
  if (fragOff & 0x8000) s += 'CE ';
  if (fragOff & 0x4000) s += 'DF ';
  if (fragOff & 0x2000) s += 'MF ';
  const fragment = fragOff & 0x1fff;
  if (fragment) s += `FRAG:${fragment} `;
  if (logflags & LOG_IPOPT && ihl > 20) {
    if (off + ihl > end) {
      if (top) st.early = true;
      return s + 'TRUNCATED';
    }
    s += `OPT (${Array.from(b.subarray(off + 20, off + ihl), (x) => hx2(x).toUpperCase()).join('')}) `;
  }
  const l4 = off + ihl;
  const proto = b[off + 9]!;
  const stop = (text: string): string => {
    if (top) st.early = true;
    return s + text;
  };
  switch (proto) {
    case 6: {
      s += 'PROTO=TCP ';
      if (fragment) break;
      if (l4 + 20 > end) return stop(`INCOMPLETE [${end - l4} bytes] `);
      s += `SPT=${u16(b, l4)} DPT=${u16(b, l4 + 2)} `;
      if (logflags & LOG_TCPSEQ) s += `SEQ=${u32(b, l4 + 4)} ACK=${u32(b, l4 + 8)} `;
      s += `WINDOW=${u16(b, l4 + 14)} `;
      s += `RES=0x${hx2((u32(b, l4 + 12) & 0x0e000000) >>> 22)} `;
      const fl = b[l4 + 13]!;
      if (b[l4 + 12]! & 0x01) s += 'AE ';
      if (fl & 0x80) s += 'CWR ';
      if (fl & 0x40) s += 'ECE ';
      if (fl & 0x20) s += 'URG ';
      if (fl & 0x10) s += 'ACK ';
      if (fl & 0x08) s += 'PSH ';
      if (fl & 0x04) s += 'RST ';
      if (fl & 0x02) s += 'SYN ';
      if (fl & 0x01) s += 'FIN ';
      s += `URGP=${u16(b, l4 + 18)} `;
      const doff = (b[l4 + 12]! >> 4) * 4;
      if (logflags & LOG_TCPOPT && doff > 20) {
        if (l4 + doff > end) return stop('OPT (TRUNCATED)');
        s += `OPT (${Array.from(b.subarray(l4 + 20, l4 + doff), (x) => hx2(x).toUpperCase()).join('')}) `;
      }
      break;
    }
    case 17:
    case 136: {
      s += proto === 17 ? 'PROTO=UDP ' : 'PROTO=UDPLITE ';
      if (fragment) break;
      if (l4 + 8 > end) return stop(`INCOMPLETE [${end - l4} bytes] `);
      s += `SPT=${u16(b, l4)} DPT=${u16(b, l4 + 2)} LEN=${u16(b, l4 + 4)} `;
      break;
    }
    case 1: {
      s += 'PROTO=ICMP ';
      if (fragment) break;
      if (l4 + 8 > end) {
        s += `INCOMPLETE [${end - l4} bytes] `;
        break;
      }
      const type = b[l4]!;
      const code = b[l4 + 1]!;
      s += `TYPE=${type} CODE=${code} `;
      const req = ICMP_REQUIRED[type];
      if (req !== undefined && end - l4 < req) {
        s += `INCOMPLETE [${end - l4} bytes] `;
        break;
      }
      switch (type) {
        case 0:
        case 8:
          s += `ID=${u16(b, l4 + 4)} SEQ=${u16(b, l4 + 6)} `;
          break;
        case 12:
          s += `PARAMETER=${b[l4 + 4]} `;
          break;
        case 5:
        case 3:
        case 4:
        case 11:
          if (type === 5) s += `GATEWAY=${ip(b, l4 + 4)} `;
          if (top) s += `[${dumpIpv4(b, l4 + 8, end, logflags, false, st)}] `;
          if (type === 3 && code === 4) s += `MTU=${u16(b, l4 + 6)} `;
          break;
      }
      break;
    }
    case 51: {
      if (fragment) break;
      s += 'PROTO=AH ';
      if (l4 + 12 > end) {
        s += `INCOMPLETE [${end - l4} bytes] `;
        break;
      }
      s += `SPI=0x${u32(b, l4 + 4).toString(16)} `;
      break;
    }
    case 50: {
      s += 'PROTO=ESP ';
      if (fragment) break;
      if (l4 + 8 > end) {
        s += `INCOMPLETE [${end - l4} bytes] `;
        break;
      }
      s += `SPI=0x${u32(b, l4).toString(16)} `;
      break;
    }
    default:
      s += `PROTO=${proto} `;
  }
  return s;
}
