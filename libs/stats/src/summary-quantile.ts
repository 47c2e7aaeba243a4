import type { NumericReferenceProfile } from './profile.js';
import type { NumericSummary } from './summary.js';

export interface SummaryQuantile {
  /** Estimate of the q-quantile (smallest x with C(x) >= q) of the window's finite values. */
  readonly value: number;
  /** The exact quantile provably lies in [lower, upper]: the grid slot holding that rank. */
  readonly lower: number;
  readonly upper: number;
}

/**
 * Quantiles of a merged window from its grid counts — the summary doubles as a quantile sketch.
 * The rank ⌈q·n⌉ falls in one slot: a cut point gives the exact value; an open slot between cuts
 * bounds it (narrowed by the window's min and max) and the estimate interpolates by rank inside.
 */
export function quantileFromSummary(
  profile: NumericReferenceProfile,
  summary: NumericSummary,
  q: number,
): SummaryQuantile {
  const n = summary.count;
  if (n === 0 || !(q >= 0 && q <= 1)) return { value: Number.NaN, lower: Number.NaN, upper: Number.NaN };
  const rank = Math.max(1, Math.ceil(q * n));
  const counts = summary.counts;
  let before = 0;
  for (let s = 0; s < counts.length; s++) {
    const c = counts[s]!;
    if (before + c < rank) {
      before += c;
      continue;
    }
    const i = s >> 1;
    if (s % 2 === 1) {
      const v = profile.cuts[i]!;
      return { value: v, lower: v, upper: v };
    }
    const lower = Math.max(i === 0 ? Number.NEGATIVE_INFINITY : profile.cuts[i - 1]!, summary.min);
    const upper = Math.min(i === profile.cuts.length ? Number.POSITIVE_INFINITY : profile.cuts[i]!, summary.max);
    const value = lower + ((upper - lower) * (rank - before - 0.5)) / c;
    return { value, lower, upper };
  }
  return { value: summary.max, lower: summary.max, upper: summary.max };
}
