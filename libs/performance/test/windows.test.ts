import { describe, expect, it } from 'vitest';
import {
  ALL_SEGMENT,
  boundSegments,
  computeWindow,
  currentWindow,
  evaluateBounds,
  OTHER_SEGMENT,
  parseBounds,
  parseWindowKey,
  performanceAlertId,
  windowKey,
  windowStart,
} from '../src/index.js';
import { plusMinusOneWindow, windowOf } from './window-of.js';

describe('windows', () => {
  it('assigns tumbling windows on event time, also before the epoch', () => {
    expect(windowStart(3_600_000 + 5, 3_600_000)).toBe(3_600_000);
    expect(windowStart(3_600_000, 3_600_000)).toBe(3_600_000);
    expect(windowStart(-1, 1000)).toBe(-1000);
    expect(() => windowStart(5, 0)).toThrow(/positive integer/);
  });

  it('round-trips window keys with any model name', () => {
    const ref = { model: 'a|b"c', modelVersion: 'v:1', windowStart: 42 };
    expect(parseWindowKey(windowKey(ref))).toEqual(ref);
    expect(() => parseWindowKey('[1,2]')).toThrow(/not a window key/);
  });

  it("reads ce65220's sized keys as their start, and takes a key of another size as the current window containing it", () => {
    const HOUR = 3_600_000;
    expect(parseWindowKey('["m","v1",3600000,3600000]')).toEqual({ model: 'm', modelVersion: 'v1', windowStart: HOUR });
    expect(windowKey(parseWindowKey('["m","v1",3600000,3600000]'))).toBe('["m","v1",3600000]');
    expect(() => parseWindowKey('["m","v1",0,0]')).toThrow(/not a window key/);
    // A 1h key at 1h after a change to 2h: the 2h window [0, 2h), never [1h, 3h) (windows overlapping).
    const keyed = { model: 'm', modelVersion: 'v1', windowStart: HOUR };
    expect(currentWindow(keyed, 2 * HOUR)).toEqual({ model: 'm', modelVersion: 'v1', windowStart: 0 });
    expect(currentWindow(keyed, HOUR)).toEqual(keyed);
  });

  it('bounds segments to maxSegments with an __other__ bucket', () => {
    const counts = new Map([
      ['US', 10],
      ['FR', 5],
      ['DE', 5],
      ['IT', 1],
    ]);
    expect(boundSegments(counts, 4)('IT')).toBe('IT');
    const bucket = boundSegments(counts, 3);
    expect(['US', 'DE', 'FR', 'IT'].map(bucket)).toEqual(['US', 'DE', OTHER_SEGMENT, OTHER_SEGMENT]);
  });

  it('computes whole-window and per-segment rows with coverage', () => {
    const labeled = [
      { prediction: 0.9, label: 1, segments: ['US'] },
      { prediction: 0.2, label: 0, segments: ['US'] },
      { prediction: 0.7, label: 0, segments: ['FR'] },
      { prediction: 0.6, label: 1, segments: ['DE'] },
      { prediction: 0.6, label: 7, segments: ['DE'] },
    ];
    const rows = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: ['country'],
      maxSegments: 2,
      window: windowOf(1, labeled, [['US'], ['IT']]),
      pending: 3,
    });
    const all = rows.find((r) => r.segment === ALL_SEGMENT);
    // Coverage of the valid labels: 4 of 10; the label 7 leaves the window without classification metrics.
    expect(all).toMatchObject({ predictions: 10, labeled: 5, expired: 2, pending: 3, labelCoverage: 0.4 });
    expect(all?.invalidLabels).toBe(1);
    expect(all?.metrics.accuracy).toBeNull();
    expect(rows.map((r) => `${r.segmentFeature}:${r.segment}`)).toEqual([
      ':__all__',
      'country:US',
      'country:__other__',
    ]);
    const us = rows.find((r) => r.segment === 'US');
    expect(us).toMatchObject({ labeled: 2, expired: 1, predictions: 3 });
    expect(us?.metrics.accuracy).toBe(1);
  });

  it('reports no metrics for labels −1/+1 of a classifier, never accuracy 1 on the positives left (found by a review)', () => {
    // 200 predictions all scored 0.55, labels −1 and +1 half each: only the positives were kept.
    const rows = plusMinusOneWindow();
    expect(rows[0]).toMatchObject({ labeled: 200, invalidLabels: 100, labelCoverage: 0.5 });
    for (const metric of ['accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'log_loss', 'brier'] as const) {
      expect(rows[0]?.metrics[metric], metric).toBeNull();
    }
    // A regression model takes any finite value.
    const regression = computeWindow({
      task: 'regression',
      threshold: 0.5,
      segmentFeatures: [],
      maxSegments: 5,
      window: windowOf(0, [
        { prediction: 0.5, label: -1, segments: [] },
        { prediction: 0.5, label: 1, segments: [] },
      ]),
      pending: 0,
    });
    expect(regression[0]).toMatchObject({ invalidLabels: 0, labelCoverage: 1 });
    expect(regression[0]?.metrics.mae).toBe(1);
  });

  it('regression windows fill regression metrics only', () => {
    const [all] = computeWindow({
      task: 'regression',
      threshold: 0.5,
      segmentFeatures: [],
      maxSegments: 10,
      window: windowOf(0, [
        { prediction: 1, label: 2, segments: [] },
        { prediction: 3, label: 2, segments: [] },
      ]),
      pending: 0,
    });
    expect(all?.metrics.mae).toBe(1);
    expect(all?.metrics.rmse).toBe(1);
    expect(all?.metrics.accuracy).toBeNull();
  });
});

describe('performance alert rules', () => {
  it('parses bounds and names the variable on error', () => {
    expect(parseBounds('accuracy<0.8, rmse>=12.5', 'X')).toEqual([
      { metric: 'accuracy', op: '<', value: 0.8 },
      { metric: 'rmse', op: '>=', value: 12.5 },
    ]);
    expect(parseBounds('', 'X')).toEqual([]);
    expect(() => parseBounds('acc<0.8', 'DRIFTLINE_JOINER_ALERT_BOUNDS')).toThrow(
      /DRIFTLINE_JOINER_ALERT_BOUNDS: unknown metric/,
    );
    expect(() => parseBounds('accuracy=0.8', 'X')).toThrow(/X: bound/);
  });

  it('evaluates bounds with a minimum sample size and deterministic ids', () => {
    const rows = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: ['c'],
      maxSegments: 5,
      window: windowOf(
        1,
        Array.from({ length: 10 }, (_, i) => ({ prediction: 0.9, label: i % 2, segments: ['x'] })),
      ),
      pending: 0,
    });
    const bounds = parseBounds('accuracy<0.8', 'X');
    expect(evaluateBounds(rows, bounds, { minSamples: 11, includeSegments: false })).toHaveLength(0);
    expect(evaluateBounds(rows, bounds, { minSamples: 10, includeSegments: false })).toHaveLength(1);
    expect(evaluateBounds(rows, bounds, { minSamples: 10, includeSegments: true })).toHaveLength(2);
    const parts = {
      model: 'm',
      modelVersion: '1',
      windowStart: 0,
      windowEnd: 10,
      segmentFeature: '',
      segment: ALL_SEGMENT,
      bound: bounds[0]!,
    };
    expect(performanceAlertId(parts)).toBe(performanceAlertId({ ...parts }));
    expect(performanceAlertId(parts)).not.toBe(performanceAlertId({ ...parts, windowStart: 1 }));
    expect(performanceAlertId(parts)).toMatch(/^[0-9a-f]{32}$/);
  });
});
