import { canaryPosition } from '@driftline/policy';

/** Salt of the sampling hash: independent of which entities a canary gets. */
const SALT = 'driftline:skew';

/**
 * Whether a prediction is in the skew sample at `rate` ∈ [0, 1]: MurmurHash3 of its id (the
 * canary's hash, with a salt of its own) below the rate. A function of the id alone, so a replay,
 * another instance or another partition assignment samples exactly the same predictions, and a
 * higher rate keeps every prediction a lower one sampled.
 */
export function isSampled(predictionId: string, rate: number): boolean {
  if (rate >= 1) return true;
  if (rate <= 0) return false;
  return canaryPosition(SALT, predictionId) < rate;
}

/**
 * What a prediction is sampled by ({@link isSampled}): its id, model, entity and event time. By the
 * id alone, predictions sharing one id — none at all (an empty `prediction_id`: a producer other
 * than the SDK) or a constant one (a producer's bug) — shared one hash and were all in the sample
 * or none of them: none at any rate up to ~0.42, so at the default 0.05 such a producer was never
 * monitored (a review). A function of the record still: replays, other instances and other
 * partition assignments sample the same predictions, and a higher rate keeps every one a lower
 * rate sampled.
 */
export function samplingKey(predictionId: string, model: string, entityId: string, eventTime: number): string {
  return `${predictionId}\u0000${model}\u0000${entityId}\u0000${eventTime}`;
}
