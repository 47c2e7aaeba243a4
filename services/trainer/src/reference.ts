import { PREDICTION_FEATURE, type ReferenceSet, referenceSet } from '@driftline/drift';
import { buildReferenceProfile, type ReferenceProfile } from '@driftline/stats';
import type { Dataset } from './dataset.js';

/**
 * The reference profiles of a new version, from its training split: one profile per feature
 * (numeric or categorical, as in the dataset) and the new model's own scores of those rows as
 * `__prediction__` (what prediction drift will be measured against once it serves). Columns with
 * no present value in the training split are left out.
 */
export function referenceFromDataset(model: string, version: string, ds: Dataset, scores: Float64Array): ReferenceSet {
  const train: number[] = [];
  for (let i = 0; i < ds.rows; i++) if (ds.holdout[i] === 0) train.push(i);
  const profiles = new Map<string, ReferenceProfile>();
  const add = (name: string, values: Array<number | null> | Array<string | null>) => {
    if (!values.some((v) => v !== null)) return;
    profiles.set(name, buildReferenceProfile(values));
  };
  for (const f of ds.features) {
    if (f.kind === 'numeric') {
      const v = f.values as Float64Array;
      add(
        f.name,
        train.map((i) => (Number.isNaN(v[i]!) ? null : v[i]!)),
      );
    } else {
      const v = f.values as ReadonlyArray<string | null>;
      add(
        f.name,
        train.map((i) => v[i] ?? null),
      );
    }
  }
  add(
    PREDICTION_FEATURE,
    train.map((i) => scores[i] ?? null),
  );
  return referenceSet(model, version, profiles);
}
