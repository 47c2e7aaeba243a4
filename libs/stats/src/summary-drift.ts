import { type ChiSquareResult, chiSquareHomogeneity } from './chi2.js';
import { jensenShannon } from './distance.js';
import { type KsExactBudget, ksPValue } from './ks.js';
import { type CategoricalReferenceProfile, type NumericReferenceProfile, profileCoarseCounts } from './profile.js';
import { DEFAULT_PSI_EPSILON, NEW_CATEGORY, OTHER_CATEGORY, type PsiResult, psiFromCounts } from './psi.js';
import type { CategoricalSummary, NumericSummary } from './summary.js';

/** KS from a merged summary: the grid statistic and an interval that provably holds the exact D. */
export interface SummaryKsResult {
  /** D evaluated at every cut point and just below it: a lower bound of the exact D. */
  readonly statistic: number;
  /** Exact D on the raw data lies in [statistic, statistic + errorBound]. */
  readonly errorBound: number;
  readonly upperBound: number;
  /**
   * The p-value of `statistic` as scipy's ks_2samp(method='auto') computes it for these sizes
   * (`ksPValue`): exact when max(n1, n2) ≤ 10 000 and the walk fits its budgets, else asymptotic. D_grid ≤ D_exact, so with the
   * exact method this is an upper bound of the raw-data exact p-value.
   */
  readonly pValue: number;
  /**
   * p-values at the two ends of the D interval, [p(upperBound), p(statistic)]; only when asked
   * for (each p-value can cost O(n) in scipy's upper-tail algorithm).
   */
  readonly pValueRange?: readonly [number, number];
  readonly method: 'exact' | 'asymp';
  readonly n1: number;
  readonly n2: number;
}

/**
 * KS between the reference (exact counts on the profile grid) and a merged current summary.
 *
 * Bound. Let R, C be the reference and current ECDFs and a < b adjacent cut points. Both are
 * known exactly at a, and just below b (the point slot {b} is counted separately). For x in (a, b):
 * R(x) ∈ [R(a), R(b−)] and C(x) ∈ [C(a), C(b−)], so
 *   C(x) − R(x) ≤ C(b−) − R(a)   and   R(x) − C(x) ≤ R(b−) − C(a).
 * The exact D is therefore at most the largest of these over all open slots and the grid
 * values, and at least the largest grid value (every grid value is attained by the ECDFs).
 * Writing C(b−) − R(a) = (C(b−) − R(b−)) + ΔR = (C(a) − R(a)) + ΔC shows
 *   errorBound ≤ max over open slots of min(ΔR, ΔC) ≤ profile.ksBound,
 * with ΔR, ΔC the reference and current mass strictly inside the slot: ≈ 1/fineBins for a
 * continuous reference, 0 for discrete data whose values are all cut points.
 */
export function ksFromSummary(
  profile: NumericReferenceProfile,
  summary: NumericSummary,
  options: { pValueRange?: boolean; budget?: KsExactBudget | undefined } = {},
): SummaryKsResult {
  const n1 = profile.n;
  const n2 = summary.count;
  if (n2 === 0) {
    return {
      statistic: Number.NaN,
      errorBound: Number.NaN,
      upperBound: Number.NaN,
      pValue: Number.NaN,
      ...(options.pValueRange ? { pValueRange: [Number.NaN, Number.NaN] as const } : {}),
      method: 'asymp',
      n1,
      n2,
    };
  }
  const R = profile.slotCounts;
  const C = summary.counts;
  let cumR = 0;
  let cumC = 0;
  let grid = 0;
  let upper = 0;
  for (let s = 0; s < C.length; s++) {
    const startR = cumR / n1;
    const startC = cumC / n2;
    cumR += R[s]!;
    cumC += C[s]!;
    const fr = cumR / n1;
    const fc = cumC / n2;
    // Same float form as scipy's cdf1 − cdf2, so the grid value is bit-identical there.
    const d = Math.abs(fc - fr);
    if (d > grid) grid = d;
    if (s % 2 === 0) {
      const u = Math.max(fc - startR, fr - startC);
      if (u > upper) upper = u;
    }
  }
  if (upper < grid) upper = grid;
  const { pValue, method } = ksPValue(grid, n1, n2, options.budget);
  return {
    statistic: grid,
    errorBound: upper - grid,
    upperBound: upper,
    pValue,
    ...(options.pValueRange ? { pValueRange: [ksPValue(upper, n1, n2, options.budget).pValue, pValue] as const } : {}),
    method,
    n1,
    n2,
  };
}

/** PSI on the profile's coarse bins; equal to psiNumeric(quantile) on the raw data. */
export function psiFromSummary(
  profile: NumericReferenceProfile,
  summary: NumericSummary,
  epsilon = DEFAULT_PSI_EPSILON,
): PsiResult {
  const ref = profileCoarseCounts(profile, profile.slotCounts);
  const cur = profileCoarseCounts(profile, summary.counts);
  const r = psiFromCounts(ref, cur, epsilon);
  return {
    ...r,
    binning: 'quantile',
    edges: [...profile.coarseEdges],
    referenceSize: profile.n,
    currentSize: summary.count,
  };
}

/** Jensen–Shannon distance on the profile's coarse bins (as jensenShannonNumeric on raw data). */
export function jensenShannonFromSummary(profile: NumericReferenceProfile, summary: NumericSummary): number {
  if (summary.count === 0) return Number.NaN;
  return jensenShannon(profileCoarseCounts(profile, profile.slotCounts), profileCoarseCounts(profile, summary.counts));
}

/** Share of events with a missing value (null/NaN) among all events of the window. */
export function missingRateFromSummary(summary: NumericSummary | CategoricalSummary): number {
  const total = summary.count + summary.missing + (summary.kind === 'numeric' ? summary.infinite : 0);
  return total === 0 ? Number.NaN : summary.missing / total;
}

/** Share of present values outside [reference min, reference max] (infinities included). */
export function outOfRangeShareFromSummary(summary: NumericSummary): number {
  const present = summary.count + summary.infinite;
  return present === 0 ? Number.NaN : (summary.belowMin + summary.aboveMax + summary.infinite) / present;
}

/**
 * The reference's counts on a summary's bins: with a tail sketch, "new" (categories the reference
 * never had) is a bin of its own with a reference count of 0, so new categories show up.
 */
function referenceCounts(profile: CategoricalReferenceProfile): readonly number[] {
  return profile.tail ? [...profile.counts, 0] : profile.counts;
}

/** Categorical PSI over the profile's categories plus "other" (and "new" with a tail sketch). */
export function psiFromCategoricalSummary(
  profile: CategoricalReferenceProfile,
  summary: CategoricalSummary,
  epsilon = DEFAULT_PSI_EPSILON,
): PsiResult {
  const r = psiFromCounts(referenceCounts(profile), summary.counts, epsilon);
  return {
    ...r,
    binning: 'quantile',
    labels: [...profile.categories, OTHER_CATEGORY, ...(profile.tail ? [NEW_CATEGORY] : [])],
    referenceSize: profile.n,
    currentSize: summary.count,
  };
}

export function chiSquareFromSummary(
  profile: CategoricalReferenceProfile,
  summary: CategoricalSummary,
): ChiSquareResult {
  return chiSquareHomogeneity(referenceCounts(profile), summary.counts);
}

export function jensenShannonFromCategoricalSummary(
  profile: CategoricalReferenceProfile,
  summary: CategoricalSummary,
): number {
  if (summary.count === 0) return Number.NaN;
  return jensenShannon(referenceCounts(profile), summary.counts);
}
