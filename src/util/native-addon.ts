// Locating and loading this project's N-API addons (built by node-gyp from binding.gyp
// at the repo root into build/Release/).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The addon `fileName`: $`envVar` if set, else build/Release/`fileName` in the nearest
 * ancestor of `startDir` that has one (src/<part>/ when run from sources, dist/src/<part>/
 * when compiled). Throws MODULE_NOT_FOUND saying how to build it.
 */
export function findNativeAddon(fileName: string, envVar: string, startDir: string): string {
  const override = process.env[envVar];
  if (override) return override;
  const relative = join('build', 'Release', fileName);
  let dir = startDir;
  for (;;) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw Object.assign(
    new Error(
      `${fileName} not found in any build/Release above ${startDir}; ` +
        'build it with `npm run build:native` (node-gyp rebuild)',
    ),
    { code: 'MODULE_NOT_FOUND' },
  );
}

/** A loader that requires the addon once, on first use (importing never needs the build). */
export function lazyNativeAddon<T>(find: () => string): () => T {
  let binding: T | undefined;
  return () => {
    if (binding === undefined) binding = createRequire(import.meta.url)(find()) as T;
    return binding;
  };
}
