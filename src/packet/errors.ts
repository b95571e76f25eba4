/**
 * Outcome of wrapping a view over bytes. A closed set, as in smoltcp's `wire::Error`; the
 * values double as drop reasons (index into {@link parseResultNames} for counters and logs).
 *
 * - `Truncated`: the buffer ends before a header or a length field says it should.
 * - `Malformed`: a field is inconsistent (IHL < 5, total length < header length, bad option
 *   layout, UDP length < 8, TCP data offset < 5, ...).
 * - `Checksum`: a checksum does not verify (only reported by routines that verify, e.g.
 *   {@link FrameParser}; `wrap()` itself never computes checksums).
 * - `Unrecognized`: a valid but unsupported variant (non-Ethernet/IPv4 ARP, unknown EtherType).
 * - `Fragmented`: an IPv4 fragment where a transport header was wanted.
 */
export const ParseResult = {
  Ok: 0,
  Truncated: 1,
  Malformed: 2,
  Checksum: 3,
  Unrecognized: 4,
  Fragmented: 5,
} as const;
export type ParseResult = (typeof ParseResult)[keyof typeof ParseResult];

/** Lower-case names indexed by {@link ParseResult} value. */
export const parseResultNames: readonly string[] = Object.freeze([
  'ok',
  'truncated',
  'malformed',
  'checksum',
  'unrecognized',
  'fragmented',
]);

/** Number of distinct {@link ParseResult} values (size of a per-reason counter array). */
export const PARSE_RESULT_COUNT = 6;
