/**
 * Forced collections for the memory figures of the benchmarks (run them with
 * `node --expose-gc`): `settle()` collects until the heap is as small as it gets.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc');
  process.exit(1);
}

/** Memory usage after four full collections. */
export function settle(): NodeJS.MemoryUsage {
  for (let i = 0; i < 4; i++) gc!();
  return process.memoryUsage();
}
