import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import { PacketSocket, type TapDevice } from '../tap/index.js';
import { openAgentTap } from './taps.js';
import { ip, run } from '../util/exec.js';

/** The agent's end of the redirected uplink. */
export const UPLINK_TAP = 'kw-uplink';
/** Frames the uplink TAP holds for the agent to read (the kernel's default is 1000). */
export const UPLINK_QUEUE_FRAMES = 4096;
/** Send buffer of the uplink's packet socket. */
const UPLINK_SNDBUF_BYTES = 4 * 1024 * 1024;

export interface UnderlayConfig {
  dev: string;
  address: string;
  prefixLen: number;
  mac: string;
  mtu: number;
  /** Routes the kernel had through the uplink besides the connected one (e.g. the default route). */
  gateways: { dst: string; prefixLen: number; via: string }[];
}

interface IpAddrJson {
  address: string;
  mtu: number;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}
interface IpRouteJson {
  dst: string;
  gateway?: string;
}

/**
 * Takes the node's underlay interface away from the kernel, as the agent owns
 * the node's address: it records the kernel's address, MAC, MTU and gateway
 * routes, removes the address (so the kernel stops answering ARP and routing
 * there), and redirects every frame arriving on the interface to a TAP the agent
 * reads — and every frame the agent writes to that TAP out of the interface —
 * with tc's mirred action. tcpdump on the interface still sees both directions.
 *
 * What the agent sends goes out through `tx`, a packet socket on the interface
 * itself: one system call per batch of frames (sendmmsg) and no detour through
 * the TAP and the redirect, per frame. Where it cannot be opened, `tx` is null
 * and frames are written to the TAP (and redirected out) instead.
 *
 * The recorded configuration is kept in `recordFile` so a restarted agent, which
 * finds the address gone, takes over the same way.
 */
export async function takeOverUnderlay(
  dev: string,
  recordFile: string,
): Promise<{ config: UnderlayConfig; tap: TapDevice; tx: PacketSocket | null; txError: unknown }> {
  const [link] = JSON.parse(await run('ip', ['-j', 'addr', 'show', 'dev', dev])) as IpAddrJson[];
  if (!link) throw new Error(`underlay interface ${dev} not found`);
  const v4 = link.addr_info?.find((a) => a.family === 'inet');
  let config: UnderlayConfig;
  if (v4) {
    const routes = JSON.parse(
      await run('ip', ['-j', '-4', 'route', 'show', 'dev', dev]),
    ) as IpRouteJson[];
    config = {
      dev,
      address: v4.local,
      prefixLen: v4.prefixlen,
      mac: link.address,
      mtu: link.mtu,
      gateways: routes.filter((r) => r.gateway).map((r) => parseRouteDst(r.dst, r.gateway!)),
    };
    writeFileSync(recordFile, JSON.stringify(config, null, 2) + '\n');
  } else if (existsSync(recordFile)) {
    config = JSON.parse(readFileSync(recordFile, 'utf8')) as UnderlayConfig;
  } else {
    throw new Error(`underlay interface ${dev} has no IPv4 address to take over`);
  }

  await ip(['link', 'del', 'dev', UPLINK_TAP]).catch(() => undefined);
  const tap = openAgentTap(UPLINK_TAP);
  // The TAP's queue of frames for the agent is the node's NIC receive ring: deep enough to
  // ride out the agent not being scheduled for a few milliseconds on a busy machine while
  // another node's agent writes a burst of segments (a real node's kernel would be running).
  await ip([
    'link',
    'set',
    'dev',
    UPLINK_TAP,
    'mtu',
    String(config.mtu),
    'txqueuelen',
    String(UPLINK_QUEUE_FRAMES),
    'addrgenmode',
    'none',
    'up',
  ]);
  await run('sysctl', ['-q', '-w', `net.ipv6.conf.${dev}.disable_ipv6=1`]).catch(() => undefined);
  await ip(['addr', 'flush', 'dev', dev]);
  await run('tc', ['qdisc', 'del', 'dev', dev, 'ingress']).catch(() => undefined);
  await redirectIngress(dev, UPLINK_TAP);
  await redirectIngress(UPLINK_TAP, dev);
  let tx: PacketSocket | null = null;
  let txError: unknown = null;
  try {
    tx = PacketSocket.open(dev, { vnetHdr: true, sndbufBytes: UPLINK_SNDBUF_BYTES });
  } catch (err) {
    txError = err;
  }
  return { config, tap, tx, txError };
}

/** Gives the interface back to the kernel (a clean agent stop): address, routes, no redirect. */
export async function releaseUnderlay(config: UnderlayConfig): Promise<void> {
  await run('tc', ['qdisc', 'del', 'dev', config.dev, 'ingress']).catch(() => undefined);
  await ip(['link', 'del', 'dev', UPLINK_TAP]).catch(() => undefined);
  await ip(['addr', 'add', `${config.address}/${config.prefixLen}`, 'dev', config.dev]).catch(
    () => undefined,
  );
  for (const g of config.gateways) {
    const dst = g.prefixLen === 0 ? 'default' : `${g.dst}/${g.prefixLen}`;
    await ip(['route', 'replace', dst, 'via', g.via, 'dev', config.dev]).catch(() => undefined);
  }
}

/** `default`, `10.2.0.0/16` or `10.2.0.9` as `ip -j route` prints them. */
function parseRouteDst(dst: string, via: string): UnderlayConfig['gateways'][number] {
  if (dst === 'default') return { dst: '0.0.0.0', prefixLen: 0, via };
  const [addr, len] = dst.split('/');
  return { dst: addr!, prefixLen: len === undefined ? 32 : Number(len), via };
}

/** Every frame arriving on `from` leaves through `to` (tc ingress qdisc, u32 match-all, mirred). */
async function redirectIngress(from: string, to: string): Promise<void> {
  await run('tc', ['qdisc', 'add', 'dev', from, 'ingress']);
  const matchAll = ['protocol', 'all', 'u32', 'match', 'u32', '0', '0'];
  const action = ['action', 'mirred', 'egress', 'redirect', 'dev', to];
  await run('tc', ['filter', 'add', 'dev', from, 'parent', 'ffff:', ...matchAll, ...action]);
}
