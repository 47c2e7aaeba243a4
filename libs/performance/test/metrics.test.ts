import { readFileSync } from 'node:fs';
import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import {
  classificationMetrics,
  estimateCbpe,
  identityCalibration,
  logLoss,
  type Metrics,
  OUT_OF_RANGE_SLOT,
  PROBABILITY_TOLERANCE,
  regressionMetrics,
  rocAuc,
  scoreSlot,
} from '../src/index.js';

/** The generator's parameters (see scripts/make_fixtures.py); the data themselves are stored beside them. */
interface ClassificationCase {
  readonly name: string;
  readonly threshold: number;
}

interface RegressionCase {
  readonly name: string;
}

interface Fixture {
  sklearn: string;
  classification: Array<{
    case: ClassificationCase;
    labels: number[];
    scores: number[];
    expected: Record<string, number | null>;
  }>;
  regression: Array<{
    case: RegressionCase;
    labels: number[];
    predictions: number[];
    expected: Record<string, number | null>;
  }>;
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/sklearn.json', import.meta.url), 'utf8')) as Fixture;

function expectClose(actual: Metrics, expected: Record<string, number | null>): void {
  for (const [name, want] of Object.entries(expected)) {
    const got = actual[name as keyof Metrics];
    if (want === null) {
      expect(got, name).toBeNull();
      continue;
    }
    expect(got, name).not.toBeNull();
    expect(Math.abs((got as number) - want), `${name}: ${got} vs sklearn ${want}`).toBeLessThanOrEqual(
      1e-9 * Math.max(1, Math.abs(want)),
    );
  }
}

describe('metric functions against scikit-learn (fixtures from scripts/make_fixtures.py)', () => {
  it('has fixtures', () => {
    expect(fixture.classification.length).toBeGreaterThanOrEqual(5);
    expect(fixture.regression.length).toBeGreaterThanOrEqual(3);
  });

  for (const c of fixture.classification) {
    it(`classification: ${c.case.name}`, () => {
      // The inputs are the exact data sklearn scored, stored in the fixture.
      expect(c.labels.length).toBe(c.scores.length);
      expectClose(classificationMetrics(c.labels, c.scores, c.case.threshold), c.expected);
    });
  }

  for (const c of fixture.regression) {
    it(`regression: ${c.case.name}`, () => {
      expect(c.labels.length).toBe(c.predictions.length);
      expectClose(regressionMetrics(c.labels, c.predictions), c.expected);
    });
  }
});

describe('edge cases', () => {
  it('ROC AUC is null with one class and counts ties one half', () => {
    expect(rocAuc([1, 1], [0.2, 0.9])).toBeNull();
    expect(rocAuc([0, 1], [0.5, 0.5])).toBe(0.5);
    expect(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])).toBe(0.75);
  });

  it('a few scores outside [0, 1] are left out of log loss and Brier; over MAX_OUT_OF_RANGE_SHARE they are null (found by a review)', () => {
    const labels = Float64Array.from({ length: 10_000 }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const scores = Float64Array.from({ length: 10_000 }, (_, i) => (i % 3 === 0 ? 0.7 : 0.2 + (i % 7) / 100));
    const clean = classificationMetrics(labels, scores);
    // One score of 1.0001 (a positive) had nulled the window's log loss and Brier.
    const one = classificationMetrics(Float64Array.from([...labels, 1]), Float64Array.from([...scores, 1.0001]));
    expect(one.log_loss).toBe(clean.log_loss);
    expect(one.brier).toBe(clean.brier);
    expect(one.roc_auc).not.toBeNull(); // the other metrics still count it
    // 101 of 10,101 (1%): left out; 102 of 10,102: null.
    const withBad = (k: number) =>
      classificationMetrics(
        Float64Array.from([...labels, ...new Array<number>(k).fill(0)]),
        Float64Array.from([...scores, ...new Array<number>(k).fill(-3)]),
      );
    expect(withBad(101).log_loss).toBe(clean.log_loss);
    expect(withBad(102).log_loss).toBeNull();
    expect(withBad(102).brier).toBeNull();
  });

  it('scores outside [0, 1] have no log loss or Brier (scikit-learn raises), the rest is computed (found by a review)', () => {
    const m = classificationMetrics([1, 0, 1, 0], [1.5, -0.2, 0.7, 0.3], 0.5);
    expect(m.log_loss).toBeNull();
    expect(m.brier).toBeNull();
    expect(m.roc_auc).toBe(1);
    expect(m.accuracy).toBe(1);
    expect(classificationMetrics([1, 0], [1, 0], 0.5).log_loss).not.toBeNull(); // the bounds themselves are probabilities
  });

  it('a score within PROBABILITY_TOLERANCE of [0, 1] is clipped into it, as CBPE takes it: log loss and Brier stay (found by a review)', () => {
    // A bad model (accuracy 0.2); one score of float rounding above 1 (0.56 + 0.34 + 0.1 in doubles).
    const labels = Float64Array.from({ length: 1000 }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const scores = Float64Array.from({ length: 1000 }, (_, i) => (i % 3 === 0 ? 0.2 : 0.8));
    scores[0] = 0.56 + 0.34 + 0.1;
    expect(scores[0]).toBe(1.0000000000000002);
    const m = classificationMetrics(labels, scores);
    // scikit-learn 1.9.1 on the clipped scores (scores[0] = 1.0; on the raw ones it raises
    // "y_prob contains values greater than 1"):
    //   log_loss(y, s) = 1.6078284745216656, brier_score_loss(y, s) = 0.6393600000000004
    expect(m.log_loss).not.toBeNull();
    expect(Math.abs(m.log_loss! - 1.6078284745216656)).toBeLessThanOrEqual(1e-9 * 1.6078284745216656);
    expect(Math.abs(m.brier! - 0.6393600000000004)).toBeLessThanOrEqual(1e-9);
    // One tolerance for the realized metrics and the CBPE grid: in for both, or out for both.
    for (const s of [1 + PROBABILITY_TOLERANCE / 2, -PROBABILITY_TOLERANCE / 2, 1.0000001192092896]) {
      expect(classificationMetrics([1, 0], [s, 0.3]).brier, String(s)).not.toBeNull();
      expect(scoreSlot(s, 0.5), String(s)).not.toBe(OUT_OF_RANGE_SLOT);
    }
    for (const s of [1 + 2 * PROBABILITY_TOLERANCE, -2 * PROBABILITY_TOLERANCE]) {
      expect(classificationMetrics([1, 0], [s, 0.3]).log_loss, String(s)).toBeNull();
      expect(scoreSlot(s, 0.5), String(s)).toBe(OUT_OF_RANGE_SLOT);
    }
    expect(estimateCbpe(scores, identityCalibration(), 0.5).accuracy).toBeCloseTo(0.8, 3);
  });

  it('a non-finite score is refused with VALIDATION_FAILED, as scikit-learn raises (found by a review)', () => {
    // Before, the NaN sorted nowhere and rocAuc returned 1 for these four rows.
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      let thrown: unknown;
      try {
        rocAuc([0, 1, 0, 1], [0.1, bad, 0.3, 0.9]);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(DriftlineError);
      expect((thrown as DriftlineError).code).toBe('VALIDATION_FAILED');
      expect((thrown as DriftlineError).message).toMatch(
        new RegExp(`roc_auc: score ${String(bad)} at 1 is not a finite number`),
      );
    }
    expect(() => classificationMetrics([0, 1, 0, 1], [0.1, Number.NaN, 0.3, 0.9])).toThrow(/not a finite number/);
    expect(() => logLoss([0, 1], [0.1, Number.NaN])).toThrow(/log_loss: score NaN at 1/);
  });

  it('log loss clips certain mistakes instead of returning Infinity', () => {
    const v = logLoss([1, 0], [0, 1]);
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeCloseTo(-Math.log(2.220446049250313e-16), 6);
  });

  it('empty samples give null metrics, mismatched lengths and non-binary labels throw', () => {
    expect(classificationMetrics([], []).accuracy).toBeNull();
    expect(regressionMetrics([], []).rmse).toBeNull();
    expect(() => regressionMetrics([1], [])).toThrow(/1 labels but 0 predictions/);
    expect(() => classificationMetrics([2], [0.5])).toThrow(/not 0 or 1/);
  });
});
