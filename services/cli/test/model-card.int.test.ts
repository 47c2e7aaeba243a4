import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeTree } from '@driftline/test-support';
import { type ClickHouse, chTime, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { modelCardCommand } from '../src/commands/model-card.js';

// Real embedded ClickHouse with every migration; rows written the way the services write them
// (one insert per table), then the command reads them back.
const work = mkdtempSync(join(tmpdir(), 'driftline-card-'));
const database = `card_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
let ch: ClickHouse;
const T0 = Date.UTC(2026, 10, 1);
const H = 3_600_000;

beforeAll(async () => {
  process.env.DRIFTLINE_CLICKHOUSE_PATH = join(work, 'chdb');
  process.env.DRIFTLINE_CLICKHOUSE_DATABASE = database;
  delete process.env.DRIFTLINE_CLICKHOUSE_URL;
  ch = await createClickHouse({ mode: 'embedded', path: join(work, 'chdb'), database });
  await migrate(ch, migrations);
  await ch.insert('model_versions', [
    {
      model: 'fraud',
      version: 'v2',
      request_id: 'req-1',
      base_version: 'v1',
      status: 'PROMOTED',
      promotion_reason: 'roc_auc 0.81 beats 0.74 by more than 0.005',
      data_from: chTime(T0),
      data_to: chTime(T0 + 2 * H),
      rows_train: 4000,
      rows_holdout: 1000,
      metrics: { roc_auc: 0.81, current_roc_auc: 0.74, log_loss: 0.41, current_log_loss: 0.52 },
      params: '{"max_depth":6}',
      artifact_uri: 'file:///models/fraud/v2/model.json',
      reference_id: 'ref-v2',
      reference_uri: 'clickhouse://reference_profiles/ref-v2',
      device: 'cpu',
      device_reason: 'no GPU',
      published: 1,
      registered_at: chTime(T0 + 2 * H + 60_000),
      updated_at: chTime(T0 + 2 * H + 60_000),
    },
  ]);
  await ch.insert('retrain_decisions', [
    {
      model: 'fraud',
      alert_id: 'a-1',
      alert_kind: 'FEATURE_DRIFT',
      model_version: 'v1',
      window_start: chTime(T0 + H),
      window_end: chTime(T0 + 2 * H),
      alert_time: chTime(T0 + 2 * H),
      decision: 'fire',
      fired: 1,
      reason: 'fire',
      detail: '2/2 windows',
      signals: ['share_drifted>=0.4'],
      streak: 2,
      request_id: 'req-1',
      data_from: chTime(T0),
      data_to: chTime(T0 + 2 * H),
      seq: 1,
      first: 1,
      state: '{}',
      decided_at: chTime(T0 + 2 * H),
    },
  ]);
  await ch.insert(
    'reference_profiles',
    ['amount', 'country', '__prediction__'].map((feature) => ({
      model: 'fraud',
      version: 'v2',
      reference_id: 'ref-v2',
      feature,
      kind: 'numeric',
      profile: '{}',
      created_at: chTime(T0 + 2 * H),
    })),
  );
  const transition = (to: string, from: string, at: number, reason: string, evidence = '') => ({
    model: 'fraud',
    version: 'v2',
    from_stage: from,
    to_stage: to,
    at: chTime(at),
    decided_by: to === 'shadow' ? 'trainer:offline_gate' : 'policy:promotion',
    reason,
    detail: '',
    evidence,
    canary_share: to === 'canary' ? 0.1 : null,
    previous_version: to === 'production' ? 'v1' : null,
    recorded_at: chTime(at),
  });
  await ch.insert('model_transitions', [
    transition('canary', 'shadow', T0 + 4 * H, 'evidence', '{"n":812,"lower":0.0041}'),
    transition('shadow', 'candidate', T0 + 3 * H, 'offline_gate'),
    transition('production', 'canary', T0 + 5 * H, 'evidence'),
  ]);
  const perf = (ws: number, labeled: number, rocAuc: number | null, segmentFeature = '', segment = '') => ({
    model: 'fraud',
    model_version: 'v2',
    window_start: chTime(ws),
    window_end: chTime(ws + H),
    segment_feature: segmentFeature,
    segment,
    task: 'binary_classification',
    predictions: labeled + 5,
    labeled,
    expired: 0,
    pending: 5,
    label_coverage: labeled / (labeled + 5),
    invalid_labels: 0,
    roc_auc: rocAuc,
    threshold: 0.5,
    version: 1,
    computed_at: chTime(ws + H),
  });
  await ch.insert('performance_windows', [
    perf(T0 + 5 * H, 10, 0.6),
    perf(T0 + 6 * H, 30, 0.8),
    perf(T0 + 7 * H, 20, null),
    perf(T0 + 5 * H, 8, 0.7, 'country', 'fr'),
  ]);
  const drift = (version: string, ws: number, drifted: number, statistic: number) => ({
    model: 'fraud',
    version,
    reference_id: 'ref-v1',
    feature: 'amount',
    window_start: chTime(ws),
    window_end: chTime(ws + H),
    method: 'psi',
    statistic,
    p_value: null,
    threshold: 0.2,
    drifted,
    reference_size: 5000,
    current_size: 100,
    events: 100,
    late_events: 0,
    error_bound: null,
    source_partitions: 3,
    idle_partitions: 0,
    computed_at: chTime(ws + H),
  });
  await ch.insert('drift_windows', [
    drift('v1', T0, 0, 0.05),
    drift('v1', T0 + H, 1, 0.9),
    // Outside the training range, and another version: neither counts.
    drift('v1', T0 + 3 * H, 1, 4.2),
    drift('v2', T0 + H, 1, 7),
  ]);
}, 120_000);

afterAll(async () => {
  await ch?.close();
  await removeTree(work);
});

async function run(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  try {
    return { code: await modelCardCommand(args), out };
  } finally {
    spy.mockRestore();
  }
}

describe('driftline model-card', () => {
  it('reads lineage, offline and live metrics, training-time drift and stages of one version', async () => {
    const html = join(work, 'card.html');
    const { code, out } = await run(['--model', 'fraud', '--version', 'v2', '--json', '--out', html]);
    expect(code).toBe(0);
    const card = JSON.parse(out);
    expect(card.stage).toBe('production');
    expect(card.training).toMatchObject({ requestId: 'req-1', challenged: 'v1', rowsTrain: 4000, device: 'cpu' });
    expect(card.features).toEqual(['amount', 'country']);
    expect(card.decision).toMatchObject({ reason: 'fire', alertKind: 'FEATURE_DRIFT' });
    expect(card.reference).toMatchObject({ id: 'ref-v2', features: 2 });
    // Stages in time order, whatever the insert order.
    expect(card.transitions.map((t: { to: string }) => t.to)).toEqual(['shadow', 'canary', 'production']);
    const overall = card.live.find((l: { segmentFeature: string }) => l.segmentFeature === '');
    // Weighted by labels over the windows that have the metric: (10·0.6 + 30·0.8) / 40.
    expect(overall.metrics.roc_auc).toBeCloseTo(0.75, 12);
    expect(overall).toMatchObject({ windows: 3, labeled: 60, predictions: 75 });
    expect(card.live.find((l: { segment: string }) => l.segment === 'fr').metrics.roc_auc).toBeCloseTo(0.7, 12);
    // Only the challenged version's windows inside [data_from, data_to).
    expect(card.trainingDrift).toEqual([
      { feature: 'amount', method: 'psi', windows: 2, drifted: 1, maxStatistic: 0.9 },
    ]);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<bdi>fraud</bdi> <bdi>v2</bdi> — model card');
    expect(page).toContain('trainer:offline_gate');
    expect(page).toContain('n: 812');
    expect(page).not.toMatch(/<script|\bsrc=|https?:\/\/(?!www\.w3\.org)/i);
  });

  it('prints a readable text card', async () => {
    const { code, out } = await run(['--model', 'fraud', '--version', 'v2']);
    expect(code).toBe(0);
    expect(out).toContain('model card: fraud v2 (stage: production)');
    expect(out).toContain('roc_auc: 0.81 vs 0.74 (v1)');
    expect(out).toMatch(/shadow → canary by policy:promotion/);
  });

  it('refuses a version nothing is recorded for, naming it', async () => {
    await expect(run(['--model', 'fraud', '--version', 'v9'])).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('model fraud version v9'),
    });
  });
});
