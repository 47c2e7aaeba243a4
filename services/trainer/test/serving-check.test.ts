import { SERVED_MODEL_LIMITS } from '@driftline/scoring';
import { describe, expect, it } from 'vitest';
import { servingProblem } from '../src/serving-check.js';
import { metaJson, modelJson } from './fixtures.js';

describe('the trainer checks its output as the model-server loads it', () => {
  it('loads what it serves; names what it refuses', () => {
    expect(servingProblem(JSON.parse(modelJson(['a', 'b'])), JSON.parse(metaJson(['a', 'b'])))).toBeUndefined();
    expect(servingProblem(JSON.parse(modelJson(['a', 'b'])), JSON.parse(metaJson(['a\0z', 'b'])))).toMatch(
      /meta\.features: differ from the model's feature_names/,
    );
    const wide = Array.from({ length: SERVED_MODEL_LIMITS.maxFeatures + 1 }, (_, i) => `f${i}`);
    expect(servingProblem(JSON.parse(modelJson(wide)), JSON.parse(metaJson(wide)))).toMatch(/num_feature/);
    expect(servingProblem(JSON.parse(modelJson(['a'], { trees: 3 })), JSON.parse(metaJson(['a', 'b'])))).toMatch(
      /lists 2 features but the model has 1/,
    );
  });
});
