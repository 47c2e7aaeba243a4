import type { ExpectationResult } from '@driftline/quality';
import {
  buildCategoricalProfile,
  buildNumericProfile,
  CategoricalSummary,
  logGamma,
  NumericSummary,
} from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import {
  type AlertContext,
  alertId,
  DEFAULT_MISSING_ALERT_ALPHA,
  DEFAULT_THRESHOLDS,
  dataQualityAlert,
  featureResults,
  type MissingCount,
  missingShareCheck,
  missingShareRise,
  PREDICTION_FEATURE,
  referenceSet,
  windowMissingCounts,
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
  // 0.4 + 0.1, which drifted before the test was added; p ≈ 0.2 now.
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

/** A numeric profile of `n` training rows, `missing` of them null. */
const profileOf = (n: number, missing: number) =>
  buildNumericProfile(Array.from({ length: n }, (_, i) => (i < missing ? null : i % 997)));

// Model m/v1 on x (40% missing in training), y and z (never missing), and its prediction.
const reference = referenceSet(
  'm',
  'v1',
  new Map([
    ['x', profileOf(10_000, 4_000)],
    ['y', profileOf(200, 0)],
    ['z', profileOf(200, 0)],
    [PREDICTION_FEATURE, profileOf(200, 0)],
  ]),
);
const counts = (entries: Record<string, [number, number]>): Map<string, MissingCount> =>
  new Map(Object.entries(entries).map(([f, [missing, total]]) => [f, { missing, total }]));
const options = { minEvents: 100, alpha: DEFAULT_MISSING_ALERT_ALPHA, increase: 0.1 };

const ctx: AlertContext = {
  model: 'm',
  version: 'v1',
  referenceId: 'r',
  windowStart: 60_000,
  windowEnd: 120_000,
  events: 300,
  lateEvents: 2,
};

describe('the built-in missing-share check (DATA_QUALITY): its own strict level', () => {
  it('a share at the bound, or a rise the drift alpha calls significant, passes; an outage fails', () => {
    const check = missingShareCheck(
      reference,
      counts({ x: [50, 100], y: [100, 100], z: [0, 100], [PREDICTION_FEATURE]: [100, 100] }),
      options,
    );
    // The prediction is never checked; results in feature order.
    expect(check.results.map((r) => [r.feature, r.passed])).toEqual([
      ['x', true], // 0.5 against 0.4: at the bound (p 0.042, which the drift row's 0.05 flags)
      ['y', false],
      ['z', true],
    ]);
    const [x, y] = check.results;
    expect(x).toMatchObject({ observed: 0.5, referenceShare: 0.4, count: 100, missing: 50, alpha: 1e-5 });
    expect(x!.bound).toBeCloseTo(0.5, 12);
    expect(Math.abs(x!.pValue! - 0.042328298996754984) / 0.042328298996754984).toBeLessThan(1e-9); // scipy
    expect(y).toMatchObject({ observed: 1, referenceShare: 0, bound: 0.1, count: 100, passed: false });
    expect(y!.pValue!).toBeLessThan(1e-40);
    expect(check.failed).toEqual([y]);
  });

  it('a rise past the bound fails only below the level (0.4 → 0.55: p 0.0023; 0.4 → 0.62: p 8.0e-6)', () => {
    const x = (missing: number, alpha = options.alpha) =>
      missingShareCheck(reference, counts({ x: [missing, 100] }), { ...options, alpha }).results[0]!;
    expect(Math.abs(x(55).pValue! - 0.002328372955594773) / 0.002328372955594773).toBeLessThan(1e-9);
    expect(x(55).passed).toBe(true);
    expect(x(55, 0.05).passed).toBe(false); // the drift rows' alpha alerted on it
    expect(Math.abs(x(62).pValue! - 8.027896760653288e-6) / 8.027896760653288e-6).toBeLessThan(1e-9);
    expect(x(62).passed).toBe(false);
  });

  it('with nothing changed, fails in at most 5e-5 of 100-event windows at shares 0.1–0.5 (exact binomial)', () => {
    const pmf = (k: number, n: number, p: number) =>
      Math.exp(logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p));
    const falseAlerts = (share: number, n: number, alpha: number) => {
      const ref = referenceSet('m', 'v1', new Map([['x', profileOf(10_000, Math.round(share * 10_000))]]));
      let rate = 0;
      for (let k = 0; k <= n; k++) {
        const check = missingShareCheck(ref, counts({ x: [k, n] }), { ...options, alpha });
        if (check.failed.length > 0) rate += pmf(k, n, share);
      }
      return rate;
    };
    for (const share of [0.1, 0.2, 0.3, 0.4, 0.5]) {
      expect(falseAlerts(share, 100, DEFAULT_MISSING_ALERT_ALPHA), `share ${share}`).toBeLessThan(5e-5);
      expect(falseAlerts(share, 1000, DEFAULT_MISSING_ALERT_ALPHA), `share ${share}`).toBeLessThan(1e-9);
    }
    // At the drift rows' 0.05: 1.8% at 0.5 (2.8% with the rule the alert used first, "at least").
    expect(falseAlerts(0.5, 100, 0.05)).toBeGreaterThan(0.01);
  });

  it('checks nothing under minEvents, nor a feature the window has no count of', () => {
    const check = missingShareCheck(reference, counts({ x: [99, 99], y: [99, 99] }), options);
    expect(check).toEqual({ results: [], failed: [] });
    expect(dataQualityAlert(ctx, [], { minEvents: 30, missing: check })).toBeUndefined();
  });

  it('leaves a feature to its max_null_rate only when that was evaluated on the window', () => {
    const result = (feature: string, expectation: ExpectationResult['expectation']): ExpectationResult => ({
      feature,
      expectation,
      observed: 1,
      bound: 1,
      passed: true,
      count: 100,
      detail: '{}',
    });
    const window = counts({ y: [100, 100], z: [100, 100] });
    // y's null_rate was evaluated; z declares a type only.
    const declared = [result('y', 'null_rate'), result('y', 'type'), result('z', 'type')];
    expect(missingShareCheck(reference, window, { ...options, declared }).failed.map((f) => f.feature)).toEqual(['z']);
    // Declared but not evaluated (no results: counts built against other expectations): checked.
    expect(missingShareCheck(reference, window, { ...options, declared: [] }).failed.map((f) => f.feature)).toEqual([
      'y',
      'z',
    ]);
  });

  it('windowMissingCounts adds the parts of a window, whatever their reference', () => {
    const a = new NumericSummary(profileOf(100, 0));
    const b = new NumericSummary(profileOf(50, 10)); // another reference: other bins, same counts
    for (let i = 0; i < 120; i++) a.add(null);
    for (let i = 0; i < 100; i++) b.add(i === 0 ? Number.POSITIVE_INFINITY : i);
    const got = windowMissingCounts([new Map([['x', a]]), new Map([['x', b]])]);
    expect(got).toEqual(new Map([['x', { missing: 120, total: 220 }]]));
  });
});

describe('the DATA_QUALITY alert with built-in failures', () => {
  const outage = counts({ x: [40, 100], y: [300, 300], z: [210, 300], [PREDICTION_FEATURE]: [300, 300] });

  it('raises the DATA_QUALITY alert with no expectation configured', () => {
    const check = missingShareCheck(reference, counts({ x: [40, 300], y: [300, 300] }), options);
    const alert = dataQualityAlert(ctx, [], { minEvents: 30, missing: check })!;
    const y = check.failed[0]!;
    expect(alert).toMatchObject({
      alert_id: alertId('m', 'v1', 60_000, 'DATA_QUALITY'),
      kind: 'DATA_QUALITY',
      feature: 'y',
      method: 'missing_share',
      statistic: 1,
      threshold: 0.1,
      p_value: y.pValue,
      event_time: 120_000,
    });
    expect(JSON.parse(alert.evidence)).toEqual({
      events: 300,
      late_events: 2,
      expectations: 0,
      missing_share_checks: 2,
      missing_share_alpha: 1e-5,
      failed_count: 1,
      failed_truncated: false,
      failed: [{ feature: 'y', expectation: 'missing_share', observed: 1, bound: 0.1, count: 300, p_value: y.pValue }],
    });
  });

  it('lists declared failures and built-in ones in the one alert of the window, by feature', () => {
    const declared = [
      { feature: 'a', expectation: 'range', observed: 0.3, bound: 0.01, passed: false, count: 280, detail: '{}' },
      { feature: 'y', expectation: 'type', observed: 0, bound: 0, passed: true, count: 0, detail: '{}' },
      { feature: 'z', expectation: 'cardinality', observed: 9, bound: 3, passed: false, count: 90, detail: '{}' },
    ] as const;
    const check = missingShareCheck(reference, outage, { ...options, declared });
    const alert = dataQualityAlert(ctx, declared, { minEvents: 30, missing: check })!;
    const alone = dataQualityAlert(ctx, declared, { minEvents: 30 })!;
    expect(alert.alert_id).toBe(alone.alert_id); // one DATA_QUALITY alert per (model, version, window)
    expect(alert).toMatchObject({ feature: null, method: 'range', statistic: 0.3, p_value: null, threshold: 0.01 });
    const evidence = JSON.parse(alert.evidence) as {
      expectations: number;
      missing_share_checks: number;
      failed_count: number;
      failed: Array<{ feature: string; expectation: string; p_value?: number }>;
    };
    expect(evidence).toMatchObject({ expectations: 3, missing_share_checks: 3, failed_count: 4 });
    expect(evidence.failed.map((f) => [f.feature, f.expectation, typeof f.p_value])).toEqual([
      ['a', 'range', 'undefined'],
      ['y', 'missing_share', 'number'],
      ['z', 'cardinality', 'undefined'],
      ['z', 'missing_share', 'number'],
    ]);
  });

  it('stays bounded with 10,000 built-in failures of long names', () => {
    const y = missingShareCheck(reference, counts({ y: [300, 300] }), options).failed[0]!;
    const many = Array.from({ length: 10_000 }, (_, i) => ({ ...y, feature: `${'f'.repeat(500)}${i}` }));
    const check = { results: many, failed: many };
    const alert = dataQualityAlert(ctx, [], { minEvents: 30, missing: check })!;
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
