// Math.max(...values) passes every value as an argument: past ~125,000 values it throws
// "Maximum call stack size exceeded" (a report over 200,000 drift rows, a CSV of 300,000 columns).

/** The largest of `values` and `floor` (floor when there are none); NaN values are skipped. */
export function maxOf(values: Iterable<number>, floor = Number.NEGATIVE_INFINITY): number {
  let max = floor;
  for (const v of values) if (v > max) max = v;
  return max;
}

/** The smallest of `values` and `ceiling` (ceiling when there are none); NaN values are skipped. */
export function minOf(values: Iterable<number>, ceiling = Number.POSITIVE_INFINITY): number {
  let min = ceiling;
  for (const v of values) if (v < min) min = v;
  return min;
}
