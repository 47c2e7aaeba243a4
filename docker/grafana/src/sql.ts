/**
 * The SQL of every ClickHouse panel, variable and annotation. Tables are qualified with the hidden
 * `${database}` constant (default `driftline`), so a deployment with another
 * DRIFTLINE_CLICKHOUSE_DATABASE changes one variable, and tests point the same SQL at their own
 * database. User-selected values (`model`, `version`, `feature`) enter only through
 * {@link variableValue} / {@link inSelection}: percent-encoded by Grafana, decoded by ClickHouse.
 */

import { STALENESS_BOUNDS_MS } from '@driftline/skew';

const T = (table: string) => `\${database}.${table}`;

/**
 * The feature names the drift monitor writes for the model's output (libs/drift PREDICTION_FEATURE,
 * PREDICTED_CLASS_FEATURE), and all it reserves: those and a late-only window's row (LATE_ONLY_FEATURE).
 * A copy (the dashboards do not depend on libs/drift); a test checks it is libs/drift's. Exactly these
 * names, not every name starting with `__`: an input feature `__x` vanished from every panel.
 */
export const PREDICTION_FEATURES = ['__prediction__', '__predicted_class__'] as const;
export const RESERVED_FEATURES = [...PREDICTION_FEATURES, '__window__'] as const;
/**
 * The distribution panels' bucket of current values the reference never saw, as libs/report labels
 * it (UNSEEN_VALUES; a test checks they are the same): "other" was also a category's name.
 */
export const UNSEEN_VALUES = '(unseen values)';
const sqlNames = (names: readonly string[]) => `(${names.map((n) => `'${n}'`).join(', ')})`;
/** An input feature's row: not one of the RESERVED_FEATURES. */
const INPUT_FEATURE = `feature NOT IN ${sqlNames(RESERVED_FEATURES)}`;

/**
 * A single-value variable as a ClickHouse String. Names come from events with no character rule:
 * `:sqlstring` only doubles `'` while ClickHouse also reads `\` as an escape, and the plugin expands
 * `$__macros` after interpolation even inside string literals. Grafana's `:percentencode` leaves only
 * `[A-Za-z0-9._~%-]` (RFC 3986 strict: `'`, `$`, `\`, `{`, `,` are encoded), so the literal cannot be
 * left or carry a macro; the decoded constant is folded before index analysis, so the key is still used.
 */
export const variableValue = (variable: string): string => `decodeURLComponent('\${${variable}:percentencode}')`;

/**
 * `column IN <the selection of a multi-value variable>`, or no filter at all (`1=1`) when All or nothing
 * is selected: the plugin's `$__conditionalAll` looks at the variable's current value before
 * interpolation. Without it Grafana spells All as every option, and 10,000 feature names of 64
 * characters are ~670 KB percent-encoded even once: over ClickHouse's max_query_size (256 KiB).
 * An explicit selection is decoded once (its size enters the SQL once): Grafana percent-encodes a
 * multi value as one glob `{a,b}`, whose braces the regular expression strips (a single value arrives
 * without them) before the split on `,`; a name containing a comma cannot be selected exactly (it is
 * never a way out of the literal). The regular expression ends in `\z`, not `$`: the plugin puts
 * the condition back with String.replace, where `$'` is a pattern.
 */
export function inSelection(column: string, variable: string): string {
  const selected = `splitByChar(',', replaceRegexpOne(${variableValue(variable)}, '(?s)^[{](.*)[}]\\\\z', '\\\\1'))`;
  return `$__conditionalAll(${column} IN ${selected}, $${variable})`;
}

const MODEL = variableValue('model');

const DRIFT_FILTER = `$__timeFilter(window_start)
  AND model = ${MODEL}
  AND ${inSelection('version', 'version')}`;

/**
 * The most "Distribution of" panels one dashboard shows: the panel repeats over the
 * `distribution_feature` variable, whose options are the first DISTRIBUTION_PANELS features of the
 * Feature selection (by name). Repeated over `feature` itself, All drew one panel per feature, each
 * a scan of the range's predictions: 300 of them at 50 s each over 30 days (found by a review).
 */
export const DISTRIBUTION_PANELS = 12;

/**
 * The dropdowns' queries (re-run on every change of the time range, `refresh: 2`) read the range
 * only: without a time predicate each read the whole table, 9.5 M rows for `model` and every row
 * of the model for `version` and `feature` whatever the range (found by a review). A model,
 * version or feature with no window in the range is not offered.
 */
export const variableSql = {
  model: `SELECT DISTINCT model FROM ${T('drift_windows')} WHERE $__timeFilter(window_start) ORDER BY model`,
  version: `SELECT DISTINCT version FROM ${T('drift_windows')}
WHERE $__timeFilter(window_start) AND model = ${MODEL} ORDER BY version`,
  feature: `SELECT DISTINCT feature FROM ${T('drift_windows')}
WHERE $__timeFilter(window_start) AND model = ${MODEL} AND ${INPUT_FEATURE} ORDER BY feature`,
  distributionFeature: `SELECT DISTINCT feature FROM ${T('drift_windows')}
WHERE $__timeFilter(window_start) AND model = ${MODEL} AND ${INPUT_FEATURE} AND ${inSelection('feature', 'feature')}
ORDER BY feature
LIMIT ${DISTRIBUTION_PANELS}`,
  perfModel: `SELECT DISTINCT model FROM ${T('performance_windows')} WHERE $__timeFilter(window_start) ORDER BY model`,
  perfVersion: `SELECT DISTINCT model_version FROM ${T('performance_windows')}
WHERE $__timeFilter(window_start) AND model = ${MODEL} ORDER BY model_version`,
} as const;

/**
 * A window's length, so that windows of two lengths starting at one time (DRIFTLINE_DRIFT_WINDOW
 * changed; both kept since 0730) stay two points when the panels fold windows into intervals.
 */
const WINDOW_LENGTH = 'toUnixTimestamp64Milli(window_end) - toUnixTimestamp64Milli(window_start)';

/**
 * The panel's interval (Grafana's `$__timeInterval`: the range over the panel's width in points):
 * the per-window panels fold the windows of an interval into one point, so a panel returns about
 * as many rows per series as it has points, whatever the number of windows — every window of every
 * feature was 2.6 M rows for one PSI panel over 30 days of 5-minute windows of 300 features (found
 * by a review). An interval shorter than a window leaves every window its own point.
 */
const INTERVAL = '$__timeInterval(window_start)';

/**
 * A drift query whose series are one per `label` (a feature, an output measure) over time: one
 * line following the version measured alone in each window; in a window of two or more versions
 * (a canary, a shadow; the drift monitor writes a row per version, each against its own reference)
 * the one measured first in the range (then the smaller name) stays on that line and the others'
 * rows are `label · version`, each with its own values. Labelling every row of the range by
 * version once any one window held two (`max(versions) OVER () > 1`) cut each feature's line into
 * one series per version: 12 daily versions with an hour's canary each were 240 day-long series
 * of 20 features. `inner` selects `time`, `version`, the label's columns and `value` AS `alias`.
 */
function perVersionWhereOverlapping(label: string, as: string, alias: string, inner: string): string {
  return `SELECT time, if(version = main, ${label}, concat(${label}, ' · ', version)) AS ${as}, ${alias}
FROM (
  SELECT *, argMin(version, tuple(since, version)) OVER (PARTITION BY time) AS main
  FROM (
    SELECT *, min(time) OVER (PARTITION BY version) AS since
    FROM (
${inner}
    )
  )
)
ORDER BY time, ${as}`;
}

/**
 * Per-feature statistic of one method over time (long format: one series per feature, per version
 * where they overlap), one point per panel interval ({@link INTERVAL}): the worst window of the
 * interval, the largest statistic or the smallest p-value (of the windows with one), so a drifted
 * window is never averaged away.
 */
export function driftStatisticSql(method: string, column: 'statistic' | 'p_value', alias: string): string {
  const worst = column === 'p_value' ? 'min' : 'max';
  return perVersionWhereOverlapping(
    'feature',
    'series',
    alias,
    `      SELECT ${INTERVAL} AS time, feature, version, ${worst}(${column}) AS ${alias}
      FROM ${T('drift_windows')} FINAL
      WHERE ${DRIFT_FILTER}
        AND ${INPUT_FEATURE}
        AND ${inSelection('feature', 'feature')}
        AND method = '${method}'
      GROUP BY time, feature, version${column === 'p_value' ? `\n      HAVING ${alias} IS NOT NULL` : ''}`,
  );
}

/** The threshold the rows were judged against, as its own series (it may change with config); per panel interval. */
export function driftThresholdSql(method: string, alias: string): string {
  return `SELECT ${INTERVAL} AS time, max(threshold) AS ${alias}
FROM ${T('drift_windows')} FINAL
WHERE ${DRIFT_FILTER}
  AND method = '${method}'
GROUP BY time
ORDER BY time`;
}

/**
 * The `min_events` dashboard constant as a number: the fewest events of a window (per version) the
 * share of drifted features counts. Its default is the drift monitor's DRIFTLINE_DRIFT_ALERT_MIN_EVENTS
 * default (a test reads it from services/drift-monitor/src/config.ts), below which no drift alert is
 * raised: on a few events PSI is noise (8.28 for one event against the 0.2 threshold).
 */
export const MIN_EVENTS_DEFAULT = 100;
const MIN_EVENTS = `toUInt64(${variableValue('min_events')})`;

/**
 * Per window and version, the share of its input features whose PSI row says drifted and how many:
 * a version measured beside another (canary, shadow) is its own series, each over its own features
 * (counted once however many references a version has in the window). Windows of a version with
 * fewer than `min_events` events are left out, as the drift monitor's alerts leave them out
 * (`events` is the version's count in the window, the one its alert gate reads): a window of one
 * event read as drifted on every feature (found by a review). A window is its start and end: two
 * windows of different lengths starting at the same time (DRIFTLINE_DRIFT_WINDOW changed; both kept
 * since 0730) are two points at that time, never one figure over both. One point per panel interval
 * ({@link INTERVAL}) and window length: the largest share (and count) of its windows.
 */
export const shareDriftedSql = `SELECT time, version,
  max(window_share) AS share_drifted,
  max(window_drifted) AS drifted_features
FROM (
  SELECT ${INTERVAL} AS time, ${WINDOW_LENGTH} AS length, window_start, version,
    uniqExactIf(feature, drifted = 1) / uniqExact(feature) AS window_share,
    uniqExactIf(feature, drifted = 1) AS window_drifted
  FROM ${T('drift_windows')} FINAL
  WHERE ${DRIFT_FILTER}
    AND method = 'psi'
    AND ${INPUT_FEATURE}
    AND events >= ${MIN_EVENTS}
  GROUP BY time, length, window_start, version
)
GROUP BY time, length, version
ORDER BY time, length, version`;

/**
 * The methods that measure a feature. The drift monitor also writes a `__window__` / `late_only`
 * row (libs/drift LATE_ONLY_METHOD) for a window with late events and no event on time: it carries
 * `late_events` and measures nothing, so the events panel reads it and the others leave it out.
 */
const MEASURED_METHODS = `method IN ('psi', 'ks', 'chi2', 'jensen_shannon', 'missing_rate', 'out_of_range')`;

/**
 * Every row of the latest window with a measurement. The latest window is taken over measured rows
 * too: a model whose newest window had late events only (its late-only row alone) showed an empty
 * table (found by a review). The latest is the one of the latest start, of two starting then (window
 * lengths changed, DRIFTLINE_DRIFT_WINDOW) the one ending last: one window's rows, never two mixed.
 */
export const latestDriftTableSql = `SELECT feature, method, version, window_start, statistic, p_value, threshold, drifted, current_size, late_events
FROM ${T('drift_windows')} FINAL
WHERE ${DRIFT_FILTER}
  AND ${MEASURED_METHODS}
  AND (window_start, window_end) = (
    SELECT max((window_start, window_end)) FROM ${T('drift_windows')}
    WHERE ${DRIFT_FILTER}
      AND ${MEASURED_METHODS}
  )
ORDER BY drifted DESC, feature, method`;

/** Drift of the model's outputs per measure (`feature method`), per version where versions overlap. */
export const predictionDriftSql = perVersionWhereOverlapping(
  'output_method',
  'measure',
  'statistic',
  `      SELECT ${INTERVAL} AS time, concat(feature, ' ', method) AS output_method, version, max(statistic) AS statistic
      FROM ${T('drift_windows')} FINAL
      WHERE ${DRIFT_FILTER}
        AND feature IN ${sqlNames(PREDICTION_FEATURES)}
        AND method IN ('psi', 'ks', 'jensen_shannon')
      GROUP BY time, output_method, version`,
);

/**
 * Events and late events per window, summed over the selected versions (a canary's beside
 * production's). A (version, window) repeats its counts on every row (per reference, feature and
 * method), so each version's are taken once (their max) and then summed: the max over every row
 * showed the largest version's count, 300 for a window of 300 + 100 (found by a review). Rows of one
 * (version, window) on two references are two answers for the same events (libs/drift
 * `measuredPart`), so their max, not their sum. A late-only row counts too (its late events are on no
 * other row). Two windows of different lengths starting at the same time (DRIFTLINE_DRIFT_WINDOW
 * changed; both kept since 0730) count the same events twice: two points at that time, never summed.
 * One point per panel interval ({@link INTERVAL}) and window length: the mean per window of its
 * windows (a window's own counts when the interval is no longer than a window).
 */
export const eventsPerWindowSql = `SELECT time, avg(window_events) AS events, avg(window_late_events) AS late_events
FROM (
  SELECT time, length, window_start, sum(version_events) AS window_events, sum(version_late_events) AS window_late_events
  FROM (
    SELECT ${INTERVAL} AS time, ${WINDOW_LENGTH} AS length, window_start, version,
      max(events) AS version_events, max(late_events) AS version_late_events
    FROM ${T('drift_windows')} FINAL
    WHERE ${DRIFT_FILTER}
    GROUP BY time, length, window_start, version
  )
  GROUP BY time, length, window_start
)
GROUP BY time, length
ORDER BY time, length`;

/**
 * Reference vs current shares of one feature on the latest reference profile of the model: numeric
 * profiles on their coarse, right-closed bins (bin = number of edges below the value), categorical
 * ones per reference category plus "other". A boolean is the category its profile spells it as, as the
 * drift monitor keys it (libs/drift `booleanSpellingOf`): `True` / `False` for a profile built from a
 * pandas CSV before booleans were canonical (`True` or `False` among its categories, neither `true`
 * nor `false`), else `true` / `false` (JSON's own spelling). Current values are the predictions of the reference's
 * version in the range that were joined to a label or expired unlabeled (where the label-joiner
 * keeps prediction features); `__prediction__` / `__predicted_class__` use the prediction columns.
 * The reference is the newest profile of the version of the latest measured window in the range
 * among the selected versions (as `driftline report` picks its current version), or of the selected
 * versions when the range has no window: the newest of any version was v2's after a rollback to v1,
 * and v1's predictions were left out (an empty current distribution; found by a review). A row's
 * features are parsed once (`JSONExtractRaw` of the feature, then its small value), only for rows
 * of the reference's version.
 */
export function distributionSql(featureExpr: string): string {
  const source = (table: string) => `SELECT
      model_version,
      if(${featureExpr} IN ${sqlNames(PREDICTION_FEATURES)}, '', JSONExtractRaw(features, ${featureExpr})) AS raw,
      JSONType(raw) AS raw_type,
      multiIf(
        ${featureExpr} = '__prediction__', prediction,
        ${featureExpr} = '__predicted_class__', toFloat64OrNull(predicted_class),
        raw_type IN ('Int64', 'UInt64', 'Double'), JSONExtractFloat(raw),
        raw_type = 'Bool', toFloat64(JSONExtractBool(raw)),
        NULL) AS num,
      multiIf(
        ${featureExpr} = '__prediction__', toString(prediction),
        ${featureExpr} = '__predicted_class__', predicted_class,
        raw_type = 'String', JSONExtractString(raw),
        raw_type IN ('Int64', 'UInt64', 'Double', 'Bool'), raw,
        NULL) AS str,
      raw_type = 'Bool' AS is_bool
    FROM ${T(table)} FINAL
    WHERE $__timeFilter(prediction_time)
      AND model = ${MODEL}
      AND model_version IN (SELECT ref_version FROM ref)`;
  return `WITH
(SELECT argMax(version, (window_start, window_end)) FROM ${T('drift_windows')}
  WHERE ${DRIFT_FILTER} AND method != 'late_only') AS window_version,
ref AS (
  SELECT
    version AS ref_version,
    kind AS ref_kind,
    JSONExtract(profile, 'coarseEdges', 'Array(Float64)') AS edges,
    JSONExtract(profile, 'categories', 'Array(String)') AS categories,
    if(kind = 'numeric',
       JSONExtract(profile, 'referenceShares', 'Array(Float64)'),
       JSONExtract(profile, 'shares', 'Array(Float64)')) AS reference_shares,
    hasAny(categories, ['True', 'False']) AND NOT hasAny(categories, ['true', 'false']) AS pandas_booleans
  FROM ${T('reference_profiles')} FINAL
  WHERE model = ${MODEL} AND feature = ${featureExpr}
    AND ${inSelection('version', 'version')}
    AND (window_version = '' OR version = window_version)
  ORDER BY created_at DESC
  LIMIT 1
),
vals AS (
  ${source('labeled_predictions')}
  UNION ALL
  ${source('unlabeled_predictions')}
),
cur AS (
  SELECT
    if(ref_kind = 'numeric',
       toUInt64(arrayCount(e -> e < num, edges)),
       toUInt64(if(indexOf(categories, category) = 0, length(categories), indexOf(categories, category) - 1))) AS bin,
    count() AS n
  FROM (
    SELECT num, ref_kind, edges, categories,
      if(is_bool AND pandas_booleans, if(str = 'true', 'True', 'False'), str) AS category
    FROM vals CROSS JOIN ref
    WHERE model_version = ref_version
      AND if(ref_kind = 'numeric', num IS NOT NULL AND isFinite(num), str IS NOT NULL)
  )
  GROUP BY bin
),
grid AS (
  SELECT
    arrayJoin(range(toUInt64(if(ref_kind = 'numeric', length(edges), length(categories)) + 1))) AS bin,
    ref_kind, edges, categories, reference_shares
  FROM ref
)
SELECT
  grid.bin AS bin,
  multiIf(
    ref_kind = 'categorical', if(grid.bin < length(categories), categories[grid.bin + 1], '${UNSEEN_VALUES}'),
    length(edges) = 0, 'all',
    grid.bin = 0, concat('<= ', toString(round(edges[1], 4))),
    grid.bin = length(edges), concat('> ', toString(round(edges[grid.bin], 4))),
    concat('(', toString(round(edges[grid.bin], 4)), ', ', toString(round(edges[grid.bin + 1], 4)), ']')) AS bucket,
  reference_shares[grid.bin + 1] AS reference,
  if(total.n = 0, 0, cur.n / total.n) AS current
FROM grid
LEFT JOIN cur ON grid.bin = cur.bin
CROSS JOIN (SELECT sum(n) AS n FROM cur) AS total
ORDER BY bin`;
}

const PERF_FILTER = `$__timeFilter(window_start)
  AND model = ${MODEL}
  AND ${inSelection('model_version', 'version')}
  AND segment_feature = ''`;

export function performanceSql(metrics: readonly string[]): string {
  return `SELECT window_start AS time, model_version, ${metrics.join(', ')}
FROM ${T('performance_windows')} FINAL
WHERE ${PERF_FILTER}
ORDER BY time, model_version`;
}

/** Business outcome of the decisions at the threshold, per window and version (labeled rows with a value). */
export const businessOutcomeSql = `SELECT window_start AS time, model_version,
  value_caught, value_missed, false_alarm_cost, business_net
FROM ${T('performance_windows')} FINAL
WHERE ${PERF_FILTER}
  AND business_net IS NOT NULL
ORDER BY time, model_version`;

/**
 * `sampled_labels` of a row (migration 0680: the labels its metrics were computed from when the
 * window held more than the label-joiner's DRIFTLINE_JOINER_MAX_WINDOW_ROWS and was read as a
 * sample; 0 when computed from all), read through the `COLUMNS` matcher: on a table before 0680 it
 * matches nothing and the expression is `coalesce(0)`, so the panels still run (naming the column
 * failed them with UNKNOWN_IDENTIFIER until the label-joiner of this release migrated the table).
 */
const SAMPLED_LABELS = `coalesce(COLUMNS('^sampled_labels\\\\z'), 0)`;

/**
 * Label coverage from which a window's realized metric may replace its CBPE estimate as the current
 * value: the label-joiner's DRIFTLINE_JOINER_REALIZED_COVERAGE default (test/dashboards.test.ts
 * reads it from libs/performance/src/realized-rule.ts). Part of {@link REALIZED_IS_CURRENT}.
 */
export const REALIZED_COVERAGE = 0.5;

/**
 * Valid labels a window's realized metric must have been computed from to replace the estimate:
 * the label-joiner's DRIFTLINE_JOINER_ALERT_MIN_SAMPLES default (test/dashboards.test.ts reads it
 * from libs/performance/src/realized-rule.ts). Part of {@link REALIZED_IS_CURRENT}.
 */
export const REALIZED_MIN_SAMPLES = 100;

/**
 * Whether a whole-window row's realized `metric` is its current value rather than its CBPE
 * estimate: the label-joiner's rule for which of the two its alerts judge (libs/performance
 * alerts.ts `realizedJudges`; libs/report estimates.ts `currentValue` applies the same), restated
 * in SQL with the defaults above — label coverage ≥ REALIZED_COVERAGE, at least
 * REALIZED_MIN_SAMPLES valid labels used (the sampled ones when the window was read as a sample,
 * else labeled − invalid_labels) and a finite realized value. On coverage alone, a window of 90
 * labels of 150 predictions showed the realized value while the alert judged the estimate.
 */
const REALIZED_IS_CURRENT = (metric: string) => `label_coverage >= ${REALIZED_COVERAGE}
    AND if(${SAMPLED_LABELS} > 0, ${SAMPLED_LABELS} >= ${REALIZED_MIN_SAMPLES}, labeled >= invalid_labels + ${REALIZED_MIN_SAMPLES})
    AND ${metric} IS NOT NULL AND isFinite(${metric})`;

/** CBPE (scores only) beside the realized ROC AUC, and the one to believe: realized once the alerts judge it. */
export const estimatedVsRealizedAucSql = `SELECT window_start AS time, model_version,
  estimated_roc_auc AS estimated,
  roc_auc AS realized,
  if(${REALIZED_IS_CURRENT('roc_auc')}, roc_auc, estimated_roc_auc) AS current
FROM ${T('performance_windows')} FINAL
WHERE ${PERF_FILTER}
  AND (estimated_roc_auc IS NOT NULL OR roc_auc IS NOT NULL)
ORDER BY time, model_version`;

/**
 * The windows in the range whose metrics (and business outcome) come from a sample: `sampled` of
 * their `labeled` labels (that count exact either way), the latest first.
 */
export const sampledWindowsSql = `SELECT window_start, model_version,
  ${SAMPLED_LABELS} AS sampled,
  labeled
FROM ${T('performance_windows')} FINAL
WHERE ${PERF_FILTER}
  AND sampled > 0
ORDER BY window_start DESC, model_version
LIMIT 200`;

export const labelCoverageSql = `SELECT window_start AS time, model_version, label_coverage
FROM ${T('performance_windows')} FINAL
WHERE ${PERF_FILTER}
  AND label_coverage IS NOT NULL
ORDER BY time, model_version`;

export const labelCountsSql = `SELECT window_start AS time, sum(labeled) AS labeled, sum(expired) AS expired, sum(pending) AS pending
FROM ${T('performance_windows')} FINAL
WHERE ${PERF_FILTER}
GROUP BY time
ORDER BY time`;

/**
 * A metric over a version's windows that have a finite value of it, weighted by their valid labels
 * (`labeled - invalid_labels`, those its metrics used: a window of 10 counts a hundredth of one of
 * 1,000), as the model card pools it: accuracy is
 * then the pooled value, RMSE the root of the weighted mean square (`squared`); ROC AUC and F1 have
 * no pooled form from windows, and their columns say "mean of windows".
 */
function labelWeighted(metric: string, alias: string, squared = false): string {
  const has = `${metric} IS NOT NULL AND isFinite(${metric})`;
  const term = squared ? `${metric} * ${metric}` : metric;
  const weight = '(labeled - invalid_labels)';
  const mean = `if(sumIf(${weight}, ${has}) = 0, NULL, sumIf(${term} * ${weight}, ${has}) / sumIf(${weight}, ${has}))`;
  return `${squared ? `sqrt(${mean})` : mean} AS ${alias}`;
}

/** `coverage`: of the valid labels, as each window's `label_coverage` (invalid labels cover nothing). */
export const versionSummarySql = `SELECT
  model_version,
  min(window_start) AS first_window,
  max(window_end) AS last_window,
  sum(predictions) AS total_predictions,
  sum(labeled) AS total_labeled,
  sum(expired) AS total_expired,
  if(total_labeled + total_expired = 0, NULL, (total_labeled - sum(invalid_labels)) / (total_labeled + total_expired)) AS coverage,
  countIf(${SAMPLED_LABELS} > 0) AS sampled_windows,
  ${labelWeighted('accuracy', 'pooled_accuracy')},
  ${labelWeighted('f1', 'f1_mean_of_windows')},
  ${labelWeighted('roc_auc', 'roc_auc_mean_of_windows')},
  ${labelWeighted('rmse', 'pooled_rmse', true)}
FROM ${T('performance_windows')} FINAL
WHERE ${PERF_FILTER}
GROUP BY model_version
ORDER BY first_window`;

/** Fired retrain decisions (holds are the policy doing its job and would flood the graph). */
export const retrainAnnotationSql = `SELECT
  decided_at AS time,
  concat('retrain ', model, ' ', model_version, ': ', reason, if(detail = '', '', concat(' - ', detail))) AS text,
  concat('retrain,', reason) AS tags
FROM ${T('retrain_decisions')} FINAL
WHERE $__timeFilter(decided_at)
  AND model = ${MODEL}
  AND decision = 'fire'
ORDER BY time`;

/** One per trained version: PROMOTED or REJECTED, at its training time. */
export const modelVersionAnnotationSql = `SELECT
  registered_at AS time,
  concat(status, ' ', model, ' ', version, if(promotion_reason = '', '', concat(': ', promotion_reason))) AS text,
  concat('model,', lower(status)) AS tags
FROM ${T('model_versions')} FINAL
WHERE $__timeFilter(registered_at)
  AND model = ${MODEL}
ORDER BY time`;

export const retrainTableSql = `SELECT decided_at, model_version, decision, reason, detail, request_id
FROM ${T('retrain_decisions')} FINAL
WHERE $__timeFilter(decided_at)
  AND model = ${MODEL}
ORDER BY decided_at DESC
LIMIT 200`;

const SKEW_TABLES = `merge(\${database}, '^skew_windows(_v2)?\\\\z')`;
const SKEW_SELECTION = `$__timeFilter(window_start)
  AND model = ${MODEL}
  AND ${inSelection('model_version', 'version')}`;
const SKEW_WINDOW_MS = 'toUnixTimestamp64Milli(window_end) - toUnixTimestamp64Milli(window_start)';

/**
 * The skew rows of the selection, of every source partition and log: `skew_windows` (a partition's
 * first log, 0620) and `skew_windows_v2` (its later logs, 0670) read through `merge()` over their
 * names, so the panels also work on a database no service of this release has migrated yet (no
 * `skew_windows_v2`: naming it failed every skew panel with UNKNOWN_TABLE until then). FINAL applies
 * to each table with its own key, and epochs never share a row: the sum over both is the window's.
 * After a change of the window length (the skew-monitor's DRIFTLINE_SKEW_WINDOW), as the report:
 * every window of the latest length (the latest window's), and of other lengths only the windows
 * starting before the latest length's first one in the range — windows of two lengths starting at
 * one time were added up (a review), and reading the latest length alone hid all history before the
 * change (one new window left 1 of 12; a review). The lengths are read from the selection's rows
 * without FINAL (three columns). The regular expression ends in `\z`, not `$` (see {@link inSelection}).
 */
const SKEW_ROWS = `(WITH (SELECT argMax((len, first), last) FROM (
      SELECT ${SKEW_WINDOW_MS} AS len, min(window_start) AS first, max((window_start, updated_at)) AS last
      FROM ${SKEW_TABLES} WHERE ${SKEW_SELECTION} GROUP BY len)) AS latest
  SELECT * FROM ${SKEW_TABLES} FINAL
  WHERE ${SKEW_SELECTION}
  AND (${SKEW_WINDOW_MS} = latest.1 OR window_start < latest.2))`;

/**
 * A staleness quantile (ms) from the merged histogram `hist` (total `total`): the upper bound of
 * the bucket holding it (STALENESS_BOUNDS_MS of @driftline/skew; NULL when empty or in the overflow).
 */
function stalenessQuantileSql(q: number, alias: string): string {
  return `if(total = 0, NULL, arrayElement(CAST([${STALENESS_BOUNDS_MS.join(', ')}] AS Array(Nullable(Float64))),
    arrayFirstIndex(c -> c >= ceil(${q} * total), arrayCumSum(hist)))) AS ${alias}`;
}

/** Share of sampled feature values that differ from the online store's row as of the prediction, per feature. */
export const skewShareSql = `SELECT window_start AS time, feature, sum(mismatched) / sum(compared) AS share_mismatched
FROM ${SKEW_ROWS}
GROUP BY time, feature
HAVING sum(compared) > 0
ORDER BY time, feature`;

/** p99 of prediction time − row time of the compared values, per feature (partitions' histograms summed). */
export const skewStalenessSql = `SELECT time, feature, ${stalenessQuantileSql(0.99, 'staleness_p99_ms')}
FROM (
  SELECT window_start AS time, feature, sumForEach(staleness_hist) AS hist, arraySum(hist) AS total
  FROM ${SKEW_ROWS}
  GROUP BY time, feature
)
WHERE total > 0
ORDER BY time, feature`;

/**
 * `expired` of a skew row (migration 0690: sampled values whose online row was absent when read while
 * the prediction was already older than the view's TTL), read through the `COLUMNS` matcher: on
 * tables before 0690 it matches nothing and the expression is `coalesce(0)`, so the panel still runs
 * on a database no service of this release has migrated (as {@link SAMPLED_LABELS}).
 */
const SKEW_EXPIRED = `coalesce(COLUMNS('^expired\\\\z'), 0)`;

/**
 * Every feature over the range: counts, share mismatched, mean |served − stored|, the outcomes that
 * were not compared (missing in store / in prediction, newer row, expired), staleness p50/p99.
 */
export const skewTableSql = `SELECT feature, version, sampled, compared,
  if(compared = 0, NULL, mismatched / compared) AS share_mismatched,
  if(numeric = 0, NULL, diff / numeric) AS mean_abs_diff,
  missing_in_store, missing_in_prediction, newer_row, expired,
  ${stalenessQuantileSql(0.5, 'staleness_p50_ms')},
  ${stalenessQuantileSql(0.99, 'staleness_p99_ms')}
FROM (
  SELECT feature, model_version AS version, sum(sampled) AS sampled, sum(compared) AS compared,
    sum(mismatched) AS mismatched, sum(numeric_compared) AS numeric, sum(abs_diff_sum) AS diff,
    sum(missing_in_store) AS missing_in_store, sum(missing_in_prediction) AS missing_in_prediction,
    sum(newer_row) AS newer_row, sum(${SKEW_EXPIRED}) AS expired,
    sumForEach(staleness_hist) AS hist, arraySum(hist) AS total
  FROM ${SKEW_ROWS}
  GROUP BY feature, version
)
ORDER BY share_mismatched DESC, feature, version`;

/** Data-quality shares per window (drift-monitor): the worst of the version(s) per feature · expectation. */
export const qualityShareSql = `SELECT window_start AS time, concat(feature, ' · ', expectation) AS series, max(observed) AS observed
FROM ${T('data_quality_windows')} FINAL
WHERE ${DRIFT_FILTER}
  AND expectation IN ('type', 'null_rate', 'range', 'categories')
GROUP BY time, series
ORDER BY time, series`;

/** Every expectation that failed in the range: how often, the worst observed value and its bound. */
export const qualityFailedSql = `SELECT feature, expectation, version, countIf(passed = 0) AS windows_failed, count() AS windows,
  max(observed) AS worst_observed, any(bound) AS bound, max(window_start) AS last_window
FROM ${T('data_quality_windows')} FINAL
WHERE ${DRIFT_FILTER}
GROUP BY feature, expectation, version
HAVING windows_failed > 0
ORDER BY windows_failed DESC, feature, expectation, version`;

/** Freshness per feature view (feature-materializer): the largest lag over the source partitions. */
export const freshnessLagSql = `SELECT window_start AS time, feature AS view, max(observed) AS lag_ms
FROM ${T('data_quality_windows')} FINAL
WHERE $__timeFilter(window_start) AND model = '' AND expectation = 'freshness'
GROUP BY time, view
ORDER BY time, view`;
