import { describe, expect, it } from 'vitest';
import { CompensatedSum, compensatedSum } from '../src/index.js';

describe('compensated sum', () => {
  it('survives catastrophic cancellation where a naive sum loses the small term', () => {
    expect(1e16 + 1 - 1e16).toBe(0);
    expect(compensatedSum([1e16, 1, -1e16])).toBe(1);
  });

  it('sums ten 0.1 to exactly 1 (the naive sum gives 0.9999999999999999)', () => {
    const tenths = Array.from({ length: 10 }, () => 0.1);
    expect(tenths.reduce((a, b) => a + b, 0)).toBe(0.9999999999999999);
    expect(compensatedSum(tenths)).toBe(1);
  });

  it('accumulates incrementally, whatever the order of magnitudes', () => {
    const s = new CompensatedSum();
    for (const v of [1, 1e100, 1, -1e100]) s.add(v);
    expect(s.value()).toBe(2);
    expect(new CompensatedSum().value()).toBe(0);
  });
});
