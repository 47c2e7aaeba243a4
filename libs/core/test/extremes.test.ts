import { describe, expect, it } from 'vitest';
import { maxOf, minOf } from '../src/index.js';

describe('maxOf / minOf', () => {
  it('take any number of values (Math.max(...values) overflowed the stack past ~125,000)', () => {
    const many = Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 300_000);
    expect(() => Math.max(...many)).toThrow(RangeError);
    expect(maxOf(many)).toBe(299_999);
    expect(minOf(many)).toBe(0);
  });

  it('start from the floor or ceiling given, and skip NaN', () => {
    expect(maxOf([])).toBe(Number.NEGATIVE_INFINITY);
    expect(minOf([], 5)).toBe(5);
    expect(maxOf([1, Number.NaN, 3], 2)).toBe(3);
    expect(minOf([Number.NaN, 4], 0)).toBe(0);
  });
});
