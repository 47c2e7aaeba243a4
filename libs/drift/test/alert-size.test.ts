import type { ExpectationResult } from '@driftline/quality';
import type { DriftAlert } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import {
  type AlertContext,
  buildAlerts,
  dataQualityAlert,
  type MethodResult,
  sequentialAlert,
  type WindowVerdict,
} from '../src/index.js';

const ctx: AlertContext = {
  model: 'm',
  version: 'v1',
  referenceId: 'r',
  windowStart: 60_000,
  windowEnd: 120_000,
  events: 5_000,
  lateEvents: 0,
};

/**
 * An upper bound of the alert's Avro encoding on alerts.v1 (the contract's field order is not
 * needed for a bound): Avro writes a string as a varint length (≤ 5 bytes) and its UTF-8 bytes, a
 * long or a double in at most 10 bytes, and a union branch (nullable fields) in one more byte;
 * 5 bytes of Confluent framing. JSON of the whole alert would escape the evidence a second time.
 */
const encodedBytes = (a: DriftAlert): number =>
  5 +
  Object.values(a).reduce<number>(
    (n, v) => n + 1 + (typeof v === 'string' ? 5 + Buffer.byteLength(v) : typeof v === 'number' ? 10 : 0),
    0,
  );
/** Well below alerts.v1's 1 MB max.message.bytes (1,048,588), whatever the model's features. */
const BOUND = 1_000_000;

const row = (feature: string, statistic: number, pValue: number | null = null): MethodResult => ({
  feature,
  method: pValue === null ? 'psi' : 'ks',
  statistic,
  pValue,
  threshold: pValue === null ? 0.2 : 0.05,
  drifted: true,
  referenceSize: 10_000,
  currentSize: 5_000,
  errorBound: pValue === null ? null : 0.001,
});

/** `windowVerdict`'s shape: drifted rows sorted by feature. */
const verdict = (drifted: MethodResult[], features = drifted.length): WindowVerdict => ({
  features,
  drifted: [...drifted].sort((a, b) => (a.feature < b.feature ? -1 : 1)),
  shareDrifted: drifted.length / features,
  featureDrift: true,
  predictionDrift: [],
});

const featureDrift = (v: WindowVerdict): DriftAlert => buildAlerts(ctx, v).find((a) => a.kind === 'FEATURE_DRIFT')!;

interface DriftEvidence {
  features: number;
  drifted_count: number;
  drifted_truncated: boolean;
  drifted: { feature: string; statistic?: number; p_value?: number | null }[];
}

describe('a FEATURE_DRIFT alert fits on alerts.v1 (found by a review: 8,000 drifted features made 1.18 MB)', () => {
  it('10,000 drifted features with 256-character names: the most severe listed, all counted', () => {
    const name = (i: number) => `f${String(i).padStart(5, '0')}_${'x'.repeat(249)}`;
    // PSI grows with i: the last features are the most drifted.
    const rows = Array.from({ length: 10_000 }, (_, i) => row(name(i), 0.2 + i / 1_000));
    const a = featureDrift(verdict(rows, 20_000));
    expect(encodedBytes(a)).toBeLessThan(BOUND);
    const ev = JSON.parse(a.evidence) as DriftEvidence;
    expect(ev).toMatchObject({ features: 20_000, drifted_count: 10_000, drifted_truncated: true });
    // The 100 most severe in detail, then as many more names as fit, still most severe first.
    expect(ev.drifted.length).toBeGreaterThan(100);
    expect(ev.drifted.map((d) => d.feature)).toEqual(
      Array.from({ length: ev.drifted.length }, (_, k) => name(9_999 - k)),
    );
    expect(ev.drifted.slice(0, 100).every((d) => d.statistic !== undefined)).toBe(true);
    expect(ev.drifted.slice(100).every((d) => Object.keys(d).join() === 'feature')).toBe(true);
    // What the retrain policy reads: share_drifted on the alert, and the most severe at the top.
    expect(a).toMatchObject({ share_drifted: 0.5, feature: null, method: 'psi', statistic: 0.2 + 9_999 / 1_000 });
  });

  it('huge, escaped and multi-byte names stay within the bound, and the most severe is always listed', () => {
    // Names as long as a 16 MiB partial allows, the most severe, then 9,996 escaped or multi-byte ones.
    const huge = ['a'.repeat(1_000_000), '\u0001'.repeat(200_000), '数'.repeat(200_000), '😀'.repeat(100_000)];
    const spellings = ['\u0001', '数', '😀', '"'];
    const rows = [
      ...huge.map((n, i) => row(n, 10 + i)),
      ...Array.from({ length: 9_996 }, (_, i) => row(`${spellings[i % 4]!.repeat(250)}${i}`, 0.3 + (i % 97) / 100)),
    ];
    const a = featureDrift(verdict(rows));
    expect(encodedBytes(a)).toBeLessThan(BOUND);
    const ev = JSON.parse(a.evidence) as DriftEvidence;
    expect(ev.drifted.length).toBeGreaterThan(0);
    expect(ev.drifted_truncated).toBe(true);
    expect(ev.drifted[0]!.feature).toMatch(/^😀+…$/u);
    // One drifted feature with a 1 MB name: it is named (cut) on the alert and in the evidence.
    const one = featureDrift(verdict([row('b'.repeat(1_000_000), 0.5)], 3));
    expect(encodedBytes(one)).toBeLessThan(BOUND);
    expect(one.feature).toMatch(/^b+…$/);
    expect((JSON.parse(one.evidence) as DriftEvidence).drifted).toHaveLength(1);
  });

  it("names every drifted feature of a wide model with short names (the retrain policy's key_features reads them)", () => {
    const rows = Array.from({ length: 8_000 }, (_, i) => row(`feature_${i}`, 0.2 + (i % 1_000) / 100));
    const a = featureDrift(verdict(rows, 10_000));
    expect(encodedBytes(a)).toBeLessThan(BOUND);
    const ev = JSON.parse(a.evidence) as DriftEvidence;
    expect(ev).toMatchObject({ drifted_count: 8_000, drifted_truncated: false });
    expect(new Set(ev.drifted.map((d) => d.feature))).toEqual(new Set(rows.map((r) => r.feature)));
    expect(ev.drifted.filter((d) => d.statistic !== undefined)).toHaveLength(100);
  });

  it('names every drifted feature an alert of the full list fit on alerts.v1 with: 2,000 of 256 characters (found by a review)', () => {
    // With a quarter-megabyte bound, 926 were named and a key feature among the least drifted was
    // missed by the retrain policy, though the whole list (762 KB) had fit under 1 MB before.
    const name = (i: number) => `f${String(i).padStart(5, '0')}_${'x'.repeat(249)}`;
    const rows = Array.from({ length: 2_000 }, (_, i) => row(name(i), 0.2 + i / 1_000));
    const a = featureDrift(verdict(rows, 10_000));
    expect(encodedBytes(a)).toBeLessThan(BOUND);
    const ev = JSON.parse(a.evidence) as DriftEvidence;
    expect(ev).toMatchObject({ drifted_count: 2_000, drifted_truncated: false });
    expect(ev.drifted.map((d) => d.feature)).toContain(name(0));
  });

  it('lists every drifted feature of a small window, most severe first, flagged complete', () => {
    const a = featureDrift(verdict([row('a', 0.3), row('b', 0.9), row('c', 0.9), row('d', 0.25)], 10));
    const ev = JSON.parse(a.evidence) as DriftEvidence;
    expect(ev).toMatchObject({ features: 10, drifted_count: 4, drifted_truncated: false });
    expect(ev.drifted.map((d) => d.feature)).toEqual(['b', 'c', 'a', 'd']);
    expect(a).toMatchObject({ feature: null, statistic: 0.9, share_drifted: 0.4 });
    expect(JSON.stringify(buildAlerts(ctx, verdict([row('a', 0.3), row('b', 0.9)])))).toBe(
      JSON.stringify(buildAlerts(ctx, verdict([row('b', 0.9), row('a', 0.3)]))),
    );
  });

  it('ranks p-value methods by p-value (the decision), larger statistic on ties', () => {
    const rows = [
      row('low_d_tiny_p', 0.08, 1e-12),
      row('high_d', 0.3, 1e-4),
      row('zero_p', 0.5, 0),
      row('zero_p_2', 0.6, 0),
    ];
    const a = featureDrift(verdict(rows));
    const ev = JSON.parse(a.evidence) as DriftEvidence;
    expect(ev.drifted.map((d) => d.feature)).toEqual(['zero_p_2', 'zero_p', 'low_d_tiny_p', 'high_d']);
    expect(a).toMatchObject({ method: 'ks', statistic: 0.6, p_value: 0 });
  });
});

describe('the other alerts built here are bounded too', () => {
  it('DATA_QUALITY: 10,000 failures with long names', () => {
    const failures: ExpectationResult[] = Array.from({ length: 10_000 }, (_, i) => ({
      feature: `${'q'.repeat(5_000)}${i}`,
      expectation: 'null_rate',
      observed: 0.5,
      bound: 0.1,
      passed: false,
      count: 10,
      detail: '{}',
    }));
    const a = dataQualityAlert(ctx, failures, { minEvents: 30 })!;
    expect(encodedBytes(a)).toBeLessThan(BOUND);
    const ev = JSON.parse(a.evidence) as { failed_count: number; failed_truncated: boolean; failed: unknown[] };
    expect(ev).toMatchObject({ failed_count: 10_000, failed_truncated: true });
    expect(ev.failed.length).toBeGreaterThan(0);
    const one = dataQualityAlert(ctx, [{ ...failures[0]!, feature: 'z'.repeat(2_000_000) }], { minEvents: 30 })!;
    expect(encodedBytes(one)).toBeLessThan(BOUND);
    expect(JSON.parse(one.evidence)).toMatchObject({ failed_count: 1, failed_truncated: false });
  });

  it('SEQUENTIAL_DRIFT: a feature with a 2 MB name', () => {
    const feature = 's'.repeat(2_000_000);
    const a = sequentialAlert(
      { ...ctx, feature, partition: 0, offset: 1, eventTime: 90_000 },
      { statistic: 3, threshold: 1, t: 250, check: 5 },
      { statistic: 'cvm', window: 200, every: 10, ert: 1_000, values: new Float64Array([1]) },
    );
    expect(encodedBytes(a)).toBeLessThan(BOUND);
    expect(a.feature).toMatch(/^s+…$/);
  });
});
