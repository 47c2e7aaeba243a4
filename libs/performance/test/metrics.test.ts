import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type ClassificationCase,
  classificationData,
  type RegressionCase,
  regressionData,
} from '../src/fixture-data.js';
import {
  classificationMetrics,
  compensatedSum,
  Lcg32,
  logLoss,
  type Metrics,
  regressionMetrics,
  rocAuc,
} from '../src/index.js';

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
      // The TypeScript generator reproduces the Python data bit for bit.
      const data = classificationData(c.case);
      expect(data.labels).toEqual(c.labels);
      expect(data.scores).toEqual(c.scores);
      expectClose(classificationMetrics(data.labels, data.scores, c.case.threshold), c.expected);
    });
  }

  for (const c of fixture.regression) {
    it(`regression: ${c.case.name}`, () => {
      const data = regressionData(c.case);
      expect(data.labels).toEqual(c.labels);
      expect(data.predictions).toEqual(c.predictions);
      expectClose(regressionMetrics(data.labels, data.predictions), c.expected);
    });
  }
});

describe('edge cases', () => {
  it('ROC AUC is null with one class and counts ties one half', () => {
    expect(rocAuc([1, 1], [0.2, 0.9])).toBeNull();
    expect(rocAuc([0, 1], [0.5, 0.5])).toBe(0.5);
    expect(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])).toBe(0.75);
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

  it('compensated summation survives catastrophic cancellation', () => {
    expect(compensatedSum([1e16, 1, -1e16])).toBe(1);
    expect(compensatedSum(Array.from({ length: 10 }, () => 0.1))).toBe(1);
  });

  it('the LCG is the Numerical Recipes one', () => {
    const rng = new Lcg32(0);
    expect(rng.nextUint32()).toBe(1_013_904_223);
    expect(rng.nextUint32()).toBe((1_664_525 * 1_013_904_223 + 1_013_904_223) % 4_294_967_296);
  });
});
