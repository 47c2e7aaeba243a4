import { DEFAULT_EVENT_TIME_BOUNDS, silentLogger } from '@driftline/core';
import { DEFAULT_THRESHOLDS, referenceSet } from '@driftline/drift';
import { decideForModel, emptyModelState, parsePolicyText, policyFor } from '@driftline/policy';
import { EMPTY_EXPECTATIONS, type ExpectationSet, expectationSet } from '@driftline/quality';
import type { DriftAlert } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import type { DataQualityRow, DriftWindowRow } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { mergeProcessor } from '../src/merge-stage.js';
import { ReferenceCache } from '../src/reference-cache.js';
import { memoryProgress, stageOnePartialsOfW0, storeOf, writtenReferences } from './support.js';

/** Wall clock: windows of 1 s just before it. */
const NOW = Date.UTC(2024, 11, 2, 12, 0, 0);
const W0 = NOW - 10_000;
const EVENTS = 150;

// Model s/v1 on x, a reference that never misses it.
const reference = referenceSet(
  's',
  'v1',
  new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i))]]),
);
const absent = Array.from({ length: EVENTS }, () => null);
const present = Array.from({ length: EVENTS }, (_, i) => (i * 7) % 100);

/**
 * W0 through the real stage one and the merge stage with these settings; `expectations`
 * undefined: the merge stage has no quality dependency at all.
 */
async function window(
  xs: ReadonlyArray<number | null>,
  options: { expectations?: ExpectationSet; missingAlert?: boolean; alertMinEvents?: number } = {},
): Promise<{ alerts: DriftAlert[]; quality: DataQualityRow[]; rows: DriftWindowRow[] }> {
  const references = new ReferenceCache(storeOf(reference));
  const expectations = options.expectations;
  const partials = await stageOnePartialsOfW0({
    references,
    expectations: expectations ?? EMPTY_EXPECTATIONS,
    partition: 0,
    sourcePartitions: 1,
    xs,
    w0: W0,
    now: NOW,
  });
  const alerts: DriftAlert[] = [];
  const quality: DataQualityRow[] = [];
  const rows: DriftWindowRow[] = [];
  const merge = mergeProcessor({
    driftWindows: {
      insert: async (batch) => void rows.push(...batch),
      writtenReferences: async (model, version, windowStart) => writtenReferences(rows, model, version, windowStart),
    },
    quarantine: { insert: async () => {} },
    references,
    progress: memoryProgress(),
    group: 'g-merge',
    idleTimeoutMs: 60_000,
    windowMs: 1000,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    thresholds: DEFAULT_THRESHOLDS,
    primary: 'psi',
    alertShare: 0,
    alertMinEvents: options.alertMinEvents ?? 100,
    ...(options.missingAlert === undefined ? {} : { missingAlert: options.missingAlert }),
    logger: silentLogger,
    now: () => NOW,
    sendAlerts: async (batch) => void alerts.push(...batch),
    ...(expectations === undefined
      ? {}
      : { quality: { expectations, store: { insert: async (b) => void quality.push(...b) } } }),
  });
  await merge.process(
    partials.map((value, i) => ({
      record: { topic: 'dp', partition: 0, offset: String(i), key: null, value: null, headers: {}, timestamp: 0 },
      value,
    })),
    { topic: 'dp', partition: 0, highWatermark: '0' },
  );
  return { alerts, quality, rows };
}

const dataQuality = (alerts: readonly DriftAlert[]) => alerts.filter((a) => a.kind === 'DATA_QUALITY');

describe('merge stage: the built-in missing-share check', () => {
  it('a feature absent from every event raises DATA_QUALITY with no expectation configured, and no drift alert', async () => {
    for (const expectations of [undefined, EMPTY_EXPECTATIONS]) {
      const { alerts, rows } = await window(absent, expectations === undefined ? {} : { expectations });
      expect(alerts.map((a) => a.kind)).toEqual(['DATA_QUALITY']);
      const [alert] = alerts;
      expect(alert).toMatchObject({
        model: 's',
        feature: 'x',
        method: 'missing_share',
        statistic: 1,
        window_start: W0,
      });
      expect(alert!.p_value!).toBeLessThan(1e-40);
      const evidence = JSON.parse(alert!.evidence) as { events: number; failed: unknown[] };
      expect(evidence.events).toBe(EVENTS);
      expect(evidence.failed).toEqual([
        {
          feature: 'x',
          expectation: 'missing_share',
          observed: 1,
          bound: 0.1,
          count: EVENTS,
          p_value: alert!.p_value,
        },
      ]);
      // The missing_rate row carries the same p-value (null before: the row had no test).
      const missingRate = rows.find((r) => r.feature === 'x' && r.method === 'missing_rate')!;
      expect(missingRate).toMatchObject({ drifted: 1, statistic: 1, p_value: alert!.p_value });
    }
  });

  it('says nothing when the feature arrives, when switched off, or below DRIFTLINE_DRIFT_ALERT_MIN_EVENTS', async () => {
    expect(dataQuality((await window(present)).alerts)).toEqual([]);
    expect(dataQuality((await window(absent, { missingAlert: false })).alerts)).toEqual([]);
    expect(dataQuality((await window(absent, { alertMinEvents: EVENTS + 1 })).alerts)).toEqual([]);
    expect(dataQuality((await window(absent, { alertMinEvents: EVENTS })).alerts)).toHaveLength(1);
  });

  it('a declared max_null_rate decides for its feature instead (max_null_rate: 1 accepts the outage)', async () => {
    const accepted = expectationSet([{ feature: 'x', type: 'double', maxTypeMismatch: 0, maxNullRate: 1 }]);
    const quiet = await window(absent, { expectations: accepted });
    expect(dataQuality(quiet.alerts)).toEqual([]);
    expect(quiet.quality.find((r) => r.expectation === 'null_rate')).toMatchObject({ observed: 1, passed: 1 });
    const strict = expectationSet([{ feature: 'x', type: 'double', maxTypeMismatch: 0, maxNullRate: 0.05 }]);
    const [alert, ...more] = dataQuality((await window(absent, { expectations: strict })).alerts);
    expect(more).toEqual([]);
    expect(alert).toMatchObject({ feature: 'x', method: 'null_rate', p_value: null });
    expect((JSON.parse(alert!.evidence) as { failed: unknown[] }).failed).toHaveLength(1); // not listed twice
  });

  it('the retrain policy does not fire on it, whatever signals it is configured with', async () => {
    const [alert] = (await window(absent)).alerts;
    const policy = policyFor(
      parsePolicyText(`
models:
  s:
    sustain: 1
    signals:
      share_drifted: 0
      prediction_drift: true
      key_features: [x]
      performance:
        - { metric: roc_auc, below: 0.99 }
`),
      's',
    )!;
    expect(decideForModel(policy, emptyModelState, alert!).decision).toMatchObject({
      kind: 'hold',
      reason: 'no_signal',
    });
  });
});
