import type { Migration } from '@driftline/clickhouse';

/**
 * ClickHouse DDL of the retrain-trigger (ids 0300–0349).
 *
 * `retrain_decisions`: one row per (model, alert_id) — every alert's decision, fired or held and
 * why, with the model's policy state after it (`state`, ordered by `seq`) so a restarted or new
 * owner rebuilds its state with one query. A replayed alert writes the same key: a first sighting
 * (`first = 1`) outranks a later duplicate sighting (`first = 0`) in the ReplacingMergeTree.
 */
export const retrainTriggerMigrations: readonly Migration[] = [
  {
    id: '0300_retrain_decisions',
    statements: [
      `CREATE TABLE IF NOT EXISTS {db}.retrain_decisions (
        model LowCardinality(String),
        alert_id String,
        alert_kind LowCardinality(String),
        model_version LowCardinality(String),
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        alert_time DateTime64(3, 'UTC'),
        decision LowCardinality(String) COMMENT 'fire or hold',
        fired UInt8 COMMENT '1 when a retrain request was emitted',
        reason LowCardinality(String) COMMENT 'fire, or why it held: duplicate, no_signal, sustaining, cooldown, ...',
        detail String,
        signals Array(String),
        streak UInt32,
        request_id Nullable(String),
        data_from Nullable(DateTime64(3, 'UTC')),
        data_to Nullable(DateTime64(3, 'UTC')),
        seq UInt64,
        first UInt8,
        state String COMMENT 'JSON: the model policy state after this decision',
        decided_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(first)
      ORDER BY (model, alert_id)`,
    ],
  },
];
