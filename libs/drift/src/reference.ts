import { createHash } from 'node:crypto';
import type { FeatureValue } from '@driftline/schemas';
import type { ReferenceProfile } from '@driftline/stats';

/** Feature name under which the prediction itself is profiled (prediction drift). */
export const PREDICTION_FEATURE = '__prediction__';
/** Feature name under which the predicted class is profiled (categorical prediction drift). */
export const PREDICTED_CLASS_FEATURE = '__predicted_class__';

/** True for the two profiles of the model's output (prediction drift), false for input features. */
export function isPredictionFeature(feature: string): boolean {
  return feature === PREDICTION_FEATURE || feature === PREDICTED_CLASS_FEATURE;
}

/** Every feature profile of one model version, as one unit with one id. */
export interface ReferenceSet {
  readonly model: string;
  readonly version: string;
  /** Fingerprint of (model, version, every feature's profile id): equal data, equal id. */
  readonly referenceId: string;
  /** Feature names, sorted; `profiles[i]` belongs to `features[i]`. */
  readonly features: readonly string[];
  readonly profiles: readonly ReferenceProfile[];
}

/** Builds a ReferenceSet (features sorted, id derived from the content). */
export function referenceSet(
  model: string,
  version: string,
  byFeature: ReadonlyMap<string, ReferenceProfile>,
): ReferenceSet {
  const features = [...byFeature.keys()].sort();
  const profiles = features.map((f) => byFeature.get(f)!);
  const referenceId = createHash('sha256')
    .update(JSON.stringify([model, version, features, profiles.map((p) => p.id)]))
    .digest('hex')
    .slice(0, 24);
  return { model, version, referenceId, features, profiles };
}

/** A value for a numeric profile: numbers as they are, booleans as 0/1, anything else missing. */
export function numericValue(v: FeatureValue | undefined): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return null;
}

/**
 * The category of a boolean: `True` / `False`, as pandas writes a bool column to CSV and as
 * Evidently names its values — so a profile from a pandas CSV, one from Arrow or Parquet and live
 * events key booleans alike (before, live events and Arrow said `true` against the CSV's `True`:
 * every value drifted).
 */
export function booleanCategory(v: boolean): 'True' | 'False' {
  return v ? 'True' : 'False';
}

/** A value for a categorical profile: strings as they are, numbers as text, booleans as `booleanCategory`, else missing. */
export function categoricalValue(v: FeatureValue | undefined): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return booleanCategory(v);
  return null;
}
