import { formatDuration, toDriftlineError } from '@driftline/core';
import {
  booleanSpellingOf,
  isPredictionFeature,
  LATE_ONLY_METHOD,
  PREDICTED_CLASS_FEATURE,
  PREDICTION_FEATURE,
} from '@driftline/drift';
import { type ModelView, type Stage, usableTransitions, viewOf } from '@driftline/policy';
import {
  chartedVersions,
  type DriftPoint,
  type DriftTotals,
  type FeatureDistribution,
  featureDistribution,
  featuresByDrift,
  latestEvents,
  MAX_REPORT_FEATURES,
  MAX_TIMELINE_EVENTS,
  type PerformancePoint,
  productionVersion,
  type QualityPoint,
  type QualityTotals,
  type ReportData,
  type RetrainEvent,
  type SkewPoint,
  type SkewTotals,
  type TimelineTotals,
} from '@driftline/report';
import type { ReferenceProfile } from '@driftline/stats';
import type { ClickHouse, QueryParams } from '../client.js';
import { parseStoredProfile } from '../tables/reference-profiles.js';
import { ROW_COLUMNS_ANY_RELEASE, SKEW_WINDOW_TABLES, skewWindowRows } from '../tables/skew-windows.js';

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
  'skew_windows_v2',
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

/** Drift methods the report reads. */
const DRIFT_METHODS = "method IN ('psi', 'ks', 'chi2', 'jensen_shannon')";
/** Not an input feature: the prediction's own profiles (libs/drift isPredictionFeature). */
const PREDICTION_FEATURES = `feature IN ('${PREDICTION_FEATURE}', '${PREDICTED_CLASS_FEATURE}')`;

/**
 * Buckets of the range per (feature, method, version) whose windows are read as two rows: the
 * window with the lowest and the one with the highest statistic, at their own times — 324 rows per
 * series at most, a chart's pixel columns (libs/report draws at most one point per two). 7,000
 * features × 2,016 windows × 2 methods were 28 M rows read before the page dropped all but 500
 * features. One row per bucket of the largest statistic, the smallest p-value and "drifted if any",
 * at the bucket's first window, charted a spike in one window of six as six windows of it.
 */
const DRIFT_BUCKETS = 162;

/**
 * The drift rows the page draws, bounded: the MAX_REPORT_FEATURES most drifted input features (as
 * `featuresByDrift` ranks them: drifted rows, the largest PSI, the name) and the prediction's own,
 * of the versions the charts draw (`chartedVersions`), per bucket of the range the windows with
 * the lowest and the highest statistic as they are (NaN and ±Inf count as neither: a bucket of
 * only those keeps one of them) — each version's latest window as it is. `totals` counts every row
 * for the summary, and gives the bucket width when a bucket left a window out.
 */
async function loadDrift(
  ch: ClickHouse,
  r: ReportRange,
  production: string | undefined,
): Promise<{ drift: DriftPoint[]; totals: DriftTotals }> {
  const table = ch.table('drift_windows');
  const where = `model = {model:String} AND ${IN_RANGE('window_start')} AND ${DRIFT_METHODS}`;
  const [totals] = await rows<{ features: number | string; windows: number | string }>(
    ch,
    `SELECT uniqExactIf(feature, NOT ${PREDICTION_FEATURES}) AS features, uniqExact(window_start, window_end) AS windows
     FROM ${table} WHERE ${where}`,
    RANGE_PARAMS(r),
  );
  const latest = await rows<{ version: string; ws: number; features: number | string; drifted: number | string }>(
    ch,
    `SELECT version, toUnixTimestamp64Milli(window_start) AS ws, uniqExact(feature) AS features,
       uniqExactIf(feature, drifted = 1) AS drifted
     FROM ${table} FINAL
     WHERE ${where} AND method = 'psi' AND NOT ${PREDICTION_FEATURES}
       AND (version, window_start, window_end) IN (
         SELECT version, max(window_start), argMax(window_end, tuple(window_start, window_end)) FROM ${table}
         WHERE ${where} AND method = 'psi' AND NOT ${PREDICTION_FEATURES} GROUP BY version)
     GROUP BY version, window_start, window_end`,
    RANGE_PARAMS(r),
  );
  const lastWindows = await rows<{ version: string; ws: number }>(
    ch,
    `SELECT version, toUnixTimestamp64Milli(max(window_start)) AS ws FROM ${table} WHERE ${where} GROUP BY version`,
    RANGE_PARAMS(r),
  );
  const versions = chartedVersions(
    lastWindows.map((x) => ({ version: x.version, windowStart: Number(x.ws) })),
    production,
  ).shown;
  const ranked = await rows<{ feature: string }>(
    ch,
    `SELECT feature FROM ${table} FINAL
     WHERE ${where} AND NOT ${PREDICTION_FEATURES}
     GROUP BY feature
     ORDER BY countIf(drifted = 1) DESC, maxIfOrNull(statistic, method = 'psi' AND isFinite(statistic)) DESC NULLS LAST, feature
     LIMIT ${MAX_REPORT_FEATURES}`,
    RANGE_PARAMS(r),
  );
  const last = new Map(lastWindows.map((x) => [x.version, Number(x.ws)]));
  const bucketMs = Math.max(1, Math.ceil((r.to - r.from) / DRIFT_BUCKETS));
  // A window's row as a tuple (time, statistic, p-value, threshold, drifted, end), so the two picked
  // per bucket keep their own values; ties go to the earliest window. A window is its start and end:
  // two of different lengths at one start (DRIFTLINE_DRIFT_WINDOW changed, both kept since 0730) are
  // two windows, each drawn at its start when picked.
  const windowRow =
    'tuple(toUnixTimestamp64Milli(window_start), statistic, p_value, threshold, drifted, toUnixTimestamp64Milli(window_end))';
  const finiteStatistic = 'if(isFinite(statistic), statistic, 0)';
  const list = await rows<{
    feature: string;
    method: string;
    version: string;
    ws: number;
    statistic: number | null;
    p_value: number | null;
    threshold: number | null;
    drifted: number;
    dropped: number | string;
  }>(
    ch,
    `SELECT feature, method, version, kept.1 AS ws, kept.2 AS statistic, kept.3 AS p_value, kept.4 AS threshold,
       kept.5 AS drifted, windows - length(pair) AS dropped
     FROM (
       SELECT feature, method, version, uniqExact(window_start, window_end) AS windows,
         argMin(${windowRow}, tuple(NOT isFinite(statistic), ${finiteStatistic}, window_start, window_end)) AS lowest,
         argMax(${windowRow}, tuple(isFinite(statistic), ${finiteStatistic}, -toUnixTimestamp64Milli(window_start),
           -toUnixTimestamp64Milli(window_end))) AS highest,
         if(lowest.1 = highest.1 AND lowest.6 = highest.6, [lowest], [lowest, highest]) AS pair
       FROM ${table} FINAL
       WHERE ${where} AND version IN {versions:Array(String)}
         AND (feature IN {features:Array(String)} OR ${PREDICTION_FEATURES})
       GROUP BY feature, method, version,
         if(toUnixTimestamp64Milli(window_start) = {lasts:Array(Int64)}[indexOf({versions:Array(String)}, version)], -1,
            intDiv(toUnixTimestamp64Milli(window_start) - {from:Int64}, {bucket:Int64})) AS bucket
     )
     ARRAY JOIN pair AS kept
     ORDER BY ws, feature, method`,
    {
      ...RANGE_PARAMS(r),
      versions,
      lasts: versions.map((v) => last.get(v) ?? 0),
      features: ranked.map((x) => x.feature),
      bucket: bucketMs,
    },
  );
  const drift = list.map((x) => ({
    feature: x.feature,
    method: x.method,
    version: x.version,
    windowStart: Number(x.ws),
    // NaN and ±Inf arrive as JSON null: kept null, never Number(null) = 0.
    statistic: x.statistic === null ? null : Number(x.statistic),
    pValue: x.p_value === null ? null : Number(x.p_value),
    // Number(null) is 0: a NaN threshold read as 0 (found by a review).
    threshold: x.threshold === null ? Number.NaN : Number(x.threshold),
    drifted: Number(x.drifted) === 1,
  }));
  const aggregated = list.some((x) => Number(x.dropped) > 0);
  return {
    drift,
    totals: {
      features: Number(totals?.features ?? 0),
      windows: Number(totals?.windows ?? 0),
      ...(aggregated ? { bucketMs } : {}),
      latest: latest.map((x) => ({
        version: x.version,
        windowStart: Number(x.ws),
        features: Number(x.features),
        drifted: Number(x.drifted),
      })),
    },
  };
}

/**
 * The version whose reference the distributions compare against: the latest one drift was measured
 * for. A late-only row (LATE_ONLY_METHOD: late events of a window with none on time) measures
 * nothing: an old version's late events in a newer window made it the "current" one (found by a review).
 */
async function currentVersion(ch: ClickHouse, r: ReportRange, tables: ReadonlySet<Table>): Promise<string | undefined> {
  if (tables.has('drift_windows')) {
    const [x] = await rows<{ version: string }>(
      ch,
      `SELECT argMax(version, window_start) AS version FROM ${ch.table('drift_windows')}
       WHERE model = {model:String} AND ${IN_RANGE('window_start')} AND method != {lateOnly:String}
       HAVING count() > 0`,
      { ...RANGE_PARAMS(r), lateOnly: LATE_ONLY_METHOD },
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
 * The most predictions the current distributions are read from: over it, a sample of about this
 * many (by a hash of the prediction id, the same rows for every feature), and the page says so.
 * Every prediction of 7 days of a 300-feature model was ~70 M (prediction, feature) pairs: the
 * report ran past its timeout at 1.4 GB (found by a review). Shares of a sample of 100,000 are
 * within ±0.4 percentage points of the whole range's (95%).
 */
export const MAX_DISTRIBUTION_PREDICTIONS = 100_000;

/** The prediction tables of the current values (the label-joiner's: where prediction features are kept). */
function predictionSources(tables: ReadonlySet<Table>): Array<'labeled_predictions' | 'unlabeled_predictions'> {
  return (['labeled_predictions', 'unlabeled_predictions'] as const).filter((t) => tables.has(t));
}

const PREDICTIONS_OF_VERSION = `model = {model:String} AND model_version = {version:String} AND ${IN_RANGE('prediction_time')}`;

/**
 * Counts of the current values of the features `{names:Array(String)}`: the predictions of the
 * version in the range that were joined to a label or expired without one (the label-joiner's
 * tables are where prediction features are kept), of which those whose hash of the id falls under
 * `{sample:UInt32}` per million (a million: all). `__prediction__` / `__predicted_class__` are the
 * prediction columns themselves. Numeric features are counted per bin of `{edges:…}` (right-closed:
 * the number of edges below the value); categorical ones per category, a boolean spelled as the
 * profile spells it (`{trues:…}` / `{falses:…}`, libs/drift booleanSpellingOf) as the drift monitor
 * keys it — read as `true` / `false`, a profile from a pandas CSV (`True` / `False`) charted every
 * live boolean as "other" — and every value the reference never saw (not in `{known:…}`) under its
 * feature's `{unseen:…}` key: a row per distinct value of a high-cardinality feature came back.
 *
 * One scan for every feature of a kind (a query per feature was thousands of scans of the same
 * rows on a wide model), and each row's features JSON parsed once, into its (key, raw value) pairs:
 * JSONType / JSONExtract* of the whole document per (prediction, feature) parsed it up to 4 times
 * per pair, and a map lookup per pair is a scan of the row's keys (34 s for 100,000 predictions of
 * 300 features, 2 s so). A pair's feature is found by `transform` (a hash lookup).
 */
function currentCountsSql(
  ch: ClickHouse,
  kind: 'numeric' | 'categorical',
  tables: ReadonlySet<Table>,
): string | undefined {
  const sources = predictionSources(tables);
  if (sources.length === 0) return undefined;
  const json = `arrayFilter(kv -> kv.1 NOT IN ('__prediction__', '__predicted_class__'), JSONExtractKeysAndValuesRaw(features))`;
  // (feature, value): a JSON number or boolean as a number (a string, null, an object: none);
  // categorical: (feature, a string's text, a number's or boolean's JSON text, whether a boolean).
  const pairs =
    kind === 'numeric'
      ? `arrayConcat(
          arrayMap(kv -> (kv.1, multiIf(kv.2 = 'true', 1., kv.2 = 'false', 0., toFloat64OrNull(kv.2))), ${json}),
          [('__prediction__', prediction), ('__predicted_class__', toFloat64OrNull(predicted_class))])`
      : `arrayConcat(
          arrayMap(kv -> (kv.1,
            multiIf(startsWith(kv.2, '"'), JSONExtractString(kv.2), kv.2 IN ('true', 'false'), kv.2,
                    match(kv.2, '^-?[0-9]'), kv.2, NULL),
            kv.2 IN ('true', 'false')), ${json}),
          [('__prediction__', toString(prediction), false), ('__predicted_class__', predicted_class, false)])`;
  const rowsOf = sources
    .map(
      (t) => `SELECT ${pairs} AS pairs FROM ${ch.table(t)} FINAL
       WHERE ${PREDICTIONS_OF_VERSION} AND cityHash64(prediction_id) % 1000000 < {sample:UInt32}`,
    )
    .join(' UNION ALL ');
  const index = 'transform(f, {names:Array(String)}, range(1, length({names:Array(String)}) + 1), 0)';
  if (kind === 'numeric') {
    return `SELECT f, arrayCount(x -> x < v, {edges:Array(Array(Float64))}[i]) AS bin, count() AS n FROM (
      SELECT p.1 AS f, ${index} AS i, p.2 AS v FROM (${rowsOf}) ARRAY JOIN pairs AS p
      WHERE i > 0 AND v IS NOT NULL AND isFinite(v)
    ) GROUP BY f, bin ORDER BY f, bin`;
  }
  return `SELECT f, if(${KNOWN_KEY} IN {known:Array(String)}, v, {unseen:Array(String)}[i]) AS category, count() AS n FROM (
      SELECT p.1 AS f, ${index} AS i,
        if(p.3, if(p.2 = 'true', {trues:Array(String)}[i], {falses:Array(String)}[i]), p.2) AS v
      FROM (${rowsOf}) ARRAY JOIN pairs AS p
      WHERE i > 0 AND v IS NOT NULL
    ) GROUP BY f, category`;
}

/**
 * The sample (per million, see {@link currentCountsSql}) that reads about MAX_DISTRIBUTION_PREDICTIONS
 * of the version's predictions in the range, and how many there are.
 */
async function distributionSample(
  ch: ClickHouse,
  tables: ReadonlySet<Table>,
  params: Record<string, unknown>,
): Promise<{ perMillion: number; total: number }> {
  const counts = predictionSources(tables).map(
    (t) => `SELECT count() AS n FROM ${ch.table(t)} WHERE ${PREDICTIONS_OF_VERSION}`,
  );
  const [x] = await rows<{ n: number | string }>(ch, `SELECT sum(n) AS n FROM (${counts.join(' UNION ALL ')})`, params);
  const total = Number(x?.n ?? 0);
  const perMillion =
    total <= MAX_DISTRIBUTION_PREDICTIONS ? 1_000_000 : Math.ceil((MAX_DISTRIBUTION_PREDICTIONS / total) * 1_000_000);
  return { perMillion, total };
}

/**
 * A (feature, category) pair as one string, for a set lookup: the feature's length in bytes, `:`,
 * the feature, the category (unambiguous whatever the names hold). KNOWN_KEY is the same in SQL.
 */
const knownKey = (feature: string, category: string) => `${Buffer.byteLength(feature)}:${feature}${category}`;
const KNOWN_KEY = "concat(toString(length(f)), ':', f, v)";

/** A key that is none of `categories`: where the query folds the values the reference never saw. */
function unseenKey(categories: readonly string[]): string {
  const known = new Set(categories);
  let key = '\u0000unseen';
  while (known.has(key)) key += '\u0000';
  return key;
}

async function loadDistributions(
  ch: ClickHouse,
  r: ReportRange,
  tables: ReadonlySet<Table>,
  drift: readonly DriftPoint[],
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
  // Only the features the page shows (the most drifted; the prediction's own always).
  const shown = new Set(
    featuresByDrift(
      drift,
      profiles.map((p) => p.feature),
    ).slice(0, MAX_REPORT_FEATURES),
  );
  const views: Array<{ feature: string; view: ReferenceProfile }> = [];
  for (const p of profiles) {
    if (!shown.has(p.feature) && !isPredictionFeature(p.feature)) continue;
    try {
      views.push({ feature: p.feature, view: parseStoredProfile(p.profile, `${r.model}/${version}/${p.feature}`) });
    } catch (error) {
      notes.push(
        `reference profile of ${p.feature} (${version}) is malformed (${toDriftlineError(error).message}); its distribution is left out`,
      );
    }
  }
  const params: Record<string, unknown> = { ...RANGE_PARAMS(r), version, sample: 1_000_000 };
  const numeric = views.flatMap((x) => (x.view.kind === 'numeric' ? [{ feature: x.feature, view: x.view }] : []));
  const categorical = views.flatMap((x) =>
    x.view.kind === 'categorical'
      ? [{ feature: x.feature, booleans: booleanSpellingOf(x.view), categories: x.view.categories }]
      : [],
  );
  const numericSql = currentCountsSql(ch, 'numeric', tables);
  const categoricalSql = currentCountsSql(ch, 'categorical', tables);
  if (numericSql !== undefined && views.length > 0) {
    const { perMillion, total } = await distributionSample(ch, tables, params);
    Object.assign(params, { sample: perMillion });
    if (perMillion < 1_000_000) {
      notes.push(
        `current distributions: a sample of about ${MAX_DISTRIBUTION_PREDICTIONS.toLocaleString('en-US')} of the ${total.toLocaleString('en-US')} predictions of ${version} in the range (MAX_DISTRIBUTION_PREDICTIONS)`,
      );
    }
  }
  // Counts by feature: per bin index or per category.
  const counts = new Map<string, Map<number, number> | Map<string, number>>();
  if (numericSql !== undefined && numeric.length > 0) {
    const list = await rows<{ f: string; bin: number; n: number }>(ch, numericSql, {
      ...params,
      names: numeric.map((x) => x.feature),
      edges: numeric.map((x) => x.view.coarseEdges),
    });
    for (const c of list) {
      const m = (counts.get(c.f) as Map<number, number> | undefined) ?? new Map<number, number>();
      m.set(Number(c.bin), Number(c.n));
      counts.set(c.f, m);
    }
  }
  if (categoricalSql !== undefined && categorical.length > 0) {
    const list = await rows<{ f: string; category: string; n: number }>(ch, categoricalSql, {
      ...params,
      names: categorical.map((x) => x.feature),
      trues: categorical.map((x) => x.booleans.true),
      falses: categorical.map((x) => x.booleans.false),
      known: categorical.flatMap((x) => x.categories.map((c) => knownKey(x.feature, c))),
      unseen: categorical.map((x) => unseenKey(x.categories)),
    });
    for (const c of list) {
      const m = (counts.get(c.f) as Map<string, number> | undefined) ?? new Map<string, number>();
      m.set(c.category, Number(c.n));
      counts.set(c.f, m);
    }
  }
  return views.map(({ feature, view }) =>
    featureDistribution(feature, version, view, counts.get(feature) ?? new Map<number, number>()),
  );
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

/**
 * `sampled_labels` of a performance_windows row (migration 0680: the labels its metrics came from
 * when the window was read as a sample, 0 when from all), through the `COLUMNS` matcher: on a table
 * before 0680 it matches nothing and reads 0 (as the Grafana panels read it).
 */
export const SAMPLED_LABELS = "coalesce(COLUMNS('^sampled_labels\\\\z'), 0)";

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
    `SELECT model_version, toUnixTimestamp64Milli(window_start) AS ws, task, predictions, labeled, invalid_labels, label_coverage, ${metrics.join(', ')}${extra},
       ${SAMPLED_LABELS} AS sampled
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
    invalidLabels: Number(x.invalid_labels),
    labelCoverage: num(x.label_coverage),
    metrics: Object.fromEntries(metrics.map((m) => [m, num(x[m])])),
    ...(estimates ? estimateFields(x, num) : {}),
    sampled: Number(x.sampled),
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

/**
 * The latest MAX_TIMELINE_EVENTS rows of `table` matching `where` (the newest first: each source
 * is cut to the bound before the three are merged) and how many match in all.
 */
async function latestRows<T>(
  ch: ClickHouse,
  r: ReportRange,
  table: Table,
  columns: string,
  where: string,
  time: string,
): Promise<{ list: T[]; total: number }> {
  const from = `FROM ${ch.table(table)} FINAL WHERE model = {model:String} AND ${where} AND ${IN_RANGE(time)}`;
  const [count] = await rows<{ n: number | string }>(ch, `SELECT count() AS n ${from}`, RANGE_PARAMS(r));
  const list = await rows<T>(
    ch,
    `SELECT ${columns} ${from} ORDER BY ${time} DESC LIMIT ${MAX_TIMELINE_EVENTS}`,
    RANGE_PARAMS(r),
  );
  return { list, total: Number(count?.n ?? 0) };
}

/**
 * The range's timeline, bounded: the latest MAX_TIMELINE_EVENTS events (what the page lists and
 * marks), and counts of every one. Every decision, version and transition of the range was read:
 * 10,000 versions, 60,000 events, and the report and its cards took six minutes.
 */
async function loadRetrain(
  ch: ClickHouse,
  r: ReportRange,
  tables: ReadonlySet<Table>,
): Promise<{ retrain: RetrainEvent[]; totals: TimelineTotals }> {
  const out: RetrainEvent[] = [];
  let events = 0;
  let decisions = 0;
  if (tables.has('retrain_decisions')) {
    // Fired decisions only: holds (duplicate, sustaining, cooldown…) are the policy working as meant.
    const { list, total } = await latestRows<{
      t: number;
      version: string;
      reason: string;
      detail: string;
      request_id: string | null;
    }>(
      ch,
      r,
      'retrain_decisions',
      'toUnixTimestamp64Milli(decided_at) AS t, model_version AS version, reason, detail, request_id',
      "decision = 'fire'",
      'decided_at',
    );
    events += total;
    decisions = total;
    for (const x of list.reverse()) {
      const detail = [x.reason, x.detail, x.request_id === null ? '' : `request ${x.request_id}`]
        .filter((s) => s !== '')
        .join(' · ');
      out.push({ time: Number(x.t), source: 'decision', kind: 'retrain', version: x.version, detail });
    }
  }
  if (tables.has('model_versions')) {
    // One row per trained version (trainer): PROMOTED or REJECTED, at its training time.
    const { list, total } = await latestRows<{ t: number; version: string; status: string; reason: string }>(
      ch,
      r,
      'model_versions',
      'toUnixTimestamp64Milli(registered_at) AS t, version, status, promotion_reason AS reason',
      '1',
      'registered_at',
    );
    events += total;
    for (const x of list.reverse()) {
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
    const { list, total } = await latestRows<{
      t: number;
      version: string;
      to_stage: string;
      decided_by: string;
      reason: string;
      detail: string;
      previous_version: string | null;
    }>(
      ch,
      r,
      'model_transitions',
      'toUnixTimestamp64Milli(at) AS t, version, to_stage, decided_by, reason, detail, previous_version',
      '1',
      'at',
    );
    events += total;
    for (const x of list.reverse()) {
      out.push({
        time: Number(x.t),
        source: 'stage',
        kind: x.to_stage.toUpperCase(),
        version: x.version,
        detail: [x.decided_by, x.reason, x.detail].filter((s) => s !== '').join(' · '),
        previous: x.previous_version,
      });
    }
  }
  return { retrain: latestEvents(out, MAX_TIMELINE_EVENTS), totals: { events, decisions } };
}

/**
 * Skew aggregated in SQL, as the drift rows are: per feature (windows, versions, source partitions
 * and logs summed; skew_windows keeps one row per partition and log) the MAX_REPORT_FEATURES with
 * the largest share mismatched (`skewFeatures` of libs/report ranks and pools them the same way),
 * and for the chart, per listed feature and bucket of the range the windows with the lowest and
 * the highest share (versions summed), the latest window as it is — as rows per (window, feature,
 * version). `tables`: those of SKEW_WINDOW_TABLES the database has. Every row was read.
 *
 * After a change of the window length (the skew-monitor's DRIFTLINE_SKEW_WINDOW as the rows tell
 * it): every window of the latest length (the latest window's), and of other lengths only those
 * starting before its first window in the range, with a note. Windows of two lengths overlap in time
 * — both counted the predictions between the old process's last commit and its last row — and
 * summing them counted those twice, in one window when both started at the same time (a review):
 * the windows of other lengths from then on are left out, the note says how many. (Reading the
 * latest length alone hid all history before the change; the dashboards do as this.)
 */
async function loadSkew(
  ch: ClickHouse,
  r: ReportRange,
  tables: ReadonlyArray<(typeof SKEW_WINDOW_TABLES)[number]>,
  notes: string[],
): Promise<{ skew: SkewPoint[]; totals: SkewTotals | undefined }> {
  const inRange = `model = {model:String} AND ${IN_RANGE('window_start')}`;
  const lengthMs = 'toUnixTimestamp64Milli(window_end) - toUnixTimestamp64Milli(window_start)';
  // Per window length: its features, its first and its latest window (the first row's length is shown).
  const lengths = await rows<{ len: number | string; n: number | string; first: number | string }>(
    ch,
    `SELECT ${lengthMs} AS len, uniqExact(feature) AS n, toUnixTimestamp64Milli(min(window_start)) AS first
     FROM (${skewWindowRows((name) => ch.table(name), inRange, tables, ROW_COLUMNS_ANY_RELEASE)})
     GROUP BY len
     ORDER BY max(window_start) DESC, max(updated_at) DESC, len`,
    RANGE_PARAMS(r),
  );
  const [shown, ...others] = lengths;
  if (shown === undefined || Number(shown.n) === 0) return { skew: [], totals: undefined };
  const windowMs = Number(shown.len);
  const params = { ...RANGE_PARAMS(r), windowMs, since: Number(shown.first) };
  // One length in the range (the usual case): no filter, the queries as before.
  const keptRow = `(${lengthMs} = {windowMs:Int64} OR window_start < fromUnixTimestamp64Milli({since:Int64}, 'UTC'))`;
  const ofLength = others.length === 0 ? '' : ` AND ${keptRow}`;
  let total = Number(shown.n);
  if (others.length > 0) {
    const [mix] = await rows<{ n: number | string; left: number | string; lens: Array<number | string> }>(
      ch,
      `SELECT uniqExactIf(feature, ${keptRow}) AS n, uniqExactIf((window_start, len), NOT ${keptRow}) AS left,
         arraySort(groupUniqArrayIf(len, len != {windowMs:Int64})) AS lens
       FROM (SELECT *, ${lengthMs} AS len
             FROM (${skewWindowRows((name) => ch.table(name), inRange, tables, ROW_COLUMNS_ANY_RELEASE)}))`,
      params,
    );
    total = Number(mix?.n ?? total);
    const left = Number(mix?.left ?? 0);
    const since = new Date(Number(shown.first)).toISOString();
    notes.push(
      `skew: windows of ${formatDuration(windowMs)} (the latest length) from ${since}, of ${(mix?.lens ?? []).map((l) => formatDuration(Number(l))).join(', ')} before; ${left} windows of other lengths from then on left out: DRIFTLINE_SKEW_WINDOW changed in the range`,
    );
  }
  const perWindow = `SELECT feature, model_version AS version, toUnixTimestamp64Milli(window_start) AS ws,
       sum(sampled) AS sampled, sum(compared) AS compared, sum(mismatched) AS mismatched,
       sum(numeric_compared) AS numeric_compared, sum(abs_diff_sum) AS abs_diff_sum,
       sum(missing_in_store) AS missing_in_store, sum(missing_in_prediction) AS missing_in_prediction,
       sum(newer_row) AS newer_row, sum(expired) AS expired
     FROM (${skewWindowRows((name) => ch.table(name), `${inRange}${ofLength}`, tables, ROW_COLUMNS_ANY_RELEASE)})
     GROUP BY window_start, feature, model_version`;
  // A (window, version) whose Σ|diff| is NaN or ±Inf (JSON null) counts for neither sum.
  const pooled = 'isFinite(abs_diff_sum) AND numeric_compared > 0';
  const features = await rows<{
    feature: string;
    sampled_sum: number | string;
    compared_sum: number | string;
    share: number | null;
    mean_abs_diff: number | null;
    missing_in_store_sum: number | string;
    missing_in_prediction_sum: number | string;
    newer_row_sum: number | string;
    expired_sum: number | string;
    windows: number | string;
  }>(
    ch,
    // Aliases unlike the columns: ClickHouse reads a column name as the alias that shadows it.
    `SELECT feature, sum(sampled) AS sampled_sum, sum(compared) AS compared_sum,
       if(compared_sum = 0, NULL, sum(mismatched) / compared_sum) AS share,
       if(sumIf(numeric_compared, ${pooled}) = 0, NULL,
          sumIf(abs_diff_sum, ${pooled}) / sumIf(numeric_compared, ${pooled})) AS mean_abs_diff,
       sum(missing_in_store) AS missing_in_store_sum, sum(missing_in_prediction) AS missing_in_prediction_sum,
       sum(newer_row) AS newer_row_sum, sum(expired) AS expired_sum, uniqExactIf(ws, compared > 0) AS windows
     FROM (${perWindow})
     GROUP BY feature
     ORDER BY ifNull(share, -1) DESC, feature
     LIMIT ${MAX_REPORT_FEATURES}`,
    params,
  );
  const bucketMs = Math.max(1, Math.ceil((r.to - r.from) / DRIFT_BUCKETS));
  const listed = features.map((f) => f.feature);
  const list = await rows<Record<string, number | string | null>>(
    ch,
    `SELECT * FROM (${perWindow})
     WHERE feature IN {features:Array(String)} AND (feature, ws) IN (
       SELECT feature, arrayJoin(if(lowest.1 = highest.1, [lowest.1], [lowest.1, highest.1])) FROM (
         SELECT feature, argMin(tuple(ws, share), tuple(share, ws)) AS lowest,
           argMax(tuple(ws, share), tuple(share, -ws)) AS highest
         FROM (
           SELECT feature, ws, share, max(ws) OVER (PARTITION BY feature) AS last
           FROM (
             SELECT feature, ws, sum(mismatched) / sum(compared) AS share FROM (${perWindow})
             WHERE feature IN {features:Array(String)} GROUP BY feature, ws HAVING sum(compared) > 0
           )
         )
         GROUP BY feature, if(ws = last, -1, intDiv(ws - {from:Int64}, {bucket:Int64}))
       )
     )
     ORDER BY ws, feature, version`,
    { ...params, features: listed, bucket: bucketMs },
  );
  const skew = list.map((x) => ({
    feature: String(x.feature),
    version: String(x.version),
    windowStart: Number(x.ws),
    sampled: Number(x.sampled),
    compared: Number(x.compared),
    mismatched: Number(x.mismatched),
    numericCompared: Number(x.numeric_compared),
    absDiffSum: x.abs_diff_sum === null ? null : Number(x.abs_diff_sum),
    missingInStore: Number(x.missing_in_store),
    missingInPrediction: Number(x.missing_in_prediction),
    newerRow: Number(x.newer_row),
    expired: Number(x.expired),
  }));
  const charted = new Set(skew.filter((p) => p.compared > 0).map((p) => `${p.feature}\u0000${p.windowStart}`));
  const kept = new Map<string, number>();
  for (const key of charted) {
    const feature = key.slice(0, key.indexOf('\u0000'));
    kept.set(feature, (kept.get(feature) ?? 0) + 1);
  }
  const aggregated = features.some((f) => (kept.get(f.feature) ?? 0) < Number(f.windows));
  const num = (v: number | string | null) => (v === null ? null : Number(v));
  return {
    skew,
    totals: {
      features: features.map((f) => ({
        feature: f.feature,
        sampled: Number(f.sampled_sum),
        compared: Number(f.compared_sum),
        share: num(f.share),
        meanAbsDiff: num(f.mean_abs_diff),
        missingInStore: Number(f.missing_in_store_sum),
        missingInPrediction: Number(f.missing_in_prediction_sum),
        newerRow: Number(f.newer_row_sum),
        expired: Number(f.expired_sum),
      })),
      total,
      ...(aggregated ? { bucketMs } : {}),
    },
  };
}

/** The data-quality expectations that are shares, the ones the page charts (libs/report). */
const QUALITY_SHARES = ['type', 'null_rate', 'range', 'categories'];

/**
 * Data-quality expectations of the model's features, aggregated in SQL as the drift rows are: per
 * check (feature · expectation) its windows, failures, worst finite value and first bound, the
 * MAX_REPORT_FEATURES that failed most (`qualityChecks` of libs/report ranks them the same way); and
 * for the chart, per charted check and bucket of the range the windows whose worst version (what the
 * page charts) is the lowest and the highest, with every version's row, the latest window as it is.
 * Every row was read: 5-minute windows × 50 features × 4 expectations over 90 days were 4.35 GB.
 */
async function loadQuality(
  ch: ClickHouse,
  r: ReportRange,
): Promise<{ quality: QualityPoint[]; totals: QualityTotals | undefined }> {
  const table = ch.table('data_quality_windows');
  const where = `model = {model:String} AND ${IN_RANGE('window_start')}`;
  const [count] = await rows<{ n: number | string }>(
    ch,
    `SELECT uniqExact(feature, expectation) AS n FROM ${table} WHERE ${where}`,
    RANGE_PARAMS(r),
  );
  const total = Number(count?.n ?? 0);
  if (total === 0) return { quality: [], totals: undefined };
  const checks = await rows<{
    feature: string;
    expectation: string;
    windows: number | string;
    failed: number | string;
    worst: number | null;
    bound: number;
    last: number | string;
  }>(
    ch,
    `SELECT feature, expectation, count() AS windows, countIf(passed = 0) AS failed,
       maxIfOrNull(observed, isFinite(observed)) AS worst, argMin(bound, tuple(window_start, version)) AS bound,
       toUnixTimestamp64Milli(max(window_start)) AS last
     FROM ${table} FINAL WHERE ${where}
     GROUP BY feature, expectation
     ORDER BY failed DESC, feature, expectation
     LIMIT ${MAX_REPORT_FEATURES}`,
    RANGE_PARAMS(r),
  );
  const charted = checks.filter((c) => QUALITY_SHARES.includes(c.expectation));
  const bucketMs = Math.max(1, Math.ceil((r.to - r.from) / DRIFT_BUCKETS));
  // The page charts each window's worst version, so the extremes are taken over that: each
  // window's largest value first (grouped by the check's index and the time, numbers only), then
  // per bucket the windows with the lowest and the highest of them, kept with every version's row.
  // Extremes over the rows kept a window for another version's lowest value: a failing window
  // drawn at the canary's passing one. NaN and ±Inf count as neither extreme (a window of only
  // those is -inf; a bucket of only those keeps its first window).
  const ws = 'toUnixTimestamp64Milli(window_start)';
  // A window is its start and end: two of different lengths at one start (DRIFTLINE_DRIFT_WINDOW
  // changed, both kept since 0730) are two windows, each its own worst value, drawn at its start.
  const we = 'toUnixTimestamp64Milli(window_end)';
  // The check's index (1-based; 0 not charted) by a hash lookup: indexOf compared every name per row.
  const check =
    "transform(concat(feature, '\\0', expectation), {keys:Array(String)}, arrayEnumerate({keys:Array(String)}), 0)";
  const finite = 'if(isFinite(worst), worst, 0)';
  const list =
    charted.length === 0
      ? []
      : await rows<{
          feature: string;
          expectation: string;
          ws: number;
          observed: number | null;
          version: string;
          bound: number;
          passed: number;
          dropped: number | string;
        }>(
          ch,
          `SELECT feature, expectation, ws, observed, version, bound, passed, dropped
           FROM (
             SELECT ${check} AS check, feature, expectation, ${ws} AS ws, ${we} AS we, observed, version, bound, passed
             FROM ${table} FINAL WHERE ${where} AND check > 0
           ) AS q
           INNER JOIN (
             SELECT check, kept.1 AS ws, kept.2 AS we, dropped
             FROM (
               SELECT check, arrayJoin(if(lowest = highest, [lowest], [lowest, highest])) AS kept,
                 windows - if(lowest = highest, 1, 2) AS dropped
               FROM (
                 SELECT check, count() AS windows,
                   argMin(tuple(ws, we), tuple(NOT isFinite(worst), ${finite}, ws, we)) AS lowest,
                   argMax(tuple(ws, we), tuple(isFinite(worst), ${finite}, -ws, -we)) AS highest
                 FROM (
                   SELECT ${check} AS check, ${ws} AS ws, ${we} AS we, max(if(isFinite(observed), observed, -inf)) AS worst
                   FROM ${table} FINAL WHERE ${where} AND check > 0
                   GROUP BY check, ws, we
                 )
                 GROUP BY check, if(ws = {lasts:Array(Int64)}[check], -1, intDiv(ws - {from:Int64}, {bucket:Int64}))
               )
             )
           ) AS k USING (check, ws, we)
           ORDER BY ws, we, feature, expectation, version`,
          {
            ...RANGE_PARAMS(r),
            keys: charted.map((c) => `${c.feature}\0${c.expectation}`),
            lasts: charted.map((c) => Number(c.last)),
            bucket: bucketMs,
          },
        );
  const aggregated = list.some((x) => Number(x.dropped) > 0);
  return {
    quality: list.map((x) => ({
      feature: x.feature,
      expectation: x.expectation,
      version: x.version,
      windowStart: Number(x.ws),
      // NaN and ±Inf arrive as JSON null: kept null, never Number(null) = 0.
      observed: x.observed === null ? null : Number(x.observed),
      bound: Number(x.bound),
      passed: Number(x.passed) === 1,
    })),
    totals: {
      checks: checks.map((c) => ({
        feature: c.feature,
        expectation: c.expectation,
        windows: Number(c.windows),
        failed: Number(c.failed),
        worst: c.worst === null ? null : Number(c.worst),
        bound: Number(c.bound),
      })),
      total,
      ...(aggregated ? { bucketMs } : {}),
    },
  };
}

/**
 * The model-controller's reading (viewOf) of every transition of `model` recorded before `to`: a
 * promotion older than the range counts, a rollback hands production back. `staged`: any recorded.
 * The model card derives a version's stage from the same view (found by a review: the two disagreed).
 */
export async function stageViewAt(
  ch: ClickHouse,
  model: string,
  to: number,
): Promise<{ view: ModelView; staged: boolean }> {
  const list = await rows<{
    version: string;
    from_stage: string;
    to_stage: string;
    t: number;
    previous_version: string | null;
  }>(
    ch,
    `SELECT version, from_stage, to_stage, toUnixTimestamp64Milli(at) AS t, previous_version
     FROM ${ch.table('model_transitions')} FINAL
     WHERE model = {model:String} AND at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
     ORDER BY at DESC LIMIT ${MAX_TRANSITIONS}`,
    { model, to },
  );
  const facts = usableTransitions(
    list.map((x) => ({
      version: x.version,
      from_stage: x.from_stage === '' ? null : (x.from_stage as Stage),
      to_stage: x.to_stage as Stage,
      at: Number(x.t),
      previous_version: x.previous_version,
    })),
  );
  return { view: viewOf(facts), staged: list.length > 0 };
}

/**
 * The version a model without stage transitions (rollout `direct`) serves at `to`: the trainer's
 * last PROMOTED registered before it, read as such — the latest MAX_TIMELINE_EVENTS timeline events
 * lost it behind 1,000 newer rejected versions. Whenever promoted: with a lower bound (the range's
 * `from`) a model promoted more than 7 days ago showed "production version –" (found by a review).
 */
export async function lastPromoted(ch: ClickHouse, model: string, to: number): Promise<string | undefined> {
  const [x] = await rows<{ version: string }>(
    ch,
    `SELECT version FROM ${ch.table('model_versions')} FINAL
     WHERE model = {model:String} AND upper(status) = 'PROMOTED'
       AND registered_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
     ORDER BY registered_at DESC, version DESC LIMIT 1`,
    { model, to },
  );
  return x?.version;
}

/** Transitions read for the production version (the model-controller reads as many). */
const MAX_TRANSITIONS = 10_000;

/** Models other than `r.model` with drift windows in the range, for the "no data" note (a typo, most likely). */
async function otherModels(ch: ClickHouse, r: ReportRange): Promise<string[]> {
  const list = await rows<{ model: string }>(
    ch,
    `SELECT DISTINCT model FROM ${ch.table('drift_windows')} WHERE ${IN_RANGE('window_start')} ORDER BY model LIMIT 10`,
    { from: r.from, to: r.to },
  );
  return list.map((x) => x.model).filter((m) => m !== r.model);
}

/** Reads everything the report shows for one model and time range. */
export async function loadReportData(ch: ClickHouse, range: ReportRange, now = Date.now()): Promise<ReportData> {
  const present = await rows<{ name: string }>(ch, 'SELECT name FROM system.tables WHERE database = {db:String}', {
    db: ch.database,
  });
  const names = new Set(present.map((p) => p.name));
  const tables = new Set(TABLES.filter((t) => names.has(t)));
  const notes = TABLES.filter((t) => !tables.has(t)).map(
    (t) => `table ${ch.database}.${t} does not exist (yet): its part of the report is empty`,
  );
  // First: the drift charts draw the production version's series whatever the others — the
  // version the page names, by the page's own rule (a model without stage transitions: its
  // trainer's last PROMOTED, read in SQL: the timeline is the latest events only).
  const { retrain, totals: timelineTotals } = await loadRetrain(ch, range, tables);
  const transitions = tables.has('model_transitions')
    ? await stageViewAt(ch, range.model, range.to)
    : { view: undefined, staged: false };
  const read =
    transitions.view?.production ??
    (!transitions.staged && tables.has('model_versions') ? await lastPromoted(ch, range.model, range.to) : undefined);
  const production = productionVersion({ retrain, ...(read === undefined ? {} : { productionVersion: read }) });
  const { drift, totals } = tables.has('drift_windows')
    ? await loadDrift(ch, range, production)
    : { drift: [], totals: undefined };
  const distributions = await loadDistributions(ch, range, tables, drift, notes);
  const performance = tables.has('performance_windows') ? await loadPerformance(ch, range, notes) : [];
  // A database not yet migrated to 0670 (the report only reads) has the first logs' rows alone.
  const skewTables = SKEW_WINDOW_TABLES.filter((t) => tables.has(t));
  const { skew, totals: skewTotals } =
    skewTables.length > 0 ? await loadSkew(ch, range, skewTables, notes) : { skew: [], totals: undefined };
  const { quality, totals: qualityTotals } = tables.has('data_quality_windows')
    ? await loadQuality(ch, range)
    : { quality: [], totals: undefined };
  const empty =
    [drift, performance, retrain, skew, skewTotals?.features ?? [], quality, qualityTotals?.checks ?? []].every(
      (list) => list.length === 0,
    ) && distributions.every((d) => d.currentCount === 0);
  if (empty) {
    // An unknown --model made an empty page that looked like a quiet model.
    const others = tables.has('drift_windows') ? await otherModels(ch, range) : [];
    notes.unshift(
      `no data for model ${range.model} in [${new Date(range.from).toISOString()}, ${new Date(range.to).toISOString()})${others.length === 0 ? '' : ` (models with drift windows then: ${others.join(', ')})`}`,
    );
  }
  return {
    model: range.model,
    from: range.from,
    to: range.to,
    generatedAt: now,
    drift,
    ...(totals === undefined ? {} : { driftTotals: totals }),
    distributions,
    performance,
    retrain,
    timelineTotals,
    skew,
    ...(skewTotals === undefined ? {} : { skewTotals }),
    quality,
    ...(qualityTotals === undefined ? {} : { qualityTotals }),
    ...(production === undefined ? {} : { productionVersion: production }),
    notes,
  };
}
