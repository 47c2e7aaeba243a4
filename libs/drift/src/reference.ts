import { createHash } from 'node:crypto';
import type { FeatureValue } from '@driftline/schemas';
import type { CategoricalReferenceProfile, ReferenceProfile } from '@driftline/stats';

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
  // A profile's float width is not in its id (older readers check the id against the content) but
  // changes how live values are binned: it is in the set's id, so a reference saved again with a
  // width is a new reference to the drift monitors' caches (they reload on a new id only), and
  // partials binned with and without it are never merged. Sets without widths keep their ids.
  const keys = profiles.map((p) =>
    p.kind === 'numeric' && p.floatBits !== undefined ? `${p.id}/f${p.floatBits}` : p.id,
  );
  const referenceId = createHash('sha256')
    .update(JSON.stringify([model, version, features, keys]))
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
 * The category of a boolean: `true` / `false`. One key everywhere: live events, the trainer,
 * Arrow/Parquet bools, pandas' CSV bool columns (`booleanCells`) and every profile stored before
 * da5dfd1 (which briefly keyed `True` / `False` and made every stored boolean profile drift).
 */
export function booleanCategory(v: boolean): 'true' | 'false' {
  return v ? 'true' : 'false';
}

/** The categories a profile uses for the two booleans. */
export interface BooleanSpelling {
  readonly true: string;
  readonly false: string;
}

export const CANONICAL_BOOLEANS: BooleanSpelling = { true: booleanCategory(true), false: booleanCategory(false) };
const PANDAS_BOOLEANS: BooleanSpelling = { true: 'True', false: 'False' };

/**
 * How live booleans are keyed against a categorical profile: as the profile spells them. A profile
 * built from a pandas CSV before today (cells kept as written) lists `True` / `False`; keyed
 * `true` / `false`, every live boolean would land in "other" and drift. Such a profile (`True` or
 * `False` among its categories, neither `true` nor `false`) gets `True` / `False`; any other the
 * canonical keys. Its stored id is untouched.
 */
export function booleanSpellingOf(profile: CategoricalReferenceProfile): BooleanSpelling {
  const { categories } = profile;
  const pandas = categories.includes(PANDAS_BOOLEANS.true) || categories.includes(PANDAS_BOOLEANS.false);
  if (!pandas) return CANONICAL_BOOLEANS;
  const canonical = categories.includes(CANONICAL_BOOLEANS.true) || categories.includes(CANONICAL_BOOLEANS.false);
  return canonical ? CANONICAL_BOOLEANS : PANDAS_BOOLEANS;
}

/**
 * A value for a categorical profile: strings as they are, numbers as text, booleans as the
 * profile spells them (`booleanSpellingOf`; canonical `booleanCategory` by default), else missing.
 */
export function categoricalValue(
  v: FeatureValue | undefined,
  booleans: BooleanSpelling = CANONICAL_BOOLEANS,
): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? booleans.true : booleans.false;
  return null;
}
