import { describe, expect, it } from 'vitest';
import { uuidV4Source } from '../src/uuid.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('uuidV4Source', () => {
  it('makes version-4 UUIDs, all distinct, across many refills of its pool', () => {
    const next = uuidV4Source(3);
    const ids = Array.from({ length: 20_000 }, () => next());
    for (const id of ids) expect(id).toMatch(V4);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('leaves every other bit random: each free hex digit takes all 16 values, about evenly', () => {
    const next = uuidV4Source();
    const n = 16_000;
    const counts = Array.from({ length: 36 }, () => new Map<string, number>());
    for (let k = 0; k < n; k++) {
      const id = next();
      for (let i = 0; i < 36; i++) counts[i]!.set(id[i]!, (counts[i]!.get(id[i]!) ?? 0) + 1);
    }
    for (let i = 0; i < 36; i++) {
      if ([8, 13, 18, 23].includes(i)) expect([...counts[i]!.keys()]).toEqual(['-']);
      else if (i === 14) expect([...counts[i]!.keys()]).toEqual(['4']);
      else if (i === 19) expect([...counts[i]!.keys()].sort()).toEqual(['8', '9', 'a', 'b']);
      else {
        expect(counts[i]!.size).toBe(16);
        // 1,000 expected per digit; 5 standard deviations is ±150.
        for (const c of counts[i]!.values()) expect(Math.abs(c - n / 16)).toBeLessThan(150);
      }
    }
    // The variant digit: 4,000 expected for each of 8, 9, a, b.
    for (const c of counts[19]!.values()) expect(Math.abs(c - n / 4)).toBeLessThan(300);
  });

  it('refuses a pool that is not a positive integer', () => {
    expect(() => uuidV4Source(0)).toThrow(/pool must be a positive integer/);
    expect(() => uuidV4Source(1.5)).toThrow(/pool must be a positive integer/);
  });
});
