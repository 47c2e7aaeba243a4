import type { ClickHouse } from '../client.js';
import { keyRebuild } from '../key-rebuild.js';
import type { Migration } from '../migrate.js';

const DATA_QUALITY_WINDOWS = 'data_quality_windows';
/** The sorting key (`window_end` since 0730). */
const KEY = ['model', 'version', 'feature', 'expectation', 'scope', 'window_start', 'window_end'];

/** How long data-quality rows live, counted from their write (`written_at`): 400 days, as drift_windows. */
export const DATA_QUALITY_TTL_DAYS = 400;

/**
 * `data_quality_windows`: one row per (model, version, feature, expectation, scope, window — its
 * start and end).
 * - drift-monitor (merge stage): expectations of prediction features per event-time window,
 *   `scope` = ''; expectation `type`, `null_rate`, `range`, `categories` or `cardinality`.
 * - feature-materializer: freshness per feature view and processing-time window, `model` and
 *   `version` = '', `feature` = the view, expectation `freshness`, `scope` = `<topic>/<partition>`
 *   (each partition's owner reports its own; a view's lag is the max over scopes).
 * ReplacingMergeTree(computed_at): a replay rewrites the same key, so `FINAL` sees each row once.
 * `window_end` is in the key since 0730: a window of another length (DRIFTLINE_DRIFT_WINDOW or the
 * materializer's DRIFTLINE_FRESHNESS_WINDOW changed) starting at the same time is another row (tables created
 * before are rebuilt by 0730, window-end-keys.ts).
 */
export const dataQualityWindowsMigration: Migration = {
  id: '0600_data_quality_windows',
  statements: [dataQualityWindowsTable(DATA_QUALITY_WINDOWS)],
};

/** `data_quality_windows`' rebuild under the key with `window_end` (0730). */
export const DATA_QUALITY_WINDOWS_REBUILD = keyRebuild('0730', DATA_QUALITY_WINDOWS, KEY, 'computed_at', {
  ddl: (name) => [dataQualityWindowsTable(name)],
  columns: `model, version, feature, expectation, scope, window_start, window_end, observed, bound, passed, count,
    events, detail, expectations_id, computed_at, written_at`,
});

/** `data_quality_windows` under the name `name`. */
function dataQualityWindowsTable(name: string): string {
  return `CREATE TABLE IF NOT EXISTS {db}.${name} (
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
    ORDER BY (${KEY.join(', ')})
    TTL written_at + INTERVAL ${DATA_QUALITY_TTL_DAYS} DAY`;
}

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
    return rows.length === 0 ? Promise.resolve() : this.ch.insert(DATA_QUALITY_WINDOWS, rows);
  }
}
