/** Fewest labelled predictions of each class before their delays are compared (fewer: no verdict). */
export const LABEL_DELAY_MIN_PER_LABEL = 30;
/** One class's median delay at least this many times the other's... */
export const LABEL_DELAY_RATIO = 2;
/** ...and at least this much longer: delays of seconds against a minute order nothing that matters. */
export const LABEL_DELAY_MIN_GAP_MS = 10 * 60_000;

/** A model's label delays (label time − prediction time) by binary label: counts and medians (ms). */
export interface LabelDelays {
  readonly positives: number;
  readonly negatives: number;
  /** NaN when there is no positive. */
  readonly positiveMedianMs: number;
  /** NaN when there is no negative. */
  readonly negativeMedianMs: number;
}

/**
 * Whether one class's labels arrive much later than the other's: both classes with at least
 * {@link LABEL_DELAY_MIN_PER_LABEL} labels, and one median delay at least {@link LABEL_DELAY_RATIO}
 * times and {@link LABEL_DELAY_MIN_GAP_MS} longer than the other's. That is what `label_maturity`
 * exists for: in arrival order the faster class comes first, a comparison's early pairs measure
 * the versions on it alone, and the sequential test's guarantee is void (chargebacks: a worse
 * candidate promoted 100 times in 100, found by a review). A heuristic on medians, for a warning:
 * a dependence that leaves the medians alike goes unseen.
 */
export function labelOrderBiased(d: LabelDelays): boolean {
  if (d.positives < LABEL_DELAY_MIN_PER_LABEL || d.negatives < LABEL_DELAY_MIN_PER_LABEL) return false;
  const slow = Math.max(d.positiveMedianMs, d.negativeMedianMs);
  const fast = Math.max(0, Math.min(d.positiveMedianMs, d.negativeMedianMs));
  return slow - fast >= LABEL_DELAY_MIN_GAP_MS && slow >= LABEL_DELAY_RATIO * fast;
}
