import { describe, expect, it } from 'vitest';
import type { Column } from '../src/columns.js';
import { floatColumnsAtWidth, narrowFloatValue } from '../src/narrow-float.js';
import { floatText } from '../src/number-text.js';

describe('narrowFloatValue', () => {
  it('is the number of floatText (numpy’s shortest digits) for random float32 bits, powers of two and ties', () => {
    // A seeded LCG over all 32-bit patterns, and the values where the fast path hands over.
    let seed = 12345;
    const bits = new Uint32Array(1);
    const word = new Float32Array(bits.buffer);
    const values: number[] = [19.99, 0.1, 2 ** -149, 2 ** 127, 16_777_216, 0.5, 1.5, 2.5, 4047751.25, -Math.PI];
    for (let i = 0; i < 20_000; i++) {
      seed = (Math.imul(seed, 1_664_525) + 1_013_904_223) >>> 0;
      bits[0] = seed;
      values.push(word[0]!);
    }
    const wrong = values
      .map((x) => Math.fround(x))
      .filter((x) => Number.isFinite(x) && x !== 0 && narrowFloatValue(x, 32) !== Number(floatText(x, 32)));
    expect(wrong).toEqual([]);
    expect(narrowFloatValue(Math.fround(19.99), 32)).toBe(19.99);
    expect(Object.is(narrowFloatValue(-0, 32), -0)).toBe(true);
    expect(narrowFloatValue(Number.NEGATIVE_INFINITY, 32)).toBe(Number.NEGATIVE_INFINITY);
  });

  it('is the number of floatText for float16 values (every fifth bit pattern)', () => {
    const wrong: number[] = [];
    for (let b = 1; b < 0x7c00; b += 5) {
      const e = b >> 10;
      const m = b & 0x3ff;
      const x = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
      if (narrowFloatValue(x, 16) !== Number(floatText(x, 16))) wrong.push(x);
      if (narrowFloatValue(-x, 16) !== -narrowFloatValue(x, 16)) wrong.push(-x);
    }
    expect(wrong).toEqual([]);
  });
});

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
