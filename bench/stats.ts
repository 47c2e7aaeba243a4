// Summaries every bench reports with: one definition of each (nearest-rank percentiles).

/** The value at percentile `p` of ascending `sorted` (nearest rank); NaN when there is none. */
export const percentile = (sorted: readonly number[], p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
/**
 * A tail percentile over the latencies of every repeat together: one repeat holds too few requests
 * for p99.9 (1,000 batch requests make it a single one), the pooled repeats enough for a few.
 */
export const pooledPercentile = (latencies: readonly number[], p: number) =>
  percentile(
    [...latencies].sort((a, b) => a - b),
    p,
  );
/** The median (the mean of the two middle values for an even count). */
export const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
/** `digits` decimals (three by default, as the bench's JSON reports milliseconds). */
export const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
