import { DEFAULT_EVENT_TIME_BOUNDS, silentLogger } from '@driftline/core';
import { DEFAULT_THRESHOLDS, type PartialsMessage, type ReferenceSet, referenceSet } from '@driftline/drift';
import { decideForModel, emptyModelState, parsePolicyText, policyFor } from '@driftline/policy';
import { EMPTY_EXPECTATIONS, type ExpectationSet, expectationSet } from '@driftline/quality';
import type { DriftAlert } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import type { DataQualityRow, DriftWindowRow, ReferenceStore } from '@driftline/warehouse';
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

/** A reference store holding `refs`, `current` the latest. */
const storeOfAll = (refs: readonly ReferenceSet[], current: ReferenceSet): ReferenceStore => ({
  save: async () => {},
  latest: async () => current,
  byId: async (id) => refs.find((r) => r.referenceId === id),
  newest: async () => [current],
  catalog: async () => [{ model: current.model, version: current.version, referenceId: current.referenceId }],
});

/** Stage one's partials of W0 for `xs` on one source partition, summarised on `ref`. */
function partialsOn(
  ref: ReferenceSet,
  xs: ReadonlyArray<number | null>,
  source: { partition: number; of: number } = { partition: 0, of: 1 },
  expectations: ExpectationSet = EMPTY_EXPECTATIONS,
): Promise<PartialsMessage[]> {
  return stageOnePartialsOfW0({
    references: new ReferenceCache(storeOf(ref)),
    expectations,
    partition: source.partition,
    sourcePartitions: source.of,
    xs,
    w0: W0,
    now: NOW,
  });
}

interface MergeOptions {
  /** Undefined: the merge stage has no quality dependency at all. */
  expectations?: ExpectationSet;
  missingAlert?: boolean;
  alertMinEvents?: number;
  references?: readonly ReferenceSet[];
}

/** `partials` through the merge stage with these settings. */
async function merge(
  partials: readonly PartialsMessage[],
  options: MergeOptions = {},
): Promise<{ alerts: DriftAlert[]; sends: DriftAlert[][]; quality: DataQualityRow[]; rows: DriftWindowRow[] }> {
  const refs = options.references ?? [reference];
  const expectations = options.expectations;
  const alerts: DriftAlert[] = [];
  const sends: DriftAlert[][] = [];
  const quality: DataQualityRow[] = [];
  const rows: DriftWindowRow[] = [];
  const processor = mergeProcessor({
    driftWindows: {
      insert: async (batch) => void rows.push(...batch),
      writtenReferences: async (model, version, windowStart, windowEnd) =>
        writtenReferences(rows, model, version, windowStart, windowEnd),
    },
    quarantine: { insert: async () => {} },
    references: new ReferenceCache(storeOfAll(refs, refs[0]!)),
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
    sendAlerts: async (batch) => {
      sends.push([...batch]);
      alerts.push(...batch);
    },
    ...(expectations === undefined
      ? {}
      : { quality: { expectations, store: { insert: async (b) => void quality.push(...b) } } }),
  });
  await processor.process(
    partials.map((value, i) => ({
      record: { topic: 'dp', partition: 0, offset: String(i), key: null, value: null, headers: {}, timestamp: 0 },
      value,
    })),
    { topic: 'dp', partition: 0, highWatermark: '0' },
  );
  return { alerts, sends, quality, rows };
}

/** W0 with `xs` on one source partition, on `reference`. */
async function window(xs: ReadonlyArray<number | null>, options: MergeOptions = {}) {
  return merge(await partialsOn(reference, xs, undefined, options.expectations), options);
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

describe('merge stage: declared expectations alert from DRIFTLINE_DRIFT_ALERT_MIN_EVENTS events, like drift', () => {
  const strict = expectationSet([{ feature: 'x', type: 'double', maxTypeMismatch: 0, maxNullRate: 0.05 }]);

  it('a window of one event with a null writes its failed row but raises no DATA_QUALITY alert (found by a review)', async () => {
    // Before: a DATA_QUALITY alert with events: 1, which also holds the retrain policy's runs.
    const one = await window([null], { expectations: strict, alertMinEvents: 100 });
    expect(one.alerts).toEqual([]);
    expect(one.quality.find((r) => r.expectation === 'null_rate')).toMatchObject({
      observed: 1,
      passed: 0,
      count: 1,
    });
  });

  it('alerts from the minimum on', async () => {
    expect(dataQuality((await window(absent, { expectations: strict, alertMinEvents: EVENTS + 1 })).alerts)).toEqual(
      [],
    );
    const [alert, ...more] = dataQuality(
      (await window(absent, { expectations: strict, alertMinEvents: EVENTS })).alerts,
    );
    expect(more).toEqual([]);
    expect(alert).toMatchObject({ feature: 'x', method: 'null_rate' });
    expect(JSON.parse(alert!.evidence)).toMatchObject({ events: EVENTS });
  });
});

describe('merge stage: the built-in check at its own level, over the whole window', () => {
  it('no DATA_QUALITY alert with nothing changed: 40% missing in training, 50 of 100 in the window', async () => {
    // The reference of the regression review: 10,000 rows, x missing in 40%.
    const sparse = referenceSet(
      's',
      'v1',
      new Map([['x', buildNumericProfile(Array.from({ length: 10_000 }, (_, i) => (i % 10 < 4 ? null : i % 997)))]]),
    );
    const on = async (xs: ReadonlyArray<number | null>) =>
      merge(await partialsOn(sparse, xs), { references: [sparse], expectations: EMPTY_EXPECTATIONS });
    // 50 of 100: at the bound 0.4 + 0.1, p 0.042 — the drift row's rule flags it, the alert does not.
    const half = await on(Array.from({ length: 100 }, (_, i) => (i < 50 ? null : (i * 37) % 997)));
    expect(dataQuality(half.alerts)).toEqual([]);
    expect(half.rows.find((r) => r.method === 'missing_rate')).toMatchObject({ statistic: 0.5, drifted: 1 });
    expect(half.quality).toMatchObject([{ feature: 'x', expectation: 'missing_share', observed: 0.5, passed: 1 }]);
    // 55 of 100: p 0.0023, under the drift alpha and over the alert's 1e-5.
    const more = await on(Array.from({ length: 100 }, (_, i) => (i < 55 ? null : (i * 37) % 997)));
    expect(dataQuality(more.alerts)).toEqual([]);
    // Absent from every event: still one alert.
    const outage = await on(Array.from({ length: 100 }, () => null));
    expect(dataQuality(outage.alerts).map((a) => [a.feature, a.method, a.statistic])).toEqual([
      ['x', 'missing_share', 1],
    ]);
  });

  describe('a window split across two references (a reference re-stored while instances refreshed)', () => {
    const r1 = reference;
    const r2 = referenceSet(
      's',
      'v1',
      new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i + 0.5))]]),
    );
    const split = async (first: ReadonlyArray<number | null>, second: ReadonlyArray<number | null>) =>
      merge(
        [
          ...(await partialsOn(r1, first, { partition: 0, of: 2 })),
          ...(await partialsOn(r2, second, { partition: 1, of: 2 })),
        ],
        { references: [r1, r2], expectations: EMPTY_EXPECTATIONS },
      );

    it('an outage of 80 + 70 events (each part under the minimum) → exactly one DATA_QUALITY alert', async () => {
      const { alerts, quality } = await split(
        Array.from({ length: 80 }, () => null),
        Array.from({ length: 70 }, () => null),
      );
      const [alert, ...more] = dataQuality(alerts);
      expect(more).toEqual([]);
      expect(alert).toMatchObject({ feature: 'x', method: 'missing_share', statistic: 1 });
      const evidence = JSON.parse(alert!.evidence) as { events: number; failed: Array<{ count: number }> };
      expect(evidence.events).toBe(150);
      expect(evidence.failed.map((f) => f.count)).toEqual([150]);
      expect(quality).toMatchObject([{ feature: 'x', expectation: 'missing_share', count: 150, events: 150 }]);
    });

    it('120 events without x + 100 with it → the share of the whole window, never "missing from every event"', async () => {
      const { alerts } = await split(
        Array.from({ length: 120 }, () => null),
        Array.from({ length: 100 }, (_, i) => i),
      );
      const [alert, ...more] = dataQuality(alerts);
      expect(more).toEqual([]);
      expect(alert!.statistic).toBeCloseTo(120 / 220, 12);
      const evidence = JSON.parse(alert!.evidence) as {
        events: number;
        failed: Array<{ observed: number; count: number }>;
      };
      expect(evidence.events).toBe(220);
      expect(evidence.failed).toHaveLength(1);
      expect(evidence.failed[0]!.count).toBe(220);
      expect(evidence.failed[0]!.observed).toBeCloseTo(120 / 220, 12);
    });
  });

  it('a max_null_rate that was not evaluated (counts built against other expectations) exempts nothing', async () => {
    const built = expectationSet([{ feature: 'x', type: 'double', maxTypeMismatch: 0, maxNullRate: 1 }]);
    const merging = expectationSet([{ feature: 'x', type: 'double', maxTypeMismatch: 0, maxNullRate: 0.99 }]);
    const { alerts, quality } = await merge(await partialsOn(reference, absent, undefined, built), {
      expectations: merging,
    });
    expect(dataQuality(alerts).map((a) => [a.feature, a.method])).toEqual([['x', 'missing_share']]);
    // Nothing declared was evaluated: the built-in row alone, with no expectation set id.
    expect(quality.map((r) => [r.expectation, r.expectations_id])).toEqual([['missing_share', '']]);
  });

  it('writes a missing_share row per input feature checked, keyed like the expectations', async () => {
    // x declared without max_null_rate (its type row is evaluated), and missing in 30 of 150 events.
    const declared = expectationSet([{ feature: 'x', type: 'double', maxTypeMismatch: 0 }]);
    const partly = present.map((v, i) => (i < 30 ? null : v));
    const { quality, alerts } = await window(partly, { expectations: declared });
    const row = quality.find((r) => r.expectation === 'missing_share')!;
    const alert = dataQuality(alerts)[0]!;
    expect(row).toMatchObject({
      model: 's',
      version: 'v1',
      feature: 'x',
      scope: '',
      observed: 0.2,
      bound: 0.1,
      passed: 0,
      count: EVENTS,
      events: EVENTS,
      expectations_id: declared.id, // as the window's type row
    });
    expect(quality.find((r) => r.expectation === 'type')).toMatchObject({ feature: 'x', expectations_id: declared.id });
    expect(JSON.parse(row.detail)).toEqual({
      reference_share: 0,
      p_value: alert.p_value,
      alpha: 1e-5,
      part: 30,
      whole: EVENTS,
    });
    // The feature arriving: a passing row; the prediction features are never checked.
    const fine = await window(present, { expectations: EMPTY_EXPECTATIONS });
    expect(fine.quality.map((r) => [r.feature, r.expectation, r.passed, r.expectations_id])).toEqual([
      ['x', 'missing_share', 1, ''],
    ]);
    // Off, or under the minimum events: no row.
    expect((await window(absent, { expectations: EMPTY_EXPECTATIONS, missingAlert: false })).quality).toEqual([]);
    expect((await window(absent, { expectations: EMPTY_EXPECTATIONS, alertMinEvents: EVENTS + 1 })).quality).toEqual(
      [],
    );
  });
});

describe("merge stage: a window's DATA_QUALITY alert goes out before its drift alerts (the retrain policy's veto needs it)", () => {
  // An upstream outage that also drifts the model: x missing from 40 of 150 events, the rest shifted.
  const broken = Array.from({ length: EVENTS }, (_, i) => (i < 40 ? null : 200 + i));

  it('one send: the DATA_QUALITY alert, then the FEATURE_DRIFT alert of the same window', async () => {
    const { sends } = await window(broken);
    // Before: FEATURE_DRIFT, then DATA_QUALITY.
    expect(sends.map((batch) => batch.map((a) => [a.kind, a.window_start, a.window_end]))).toEqual([
      [
        ['DATA_QUALITY', W0, W0 + 1000],
        ['FEATURE_DRIFT', W0, W0 + 1000],
      ],
    ]);
  });

  it('so the policy, reading them in that order, holds the first broken window even with sustain 1', async () => {
    const { alerts } = await window(broken);
    const policy = policyFor(parsePolicyText('models: { s: { sustain: 1, signals: { share_drifted: 0.5 } } }'), 's')!;
    let state = emptyModelState;
    const decisions: string[] = [];
    for (const alert of alerts) {
      const { state: next, decision } = decideForModel(policy, state, alert);
      state = next;
      decisions.push(decision.kind === 'fire' ? 'fire' : decision.reason);
    }
    // Before: a fire on the broken window (its DATA_QUALITY alert came after it), whose cooldown
    // then held the real retrain.
    expect(decisions).toEqual(['no_signal', 'data_quality']);
    expect(state.lastFire).toBeNull();
  });
});
