import { describe, expect, it } from 'vitest';
import { numericBinLabels } from '../src/index.js';

describe('numericBinLabels keeps neighbouring edges apart (found by a review: 4 significant digits)', () => {
  it('epoch milliseconds: exact, distinct labels (all were "1734000000000")', () => {
    const edges = [1_734_000_000_123, 1_734_000_360_456, 1_734_000_720_789];
    expect(numericBinLabels(edges)).toEqual([
      '≤ 1734000000123',
      '(1734000000123, 1734000360456]',
      '(1734000360456, 1734000720789]',
      '> 1734000720789',
    ]);
  });

  it('1000.01 … 1000.09: as written (all were "1000"); ordinary edges keep 4 digits', () => {
    const edges = Array.from({ length: 9 }, (_, i) => Number((1000.01 + i / 100).toFixed(2)));
    const labels = numericBinLabels(edges);
    expect(labels[0]).toBe('≤ 1000.01');
    expect(labels.slice(1, -1)).toEqual(edges.slice(1).map((e, j) => `(${edges[j]}, ${e}]`));
    expect(labels.at(-1)).toBe('> 1000.09');
    expect(numericBinLabels([1 / 3, 2 / 3, 1000.001, 1000.002])).toEqual([
      '≤ 0.3333',
      '(0.3333, 0.6667]',
      '(0.6667, 1000.001]',
      '(1000.001, 1000.002]',
      '> 1000.002',
    ]);
  });
});
