import { AGENT_OFFLOADS, VNET_HDR_LEN } from '../dataplane/vnet.js';
import { TapDevice } from '../tap/index.js';

/**
 * Every TAP of the agent is opened the same way: with the virtio-net header,
 * and checksum + TCP segmentation offload accepted, so the kernels on the other
 * side (pods, the node, the underlay) hand over 64 KiB TCP segments instead of
 * MTU-sized frames. The read arena holds up to ~30 such segments per wake-up.
 */
export const AGENT_VNET_HDR = VNET_HDR_LEN;

export function openAgentTap(name: string): TapDevice {
  const tap = TapDevice.open(name, { vnetHdr: true, arenaBytes: 2 * 1024 * 1024 });
  if (tap.vnetHdrBytes !== AGENT_VNET_HDR) {
    tap.close();
    throw new Error(
      `TAP ${name}: expected a ${AGENT_VNET_HDR}-byte virtio header, got ${tap.vnetHdrBytes}`,
    );
  }
  tap.setOffload(AGENT_OFFLOADS);
  return tap;
}
