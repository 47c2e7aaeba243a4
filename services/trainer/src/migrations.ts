import type { Migration } from '@driftline/clickhouse';

/**
 * ClickHouse DDL of the trainer (ids 0350–0399).
 *
 * `model_versions`: one row per (model, version); the version is derived from the retrain request,
 * so a redelivered request rewrites the same key. `published` turns 1 once the model events are on
 * models.v1 (newest `updated_at` wins): a request whose row is published is done.
 */
export const trainerMigrations: readonly Migration[] = [
  {
    id: '0350_model_versions',
    statements: [
      `CREATE TABLE IF NOT EXISTS {db}.model_versions (
        model LowCardinality(String),
        version String,
        request_id String,
        base_version String COMMENT 'the version serving when the request was made',
        status LowCardinality(String) COMMENT 'PROMOTED or REJECTED',
        promotion_reason String,
        data_from DateTime64(3, 'UTC'),
        data_to DateTime64(3, 'UTC'),
        rows_train UInt64,
        rows_holdout UInt64,
        metrics Map(String, Float64) COMMENT 'held-out metrics of the candidate; current_* of the serving model on the same slice',
        params String,
        artifact_uri String,
        reference_id Nullable(String),
        reference_uri Nullable(String),
        device LowCardinality(String),
        device_reason String,
        published UInt8,
        registered_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(updated_at)
      ORDER BY (model, version)`,
    ],
  },
];
