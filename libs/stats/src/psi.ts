import { DriftlineError } from '@driftline/core';
import { lowerBound, type MaybeNumber, sortedFinite, upperBound } from './numeric.js';
import { binCountsSorted, quantileEdges } from './quantile.js';

/**
 * Population Stability Index: PSI = Σ (c_i − r_i)·ln(c_i / r_i) over bins, with r_i and c_i the
 * reference and current shares. A share of exactly 0 would make a term infinite, so empty bins are
 * given DEFAULT_PSI_EPSILON instead (no renormalisation; it only matters for empty bins).
 */
export const DEFAULT_PSI_EPSILON = 1e-4;
export const DEFAULT_PSI_BINS = 10;

export type PsiBinning = 'quantile' | 'evidently';

export interface PsiOptions {
  /** Coarse bins for quantile binning (default 10). Evidently's binning ignores it, as Evidently does. */
  readonly bins?: number;
  readonly binning?: PsiBinning;
  /** Replacement for a zero share in quantile binning (default 1e-4). */
  readonly epsilon?: number;
}

export interface PsiResult {
  readonly value: number;
  readonly binning: PsiBinning;
  /** Shares after zero replacement, in bin order. */
  readonly referenceShares: number[];
  readonly currentShares: number[];
  /** Numeric: bin edges (quantile: interior right-closed edges; evidently: all edges). */
  readonly edges?: number[];
  /** Categorical (or Evidently's per-value path): the key of each bin. */
  readonly labels?: string[];
  readonly referenceSize: number;
  readonly currentSize: number;
}

/** Bin label used for current categories that the reference never saw. */
export const OTHER_CATEGORY = '__other__';
/** Streaming bin of categories a capped reference never had (beside its tail's OTHER_CATEGORY). */
export const NEW_CATEGORY = '__new__';

/** PSI of two share vectors; zero shares replaced by `epsilon`. */
export function psiFromShares(reference: ArrayLike<number>, current: ArrayLike<number>, epsilon = DEFAULT_PSI_EPSILON) {
  if (reference.length !== current.length) {
    throw new DriftlineError('VALIDATION_FAILED', 'psi: share vectors differ in length', {
      details: { reference: reference.length, current: current.length },
    });
  }
  let psi = 0;
  for (let i = 0; i < reference.length; i++) {
    const r = reference[i]! === 0 ? epsilon : reference[i]!;
    const c = current[i]! === 0 ? epsilon : current[i]!;
    psi += (c - r) * Math.log(c / r);
  }
  return psi;
}

function sharesWithEpsilon(counts: ArrayLike<number>, total: number, epsilon: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < counts.length; i++) {
    const s = counts[i]! / total;
    out.push(s === 0 ? epsilon : s);
  }
  return out;
}

/** PSI from bin counts (the streaming path uses this with summary counts). */
export function psiFromCounts(
  referenceCounts: ArrayLike<number>,
  currentCounts: ArrayLike<number>,
  epsilon = DEFAULT_PSI_EPSILON,
): { value: number; referenceShares: number[]; currentShares: number[] } {
  let nr = 0;
  let nc = 0;
  for (let i = 0; i < referenceCounts.length; i++) nr += referenceCounts[i]!;
  for (let i = 0; i < currentCounts.length; i++) nc += currentCounts[i]!;
  if (nc === 0 || nr === 0) {
    return { value: Number.NaN, referenceShares: [], currentShares: [] };
  }
  const referenceShares = sharesWithEpsilon(referenceCounts, nr, epsilon);
  const currentShares = sharesWithEpsilon(currentCounts, nc, epsilon);
  return { value: psiFromShares(referenceShares, currentShares, epsilon), referenceShares, currentShares };
}

function requireReference(n: number, what: string): void {
  if (n === 0) throw new DriftlineError('VALIDATION_FAILED', `${what}: reference has no usable values`);
}

/**
 * Numeric PSI. Quantile binning: interior edges at reference quantiles k/bins (deduplicated),
 * right-closed bins, outer bins unbounded so out-of-range current values land in the end bins.
 * Evidently binning: reproduces Evidently's `psi` stat test exactly (see psiEvidentlyNumeric).
 * An empty current sample yields NaN (no evidence either way), an empty reference throws.
 */
export function psiNumeric(
  reference: ArrayLike<MaybeNumber>,
  current: ArrayLike<MaybeNumber>,
  options: PsiOptions = {},
): PsiResult {
  const binning = options.binning ?? 'quantile';
  const ref = sortedFinite(reference);
  const cur = sortedFinite(current);
  requireReference(ref.length, 'psi');
  if (binning === 'evidently') return psiEvidentlySorted(ref, cur);
  const bins = options.bins ?? DEFAULT_PSI_BINS;
  if (!Number.isInteger(bins) || bins < 1) {
    throw new DriftlineError('VALIDATION_FAILED', `psi: bins must be a positive integer, got ${bins}`);
  }
  const epsilon = options.epsilon ?? DEFAULT_PSI_EPSILON;
  const edges = quantileEdges(ref, bins);
  const r = binCountsSorted(ref, edges);
  const c = binCountsSorted(cur, edges);
  const result = psiFromCounts(r, c, epsilon);
  return {
    ...result,
    binning,
    edges: Array.from(edges),
    referenceSize: ref.length,
    currentSize: cur.length,
  };
}

/** Evidently's zero replacement: min non-zero share / 10^6 when that is <= 1e-4, else 1e-4. */
function evidentlyFillZeros(shares: number[]): number[] {
  let minNonZero = Number.POSITIVE_INFINITY;
  let hasZero = false;
  for (const s of shares) {
    if (s === 0) hasZero = true;
    else if (s < minNonZero) minNonZero = s;
  }
  if (!hasZero) return shares;
  const fill = minNonZero <= 0.0001 ? minNonZero / 10 ** 6 : 0.0001;
  return shares.map((s) => (s === 0 ? fill : s));
}

function evidentlyPsiSum(reference: number[], current: number[]): number {
  let psi = 0;
  for (let i = 0; i < reference.length; i++) {
    const r = reference[i]!;
    const c = current[i]!;
    psi += (r - c) * Math.log(r / c);
  }
  return psi;
}

function countDistinctSorted(sorted: Float64Array): number {
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) n++;
  return n;
}

/**
 * Evidently (legacy stattests `psi`, used by ValueDrift/DataDriftPreset) on numbers, after its
 * cleaning (NaN and ±inf dropped):
 * - more than 20 distinct reference values: numpy's "sturges" edges over reference ∪ current —
 *   width = ptp / (log2(n_ref + n_cur) + 1), ceil(ptp / width) equal-width bins from the combined
 *   min to max (np.linspace), counted as np.histogram does ([e_i, e_i+1), last bin closed);
 * - otherwise one bin per distinct value seen in either sample;
 * - shares = count / sample size; zero shares replaced per sample by min non-zero share / 1e6 when
 *   that share is <= 1e-4, else by 1e-4; PSI = Σ (r − c)·ln(r / c).
 * The requested bin count is ignored because Evidently ignores it.
 */
function psiEvidentlySorted(ref: Float64Array, cur: Float64Array): PsiResult {
  if (cur.length === 0) {
    return emptyResult('evidently', ref.length);
  }
  if (countDistinctSorted(ref) <= 20) {
    return psiEvidentlyByKey(
      Array.from(ref, (v) => numberKey(v)),
      Array.from(cur, (v) => numberKey(v)),
    );
  }
  const n = ref.length + cur.length;
  const lo = Math.min(ref[0]!, cur[0]!);
  const hi = Math.max(ref[ref.length - 1]!, cur[cur.length - 1]!);
  const ptp = hi - lo;
  if (!Number.isFinite(ptp)) {
    // numpy fails here too (its histogram range overflows); a typed array of length -1 did here.
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `psi (evidently binning): the values span more than the largest double (${lo} to ${hi}); use quantile binning`,
    );
  }
  const width = ptp / (Math.log2(n) + 1.0);
  const nBins = width ? Math.ceil(ptp / width) : 1;
  let first = lo;
  let last = hi;
  if (first === last) {
    first -= 0.5;
    last += 0.5;
  }
  const edges = linspace(first, last, nBins + 1);
  const r = histogramCounts(ref, edges);
  const c = histogramCounts(cur, edges);
  const referenceShares = evidentlyFillZeros(Array.from(r, (x) => x / ref.length));
  const currentShares = evidentlyFillZeros(Array.from(c, (x) => x / cur.length));
  return {
    value: evidentlyPsiSum(referenceShares, currentShares),
    binning: 'evidently',
    referenceShares,
    currentShares,
    edges: Array.from(edges),
    referenceSize: ref.length,
    currentSize: cur.length,
  };
}

/** np.linspace(start, stop, num): i·step + start, last element exactly `stop`. */
function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const div = num - 1;
  const delta = stop - start;
  const step = delta / div;
  for (let i = 0; i < num; i++) {
    out[i] = (step === 0 ? (i / div) * delta : i * step) + start;
  }
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** np.histogram with explicit edges: [e_i, e_{i+1}) except the last bin, which is closed. */
function histogramCounts(sorted: Float64Array, edges: Float64Array): Float64Array {
  const nb = edges.length - 1;
  const counts = new Float64Array(nb);
  // searchsorted semantics on the sorted sample: left for interior edges, right for the last.
  let prev = lowerBound(sorted, edges[0]!);
  for (let i = 0; i < nb; i++) {
    const next = i === nb - 1 ? upperBound(sorted, edges[i + 1]!) : lowerBound(sorted, edges[i + 1]!);
    counts[i] = next - prev;
    prev = next;
  }
  return counts;
}

/** Map key for a number that treats -0 and 0 alike (as pandas' value_counts does). */
function numberKey(v: number): string {
  return String(v === 0 ? 0 : v);
}

function emptyResult(binning: PsiBinning, referenceSize: number): PsiResult {
  return {
    value: Number.NaN,
    binning,
    referenceShares: [],
    currentShares: [],
    referenceSize,
    currentSize: 0,
  };
}

function valueCounts(values: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}

/** Evidently's per-value path: one bin per key seen in either sample. */
function psiEvidentlyByKey(ref: readonly string[], cur: readonly string[]): PsiResult {
  const rc = valueCounts(ref);
  const cc = valueCounts(cur);
  const labels = [...new Set([...rc.keys(), ...cc.keys()])].sort();
  const referenceShares = evidentlyFillZeros(labels.map((k) => (rc.get(k) ?? 0) / ref.length));
  const currentShares = evidentlyFillZeros(labels.map((k) => (cc.get(k) ?? 0) / cur.length));
  return {
    value: evidentlyPsiSum(referenceShares, currentShares),
    binning: 'evidently',
    referenceShares,
    currentShares,
    labels,
    referenceSize: ref.length,
    currentSize: cur.length,
  };
}

/** Categorical values as they arrive; null/undefined are missing. */
export type MaybeCategory = string | null | undefined;

function presentCategories(values: ArrayLike<MaybeCategory>): string[] {
  const out: string[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'string') out.push(v);
  }
  return out;
}

/**
 * Categorical PSI. Quantile binning (the default): one bin per reference category plus an "other"
 * bin for categories the reference never saw, zero shares replaced by `epsilon`. Evidently binning:
 * one bin per category seen in either sample with Evidently's zero replacement.
 */
export function psiCategorical(
  reference: ArrayLike<MaybeCategory>,
  current: ArrayLike<MaybeCategory>,
  options: PsiOptions = {},
): PsiResult {
  const binning = options.binning ?? 'quantile';
  const ref = presentCategories(reference);
  const cur = presentCategories(current);
  requireReference(ref.length, 'psi');
  if (cur.length === 0) return emptyResult(binning, ref.length);
  if (binning === 'evidently') return psiEvidentlyByKey(ref, cur);
  const epsilon = options.epsilon ?? DEFAULT_PSI_EPSILON;
  const { labels, referenceCounts, currentCounts } = categoryTable(ref, cur);
  const result = psiFromCounts(referenceCounts, currentCounts, epsilon);
  return { ...result, binning, labels, referenceSize: ref.length, currentSize: cur.length };
}

/**
 * Reference categories (sorted) plus OTHER_CATEGORY, with counts of both samples; current values
 * unknown to the reference are counted in "other".
 */
export function categoryTable(
  reference: readonly string[],
  current: readonly string[],
): { labels: string[]; referenceCounts: number[]; currentCounts: number[] } {
  const rc = valueCounts(reference);
  const labels = [...rc.keys()].sort();
  const index = new Map(labels.map((k, i) => [k, i] as const));
  const referenceCounts = labels.map((k) => rc.get(k) ?? 0);
  referenceCounts.push(0);
  const currentCounts = new Array<number>(labels.length + 1).fill(0);
  for (const v of current) {
    const i = index.get(v) ?? labels.length;
    currentCounts[i]! += 1;
  }
  return { labels: [...labels, OTHER_CATEGORY], referenceCounts, currentCounts };
}
