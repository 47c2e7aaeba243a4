import type { Migration } from '../migrate.js';

/**
 * How long rows of each table live, in days, counted from when the row was WRITTEN to ClickHouse
 * (`written_at`, a MATERIALIZED column the server sets on insert: invisible to `SELECT *`, never
 * sent by clients). Not from event time: a replay of old events or seeded history is kept for the
 * full retention from its write, and no client clock can make a row expire early.
 *
 * Tables without a TTL, on purpose: `reference_profiles` and `model_versions` (one row per
 * registered reference or trained version — they grow with retrains, not with events, and a
 * serving version needs its rows for as long as it serves), `schema_migrations`. `drift_quarantine`
 * (365 days) and `alert_deliveries` (90 days) carry their TTL since they were created, as does
 * `skew_windows` (400 days, like drift_windows: skew-windows.ts).
 */
export const RETENTION_DAYS = {
  /** One row per joined prediction: the largest table; training windows read from it. */
  labeled_predictions: 180,
  /** Predictions that never got a label in time (label coverage). */
  unlabeled_predictions: 180,
  drift_windows: 400,
  performance_windows: 400,
  retrain_decisions: 400,
  /** Per (stage, group, topic, partition): a row not written for this long belongs to a group that is gone. */
  drift_progress: 400,
} as const;

/**
 * 0500: TTLs for the tables created without one. Rows written before this migration get their
 * `written_at` when a merge first rewrites their part (until then it reads as now()): they expire
 * at the earliest the retention after the migration, never at once.
 */
export const retentionMigration: Migration = {
  id: '0500_retention',
  statements: Object.entries(RETENTION_DAYS).flatMap(([table, days]) => retentionOf(table, days)),
};

/** 0500's statements for `table` (also for a table rebuilt under another name: its copy, key-rebuild.ts). */
export function retentionOf(table: string, days: number): string[] {
  return [
    `ALTER TABLE {db}.${table} ADD COLUMN IF NOT EXISTS written_at DateTime MATERIALIZED now()
       COMMENT 'when the row was written (retention clock)'`,
    `ALTER TABLE {db}.${table} MODIFY TTL written_at + INTERVAL ${days} DAY`,
  ];
}
