import { describe, expect, it } from 'vitest';
import { backoffDelay, defaultBackoff } from '../src/backoff.js';

describe('backoffDelay', () => {
  const noJitter = { ...defaultBackoff, jitter: 0 };

  it('grows exponentially from the initial delay and caps at the maximum', () => {
    expect([0, 1, 2, 3].map((a) => backoffDelay(noJitter, a))).toEqual([100, 200, 400, 800]);
    expect(backoffDelay(noJitter, 50)).toBe(10_000);
  });

  it('keeps jitter within its share of the delay', () => {
    expect(backoffDelay(defaultBackoff, 3, () => 0)).toBe(640);
    expect(backoffDelay(defaultBackoff, 3, () => 1)).toBe(960);
  });
});
