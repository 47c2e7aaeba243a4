import { STALENESS_BOUNDS_MS, STALENESS_BUCKETS } from '@driftline/skew';
import { buildCategoricalProfile, buildNumericProfile, type ReferenceProfile } from '@driftline/stats';
import { seededUniform } from '@driftline/test-support/random';
import { type ClickHouse, chTime, migrate, migrations } from '@driftline/warehouse';

export const TABLES_READ = [
  'drift_windows',
  'reference_profiles',
  'labeled_predictions',
  'unlabeled_predictions',
  'performance_windows',
  'retrain_decisions',
  'model_versions',
  'skew_windows',
  'skew_windows_v2',
  'data_quality_windows',
] as const;

/** Applies the warehouse's DDL (the one list); returns the tables the dashboards read that it created and those missing. */
export async function migrateForDashboards(ch: ClickHouse): Promise<{ real: string[]; missing: string[] }> {
  await migrate(ch, migrations);
  const tables = await existingTables(ch);
  return { real: TABLES_READ.filter((t) => tables.has(t)), missing: TABLES_READ.filter((t) => !tables.has(t)) };
}

export async function existingTables(ch: ClickHouse): Promise<Set<string>> {
  const rows = await ch.select<{ name: string }>('SELECT name FROM system.tables WHERE database = {db:String}', {
    db: ch.database,
  });
  return new Set(rows.map((r) => r.name));
}

/** A seeded scenario: one model whose `amount` drifts after the sixth hourly window, retrained to v2. */
export interface Scenario {
  readonly model: string;
  readonly from: number;
  readonly to: number;
  readonly windows: readonly number[];
  readonly features: readonly string[];
  readonly driftAt: number;
  readonly retrainAt: number;
  readonly promotedAt: number;
  readonly profiles: ReadonlyMap<string, ReferenceProfile>;
}

const HOUR = 3_600_000;

interface SeedOptions {
  /**
   * The latest N windows still waiting for labels: label coverage 0.2 (50 of 250), below the
   * label-joiner's realized bounds (coverage 0.5, 100 valid labels), so the CBPE estimate is the
   * current value there. Default 0: the
   * dashboards' tests expect full coverage everywhere.
   */
  readonly pendingLabelWindows?: number;
  /**
   * False for a database migrated by a release before 0670 (no `skew_windows_v2`): partition 1's
   * second log is not seeded, its first log's rows alone are. Default true.
   */
  readonly skewLaterLogs?: boolean;
  /**
   * False for a database migrated by a release before 0680 (no `performance_windows.sampled_labels`).
   * Default true: window 3's metrics come from a sample (150 of its 185 labels).
   */
  readonly sampledLabels?: boolean;
}

function normal(rand: () => number, mean: number, sd: number): number {
  const u = Math.max(rand(), 1e-12);
  return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

async function insert(ch: ClickHouse, table: string, values: readonly Record<string, unknown>[]): Promise<void> {
  await ch.insert(table, values);
}

/**
 * Seeds every table the dashboards and the report read. Only columns known from the DDL are
 * written; a renamed column makes the insert fail and names it.
 */
export async function seedScenario(
  ch: ClickHouse,
  model = "credit's-risk",
  start = Date.UTC(2025, 0, 1),
  options: SeedOptions = {},
): Promise<Scenario> {
  const rand = seededUniform(7); // seeded, so the data is the same every run
  const windows = Array.from({ length: 12 }, (_, k) => start + k * HOUR);
  const driftAt = windows[6]!;
  const retrainAt = windows[7]! + 20 * 60_000;
  const promotedAt = windows[8]! + 5 * 60_000;
  const versionAt = (t: number) => (t >= promotedAt ? 'v2' : 'v1');
  const countries = ['de', 'fr', 'es', 'it'];
  const amountRef = Array.from({ length: 2000 }, () => normal(rand, 100, 15));
  const countryRef = Array.from({ length: 2000 }, () => countries[Math.floor(rand() ** 1.5 * countries.length)]!);
  const predictionRef = Array.from({ length: 2000 }, () => rand());
  const profiles = new Map<string, ReferenceProfile>([
    ['amount', buildNumericProfile(amountRef, { bins: 10, fineBins: 100 })],
    ['country', buildCategoricalProfile(countryRef)],
    ['__prediction__', buildNumericProfile(predictionRef, { bins: 10, fineBins: 100 })],
  ]);
  const referenceRows = ['v1', 'v2'].flatMap((version, vi) =>
    [...profiles.entries()].map(([feature, profile]) => ({
      model,
      version,
      reference_id: `ref-${version}`,
      feature,
      kind: profile.kind,
      profile: JSON.stringify(profile),
      created_at: chTime(vi === 0 ? start - 86_400_000 : promotedAt),
    })),
  );
  await insert(ch, 'reference_profiles', referenceRows);

  const drift: Record<string, unknown>[] = [];
  for (const [k, ws] of windows.entries()) {
    const drifting = ws >= driftAt && ws < promotedAt;
    for (const feature of profiles.keys()) {
      const shift = drifting && feature !== 'country' ? 1 : 0;
      const psi = shift ? 0.35 + 0.05 * rand() : 0.02 + 0.05 * rand();
      const ksD = shift ? 0.3 + 0.05 * rand() : 0.02 + 0.03 * rand();
      const ksP = shift ? 1e-9 * (1 + rand()) : 0.2 + 0.7 * rand();
      const base = {
        model,
        version: versionAt(ws),
        reference_id: `ref-${versionAt(ws)}`,
        feature,
        window_start: chTime(ws),
        window_end: chTime(ws + HOUR),
        reference_size: 2000,
        current_size: 300 + k,
        events: 300 + k,
        late_events: k % 3,
        source_partitions: 3,
        idle_partitions: 0,
        computed_at: chTime(ws + HOUR + 60_000),
      };
      drift.push({
        ...base,
        method: 'psi',
        statistic: psi,
        p_value: null,
        threshold: 0.2,
        drifted: psi >= 0.2 ? 1 : 0,
      });
      if (feature === 'country') {
        drift.push({ ...base, method: 'chi2', statistic: 3 + rand(), p_value: 0.3, threshold: 0.05, drifted: 0 });
      } else {
        drift.push({
          ...base,
          method: 'ks',
          statistic: ksD,
          p_value: ksP,
          threshold: 0.05,
          drifted: ksP < 0.05 ? 1 : 0,
          error_bound: 0.01,
        });
      }
      drift.push({
        ...base,
        method: 'jensen_shannon',
        statistic: psi / 4,
        p_value: null,
        threshold: 0.1,
        drifted: psi / 4 >= 0.1 ? 1 : 0,
      });
    }
  }
  await insert(ch, 'drift_windows', drift);

  const labeled: Record<string, unknown>[] = [];
  const unlabeled: Record<string, unknown>[] = [];
  for (let i = 0; i < 600; i++) {
    const t = windows[0]! + Math.floor(rand() * 12 * HOUR);
    const drifting = t >= driftAt;
    const amount = normal(rand, drifting ? 135 : 100, 15);
    const country = drifting && rand() < 0.4 ? 'pt' : countries[Math.floor(rand() ** 1.5 * countries.length)]!;
    const prediction = Math.min(1, Math.max(0, rand() * (drifting ? 0.6 : 1) + (drifting ? 0.4 : 0)));
    const row = {
      model,
      model_version: versionAt(t),
      prediction_id: `p${i}`,
      entity_id: `e${i % 50}`,
      prediction_time: chTime(t),
      features: JSON.stringify({ amount, country, flagged: i % 2 === 0 }),
      prediction,
      predicted_class: prediction >= 0.5 ? '1' : '0',
    };
    if (i % 5 === 0) unlabeled.push({ ...row, deadline: chTime(t + HOUR), expired_at: chTime(t + HOUR) });
    else
      labeled.push({
        ...row,
        label_time: chTime(t + 600_000),
        label: rand() < prediction ? 1 : 0,
        joined_at: chTime(t + 600_000),
      });
  }
  await insert(ch, 'labeled_predictions', labeled);
  await insert(ch, 'unlabeled_predictions', unlabeled);

  const perf: Record<string, unknown>[] = [];
  for (const [k, ws] of windows.entries()) {
    const version = versionAt(ws);
    const bad = ws >= driftAt && version === 'v1';
    const accuracy = bad ? 0.68 + 0.03 * rand() : 0.86 + 0.03 * rand();
    perf.push({
      model,
      model_version: version,
      window_start: chTime(ws),
      window_end: chTime(ws + HOUR),
      segment_feature: '',
      segment: '',
      task: 'binary',
      // 185–200 labels of 250 predictions: above the label-joiner's realized bounds (coverage 0.5
      // and DRIFTLINE_JOINER_ALERT_MIN_SAMPLES 100 valid labels), so the realized value is current.
      predictions: 250,
      labeled: 200 - 5 * (k % 4),
      expired: 50 + 5 * (k % 4),
      pending: 0,
      label_coverage: (200 - 5 * (k % 4)) / 250,
      invalid_labels: 0,
      accuracy,
      precision: accuracy - 0.02,
      recall: accuracy - 0.05,
      f1: accuracy - 0.035,
      roc_auc: accuracy + 0.05,
      log_loss: 1 - accuracy,
      brier: (1 - accuracy) / 3,
      mae: null,
      rmse: null,
      mape: null,
      // CBPE estimate and business outcome (migration 0610): the estimate tracks the drop too.
      scored: 250,
      calibration_id: 'ref-1',
      estimated_accuracy: accuracy + 0.01,
      estimated_precision: accuracy - 0.01,
      estimated_recall: accuracy - 0.04,
      estimated_f1: accuracy - 0.03,
      estimated_roc_auc: accuracy + 0.04,
      valued_labels: 150,
      value_caught: 1000 * accuracy,
      value_missed: 1000 * (1 - accuracy),
      false_alarm_cost: 50,
      business_net: 1000 * accuracy - 50,
      threshold: 0.5,
      version: 1,
      computed_at: chTime(ws + HOUR + 120_000),
      // Migration 0680: one window read as a sample (more labels than the joiner's bound).
      ...(options.sampledLabels === false ? {} : { sampled_labels: k === 3 ? 150 : 0 }),
    });
    // A segment row that the overall panels must not mix in.
    perf.push({ ...perf.at(-1)!, segment_feature: 'country', segment: 'de', accuracy: 0.1 });
  }
  // Labels still arriving: a newer recompute (version 2) of the whole-window row replaces the first.
  for (const ws of windows.slice(windows.length - (options.pendingLabelWindows ?? 0))) {
    const row = perf.find((p) => p.window_start === chTime(ws) && p.segment_feature === '')!;
    perf.push({ ...row, labeled: 50, expired: 0, pending: 200, label_coverage: 0.2, version: 2 });
  }
  await insert(ch, 'performance_windows', perf);

  const decision = (alertId: string, at: number, decisionKind: 'fire' | 'hold', reason: string, seq: number) => ({
    model,
    alert_id: alertId,
    alert_kind: 'feature_drift',
    model_version: 'v1',
    window_start: chTime(at - HOUR),
    window_end: chTime(at),
    alert_time: chTime(at),
    decision: decisionKind,
    reason,
    detail: decisionKind === 'fire' ? 'amount drifted for 2 windows' : 'waiting for a second window',
    signals: ['feature_drift'],
    streak: seq,
    request_id: decisionKind === 'fire' ? 'req-1' : null,
    data_from: decisionKind === 'fire' ? chTime(at - 6 * HOUR) : null,
    data_to: decisionKind === 'fire' ? chTime(at) : null,
    seq,
    first: 1,
    state: '{}',
    decided_at: chTime(at),
  });
  await insert(ch, 'retrain_decisions', [
    decision('a1', retrainAt - HOUR, 'hold', 'sustaining', 1),
    decision('a2', retrainAt, 'fire', 'fire', 2),
  ]);
  const version = (v: string, status: string, reason: string, trainedAt: number) => ({
    model,
    version: v,
    request_id: 'req-1',
    base_version: 'v1',
    status,
    promotion_reason: reason,
    data_from: chTime(retrainAt - 6 * HOUR),
    data_to: chTime(retrainAt),
    rows_train: 4000,
    rows_holdout: 1000,
    metrics: { roc_auc: 0.91, current_roc_auc: 0.74 },
    params: '{}',
    artifact_uri: `file:///models/${v}`,
    reference_id: `ref-${v}`,
    reference_uri: null,
    device: 'cpu',
    device_reason: 'no GPU',
    published: 1,
    registered_at: chTime(trainedAt),
    updated_at: chTime(trainedAt + 60_000),
  });
  await insert(ch, 'model_versions', [
    version('v2-rc', 'REJECTED', 'roc_auc 0.72 < current 0.74', retrainAt + 5 * 60_000),
    version('v2', 'PROMOTED', 'roc_auc 0.91 > current 0.74', promotedAt),
  ]);
  // Skew per window, feature and source partition: `amount` arrives in cents from the drift moment on.
  // Partition 1's topic was recreated: its counts are split between its first log (skew_windows)
  // and its second (skew_windows_v2, log epoch 1), and the panels add them up.
  const skew: Record<string, unknown>[] = [];
  const skewLater: Record<string, unknown>[] = [];
  for (const ws of windows) {
    for (const feature of ['amount', 'country']) {
      const drifted = feature === 'amount' && ws >= driftAt;
      const row = (partition: number, compared: number, mismatched: number, stale: number, notComparable: number) => {
        const hist = new Array<number>(STALENESS_BUCKETS).fill(0);
        hist[STALENESS_BOUNDS_MS.indexOf(1_000)] = compared - stale; // 500 ms to 1 s
        hist[STALENESS_BOUNDS_MS.indexOf(100_000)] = stale; // 50 s to 100 s
        return {
          model,
          model_version: versionAt(ws),
          window_start: chTime(ws),
          window_end: chTime(ws + HOUR),
          feature,
          source_topic: 'predictions.v1',
          source_partition: partition,
          through_offset: 100,
          sampled: compared + notComparable + Math.sign(notComparable),
          compared,
          mismatched,
          numeric_compared: feature === 'amount' ? compared : 0,
          abs_diff_sum: feature === 'amount' ? mismatched * 99 * 20 : 0,
          missing_in_store: notComparable,
          missing_in_prediction: 0,
          newer_row: Math.sign(notComparable),
          staleness_hist: hist,
          updated_at: chTime(ws + HOUR),
        };
      };
      // Per partition over its logs: 40 and 41 compared, 2 of each stale, 3 not comparable;
      // mismatched: every one once drifted, else partition 1's one.
      skew.push(row(0, 40, drifted ? 40 : 0, 2, 2));
      skew.push(row(1, 21, drifted ? 21 : 1, 2, 2));
      skewLater.push({ ...row(1, 20, drifted ? 20 : 0, 0, 0), log_epoch: 1 });
    }
  }
  await insert(ch, 'skew_windows', skew);
  if (options.skewLaterLogs !== false) await insert(ch, 'skew_windows_v2', skewLater);
  // Data quality: `amount` half null from the drift moment on; a country outside the allowed list in one window.
  const quality: Record<string, unknown>[] = [];
  const check = (ws: number, feature: string, expectation: string, observed: number, bound: number) => ({
    model,
    version: versionAt(ws),
    feature,
    expectation,
    scope: '',
    window_start: chTime(ws),
    window_end: chTime(ws + HOUR),
    observed,
    bound,
    passed: observed <= bound ? 1 : 0,
    count: 100,
    events: 100,
    detail: '{}',
    expectations_id: 'seed',
    computed_at: chTime(ws + HOUR),
  });
  for (const ws of windows) {
    quality.push(check(ws, 'amount', 'null_rate', ws >= driftAt ? 0.5 : 0.01, 0.05));
    quality.push(check(ws, 'amount', 'range', 0, 0.01));
    quality.push(check(ws, 'amount', 'type', 0, 0));
    quality.push(check(ws, 'country', 'categories', ws === windows[3] ? 0.2 : 0, 0));
    quality.push(check(ws, 'country', 'cardinality', 4, 250));
    // Freshness of the `transactions` view on two partitions; partition 1 goes silent at the drift moment.
    for (const partition of [0, 1]) {
      const lag = partition === 1 && ws >= driftAt ? ws + HOUR - driftAt : 2_000;
      quality.push({
        ...check(ws, 'transactions', 'freshness', lag, 600_000),
        model: '',
        version: '',
        scope: `features.v1/${partition}`,
        expectations_id: '',
      });
    }
  }
  await insert(ch, 'data_quality_windows', quality);
  return {
    model,
    from: windows[0]!,
    to: windows[11]! + HOUR,
    windows,
    features: ['amount', 'country'],
    driftAt,
    retrainAt,
    promotedAt,
    profiles,
  };
}
