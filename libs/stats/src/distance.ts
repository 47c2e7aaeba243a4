import { DriftlineError } from '@driftline/core';
import { CompensatedSum, type MaybeNumber, sortedFinite } from './numeric.js';
import { categoryTable, DEFAULT_PSI_BINS, type MaybeCategory } from './psi.js';
import { binCountsSorted, quantileEdges } from './quantile.js';

/**
 * 1-D Wasserstein-1 (earth mover's) distance between two samples, as
 * scipy.stats.wasserstein_distance: ∫ |U(t) − V(t)| dt over the pooled sorted values, with U, V
 * the right-continuous ECDFs. Missing values and infinities are dropped; NaN if either is empty.
 */
export function wassersteinDistance(u: ArrayLike<MaybeNumber>, v: ArrayLike<MaybeNumber>): number {
  return wassersteinSorted(sortedFinite(u), sortedFinite(v));
}

export function wassersteinSorted(u: Float64Array, v: Float64Array): number {
  const nu = u.length;
  const nv = v.length;
  if (nu === 0 || nv === 0) return Number.NaN;
  const sum = new CompensatedSum();
  let i = 0;
  let j = 0;
  // Walk the pooled values in order; between consecutive pooled values both ECDFs are constant.
  let prev = Math.min(u[0]!, v[0]!);
  while (i < nu || j < nv) {
    const x = j >= nv || (i < nu && u[i]! <= v[j]!) ? u[i]! : v[j]!;
    if (x !== prev) {
      sum.add(Math.abs(i / nu - j / nv) * (x - prev));
      prev = x;
    }
    while (i < nu && u[i]! <= x) i++;
    while (j < nv && v[j]! <= x) j++;
  }
  return sum.value();
}

/** (x·ln(x/y)) with scipy.special.rel_entr's conventions for zeros. */
function relEntr(x: number, y: number): number {
  if (x > 0 && y > 0) return x * Math.log(x / y);
  if (x === 0 && y >= 0) return 0;
  return Number.POSITIVE_INFINITY;
}

/**
 * Jensen–Shannon distance between two (unnormalised) probability vectors, as
 * scipy.spatial.distance.jensenshannon: each vector is normalised to sum 1, m = (p + q)/2,
 * JS = sqrt((KL(p‖m) + KL(q‖m)) / 2), natural log unless `base` is given.
 */
export function jensenShannon(p: ArrayLike<number>, q: ArrayLike<number>, base?: number): number {
  if (p.length !== q.length) {
    throw new DriftlineError('VALIDATION_FAILED', 'jensenShannon: vectors differ in length', {
      details: { p: p.length, q: q.length },
    });
  }
  let sp = 0;
  let sq = 0;
  for (let i = 0; i < p.length; i++) {
    sp += p[i]!;
    sq += q[i]!;
  }
  if (!(sp > 0) || !(sq > 0)) return Number.NaN;
  const left = new CompensatedSum();
  const right = new CompensatedSum();
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]! / sp;
    const qi = q[i]! / sq;
    const m = (pi + qi) / 2.0;
    left.add(relEntr(pi, m));
    right.add(relEntr(qi, m));
  }
  let js = left.value() + right.value();
  if (base !== undefined) js /= Math.log(base);
  // Rounding can leave a tiny negative for identical inputs; the distance is 0 there.
  return Math.sqrt(Math.max(js / 2.0, 0));
}

/**
 * Jensen–Shannon distance between a numeric reference and current sample on the reference's
 * quantile bins: the same right-closed bins as quantile PSI (interior edges at reference
 * quantiles k/bins, default 10, duplicates removed, outer bins unbounded), counts normalised.
 */
export function jensenShannonNumeric(
  reference: ArrayLike<MaybeNumber>,
  current: ArrayLike<MaybeNumber>,
  options: { bins?: number; base?: number } = {},
): number {
  const ref = sortedFinite(reference);
  const cur = sortedFinite(current);
  if (ref.length === 0 || cur.length === 0) return Number.NaN;
  const edges = quantileEdges(ref, options.bins ?? DEFAULT_PSI_BINS);
  return jensenShannon(binCountsSorted(ref, edges), binCountsSorted(cur, edges), options.base);
}

/** Jensen–Shannon distance over reference categories plus an "other" bucket. */
export function jensenShannonCategorical(
  reference: ArrayLike<MaybeCategory>,
  current: ArrayLike<MaybeCategory>,
  options: { base?: number } = {},
): number {
  const ref = Array.from(reference).filter((v): v is string => typeof v === 'string');
  const cur = Array.from(current).filter((v): v is string => typeof v === 'string');
  if (ref.length === 0 || cur.length === 0) return Number.NaN;
  const t = categoryTable(ref, cur);
  return jensenShannon(t.referenceCounts, t.currentCounts, options.base);
}
