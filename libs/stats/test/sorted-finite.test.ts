import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { sortedFinite } from '../src/index.js';

/** The reference: drop non-finite values, native typed-array sort. */
function expected(values: readonly number[]): Float64Array {
  return Float64Array.from(values.filter((v) => Number.isFinite(v))).sort();
}

function sameBits(a: Float64Array, b: Float64Array): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Object.is(a[i], b[i]), `index ${i}: ${a[i]} vs ${b[i]}`).toBe(true);
}

describe('sortedFinite (counting sort for few distinct values, native sort otherwise)', () => {
  const rng = new SeededRandom(7);
  const cases: Record<string, number[]> = {
    'few integers with missing values': Array.from({ length: 5000 }, () =>
      rng.uniform() < 0.1 ? Number.NaN : rng.int(7),
    ),
    'signed zeros among few values': Array.from({ length: 2000 }, () => [0, -0, 1, -1, 0.5][rng.int(5)]!),
    'exactly 256 distinct': Array.from({ length: 4000 }, () => rng.int(256) - 100),
    '257 distinct (comparison sort)': Array.from({ length: 4000 }, (_, i) => (i < 257 ? i : rng.int(257)) * -1.5),
    'continuous with infinities': Array.from({ length: 3000 }, (_, i) =>
      i % 100 === 0 ? Number.POSITIVE_INFINITY : rng.normal() * 1e3,
    ),
  };
  for (const [name, values] of Object.entries(cases)) {
    it(name, () => sameBits(sortedFinite(values), expected(values)));
  }
  it('a sorted input comes back as is', () => {
    sameBits(sortedFinite([1, 2, 2, 3]), Float64Array.of(1, 2, 2, 3));
  });
});
