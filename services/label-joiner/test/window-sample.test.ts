// The pure parts of a recompute over a sampled window (@driftline/performance): the sample's share,
// the exact counts beside the sampled rows, and the business outcome scaled to the window.
import {
  businessOutcome,
  classificationMetrics,
  computeWindow,
  sampleShare,
  scaledBusinessOutcome,
  WindowColumnsBuilder,
} from '@driftline/performance';
import { describe, expect, it } from 'vitest';

describe('sampleShare', () => {
  it('is undefined while the window fits, and aims 4√bound below the bound past it', () => {
    expect(sampleShare(1_000, 1_000)).toBeUndefined();
    expect(sampleShare(0, 1)).toBeUndefined();
    const share = sampleShare(10_000_000, 1_000_000) as number;
    // 1,000,000 − 4,000 rows expected of 10,000,000.
    expect(share / 2 ** 32).toBeCloseTo(996_000 / 10_000_000, 9);
    // Binomial: the expected size + 4 standard deviations stays within the bound.
    const expected = (share / 2 ** 32) * 10_000_000;
    expect(expected + 4 * Math.sqrt(expected)).toBeLessThanOrEqual(1_000_000);
  });

  it('keeps at least one hash value, and refuses a bound below 1', () => {
    expect(sampleShare(Number.MAX_SAFE_INTEGER, 1)).toBe(1);
    expect(() => sampleShare(10, 0)).toThrow(/positive integer/);
    expect(() => sampleShare(10, 1.5)).toThrow(/positive integer/);
  });
});

describe('computeWindow with a sample and exact counts', () => {
  /** Sampled rows: country A scores well, B badly; the exact counts say 10× as many rows. */
  function sampledWindow(notClassB = 0) {
    const b = new WindowColumnsBuilder(1);
    b.setExactTotals(400, notClassB);
    b.addExactCounts(0, 'A', 300, 0);
    b.addExactCounts(0, 'B', 90, notClassB);
    b.addExactCounts(0, 'C', 10, 0); // in the counts only: the sample missed it
    const sampled: Array<[number, number, string]> = [
      [0.9, 1, 'A'],
      [0.8, 1, 'A'],
      [0.2, 0, 'A'],
      [0.3, 1, 'B'],
      [0.7, 0, 'B'],
    ];
    for (const [p, y, s] of sampled) b.addLabeled(p, y, [s]);
    b.addExpired(['A'], 7);
    return { window: b.build(), sampled };
  }

  it('counts from the exact counts, metrics from the sampled rows, and says how many', () => {
    const { window, sampled } = sampledWindow();
    const rows = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: ['country'],
      maxSegments: 10,
      window,
      pending: 3,
      minSampled: 1, // a handful of sampled rows stands for the many here
    });
    const [whole, ...segments] = rows;
    expect(whole).toMatchObject({
      labeled: 400,
      expired: 7,
      pending: 3,
      predictions: 410,
      invalidLabels: 0,
      sampled: 5,
    });
    expect(whole?.labelCoverage).toBeCloseTo(400 / 410, 12);
    expect(whole?.metrics).toEqual(
      classificationMetrics(
        sampled.map(([, y]) => y),
        sampled.map(([p]) => p),
        0.5,
      ),
    );
    expect(segments.map((r) => [r.segment, r.labeled, r.expired, r.sampled])).toEqual([
      ['A', 300, 7, 3],
      ['B', 90, 0, 2],
      ['C', 10, 0, 0],
    ]);
    expect(segments[2]?.metrics.roc_auc).toBeNull();
  });

  it('ranks segments by the exact counts (the sample alone would keep B over C)', () => {
    const b = new WindowColumnsBuilder(1);
    b.setExactTotals(1_000, 0);
    b.addExactCounts(0, 'A', 600, 0);
    b.addExactCounts(0, 'B', 100, 0);
    b.addExactCounts(0, 'C', 300, 0);
    for (const s of ['A', 'A', 'B', 'B', 'B', 'C']) b.addLabeled(0.6, 1, [s]);
    const rows = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: ['country'],
      maxSegments: 2,
      window: b.build(),
      pending: 0,
      minSampled: 1, // a handful of sampled rows stands for the many here
    });
    expect(rows.slice(1).map((r) => [r.segment, r.labeled, r.sampled])).toEqual([
      ['A', 600, 2],
      ['__other__', 400, 4],
    ]);
  });

  it('voids the classification metrics of a slice with any invalid label, sampled or not', () => {
    const { window } = sampledWindow(2);
    const rows = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: ['country'],
      maxSegments: 10,
      window,
      pending: 0,
      minSampled: 1, // a handful of sampled rows stands for the many here
    });
    expect(rows.map((r) => [r.segment, r.invalidLabels, r.metrics.accuracy === null])).toEqual([
      ['__all__', 2, true],
      ['A', 0, false],
      ['B', 2, true],
      ['C', 0, true],
    ]);
    // A regression model has no invalid label: the count is ignored.
    const regression = computeWindow({
      task: 'regression',
      threshold: 0.5,
      segmentFeatures: [],
      maxSegments: 10,
      window,
      pending: 0,
      minSampled: 1, // a handful of sampled rows stands for the many here
    });
    expect(regression[0]).toMatchObject({ invalidLabels: 0, labeled: 400, sampled: 5 });
    expect(regression[0]?.metrics.rmse).not.toBeNull();
  });

  it('leaves a window read whole as it was (no sampled field)', () => {
    const b = new WindowColumnsBuilder(0);
    b.addLabeled(0.9, 1, []);
    b.addLabeled(0.1, 0, []);
    const [whole] = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: [],
      maxSegments: 10,
      window: b.build(),
      pending: 0,
    });
    expect(whole).not.toHaveProperty('sampled');
    expect(whole?.labeled).toBe(2);
  });
});

describe('scaledBusinessOutcome', () => {
  it('scales sums and counts of a sample to the window, and leaves null and 1 alone', () => {
    const o = businessOutcome(
      [
        { score: 0.9, label: 1, value: 10 },
        { score: 0.2, label: 1, value: 4 },
        { score: 0.7, label: 0, value: 1 },
      ],
      { threshold: 0.5 },
    );
    expect(scaledBusinessOutcome(o, 2.5)).toEqual({
      valueCaught: 25,
      valueMissed: 10,
      falseAlarmCost: 2.5,
      net: 22.5,
      truePositives: 3, // 2.5 rounded
      falseNegatives: 3,
      falsePositives: 3,
      valued: 8, // 7.5 rounded
    });
    expect(scaledBusinessOutcome(o, 1)).toBe(o);
    expect(scaledBusinessOutcome(null, 3)).toBeNull();
    expect(() => scaledBusinessOutcome(o, 0.5)).toThrow(/>= 1/);
    expect(() => scaledBusinessOutcome(o, Number.NaN)).toThrow(/>= 1/);
  });
});
