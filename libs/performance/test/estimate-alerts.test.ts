import { describe, expect, it } from 'vitest';
import { evaluateBounds, evaluateEstimateBounds, parseBounds, performanceAlertId } from '../src/alerts.js';
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
  // The whole-window row of `labeled` labeled predictions (scores 0.6/0.4, accuracy 0.5) and
  // `expired` unlabeled ones.
  const realized = (labeled: number, expired: number) =>
    computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: [],
      maxSegments: 5,
      window: windowOf(
        0,
        Array.from({ length: labeled }, (_, i) => ({
          prediction: i % 2 === 0 ? 0.6 : 0.4,
          label: i % 4 < 2 ? 1 : 0,
          segments: [],
        })),
        Array.from({ length: expired }, () => []),
      ),
      pending: 0,
    })[0];
  const options = { minSamples: 100, realizedCoverage: 0.5 };

  it('judges the estimable metrics only, with enough scored predictions, while labels are few', () => {
    const breaches = evaluateEstimateBounds(estimate, realized(20, 180), bounds, options);
    expect(breaches.map((b) => b.bound.metric)).toEqual(['roc_auc']);
    expect(breaches[0]?.value).toBe(estimate.roc_auc);
    expect(evaluateEstimateBounds(estimate, undefined, bounds, options)).toHaveLength(1);
    expect(evaluateEstimateBounds(estimate, realized(100, 100), bounds, options)).toEqual([]);
    expect(evaluateEstimateBounds(estimate, undefined, bounds, { ...options, minSamples: 201 })).toEqual([]);
  });

  it('judges the estimate of a window covered by fewer labels than the realized alert needs (found by a review)', () => {
    // 150 predictions, 90 labeled (coverage 0.6): the realized row is not judged (90 < 100), and the
    // estimate had been skipped from coverage 0.5: judged by neither, while 70 labels alerted.
    const accuracy = parseBounds('accuracy<0.8', 'B');
    const scores = Array.from({ length: 150 }, (_, i) => (i % 2 === 0 ? 0.6 : 0.4));
    const cbpe = estimateCbpe(scores, identityCalibration(), 0.5);
    const judged = (labeled: number) => {
      const row = realized(labeled, 150 - labeled);
      return {
        realized: evaluateBounds(row === undefined ? [] : [row], accuracy, { minSamples: 100, includeSegments: false })
          .length,
        estimated: evaluateEstimateBounds(cbpe, row, accuracy, options).map((b) => b.value),
      };
    };
    expect(judged(70)).toEqual({ realized: 0, estimated: [expect.closeTo(0.6, 12)] });
    expect(judged(90)).toEqual({ realized: 0, estimated: [expect.closeTo(0.6, 12)] });
    expect(judged(100)).toEqual({ realized: 1, estimated: [] });
  });

  it('judges the estimate of a window whose invalid labels left no realized metrics (found by a review)', () => {
    // 200 predictions scored 0.55, labels −1/+1: 100 valid labels cover half the window, which had
    // skipped the estimate (realized judges from 0.5) while the realized accuracy (1) judged nothing.
    const scores = Array.from({ length: 200 }, () => 0.55);
    const rows = plusMinusOneWindow();
    const accuracy = parseBounds('accuracy<0.8', 'B');
    expect(evaluateBounds(rows, accuracy, { minSamples: 100, includeSegments: false })).toEqual([]);
    const breaches = evaluateEstimateBounds(
      estimateCbpe(scores, identityCalibration(), 0.5),
      rows[0],
      accuracy,
      options,
    );
    expect(breaches.map((b) => [b.bound.metric, b.value])).toEqual([['accuracy', expect.closeTo(0.55, 12)]]);
  });

  it('judges on the estimate a metric the realized row leaves null: roc_auc of labels of one class', () => {
    // 120 labels, all 1: realized accuracy judged, realized roc_auc null (undefined on one class).
    const row = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: [],
      maxSegments: 5,
      window: windowOf(
        0,
        Array.from({ length: 120 }, (_, i) => ({ prediction: (i % 100) / 100, label: 1, segments: [] })),
      ),
      pending: 0,
    })[0];
    expect(row?.metrics.roc_auc).toBeNull();
    const found = evaluateEstimateBounds(estimate, row, parseBounds('accuracy<0.9,roc_auc<0.99', 'B'), options);
    expect(found.map((b) => b.bound.metric)).toEqual(['roc_auc']);
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
