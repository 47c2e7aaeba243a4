import { describe, expect, it } from 'vitest';
import { narrowFloatValue } from '../src/float-width.js';
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
