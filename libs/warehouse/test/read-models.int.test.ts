// The report's and the model card's read models on a real ClickHouse (the embedded engine):
// defects found by a review, each with the rows that showed it.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LATE_ONLY_FEATURE, LATE_ONLY_METHOD } from '@driftline/drift';
import {
  featureDistribution,
  MAX_CHART_VERSIONS,
  MAX_REPORT_FEATURES,
  MAX_TIMELINE_EVENTS,
  type QualityPoint,
  qualityChecks,
  renderModelCard,
  renderReport,
  type SkewFeature,
  type SkewPoint,
  skewFeatures,
} from '@driftline/report';
import { buildCategoricalProfile, buildNumericProfile, type ReferenceProfile } from '@driftline/stats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClickHouse,
  chTime,
  createClickHouse,
  migrate,
  migrations,
  openWarehouse,
  warehouseOn,
} from '../src/index.js';
import { MAX_DISTRIBUTION_PREDICTIONS } from '../src/read-models/report.js';
import { testClickHouse } from './fixtures/clickhouse.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-read-models-'));
const database = `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 1);
let ch: ClickHouse;

const transition = (version: string, from: string, to: string, at: number, previous: string | null = null) => ({
  model: 'fraud',
  version,
  from_stage: from,
  to_stage: to,
  at: chTime(at),
  decided_by: 'policy:promotion',
  reason: 'evidence',
  detail: '',
  evidence: '',
  canary_share: null,
  previous_version: previous,
  recorded_at: chTime(at),
});

const perf = (model: string, version: string, ws: number, labeled: number, metrics: Record<string, number | null>) => ({
  model,
  model_version: version,
  window_start: chTime(ws),
  window_end: chTime(ws + H),
  segment_feature: '',
  segment: '__all__',
  task: 'regression',
  predictions: labeled,
  labeled,
  expired: 0,
  pending: 0,
  label_coverage: 1,
  invalid_labels: 0,
  threshold: 0.5,
  version: 1,
  computed_at: chTime(ws + H),
  ...metrics,
});

/** Version v1's reference (ref-1) of `model`: a profile per feature. */
const insertProfiles = (model: string, profiles: Record<string, ReferenceProfile>) =>
  ch.insert(
    'reference_profiles',
    Object.entries(profiles).map(([feature, profile]) => ({
      model,
      version: 'v1',
      reference_id: 'ref-1',
      feature,
      kind: profile.kind,
      profile: JSON.stringify(profile),
      created_at: chTime(T0),
    })),
  );

/** A labeled prediction of `model` v1 at `time` with `features`, labelled an hour after T0. */
const labeled = (model: string, id: string, time: number, features: object, prediction: number) => ({
  model,
  model_version: 'v1',
  prediction_id: id,
  entity_id: 'e',
  prediction_time: chTime(time),
  label_time: chTime(T0 + H),
  features: JSON.stringify(features),
  prediction,
  predicted_class: null,
  label: 1,
  joined_at: chTime(T0 + H),
});

/** A drift_windows row of `model` / `version` at window `ws` (an hour long). */
const driftRow = (model: string, version: string, feature: string, ws: number, method: string, statistic: number) => ({
  model,
  version,
  reference_id: `ref-${version}`,
  feature,
  window_start: chTime(ws),
  window_end: chTime(ws + H),
  method,
  statistic,
  p_value: null,
  threshold: 0.2,
  drifted: statistic >= 0.2 ? 1 : 0,
  reference_size: 100,
  current_size: 100,
  events: 100,
  late_events: 0,
  source_partitions: 1,
  idle_partitions: 0,
  computed_at: chTime(ws + H),
});

/**
 * The drift monitor's row for a window of (model, version) with `late` late events and none on
 * time (libs/drift): it measures nothing, and carries the late count.
 */
const lateOnlyRow = (model: string, version: string, ws: number, late: number) => ({
  ...driftRow(model, version, LATE_ONLY_FEATURE, ws, LATE_ONLY_METHOD, 0),
  threshold: 0,
  drifted: 0,
  reference_size: 0,
  current_size: 0,
  events: 0,
  late_events: late,
});

beforeAll(async () => {
  ch = await createClickHouse(testClickHouse(path, database));
  await migrate(ch, migrations);
}, 120_000);

afterAll(async () => {
  await ch?.close();
});

describe('the model card read model', () => {
  it('pools RMSE as √(Σ rmse²·labels / Σ labels) and leaves windows with a NaN metric out', async () => {
    await ch.insert('performance_windows', [
      perf('house', 'v1', T0, 10, { rmse: 1, mae: 0.5 }),
      perf('house', 'v1', T0 + H, 30, { rmse: 3, mae: 2.5 }),
    ]);
    // A NaN metric (written as such: JSON has no NaN) counts for nothing, instead of making the pool NaN.
    await ch.command(
      `INSERT INTO ${ch.table('performance_windows')} (model, model_version, window_start, window_end, segment_feature, segment, task, predictions, labeled, rmse, mae, threshold, version, computed_at)
       VALUES ('house', 'v1', '${chTime(T0 + 2 * H)}', '${chTime(T0 + 3 * H)}', '', '__all__', 'regression', 50, 50, nan, nan, 0.5, 1, '${chTime(T0 + 3 * H)}')`,
    );
    const card = await warehouseOn(ch).modelCard('house', 'v1');
    const overall = card.live.find((l) => l.segmentFeature === '')!;
    // The weighted mean of the RMSEs, (10·1 + 30·3) / 40 = 2.5, understated the pooled error √7.
    expect(overall.metrics.rmse).toBeCloseTo(Math.sqrt((10 * 1 + 30 * 9) / 40), 12);
    expect(overall.metrics.mae).toBeCloseTo((10 * 0.5 + 30 * 2.5) / 40, 12);
  });

  it('weights classification windows by their valid labels, not by invalid ones (found by a review)', async () => {
    // Window 1, written before invalid labels nulled the metrics: 100 labels, 90 of them invalid,
    // accuracy 1 on the 10 valid ones. Window 2: 10 valid labels, all wrong.
    await ch.insert('performance_windows', [
      { ...perf('spam', 'v1', T0, 100, { accuracy: 1 }), task: 'classification', invalid_labels: 90 },
      { ...perf('spam', 'v1', T0 + H, 10, { accuracy: 0 }), task: 'classification' },
    ]);
    const card = await warehouseOn(ch).modelCard('spam', 'v1');
    const overall = card.live.find((l) => l.segmentFeature === '')!;
    // 20 valid labels, 10 right: 0.5 (weighted by `labeled`, 100/110 = 0.909).
    expect(overall.metrics.accuracy).toBeCloseTo(0.5, 12);
  });

  it('lists an input feature named `__x`; only the prediction profiles are not inputs (found by a review)', async () => {
    const model = `dunder-card-${randomUUID().slice(0, 8)}`;
    await ch.insert(
      'reference_profiles',
      ['__x', 'amount', '__prediction__', '__predicted_class__'].map((feature) => ({
        model,
        version: 'v1',
        reference_id: 'ref-1',
        feature,
        kind: 'numeric',
        profile: '{}',
        created_at: chTime(T0),
      })),
    );
    const card = await warehouseOn(ch).modelCard(model, 'v1');
    expect({ features: card.features, count: card.featureCount }).toEqual({ features: ['__x', 'amount'], count: 2 });
  });

  it('reads a held-out metric and a drift statistic stored as NaN as null, not 0', async () => {
    await ch.command(
      `INSERT INTO ${ch.table('model_versions')} (model, version, request_id, base_version, status, promotion_reason, data_from, data_to, metrics, registered_at, updated_at)
       VALUES ('fraud', 'v9', 'req-9', 'v8', 'PROMOTED', 'ok', '${chTime(T0)}', '${chTime(T0 + 2 * H)}', map('roc_auc', 0.8, 'log_loss', nan), '${chTime(T0 + 2 * H)}', '${chTime(T0 + 2 * H)}')`,
    );
    await ch.command(
      `INSERT INTO ${ch.table('drift_windows')} (model, version, reference_id, feature, window_start, window_end, method, statistic, p_value, threshold, drifted, computed_at)
       VALUES ('fraud', 'v8', 'r', 'amount', '${chTime(T0)}', '${chTime(T0 + H)}', 'psi', nan, NULL, 0.2, 0, '${chTime(T0 + H)}')`,
    );
    const card = await warehouseOn(ch).modelCard('fraud', 'v9');
    expect(card.training?.metrics).toEqual({ roc_auc: 0.8, log_loss: null });
    expect(card.trainingDrift).toEqual([
      { feature: 'amount', method: 'psi', windows: 1, drifted: 0, maxStatistic: null },
    ]);
  });
});

describe('the model card read model: stage, as the report reads production (found by a review)', () => {
  const trained = (model: string, version: string, base: string, t: number, status: string) => ({
    model,
    version,
    request_id: `req-${version}`,
    base_version: base,
    status,
    promotion_reason: status === 'PROMOTED' ? 'better' : 'not better',
    data_from: chTime(t - H),
    data_to: chTime(t),
    metrics: { roc_auc: 0.9 },
    registered_at: chTime(t),
    updated_at: chTime(t),
  });

  it('rollout `direct` (no transitions): the last PROMOTED is production, the versions it replaced say so', async () => {
    // Every promoted version's card said `production`, and v1 (deployed by hand) `unknown`.
    const model = `direct-card-${randomUUID().slice(0, 8)}`;
    const start = Date.UTC(2026, 8, 1);
    await ch.insert('model_versions', [
      trained(model, 'v2', 'v1', start + H, 'PROMOTED'),
      trained(model, 'v3', 'v2', start + 2 * H, 'PROMOTED'),
      trained(model, 'v4', 'v3', start + 3 * H, 'REJECTED'),
    ]);
    await ch.insert('performance_windows', [perf(model, 'v1', start, 10, { rmse: 1 })]);
    const w = warehouseOn(ch);
    // The report names the same version, also when the promotion is older than its range (it said "–").
    const from = start + 30 * 86_400_000;
    const data = await w.report({ model, from, to: from + 7 * 86_400_000 });
    expect(data.productionVersion).toBe('v3');
    const stages = await Promise.all(['v1', 'v2', 'v3', 'v4'].map(async (v) => (await w.modelCard(model, v)).stage));
    expect(stages).toEqual(['replaced by v3', 'replaced by v3', 'production', 'rejected']);
  });

  it('with transitions: the view of all of them (ties at one millisecond in stage order, not alphabetical)', async () => {
    const model = `staged-card-${randomUUID().slice(0, 8)}`;
    const start = Date.UTC(2026, 8, 1);
    const at = (version: string, from: string, to: string, t: number, previous: string | null = null) => ({
      ...transition(version, from, to, t, previous),
      model,
    });
    await ch.insert('model_transitions', [
      at('v1', 'canary', 'production', start),
      at('v2', 'canary', 'production', start + H, 'v1'),
      // shadow → canary recorded in the same millisecond: `ORDER BY at, to_stage` made shadow the last.
      at('v3', 'candidate', 'shadow', start + 2 * H, 'v2'),
      at('v3', 'shadow', 'canary', start + 2 * H),
    ]);
    const w = warehouseOn(ch);
    const cards = await Promise.all(['v1', 'v2', 'v3'].map((v) => w.modelCard(model, v)));
    expect(cards.map((c) => c.stage)).toEqual(['replaced by v2', 'production', 'canary']);
    expect(cards[2]!.transitions.map((t) => t.to)).toEqual(['shadow', 'canary']);
    const data = await w.report({ model, from: start, to: start + 3 * H });
    expect(data.productionVersion).toBe('v2');
  });
});

describe('the model card read model: bounded', () => {
  it(`reads the first ${MAX_REPORT_FEATURES} features and the most drifted drift rows, and counts them all`, async () => {
    // 100,000 features made a 60.8 MB card with 400,003 table rows (GROUP BY feature, method: no LIMIT).
    const model = `wide-${randomUUID().slice(0, 8)}`;
    const features = Array.from({ length: 520 }, (_, i) => `f${String(i).padStart(4, '0')}`);
    await ch.insert(
      'reference_profiles',
      [...features, '__prediction__'].map((feature) => ({
        model,
        version: 'v2',
        reference_id: 'ref-2',
        feature,
        kind: 'numeric',
        profile: '{}',
        created_at: chTime(T0),
      })),
    );
    await ch.command(
      `INSERT INTO ${ch.table('model_versions')} (model, version, request_id, base_version, status, promotion_reason, data_from, data_to, metrics, registered_at, updated_at)
       VALUES ('${model}', 'v2', 'req-2', 'v1', 'PROMOTED', 'ok', '${chTime(T0)}', '${chTime(T0 + 2 * H)}', map('roc_auc', 0.8), '${chTime(T0 + 2 * H)}', '${chTime(T0 + 2 * H)}')`,
    );
    await ch.insert(
      'drift_windows',
      features.flatMap((feature, i) =>
        ['psi', 'ks'].map((method) => ({
          model,
          version: 'v1',
          reference_id: 'r',
          feature,
          window_start: chTime(T0),
          window_end: chTime(T0 + H),
          method,
          statistic: 0.1,
          p_value: null,
          threshold: 0.2,
          // The last feature drifted: the most drifted rows come first, whatever their name.
          drifted: i === features.length - 1 ? 1 : 0,
          computed_at: chTime(T0 + H),
        })),
      ),
    );
    const card = await warehouseOn(ch).modelCard(model, 'v2');
    expect(card.features).toEqual(features.slice(0, MAX_REPORT_FEATURES));
    expect(card.featureCount).toBe(520);
    expect(card.reference?.features).toBe(520);
    expect(card.trainingDrift).toHaveLength(MAX_REPORT_FEATURES);
    expect(card.trainingDrift.slice(0, 2).map((d) => [d.feature, d.method, d.drifted])).toEqual([
      ['f0519', 'ks', 1],
      ['f0519', 'psi', 1],
    ]);
    expect(card.trainingDriftCount).toBe(1040);
  });
});

describe('the model card read model: segments bounded per segment feature (found by a review)', () => {
  it('keeps every segment feature, its most labelled segments first, and says how many were left out', async () => {
    // 480 merchants (a different top 20 each window) before `zone` alphabetically: one cap of 200
    // over all of them left `zone` out whole, with its degraded `eu`, and said nothing.
    const model = `segs-${randomUUID().slice(0, 8)}`;
    const row = (w: number, feature: string, segment: string, labeled: number, roc: number) => ({
      ...perf(model, 'v1', T0 + w * H, labeled, { roc_auc: roc }),
      task: 'binary',
      segment_feature: feature,
      segment,
    });
    const rows = [];
    for (let w = 0; w < 24; w++) {
      rows.push(row(w, '', '', 100, 0.95));
      for (let k = 0; k < 20; k++)
        rows.push(row(w, 'merchant', `m${String(w * 20 + k).padStart(3, '0')}`, 10 + k, 0.95));
      rows.push(row(w, 'zone', 'eu', 50, 0.51), row(w, 'zone', 'us', 50, 0.95));
    }
    await ch.insert('performance_windows', rows);
    const card = await warehouseOn(ch).modelCard(model, 'v1');
    const of = (feature: string) => card.live.filter((l) => l.segmentFeature === feature);
    expect(of('').length).toBe(1);
    expect(of('zone').map((l) => [l.segment, l.metrics.roc_auc])).toEqual([
      ['eu', 0.51],
      ['us', 0.95],
    ]);
    const merchants = of('merchant');
    expect(merchants.length).toBe(50);
    // The most labelled first: 29 labels each (k = 19), then 28, …
    expect(merchants.every((l, i) => i === 0 || l.labeled <= merchants[i - 1]!.labeled)).toBe(true);
    expect(merchants[0]!.labeled).toBe(29);
    expect(card.liveCount).toBe(1 + 480 + 2);
    expect(renderModelCard(card)).toContain(
      '430 more segments (the least labelled of their segment feature) not shown',
    );
  });
});

describe('the report read model', () => {
  it('reads NaN drift statistics and data-quality values as null, not 0', async () => {
    await ch.command(
      `INSERT INTO ${ch.table('drift_windows')} (model, version, reference_id, feature, window_start, window_end, method, statistic, p_value, threshold, drifted, computed_at)
       VALUES ('nan-model', 'v1', 'r', 'x', '${chTime(T0)}', '${chTime(T0 + H)}', 'ks', nan, nan, nan, 0, '${chTime(T0 + H)}')`,
    );
    await ch.command(
      `INSERT INTO ${ch.table('data_quality_windows')} (model, version, feature, expectation, scope, window_start, window_end, observed, bound, passed, computed_at)
       VALUES ('nan-model', 'v1', 'x', 'null_rate', '', '${chTime(T0)}', '${chTime(T0 + H)}', nan, 0.1, 0, '${chTime(T0 + H)}')`,
    );
    const data = await warehouseOn(ch).report({ model: 'nan-model', from: T0, to: T0 + H });
    expect(data.drift.map((r) => [r.statistic, r.pValue])).toEqual([[null, null]]);
    // The threshold NaN too (it read 0: Number(null); found by a review), shown "—" as the others.
    expect(data.drift.map((r) => r.threshold)).toEqual([Number.NaN]);
    const latest = renderReport(data).split('<table class="latest">')[1]!;
    expect(latest).toContain('<td class="num">—</td><td class="num">—</td><td class="num">—</td><td>ok</td>');
    expect(data.quality?.map((q) => q.observed)).toEqual([null]);
  });

  it('names the version in production at the end of the range, from every transition before it', async () => {
    await ch.insert('model_transitions', [
      // v1 reached production before the range: the range's own timeline does not show it.
      transition('v1', 'canary', 'production', T0 - 10 * 86_400_000),
      transition('v2', 'candidate', 'shadow', T0 + H, 'v1'),
      transition('v2', 'shadow', 'canary', T0 + 2 * H, 'v1'),
      transition('v2', 'canary', 'production', T0 + 3 * H, 'v1'),
      transition('v2', 'production', 'rolled_back', T0 + 5 * H, 'v1'),
    ]);
    const report = (to: number) => warehouseOn(ch).report({ model: 'fraud', from: T0, to });
    expect((await report(T0 + 2 * H)).productionVersion).toBe('v1');
    expect((await report(T0 + 4 * H)).productionVersion).toBe('v2');
    const after = await report(T0 + 6 * H);
    expect(after.productionVersion).toBe('v1');
    expect(after.retrain.find((e) => e.kind === 'ROLLED_BACK')).toMatchObject({ version: 'v2', previous: 'v1' });
  });

  it('counts every feature of the current version in one query per kind, as the per-feature queries did', async () => {
    const model = 'dist';
    const amounts = [5, 12, 18, 25, 31, 40, 52, 60, 71, 90];
    const numeric = buildNumericProfile(amounts, { bins: 4, fineBins: 20 });
    const prediction = buildNumericProfile([0.1, 0.3, 0.5, 0.7, 0.9], { bins: 3, fineBins: 10 });
    const country = buildCategoricalProfile(['de', 'de', 'fr', 'es']);
    await insertProfiles(model, { amount: numeric, flag: numeric, country, __prediction__: prediction });
    // Ints, doubles, booleans, strings, numbers where a category is expected, missing and null values.
    const features = [
      { amount: 3, flag: true, country: 'de' },
      { amount: 14.5, flag: false, country: 'fr' },
      { amount: 33, country: 'de' },
      { amount: 'n/a', flag: 1, country: 7 },
      { amount: 95.25, flag: null, country: 'it' },
      { flag: 0.5, country: 'de' },
    ];
    await ch.insert(
      'labeled_predictions',
      features.slice(0, 3).map((f, i) => labeled(model, `l${i}`, T0 + i * 1000, f, i / 4)),
    );
    await ch.insert(
      'unlabeled_predictions',
      features.slice(3).map((f, i) => ({
        model,
        model_version: 'v1',
        prediction_id: `u${i}`,
        entity_id: 'e',
        prediction_time: chTime(T0 + (10 + i) * 1000),
        deadline: chTime(T0 + H),
        expired_at: chTime(T0 + H),
        features: JSON.stringify(f),
        prediction: 0.8 + i / 10,
        predicted_class: null,
      })),
    );
    const data = await warehouseOn(ch).report({ model, from: T0, to: T0 + H });
    // Expected the way the per-feature queries counted: right-closed bins on the coarse edges.
    const bin = (edges: readonly number[], v: number) => edges.filter((e) => e < v).length;
    const numericCounts = (values: readonly number[], edges: readonly number[]) => {
      const m = new Map<number, number>();
      for (const v of values) m.set(bin(edges, v), (m.get(bin(edges, v)) ?? 0) + 1);
      return m;
    };
    const edges = (p: typeof numeric) => (p.kind === 'numeric' ? p.coarseEdges : []);
    const predictions = [...[0, 1, 2].map((i) => i / 4), ...[0, 1, 2].map((i) => 0.8 + i / 10)];
    expect(data.distributions.map((d) => d.feature)).toEqual(['__prediction__', 'amount', 'country', 'flag']);
    expect(data.distributions).toEqual([
      featureDistribution('__prediction__', 'v1', prediction, numericCounts(predictions, edges(prediction))),
      featureDistribution('amount', 'v1', numeric, numericCounts([3, 14.5, 33, 95.25], edges(numeric))),
      featureDistribution(
        'country',
        'v1',
        country,
        new Map([
          ['de', 3],
          ['fr', 1],
          ['it', 1],
          ['7', 1],
        ]),
      ),
      featureDistribution('flag', 'v1', numeric, numericCounts([1, 0, 1, 0.5], edges(numeric))),
    ]);
  });

  it(`reads the current distributions from a sample of about MAX_DISTRIBUTION_PREDICTIONS predictions, and says so (found by a review)`, async () => {
    // 7 days of a wide model were every prediction times every shown feature: the report timed out.
    const model = `sampled-${randomUUID().slice(0, 8)}`;
    const total = Math.round(MAX_DISTRIBUTION_PREDICTIONS * 1.6);
    const country = buildCategoricalProfile(['de', 'de', 'fr', 'es']);
    const amount = buildNumericProfile([5, 12, 18, 25, 31, 40, 52, 60, 71, 90], { bins: 4, fineBins: 20 });
    await insertProfiles(model, { amount, country });
    // A quarter 'de', a quarter 'fr', half values the reference never saw (one per prediction).
    const colour = (i: number) => (i % 4 === 0 ? 'de' : i % 4 === 1 ? 'fr' : `x${i}`);
    await ch.insert(
      'labeled_predictions',
      Array.from({ length: total }, (_, i) =>
        labeled(model, `s${i}`, T0 + (i % 3_600) * 1000, { amount: i % 100, country: colour(i) }, 0.5),
      ),
    );
    const data = await warehouseOn(ch).report({ model, from: T0, to: T0 + H });
    expect(data.notes).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^current distributions: a sample of about 100,000 of the ${total.toLocaleString('en-US')} predictions of v1`,
        ),
      ),
    );
    const byFeature = new Map(data.distributions.map((d) => [d.feature, d]));
    for (const d of byFeature.values()) {
      expect(d.currentCount, d.feature).toBeGreaterThan(MAX_DISTRIBUTION_PREDICTIONS * 0.97);
      expect(d.currentCount, d.feature).toBeLessThan(MAX_DISTRIBUTION_PREDICTIONS * 1.03);
    }
    const shares = new Map(byFeature.get('country')!.bins.map((b) => [b.label, b.current]));
    expect(shares.get('de')).toBeCloseTo(0.25, 2);
    expect(shares.get('fr')).toBeCloseTo(0.25, 2);
    expect(shares.get('es')).toBe(0);
    expect(shares.get('(unseen values)')).toBeCloseTo(0.5, 2);
    // Uniform amounts 0..99 on the reference's bins, within a point.
    const bins = byFeature.get('amount')!.bins;
    const edges = amount.kind === 'numeric' ? amount.coarseEdges : [];
    const exact = (j: number) =>
      Array.from({ length: 100 }, (_, v) => v).filter((v) => edges.filter((e) => e < v).length === j).length / 100;
    for (const [j, b] of bins.entries()) expect(b.current, b.label).toBeCloseTo(exact(j), 1);
  }, 60_000);

  it('reads the most drifted features only, windows aggregated per bucket, the latest window as it is', async () => {
    // Every drift row was read before the page kept 500 features: 7,000 features × 2,016 windows ×
    // 2 methods were 28 M rows. Here 520 features × 30 five-minute windows in a 7-day range.
    const model = `bounded-${randomUUID().slice(0, 8)}`;
    const M5 = 300_000;
    const start = Date.UTC(2026, 9, 1);
    const features = 520;
    const windows = 30;
    const row = (version: string, feature: string, w: number, method: string, statistic: number, drifted: boolean) => ({
      model,
      version,
      reference_id: 'r',
      feature,
      window_start: chTime(start + w * M5),
      window_end: chTime(start + (w + 1) * M5),
      method,
      statistic,
      p_value: method === 'ks' ? (drifted ? 1e-9 : 0.5) : null,
      threshold: method === 'ks' ? 0.05 : 0.2,
      drifted: drifted ? 1 : 0,
      computed_at: chTime(start + (w + 1) * M5),
    });
    const inserted = [];
    for (let f = 0; f < features; f++)
      for (let w = 0; w < windows; w++) {
        // feature_0000 spikes once (window 7); features 1..30 drift in 30 − f windows: the most drifted first.
        const spike = f === 0 && w === 7;
        const drifted = spike || (f > 0 && f <= 30 && w < 31 - f);
        const name = `feature_${String(f).padStart(4, '0')}`;
        inserted.push(row('v1', name, w, 'psi', spike ? 9 : drifted ? 0.5 : 0.01 + (w % 5) / 100, drifted));
        inserted.push(row('v1', name, w, 'ks', 0.1, drifted));
      }
    // Five more versions measured once each, early on: six versions, the charts draw four (v1 first: measured last).
    for (let v = 2; v <= 6; v++) inserted.push(row(`v${v}`, 'feature_0000', v - 2, 'psi', 0.3, true));
    await ch.insert('drift_windows', inserted);
    const data = await warehouseOn(ch).report({ model, from: start, to: start + 7 * 86_400_000 });

    const read = new Set(data.drift.map((r) => r.feature));
    expect(read.size).toBe(MAX_REPORT_FEATURES);
    for (let f = 0; f <= 30; f++) expect(read.has(`feature_${String(f).padStart(4, '0')}`)).toBe(true);
    expect(new Set(data.drift.map((r) => r.version))).toEqual(new Set(['v1', 'v6', 'v5', 'v4']));
    expect(MAX_CHART_VERSIONS).toBe(4);
    const series = data.drift.filter((r) => r.feature === 'feature_0000' && r.method === 'psi' && r.version === 'v1');
    // A bucket is 7 d / 324 ≈ 31 min: 30 windows are 5 buckets and the latest window.
    expect(series.length).toBeLessThanOrEqual(7);
    expect(series.find((r) => r.statistic === 9)).toMatchObject({ drifted: true });
    const latest = series.at(-1)!;
    expect(latest.windowStart).toBe(start + (windows - 1) * M5);
    expect(latest.statistic).toBeCloseTo(0.01 + ((windows - 1) % 5) / 100, 12);
    expect(data.driftTotals).toMatchObject({ features, windows });
    expect(data.driftTotals?.latest.find((l) => l.version === 'v1')).toEqual({
      version: 'v1',
      windowStart: start + (windows - 1) * M5,
      features,
      drifted: 1, // feature_0001 drifts in its first 30 windows
    });
    expect(data.driftTotals?.latest).toHaveLength(6);
    const html = renderReport(data);
    expect(html).toContain(`${features} input features: drift over time`);
    expect(html).toContain('6 versions: drift over time and the latest window show 4');
  });

  it('keeps per bucket the windows with the lowest and the highest statistic, at their own times and values', async () => {
    // Found by a review: per ~31-min bucket the largest PSI, the smallest p-value and "drifted if any"
    // at the bucket's first window charted a feature drifting in 1 window of 6 (0.21 vs 0.05) as
    // drifted in every point, tooltips naming windows that were 0.05 — and no note said so.
    const model = `buckets-${randomUUID().slice(0, 8)}`;
    const M5 = 300_000;
    const start = Date.UTC(2026, 9, 1);
    const windows = 288; // a day of 5-minute windows in a 7-day range: about 12 per bucket
    const stored = new Map<string, { statistic: number; pValue: number | null; drifted: boolean }>();
    const inserted = [];
    for (let w = 0; w < windows; w++) {
      const drifted = w % 6 === 3;
      for (const [method, statistic, pValue] of [
        ['psi', drifted ? 0.21 : 0.05, null],
        ['ks', drifted ? 0.3 : 0.02, drifted ? 0.001 : 0.6],
      ] as const) {
        stored.set(`${method}@${start + w * M5}`, { statistic, pValue, drifted });
        inserted.push({
          model,
          version: 'v1',
          reference_id: 'r',
          feature: 'amount',
          window_start: chTime(start + w * M5),
          window_end: chTime(start + (w + 1) * M5),
          method,
          statistic,
          p_value: pValue,
          threshold: method === 'ks' ? 0.05 : 0.2,
          drifted: drifted ? 1 : 0,
          computed_at: chTime(start + (w + 1) * M5),
        });
      }
    }
    await ch.insert('drift_windows', inserted);
    const data = await warehouseOn(ch).report({ model, from: start, to: start + 7 * 86_400_000 });
    expect(data.drift.length).toBeLessThan(inserted.length);
    // Every point is a stored window, with that window's own values.
    for (const r of data.drift)
      expect({ method: r.method, statistic: r.statistic, pValue: r.pValue, drifted: r.drifted }).toEqual({
        method: r.method,
        ...stored.get(`${r.method}@${r.windowStart}`),
      });
    // Both extremes of every bucket: drifted and quiet windows alike.
    for (const method of ['psi', 'ks']) {
      const points = data.drift.filter((r) => r.method === method);
      expect(points.filter((r) => r.drifted).length).toBeGreaterThan(0);
      expect(points.filter((r) => !r.drifted).length).toBeGreaterThanOrEqual(points.filter((r) => r.drifted).length);
    }
    expect(data.drift.at(-1)?.windowStart).toBe(start + (windows - 1) * M5);
    expect(data.driftTotals?.bucketMs).toBe(Math.ceil((7 * 86_400_000) / 162));
    const html = renderReport(data);
    expect(html).toContain(
      'more windows than the chart draws: per 62 min the windows with the lowest and the highest statistic',
    );

    // A range whose buckets hold a window each is read as it is, and the page says nothing.
    const hour = await warehouseOn(ch).report({ model, from: start, to: start + H });
    expect(hour.drift).toHaveLength(2 * 12);
    expect(hour.driftTotals?.bucketMs).toBeUndefined();
    expect(renderReport(hour)).not.toContain('more windows than the chart draws');
  });

  it('reads the drift of the version the page names in production (a PROMOTED one without stage transitions)', async () => {
    // Found by a review: the reader took production only from model_transitions, the page also from
    // the trainer's PROMOTED: v2 (promoted, measured first) was left out of the drift read while
    // the page's note said the production version was shown first.
    const model = `promoted-${randomUUID().slice(0, 8)}`;
    const start = Date.UTC(2026, 9, 1);
    const spans: Record<string, number[]> = { v2: [0, 1], v3: [2], v4: [3], v5: [4], v6: [5] };
    await ch.insert(
      'drift_windows',
      Object.entries(spans).flatMap(([version, hours]) =>
        hours.map((h) => ({
          model,
          version,
          reference_id: 'r',
          feature: 'amount',
          window_start: chTime(start + h * H),
          window_end: chTime(start + (h + 1) * H),
          method: 'psi',
          statistic: 0.1,
          p_value: null,
          threshold: 0.2,
          drifted: 0,
          computed_at: chTime(start + (h + 1) * H),
        })),
      ),
    );
    await ch.insert('model_versions', [
      {
        model,
        version: 'v2',
        request_id: 'req-2',
        base_version: 'v1',
        status: 'PROMOTED',
        promotion_reason: 'ok',
        data_from: chTime(start - 2 * H),
        data_to: chTime(start - H),
        metrics: { roc_auc: 0.8 },
        registered_at: chTime(start + H / 2),
        updated_at: chTime(start + H / 2),
      },
    ]);
    const data = await warehouseOn(ch).report({ model, from: start, to: start + 24 * H });
    expect(data.productionVersion).toBe('v2');
    expect(new Set(data.drift.map((r) => r.version))).toEqual(new Set(['v2', 'v6', 'v5', 'v4']));
    const html = renderReport(data);
    const psi = html.slice(
      html.indexOf('data-chart="drift-psi"'),
      html.indexOf('</figure>', html.indexOf('data-chart="drift-psi"')),
    );
    expect(psi).toContain('data-series="\u2068amount\u2069 (\u2068v2\u2069)"');
    expect(html).toContain('show 4 (v2, v6, v5, v4: the production version first');
  });

  it('names the production version of a direct rollout behind more than MAX_TIMELINE_EVENTS newer versions (found by a review)', async () => {
    // No stage transitions: v-prod PROMOTED, then 1,000 rejected candidates. The production
    // version was the last PROMOTED among the latest 1,000 timeline events: none, so no name.
    const model = `direct-${randomUUID().slice(0, 8)}`;
    const start = Date.UTC(2026, 9, 1);
    const version = (name: string, t: number, status: string) => ({
      model,
      version: name,
      request_id: `req-${name}`,
      base_version: 'v-prod',
      status,
      promotion_reason: status === 'PROMOTED' ? 'better' : 'not better',
      data_from: chTime(t - H),
      data_to: chTime(t),
      metrics: { roc_auc: 0.9 },
      registered_at: chTime(t),
      updated_at: chTime(t),
    });
    await ch.insert('model_versions', [
      version('v-prod', start + H, 'PROMOTED'),
      ...Array.from({ length: MAX_TIMELINE_EVENTS }, (_, i) =>
        version(`cand-${i}`, start + 2 * H + i * 60_000, 'REJECTED'),
      ),
    ]);
    const data = await warehouseOn(ch).report({ model, from: start, to: start + 7 * 86_400_000 });
    expect(data.retrain.some((e) => e.version === 'v-prod')).toBe(false);
    expect(data.productionVersion).toBe('v-prod');
  });

  it('counts live booleans under the spelling of the reference profile, as the drift monitor keys them (found by a review)', async () => {
    // A reference built by `driftline reference` from a pandas CSV lists True / False: read as
    // true / false, every live boolean fell into "other" (current 100 % other).
    const model = 'bools';
    const pandas = buildCategoricalProfile(['True', 'False', 'True', 'False']);
    const canonical = buildCategoricalProfile(['true', 'false', 'false']);
    await insertProfiles(model, { flag: pandas, opted_in: canonical });
    const live = [
      { flag: true, opted_in: true },
      { flag: true, opted_in: false },
      { flag: true, opted_in: false },
      { flag: false, opted_in: 'maybe' },
    ];
    await ch.insert(
      'labeled_predictions',
      live.map((f, i) => labeled(model, `b${i}`, T0 + i * 1000, f, 0.5)),
    );
    const data = await warehouseOn(ch).report({ model, from: T0, to: T0 + H });
    expect(data.distributions).toEqual([
      featureDistribution(
        'flag',
        'v1',
        pandas,
        new Map([
          ['True', 3],
          ['False', 1],
        ]),
      ),
      featureDistribution(
        'opted_in',
        'v1',
        canonical,
        new Map([
          ['true', 1],
          ['false', 2],
          ['maybe', 1],
        ]),
      ),
    ]);
    expect(data.distributions[0]?.bins.find((b) => b.label === '(unseen values)')?.current).toBe(0);
  });

  it('reads the latest MAX_TIMELINE_EVENTS timeline events and counts every one (found by a review)', async () => {
    // Every decision, version and transition of the range was read, a table row and a marker on
    // every chart each: 10,000 versions made a 33 MB page in six minutes.
    const model = 'timeline';
    const decisions = 5;
    const transitions = MAX_TIMELINE_EVENTS + 100;
    await ch.command(
      `INSERT INTO ${ch.table('retrain_decisions')} (model, alert_id, model_version, decision, fired, reason, detail, decided_at)
       SELECT 'timeline', concat('a', toString(number)), 'v0', 'fire', 1, 'fire', '', fromUnixTimestamp64Milli(toInt64(${T0} + number * 1000), 'UTC')
       FROM numbers(${decisions})`,
    );
    await ch.insert(
      'model_transitions',
      Array.from({ length: transitions }, (_, i) => ({
        ...transition(`v${i + 1}`, 'candidate', 'shadow', T0 + 60_000 + i * 1000),
        model,
      })),
    );
    const data = await warehouseOn(ch).report({ model, from: T0, to: T0 + 2 * H });
    expect(data.retrain).toHaveLength(MAX_TIMELINE_EVENTS);
    expect(data.timelineTotals).toEqual({ events: decisions + transitions, decisions });
    // The latest, in time order: the decisions (first) and the earliest transitions are left out.
    expect(data.retrain.at(-1)).toMatchObject({ version: `v${transitions}`, kind: 'SHADOW' });
    expect(data.retrain[0]).toMatchObject({ version: `v${transitions - MAX_TIMELINE_EVENTS + 1}` });
    const html = renderReport(data);
    expect(html).toContain(`<span>retrain decisions</span><b>${decisions}</b>`);
    expect(html).toContain(
      `the latest ${MAX_TIMELINE_EVENTS} of ${decisions + transitions} timeline events; ${decisions + 100} earlier ones left out`,
    );
  });

  it('aggregates data quality in SQL: every check counted as the rows say, the chart bounded (found by a review)', async () => {
    // Every row was read: 5-minute windows × 50 features × 4 expectations over 90 days were 4.35 GB.
    const model = 'quality-bounded';
    const M5 = 300_000;
    const windows = 600;
    const start = Date.UTC(2026, 8, 1);
    await ch.command(
      `INSERT INTO ${ch.table('data_quality_windows')} (model, version, feature, expectation, scope, window_start, window_end, observed, bound, passed, computed_at)
       SELECT '${model}', v, concat('f', toString(f)), e, '', ws, ws + toIntervalMinute(5), o, b, o <= b, ws
       FROM (
         SELECT w.number AS w, fs.number AS f, ['type', 'null_rate', 'range', 'cardinality'][es.number + 1] AS e,
           ['v1', 'v2'][vs.number + 1] AS v, fromUnixTimestamp64Milli(toInt64(${start} + w * ${M5}), 'UTC') AS ws,
           multiIf(e = 'cardinality', 100 + (w * 13 + f) % 50, f = 0 AND e = 'null_rate' AND w = 100 AND v = 'v1', 0.9,
             f = 1 AND e = 'range' AND w = 200, nan, ((w * 7 + f + vs.number) % 10) / 100) AS o,
           if(e = 'cardinality', 140, 0.05 + w / 1e6) AS b
         FROM numbers(${windows}) AS w, numbers(3) AS fs, numbers(4) AS es, numbers(2) AS vs
       )`,
    );
    const data = await warehouseOn(ch).report({ model, from: start, to: start + 7 * 86_400_000 });
    // Independently: every row as it is stored, through the page's own ranking.
    const points = await ch.select<QualityPoint>(
      `SELECT feature, expectation, version, toFloat64(toUnixTimestamp64Milli(window_start)) AS windowStart, observed,
         bound, toBool(passed) AS passed
       FROM ${ch.table('data_quality_windows')} FINAL WHERE model = {model:String}`,
      { model },
    );
    expect(points).toHaveLength(windows * 3 * 4 * 2);
    expect(data.qualityTotals?.checks).toEqual(qualityChecks(points));
    expect(data.qualityTotals?.total).toBe(12);
    expect(data.qualityTotals?.bucketMs).toBe(Math.ceil((7 * 86_400_000) / 162));
    // The chart's points: the shares only, ≤ 2 windows per ~62-minute bucket and the latest window,
    // per check, each with its 2 versions' rows.
    expect(new Set(data.quality?.map((q) => q.expectation))).toEqual(new Set(['type', 'null_rate', 'range']));
    const buckets = Math.ceil((windows * M5) / (data.qualityTotals?.bucketMs ?? 1));
    expect(data.quality?.length).toBeLessThanOrEqual(9 * 2 * (2 * buckets + 1));
    expect(data.quality?.find((q) => q.observed === 0.9)).toMatchObject({
      feature: 'f0',
      expectation: 'null_rate',
      version: 'v1',
      windowStart: start + 100 * M5,
      passed: false,
    });
    // The latest window as it is: both versions' rows, so the chart's worst version is there.
    const series = data.quality?.filter((q) => q.feature === 'f2' && q.expectation === 'type') ?? [];
    const lastWindow = series.filter((q) => q.windowStart === start + (windows - 1) * M5);
    expect(lastWindow.map((q) => [q.version, q.observed]).sort()).toEqual([
      ['v1', ((599 * 7 + 2) % 10) / 100],
      ['v2', ((599 * 7 + 2 + 1) % 10) / 100],
    ]);
    const html = renderReport(data);
    expect(html).toContain('per 62 min the windows with the lowest and the highest statistic');
  });

  it("charts each window's worst version, never another version's passing value for a failing window (found by a review)", async () => {
    // v1 (production) fails every 5-minute window for 7 days (~0.30, bound 0.1), v2 (canary) passes
    // (~0.00): the extremes over the rows kept windows for v2's lowest row, and the page drew 154
    // of 317 points below the bound for a check that failed in every window.
    const model = 'quality-worst-version';
    const start = Date.UTC(2026, 8, 1);
    await ch.command(
      `INSERT INTO ${ch.table('data_quality_windows')} (model, version, feature, expectation, scope, window_start, window_end, observed, bound, passed, computed_at)
       SELECT '${model}', v, 'amount', 'null_rate', '', ws, ws + toIntervalMinute(5), o, 0.1, o <= 0.1, ws
       FROM (
         SELECT ['v1', 'v2'][vs.number + 1] AS v, fromUnixTimestamp64Milli(toInt64(${start} + w.number * 300000), 'UTC') AS ws,
           if(v = 'v1', 0.29 + (cityHash64(w.number, 1) % 100) / 5000, (cityHash64(w.number, 2) % 100) / 5000) AS o
         FROM numbers(2016) AS w, numbers(2) AS vs
       )`,
    );
    const data = await warehouseOn(ch).report({ model, from: start, to: start + 7 * 86_400_000 });
    const [truth] = await ch.select<{ lowest: number; highest: number }>(
      `SELECT min(worst) AS lowest, max(worst) AS highest FROM (
         SELECT window_start, max(observed) AS worst FROM ${ch.table('data_quality_windows')} FINAL
         WHERE model = {model:String} GROUP BY window_start)`,
      { model },
    );
    expect(data.qualityTotals?.bucketMs).toBeDefined();
    const worst = new Map<number, number>();
    for (const q of data.quality ?? [])
      worst.set(q.windowStart, Math.max(worst.get(q.windowStart) ?? -1, q.observed ?? -1));
    expect(worst.size).toBeGreaterThan(162);
    expect(Math.min(...worst.values())).toBe(truth?.lowest);
    expect(Math.max(...worst.values())).toBe(truth?.highest);
    // Every window kept with each version's row, the failing one among them.
    expect(
      [...worst.keys()].every((ws) =>
        data.quality?.some((q) => q.windowStart === ws && q.version === 'v1' && !q.passed),
      ),
    ).toBe(true);
    const drawn = [...renderReport(data).matchAll(/<circle class="point"[^>]*><title>([^<]*)<\/title>/g)].map((m) =>
      Number(m[1]?.split(': ').at(-1)),
    );
    expect(drawn.length).toBeGreaterThan(0);
    expect(drawn.filter((y) => y < 0.1)).toEqual([]);
  });

  it('pools the skew table as the rows pool: Σ|served − stored| / Σ numeric comparisons (found by a review)', async () => {
    const model = 'skew-pooled';
    const row = (w: number, partition: number, compared: number, numeric: number, diff: number) => ({
      model,
      model_version: 'v1',
      window_start: chTime(T0 + w * H),
      window_end: chTime(T0 + (w + 1) * H),
      feature: 'amount',
      source_topic: 'predictions.v1',
      source_partition: partition,
      through_offset: 1,
      sampled: compared,
      compared,
      mismatched: numeric,
      numeric_compared: numeric,
      abs_diff_sum: diff,
      missing_in_store: 0,
      missing_in_prediction: 0,
      newer_row: 0,
      staleness_hist: [],
      updated_at: chTime(T0 + w * H),
    });
    await ch.insert('skew_windows', [row(0, 0, 100, 10, 10), row(1, 0, 10, 10, 100), row(1, 1, 7, 3, 0.25)]);
    const [pooled] = await ch.select<{ mean: number }>(
      `SELECT sum(abs_diff_sum) / sum(numeric_compared) AS mean FROM ${ch.table('skew_windows')} FINAL WHERE model = {model:String}`,
      { model },
    );
    const data = await warehouseOn(ch).report({ model, from: T0, to: T0 + 2 * H });
    const html = renderReport(data);
    const cells = html.slice(html.indexOf('<table class="skew">')).match(/<td class="num">([^<]*)<\/td>/g) ?? [];
    expect(cells[3]).toBe(`<td class="num">${Number(pooled?.mean).toPrecision(4)}</td>`);
    expect(Number(pooled?.mean)).toBeCloseTo(110.25 / 23, 12);
  });

  it('aggregates skew in SQL: every feature summed and pooled as the rows say, the chart bounded', async () => {
    // Every (window, feature, version) row was read into memory, as the data-quality rows were.
    const model = 'skew-bounded';
    const M5 = 300_000;
    const windows = 600;
    const start = Date.UTC(2026, 8, 1);
    await ch.command(
      `INSERT INTO ${ch.table('skew_windows')} (model, model_version, window_start, window_end, feature, source_topic,
         source_partition, through_offset, sampled, compared, mismatched, numeric_compared, abs_diff_sum,
         missing_in_store, missing_in_prediction, newer_row, staleness_hist, updated_at, expired)
       SELECT '${model}', ['v1', 'v2'][vs.number + 1], ws, ws + toIntervalMinute(5), concat('f', toString(fs.number)),
         'predictions.v1', ps.number, 1, 20, 20, if(fs.number = 0 AND w.number = 100, 20, (w.number + fs.number) % 7),
         10, if(fs.number = 1 AND w.number = 50, nan, (w.number % 13) / 4), 1, 0, ps.number, [], ws,
         (w.number + fs.number * 3 + vs.number) % 5
       FROM numbers(${windows}) AS w, numbers(3) AS fs, numbers(2) AS vs, numbers(2) AS ps
       ARRAY JOIN [fromUnixTimestamp64Milli(toInt64(${start} + w.number * ${M5}), 'UTC')] AS ws`,
    );
    const data = await warehouseOn(ch).report({ model, from: start, to: start + 7 * 86_400_000 });
    // Independently: every (window, feature, version), partitions summed, through the page's own pooling.
    const points = await ch.select<SkewPoint>(
      `SELECT feature, model_version AS version, toFloat64(toUnixTimestamp64Milli(window_start)) AS windowStart,
         toFloat64(sum(sampled)) AS sampled, toFloat64(sum(compared)) AS compared, toFloat64(sum(mismatched)) AS mismatched,
         toFloat64(sum(numeric_compared)) AS numericCompared, sum(abs_diff_sum) AS absDiffSum,
         toFloat64(sum(missing_in_store)) AS missingInStore, toFloat64(sum(missing_in_prediction)) AS missingInPrediction,
         toFloat64(sum(newer_row)) AS newerRow, toFloat64(sum(expired)) AS expired
       FROM ${ch.table('skew_windows')} FINAL WHERE model = {model:String}
       GROUP BY feature, model_version, window_start`,
      { model },
    );
    expect(points).toHaveLength(windows * 3 * 2);
    const rounded = (list: readonly SkewFeature[] | undefined) =>
      list?.map((f) => ({ ...f, meanAbsDiff: f.meanAbsDiff === null ? null : Number(f.meanAbsDiff.toPrecision(12)) }));
    expect(rounded(data.skewTotals?.features)).toEqual(rounded(skewFeatures(points)));
    expect(data.skewTotals?.features[0]).toMatchObject({ feature: 'f0', compared: windows * 2 * 40 });
    expect(data.skewTotals?.total).toBe(3);
    expect(data.skewTotals?.bucketMs).toBe(Math.ceil((7 * 86_400_000) / 162));
    // The chart's windows: ≤ 2 per ~62-minute bucket and the latest, per feature, each with its versions.
    const buckets = Math.ceil((windows * M5) / (data.skewTotals?.bucketMs ?? 1));
    expect(data.skew?.length).toBeLessThanOrEqual(3 * (2 * buckets + 1) * 2);
    expect(data.skew?.filter((p) => p.feature === 'f0' && p.windowStart === start + 100 * M5)).toHaveLength(2);
    expect(data.skew?.filter((p) => p.windowStart === start + (windows - 1) * M5)).toHaveLength(3 * 2);
    const html = renderReport(data);
    const skewChart = html.slice(html.indexOf('data-chart="skew-share"'));
    expect(skewChart).toContain('per 62 min the windows with the lowest and the highest statistic');
  });

  it("compares distributions with the reference of the version measured last, not an old version's late events (found by a review)", async () => {
    // v1 measured in the first hour, v2 (its successor) in the second; late events of v1 in the
    // third hour, none on time, are v1's late-only row there. argMax over every row named v1.
    const model = `late-${randomUUID().slice(0, 8)}`;
    const start = Date.UTC(2026, 8, 1);
    const profile = buildNumericProfile([1, 2, 3, 4, 5, 6, 7, 8], { bins: 2, fineBins: 4 });
    await ch.insert(
      'reference_profiles',
      ['v1', 'v2'].map((version) => ({
        model,
        version,
        reference_id: `ref-${version}`,
        feature: 'amount',
        kind: 'numeric',
        profile: JSON.stringify(profile),
        created_at: chTime(start - H),
      })),
    );
    await ch.insert('drift_windows', [
      driftRow(model, 'v1', 'amount', start, 'psi', 0.1),
      driftRow(model, 'v2', 'amount', start + H, 'psi', 0.1),
      lateOnlyRow(model, 'v1', start + 2 * H, 3),
    ]);
    const data = await warehouseOn(ch).report({ model, from: start, to: start + 3 * H });
    expect(data.distributions.map((d) => [d.feature, d.version])).toEqual([['amount', 'v2']]);
    // The late-only row is not a drift row of the page.
    expect(data.drift.map((r) => [r.version, r.feature, r.method])).toEqual([
      ['v1', 'amount', 'psi'],
      ['v2', 'amount', 'psi'],
    ]);
  });

  it('says when the range holds no data for the model (an unknown --model made an empty page)', async () => {
    const T1 = Date.UTC(2026, 11, 1);
    await ch.insert('performance_windows', [perf('known', 'v1', T1, 10, { mae: 1 })]);
    await ch.command(
      `INSERT INTO ${ch.table('drift_windows')} (model, version, reference_id, feature, window_start, window_end, method, statistic, threshold, drifted, computed_at)
       VALUES ('known', 'v1', 'r', 'x', '${chTime(T1)}', '${chTime(T1 + H)}', 'psi', 0.1, 0.2, 0, '${chTime(T1 + H)}')`,
    );
    const data = await warehouseOn(ch).report({ model: 'knwon', from: T1, to: T1 + H });
    expect(data.notes?.[0]).toBe(
      'no data for model knwon in [2026-12-01T00:00:00.000Z, 2026-12-01T01:00:00.000Z) (models with drift windows then: known)',
    );
    const known = await warehouseOn(ch).report({ model: 'known', from: T1, to: T1 + H });
    expect(known.notes?.some((n) => n.startsWith('no data'))).toBe(false);
  });
});

describe('the pipeline summary read model', () => {
  it('counts measurements: a late-only row is neither a drift row nor a measured window (found by a review)', async () => {
    // Its own database: the counts are over every model.
    const own = await createClickHouse(testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    try {
      await migrate(own, migrations);
      const start = Date.UTC(2026, 8, 1);
      await own.insert('drift_windows', [
        driftRow('m', 'v1', 'amount', start, 'psi', 0.1),
        driftRow('m', 'v1', 'amount', start, 'missing_rate', 0),
        driftRow('m', 'v1', 'amount', start + H, 'psi', 0.5),
        driftRow('m', 'v1', 'amount', start + H, 'missing_rate', 0),
        // Late events of the third and fourth hours, none on time: no measurement.
        lateOnlyRow('m', 'v1', start + 2 * H, 3),
        lateOnlyRow('other', 'v1', start + 3 * H, 1),
      ]);
      expect(await warehouseOn(own).summary.counts()).toMatchObject({ driftRows: 4, windows: 2, driftedWindows: 1 });
    } finally {
      await own.close();
    }
  });
});

describe('openWarehouse({ migrate: false })', () => {
  it('refuses a database that does not exist, naming the variable, and creates nothing', async () => {
    const typo = `${database}_typo`;
    await expect(openWarehouse(testClickHouse(path, typo), { migrate: false })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      field: 'DRIFTLINE_CLICKHOUSE_DATABASE',
      message: expect.stringMatching(/^DRIFTLINE_CLICKHOUSE_DATABASE: database "t_\w+_typo" does not exist on /),
    });
    const [row] = await ch.select<{ n: number }>('SELECT count() AS n FROM system.databases WHERE name = {db:String}', {
      db: typo,
    });
    expect(Number(row?.n)).toBe(0);
  });

  it('reads the skew of a database not yet migrated to skew_windows_v2 from skew_windows alone (found by a review)', async () => {
    // Migrated by the previous release (every migration before 0670), with skew rows of one partition.
    const older = `${database}_before_0670`;
    const previous = await createClickHouse(testClickHouse(path, older));
    await migrate(
      previous,
      migrations.filter((m) => m.id < '0670'),
    );
    const skewRow = (throughOffset: number, compared: number, mismatched: number) => ({
      model: 'm',
      model_version: 'v1',
      window_start: chTime(T0),
      window_end: chTime(T0 + H),
      feature: 'amount',
      source_topic: 'predictions.v1',
      source_partition: 0,
      through_offset: throughOffset,
      sampled: compared,
      compared,
      mismatched,
      numeric_compared: compared,
      abs_diff_sum: compared,
      missing_in_store: 0,
      missing_in_prediction: 0,
      newer_row: 0,
      staleness_hist: [],
      updated_at: chTime(T0),
    });
    await previous.insert('skew_windows', [skewRow(10, 5, 1), skewRow(30, 8, 2)]); // the later replaces the earlier
    await previous.close();
    const warehouse = await openWarehouse(testClickHouse(path, older), { migrate: false });
    const data = await warehouse.report({ model: 'm', from: T0, to: T0 + H });
    // Before: the whole skew section was dropped for want of skew_windows_v2.
    expect(data.skew).toEqual([
      expect.objectContaining({ feature: 'amount', version: 'v1', windowStart: T0, compared: 8, mismatched: 2 }),
    ]);
    expect(data.notes).toContain(
      `table ${older}.skew_windows_v2 does not exist (yet): its part of the report is empty`,
    );
    const tables = await ch.select<{ name: string }>('SELECT name FROM system.tables WHERE database = {db:String}', {
      db: older,
    });
    expect(tables.map((t) => t.name)).not.toContain('skew_windows_v2');
    await warehouse.close();
  });

  it('reads an existing database without migrating it: a missing table is the report note, not a new table', async () => {
    const bare = `${database}_bare`;
    await ch.command(`CREATE DATABASE ${bare}`);
    const warehouse = await openWarehouse(testClickHouse(path, bare), { migrate: false });
    const data = await warehouse.report({ model: 'm', from: T0, to: T0 + H });
    expect(data.notes).toContain(`table ${bare}.drift_windows does not exist (yet): its part of the report is empty`);
    const tables = await ch.select<{ name: string }>('SELECT name FROM system.tables WHERE database = {db:String}', {
      db: bare,
    });
    expect(tables).toEqual([]);
  });
});
