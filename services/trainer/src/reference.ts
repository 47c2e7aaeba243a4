import { PREDICTION_FEATURE, type ReferenceSet, referenceSet } from '@driftline/drift';
import { type CalibrationMap, fitIsotonicCalibration } from '@driftline/performance';
import { buildReferenceProfile, type ReferenceProfile } from '@driftline/stats';
import type { Dataset } from './dataset.js';
import { runNow, type Steps } from './steps.js';

/**
 * The reference profiles of a new version, from its training split: one profile per feature
 * (numeric or categorical, as in the dataset) and the new model's own scores of those rows as
 * `__prediction__` (what prediction drift will be measured against once it serves). Columns with
 * no present value in the training split are left out. Yields between features (steps.ts).
 */
export function* referenceSteps(
  model: string,
  version: string,
  ds: Dataset,
  scores: Float64Array,
): Steps<ReferenceSet> {
  const train: number[] = [];
  for (let i = 0; i < ds.rows; i++) if (ds.holdout[i] === 0) train.push(i);
  const profiles = new Map<string, ReferenceProfile>();
  const add = (name: string, values: Array<number | null> | Array<string | null>) => {
    if (!values.some((v) => v !== null)) return;
    profiles.set(name, buildReferenceProfile(values));
  };
  for (const f of ds.features) {
    yield;
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
  yield;
  add(
    PREDICTION_FEATURE,
    train.map((i) => scores[i] ?? null),
  );
  return referenceSet(model, version, profiles);
}

/** {@link referenceSteps} at once. */
export function referenceFromDataset(model: string, version: string, ds: Dataset, scores: Float64Array): ReferenceSet {
  return runNow(referenceSteps(model, version, ds, scores));
}

/** Fewer held-out rows than this (or a single class) calibrate nothing: the estimate uses raw scores. */
export const MIN_CALIBRATION_ROWS = 100;

/**
 * The CBPE calibration map of a new version: isotonic regression of its labels on its own scores,
 * fitted on the HELD-OUT slice — rows the model never trained on, so the map corrects the
 * over-confidence it will show on live data, not the optimism of its training fit. Undefined when
 * the slice is too small or holds one class only.
 */
export function calibrationFromDataset(ds: Dataset, scores: Float64Array): CalibrationMap | undefined {
  const s: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < ds.rows; i++) {
    const label = ds.label[i];
    const score = scores[i];
    if (ds.holdout[i] !== 1 || (label !== 0 && label !== 1) || score === undefined || !Number.isFinite(score)) continue;
    s.push(score);
    y.push(label);
  }
  const positives = y.reduce((a, b) => a + b, 0);
  if (s.length < MIN_CALIBRATION_ROWS || positives === 0 || positives === s.length) return undefined;
  return fitIsotonicCalibration(s, y);
}
