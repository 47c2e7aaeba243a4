import type { FeatureValue } from '@driftline/schemas';
import { type SkewCounts, saturatedSum, stalenessBucket } from './counts.js';

/**
 * When two numbers count as equal: |a − b| ≤ max(absolute, relative · max(|a|, |b|)) — the rule of
 * Python's `math.isclose`. Doubles round-trip exactly through the store, so the defaults are tight;
 * a producer that rounds (or sends floats) needs a looser `relative`.
 */
export interface Tolerance {
  readonly relative: number;
  readonly absolute: number;
}

export const DEFAULT_TOLERANCE: Tolerance = { relative: 1e-9, absolute: 0 };

// NaN is missing, as null is: the usual "missing" encoding of model inputs (XGBoost's default) and
// what @driftline/quality counts as null. (The store never holds NaN.) So is a finite number that
// float32 rounds to ±Infinity (|v| ≥ 3.4028235677973366e38): XGBoost stores float32, the scorer and
// the trainer read it as missing, and the model-server logs it as null while the store keeps it as
// written (-1e300); compared as a value, every prediction of the entity was a mismatch, a false
// TRAINING_SERVING_SKEW (found by a review). Both sides by the same rule, so a categorical
// feature's number (logged as sent) agrees with its row. ±Infinity stays a value (`sameValue`):
// neither the model-server's log nor the store carries one, so it comes from another producer.
const isMissing = (value: FeatureValue): boolean =>
  value === null ||
  (typeof value === 'number' &&
    (Number.isNaN(value) || (Number.isFinite(value) && !Number.isFinite(Math.fround(value)))));

/**
 * Whether a served and a stored value agree, and their absolute difference when both are finite
 * numbers. ±Infinity equals only itself and has no difference: |a − b| would be Infinity or NaN, and
 * the relative bound (relative · ∞) would call it equal to every number. (The store holds finite
 * doubles only, so a served ±Infinity is always a mismatch.) NaN and finite numbers beyond float32
 * are `observe`'s business: missing.
 */
export function sameValue(
  served: FeatureValue,
  stored: FeatureValue,
  tolerance: Tolerance,
): { readonly equal: boolean; readonly absDiff?: number } {
  if (typeof served === 'number' && typeof stored === 'number') {
    if (!Number.isFinite(served) || !Number.isFinite(stored)) return { equal: served === stored };
    const absDiff = Math.abs(served - stored);
    const bound = Math.max(tolerance.absolute, tolerance.relative * Math.max(Math.abs(served), Math.abs(stored)));
    return { equal: absDiff <= bound, absDiff };
  }
  // Strings and booleans by equality; a type difference (a string served for a double) is a mismatch.
  return { equal: served === stored };
}

/** The stored side of one comparison: the row's event time and the feature's value in it. */
export interface StoredValue {
  readonly eventTime: number;
  readonly value: FeatureValue;
}

/**
 * Adds one (sampled prediction, feature) to `counts`: what the model saw (`served`, as the
 * prediction carries it) against the online row of the entity (`stored`, undefined when the store
 * has no row, `'expired'` when it has none and any row the prediction could have been served was
 * past the view's TTL at the read: counted `expired`, not `missingInStore`). A row newer than the prediction is not what the model could have seen: counted as
 * `newerRow`, not compared. NaN or a finite number beyond float32 on either side is missing, as
 * null is. See SkewCounts for every outcome.
 */
export function observe(
  counts: SkewCounts,
  served: FeatureValue,
  stored: StoredValue | 'expired' | undefined,
  predictionTime: number,
  tolerance: Tolerance,
): void {
  counts.sampled++;
  if (stored === undefined) {
    counts.missingInStore++;
    return;
  }
  if (stored === 'expired') {
    counts.expired++;
    return;
  }
  if (stored.eventTime > predictionTime) {
    counts.newerRow++;
    return;
  }
  counts.compared++;
  counts.stalenessHist[stalenessBucket(predictionTime - stored.eventTime)]!++;
  const servedMissing = isMissing(served);
  const storedMissing = isMissing(stored.value);
  if (servedMissing || storedMissing) {
    if (!storedMissing) {
      counts.missingInPrediction++;
      counts.mismatched++;
    } else if (!servedMissing) {
      counts.missingInStore++;
      counts.mismatched++;
    }
    return; // both missing: they agree
  }
  const { equal, absDiff } = sameValue(served, stored.value, tolerance);
  if (absDiff !== undefined) {
    counts.numericCompared++;
    counts.absDiffSum = saturatedSum(counts.absDiffSum, absDiff);
  }
  if (!equal) counts.mismatched++;
}
