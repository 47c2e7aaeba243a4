import type { Migration } from '@driftline/clickhouse';

/** ClickHouse DDL of drift-monitor (ids 0100–0199). */
export const driftMigrations: readonly Migration[] = [
  {
    id: '0100_reference_profiles',
    statements: [
      `CREATE TABLE IF NOT EXISTS {db}.reference_profiles (
        model String,
        version String,
        reference_id String,
        feature String,
        kind LowCardinality(String),
        profile String,
        created_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(created_at)
      ORDER BY (model, version, reference_id, feature)`,
    ],
  },
  {
    id: '0101_drift_windows',
    statements: [
      `CREATE TABLE IF NOT EXISTS {db}.drift_windows (
        model LowCardinality(String),
        version LowCardinality(String),
        reference_id String,
        feature LowCardinality(String),
        window_start DateTime64(3, 'UTC'),
        window_end DateTime64(3, 'UTC'),
        method LowCardinality(String),
        statistic Float64,
        p_value Nullable(Float64),
        threshold Float64,
        drifted UInt8,
        reference_size UInt64,
        current_size UInt64,
        events UInt64,
        late_events UInt64,
        error_bound Nullable(Float64),
        source_partitions UInt32,
        idle_partitions UInt32,
        computed_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(computed_at)
      PARTITION BY toYYYYMM(window_start)
      ORDER BY (model, version, reference_id, feature, method, window_start)`,
    ],
  },
  {
    id: '0102_drift_progress',
    statements: [
      // Per (stage, consumer group, topic, partition): how far the durable effects reach, so a new
      // owner of the partition neither re-emits nor re-completes what the previous one finished.
      `CREATE TABLE IF NOT EXISTS {db}.drift_progress (
        stage LowCardinality(String),
        group_id String,
        topic String,
        partition UInt32,
        position Int64,
        offset Int64,
        updated_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(position)
      ORDER BY (stage, group_id, topic, partition)`,
    ],
  },
];
