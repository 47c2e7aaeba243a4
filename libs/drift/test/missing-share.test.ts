import { expectationSet } from '@driftline/quality';
import { buildCategoricalProfile, buildNumericProfile, CategoricalSummary, NumericSummary } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import {
  type AlertContext,
  alertId,
  DEFAULT_THRESHOLDS,
  dataQualityAlert,
  featureResults,
  type MethodResult,
  missingShareCheck,
  missingShareRise,
  PREDICTION_FEATURE,
} from '../src/index.js';

// References from scipy 1.17.1: for each (reference missing, reference total, current missing,
// current total), chi2_contingency([[rt - rm, rm], [ct - cm, cm]], correction=False) → (statistic, p).
const SCIPY: ReadonlyArray<readonly [number, number, number, number, number]> = [
  [40, 100, 55, 100, 0.033672068856345896],
  [0, 1000, 30, 200, 2.5023638238656424e-35],
  [5, 2000, 100, 100, 0.0],
  [400, 1000, 52, 100, 0.020043946001973574],
  [20, 100, 3, 10, 0.45843002457143545],
  [400, 1000, 50, 100, 0.052471117409274105],
  [10, 50000, 3, 120, 1.0408819606623812e-63],
];

const rule = { alpha: 0.05, increase: 0.1 };

describe('missingShareRise: the one rule for "the missing share rose significantly"', () => {
  it("gives scipy's chi2_contingency(correction=False) p-value on 2×2 tables", () => {
    for (const [rm, rt, cm, ct, p] of SCIPY) {
      const got = missingShareRise({ missing: rm, total: rt }, { missing: cm, total: ct }, rule);
      expect(got.rate).toBe(cm / ct);
      expect(got.referenceRate).toBe(rm / rt);
      if (p === 0) expect(got.pValue).toBeLessThan(1e-300);
      else expect(Math.abs(got.pValue - p) / p, `${[rm, rt, cm, ct]}`).toBeLessThan(1e-9);
    }
  });

  it('rose: a rise of at least the increase AND p < alpha', () => {
    const rose = (rm: number, rt: number, cm: number, ct: number, t = rule) =>
      missingShareRise({ missing: rm, total: rt }, { missing: cm, total: ct }, t).rose;
    expect(rose(40, 100, 55, 100)).toBe(true); // +0.15, p 0.034
    expect(rose(400, 1000, 52, 100)).toBe(true); // +0.12, p 0.020
    expect(rose(5, 2000, 100, 100)).toBe(true); // the feature stopped arriving
    // +0.1 exactly (0.5 − 0.4 is 0.0999… in binary: the slack counts it), p 0.052: not significant…
    expect(rose(400, 1000, 50, 100)).toBe(false);
    // …and significant at alpha 0.06.
    expect(rose(400, 1000, 50, 100, { alpha: 0.06, increase: 0.1 })).toBe(true);
    expect(rose(20, 100, 3, 10)).toBe(false); // +0.1 on 10 events: p 0.46
    // Significant but under the increase: a reference that never misses, 3 of 120 missing.
    expect(rose(10, 50000, 3, 120)).toBe(false);
    // Neither side misses: p 1.
    expect(missingShareRise({ missing: 0, total: 10 }, { missing: 0, total: 10 }, rule)).toMatchObject({
      pValue: 1,
      rose: false,
    });
  });
});

describe('the streaming missing_rate row', () => {
  // Reference: 1,000 values, 40% missing. A window of 10 events with 6 missing is above
  // 0.4 + 0.1, which drifted before (no test: ~2% of 100-event windows); p ≈ 0.2 now.
  const values = Array.from({ length: 1000 }, (_, i) => (i % 5 < 2 ? null : i));
  const profile = buildNumericProfile(values);
  const windowOf = (missing: number, total: number) => {
    const s = new NumericSummary(profile);
    for (let i = 0; i < total; i++) s.add(i < missing ? null : 500 + i);
    return s;
  };
  const rowOf = (s: NumericSummary) =>
    featureResults('x', profile, s, DEFAULT_THRESHOLDS).find((r) => r.method === 'missing_rate')!;

  it("is drifted by missingShareRise and carries the test's p-value", () => {
    const small = rowOf(windowOf(6, 10));
    const want = missingShareRise({ missing: 400, total: 1000 }, { missing: 6, total: 10 }, rule0());
    expect(small).toMatchObject({ statistic: 0.6, drifted: false, referenceSize: 1000, currentSize: 10 });
    expect(small.threshold).toBeCloseTo(0.5, 12);
    expect(small.pValue).toBe(want.pValue);
    expect(small.pValue!).toBeGreaterThan(0.05);
    const large = rowOf(windowOf(60, 100)); // the same share on 100 events: significant
    expect(large.drifted).toBe(true);
    expect(large.pValue!).toBeLessThan(0.05);
    const absent = rowOf(windowOf(200, 200));
    expect(absent).toMatchObject({ statistic: 1, drifted: true });
  });

  it('categorical features too', () => {
    const cat = buildCategoricalProfile(Array.from({ length: 500 }, (_, i) => (i % 10 === 0 ? null : `c${i % 3}`)));
    const s = new CategoricalSummary(cat);
    for (let i = 0; i < 150; i++) s.add(null);
    const row = featureResults('color', cat, s, DEFAULT_THRESHOLDS).find((r) => r.method === 'missing_rate')!;
    const want = missingShareRise({ missing: 50, total: 500 }, { missing: 150, total: 150 }, rule0());
    expect(row).toMatchObject({ statistic: 1, drifted: true, pValue: want.pValue });
    expect(row.threshold).toBeCloseTo(0.2, 12);
  });
});

function rule0() {
  return { alpha: DEFAULT_THRESHOLDS.chi2Alpha, increase: DEFAULT_THRESHOLDS.missingRateIncrease };
}

const missingRow = (feature: string, drifted: boolean, statistic = drifted ? 1 : 0): MethodResult => ({
  feature,
  method: 'missing_rate',
  statistic,
  pValue: drifted ? 1e-40 : 0.8,
  threshold: 0.1,
  drifted,
  referenceSize: 2000,
  currentSize: 300,
  errorBound: null,
});
const psiRow = (feature: string): MethodResult => ({ ...missingRow(feature, false), method: 'psi', pValue: null });

const ctx: AlertContext = {
  model: 'm',
  version: 'v1',
  referenceId: 'r',
  windowStart: 60_000,
  windowEnd: 120_000,
  events: 300,
  lateEvents: 2,
};

describe('the built-in missing-share check (DATA_QUALITY)', () => {
  const rows = [
    psiRow('x'),
    missingRow('x', false),
    missingRow('y', true),
    missingRow(PREDICTION_FEATURE, true),
    missingRow('z', true, 0.7),
  ];

  it('reports the input features whose missing_rate row drifted, never the prediction', () => {
    const check = missingShareCheck(rows, { events: 300, minEvents: 100 });
    expect(check.checked).toBe(3);
    expect(check.failed).toEqual([
      { feature: 'y', observed: 1, bound: 0.1, count: 300, pValue: 1e-40 },
      { feature: 'z', observed: 0.7, bound: 0.1, count: 300, pValue: 1e-40 },
    ]);
  });

  it('checks nothing below alertMinEvents', () => {
    expect(missingShareCheck(rows, { events: 99, minEvents: 100 })).toEqual({ checked: 0, failed: [] });
    expect(dataQualityAlert(ctx, [], missingShareCheck(rows, { events: 99, minEvents: 100 }))).toBeUndefined();
  });

  it('leaves a feature with a declared max_null_rate to that expectation', () => {
    const expectations = expectationSet([
      { feature: 'y', type: 'double', maxTypeMismatch: 0, maxNullRate: 1 },
      { feature: 'z', type: 'double', maxTypeMismatch: 0 }, // no max_null_rate: still checked
    ]);
    const check = missingShareCheck(rows, { events: 300, minEvents: 100, expectations });
    expect(check.checked).toBe(2);
    expect(check.failed.map((f) => f.feature)).toEqual(['z']);
  });

  it('raises the DATA_QUALITY alert with no expectation configured', () => {
    const alert = dataQualityAlert(
      ctx,
      [],
      missingShareCheck([psiRow('x'), missingRow('y', true)], {
        events: 300,
        minEvents: 100,
      }),
    )!;
    expect(alert).toMatchObject({
      alert_id: alertId('m', 'v1', 60_000, 'DATA_QUALITY'),
      kind: 'DATA_QUALITY',
      feature: 'y',
      method: 'missing_share',
      statistic: 1,
      threshold: 0.1,
      p_value: 1e-40,
      event_time: 120_000,
    });
    expect(JSON.parse(alert.evidence)).toEqual({
      events: 300,
      late_events: 2,
      expectations: 0,
      missing_share_checks: 1,
      failed_count: 1,
      failed_truncated: false,
      failed: [{ feature: 'y', expectation: 'missing_share', observed: 1, bound: 0.1, count: 300, p_value: 1e-40 }],
    });
  });

  it('lists declared failures and built-in ones in the one alert of the window, by feature', () => {
    const declared = [
      { feature: 'a', expectation: 'range', observed: 0.3, bound: 0.01, passed: false, count: 280, detail: '{}' },
      { feature: 'y', expectation: 'type', observed: 0, bound: 0, passed: true, count: 0, detail: '{}' },
      { feature: 'z', expectation: 'cardinality', observed: 9, bound: 3, passed: false, count: 90, detail: '{}' },
    ] as const;
    const check = missingShareCheck(rows, { events: 300, minEvents: 100 });
    const alert = dataQualityAlert(ctx, declared, check)!;
    const alone = dataQualityAlert(ctx, declared)!;
    expect(alert.alert_id).toBe(alone.alert_id); // one DATA_QUALITY alert per (model, version, window)
    expect(alert).toMatchObject({ feature: null, method: 'range', statistic: 0.3, p_value: null, threshold: 0.01 });
    const evidence = JSON.parse(alert.evidence) as {
      expectations: number;
      missing_share_checks: number;
      failed_count: number;
      failed: Array<{ feature: string; expectation: string; p_value?: number }>;
    };
    expect(evidence).toMatchObject({ expectations: 3, missing_share_checks: 3, failed_count: 4 });
    expect(evidence.failed.map((f) => [f.feature, f.expectation, f.p_value])).toEqual([
      ['a', 'range', undefined],
      ['y', 'missing_share', 1e-40],
      ['z', 'cardinality', undefined],
      ['z', 'missing_share', 1e-40],
    ]);
  });

  it('stays bounded with 10,000 built-in failures of long names', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => missingRow(`${'f'.repeat(500)}${i}`, true));
    const alert = dataQualityAlert(ctx, [], missingShareCheck(many, { events: 300, minEvents: 100 }))!;
    const evidence = JSON.parse(alert.evidence) as {
      failed_count: number;
      failed_truncated: boolean;
      failed: unknown[];
    };
    expect(evidence).toMatchObject({ failed_count: 10_000, failed_truncated: true });
    expect(evidence.failed).toHaveLength(100);
    expect(Buffer.byteLength(alert.evidence)).toBeLessThan(300 * 1024);
  });
});
