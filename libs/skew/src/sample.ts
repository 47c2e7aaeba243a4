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
