/**
 * The SQL of every ClickHouse panel, variable and annotation. Tables are qualified with the hidden
 * `${database}` constant (default `driftline`), so a deployment with another
 * DRIFTLINE_CLICKHOUSE_DATABASE changes one variable, and tests point the same SQL at their own
 * database. Values are inserted with `:sqlstring` (quoted, `'` doubled), never raw.
 */

const T = (table: string) => `\${database}.${table}`;

const DRIFT_FILTER = `$__timeFilter(window_start)
  AND model = \${model:sqlstring}
  AND version IN (\${version:sqlstring})`;

export const variableSql = {
  model: `SELECT DISTINCT model FROM ${T('drift_windows')} ORDER BY model`,
  version: `SELECT DISTINCT version FROM ${T('drift_windows')} WHERE model = \${model:sqlstring} ORDER BY version`,
  feature: `SELECT DISTINCT feature FROM ${T('drift_windows')}
WHERE model = \${model:sqlstring} AND NOT startsWith(feature, '__') ORDER BY feature`,
  perfModel: `SELECT DISTINCT model FROM ${T('performance_windows')} ORDER BY model`,
  perfVersion: `SELECT DISTINCT model_version FROM ${T('performance_windows')} WHERE model = \${model:sqlstring} ORDER BY model_version`,
} as const;

/** Per-feature statistic of one method over time (long format: one series per feature). */
export function driftStatisticSql(method: string, column: 'statistic' | 'p_value', alias: string): string {
  return `SELECT window_start AS time, feature, ${column} AS ${alias}
FROM ${T('drift_windows')} FINAL
WHERE ${DRIFT_FILTER}
  AND feature IN (\${feature:sqlstring})
  AND method = '${method}'${column === 'p_value' ? '\n  AND p_value IS NOT NULL' : ''}
ORDER BY time, feature`;
}

/** The threshold the rows were judged against, as its own series (it may change with config). */
export function driftThresholdSql(method: string, alias: string): string {
  return `SELECT window_start AS time, max(threshold) AS ${alias}
FROM ${T('drift_windows')} FINAL
WHERE ${DRIFT_FILTER}
  AND method = '${method}'
GROUP BY time
ORDER BY time`;
}

export const shareDriftedSql = `SELECT window_start AS time, avg(drifted) AS share_drifted, countIf(drifted = 1) AS drifted_features
FROM ${T('drift_windows')} FINAL
WHERE ${DRIFT_FILTER}
  AND method = 'psi'
  AND NOT startsWith(feature, '__')
GROUP BY time
ORDER BY time`;

export const latestDriftTableSql = `SELECT feature, method, version, window_start, statistic, p_value, threshold, drifted, current_size, late_events
FROM ${T('drift_windows')} FINAL
WHERE ${DRIFT_FILTER}
  AND method IN ('psi', 'ks', 'chi2', 'jensen_shannon', 'missing_rate', 'out_of_range')
  AND window_start = (
    SELECT max(window_start) FROM ${T('drift_windows')}
    WHERE ${DRIFT_FILTER}
  )
ORDER BY drifted DESC, feature, method`;

export const predictionDriftSql = `SELECT window_start AS time, concat(feature, ' ', method) AS measure, statistic
FROM ${T('drift_windows')} FINAL
WHERE ${DRIFT_FILTER}
  AND startsWith(feature, '__')
  AND method IN ('psi', 'ks', 'jensen_shannon')
ORDER BY time, measure`;

export const eventsPerWindowSql = `SELECT window_start AS time, max(events) AS events, max(late_events) AS late_events
FROM ${T('drift_windows')} FINAL
WHERE ${DRIFT_FILTER}
GROUP BY time
ORDER BY time`;

/**
 * Reference vs current shares of one feature on the latest reference profile of the model: numeric
 * profiles on their coarse, right-closed bins (bin = number of edges below the value), categorical
 * ones per reference category plus "other". Current values are the predictions of the reference's
 * version in the range that were joined to a label or expired unlabeled (where the label-joiner
 * keeps prediction features); `__prediction__` / `__predicted_class__` use the prediction columns.
 */
export function distributionSql(featureExpr: string): string {
  const source = (table: string) => `SELECT
      model_version,
      multiIf(
        ${featureExpr} = '__prediction__', prediction,
        ${featureExpr} = '__predicted_class__', toFloat64OrNull(predicted_class),
        JSONType(features, ${featureExpr}) IN ('Int64', 'UInt64', 'Double'), JSONExtractFloat(features, ${featureExpr}),
        JSONType(features, ${featureExpr}) = 'Bool', toFloat64(JSONExtractBool(features, ${featureExpr})),
        NULL) AS num,
      multiIf(
        ${featureExpr} = '__prediction__', toString(prediction),
        ${featureExpr} = '__predicted_class__', predicted_class,
        JSONType(features, ${featureExpr}) = 'String', JSONExtractString(features, ${featureExpr}),
        JSONType(features, ${featureExpr}) IN ('Int64', 'UInt64', 'Double', 'Bool'), JSONExtractRaw(features, ${featureExpr}),
        NULL) AS str
    FROM ${T(table)} FINAL
    WHERE $__timeFilter(prediction_time)
      AND model = \${model:sqlstring}`;
  return `WITH
ref AS (
  SELECT
    version AS ref_version,
    kind AS ref_kind,
    JSONExtract(profile, 'coarseEdges', 'Array(Float64)') AS edges,
    JSONExtract(profile, 'categories', 'Array(String)') AS categories,
    if(kind = 'numeric',
       JSONExtract(profile, 'referenceShares', 'Array(Float64)'),
       JSONExtract(profile, 'shares', 'Array(Float64)')) AS reference_shares
  FROM ${T('reference_profiles')} FINAL
  WHERE model = \${model:sqlstring} AND feature = ${featureExpr}
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
       toUInt64(if(indexOf(categories, str) = 0, length(categories), indexOf(categories, str) - 1))) AS bin,
    count() AS n
  FROM vals CROSS JOIN ref
  WHERE model_version = ref_version
    AND if(ref_kind = 'numeric', num IS NOT NULL AND isFinite(num), str IS NOT NULL)
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
    ref_kind = 'categorical', if(grid.bin < length(categories), categories[grid.bin + 1], 'other'),
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
  AND model = \${model:sqlstring}
  AND model_version IN (\${version:sqlstring})
  AND segment_feature = ''`;

export function performanceSql(metrics: readonly string[]): string {
  return `SELECT window_start AS time, model_version, ${metrics.join(', ')}
FROM ${T('performance_windows')} FINAL
WHERE ${PERF_FILTER}
ORDER BY time, model_version`;
}

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

export const versionSummarySql = `SELECT
  model_version,
  min(window_start) AS first_window,
  max(window_end) AS last_window,
  sum(predictions) AS total_predictions,
  sum(labeled) AS total_labeled,
  sum(expired) AS total_expired,
  if(total_labeled + total_expired = 0, NULL, total_labeled / (total_labeled + total_expired)) AS coverage,
  avg(accuracy) AS avg_accuracy,
  avg(f1) AS avg_f1,
  avg(roc_auc) AS avg_roc_auc,
  avg(rmse) AS avg_rmse
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
  AND model = \${model:sqlstring}
  AND decision = 'fire'
ORDER BY time`;

/** One per trained version: PROMOTED or REJECTED, at its training time. */
export const modelVersionAnnotationSql = `SELECT
  registered_at AS time,
  concat(status, ' ', model, ' ', version, if(promotion_reason = '', '', concat(': ', promotion_reason))) AS text,
  concat('model,', lower(status)) AS tags
FROM ${T('model_versions')} FINAL
WHERE $__timeFilter(registered_at)
  AND model = \${model:sqlstring}
ORDER BY time`;

export const retrainTableSql = `SELECT decided_at, model_version, decision, reason, detail, request_id
FROM ${T('retrain_decisions')} FINAL
WHERE $__timeFilter(decided_at)
  AND model = \${model:sqlstring}
ORDER BY decided_at DESC
LIMIT 200`;
