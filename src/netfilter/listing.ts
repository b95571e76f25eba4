/**
 * `iptables -L` output (iptables.c list_entries / print_firewall, xshared.c
 * print_header / print_rule_details / print_ifaces / print_ipv4_addresses),
 * including its column padding and the K/M/G counter abbreviations.
 */
import { protoNumberToName } from './netdb.js';
import type { Rule } from './rule.js';
import { ipToName, ipToString, maskToListString, padLeft, padRight } from './util.js';

export interface ListFormat {
  numeric: boolean;
  verbose: boolean;
  exact: boolean;
  lineNumbers: boolean;
}

/** xtables_print_num */
export function printNum(n: number, f: ListFormat, notable = false): string {
  const w = (s: string, width: number) => (notable ? `${s} ` : `${padLeft(s, width)} `);
  if (f.exact) return w(String(n), 8);
  if (n <= 99999) return w(String(n), 5);
  n = Math.floor((n + 500) / 1000);
  if (n <= 9999) return w(`${n}K`, 5);
  n = Math.floor((n + 500) / 1000);
  if (n <= 9999) return w(`${n}M`, 5);
  n = Math.floor((n + 500) / 1000);
  if (n <= 9999) return w(`${n}G`, 5);
  n = Math.floor((n + 500) / 1000);
  return w(`${n}T`, 5);
}

export function listHeader(
  f: ListFormat,
  chain: string,
  policy: string | null,
  counters: { packets: number; bytes: number },
  refs: number,
): string {
  let s = `Chain ${chain}`;
  if (policy !== null) {
    s += ` (policy ${policy}`;
    if (f.verbose) {
      s += ` ${printNum(counters.packets, f, true)}packets, ${printNum(counters.bytes, f, true)}bytes`;
    }
    s += ')\n';
  } else {
    s += ` (${refs} references)\n`;
  }
  if (f.lineNumbers) s += padRight('num', 4) + ' ';
  if (f.verbose) {
    if (!f.exact) s += `${padLeft('pkts', 5)} ${padLeft('bytes', 5)} `;
    else s += `${padLeft('pkts', 8)} ${padLeft('bytes', 10)} `;
  }
  s += padRight('target', 9) + ' ';
  s += ' prot ';
  s += 'opt';
  if (f.verbose) {
    s += ` ${padRight('in', 6)} `;
    s += `${padRight('out', 6)} `;
  }
  s += ` ${padRight('source', 19)} `;
  s += ` ${padRight('destination', 19)} `;
  return s + '\n';
}

function addrString(addr: number, mask: number, numeric: boolean): string {
  if (mask === 0 && !numeric) return 'anywhere';
  return (numeric ? ipToString(addr) : ipToName(addr)) + maskToListString(mask);
}

/** One rule line of -L (print_firewall). */
export function listRule(r: Rule, num: number, f: ListFormat): string {
  let s = '';
  if (f.lineNumbers) s += padRight(String(num), 4) + ' ';
  if (f.verbose) s += printNum(r.packets, f) + printNum(r.bytes, f);
  s += padRight(r.listTarget, 9) + ' ';
  s += r.invProto ? '!' : ' ';
  const pname = f.numeric ? null : r.proto === 0 ? 'all' : protoNumberToName(r.proto);
  s += padRight(pname ?? String(r.proto), 4) + ' ';
  s += (r.invFrag ? '!' : '-') + (r.frag ? 'f' : '-') + ' ';
  if (f.verbose) {
    const any = f.numeric ? '*' : 'any';
    s += ` ${padRight((r.invIn ? '!' : '') + (r.inIf !== '' ? r.inIf : any), 6)} `;
    s += `${padRight((r.invOut ? '!' : '') + (r.outIf !== '' ? r.outIf : any), 6)} `;
  }
  s += r.invSrc ? '!' : ' ';
  s += padRight(addrString(r.src, r.smsk, f.numeric), 19) + ' ';
  s += r.invDst ? '!' : ' ';
  s += padRight(addrString(r.dst, r.dmsk, f.numeric), 19) + ' ';
  if (r.goto) s += '[goto] ';
  for (const m of r.matches) s += m.print(f.numeric);
  if (r.target) s += r.target.print(f.numeric);
  return s + '\n';
}
