import type { ClickHouse } from '../client.js';
import type { Migration } from '../migrate.js';

/** How long a quarantined window is kept (the table's TTL): 365 days. */
export const DRIFT_QUARANTINE_TTL_DAYS = 365;

/**
 * `drift_quarantine`: one row per (model, version, reference, window) whose drift the merge stage
 * could not compute or store (a non-retriable error) and set aside so the stream keeps moving.
 * The partials stay on the partials topic (retention permitting) for a replay after a fix.
 * A replay that quarantines the window again rewrites the same key (newest wins).
 */
export const driftQuarantineMigration: Migration = {
  id: '0103_drift_quarantine',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.drift_quarantine (
      model LowCardinality(String),
      version LowCardinality(String),
      reference_id String,
      window_start DateTime64(3, 'UTC'),
      window_end DateTime64(3, 'UTC'),
      events UInt64,
      late_events UInt64,
      source_partitions UInt32,
      idle_partitions UInt32,
      code LowCardinality(String) COMMENT 'the error code: SINK_REJECTED, VALIDATION_FAILED, ...',
      reason String COMMENT 'the error message (capped)',
      topic String COMMENT 'partials topic',
      partition UInt32 COMMENT 'partials partition that completed the window',
      quarantined_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(quarantined_at)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (model, version, reference_id, window_start)
    TTL toDateTime(quarantined_at) + INTERVAL ${DRIFT_QUARANTINE_TTL_DAYS} DAY`,
  ],
};

/** A row of `drift_quarantine` (times as chTime text). */
export interface DriftQuarantineRow {
  model: string;
  version: string;
  reference_id: string;
  window_start: string;
  window_end: string;
  events: number;
  late_events: number;
  source_partitions: number;
  idle_partitions: number;
  code: string;
  reason: string;
  topic: string;
  partition: number;
  quarantined_at: string;
}

export interface DriftQuarantineStore {
  /** Idempotent: a window quarantined again rewrites the same key. */
  insert(rows: readonly DriftQuarantineRow[]): Promise<void>;
}

export class ClickHouseDriftQuarantineStore implements DriftQuarantineStore {
  constructor(private readonly ch: ClickHouse) {}

  insert(rows: readonly DriftQuarantineRow[]): Promise<void> {
    return this.ch.insert('drift_quarantine', rows);
  }
}
