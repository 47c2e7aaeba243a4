import { toDriftlineError } from '@driftline/core';
import {
  type DriftPoint,
  type FeatureDistribution,
  featureDistribution,
  type PerformancePoint,
  type ProfileView,
  type QualityPoint,
  type ReportData,
  type RetrainEvent,
  type SkewPoint,
} from '@driftline/report';
import type { ClickHouse, QueryParams } from '../client.js';
import { parseStoredProfile } from '../tables/reference-profiles.js';

// Tables the report reads and the columns it relies on. A missing table leaves its section empty
// with a note instead of failing the whole report (an older database, or one migrated by an older build).
const TABLES = [
  'drift_windows',
  'reference_profiles',
  'labeled_predictions',
  'unlabeled_predictions',
  'performance_windows',
  'retrain_decisions',
  'model_versions',
  'model_transitions',
  'skew_windows',
  'data_quality_windows',
] as const;
type Table = (typeof TABLES)[number];

/** One model and a time range [from, to) in epoch ms. */
export interface ReportRange {
  readonly model: string;
  readonly from: number;
  readonly to: number;
}

const rows = <T>(ch: ClickHouse, query: string, params: QueryParams): Promise<T[]> => ch.select<T>(query, params);

const RANGE_PARAMS = (r: ReportRange) => ({ model: r.model, from: r.from, to: r.to });
const IN_RANGE = (col: string) =>
  `${col} >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ${col} < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`;

async function loadDrift(ch: ClickHouse, r: ReportRange): Promise<DriftPoint[]> {
  const list = await rows<{
    feature: string;
    method: string;
    version: string;
    ws: number;
    statistic: number;
    p_value: number | null;
    threshold: number;
    drifted: number;
  }>(
    ch,
    `SELECT feature, method, version, toUnixTimestamp64Milli(window_start) AS ws, statistic, p_value, threshold, drifted
     FROM ${ch.table('drift_windows')} FINAL
     WHERE model = {model:String} AND ${IN_RANGE('window_start')} AND method IN ('psi', 'ks', 'chi2', 'jensen_shannon')
     ORDER BY window_start, feature, method`,
    RANGE_PARAMS(r),
  );
  return list.map((x) => ({
    feature: x.feature,
    method: x.method,
    version: x.version,
    windowStart: Number(x.ws),
    statistic: Number(x.statistic),
    pValue: x.p_value === null ? null : Number(x.p_value),
    threshold: Number(x.threshold),
    drifted: Number(x.drifted) === 1,
  }));
}

/** The version whose reference the distributions compare against: the latest one drift was measured for. */
async function currentVersion(ch: ClickHouse, r: ReportRange, tables: ReadonlySet<Table>): Promise<string | undefined> {
  if (tables.has('drift_windows')) {
    const [x] = await rows<{ version: string }>(
      ch,
      `SELECT argMax(version, window_start) AS version FROM ${ch.table('drift_windows')}
       WHERE model = {model:String} AND ${IN_RANGE('window_start')} HAVING count() > 0`,
      RANGE_PARAMS(r),
    );
    if (x !== undefined) return x.version;
  }
  const [y] = await rows<{ version: string }>(
    ch,
    `SELECT argMax(version, created_at) AS version FROM ${ch.table('reference_profiles')}
     WHERE model = {model:String} HAVING count() > 0`,
    { model: r.model },
  );
  return y?.version;
}

/**
 * Current values of one feature: the predictions of the version in the range that were joined to a
 * label or expired without one (the label-joiner's tables are where prediction features are kept).
 * `__prediction__` / `__predicted_class__` are the prediction columns themselves.
 */
function currentValueSql(
  ch: ClickHouse,
  feature: string,
  kind: 'numeric' | 'categorical',
  tables: ReadonlySet<Table>,
): string | undefined {
  const sources = (['labeled_predictions', 'unlabeled_predictions'] as const).filter((t) => tables.has(t));
  if (sources.length === 0) return undefined;
  let expr: string;
  if (feature === '__prediction__') expr = kind === 'numeric' ? 'prediction' : 'toString(prediction)';
  else if (feature === '__predicted_class__')
    expr = kind === 'numeric' ? 'toFloat64OrNull(predicted_class)' : 'predicted_class';
  else if (kind === 'numeric') {
    expr = `multiIf(JSONType(features, {feature:String}) IN ('Int64', 'UInt64', 'Double'), JSONExtractFloat(features, {feature:String}),
      JSONType(features, {feature:String}) = 'Bool', toFloat64(JSONExtractBool(features, {feature:String})), NULL)`;
  } else {
    expr = `multiIf(JSONType(features, {feature:String}) = 'String', JSONExtractString(features, {feature:String}),
      JSONType(features, {feature:String}) IN ('Int64', 'UInt64', 'Double', 'Bool'), JSONExtractRaw(features, {feature:String}), NULL)`;
  }
  return sources
    .map(
      (t) => `SELECT ${expr} AS v FROM ${ch.table(t)} FINAL
       WHERE model = {model:String} AND model_version = {version:String} AND ${IN_RANGE('prediction_time')}`,
    )
    .join(' UNION ALL ');
}

async function loadDistributions(
  ch: ClickHouse,
  r: ReportRange,
  tables: ReadonlySet<Table>,
  notes: string[],
): Promise<FeatureDistribution[]> {
  if (!tables.has('reference_profiles')) return [];
  const version = await currentVersion(ch, r, tables);
  if (version === undefined) return [];
  const profiles = await rows<{ feature: string; profile: string }>(
    ch,
    `SELECT feature, profile FROM ${ch.table('reference_profiles')} FINAL
     WHERE model = {model:String} AND version = {version:String}
       AND reference_id = (SELECT argMax(reference_id, created_at) FROM ${ch.table('reference_profiles')}
                           WHERE model = {model:String} AND version = {version:String})
     ORDER BY feature`,
    { model: r.model, version },
  );
  const out: FeatureDistribution[] = [];
  for (const p of profiles) {
    let view: ProfileView;
    try {
      view = parseStoredProfile(p.profile, `${r.model}/${version}/${p.feature}`);
    } catch (error) {
      notes.push(
        `reference profile of ${p.feature} (${version}) is malformed (${toDriftlineError(error).message}); its distribution is left out`,
      );
      continue;
    }
    const values = currentValueSql(ch, p.feature, view.kind, tables);
    const params = { ...RANGE_PARAMS(r), version, feature: p.feature };
    if (values === undefined) {
      out.push(featureDistribution(p.feature, version, view, new Map<number, number>()));
    } else if (view.kind === 'numeric') {
      // Right-closed bins on the reference's coarse edges: bin = number of edges strictly below v.
      const counts = await rows<{ bin: number; n: number }>(
        ch,
        `SELECT arrayCount(e -> e < v, {edges:Array(Float64)}) AS bin, count() AS n
         FROM (${values}) WHERE v IS NOT NULL AND isFinite(v) GROUP BY bin ORDER BY bin`,
        { ...params, edges: view.coarseEdges },
      );
      out.push(featureDistribution(p.feature, version, view, new Map(counts.map((c) => [Number(c.bin), Number(c.n)]))));
    } else {
      const counts = await rows<{ v: string; n: number }>(
        ch,
        `SELECT v, count() AS n FROM (${values}) WHERE v IS NOT NULL GROUP BY v`,
        params,
      );
      out.push(featureDistribution(p.feature, version, view, new Map(counts.map((c) => [c.v, Number(c.n)]))));
    }
  }
  return out;
}

// CBPE estimates and the business outcome (migration 0610), on the whole-window row.
const ESTIMATED = ['accuracy', 'precision', 'recall', 'f1', 'roc_auc'] as const;
const BUSINESS_COLUMNS = ['valued_labels', 'value_caught', 'value_missed', 'false_alarm_cost', 'business_net'] as const;

/** Whether performance_windows has the 0610 columns (a database migrated by an older build has not). */
async function hasEstimateColumns(ch: ClickHouse): Promise<boolean> {
  const [x] = await rows<{ n: number | string }>(
    ch,
    `SELECT count() AS n FROM system.columns
     WHERE database = {db:String} AND table = 'performance_windows' AND name IN ('scored', 'estimated_roc_auc', 'business_net')`,
    { db: ch.database },
  );
  return Number(x?.n ?? 0) === 3;
}

async function loadPerformance(ch: ClickHouse, r: ReportRange, notes: string[]): Promise<PerformancePoint[]> {
  const metrics = ['accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'log_loss', 'mae', 'rmse'] as const;
  const estimates = await hasEstimateColumns(ch);
  if (!estimates) {
    notes.push(
      `table ${ch.database}.performance_windows has no CBPE/business columns (migration 0610 not applied): those sections are empty`,
    );
  }
  const extra = estimates
    ? `, scored, ${ESTIMATED.map((m) => `estimated_${m}`).join(', ')}, ${BUSINESS_COLUMNS.join(', ')}`
    : '';
  const list = await rows<Record<string, unknown>>(
    ch,
    `SELECT model_version, toUnixTimestamp64Milli(window_start) AS ws, task, predictions, labeled, label_coverage, ${metrics.join(', ')}${extra}
     FROM ${ch.table('performance_windows')} FINAL
     WHERE model = {model:String} AND segment_feature = '' AND ${IN_RANGE('window_start')}
     ORDER BY window_start, model_version`,
    RANGE_PARAMS(r),
  );
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return list.map((x) => ({
    version: String(x.model_version),
    windowStart: Number(x.ws),
    task: String(x.task),
    predictions: Number(x.predictions),
    labeled: Number(x.labeled),
    labelCoverage: num(x.label_coverage),
    metrics: Object.fromEntries(metrics.map((m) => [m, num(x[m])])),
    ...(estimates ? estimateFields(x, num) : {}),
  }));
}

function estimateFields(
  x: Record<string, unknown>,
  num: (v: unknown) => number | null,
): Pick<PerformancePoint, 'estimated' | 'scored' | 'business'> {
  const caught = num(x.value_caught);
  const missed = num(x.value_missed);
  const cost = num(x.false_alarm_cost);
  const net = num(x.business_net);
  return {
    estimated: Object.fromEntries(ESTIMATED.map((m) => [m, num(x[`estimated_${m}`])])),
    scored: Number(x.scored),
    // The label-joiner writes the four together or none (libs/performance businessOutcome).
    business:
      caught === null || missed === null || cost === null || net === null
        ? null
        : {
            valuedLabels: Number(x.valued_labels),
            valueCaught: caught,
            valueMissed: missed,
            falseAlarmCost: cost,
            net,
          },
  };
}

async function loadRetrain(ch: ClickHouse, r: ReportRange, tables: ReadonlySet<Table>): Promise<RetrainEvent[]> {
  const out: RetrainEvent[] = [];
  if (tables.has('retrain_decisions')) {
    // Fired decisions only: holds (duplicate, sustaining, cooldown…) are the policy working as meant.
    const list = await rows<{ t: number; version: string; reason: string; detail: string; request_id: string | null }>(
      ch,
      `SELECT toUnixTimestamp64Milli(decided_at) AS t, model_version AS version, reason, detail, request_id
       FROM ${ch.table('retrain_decisions')} FINAL
       WHERE model = {model:String} AND decision = 'fire' AND ${IN_RANGE('decided_at')} ORDER BY decided_at`,
      RANGE_PARAMS(r),
    );
    for (const x of list) {
      const detail = [x.reason, x.detail, x.request_id === null ? '' : `request ${x.request_id}`]
        .filter((s) => s !== '')
        .join(' · ');
      out.push({ time: Number(x.t), source: 'decision', kind: 'retrain', version: x.version, detail });
    }
  }
  if (tables.has('model_versions')) {
    // One row per trained version (trainer): PROMOTED or REJECTED, at its training time.
    const list = await rows<{ t: number; version: string; status: string; reason: string }>(
      ch,
      `SELECT toUnixTimestamp64Milli(registered_at) AS t, version, status, promotion_reason AS reason
       FROM ${ch.table('model_versions')} FINAL
       WHERE model = {model:String} AND ${IN_RANGE('registered_at')} ORDER BY registered_at`,
      RANGE_PARAMS(r),
    );
    for (const x of list) {
      out.push({
        time: Number(x.t),
        source: 'model',
        kind: x.status.toUpperCase(),
        version: x.version,
        detail: x.reason,
      });
    }
  }
  if (tables.has('model_transitions')) {
    // The version timeline: every stage a version entered (shadow, canary, production, rolled back…).
    const list = await rows<{
      t: number;
      version: string;
      to_stage: string;
      decided_by: string;
      reason: string;
      detail: string;
    }>(
      ch,
      `SELECT toUnixTimestamp64Milli(at) AS t, version, to_stage, decided_by, reason, detail
       FROM ${ch.table('model_transitions')} FINAL
       WHERE model = {model:String} AND ${IN_RANGE('at')} ORDER BY at`,
      RANGE_PARAMS(r),
    );
    for (const x of list) {
      out.push({
        time: Number(x.t),
        source: 'stage',
        kind: x.to_stage.toUpperCase(),
        version: x.version,
        detail: [x.decided_by, x.reason, x.detail].filter((s) => s !== '').join(' · '),
      });
    }
  }
  return out.sort((a, b) => a.time - b.time);
}

/** Reads everything the report shows for one model and time range. */
/** Skew per (window, feature, version), the source partitions summed (skew_windows keeps one row per partition). */
async function loadSkew(ch: ClickHouse, r: ReportRange): Promise<SkewPoint[]> {
  const list = await rows<Record<string, number | string>>(
    ch,
    `SELECT feature, model_version AS version, toUnixTimestamp64Milli(window_start) AS ws, sum(sampled) AS sampled,
       sum(compared) AS compared, sum(mismatched) AS mismatched, sum(numeric_compared) AS numeric_compared,
       sum(abs_diff_sum) AS abs_diff_sum, sum(missing_in_store) AS missing_in_store,
       sum(missing_in_prediction) AS missing_in_prediction, sum(newer_row) AS newer_row
     FROM ${ch.table('skew_windows')} FINAL
     WHERE model = {model:String} AND ${IN_RANGE('window_start')}
     GROUP BY window_start, feature, model_version
     ORDER BY window_start, feature, version`,
    RANGE_PARAMS(r),
  );
  return list.map((x) => ({
    feature: String(x.feature),
    version: String(x.version),
    windowStart: Number(x.ws),
    sampled: Number(x.sampled),
    compared: Number(x.compared),
    mismatched: Number(x.mismatched),
    meanAbsDiff: Number(x.numeric_compared) === 0 ? null : Number(x.abs_diff_sum) / Number(x.numeric_compared),
    missingInStore: Number(x.missing_in_store),
    missingInPrediction: Number(x.missing_in_prediction),
    newerRow: Number(x.newer_row),
  }));
}

/** Data-quality expectations of the model's prediction features per window (the drift-monitor's rows). */
async function loadQuality(ch: ClickHouse, r: ReportRange): Promise<QualityPoint[]> {
  const list = await rows<{
    feature: string;
    expectation: string;
    version: string;
    ws: number;
    observed: number;
    bound: number;
    passed: number;
  }>(
    ch,
    `SELECT feature, expectation, version, toUnixTimestamp64Milli(window_start) AS ws, observed, bound, passed
     FROM ${ch.table('data_quality_windows')} FINAL
     WHERE model = {model:String} AND ${IN_RANGE('window_start')}
     ORDER BY window_start, feature, expectation, version`,
    RANGE_PARAMS(r),
  );
  return list.map((x) => ({
    feature: x.feature,
    expectation: x.expectation,
    version: x.version,
    windowStart: Number(x.ws),
    observed: Number(x.observed),
    bound: Number(x.bound),
    passed: Number(x.passed) === 1,
  }));
}

export async function loadReportData(ch: ClickHouse, range: ReportRange, now = Date.now()): Promise<ReportData> {
  const present = await rows<{ name: string }>(ch, 'SELECT name FROM system.tables WHERE database = {db:String}', {
    db: ch.database,
  });
  const names = new Set(present.map((p) => p.name));
  const tables = new Set(TABLES.filter((t) => names.has(t)));
  const notes = TABLES.filter((t) => !tables.has(t)).map(
    (t) => `table ${ch.database}.${t} does not exist (yet): its part of the report is empty`,
  );
  const drift = tables.has('drift_windows') ? await loadDrift(ch, range) : [];
  const distributions = await loadDistributions(ch, range, tables, notes);
  const performance = tables.has('performance_windows') ? await loadPerformance(ch, range, notes) : [];
  const retrain = await loadRetrain(ch, range, tables);
  const skew = tables.has('skew_windows') ? await loadSkew(ch, range) : [];
  const quality = tables.has('data_quality_windows') ? await loadQuality(ch, range) : [];
  return {
    model: range.model,
    from: range.from,
    to: range.to,
    generatedAt: now,
    drift,
    distributions,
    performance,
    retrain,
    skew,
    quality,
    notes,
  };
}
