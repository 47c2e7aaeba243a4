/**
 * Upper bounds (ms, inclusive) of the staleness histogram's buckets: 28 bounds, a 1-2-5 series from
 * 10 ms to 10^10 ms (~116 days), plus one overflow bucket above the last (STALENESS_BUCKETS = 29).
 * Fixed for every window and partition, so histograms merge by adding counts (partitions,
 * instances, SQL `sumForEach`). A quantile read from it is the upper bound of its bucket: never
 * below the true value, at most 2.5× it (10 ms for anything under 10 ms).
 */
export const STALENESS_BOUNDS_MS: readonly number[] = (() => {
  const out: number[] = [];
  for (let decade = 10; decade <= 1e9; decade *= 10) out.push(decade, 2 * decade, 5 * decade);
  out.push(1e10);
  return out;
})();

/** Buckets of a staleness histogram: one per bound and the overflow. */
export const STALENESS_BUCKETS = STALENESS_BOUNDS_MS.length + 1;

/**
 * The mergeable skew state of one (model, version, feature, window) — of one source partition, or
 * the sum of several. Every field adds up under merge.
 *
 * - `sampled`: sampled predictions that carried the feature (a value or null).
 * - `compared`: of those, the ones whose store row was current at the prediction's event time
 *   (row event time ≤ prediction event time): both present, or one or both missing.
 * - `mismatched`: compared and different (numbers beyond the tolerance, other values unequal, or
 *   missing on exactly one side).
 * - `numericCompared` / `absDiffSum`: comparisons of two numbers and the sum of |served − stored|.
 * - `missingInStore`: no row for the entity, or the current row has no value while the prediction had one.
 * - `missingInPrediction`: the prediction carried null while the current row has a value.
 * - `newerRow`: the row was written after the prediction's event time: not comparable as of then.
 * - `expired`: no row read, and the prediction's event time was already older than the view's TTL
 *   at the read: the row it was served (if any) had expired by then (the store reads such rows as
 *   absent), so not comparable — the monitor lagging more than the TTL behind, not a missing row.
 * - `stalenessHist`: prediction event time − row event time of the compared ones (STALENESS_BOUNDS_MS).
 */
export interface SkewCounts {
  sampled: number;
  compared: number;
  mismatched: number;
  numericCompared: number;
  absDiffSum: number;
  missingInStore: number;
  missingInPrediction: number;
  newerRow: number;
  expired: number;
  stalenessHist: number[];
}

export function emptyCounts(): SkewCounts {
  return {
    sampled: 0,
    compared: 0,
    mismatched: 0,
    numericCompared: 0,
    absDiffSum: 0,
    missingInStore: 0,
    missingInPrediction: 0,
    newerRow: 0,
    expired: 0,
    stalenessHist: new Array<number>(STALENESS_BUCKETS).fill(0),
  };
}

export function copyCounts(c: Readonly<SkewCounts>): SkewCounts {
  return { ...c, stalenessHist: [...c.stalenessHist] };
}

/**
 * x + y, at most the largest double: |served − stored| of ±1e308 values overflowed to Infinity,
 * which JSON writes as null and the skew_windows Float64 column refuses (the prediction was
 * dead-lettered). Such numbers are missing now (beyond float32), but a sum is still merged with
 * whatever skew_windows holds. A saturated sum reads as "enormous", which it is.
 */
export function saturatedSum(x: number, y: number): number {
  const sum = x + y;
  return Math.min(sum, Number.MAX_VALUE);
}

/** Adds `b` into `a` (in place) and returns `a`. A histogram of another length is a programming error. */
export function mergeInto(a: SkewCounts, b: Readonly<SkewCounts>): SkewCounts {
  if (b.stalenessHist.length !== STALENESS_BUCKETS) {
    throw new RangeError(`staleness histogram has ${b.stalenessHist.length} buckets, expected ${STALENESS_BUCKETS}`);
  }
  a.sampled += b.sampled;
  a.compared += b.compared;
  a.mismatched += b.mismatched;
  a.numericCompared += b.numericCompared;
  a.absDiffSum = saturatedSum(a.absDiffSum, b.absDiffSum);
  a.missingInStore += b.missingInStore;
  a.missingInPrediction += b.missingInPrediction;
  a.newerRow += b.newerRow;
  a.expired += b.expired;
  for (let i = 0; i < STALENESS_BUCKETS; i++) a.stalenessHist[i]! += b.stalenessHist[i]!;
  return a;
}

/** Index of the bucket holding a staleness (ms, ≥ 0): the first bound ≥ it, or the overflow. */
export function stalenessBucket(ms: number): number {
  let lo = 0;
  let hi = STALENESS_BOUNDS_MS.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (STALENESS_BOUNDS_MS[mid]! >= ms) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * The q-quantile (0 < q ≤ 1) of a staleness histogram as its bucket's upper bound in ms; null when
 * empty; Infinity when it falls in the overflow bucket.
 */
export function stalenessQuantile(hist: readonly number[], q: number): number | null {
  let total = 0;
  for (const n of hist) total += n;
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= rank) return i < STALENESS_BOUNDS_MS.length ? STALENESS_BOUNDS_MS[i]! : Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}

/** What a window's counts say, for rows of reports, alerts and logs. */
export interface SkewSummary {
  /** mismatched / compared; null when nothing was compared. */
  readonly shareMismatched: number | null;
  /** Mean |served − stored| over the numeric comparisons; null when none. */
  readonly meanAbsDiff: number | null;
  readonly stalenessP50Ms: number | null;
  readonly stalenessP99Ms: number | null;
}

export function summarize(c: Readonly<SkewCounts>): SkewSummary {
  return {
    shareMismatched: c.compared === 0 ? null : c.mismatched / c.compared,
    meanAbsDiff: c.numericCompared === 0 ? null : c.absDiffSum / c.numericCompared,
    stalenessP50Ms: stalenessQuantile(c.stalenessHist, 0.5),
    stalenessP99Ms: stalenessQuantile(c.stalenessHist, 0.99),
  };
}
