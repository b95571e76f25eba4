import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CalicoSelectorError,
  matchesCalicoSelector,
  matchesLabelSelector,
  parseCalicoSelector,
} from '../../../src/cluster/index.js';

describe('Calico selectors', () => {
  const labels = { zone: 'a', 'kubernetes.io/os': 'linux', gpu: '' };
  const cases: [string, boolean][] = [
    ['', true],
    ['all()', true],
    ["zone == 'a'", true],
    ['zone == "b"', false],
    ["zone != 'b'", true],
    ["missing != 'x'", true],
    ["missing == 'x'", false],
    ['has(gpu)', true],
    ['!has(gpu)', false],
    ['!has(missing)', true],
    ["kubernetes.io/os == 'linux' && zone == 'a'", true],
    ["zone == 'b' || has(gpu)", true],
    ["zone == 'b' || zone == 'c' && has(gpu)", false],
    ["(zone == 'b' || zone == 'a') && !has(missing)", true],
    ['!(has(gpu))', false],
  ];
  for (const [text, expected] of cases) {
    it(`${JSON.stringify(text)} → ${expected}`, () => {
      assert.equal(matchesCalicoSelector(parseCalicoSelector(text), labels), expected);
    });
  }

  it('&& binds tighter than ||', () => {
    assert.deepEqual(parseCalicoSelector("a == 'x' || b == 'y' && has(c)"), {
      op: 'or',
      exprs: [
        { op: 'eq', key: 'a', value: 'x' },
        {
          op: 'and',
          exprs: [
            { op: 'eq', key: 'b', value: 'y' },
            { op: 'has', key: 'c' },
          ],
        },
      ],
    });
  });

  for (const [text, pattern] of [
    ["zone in {'a'}", /unsupported operator "in"/],
    ["zone not in {'a'}", /unsupported operator "not in"/],
    ["zone contains 'a'", /unsupported operator "contains"/],
    ["zone starts with 'a'", /unsupported operator "starts with"/],
    ['global()', /unsupported function "global\(\)"/],
    ["zone == 'a", /unterminated string/],
    ['zone == a', /expected a quoted string/],
    ["(zone == 'a'", /expected '\)'/],
    ["zone == 'a' extra", /unexpected input/],
  ] as [string, RegExp][]) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      assert.throws(
        () => parseCalicoSelector(text),
        (e: unknown) =>
          e instanceof CalicoSelectorError &&
          pattern.test(e.message) &&
          /kubewire supports/.test(e.message),
      );
    });
  }
});

describe('label selectors', () => {
  const labels = { app: 'web', tier: 'front' };
  it('matchLabels and matchExpressions', () => {
    assert.equal(matchesLabelSelector({}, labels), true);
    assert.equal(matchesLabelSelector({ matchLabels: { app: 'web' } }, labels), true);
    assert.equal(matchesLabelSelector({ matchLabels: { app: 'db' } }, labels), false);
    assert.equal(
      matchesLabelSelector(
        { matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] },
        labels,
      ),
      true,
    );
    assert.equal(
      matchesLabelSelector(
        { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] },
        labels,
      ),
      false,
    );
    assert.equal(
      matchesLabelSelector(
        { matchExpressions: [{ key: 'x', operator: 'NotIn', values: ['front'] }] },
        labels,
      ),
      true,
    );
    assert.equal(
      matchesLabelSelector({ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, labels),
      true,
    );
    assert.equal(
      matchesLabelSelector(
        { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] },
        labels,
      ),
      false,
    );
  });
});
