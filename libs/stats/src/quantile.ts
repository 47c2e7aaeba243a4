/**
 * Reference quantiles, defined so that the same levels give bit-identical values wherever they are
 * computed (here, in the fixture script, in a profile): linear interpolation between order
 * statistics (numpy's default "linear" / Hyndman–Fan type 7) with the position computed as
 * ((n-1)·num)/den — one exact integer product and one correctly rounded division — so level k/B
 * and level (k·G/B)/G land on the same double and coarse edges are an exact subset of a fine grid.
 */

/** Quantile at level num/den of a sorted, non-empty array. */
export function quantileOfSorted(sorted: Float64Array, num: number, den: number): number {
  const n = sorted.length;
  const h = ((n - 1) * num) / den;
  const lo = Math.floor(h);
  const a = sorted[lo]!;
  const frac = h - lo;
  if (frac === 0 || lo + 1 >= n) return a;
  const b = sorted[lo + 1]!;
  const span = b - a;
  // Two values more than the largest double apart (±1.7e308): the span overflows, so weigh the ends.
  const v = Number.isFinite(span) ? a + frac * span : a * (1 - frac) + b * frac;
  // Rounding could step a hair outside [a, b]; clamping keeps quantiles monotone in the level.
  return Math.min(Math.max(v, a), b);
}

/** The largest double below x (x finite). */
export function nextDown(x: number): number {
  if (x === 0) return -Number.MIN_VALUE;
  const bits = new Float64Array([x]);
  const word = new BigInt64Array(bits.buffer);
  word[0] = word[0]! + (x > 0 ? -1n : 1n);
  return bits[0]!;
}

/**
 * Interior bin edges at levels k/bins, k = 1..bins-1, with duplicates (from ties) removed, so a
 * discrete column yields fewer, non-empty-width bins. Bins are right-closed: (e[i-1], e[i]].
 * When every level lands on one value c (a constant reference, or one value holding most of it),
 * the edge just below c is added, so the bins are below c, c itself and above c: with the single
 * edge c, (−∞, c] took the whole reference and any shift below it went unseen (PSI 0).
 */
export function quantileEdges(sorted: Float64Array, bins: number): Float64Array {
  const out: number[] = [];
  for (let k = 1; k < bins; k++) {
    const q = quantileOfSorted(sorted, k, bins);
    if (out.length === 0 || q > out[out.length - 1]!) out.push(q);
  }
  if (out.length === 1) {
    const below = nextDown(out[0]!);
    if (Number.isFinite(below)) out.unshift(below);
  }
  return Float64Array.from(out);
}

/** Counts per right-closed bin: bin i holds x with e[i-1] < x <= e[i] (outer bins unbounded). */
export function binCountsSorted(sortedValues: Float64Array, edges: Float64Array): Float64Array {
  const counts = new Float64Array(edges.length + 1);
  // Both inputs are sorted, so one merge pass replaces a binary search per value.
  let bin = 0;
  for (let i = 0; i < sortedValues.length; i++) {
    const x = sortedValues[i]!;
    while (bin < edges.length && x > edges[bin]!) bin++;
    counts[bin]! += 1;
  }
  return counts;
}
