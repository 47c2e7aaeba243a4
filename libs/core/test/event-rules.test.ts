import { describe, expect, it } from 'vitest';
import {
  isMeasurable,
  labelFieldsProblem,
  MAX_METRIC_MAGNITUDE,
  measureProblem,
  PREDICTION_ROLES,
  predictionFieldsProblem,
  predictionIdProblem,
  predictionRoleProblem,
} from '../src/index.js';

const prediction = { prediction_id: 'p1', model: 'churn', model_version: '3', prediction: 0.5 };
const label = { prediction_id: 'p1', model: 'churn', label: 1 };

describe('prediction and label rules (the SDK at the call, the consumers at their edge)', () => {
  it('prediction_id: 1..512 characters', () => {
    expect(predictionIdProblem('p')).toBeUndefined();
    expect(predictionIdProblem('p'.repeat(512))).toBeUndefined();
    expect(predictionIdProblem('')).toBe('prediction_id must be 1..512 characters (got 0)');
    expect(predictionIdProblem('p'.repeat(513))).toBe('prediction_id must be 1..512 characters (got 513)');
  });

  it('role: production, canary or shadow, none meaning production; the text quoted is bounded', () => {
    for (const role of [undefined, ...PREDICTION_ROLES]) expect(predictionRoleProblem(role)).toBeUndefined();
    expect(predictionRoleProblem('SHADOW')).toBe('role "SHADOW" is not production, canary or shadow');
    expect(predictionRoleProblem('x'.repeat(10_000))).toBe(
      `role "${'x'.repeat(64)}" is not production, canary or shadow`,
    );
  });

  it('measures: finite within ±1e100', () => {
    expect(isMeasurable(MAX_METRIC_MAGNITUDE)).toBe(true);
    expect(isMeasurable(-MAX_METRIC_MAGNITUDE)).toBe(true);
    expect(isMeasurable(1e101)).toBe(false);
    expect(measureProblem('label', Number.NaN)).toBe('label is NaN: not a finite number');
    expect(measureProblem('label', -1e200)).toBe('label is -1e+200: beyond ±1e+100');
    expect(measureProblem('label', 0)).toBeUndefined();
  });

  it('a prediction: id, model names, role, prediction, scores', () => {
    expect(predictionFieldsProblem(prediction)).toBeUndefined();
    expect(predictionFieldsProblem({ ...prediction, model_version: '' })).toBe(
      'model_version must be 1..256 characters (got 0)',
    );
    expect(predictionFieldsProblem({ ...prediction, model: 'm'.repeat(257) })).toBe(
      'model must be 1..256 characters (got 257)',
    );
    expect(predictionFieldsProblem({ ...prediction, prediction_id: '' })).toMatch(/^prediction_id must be/);
    expect(predictionFieldsProblem({ ...prediction, role: 'Canary' })).toMatch(/^role "Canary" is not/);
    expect(predictionFieldsProblem({ ...prediction, prediction: 1e200 })).toBe('prediction is 1e+200: beyond ±1e+100');
    expect(predictionFieldsProblem({ ...prediction, scores: { v1: Number.NaN } })).toBe(
      'scores["v1"] is NaN: not a finite number',
    );
    // Scores are not bounded by the magnitude (the paired comparison reads them as they are).
    expect(predictionFieldsProblem({ ...prediction, scores: { v1: 1e200 } })).toBeUndefined();
  });

  it('a prediction: unscored versions hold a known role and are not in scores', () => {
    expect(predictionFieldsProblem({ ...prediction, scores: { v1: 0.5 }, unscored: { v2: 'canary' } })).toBeUndefined();
    expect(predictionFieldsProblem({ ...prediction, unscored: { v2: 'Shadow' } })).toMatch(
      /^unscored\["v2"\]: role "Shadow" is not production, canary or shadow$/,
    );
    expect(predictionFieldsProblem({ ...prediction, scores: { v2: 0.5 }, unscored: { v2: 'shadow' } })).toBe(
      'unscored["v2"]: the version is in scores too',
    );
    expect(predictionFieldsProblem({ ...prediction, unscored: { [prediction.model_version]: 'production' } })).toBe(
      `unscored[${JSON.stringify(prediction.model_version)}]: the version that answered the record`,
    );
  });

  it('a label: id, model, label, and a finite value (one that is not finite counts as none)', () => {
    expect(labelFieldsProblem(label)).toBeUndefined();
    expect(labelFieldsProblem({ ...label, value: null })).toBeUndefined();
    expect(labelFieldsProblem({ ...label, value: Number.POSITIVE_INFINITY })).toBeUndefined();
    expect(labelFieldsProblem({ ...label, model: '' })).toBe('model must be 1..256 characters (got 0)');
    expect(labelFieldsProblem({ ...label, prediction_id: 'p'.repeat(513) })).toMatch(/^prediction_id must be/);
    expect(labelFieldsProblem({ ...label, label: Number.NaN })).toBe('label is NaN: not a finite number');
    expect(labelFieldsProblem({ ...label, label: 1e101 })).toBe('label is 1e+101: beyond ±1e+100');
    expect(labelFieldsProblem({ ...label, value: -1e200 })).toBe('value is -1e+200: beyond ±1e+100');
  });
});
