import type { ClickHouse } from '../client.js';
import { keyRebuild, rebuildUnderKey } from '../key-rebuild.js';
import type { Migration } from '../migrate.js';
import { RETENTION_DAYS, retentionOf } from './retention.js';

const DRIFT_WINDOWS = 'drift_windows';
/**
 * The sorting key since 0740: a model's rows by method, then by time. The dashboards' panels, their
 * dropdowns, the report and the merge's `writtenReferences` read a model over a time range (most
 * panels of one method): under 0730's key, time last, each read every row of the model in the
 * month's partition (a 6-hour PSI panel of a 300-feature model: 3.5 M rows read, 30,000 now). A
 * selection of one feature reads its method's rows of the range (no longer that feature's alone).
 * Every column of the row's identity is in it: ReplacingMergeTree replaces by the key.
 */
const KEY = ['model', 'method', 'window_start', 'window_end', 'version', 'reference_id', 'feature'];
/** The sorting key of 0730 (`window_end` in it; the time last): the key 0730 rebuilds under. */
const KEY_0730 = ['model', 'version', 'reference_id', 'feature', 'method', 'window_start', 'window_end'];

/**
 * `drift_windows` under the name `name`: one row per (model, version, reference, feature, method,
 * window — its start and end). `window_end` is in the key since 0730: a window of another length
 * (DRIFTLINE_DRIFT_WINDOW changed) starting at the same time is another row; sorted by time within
 * a model and method since 0740 (`key`, {@link KEY}; tables created before are rebuilt by 0730 and
 * 0740, window-end-keys.ts and below). TTL from 0500 (retention.ts).
 */
function driftWindowsTable(name: string, key: readonly string[] = KEY): string {
  return `CREATE TABLE IF NOT EXISTS {db}.${name} (
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
    ORDER BY (${key.join(', ')})`;
}

export const driftWindowsMigration: Migration = {
  id: '0101_drift_windows',
  statements: [driftWindowsTable(DRIFT_WINDOWS)],
};

/** What a rebuild of `drift_windows` under `key` copies: its DDL since 0500 and every column. */
const rebuildUnder = (key: readonly string[]) => ({
  ddl: (name: string) => [driftWindowsTable(name, key), ...retentionOf(name, RETENTION_DAYS.drift_windows)],
  columns: `model, version, reference_id, feature, window_start, window_end, method, statistic, p_value, threshold,
    drifted, reference_size, current_size, events, late_events, error_bound, source_partitions, idle_partitions,
    computed_at, written_at`,
});

/**
 * `drift_windows`' rebuild under 0730's key: only to finish one a build before 0740 began
 * (window-end-keys.ts); 0740 rebuilds a table of any earlier key.
 */
export const DRIFT_WINDOWS_WINDOW_END_REBUILD = keyRebuild(
  '0730',
  DRIFT_WINDOWS,
  KEY_0730,
  'computed_at',
  rebuildUnder(KEY_0730),
);

/** `drift_windows`' rebuild under its key sorted by time (0740). */
export const DRIFT_WINDOWS_REBUILD = keyRebuild('0740', DRIFT_WINDOWS, KEY, 'computed_at', rebuildUnder(KEY));

/**
 * 0740: `drift_windows` sorted by time within a model and method ({@link KEY}). A table of 0730's
 * key, or of the key before it (0730 leaves drift_windows to this migration: one copy instead of
 * two), is rebuilt ({@link rebuildUnderKey}: rows and `written_at` kept, bounded calls, resumable,
 * beside other processes migrating); a table created since has the key from 0101's DDL.
 */
export const driftWindowsTimeKeyMigration: Migration = {
  id: '0740_drift_windows_time_key',
  statements: [],
  apply: (ch) => rebuildUnderKey(ch, DRIFT_WINDOWS_REBUILD),
};

/** A row of `drift_windows` (times as chTime text). */
export interface DriftWindowRow {
  model: string;
  version: string;
  reference_id: string;
  feature: string;
  window_start: string;
  window_end: string;
  method: string;
  statistic: number;
  p_value: number | null;
  threshold: number;
  drifted: 0 | 1;
  reference_size: number;
  current_size: number;
  events: number;
  late_events: number;
  error_bound: number | null;
  source_partitions: number;
  idle_partitions: number;
  computed_at: string;
}

export interface DriftWindowStore {
  /** Idempotent: a replayed window rewrites the same key (newest computed_at wins). */
  insert(rows: readonly DriftWindowRow[]): Promise<void>;
  /**
   * The reference ids drift_windows holds rows of a (model, version, window) on, sorted: empty when
   * none was written. The merge reads it so a window keeps the reference it was written on. A window
   * is its start and end: a window of another length starting at the same time (DRIFTLINE_DRIFT_WINDOW
   * changed) is another window, whose reference is no constraint on this one.
   */
  writtenReferences(model: string, version: string, windowStart: number, windowEnd: number): Promise<string[]>;
}

export class ClickHouseDriftWindowStore implements DriftWindowStore {
  constructor(private readonly ch: ClickHouse) {}

  insert(rows: readonly DriftWindowRow[]): Promise<void> {
    return this.ch.insert(DRIFT_WINDOWS, rows);
  }

  async writtenReferences(model: string, version: string, windowStart: number, windowEnd: number): Promise<string[]> {
    // No FINAL: merging replaces rows of one key only and reference_id is in the key, so the set of
    // ids is the same before and after merges.
    const rows = await this.ch.select<{ reference_id: string }>(
      `SELECT DISTINCT reference_id FROM ${this.ch.table(DRIFT_WINDOWS)}
       WHERE model = {model:String} AND version = {version:String}
         AND window_start = fromUnixTimestamp64Milli({start:Int64}, 'UTC')
         AND window_end = fromUnixTimestamp64Milli({end:Int64}, 'UTC')
       ORDER BY reference_id`,
      { model, version, start: windowStart, end: windowEnd },
    );
    return rows.map((r) => r.reference_id);
  }
}
