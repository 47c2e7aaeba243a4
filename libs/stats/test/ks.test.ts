import { readFileSync } from 'node:fs';
import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import {
  chi2Sf,
  KS_EXACT_P_BUDGET,
  KsExactBudget,
  ks2samp,
  ksAsymptoticPValue,
  ksExactCells,
  ksPValue,
  kstwoSf,
  logGamma,
} from '../src/index.js';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/expected.json', import.meta.url), 'utf8')) as {
  kstwo_sf: { n: number; d: number; sf: number }[];
  chi2_sf: { df: number; x: number; sf: number }[];
};

function relErr(actual: number, expected: number): number {
  if (actual === expected) return 0;
  return Math.abs(actual - expected) / Math.abs(expected);
}

describe('ks2samp', () => {
  it('separated samples: D = 1, exact p = 2/C(6,3)', () => {
    const r = ks2samp([1, 2, 3], [4, 5, 6]);
    expect(r.statistic).toBe(1);
    expect(r.method).toBe('exact');
    expect(r.pValue).toBeCloseTo(0.1, 15);
    expect(r.sign).toBe(1);
  });

  it('identical samples: D = 0, p = 1', () => {
    const r = ks2samp([3, 1, 2], [1, 2, 3]);
    expect(r.statistic).toBe(0);
    expect(r.pValue).toBe(1);
  });

  it('handles ties with right-continuous ECDFs', () => {
    // F_a: 1→0.5, 2→1; F_b: 1→0.25, 2→0.75, 3→1.
    const r = ks2samp([1, 1, 2, 2], [1, 2, 2, 3]);
    expect(r.statistic).toBe(0.25);
    expect(r.pValue).toBe(1);
  });

  it('all-equal values: same constant gives 0, different constants give 1', () => {
    expect(ks2samp([5, 5, 5], [5, 5]).statistic).toBe(0);
    const r = ks2samp([5, 5, 5], [7, 7]);
    expect(r.statistic).toBe(1);
    expect(r.sign).toBe(1);
    expect(ks2samp([7, 7], [5, 5, 5]).sign).toBe(-1);
  });

  it('drops NaN, null and infinities before testing', () => {
    const clean = ks2samp([0.1, 0.5, 0.9, 1.3], [0.2, 0.4, 2.0]);
    const dirty = ks2samp([0.1, Number.NaN, 0.5, null, 0.9, 1.3, Number.POSITIVE_INFINITY], [0.2, undefined, 0.4, 2.0]);
    expect(dirty).toEqual(clean);
  });

  it('rejects an empty sample', () => {
    expect(() => ks2samp([], [1, 2])).toThrow(DriftlineError);
    expect(() => ks2samp([Number.NaN], [1, 2])).toThrow(/finite/);
  });

  it("switches to the asymptotic method above 10,000 rows in 'auto'", () => {
    const a = Array.from({ length: 10001 }, (_, i) => i);
    const b = Array.from({ length: 50 }, (_, i) => i * 200 + 0.5);
    expect(ks2samp(a, b).method).toBe('asymp');
    expect(ks2samp(a.slice(0, 10000), b).method).toBe('exact');
    expect(ks2samp(a.slice(0, 100), b, 'asymp').method).toBe('asymp');
  });

  it('asymptotic p-value uses round-half-even of the effective size', () => {
    // n1 = n2 = 15 gives en = 7.5, which numpy rounds to 8.
    expect(ksAsymptoticPValue(0.4, 15, 15)).toBe(kstwoSf(0.4, 8));
  });
});

describe('kstwo survival function against scipy.stats.kstwo.sf', () => {
  it('matches every grid point within 1e-9 relative (or 1e-300 absolute)', () => {
    let worst = 0;
    expect(fixture.kstwo_sf.length).toBeGreaterThan(300);
    for (const { n, d, sf } of fixture.kstwo_sf) {
      const got = kstwoSf(d, n);
      const err = sf < 1e-300 ? Math.abs(got - sf) : relErr(got, sf);
      // Written so that NaN fails too (NaN > 1e-9 is false: a NaN answer passed).
      if (!(err <= 1e-9)) throw new Error(`kstwo.sf(${d}, ${n}): got ${got}, scipy ${sf}`);
      worst = Math.max(worst, err);
    }
    console.info('kstwo.sf max relative error', worst, 'over', fixture.kstwo_sf.length, 'points');
  });

  it('has the right limits', () => {
    expect(kstwoSf(0, 10)).toBe(1);
    expect(kstwoSf(1, 10)).toBe(0);
    expect(kstwoSf(0.5, 0)).toBeNaN();
    expect(kstwoSf(Number.NaN, 10)).toBeNaN();
  });
});

describe('chi-square survival function against scipy.stats.chi2.sf', () => {
  it('matches every grid point within 1e-9 relative', () => {
    let worst = 0;
    expect(fixture.chi2_sf.length).toBeGreaterThan(90);
    for (const { df, x, sf } of fixture.chi2_sf) {
      const got = chi2Sf(x, df);
      const err = sf === 0 ? got : relErr(got, sf);
      if (!(err <= 1e-9)) throw new Error(`chi2.sf(${x}, ${df}): got ${got}, scipy ${sf}`);
      worst = Math.max(worst, err);
    }
    console.info('chi2.sf max relative error', worst, 'over', fixture.chi2_sf.length, 'points');
  });

  it('reproduces closed forms', () => {
    // chi2 with 2 dof is exponential: sf = exp(-x/2).
    for (const x of [0.01, 1, 10, 100, 1000]) expect(relErr(chi2Sf(x, 2), Math.exp(-x / 2))).toBeLessThan(1e-13);
    expect(chi2Sf(3.841458820694124, 1)).toBeCloseTo(0.05, 12);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 14);
    expect(logGamma(171)).toBeCloseTo(706.5730622457874, 9);
  });
});

describe('ksPValue budgets (found by a regression review of da5dfd1)', () => {
  it('takes the asymptotic p past KS_EXACT_P_BUDGET lattice cells, where the exact walk took 100-390 ms', () => {
    // 10,000 vs 5,000 rows at D = 0.19: ~1.9e7 cells, ~5.5 ns each.
    expect(ksExactCells(0.19, 10000, 5000)).toBeGreaterThan(KS_EXACT_P_BUDGET);
    const r = ksPValue(0.19, 10000, 5000);
    expect(r.method).toBe('asymp');
    expect(r.pValue).toBeLessThan(1e-10);
    // Within the budget nothing changed: exact, as scipy's method='auto'.
    expect(ksExactCells(0.02, 10000, 5000)).toBeLessThanOrEqual(KS_EXACT_P_BUDGET);
    expect(ksPValue(0.02, 10000, 5000).method).toBe('exact');
    expect(ksPValue(0.5, 9000, 9000).method).toBe('exact'); // equal sizes: an O(n) series
  });

  it('past the budget the asymptotic p stays within 1% of the exact one near alpha', () => {
    // 10,000 vs 9,999 evenly spread values, the second shifted: D ≈ 0.0192, p ≈ 0.05.
    const a = Array.from({ length: 10000 }, (_, i) => i / 10000);
    const b = Array.from({ length: 9999 }, (_, i) => i / 9999 + 0.0192);
    const exact = ks2samp(a, b, 'exact');
    expect(ksExactCells(exact.statistic, 10000, 9999)).toBeGreaterThan(KS_EXACT_P_BUDGET);
    const p = ksPValue(exact.statistic, 10000, 9999);
    expect(p.method).toBe('asymp');
    expect(exact.pValue).toBeGreaterThan(0.01);
    expect(relErr(p.pValue, exact.pValue)).toBeLessThan(0.01);
  });

  it('one KsExactBudget bounds the exact work of many calls (a window of features)', () => {
    const cells = ksExactCells(0.02, 10000, 5000);
    const budget = new KsExactBudget(2.5 * cells);
    const methods = [0, 1, 2].map(() => ksPValue(0.02, 10000, 5000, budget).method);
    expect(methods).toEqual(['exact', 'exact', 'asymp']);
    expect(budget.left).toBeCloseTo(0.5 * cells, 6);
  });
});
