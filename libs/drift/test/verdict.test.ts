import { buildNumericProfile, NumericSummary } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import {
  buildAlerts,
  DEFAULT_THRESHOLDS,
  type DriftMethod,
  featureResults,
  type MethodResult,
  PREDICTION_FEATURE,
  windowVerdict,
} from '../src/index.js';

const row = (feature: string, method: DriftMethod, drifted: boolean, statistic = drifted ? 1 : 0): MethodResult => ({
  feature,
  method,
  statistic,
  pValue: null,
  threshold: 0.2,
  drifted,
  referenceSize: 100,
  currentSize: 100,
  errorBound: null,
});

const numeric = (...features: string[]) =>
  new Map<string, 'numeric' | 'categorical'>(features.map((f) => [f, 'numeric']));

// A review: in a window where only x drifted and y was absent from every event, y's rows were its
// missing_rate alone, so y left the denominator: the alert said features 2, share 0.5 (a retrain
// signal), where windows with y present said features 3, share 0.33. A regression review of the
// first fix (y counted as drifted by its missing_rate row): a reference column live events never
// carry raised FEATURE_DRIFT in every window, and an upstream outage pushed the retrain policy.
describe('windowVerdict: a feature without a value the primary method can measure', () => {
  it('stays in the denominator and is not drifted by its missing_rate row', () => {
    const v = windowVerdict([row('x', 'psi', true), row('y', 'missing_rate', true)], numeric('x', 'y'), 'psi', 0);
    expect(v.features).toBe(2);
    expect(v.shareDrifted).toBe(0.5);
    expect(v.drifted.map((r) => [r.feature, r.method])).toEqual([['x', 'psi']]);
  });

  it("the review's window: x drifted, y absent, z measured and not drifted → 3 features, 1 drifted", () => {
    const rows = [
      row('x', 'psi', true),
      row('x', 'missing_rate', false),
      row('y', 'missing_rate', true),
      row('z', 'psi', false),
      row('z', 'missing_rate', false),
      row(PREDICTION_FEATURE, 'psi', false),
      row(PREDICTION_FEATURE, 'missing_rate', false),
    ];
    const v = windowVerdict(rows, numeric('x', 'y', 'z', PREDICTION_FEATURE), 'psi', 0);
    expect(v.features).toBe(3);
    expect(v.shareDrifted).toBeCloseTo(1 / 3, 12);
    expect(v.drifted.map((r) => r.feature)).toEqual(['x']);
  });

  it('a feature the reference itself mostly misses, absent from the window: covered, not drifted', () => {
    const v = windowVerdict([row('x', 'psi', true), row('y', 'missing_rate', false)], numeric('x', 'y'), 'ks', 0);
    expect(v.features).toBe(2);
    expect(v.drifted.map((r) => r.feature)).toEqual([]); // x's ks row is absent: psi does not decide under ks
    expect(v.shareDrifted).toBe(0);
  });

  it('every value infinite: its out_of_range row keeps it in the denominator, not drifted', () => {
    const v = windowVerdict(
      [
        row('w', 'psi', false),
        row('x', 'out_of_range', true),
        row('y', 'out_of_range', true),
        row('y', 'missing_rate', true, 0.6),
      ],
      numeric('w', 'x', 'y'),
      'psi',
      0,
    );
    expect(v).toMatchObject({ features: 3, shareDrifted: 0, featureDrift: false, drifted: [] });
  });

  it("a measured feature's missing_rate row does not decide it: its primary row does", () => {
    const v = windowVerdict([row('x', 'psi', false), row('x', 'missing_rate', true)], numeric('x'), 'psi', 0);
    expect(v).toMatchObject({ features: 1, shareDrifted: 0, featureDrift: false });
  });

  it('from the real rows of a summary whose events all miss the feature', () => {
    const profile = buildNumericProfile(Array.from({ length: 200 }, (_, i) => i));
    const present = new NumericSummary(profile);
    const absent = new NumericSummary(profile);
    for (let i = 0; i < 200; i++) {
      present.add(1_000 + i); // every value above the reference: drifted
      absent.add(null);
    }
    const rows = [
      ...featureResults('x', profile, present, DEFAULT_THRESHOLDS),
      ...featureResults('y', profile, absent, DEFAULT_THRESHOLDS),
    ];
    expect(rows.filter((r) => r.feature === 'y').map((r) => [r.method, r.drifted])).toEqual([['missing_rate', true]]);
    const v = windowVerdict(rows, numeric('x', 'y'), 'psi', 0);
    expect(v).toMatchObject({ features: 2, shareDrifted: 0.5, featureDrift: true });
    expect(v.drifted.map((r) => r.feature)).toEqual(['x']);
  });
});

describe('FEATURE_DRIFT alert of a window where a feature stopped arriving', () => {
  const ctx = {
    model: 'm',
    version: 'v1',
    referenceId: 'r',
    windowStart: 0,
    windowEnd: 1000,
    events: 300,
    lateEvents: 0,
  };

  it('counts it in features, not in the drifted ones', () => {
    const rows = [row('x', 'psi', true, 0.4), row('y', 'missing_rate', true, 1), row('z', 'psi', false)];
    const [alert] = buildAlerts(ctx, windowVerdict(rows, numeric('x', 'y', 'z'), 'psi', 0));
    expect(alert).toMatchObject({ kind: 'FEATURE_DRIFT', method: 'psi', statistic: 0.4, feature: 'x' });
    expect(alert!.share_drifted).toBeCloseTo(1 / 3, 12);
    const evidence = JSON.parse(alert!.evidence) as { features: number; drifted_count: number; drifted: unknown[] };
    expect(evidence.features).toBe(3);
    expect(evidence.drifted_count).toBe(1);
  });

  it('the missing feature alone raises no FEATURE_DRIFT (a max_null_rate expectation alerts on it)', () => {
    const rows = [row('x', 'psi', false), row('y', 'missing_rate', true, 1)];
    expect(buildAlerts(ctx, windowVerdict(rows, numeric('x', 'y'), 'psi', 0))).toEqual([]);
  });
});
