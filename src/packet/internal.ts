/** Helpers shared by the views; not part of the public API (not re-exported by index.ts). */

/**
 * Common bounds check of every `wrap()`: the view `[offset, offset + length)` must lie inside
 * `buf`. Written so that NaN and non-integers fail too.
 */
export function rangeOk(buf: Uint8Array, offset: number, length: number): boolean {
  return (
    offset >= 0 &&
    length >= 0 &&
    offset + length <= buf.length &&
    (offset | 0) === offset &&
    (length | 0) === length
  );
}

/** Shared empty buffer that unwrapped views point at. */
export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);
