import { describe, expect, it } from 'vitest';
import { loadXgboostModel } from '../src/index.js';
import { CASES, caseOf, modelText, rowMajor } from './fixtures.js';

const TOLERANCE = 1e-6;

function maxAbsDiff(got: Float64Array, want: ReadonlyArray<readonly number[]>): number {
  const flat = want.flat();
  expect(got.length).toBe(flat.length);
  let worst = 0;
  flat.forEach((w, i) => {
    worst = Math.max(worst, Math.abs(got[i]! - w));
  });
  return worst;
}

describe('parity with XGBoost predict on its own fixtures', () => {
  const worst: Record<string, string> = {};

  for (const name of CASES) {
    it(`${name}: predictions and margins within ${TOLERANCE} of XGBoost`, () => {
      const c = caseOf(name);
      const model = loadXgboostModel(modelText(name));
      expect(model.objective).toBe(c.objective);
      expect(model.xgboostVersion).toBe(c.xgboost);
      const rows = rowMajor(c.rows);
      expect(rows.some(Number.isNaN)).toBe(true); // the fixtures do exercise missing values
      const pred = model.predict(rows);
      const margin = model.predictMargin(rows);
      const dp = maxAbsDiff(pred, c.predict);
      const dm = maxAbsDiff(margin, c.margin);
      worst[name] = `predict ${dp.toExponential(2)}, margin ${dm.toExponential(2)}`;
      expect(dp).toBeLessThanOrEqual(TOLERANCE);
      expect(dm).toBeLessThanOrEqual(TOLERANCE);
      // Float32 input is read in place and gives the same answers.
      expect(maxAbsDiff(model.predict(Float32Array.from(rows)), c.predict)).toBe(dp);
      // One row at a time (the model-server's single call) equals the batch.
      if (model.numOutputs === 1) {
        const f = model.numFeatures;
        for (let r = 0; r < c.rows.length; r++) {
          expect(model.predictOne(rows.subarray(r * f, (r + 1) * f))).toBe(pred[r]);
        }
      }
    });
  }

  it('reports the worst differences seen', () => {
    console.info('scoring parity (max |Δ| vs XGBoost):', worst);
  });

  it('the big fixture is the size issue 12 asks for: ≥ 100 trees, depth ≥ 6, 10 features', () => {
    const doc = JSON.parse(modelText('binary-logistic')) as {
      learner: { gradient_booster: { model: { trees: Array<{ left_children: number[] }> } } };
    };
    const trees = doc.learner.gradient_booster.model.trees;
    const depth = (t: { left_children: number[]; right_children?: number[] }): number => {
      const kids = t as { left_children: number[]; right_children: number[] };
      const walk = (n: number): number =>
        kids.left_children[n] === -1 ? 0 : 1 + Math.max(walk(kids.left_children[n]!), walk(kids.right_children[n]!));
      return walk(0);
    };
    expect(trees.length).toBeGreaterThanOrEqual(100);
    expect(Math.max(...trees.map(depth))).toBeGreaterThanOrEqual(6);
    expect(loadXgboostModel(modelText('binary-logistic')).numFeatures).toBe(10);
  });

  it('the fixture rows probe float32 comparison: doubles that round onto a threshold', () => {
    // XGBoost reads a float64 row as float32, so a double just below a float32 threshold rounds onto
    // it and goes right; compared in double it would go left. The fixture holds such values, so
    // the parity test above fails for a scorer that compares in double.
    const doc = JSON.parse(modelText('binary-logistic')) as {
      learner: { gradient_booster: { model: { trees: Array<{ split_conditions: number[] }> } } };
    };
    const thresholds = new Set(
      doc.learner.gradient_booster.model.trees.flatMap((t) => t.split_conditions.map(Math.fround)),
    );
    const probes = caseOf('binary-logistic')
      .rows.flat()
      .filter((v): v is number => v !== null && Math.fround(v) !== v && thresholds.has(Math.fround(v)));
    expect(probes.length).toBeGreaterThan(50);
  });
});
