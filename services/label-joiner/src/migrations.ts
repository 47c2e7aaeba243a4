import type { Migration } from '@driftline/clickhouse';

/**
 * Tables of the label-joiner. All three are ReplacingMergeTree keyed so that a replay writes the
 * same key: joined and expired rows by prediction (time + id never change for a prediction),
 * performance rows by window and segment with `version` = when the recompute read its input
 * (newest wins: query with FINAL or argMax(…, version)).
 */
export const labelJoinerMigrations: readonly Migration[] = [
  {
    id: '0200_labeled_predictions',
    statements: [
      `CREATE TABLE IF NOT EXISTS {db}.labeled_predictions (
        model LowCardinality(String),
        model_version LowCardinality(String),
        prediction_id String,
        entity_id String,
        prediction_time DateTime64(3, 'UTC'),
        label_time DateTime64(3, 'UTC'),
        features String COMMENT 'JSON object: the features as they were at prediction time',
        prediction Float64,
        predicted_class Nullable(String),
        label Float64,
        joined_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree
      PARTITION BY toYYYYMM(prediction_time)
      ORDER BY (model, model_version, prediction_time, prediction_id)`,
      `CREATE TABLE IF NOT EXISTS {db}.unlabeled_predictions (
        model LowCardinality(String),
        model_version LowCardinality(String),
        prediction_id String,
        entity_id String,
        prediction_time DateTime64(3, 'UTC'),
        deadline DateTime64(3, 'UTC'),
        expired_at DateTime64(3, 'UTC'),
        features String,
        prediction Float64,
        predicted_class Nullable(String)
      ) ENGINE = ReplacingMergeTree
      PARTITION BY toYYYYMM(prediction_time)
      ORDER BY (model, model_version, prediction_time, prediction_id)`,
      `CREATE TABLE IF NOT EXISTS {db}.performance_windows (
        model LowCardinality(String),
        model_version LowCardinality(String),
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        segment_feature LowCardinality(String),
        segment String,
        task LowCardinality(String),
        predictions UInt64,
        labeled UInt64,
        expired UInt64,
        pending UInt64,
        label_coverage Nullable(Float64),
        invalid_labels UInt64,
        accuracy Nullable(Float64),
        precision Nullable(Float64),
        recall Nullable(Float64),
        f1 Nullable(Float64),
        roc_auc Nullable(Float64),
        log_loss Nullable(Float64),
        brier Nullable(Float64),
        mae Nullable(Float64),
        rmse Nullable(Float64),
        mape Nullable(Float64),
        threshold Float64,
        version UInt64,
        computed_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(version)
      ORDER BY (model, model_version, window_start, segment_feature, segment)`,
    ],
  },
];
