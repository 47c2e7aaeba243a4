/** Small numeric helpers shared by the statistics modules. */

/** A value as it arrives from a column: null/undefined/NaN mean "missing". */
export type MaybeNumber = number | null | undefined;

/** First index i with sorted[i] >= x (sorted.length when none). */
export function lowerBound(sorted: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index i with sorted[i] > x (sorted.length when none). */
export function upperBound(sorted: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The finite values of a column, sorted ascending. Missing values (null, undefined, NaN) and
 * infinities are dropped: every distribution statistic in this library is defined on finite values
 * (as Evidently does), and missing/out-of-range shares report the rest.
 */
export function sortedFinite(values: ArrayLike<MaybeNumber>): Float64Array {
  const out = new Float64Array(values.length);
  let k = 0;
  let ordered = true;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'number' && Number.isFinite(v)) {
      if (k > 0 && v < out[k - 1]!) ordered = false;
      out[k++] = v;
    }
  }
  const finite = out.subarray(0, k);
  // Callers often pass data that is already sorted; one linear check saves the sort.
  if (ordered) return finite;
  return sortFewDistinct(finite) ? finite : finite.sort();
}

/** Beyond this many distinct values a column is sorted by comparison (native typed-array sort). */
const FEW_DISTINCT = 256;

/**
 * Sorts `xs` in place by counting when it holds at most FEW_DISTINCT distinct values (codes,
 * counts, ratings, flags: a third of a typical feature table), several times faster than a
 * comparison sort; gives up after the first FEW_DISTINCT + 1 distinct values otherwise (within
 * a few hundred elements on continuous data) and returns false. Zeros keep their sign (a -0
 * sorts before 0, as the native sort orders them).
 */
function sortFewDistinct(xs: Float64Array): boolean {
  const counts = new Map<number, number>();
  let negativeZeros = 0;
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i]!;
    if (v === 0 && 1 / v < 0) negativeZeros++;
    const c = counts.get(v);
    if (c !== undefined) counts.set(v, c + 1);
    else if (counts.size === FEW_DISTINCT) return false;
    else counts.set(v, 1);
  }
  const keys = Float64Array.from(counts.keys()).sort();
  let k = 0;
  for (const key of keys) {
    let n = counts.get(key)!;
    if (key === 0 && negativeZeros > 0) {
      xs.fill(-0, k, k + negativeZeros);
      k += negativeZeros;
      n -= negativeZeros;
    }
    xs.fill(key, k, k + n);
    k += n;
  }
  return true;
}

/**
 * Neumaier-compensated sum: accurate to about one ulp of the result whatever the magnitude and
 * order of the terms, so long sums (10^6 terms, window metrics) do not drift (numpy sums pairwise).
 */
export class CompensatedSum {
  private sum = 0;
  private comp = 0;

  add(x: number): void {
    const t = this.sum + x;
    if (Math.abs(this.sum) >= Math.abs(x)) this.comp += this.sum - t + x;
    else this.comp += x - t + this.sum;
    this.sum = t;
  }

  value(): number {
    return this.sum + this.comp;
  }
}

export function compensatedSum(values: Iterable<number>): number {
  const s = new CompensatedSum();
  for (const v of values) s.add(v);
  return s.value();
}

/** Round half to even, as numpy's `np.round` does (scipy uses it for the effective sample size). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round rounds .5 up; step back to the even neighbour on exact ties.
  if (r - x === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

/** x * 2^e without overflow/underflow in the intermediate power of two. */
export function ldexp(x: number, e: number): number {
  let y = x;
  let k = e;
  while (k > 1000) {
    y *= 2 ** 1000;
    k -= 1000;
  }
  while (k < -1000) {
    y *= 2 ** -1000;
    k += 1000;
  }
  return y * 2 ** k;
}

export function clamp01(p: number): number {
  if (Number.isNaN(p)) return p;
  return Math.min(Math.max(p, 0), 1);
}
