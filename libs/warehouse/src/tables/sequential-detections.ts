import type { ClickHouse } from '../client.js';
import { keyRebuild } from '../key-rebuild.js';
import type { Migration } from '../migrate.js';

const SEQUENTIAL_DETECTIONS = 'sequential_detections';
/** The sorting key (`window_end` since 0730). */
const KEY = ['model', 'version', 'feature', 'window_start', 'window_end', 'source_topic', 'source_partition'];

/** How long a sequential detection is kept (the table's TTL, from the write): 400 days, as drift_windows. */
export const SEQUENTIAL_DETECTIONS_TTL_DAYS = 400;

/**
 * `sequential_detections` (drift-monitor stage one, the online sequential detector): one row per
 * alarm kept — at most one per (model, version, feature, source partition, drift window), the
 * first; later alarms of the same key are counted, not written. A replay that alarms again in the
 * same window rewrites the key (newest `detected_at` wins), so the table stays bounded by
 * features × partitions × windows, never by events. A window is its start and end (`window_end` in
 * the key since 0730): an alarm of a window of another length starting at the same time
 * (DRIFTLINE_DRIFT_WINDOW changed) is another row (tables created before are rebuilt by 0730).
 */
export const sequentialDetectionsMigration: Migration = {
  id: '0640_sequential_detections',
  statements: [sequentialDetectionsTable(SEQUENTIAL_DETECTIONS)],
};

/** `sequential_detections`' rebuild under the key with `window_end` (0730). */
export const SEQUENTIAL_DETECTIONS_REBUILD = keyRebuild('0730', SEQUENTIAL_DETECTIONS, KEY, 'detected_at', {
  ddl: (name) => [sequentialDetectionsTable(name)],
  columns: `model, version, reference_id, feature, source_topic, source_partition, window_start, window_end,
    event_time, source_offset, statistic_kind, statistic, threshold, t, run_length, window_size, check_every, ert,
    detected_at, written_at`,
});

/** `sequential_detections` under the name `name`. */
function sequentialDetectionsTable(name: string): string {
  return `CREATE TABLE IF NOT EXISTS {db}.${name} (
      model LowCardinality(String),
      version LowCardinality(String),
      reference_id String,
      feature LowCardinality(String),
      source_topic LowCardinality(String),
      source_partition UInt32,
      window_start DateTime64(3, 'UTC') COMMENT 'drift window (event time) of the alarming value',
      window_end DateTime64(3, 'UTC'),
      event_time DateTime64(3, 'UTC') COMMENT 'event time of the value that completed the alarming check',
      source_offset UInt64,
      statistic_kind LowCardinality(String) COMMENT 'cvm or ks',
      statistic Float64,
      threshold Float64 COMMENT 'calibrated threshold of this check',
      t UInt64 COMMENT 'values since the detector (re)started',
      run_length UInt64 COMMENT 't - window + 1: the run time the ERT is about',
      window_size UInt32,
      check_every UInt32,
      ert Float64 COMMENT 'configured expected run time between false alarms, in values',
      detected_at DateTime64(3, 'UTC'),
      written_at DateTime MATERIALIZED now() COMMENT 'when the row was written (retention clock)'
    ) ENGINE = ReplacingMergeTree(detected_at)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (${KEY.join(', ')})
    TTL written_at + INTERVAL ${SEQUENTIAL_DETECTIONS_TTL_DAYS} DAY`;
}

/** A row of `sequential_detections` (times as chTime text). */
export interface SequentialDetectionRow {
  model: string;
  version: string;
  reference_id: string;
  feature: string;
  source_topic: string;
  source_partition: number;
  window_start: string;
  window_end: string;
  event_time: string;
  source_offset: number;
  statistic_kind: string;
  statistic: number;
  threshold: number;
  t: number;
  run_length: number;
  window_size: number;
  check_every: number;
  ert: number;
  detected_at: string;
}

export interface SequentialDetectionStore {
  /** Idempotent: the same (model, version, feature, window, partition) again replaces the row. */
  insert(rows: readonly SequentialDetectionRow[]): Promise<void>;
  /** Deduplicated rows of a model (FINAL), oldest window first; at most `limit` (≤ 10,000). */
  list(model: string, limit?: number): Promise<SequentialDetectionRow[]>;
}

export class ClickHouseSequentialDetectionStore implements SequentialDetectionStore {
  constructor(private readonly ch: ClickHouse) {}

  insert(rows: readonly SequentialDetectionRow[]): Promise<void> {
    return rows.length === 0 ? Promise.resolve() : this.ch.insert(SEQUENTIAL_DETECTIONS, rows);
  }

  async list(model: string, limit = 1000): Promise<SequentialDetectionRow[]> {
    // UInt64 columns come back as text (JSON's 64-bit rule): numbers here.
    const rows = await this.ch.select<SequentialDetectionRow>(
      `SELECT * FROM ${this.ch.table('sequential_detections')} FINAL WHERE model = {model:String}
       ORDER BY window_start, feature, source_partition LIMIT {limit:UInt32}`,
      { model, limit: Math.min(Math.max(1, Math.floor(limit)), 10_000) },
    );
    return rows.map((r) => ({
      ...r,
      source_offset: Number(r.source_offset),
      t: Number(r.t),
      run_length: Number(r.run_length),
    }));
  }
}
