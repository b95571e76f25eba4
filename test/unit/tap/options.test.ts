import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { findAddon } from '../../../src/tap/binding.js';
import {
  DEFAULT_ARENA_BYTES,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_FRAME_BYTES_VNET,
  NATIVE_FLAG_MULTI_QUEUE,
  NATIVE_FLAG_VNET_HDR,
  nativeFlags,
  resolveTapOptions,
  validateTapName,
  type TapOpenOptions,
} from '../../../src/tap/options.js';

describe('resolveTapOptions', () => {
  test('defaults', () => {
    assert.deepEqual(resolveTapOptions(), {
      vnetHdr: false,
      multiQueue: false,
      arenaBytes: DEFAULT_ARENA_BYTES,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      maxBatch: DEFAULT_MAX_BATCH,
    });
    assert.equal(DEFAULT_ARENA_BYTES, 1 << 20);
    assert.equal(DEFAULT_MAX_FRAME_BYTES, 9234);
    assert.equal(DEFAULT_MAX_BATCH, 256);
  });

  test('vnetHdr raises the default frame size to a 64 KiB GSO frame', () => {
    const o = resolveTapOptions({ vnetHdr: true });
    assert.equal(o.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES_VNET);
    assert.ok(o.maxFrameBytes >= 65536 + 12);
    assert.equal(o.arenaBytes, DEFAULT_ARENA_BYTES);
  });

  test('explicit values are kept', () => {
    assert.deepEqual(
      resolveTapOptions({ arenaBytes: 4096, maxFrameBytes: 1518, maxBatch: 2, multiQueue: true }),
      { vnetHdr: false, multiQueue: true, arenaBytes: 4096, maxFrameBytes: 1518, maxBatch: 2 },
    );
  });

  test('the default arena grows to hold two maximal frames', () => {
    assert.equal(resolveTapOptions({ maxFrameBytes: 2 << 20 }).arenaBytes, 4 << 20);
  });

  test('invalid values are refused', () => {
    const bad: [TapOpenOptions, ErrorConstructor][] = [
      [{ arenaBytes: 1000, maxFrameBytes: 1518 }, RangeError],
      [{ arenaBytes: 1518, maxFrameBytes: 1518 }, RangeError],
      [{ maxFrameBytes: 10 }, RangeError],
      [{ maxBatch: 0 }, RangeError],
      [{ maxBatch: 1.5 }, TypeError],
      [{ arenaBytes: Number.NaN }, TypeError],
      [{ arenaBytes: 2 ** 31 }, RangeError],
      [{ vnetHdr: 'yes' as unknown as boolean }, TypeError],
    ];
    for (const [opts, type] of bad) {
      assert.throws(() => resolveTapOptions(opts), type, JSON.stringify(opts));
    }
    assert.throws(() => resolveTapOptions(null as unknown as TapOpenOptions), TypeError);
  });

  test('native flags', () => {
    assert.equal(nativeFlags(resolveTapOptions()), 0);
    assert.equal(
      nativeFlags(resolveTapOptions({ vnetHdr: true, multiQueue: true })),
      NATIVE_FLAG_VNET_HDR | NATIVE_FLAG_MULTI_QUEUE,
    );
  });
});

describe('validateTapName', () => {
  test('accepts kernel-style names, empty and %d templates', () => {
    for (const name of ['', 'tap%d', 'cali0123456789a', 'kwt12345', 'eth0']) {
      validateTapName(name);
    }
  });

  test('refuses long or malformed names', () => {
    for (const name of ['cali0123456789ab', 'a/b', 'a b', 'a:b', '.', '..']) {
      assert.throws(() => validateTapName(name), RangeError, name);
    }
    assert.throws(() => validateTapName(42 as unknown as string), TypeError);
  });
});

describe('findAddon', () => {
  test('walks up to the nearest build/Release/kubewire_tap.node', () => {
    const root = mkdtempSync(join(tmpdir(), 'kwtap-unit-'));
    const saved = process.env.KUBEWIRE_TAP_ADDON;
    delete process.env.KUBEWIRE_TAP_ADDON;
    try {
      mkdirSync(join(root, 'build', 'Release'), { recursive: true });
      writeFileSync(join(root, 'build', 'Release', 'kubewire_tap.node'), '');
      const deep = join(root, 'dist', 'src', 'tap');
      mkdirSync(deep, { recursive: true });
      assert.equal(findAddon(deep), join(root, 'build', 'Release', 'kubewire_tap.node'));
      process.env.KUBEWIRE_TAP_ADDON = '/somewhere/else.node';
      assert.equal(findAddon(deep), '/somewhere/else.node');
    } finally {
      if (saved === undefined) delete process.env.KUBEWIRE_TAP_ADDON;
      else process.env.KUBEWIRE_TAP_ADDON = saved;
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('reports a missing build with MODULE_NOT_FOUND', () => {
    const root = mkdtempSync(join(tmpdir(), 'kwtap-unit-'));
    const saved = process.env.KUBEWIRE_TAP_ADDON;
    delete process.env.KUBEWIRE_TAP_ADDON;
    try {
      // /tmp has no build/Release above it (unless someone built in / or /tmp).
      assert.throws(
        () => findAddon(root),
        (err: unknown) => (err as { code?: string }).code === 'MODULE_NOT_FOUND',
      );
    } finally {
      if (saved !== undefined) process.env.KUBEWIRE_TAP_ADDON = saved;
      rmSync(root, { recursive: true, force: true });
    }
  });
});
