// The trainer worker's save format (services/trainer/worker/train.py): model.json next to a
// meta.json with the feature order and the categorical codes it trained with. This turns a feature
// record — as producers send it and as services/trainer/src/dataset.ts reads it — into the
// model's input row, with exactly the encoding the worker used.
import { ModelFormatError, ScoringInputError } from './errors.js';
import type { XgboostModel } from './model.js';

export interface TrainerFeatureEncoder {
  /** Feature names in model input order. */
  readonly features: readonly string[];
  /** The features trained as categories (meta.json `categories`): their values are strings. */
  readonly categorical: ReadonlySet<string>;
  /**
   * Writes one record's row into `out` at `offset` (features.length values). Numbers as they are,
   * booleans as 0/1, null/undefined/absent as missing (NaN); a categorical feature's value becomes its
   * training code (the index in the sorted training categories; `String(value)` first, as the
   * dataset does), an unseen category is missing. Throws `ScoringInputError` naming the feature for
   * a value the model cannot take (a string for a numeric feature, an object, an array).
   */
  encode(record: Readonly<Record<string, unknown>>, out: Float32Array | Float64Array, offset?: number): void;
}

function metaFail(field: string, message: string): never {
  throw new ModelFormatError(`meta.${field}`, message);
}

/**
 * Whether a number is missing as XGBoost stores features (float32): NaN, ±Infinity, or a finite
 * number float32 rounds to ±Infinity (|v| ≥ ~3.4028235677973366e38). The one rule of the scorer,
 * the model server's prediction log and the trainer's dataset.
 */
export function missingAsFloat32(x: number): boolean {
  return !Number.isFinite(Math.fround(x));
}

/**
 * The encoder of a trainer-produced model from its meta.json (text or parsed). With `model`, checks
 * that the model's feature names are meta.features in the same order.
 */
export function trainerFeatureEncoder(meta: unknown, model?: XgboostModel): TrainerFeatureEncoder {
  let doc = meta;
  if (typeof meta === 'string') {
    try {
      doc = JSON.parse(meta);
    } catch (error) {
      throw new ModelFormatError('meta', `not JSON: ${(error as Error).message}`, { cause: error });
    }
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) metaFail('(document)', 'expected an object');
  const m = doc as Record<string, unknown>;
  if (!Array.isArray(m.features) || m.features.some((f) => typeof f !== 'string'))
    metaFail('features', 'expected an array of feature names');
  const features = m.features as string[];
  // The count against the model first, and a Set: features.includes per category was quadratic
  // (200,000 names in a 4.4 MB meta.json blocked the serving thread 19.7 s, on every retry).
  if (model !== undefined && model.numFeatures !== features.length)
    metaFail('features', `lists ${features.length} features but the model has ${model.numFeatures}`);
  const featureSet = new Set(features);
  if (featureSet.size !== features.length) metaFail('features', 'feature names repeat');
  const cats = m.categories ?? {};
  if (cats === null || typeof cats !== 'object' || Array.isArray(cats)) metaFail('categories', 'expected an object');
  const codes = new Map<string, Map<string, number>>();
  for (const [name, list] of Object.entries(cats)) {
    if (!featureSet.has(name)) metaFail(`categories.${name}`, 'not one of meta.features');
    if (!Array.isArray(list) || list.some((c) => typeof c !== 'string'))
      metaFail(`categories.${name}`, 'expected an array of strings');
    codes.set(name, new Map((list as string[]).map((c, i) => [c, i])));
  }
  if (model !== undefined) {
    const names = model.featureNames;
    if (names?.some((n, i) => n !== features[i]))
      metaFail('features', `differ from the model's feature_names (${names.join(', ')})`);
  }
  const columns = features.map((name) => ({ name, codes: codes.get(name) }));
  return {
    features,
    categorical: new Set(codes.keys()),
    encode(record, out, offset = 0) {
      for (let i = 0; i < columns.length; i++) {
        const { name, codes: table } = columns[i]!;
        const v = Object.hasOwn(record, name) ? record[name] : undefined;
        let x: number;
        if (v === null || v === undefined) x = Number.NaN;
        else if (typeof v !== 'number' && typeof v !== 'string' && typeof v !== 'boolean')
          throw new ScoringInputError(
            `features.${name}`,
            `expected a number, string or boolean, got ${Array.isArray(v) ? 'an array' : typeof v}`,
          );
        else if (table !== undefined) x = table.get(String(v)) ?? Number.NaN;
        // Beyond float32 (what XGBoost stores) a number is missing, as the trainer reads it: taken
        // as ±Infinity it went down the split's other branch from the one the model learned.
        else if (typeof v === 'number') x = missingAsFloat32(v) ? Number.NaN : v;
        else if (typeof v === 'boolean') x = v ? 1 : 0;
        else
          throw new ScoringInputError(
            `features.${name}`,
            'expected a number or boolean (a numeric feature), got a string',
          );
        out[offset + i] = x;
      }
    },
  };
}
