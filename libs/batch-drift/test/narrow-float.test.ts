import { createSummary, ksFromSummary, type NumericReferenceProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import type { Column } from '../src/columns.js';
import { floatColumnsAtWidth } from '../src/narrow-float.js';
import { profilesFromColumns } from '../src/reference-profiles.js';

describe('floatColumnsAtWidth: every spelling of float32 data is one number', () => {
  const numeric = (name: string, values: number[], extra: Partial<Extract<Column, { kind: 'numeric' }>> = {}) =>
    ({ name, kind: 'numeric', values: Float64Array.from(values), ...extra }) as Column;
  const valuesOf = (c: Column) => Array.from(c.values as Float64Array);
  const f32 = (xs: number[]) => xs.map((x) => Math.fround(x));

  it('a float32 column against its float64 upcast, its CSV digits or another float64 spelling reads 0.1', () => {
    const typed = numeric('x', f32([0.1, 19.99, 1.1, Number.NaN]), { float: 32 });
    for (const other of [
      numeric('x', f32([0.1, 19.99, 1.1, Number.NaN])), // astype(float)
      numeric('x', [0.1, 19.99, 1.1, Number.NaN]), // pandas' CSV, or a float64 pipeline
      numeric('x', [Math.fround(0.1), 19.99, Math.fround(1.1), Number.NaN]), // a concat of both
    ]) {
      for (const [a, b] of [floatColumnsAtWidth([typed], [other]), floatColumnsAtWidth([other], [typed])]) {
        expect(valuesOf(a[0]!)).toEqual([0.1, 19.99, 1.1, Number.NaN]);
        expect(valuesOf(b[0]!)).toEqual([0.1, 19.99, 1.1, Number.NaN]);
        expect('float' in a[0]! || 'float' in b[0]!).toBe(false);
        // A second call changes nothing.
        expect(floatColumnsAtWidth(a, b)).toEqual([a, b]);
      }
    }
  });

  it('a float64 partner is compared at float32 precision; what float32 cannot hold is kept', () => {
    const typed = numeric('x', f32([0.1]), { float: 32 });
    const other = numeric('x', [0.123456789012, 1e39, -1e39, Number.POSITIVE_INFINITY, 2 ** 30, 1e-50, -0]);
    const [, [b]] = floatColumnsAtWidth([typed], [other]);
    expect(valuesOf(b!)).toEqual([0.12345679, 1e39, -1e39, Number.POSITIVE_INFINITY, 1073741800, 0, -0]);
    expect(Object.is(valuesOf(b!)[6], -0)).toBe(true);
    // float16 against float32: at float16.
    const half = numeric('h', [0.0999755859375], { float: 16 });
    const [, [c]] = floatColumnsAtWidth([half], [numeric('h', f32([0.1]), { float: 32 })]);
    expect(valuesOf(c!)).toEqual([0.1]);
  });

  it('without a float32 side only widened float32 values move: integers, short decimals, float16 guesses stay', () => {
    const a = numeric('x', [Math.fround(0.1), 0.1, 2 ** 30, 0.5, 1 / 64, 2 ** -20 + 2 ** -50, 7]);
    const b = numeric('x', [1, 2, 3, 4, 5, 6, 7]);
    const [[x], [y]] = floatColumnsAtWidth([a], [b]);
    expect(valuesOf(x!)).toEqual([0.1, 0.1, 2 ** 30, 0.5, 1 / 64, 2 ** -20 + 2 ** -50, 7]);
    expect(y).toBe(b);
    // Integer text and time columns are never touched, even beside a float32 column.
    const ids = numeric('id', [2 ** 30 + 2], { integerText: true });
    const when = numeric('t', [Math.fround(0.1)], { time: 'timestamp' });
    const [[i, t]] = floatColumnsAtWidth([ids, when], []);
    expect(i).toBe(ids);
    expect(t).toBe(when);
  });
});

describe('profilesFromColumns: the width goes with the profile', () => {
  const column = (name: string, values: number[], float?: 16 | 32) =>
    ({ name, kind: 'numeric', values: Float64Array.from(values), ...(float ? { float } : {}) }) as Column;

  it('a float32 column’s profile reads a live widened float32 as its reference digits; a float64 one keeps the doubles', () => {
    const rating = Array.from({ length: 900 }, (_, i) => Math.fround(((i % 9) + 1) / 10));
    const profiles = profilesFromColumns([column('r32', rating, 32), column('r64', rating)]);
    const r32 = profiles.get('r32') as NumericReferenceProfile;
    const r64 = profiles.get('r64') as NumericReferenceProfile;
    expect(r32.floatBits).toBe(32);
    expect(r32.cuts).toContain(0.1);
    expect(r64.floatBits).toBeUndefined();
    expect(r64.cuts).toContain(Math.fround(0.1));
    // numpy's tolist() of the float32 data, sent live: the same numbers to both profiles.
    for (const profile of [r32, r64]) {
      expect(ksFromSummary(profile, createSummary(profile).addAll(rating)).statistic).toBe(0);
    }
    // And the shortest digits sent live (a float64 pipeline of the same data) to the float32 profile.
    const digits = rating.map((x) => Number(x.toPrecision(7)));
    expect(ksFromSummary(r32, createSummary(r32).addAll(digits)).statistic).toBe(0);
  });
});
