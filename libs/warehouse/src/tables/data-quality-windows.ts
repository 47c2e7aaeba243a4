import type { ClickHouse } from '../client.js';
import type { Migration } from '../migrate.js';

/** How long data-quality rows live, counted from their write (`written_at`): 400 days, as drift_windows. */
export const DATA_QUALITY_TTL_DAYS = 400;

/**
 * `data_quality_windows`: one row per (model, version, feature, expectation, scope, window).
 * - drift-monitor (merge stage): expectations of prediction features per event-time window,
 *   `scope` = ''; expectation `type`, `null_rate`, `range`, `categories` or `cardinality`.
 * - feature-materializer: freshness per feature view and processing-time window, `model` and
 *   `version` = '', `feature` = the view, expectation `freshness`, `scope` = `<topic>/<partition>`
 *   (each partition's owner reports its own; a view's lag is the max over scopes).
 * ReplacingMergeTree(computed_at): a replay rewrites the same key, so `FINAL` sees each row once.
 */
export const dataQualityWindowsMigration: Migration = {
  id: '0600_data_quality_windows',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.data_quality_windows (
      model LowCardinality(String),
      version LowCardinality(String),
      feature String COMMENT 'prediction feature, or the feature view (freshness)',
      expectation LowCardinality(String) COMMENT 'type, null_rate, range, categories, cardinality, freshness',
      scope String COMMENT '\\'\\' (drift-monitor) or <topic>/<partition> (freshness)',
      window_start DateTime64(3, 'UTC'),
      window_end DateTime64(3, 'UTC'),
      observed Float64 COMMENT 'share, estimated distinct values, or lag in ms (freshness)',
      bound Float64 COMMENT 'largest observed value that passes',
      passed UInt8,
      count UInt64 COMMENT 'denominator of the share (values counted)',
      events UInt64 COMMENT 'events of the (model, version) or view in the window',
      detail String COMMENT 'JSON: expectation parameters and raw counts',
      expectations_id String COMMENT 'fingerprint of the expectation set the window was measured with',
      computed_at DateTime64(3, 'UTC'),
      written_at DateTime MATERIALIZED now() COMMENT 'when the row was written (retention clock)'
    ) ENGINE = ReplacingMergeTree(computed_at)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (model, version, feature, expectation, scope, window_start)
    TTL written_at + INTERVAL ${DATA_QUALITY_TTL_DAYS} DAY`,
  ],
};

/** A row of `data_quality_windows` (times as chTime text). */
export interface DataQualityRow {
  model: string;
  version: string;
  feature: string;
  expectation: string;
  scope: string;
  window_start: string;
  window_end: string;
  observed: number;
  bound: number;
  passed: 0 | 1;
  count: number;
  events: number;
  detail: string;
  expectations_id: string;
  computed_at: string;
}

export interface DataQualityStore {
  /** Idempotent: a replayed window rewrites the same key (newest computed_at wins). */
  insert(rows: readonly DataQualityRow[]): Promise<void>;
}

export class ClickHouseDataQualityStore implements DataQualityStore {
  constructor(private readonly ch: ClickHouse) {}

  insert(rows: readonly DataQualityRow[]): Promise<void> {
    return rows.length === 0 ? Promise.resolve() : this.ch.insert('data_quality_windows', rows);
  }
}
