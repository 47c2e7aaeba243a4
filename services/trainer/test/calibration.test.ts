import { calibrate, fitIsotonicCalibration } from '@driftline/performance';
import { describe, expect, it } from 'vitest';
import { buildDataset, type LabeledRow } from '../src/dataset.js';
import { calibrationFromDataset, MIN_CALIBRATION_ROWS } from '../src/reference.js';

const rows = (n: number, label: (i: number) => number): LabeledRow[] =>
  Array.from({ length: n }, (_, i) => ({
    predictionId: `p${i}`,
    time: 1_000 + i,
    features: { x: i },
    prediction: 0.5,
    label: label(i),
  }));

describe('calibrationFromDataset (CBPE map of a new version)', () => {
  it('fits on the held-out slice only, with the new model’s scores', () => {
    const ds = buildDataset(
      rows(1_000, (i) => (i % 3 === 0 ? 1 : 0)),
      0.25,
    );
    // Training rows get scores that would pull the map elsewhere: they must not count.
    const scores = Float64Array.from({ length: ds.rows }, (_, i) => (ds.holdout[i] === 1 ? (i % 10) / 10 : 0.99));
    const map = calibrationFromDataset(ds, scores)!;
    const s: number[] = [];
    const y: number[] = [];
    for (let i = 0; i < ds.rows; i++) {
      if (ds.holdout[i] !== 1) continue;
      s.push(scores[i]!);
      y.push(ds.label[i]!);
    }
    expect(map).toEqual(fitIsotonicCalibration(s, y));
    expect(map.n).toBe(ds.holdoutRows);
    expect(calibrate(map, 0.99)).toBe(calibrate(map, 0.9));
  });

  it('calibrates nothing on a small or one-class held-out slice (the estimate uses raw scores)', () => {
    const small = buildDataset(
      rows(2 * MIN_CALIBRATION_ROWS, (i) => i % 2),
      0.25,
    );
    expect(calibrationFromDataset(small, new Float64Array(small.rows).fill(0.3))).toBeUndefined();
    const oneClass = buildDataset(
      rows(1_000, () => 1),
      0.25,
    );
    expect(calibrationFromDataset(oneClass, new Float64Array(oneClass.rows).fill(0.3))).toBeUndefined();
  });
});
