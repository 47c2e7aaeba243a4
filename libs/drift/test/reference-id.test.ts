import { atFloatWidth, buildNumericProfile, buildReferenceProfile, type NumericProfileOptions } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { referenceSet } from '../src/index.js';

describe('referenceSet id and float widths', () => {
  const values = [0.1, 0.2, 0.3, 0.7, 0.9].map((x) => atFloatWidth(Math.fround(x), 32));
  const color = buildReferenceProfile(['red', 'blue', 'red']);
  /** The set of model m v1 with feature x profiled from `xs` and `color`, in either insertion order. */
  const setOf = (xs: number[], options: NumericProfileOptions = {}, colorFirst = false) => {
    const x = ['x', buildNumericProfile(xs, options)] as const;
    const c = ['color', color] as const;
    return referenceSet('m', 'v1', new Map(colorFirst ? [c, x] : [x, c]));
  };

  it('a set saved again with a float width is a new reference (the monitors reload on a new id only)', () => {
    const plain = setOf(values);
    const f32 = setOf(values, { floatBits: 32 });
    const f16 = setOf(values, { floatBits: 16 });
    // The profiles' own ids are the same (older readers check them against the content)...
    expect(f32.profiles.map((p) => p.id)).toEqual(plain.profiles.map((p) => p.id));
    // ...the sets' are not.
    expect(new Set([plain.referenceId, f32.referenceId, f16.referenceId]).size).toBe(3);
  });

  it('keeps the id of a set without widths: the same content, the same id', () => {
    expect(setOf([...values].reverse(), {}, true).referenceId).toBe(setOf(values).referenceId);
  });
});
