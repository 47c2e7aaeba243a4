import type { ClickHouse } from '../client.js';
import { keyRebuild } from '../key-rebuild.js';
import type { Migration } from '../migrate.js';

const DRIFT_QUARANTINE = 'drift_quarantine';
/** The sorting key (`window_end` since 0730). */
const KEY = ['model', 'version', 'reference_id', 'window_start', 'window_end'];

/** How long a quarantined window is kept (the table's TTL): 365 days. */
export const DRIFT_QUARANTINE_TTL_DAYS = 365;

/**
 * `drift_quarantine`: one row per (model, version, reference, window — its start and end) whose
 * drift the merge stage could not compute or store (a non-retriable error) and set aside so the
 * stream keeps moving. The partials stay on the partials topic (retention permitting) for a replay
 * after a fix. A replay that quarantines the window again rewrites the same key (newest wins).
 * `window_end` is in the key since 0730: a window of another length (DRIFTLINE_DRIFT_WINDOW
 * changed) starting at the same time is another row (tables created before are rebuilt by 0730).
 */
export const driftQuarantineMigration: Migration = {
  id: '0103_drift_quarantine',
  statements: [driftQuarantineTable(DRIFT_QUARANTINE)],
};

/** `drift_quarantine` under the name `name`. */
function driftQuarantineTable(name: string): string {
  return `CREATE TABLE IF NOT EXISTS {db}.${name} (
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
    ORDER BY (${KEY.join(', ')})
    TTL toDateTime(quarantined_at) + INTERVAL ${DRIFT_QUARANTINE_TTL_DAYS} DAY`;
}

/** `drift_quarantine`'s rebuild under the key with `window_end` (0730); no `written_at`: its TTL clock is `quarantined_at`. */
export const DRIFT_QUARANTINE_REBUILD = keyRebuild('0730', DRIFT_QUARANTINE, KEY, 'quarantined_at', {
  ddl: (name) => [driftQuarantineTable(name)],
  columns: `model, version, reference_id, window_start, window_end, events, late_events, source_partitions,
    idle_partitions, code, reason, topic, partition, quarantined_at`,
  writtenAt: 'toDateTime(quarantined_at)',
});

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
    return this.ch.insert(DRIFT_QUARANTINE, rows);
  }
}
