/** The netfilter engine: iptables syntax in, iptables-save out, rule evaluation at the hooks. */
export {
  Netfilter,
  TABLE_BUILTINS,
  MIN_INDEX_RUN,
  type NetfilterOptions,
  type TableName,
  type TraceEvent,
} from './netfilter.js';
export { IptablesError } from './errors.js';
export { IpSetStore, IpsetError, type IpSetType } from './ipset.js';
export { formatLogLine } from './log.js';
export type { CtTuple } from './ext.js';
export * from './packet-meta.js';
