/**
 * getservbyname/getservbyport/getprotobyname/getprotobynumber over the embedded
 * netbase tables (netdb-data.ts).
 */
import { PROTOCOLS, SERVICES } from './netdb-data.js';

interface Service {
  name: string;
  port: number;
  proto: string;
}

const byPort = new Map<string, string>(); // "80/tcp" → "http" (first entry wins)
const byName = new Map<string, Service[]>(); // name or alias → entries in file order
for (const line of SERVICES.split('\n')) {
  const [name, pp, ...aliases] = line.split(' ');
  if (!name || !pp) continue;
  const [port, proto] = pp.split('/');
  const s: Service = { name, port: Number(port), proto: proto! };
  if (!byPort.has(pp)) byPort.set(pp, name);
  for (const n of [name, ...aliases]) {
    const l = byName.get(n);
    if (l) l.push(s);
    else byName.set(n, [s]);
  }
}

const protoByNumber = new Map<number, string>();
const protoByName = new Map<string, number>();
for (const line of PROTOCOLS.split('\n')) {
  const [name, num, ...aliases] = line.split(' ');
  if (!name || num === undefined) continue;
  const n = Number(num);
  if (!protoByNumber.has(n)) protoByNumber.set(n, name);
  for (const a of [name, ...aliases]) if (!protoByName.has(a)) protoByName.set(a, n);
}

/** getservbyname(name, proto) (proto undefined = any protocol); -1 when unknown. */
export function serviceToPort(name: string, proto?: string): number {
  const l = byName.get(name);
  if (!l) return -1;
  const s = proto ? l.find((e) => e.proto === proto) : l[0];
  return s ? s.port : -1;
}

/** getservbyport(port, proto)'s name, or null. */
export function portToService(port: number, proto: string): string | null {
  return byPort.get(`${port}/${proto}`) ?? null;
}

/** getprotobynumber's name, or null. */
export function protoNumberToName(n: number): string | null {
  return protoByNumber.get(n) ?? null;
}

/** getprotobyname, or -1. */
export function protoNameToNumber(name: string): number {
  return protoByName.get(name) ?? -1;
}
