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
 * What a prediction is sampled by ({@link isSampled}): its id, or for a prediction without one (an
 * empty `prediction_id`: a producer other than the SDK) its model, entity and event time. Sampled by
 * the empty id, such predictions were all in the sample or none of them — none at any rate up to
 * ~0.42, so at the default 0.05 a producer sending no ids was never monitored (a review). A
 * function of the record still: replays and other instances sample the same ones. A constant
 * non-empty id is not told apart (all or none again).
 */
export function samplingKey(predictionId: string, model: string, entityId: string, eventTime: number): string {
  return predictionId !== '' ? predictionId : `\u0000${model}\u0000${entityId}\u0000${eventTime}`;
}
