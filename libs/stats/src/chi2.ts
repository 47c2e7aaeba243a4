import { DriftlineError } from '@driftline/core';
import { chi2Sf } from './gamma.js';
import { categoryTable, type MaybeCategory } from './psi.js';

export interface ChiSquareResult {
  readonly statistic: number;
  readonly pValue: number;
  readonly dof: number;
}

/**
 * Chi-square test of homogeneity on a 2×K table (reference counts, current counts), as
 * scipy.stats.chi2_contingency(table, correction=False): expected = row total · column total /
 * grand total, statistic = Σ (observed − expected)² / expected, dof = K' − 1 where K' counts the
 * columns with any observation (empty columns carry no information and would divide by zero).
 * A homogeneity test rather than goodness-of-fit because the reference is itself a sample, and
 * because it stays finite when the current window has categories the reference never had.
 */
export function chiSquareHomogeneity(
  referenceCounts: ArrayLike<number>,
  currentCounts: ArrayLike<number>,
): ChiSquareResult {
  if (referenceCounts.length !== currentCounts.length) {
    throw new DriftlineError('VALIDATION_FAILED', 'chiSquare: count vectors differ in length');
  }
  let nr = 0;
  let nc = 0;
  for (let i = 0; i < referenceCounts.length; i++) {
    nr += referenceCounts[i]!;
    nc += currentCounts[i]!;
  }
  const total = nr + nc;
  if (nr === 0 || nc === 0) return { statistic: Number.NaN, pValue: Number.NaN, dof: 0 };
  let stat = 0;
  let columns = 0;
  for (let i = 0; i < referenceCounts.length; i++) {
    const col = referenceCounts[i]! + currentCounts[i]!;
    if (col === 0) continue;
    columns++;
    const er = (nr * col) / total;
    const ec = (nc * col) / total;
    stat += (referenceCounts[i]! - er) ** 2 / er + (currentCounts[i]! - ec) ** 2 / ec;
  }
  const dof = columns - 1;
  if (dof <= 0) return { statistic: 0, pValue: 1, dof: 0 };
  return { statistic: stat, pValue: chi2Sf(stat, dof), dof };
}

/**
 * Goodness-of-fit chi-square, as scipy.stats.chisquare(observed, expected) with expected =
 * referenceShares · Σ observed (the reference taken as the true distribution). A category with
 * zero expected but non-zero observed gives an infinite statistic and p = 0.
 */
export function chiSquareGoodnessOfFit(
  observed: ArrayLike<number>,
  referenceShares: ArrayLike<number>,
  ddof = 0,
): ChiSquareResult {
  if (observed.length !== referenceShares.length) {
    throw new DriftlineError('VALIDATION_FAILED', 'chiSquare: observed and expected differ in length');
  }
  let n = 0;
  let s = 0;
  for (let i = 0; i < observed.length; i++) {
    n += observed[i]!;
    s += referenceShares[i]!;
  }
  if (n === 0 || s === 0) return { statistic: Number.NaN, pValue: Number.NaN, dof: 0 };
  let stat = 0;
  for (let i = 0; i < observed.length; i++) {
    const e = (referenceShares[i]! / s) * n;
    const o = observed[i]!;
    if (e === 0) {
      if (o !== 0) stat = Number.POSITIVE_INFINITY;
      continue;
    }
    stat += (o - e) ** 2 / e;
  }
  const dof = observed.length - 1 - ddof;
  if (dof <= 0) return { statistic: stat, pValue: Number.NaN, dof };
  return { statistic: stat, pValue: stat === Number.POSITIVE_INFINITY ? 0 : chi2Sf(stat, dof), dof };
}

/** Homogeneity chi-square over reference categories plus "other", from raw categorical samples. */
export function chiSquareCategorical(
  reference: ArrayLike<MaybeCategory>,
  current: ArrayLike<MaybeCategory>,
): ChiSquareResult {
  const ref = Array.from(reference).filter((v): v is string => typeof v === 'string');
  const cur = Array.from(current).filter((v): v is string => typeof v === 'string');
  const t = categoryTable(ref, cur);
  return chiSquareHomogeneity(t.referenceCounts, t.currentCounts);
}
