// A window read as a sample (DRIFTLINE_JOINER_MAX_WINDOW_ROWS): a slice is judged, and its metrics
// published, on the rows its metrics came from, not on its exact count beside them.
import { describe, expect, it } from 'vitest';
import {
  businessOutcome,
  computeWindow,
  evaluateBounds,
  type MetricBound,
  scaledBusinessOutcome,
  valuedPoints,
  WindowColumnsBuilder,
  windowBusinessOutcome,
} from '../src/index.js';
import { emptyMetrics } from '../src/metrics.js';

const bound: MetricBound = { metric: 'accuracy', op: '<', value: 0.8 };

/**
 * 60,000 labeled rows counted, 5,000 sampled: segment `rare` has 150 rows (12 in the sample, half
 * wrong), `US` the rest (all right).
 */
function sampledWindow(rareSampled = 12) {
  const b = new WindowColumnsBuilder(1);
  b.setExactTotals(60_000, 0);
  b.addExactCounts(0, 'US', 59_850, 0);
  b.addExactCounts(0, 'rare', 150, 0);
  for (let i = 0; i < 5_000 - rareSampled; i++) b.addLabeled(0.9, 1, ['US']);
  for (let i = 0; i < rareSampled; i++) b.addLabeled(0.9, i % 2, ['rare']);
  return b;
}

const input = (b: WindowColumnsBuilder, minSampled?: number) => ({
  task: 'classification' as const,
  threshold: 0.5,
  segmentFeatures: ['country'],
  maxSegments: 10,
  window: b.build(),
  pending: 0,
  ...(minSampled === undefined ? {} : { minSampled }),
});

describe('a sampled slice with fewer sampled labels than minSampled', () => {
  it('has no metrics, its exact counts kept; the whole window (5,000 sampled) keeps its own', () => {
    const rows = computeWindow(input(sampledWindow(), 100));
    const rare = rows.find((r) => r.segment === 'rare');
    expect(rare).toMatchObject({ labeled: 150, sampled: 12, invalidLabels: 0 });
    expect(rare?.metrics).toEqual(emptyMetrics());
    expect(rows[0]).toMatchObject({ labeled: 60_000, sampled: 5_000 });
    expect(rows[0]?.metrics.accuracy).toBeCloseTo(4_994 / 5_000, 12);
    // Default: DRIFTLINE_JOINER_ALERT_MIN_SAMPLES' default (100).
    expect(computeWindow(input(sampledWindow())).find((r) => r.segment === 'rare')?.metrics.accuracy).toBeNull();
    // Enough sampled rows: metrics from them.
    const many = computeWindow(input(sampledWindow(120), 100)).find((r) => r.segment === 'rare');
    expect(many?.metrics.accuracy).toBeCloseTo(0.5, 12);
  });

  it('is not judged by an alert on its exact count (150 labeled ≥ 100, 12 sampled)', () => {
    // As a recompute of HEAD before the fix had it: the sampled slice's metrics present.
    const rows = computeWindow(input(sampledWindow(), 1));
    const rare = rows.find((r) => r.segment === 'rare');
    expect(rare?.metrics.accuracy).toBeCloseTo(0.5, 12);
    expect(evaluateBounds(rows, [bound], { minSamples: 100, includeSegments: true })).toEqual([]);
    // 120 sampled rows: judged.
    const judged = evaluateBounds(computeWindow(input(sampledWindow(120), 1)), [bound], {
      minSamples: 100,
      includeSegments: true,
    });
    expect(judged.map((b) => [b.row.segment, b.row.sampled, b.value])).toEqual([['rare', 120, 0.5]]);
  });

  it('business metrics of a sampled window are judged by the whole sample too', () => {
    const rows = computeWindow(input(sampledWindow(), 1));
    const business = { business_net: -5, value_caught: 0, value_missed: 0, false_alarm_cost: 5 };
    const whole = { ...(rows[0] as (typeof rows)[number]), sampled: 50 };
    expect(
      evaluateBounds([whole], [{ metric: 'business_net', op: '<', value: 0 }], {
        minSamples: 100,
        includeSegments: false,
        business,
      }),
    ).toEqual([]);
  });

  it('a window read whole keeps the metrics of its small slices (they are exact)', () => {
    const b = new WindowColumnsBuilder(1);
    for (let i = 0; i < 12; i++) b.addLabeled(0.9, i % 2, ['rare']);
    const rows = computeWindow(input(b, 100));
    expect(rows.find((r) => r.segment === 'rare')?.metrics.accuracy).toBeCloseTo(0.5, 12);
  });
});

describe('a sample cut at its bound (rows left after the retry)', () => {
  it('has no metrics in any slice, its counts exact and flagged sampled', () => {
    const b = sampledWindow(200);
    b.markCut();
    const window = b.build();
    expect(window.sampled?.cut).toBe(true);
    const rows = computeWindow({ ...input(b, 1), window });
    for (const r of rows) expect(r.metrics).toEqual(emptyMetrics());
    expect(rows.map((r) => [r.segment, r.labeled, r.sampled])).toEqual([
      ['__all__', 60_000, 5_000],
      ['US', 59_850, 4_800],
      ['rare', 150, 200],
    ]);
  });
});

describe('the business outcome of a sampled window', () => {
  /** 5,000 sampled rows of 60,000: `valued` of them carry a value (caught 10, missed 12 alternately). */
  function valuedSample(valued: number, cut = false) {
    const b = new WindowColumnsBuilder(0);
    b.setExactTotals(60_000, 0);
    for (let i = 0; i < 5_000; i++) {
      const value = i < valued ? (i % 2 === 0 ? 10 : 12) : null;
      b.addLabeled(i % 2 === 0 ? 0.9 : 0.1, 1, [], value);
    }
    if (cut) b.markCut();
    return b.build();
  }

  it('is null on fewer valued labels than minSampled (a handful scaled ×12 had stood for the window)', () => {
    expect(windowBusinessOutcome(valuedSample(30), { threshold: 0.5, minSampled: 100 })).toBeNull();
    // Enough of them: the sample's outcome scaled to the window.
    const w = valuedSample(200);
    expect(windowBusinessOutcome(w, { threshold: 0.5, minSampled: 100 })).toEqual(
      scaledBusinessOutcome(businessOutcome(valuedPoints(w), { threshold: 0.5 }), 12),
    );
    // None valued, a false-alarm cost: counts over the whole sample, kept.
    expect(windowBusinessOutcome(valuedSample(0), { threshold: 0.5, falseAlarmCost: 1, minSampled: 100 })?.net).toBe(0);
  });

  it('is null when the read was cut', () => {
    expect(windowBusinessOutcome(valuedSample(200, true), { threshold: 0.5, minSampled: 100 })).toBeNull();
  });
});
