/**
 * Wire formats of kubewire's forwarder, after smoltcp's `wire` module: for each protocol a
 * reusable zero-copy view (`XxxView`: `wrap(buf, offset, length)` checks lengths once and returns
 * a {@link ParseResult}, never throws; getters/setters read and write the Buffer directly; setters
 * of checksummed fields update the checksum incrementally, RFC 1624) and `emitXxx` builders.
 *
 * Hot-path conventions: IPv4 addresses are unsigned 32-bit numbers, MACs 6-byte Uint8Arrays;
 * `wrap()`, getters, setters, NAT rewrites and {@link FrameParser.parse} allocate nothing. (One
 * V8 caveat for callers: a number >= 2^30, such as most IPv4 addresses, handed to a function
 * V8 does not inline is boxed in a short-lived heap number; the NAT helpers keep addresses out
 * of their own internal calls for that reason.)
 *
 * Layers: errors, addr, checksum → ethernet, arp, ipv4 → ipip, icmp, udp, tcp → nat, classify.
 */
export * from './errors.js';
export * from './addr.js';
export * from './checksum.js';
export * from './ethernet.js';
export * from './arp.js';
export * from './ipv4.js';
export * from './ipip.js';
export * from './icmp.js';
export * from './udp.js';
export * from './tcp.js';
export * from './nat.js';
export * from './classify.js';
