/**
 * Connection tracking with NAT bindings (Linux nf_conntrack / nf_nat). See README.md.
 */
export * from './conntrack.js';
export * from './format.js';
export * from './timeouts.js';
export { partialChecksumAddDelta, natManipPacket, MANIP_SRC, MANIP_DST } from './manip.js';
export {
  TcpState,
  tcpStateNames,
  tcpTransition,
  tcpFlagClass,
  tcpFlagClassNames,
  TCP_SYN_SET,
  TCP_SYNACK_SET,
  TCP_FIN_SET,
  TCP_ACK_SET,
  TCP_RST_SET,
  TCP_NONE_SET,
  S_IV,
  S_IG,
} from './tcp.js';
