import type { ClickHouse } from '../client.js';
import type { Migration } from '../migrate.js';

export const driftWindowsMigration: Migration = {
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
   * The reference ids drift_windows holds rows of a (model, version, window start) on, sorted:
   * empty when none was written. The merge reads it so a window keeps the reference it was written on.
   */
  writtenReferences(model: string, version: string, windowStart: number): Promise<string[]>;
}

export class ClickHouseDriftWindowStore implements DriftWindowStore {
  constructor(private readonly ch: ClickHouse) {}

  insert(rows: readonly DriftWindowRow[]): Promise<void> {
    return this.ch.insert('drift_windows', rows);
  }

  async writtenReferences(model: string, version: string, windowStart: number): Promise<string[]> {
    // No FINAL: merging replaces rows of one key only and reference_id is in the key, so the set of
    // ids is the same before and after merges.
    const rows = await this.ch.select<{ reference_id: string }>(
      `SELECT DISTINCT reference_id FROM ${this.ch.table('drift_windows')}
       WHERE model = {model:String} AND version = {version:String}
         AND window_start = fromUnixTimestamp64Milli({start:Int64}, 'UTC')
       ORDER BY reference_id`,
      { model, version, start: windowStart },
    );
    return rows.map((r) => r.reference_id);
  }
}
