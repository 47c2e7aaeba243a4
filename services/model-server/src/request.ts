import { isWellFormed, MAX_ENTITY_LENGTH, MAX_STRING_FEATURE_LENGTH } from '@driftline/features';
import type { FeatureValue } from '@driftline/schemas';
import { badRequest, oneLine, parseJsonBody } from '@driftline/service/http';

/** One entity to score, with feature values that take precedence over the online store's. */
export interface Instance {
  readonly entityId: string;
  readonly features: Readonly<Record<string, FeatureValue>> | undefined;
  /**
   * The time the prediction is for (epoch ms), when the client sets it: replays, backfills, a
   * simulated clock. Checked against the event-time bounds by the handler; default: now.
   */
  readonly eventTime: number | undefined;
}

export interface PredictRequest {
  /** True for `{"instances": [...]}` (answered as `predictions`), false for one entity. */
  readonly batch: boolean;
  readonly instances: readonly Instance[];
}

export interface PredictLimits {
  /** Most instances one batch may hold. */
  readonly maxBatch: number;
  /** Largest request body in bytes (413 above). */
  readonly maxBodyBytes: number;
  /** Most feature values one instance may pass. */
  readonly maxFeatures: number;
}

export const DEFAULT_PREDICT_LIMITS: PredictLimits = { maxBatch: 1_000, maxBodyBytes: 1_048_576, maxFeatures: 256 };

/** Deepest nesting of a valid body is 4 (`{"instances":[{"features":{…}}]}`); checked before JSON.parse. */
const MAX_BODY_DEPTH = 6;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A feature's field in an error, built only for an error: escaping every name cost ~3% of a batch request. */
const featureField = (where: string, name: string) => `${where}.features.${oneLine(name)}`;

function instance(json: unknown, where: string, maxFeatures: number): Instance {
  if (!isObject(json)) throw badRequest(`${where}: expected an object with entity_id`);
  let features: Record<string, FeatureValue> | undefined;
  for (const key in json) {
    if (Object.hasOwn(json, key) && key !== 'entity_id' && key !== 'features' && key !== 'event_time') {
      throw badRequest(`${where}: unknown field "${oneLine(key)}"`);
    }
  }
  const id = json.entity_id;
  if (typeof id !== 'string' || id.length === 0) throw badRequest(`${where}.entity_id: must be a non-empty string`);
  if (id.length > MAX_ENTITY_LENGTH) throw badRequest(`${where}.entity_id: at most ${MAX_ENTITY_LENGTH} characters`);
  if (!isWellFormed(id)) throw badRequest(`${where}.entity_id: not well-formed Unicode`);
  if (json.features !== undefined) {
    if (!isObject(json.features)) throw badRequest(`${where}.features: expected an object of feature values`);
    features = json.features as Record<string, FeatureValue>;
    let n = 0;
    for (const name in features) {
      if (++n > maxFeatures) throw badRequest(`${where}.features: at most ${maxFeatures} feature values`);
      const v = features[name];
      if (v !== null && typeof v !== 'number' && typeof v !== 'string' && typeof v !== 'boolean') {
        throw badRequest(`${featureField(where, name)}: expected a number, string, boolean or null`);
      }
      // JSON has no Infinity, but 1e999 parses to it: refused, as feature events refuse it.
      if (typeof v === 'number' && !Number.isFinite(v))
        throw badRequest(`${featureField(where, name)}: must be a finite number`);
      // The value is logged with the prediction (held while Kafka is down): bounded as feature events are.
      if (typeof v === 'string') {
        if (v.length > MAX_STRING_FEATURE_LENGTH) {
          throw badRequest(
            `${featureField(where, name)}: at most ${MAX_STRING_FEATURE_LENGTH} characters, got ${v.length}`,
          );
        }
        // A lone surrogate is scored as it is but logged (UTF-8) as U+FFFD: the log would not show what the model saw.
        if (!isWellFormed(v)) throw badRequest(`${featureField(where, name)}: not well-formed Unicode`);
      }
    }
  }
  const t = json.event_time;
  if (t !== undefined && !Number.isSafeInteger(t)) {
    throw badRequest(`${where}.event_time: must be an integer of epoch milliseconds`);
  }
  return { entityId: id, features, eventTime: t as number | undefined };
}

/**
 * The JSON body of `POST /v1/models/{model}:predict`: `{"entity_id", "features"?, "event_time"?}`
 * or `{"instances": [{"entity_id", "features"?, "event_time"?}, ...]}` (1 to maxBatch). Every
 * malformed part is a 400 that names the field.
 */
export function parsePredictBody(text: string, limits: PredictLimits): PredictRequest {
  // An object wider than an instance can be (its features, entity_id, event_time) is refused before
  // JSON.parse: 60,000 keys cost up to 190 ms of the serving thread to parse.
  const json = parseJsonBody(text, MAX_BODY_DEPTH, { maxMembers: limits.maxFeatures + 3 });
  if (!isObject(json)) throw badRequest('body: expected {"entity_id": …} or {"instances": […]}');
  if (!('instances' in json)) return { batch: false, instances: [instance(json, 'body', limits.maxFeatures)] };
  for (const key of Object.keys(json)) {
    if (key !== 'instances') throw badRequest(`body: unknown field "${oneLine(key)}" next to instances`);
  }
  const list = json.instances;
  if (!Array.isArray(list) || list.length === 0) throw badRequest('instances: must be a non-empty array');
  if (list.length > limits.maxBatch) {
    throw badRequest(`instances: at most ${limits.maxBatch} per request, got ${list.length}`);
  }
  return { batch: true, instances: list.map((x, i) => instance(x, `instances[${i}]`, limits.maxFeatures)) };
}
