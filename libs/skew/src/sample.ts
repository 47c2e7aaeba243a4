import { canaryPosition } from '@driftline/policy';
import type { FeatureValue } from '@driftline/schemas';

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

/**
 * What a re-sent prediction is known by among those of its (model, version, window) — `group`, a
 * {@link groupId} — : its id with its entity and the features it carried. A re-send (a call retried
 * whole, the SDK's returned events published again, a call retried with its input drawing a new
 * event time) repeats all three; predictions that merely share an id do not. The SDK leaves
 * `prediction_id` to the caller (1–512 characters, unique by contract only): keyed by the id alone,
 * a producer reusing one (`"0"`, `"null"`) had every sampled prediction of a window after the first
 * taken for a re-send — about one comparison per window, never `minCompared`, no alert (a review).
 * The features are taken in the record's own order (a re-send of the same event encodes them in
 * the same order; another order only makes the copy count, the safe side). Predictions sharing an
 * id, an entity and every feature value within a window are still taken for one: the same served
 * vector compared once.
 */
export function resendKey(
  group: string,
  predictionId: string,
  entityId: string,
  features: Readonly<Record<string, FeatureValue>>,
): string {
  let key = `${group}\u0000${predictionId.length}:${predictionId}${entityId.length}:${entityId}`;
  for (const name in features) key += `\u0000${JSON.stringify(name)}=${valueText(features[name]!)}`;
  return key;
}

/** A feature value as text, types apart ("1" the string vs 1 the number), NaN and ±Infinity kept (JSON writes null). */
function valueText(v: FeatureValue): string {
  return typeof v === 'string' ? JSON.stringify(v) : typeof v === 'number' ? `n${v}` : String(v);
}
