import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import {
  chiSquareCategorical,
  chiSquareGoodnessOfFit,
  chiSquareHomogeneity,
  DEFAULT_PSI_EPSILON,
  GridIndex,
  jensenShannon,
  jensenShannonNumeric,
  missingRate,
  nextDown,
  OTHER_CATEGORY,
  outOfRangeShare,
  psiCategorical,
  psiFromShares,
  psiNumeric,
  quantileEdges,
  wassersteinDistance,
} from '../src/index.js';

const range = (n: number, f: (i: number) => number = (i) => i) => Array.from({ length: n }, (_, i) => f(i));

describe('psi', () => {
  it('follows Σ (c − r)·ln(c / r)', () => {
    const expected = (0.25 - 0.5) * Math.log(0.25 / 0.5) + (0.75 - 0.5) * Math.log(0.75 / 0.5);
    expect(psiFromShares([0.5, 0.5], [0.25, 0.75])).toBeCloseTo(expected, 15);
    expect(psiFromShares([0.2, 0.8], [0.2, 0.8])).toBe(0);
  });

  it('replaces empty bins by the documented epsilon', () => {
    const e = DEFAULT_PSI_EPSILON;
    const expected = (1 - 0.5) * Math.log(1 / 0.5) + (e - 0.5) * Math.log(e / 0.5);
    expect(psiFromShares([0.5, 0.5], [1, 0])).toBeCloseTo(expected, 14);
    expect(psiFromShares([0.5, 0.5], [1, 0], 1e-6)).toBeGreaterThan(psiFromShares([0.5, 0.5], [1, 0]));
  });

  it('bins numbers at reference deciles, right-closed, with open outer bins', () => {
    const ref = range(101); // 0..100: deciles 10, 20, …, 90
    expect(Array.from(quantileEdges(Float64Array.from(ref), 10))).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90]);
    const r = psiNumeric(ref, [-50, 10, 10.5, 200]);
    expect(r.currentShares).toEqual([0.5, 0.25, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 0.25]);
    expect(r.referenceShares[0]).toBeCloseTo(11 / 101, 15);
  });

  it('deduplicates edges on discrete data and is 0 for the same distribution', () => {
    const ref = range(1000, (i) => i % 3);
    const r = psiNumeric(ref, [...ref].reverse());
    expect(r.edges).toEqual([0, 1, 2]);
    expect(r.value).toBeCloseTo(0, 15);
  });

  it('all-equal reference: bins below, at and above it; a different constant current is maximal drift', () => {
    const same = psiNumeric([4, 4, 4, 4], [4, 4]);
    expect(same.edges).toEqual([nextDown(4), 4]);
    expect(nextDown(4)).toBeLessThan(4);
    expect(nextDown(4) + (4 - nextDown(4)) / 2).toBe(4); // no double between them
    expect(same.value).toBe(0);
    expect(psiNumeric([4, 4, 4, 4], [5, 5]).value).toBeGreaterThan(8);
  });

  it('returns NaN for an empty current window and throws for an empty reference', () => {
    expect(psiNumeric([1, 2, 3], []).value).toBeNaN();
    expect(psiNumeric([1, 2, 3], [Number.NaN, null]).value).toBeNaN();
    expect(psiCategorical(['a'], []).value).toBeNaN();
    expect(() => psiNumeric([], [1])).toThrow(DriftlineError);
    expect(() => psiNumeric([1, 2], [1], { bins: 0 })).toThrow(/bins/);
  });

  it('puts unseen categories into the other bucket', () => {
    const r = psiCategorical(['a', 'a', 'b', null], ['a', 'c', 'd', 'b']);
    expect(r.labels).toEqual(['a', 'b', OTHER_CATEGORY]);
    expect(r.currentShares).toEqual([0.25, 0.25, 0.5]);
    expect(r.referenceShares).toEqual([2 / 3, 1 / 3, DEFAULT_PSI_EPSILON]);
  });

  it('evidently binning: per-value keys up to 20 distinct reference values, Evidently zero fill', () => {
    const r = psiNumeric([1, 1, 2, 2], [1, 3, 3, 3], { binning: 'evidently' });
    expect(r.labels).toEqual(['1', '2', '3']);
    // Reference has no 3: min non-zero share 0.5 > 1e-4, so zeros become 1e-4.
    expect(r.referenceShares).toEqual([0.5, 0.5, 1e-4]);
    expect(r.currentShares).toEqual([0.25, 1e-4, 0.75]);
  });

  it('values spanning more than the largest double: quantile edges stay finite and ordered; evidently binning refuses in one line', () => {
    const ref = [...range(30), -1.7e308, 1.7e308];
    const edges = Array.from(quantileEdges(Float64Array.from(ref).sort(), 10));
    expect(edges).toHaveLength(9);
    expect(edges.every((e, i) => Number.isFinite(e) && (i === 0 || e > edges[i - 1]!))).toBe(true);
    const wide = quantileEdges(Float64Array.from([-1.7e308, 1.7e308]), 4);
    expect(Array.from(wide, (e) => e / 1e308)).toEqual([
      expect.closeTo(-0.85, 12),
      expect.closeTo(0, 12),
      expect.closeTo(0.85, 12),
    ]);
    expect(Number.isFinite(psiNumeric(ref, [1, 2, 3]).value)).toBe(true);
    const evidently = () => psiNumeric(ref, [1, 2, 3], { binning: 'evidently' });
    expect(evidently).toThrow(DriftlineError);
    expect(evidently).toThrow(/span more than the largest double/);
  });
});

describe('GridIndex', () => {
  it('finds the same slots as a binary search on a grid narrower than 1e-305 (its scale overflows)', () => {
    for (const cuts of [
      [0, 1e-310, 2e-310, 3e-310],
      [1, 1 + 2 ** -52, 1 + 2 ** -51],
      [0, 1, 2, 3],
    ]) {
      const grid = new GridIndex(Float64Array.from(cuts));
      const probes = [...cuts, ...cuts.slice(1).map((c, i) => (c + cuts[i]!) / 2), cuts[0]! - 1, cuts.at(-1)! + 1];
      for (const x of probes)
        expect(grid.lowerBound(x)).toBe(
          cuts.findIndex((c) => c >= x) === -1 ? cuts.length : cuts.findIndex((c) => c >= x),
        );
    }
  });
});

describe('distances', () => {
  it('wasserstein matches scipy on textbook cases', () => {
    expect(wassersteinDistance([0, 1, 3], [5, 6, 8])).toBeCloseTo(5, 15);
    expect(wassersteinDistance([0, 1], [0, 1])).toBe(0);
    expect(wassersteinDistance([1, 1, 1], [2])).toBe(1);
    expect(wassersteinDistance([1], [])).toBeNaN();
  });

  it('jensen-shannon over probability vectors (natural log and base 2)', () => {
    expect(jensenShannon([1, 0, 0], [0, 1, 0])).toBeCloseTo(Math.sqrt(Math.log(2)), 15);
    expect(jensenShannon([1, 0, 0], [0, 1, 0], 2)).toBeCloseTo(1, 15);
    expect(jensenShannon([2, 2], [5, 5])).toBe(0);
    expect(jensenShannon([0, 0], [1, 1])).toBeNaN();
    expect(() => jensenShannon([1], [1, 2])).toThrow(DriftlineError);
  });

  it('jensen-shannon on binned numbers is 0 for the same sample and NaN for an empty one', () => {
    const x = range(500, (i) => Math.sin(i));
    expect(jensenShannonNumeric(x, x)).toBe(0);
    expect(jensenShannonNumeric(x, [])).toBeNaN();
  });
});

describe('chi-square', () => {
  it('homogeneity test on a 2×K table (scipy chi2_contingency, correction=False)', () => {
    // Table [[10, 20, 30], [20, 20, 20]]: statistic from expected = row·col/total.
    const r = chiSquareHomogeneity([10, 20, 30], [20, 20, 20]);
    expect(r.dof).toBe(2);
    expect(r.statistic).toBeCloseTo(5.333333333333333, 12);
    expect(r.pValue).toBeCloseTo(Math.exp(-r.statistic / 2), 14);
  });

  it('drops empty columns, and a single column means no evidence', () => {
    expect(chiSquareHomogeneity([10, 0, 5], [4, 0, 2]).dof).toBe(1);
    expect(chiSquareHomogeneity([10, 0], [3, 0])).toEqual({ statistic: 0, pValue: 1, dof: 0 });
    expect(chiSquareHomogeneity([10, 5], [0, 0]).pValue).toBeNaN();
  });

  it('goodness of fit is infinite for a category the reference lacks', () => {
    expect(chiSquareGoodnessOfFit([5, 5], [1, 0])).toMatchObject({ statistic: Number.POSITIVE_INFINITY, pValue: 0 });
  });

  it('categorical helper groups unseen categories under other', () => {
    const r = chiSquareCategorical(['a', 'a', 'b', 'b'], ['a', 'b', 'z', 'y']);
    expect(r.dof).toBe(2);
  });
});

describe('data quality', () => {
  it('missing rate counts null, undefined and NaN', () => {
    expect(missingRate([1, null, Number.NaN, undefined, 5])).toBe(0.6);
    expect(missingRate(['a', null])).toBe(0.5);
    expect(missingRate([])).toBeNaN();
  });

  it('out-of-range share over present values, infinities outside', () => {
    expect(outOfRangeShare([0, 5, 10, 11, -1, Number.NaN, Number.POSITIVE_INFINITY], 0, 10)).toBe(0.5);
    expect(outOfRangeShare([null], 0, 1)).toBeNaN();
  });
});
