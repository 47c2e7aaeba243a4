import { describe, expect, it } from 'vitest';
import { alertNameProblem, eventNameProblem, MAX_MODEL_NAME_LENGTH, modelNameProblem } from '../src/names.js';

describe('model and version names of events', () => {
  it('are 1..256 characters', () => {
    expect(modelNameProblem('m', 'v'.repeat(MAX_MODEL_NAME_LENGTH))).toBeUndefined();
    expect(modelNameProblem('m'.repeat(MAX_MODEL_NAME_LENGTH + 1), 'v')).toBe(
      'model must be 1..256 characters (got 257)',
    );
    expect(modelNameProblem('m', '')).toBe('model_version must be 1..256 characters (got 0)');
    expect(eventNameProblem('model', 'fraud')).toBeUndefined();
  });

  it("of alerts: the model 1..256 characters, the version 0..256 (the skew-monitor's alerts for predictions without one)", () => {
    expect(alertNameProblem('m', '')).toBeUndefined();
    expect(alertNameProblem('m', 'v'.repeat(MAX_MODEL_NAME_LENGTH))).toBeUndefined();
    expect(alertNameProblem('m', 'v'.repeat(MAX_MODEL_NAME_LENGTH + 1))).toBe(
      'model_version must be 0..256 characters (got 257)',
    );
    expect(alertNameProblem('', '')).toBe('model must be 1..256 characters (got 0)');
    expect(alertNameProblem('m'.repeat(MAX_MODEL_NAME_LENGTH + 1), 'v')).toBe(
      'model must be 1..256 characters (got 257)',
    );
  });
});
