import { describe, expect, it } from 'vitest';
import { type Column, columnDistribution } from '../src/index.js';

const numeric = (name: string, values: readonly number[]): Column => ({
  name,
  kind: 'numeric',
  values: Float64Array.from(values),
});

/** The bin edges the labels show, in order: the upper edge of `≤ a`, `(a, b]`, … (not `> z`). */
function shownEdges(labels: readonly string[]): string[] {
  return labels.slice(0, -1).map((l) => l.replace(/^≤ |^\(.*, |\]$/g, ''));
}

describe('numeric bin labels keep neighbouring edges apart (found by a review: 4 significant digits)', () => {
  it('epoch milliseconds: every edge its own exact label (all ten were "1734000000000")', () => {
    const t0 = 1_734_000_000_123;
    const values = Array.from({ length: 1000 }, (_, i) => t0 + i * 3_600_017);
    const { bins } = columnDistribution(numeric('ts', values), numeric('ts', values));
    const edges = shownEdges(bins.map((b) => b.label));
    expect(bins).toHaveLength(10);
    expect(new Set(edges).size).toBe(9);
    expect(bins[0]!.label).toBe(`≤ ${t0 + 100 * 3_600_017}`);
    expect(bins[1]!.label).toBe(`(${t0 + 100 * 3_600_017}, ${t0 + 200 * 3_600_017}]`);
  });

  it('prices 1000.01 … 1000.09: labels as written (all were "1000")', () => {
    const values = Array.from({ length: 10 }, (_, i) => Number((1000 + i / 100).toFixed(2)));
    const { bins } = columnDistribution(numeric('price', values), numeric('price', values));
    expect(bins.map((b) => b.label)).toEqual([
      '≤ 1000.01',
      '(1000.01, 1000.02]',
      '(1000.02, 1000.03]',
      '(1000.03, 1000.04]',
      '(1000.04, 1000.05]',
      '(1000.05, 1000.06]',
      '(1000.06, 1000.07]',
      '(1000.07, 1000.08]',
      '> 1000.08',
    ]);
  });

  it('ordinary values stay short (4 significant digits)', () => {
    const values = Array.from({ length: 100 }, (_, i) => i / 7);
    const labels = columnDistribution(numeric('x', values), numeric('x', values)).bins.map((b) => b.label);
    expect(labels.slice(0, 2)).toEqual(['≤ 1.429', '(1.429, 2.857]']);
  });
});
