import { chi2Sf, chiSquareGoodnessOfFit, jensenShannon, ks2sampSorted, wassersteinSorted } from '@driftline/stats';

/** The tests Evidently's default selection picks from (its registered names). */
export type EvidentlyStattest = 'ks' | 'chisquare' | 'z' | 'wasserstein' | 'jensenshannon';

export interface EvidentlyDecision {
  /** The column type Evidently infers from the current table (pandas dtype rules). */
  readonly columnType: 'numerical' | 'categorical';
  readonly stattest: EvidentlyStattest;
  /** p-value (ks, chisquare, z) or distance (wasserstein normed, jensenshannon). */
  readonly score: number;
  readonly threshold: number;
  readonly drifted: boolean;
  /** Reference rows after dropping missing values: ≤ 1000 selects the p-value tests. */
  readonly referenceSize: number;
}

/** Evidently's default thresholds (StatTest.default_threshold). */
const THRESHOLD: Record<EvidentlyStattest, number> = {
  ks: 0.05,
  chisquare: 0.05,
  z: 0.05,
  wasserstein: 0.1,
  jensenshannon: 0.1,
};

/** pandas infers int64 for a column of integers without missing cells; Evidently calls int64 with ≤ 10 distinct values categorical. */
const INTEGER_CARDINALITY_LIMIT = 10;
/** `_get_default_stattest`: the p-value tests up to this many (non-missing) reference rows. */
const SMALL_SAMPLE = 1000;

/** Keys (sorted) and their counts on both sides. */
interface KeyCounts {
  readonly reference: Float64Array;
  readonly current: Float64Array;
}

/** Distinct values of a sorted array, up to `limit + 1` (enough to compare with `limit`). */
function distinctSorted(xs: Float64Array, limit: number): number {
  if (xs.length === 0) return 0;
  let n = 1;
  for (let i = 1; i < xs.length && n <= limit; i++) if (xs[i] !== xs[i - 1]) n++;
  return n;
}

/** Distinct values of two sorted arrays together, up to `limit + 1`. */
function distinctUnion(a: Float64Array, b: Float64Array, limit: number): number {
  let i = 0;
  let j = 0;
  let n = 0;
  let last = Number.NaN;
  while ((i < a.length || j < b.length) && n <= limit) {
    const x = j >= b.length || (i < a.length && a[i]! <= b[j]!) ? a[i++]! : b[j++]!;
    if (n === 0 || x !== last) {
      n++;
      last = x;
    }
  }
  return n;
}

/** Counts per distinct value of two sorted arrays, keys in ascending order. */
function countsSorted(a: Float64Array, b: Float64Array): KeyCounts {
  const reference: number[] = [];
  const current: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = j >= b.length || (i < a.length && a[i]! <= b[j]!) ? a[i]! : b[j]!;
    let ca = 0;
    let cb = 0;
    while (i < a.length && a[i] === x) {
      i++;
      ca++;
    }
    while (j < b.length && b[j] === x) {
      j++;
      cb++;
    }
    reference.push(ca);
    current.push(cb);
  }
  return { reference: Float64Array.from(reference), current: Float64Array.from(current) };
}

function sum(xs: Float64Array): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

/** Evidently's `_chi_stat_test`: goodness of fit with expected = reference counts · n_current / n_reference. */
function chiSquare(t: KeyCounts): number {
  return chiSquareGoodnessOfFit(t.current, t.reference).pValue;
}

/**
 * Evidently's `_z_stat_test`: two-proportion z-test of "not the smallest key"; p = 2·(1 − Φ(|z|)),
 * computed as the χ²(1) tail of z² (the same number, without the cancellation near 0). One value
 * on both sides: p = 1.
 */
function zTest(t: KeyCounts): number {
  if (t.reference.length === 1) return 1;
  const n1 = sum(t.reference);
  const n2 = sum(t.current);
  const p1 = (n1 - t.reference[0]!) / n1;
  const p2 = (n2 - t.current[0]!) / n2;
  const p = (p1 * n1 + p2 * n2) / (n1 + n2);
  const z = (p1 - p2) / Math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2));
  return Number.isNaN(z) ? Number.NaN : chi2Sf(z * z, 1);
}

/** Population standard deviation (numpy's np.std, ddof 0), two passes. */
function std(xs: Float64Array): number {
  let s = 0;
  for (const x of xs) s += x;
  const mean = s / xs.length;
  let ss = 0;
  for (const x of xs) ss += (x - mean) * (x - mean);
  return Math.sqrt(ss / xs.length);
}

function decide(stattest: EvidentlyStattest, score: number): boolean {
  const threshold = THRESHOLD[stattest];
  // Each test's own comparison: KS uses p ≤ threshold, chi-square and z use p < threshold,
  // the distances call drift at or above the threshold. NaN never drifts (as in Python).
  if (stattest === 'ks') return score <= threshold;
  if (stattest === 'chisquare' || stattest === 'z') return score < threshold;
  return score >= threshold;
}

/** The tests on few distinct values (or categories): chi-square / z on small samples, Jensen-Shannon on large. */
function countTest(small: boolean, distinct: number, counts: () => KeyCounts): [EvidentlyStattest, number] {
  if (small) {
    return distinct > 2 ? ['chisquare', chiSquare(counts())] : ['z', zTest(counts())];
  }
  const t = counts();
  return ['jensenshannon', jensenShannon(t.reference, t.current)];
}

function isIntegerColumn(values: Float64Array): boolean {
  for (const v of values) if (!Number.isInteger(v)) return false; // NaN (missing) makes pandas read float64
  return values.length > 0;
}

/**
 * The decision Evidently's DataDriftPreset (0.7, default options) makes for one column:
 * its column type from the current table (float → numerical; integers without missing cells →
 * categorical when ≤ 10 distinct, else numerical; text → categorical), missing values dropped,
 * then `_get_default_stattest`: with ≤ 1000 reference rows, ≤ 5 distinct values (both sides) or
 * categorical → chi-square (> 2 distinct) or z-test, else KS; with more rows, ≤ 5 distinct or
 * categorical → Jensen-Shannon on the value frequencies, else Wasserstein normed by the
 * reference's standard deviation (at least 0.001). Thresholds: 0.05 for p-values, 0.1 for distances.
 *
 * This one: a numeric column, from both samples' finite values sorted; `known` passes statistics
 * the caller already has for the same sorted samples (each is a full pass over both).
 */
export function evidentlyNumeric(
  ref: Float64Array,
  cur: Float64Array,
  currentValues: Float64Array,
  known: { readonly wasserstein?: number; readonly ksPValue?: number } = {},
  integerText?: boolean,
): EvidentlyDecision {
  // `1.0, 2.0` is a float64 column to pandas although its values are integers.
  const columnType =
    integerText !== false &&
    isIntegerColumn(currentValues) &&
    distinctSorted(cur, INTEGER_CARDINALITY_LIMIT) <= INTEGER_CARDINALITY_LIMIT
      ? 'categorical'
      : 'numerical';
  const distinct = distinctUnion(ref, cur, 5);
  const small = ref.length <= SMALL_SAMPLE;
  let result: [EvidentlyStattest, number];
  if (distinct <= 5 || columnType === 'categorical') {
    result = countTest(small, distinct, () => countsSorted(ref, cur));
  } else if (small) {
    result = ['ks', known.ksPValue ?? ks2sampSorted(ref, cur).pValue];
  } else {
    result = ['wasserstein', (known.wasserstein ?? wassersteinSorted(ref, cur)) / Math.max(std(ref), 0.001)];
  }
  return decision(columnType, result, ref.length);
}

/** Evidently's decision on a categorical column, from each sample's counts per category (missing left out). */
export function evidentlyCategorical(
  reference: ReadonlyMap<string, number>,
  current: ReadonlyMap<string, number>,
): EvidentlyDecision {
  // Sorted as Python sorts str (code points; the same order as code units outside astral text):
  // the z-test's first key is the smallest.
  const keys = [...new Set([...reference.keys(), ...current.keys()])].sort();
  const counts: KeyCounts = {
    reference: Float64Array.from(keys, (k) => reference.get(k) ?? 0),
    current: Float64Array.from(keys, (k) => current.get(k) ?? 0),
  };
  const referenceSize = sum(counts.reference);
  return decision(
    'categorical',
    countTest(referenceSize <= SMALL_SAMPLE, keys.length, () => counts),
    referenceSize,
  );
}

function decision(
  columnType: EvidentlyDecision['columnType'],
  [stattest, score]: [EvidentlyStattest, number],
  referenceSize: number,
): EvidentlyDecision {
  return {
    columnType,
    stattest,
    score,
    threshold: THRESHOLD[stattest],
    drifted: decide(stattest, score),
    referenceSize,
  };
}

/** Evidently's dataset verdict: drift when the share of drifted columns reaches `driftShare` (default 0.5). */
export function datasetDrift(
  columns: ReadonlyArray<{ readonly drifted: boolean }>,
  driftShare = 0.5,
): { drifted: number; share: number; datasetDrift: boolean } {
  const drifted = columns.filter((c) => c.drifted).length;
  const share = columns.length === 0 ? 0 : drifted / columns.length;
  return { drifted, share, datasetDrift: share >= driftShare };
}
