import { describe, expect, it } from 'vitest';
import {
  evaluateBounds,
  evaluateEstimateBounds,
  judgedCoverage,
  parseBounds,
  performanceAlertId,
} from '../src/alerts.js';
import { estimateCbpe, identityCalibration } from '../src/cbpe.js';
import { computeWindow } from '../src/windows.js';
import { plusMinusOneWindow, windowOf } from './window-of.js';

const estimate = estimateCbpe(
  Array.from({ length: 200 }, (_, i) => (i % 100) / 100),
  identityCalibration(),
  0.5,
);
const bounds = parseBounds('roc_auc<0.99,accuracy<0.2,log_loss>0.1,business_net<0', 'B');

describe('alerts on the CBPE estimate and on business metrics', () => {
  it('judges the estimable metrics only, with enough scored predictions, while labels are few', () => {
    const breaches = evaluateEstimateBounds(estimate, 0.1, bounds, { minSamples: 100, realizedCoverage: 0.5 });
    expect(breaches.map((b) => b.bound.metric)).toEqual(['roc_auc']);
    expect(breaches[0]?.value).toBe(estimate.roc_auc);
    expect(evaluateEstimateBounds(estimate, 0.5, bounds, { minSamples: 100, realizedCoverage: 0.5 })).toEqual([]);
    expect(evaluateEstimateBounds(estimate, null, bounds, { minSamples: 201, realizedCoverage: 0.5 })).toEqual([]);
  });

  it('judges the estimate of a window whose invalid labels left no realized metrics (found by a review)', () => {
    // 200 predictions scored 0.55, labels −1/+1: 100 valid labels cover half the window, which had
    // skipped the estimate (realized judges from 0.5) while the realized accuracy (1) judged nothing.
    const scores = Array.from({ length: 200 }, () => 0.55);
    const rows = plusMinusOneWindow();
    const accuracy = parseBounds('accuracy<0.8', 'B');
    expect(evaluateBounds(rows, accuracy, { minSamples: 100, includeSegments: false })).toEqual([]);
    expect(judgedCoverage(rows[0])).toBeNull();
    const breaches = evaluateEstimateBounds(
      estimateCbpe(scores, identityCalibration(), 0.5),
      judgedCoverage(rows[0]),
      accuracy,
      { minSamples: 100, realizedCoverage: 0.5 },
    );
    expect(breaches.map((b) => [b.bound.metric, b.value])).toEqual([['accuracy', expect.closeTo(0.55, 12)]]);
  });

  it('a business bound is judged on the whole window with the business metrics given', () => {
    const rows = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: ['c'],
      maxSegments: 5,
      window: windowOf(1, [
        { prediction: 0.9, label: 1, segments: ['a'] },
        { prediction: 0.1, label: 0, segments: ['a'] },
      ]),
      pending: 0,
    });
    const business = { value_caught: 1, value_missed: 0, false_alarm_cost: 3, business_net: -2 };
    const found = evaluateBounds(rows, bounds, { minSamples: 1, includeSegments: true, business });
    expect(found.filter((b) => b.bound.metric === 'business_net').map((b) => [b.row.segment, b.value])).toEqual([
      ['__all__', -2],
    ]);
    expect(
      evaluateBounds(rows, bounds, { minSamples: 1, includeSegments: true }).map((b) => b.bound.metric),
    ).not.toContain('business_net');
  });

  it('counts valid labels for the minimum, and never judges a segment valued `__all__` with segments off (found by a review)', () => {
    const accuracy = parseBounds('accuracy<0.9', 'B');
    // 995 labels of 2 (invalid) and 5 wrong valid ones: 5 rows must not be judged against 100.
    const invalid = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: [],
      maxSegments: 5,
      window: windowOf(0, [
        ...Array.from({ length: 995 }, () => ({ prediction: 0.9, label: 2, segments: [] })),
        ...Array.from({ length: 5 }, () => ({ prediction: 0.9, label: 0, segments: [] })),
      ]),
      pending: 0,
    });
    expect(invalid[0]).toMatchObject({ labeled: 1000, invalidLabels: 995 });
    expect(evaluateBounds(invalid, accuracy, { minSamples: 100, includeSegments: false })).toEqual([]);
    // Nor judged at all: with invalid labels the window has no classification metrics.
    expect(evaluateBounds(invalid, accuracy, { minSamples: 5, includeSegments: false })).toEqual([]);
    // A segment whose value is literally `__all__`, 100 wrong rows (the window is 95% right): judged
    // only with segments on.
    const spoof = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: ['country'],
      maxSegments: 5,
      window: windowOf(1, [
        ...Array.from({ length: 100 }, () => ({ prediction: 0.9, label: 0, segments: ['__all__'] })),
        ...Array.from({ length: 1_900 }, () => ({ prediction: 0.9, label: 1, segments: ['fr'] })),
      ]),
      pending: 0,
    });
    const judged = (includeSegments: boolean) =>
      evaluateBounds(spoof, accuracy, { minSamples: 100, includeSegments }).map((b) => [
        b.row.segmentFeature,
        b.row.segment,
      ]);
    expect(judged(false)).toEqual([]);
    expect(judged(true)).toEqual([['country', '__all__']]);
  });

  it('ESTIMATED_PERFORMANCE and PERFORMANCE ids differ; PERFORMANCE ids are unchanged by the kind field', () => {
    const parts = {
      model: 'm',
      modelVersion: 'v',
      windowStart: 0,
      windowEnd: 1,
      segmentFeature: '',
      segment: '__all__',
      bound: bounds[0]!,
    };
    expect(performanceAlertId({ ...parts, kind: 'ESTIMATED_PERFORMANCE' })).not.toBe(performanceAlertId(parts));
    expect(performanceAlertId({ ...parts, kind: 'PERFORMANCE' })).toBe(performanceAlertId(parts));
  });
});
