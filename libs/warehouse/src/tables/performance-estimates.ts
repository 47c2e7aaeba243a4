import {
  type CalibrationMap,
  emptyScoreHistogram,
  parseCalibrationMap,
  SCORE_SLOTS,
  type ScoreHistogram,
  type WindowRef,
} from '@driftline/performance';
import type { ClickHouse } from '../client.js';
import type { Migration } from '../migrate.js';
import { chTime } from '../time.js';

/**
 * 0610: performance before labels (CBPE) and the business outcome.
 *
 * - `performance_windows` gains the estimate beside the realized metrics (`estimated_*`, over
 *   `scored` predictions, calibrated with the map of `calibration_id`; '' = raw scores) and the
 *   business outcome of the labeled rows (`value_caught`, `value_missed`, `false_alarm_cost`,
 *   `business_net`, over `valued_labels` labels that carried a value). Both are written on the
 *   whole-window row (`segment = '__all__'`); segment rows leave them null. Readers pick the
 *   realized metric once `label_coverage` reaches their bound, the estimate before.
 * - `score_histograms`: the mergeable state of the estimate, one row per flush of a label-joiner
 *   instance — counts and score sums per slot of the @driftline/performance grid, sparse
 *   (`slots`, `counts`, `sums`). A window's histogram is the sum over its rows (`sumMap`).
 *   `flush_id` is fixed when the increments are taken, so a retried insert of the same flush
 *   replaces itself (ReplacingMergeTree, read FINAL) instead of adding twice. Kept 400 days from
 *   the write, as performance_windows. Its key gains `threshold` in 0650 (below).
 * - `calibration_maps`: the calibration of a version's scores, fitted by the trainer on the
 *   labeled rows its reference profile is built from, under the same `reference_id`. At most
 *   MAX_CALIBRATION_POINTS knots (~40 KB). No TTL, like reference_profiles: one row per reference,
 *   it grows with retrains, and a serving version needs it for as long as it serves.
 */
export const performanceEstimatesMigration: Migration = {
  id: '0610_performance_estimates',
  statements: [
    ...[
      `scored UInt64 DEFAULT 0 COMMENT 'predictions in the score histogram the estimate is over'`,
      `calibration_id String DEFAULT '' COMMENT 'reference_id of the calibration map; empty = raw scores'`,
      'estimated_accuracy Nullable(Float64)',
      'estimated_precision Nullable(Float64)',
      'estimated_recall Nullable(Float64)',
      'estimated_f1 Nullable(Float64)',
      'estimated_roc_auc Nullable(Float64)',
      `valued_labels UInt64 DEFAULT 0 COMMENT 'labeled rows whose label carried a value'`,
      'value_caught Nullable(Float64)',
      'value_missed Nullable(Float64)',
      'false_alarm_cost Nullable(Float64)',
      'business_net Nullable(Float64)',
    ].map((column) => `ALTER TABLE {db}.performance_windows ADD COLUMN IF NOT EXISTS ${column}`),
    scoreHistogramsTable('(model, model_version, window_start, flush_id)'),
    `CREATE TABLE IF NOT EXISTS {db}.calibration_maps (
      model String,
      version String,
      reference_id String,
      calibration String,
      created_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(created_at)
    ORDER BY (model, version, reference_id)`,
  ],
};

/** `score_histograms` with a sorting key: 0610's, and 0650's (with `threshold`). */
function scoreHistogramsTable(orderBy: string): string {
  return `CREATE TABLE IF NOT EXISTS {db}.score_histograms (
      model LowCardinality(String),
      model_version LowCardinality(String),
      window_start DateTime64(3, 'UTC'),
      threshold Float64 COMMENT 'the grid splits the threshold''s bin: only rows of one threshold add up',
      flush_id String,
      slots Array(UInt16),
      counts Array(UInt64),
      sums Array(Float64),
      recorded_at DateTime64(3, 'UTC'),
      written_at DateTime MATERIALIZED now() COMMENT 'when the row was written (retention clock)'
    ) ENGINE = ReplacingMergeTree(recorded_at)
    ORDER BY ${orderBy}
    TTL written_at + INTERVAL 400 DAY`;
}

/** Where 0650 moves the table with 0610's key while its rows are copied; dropped after. */
const RETIRED_SCORE_HISTOGRAMS = 'score_histograms_0610';
const SCORE_HISTOGRAM_COLUMNS =
  'model, model_version, window_start, threshold, flush_id, slots, counts, sums, recorded_at, written_at';

/**
 * 0650: `threshold` in the key of `score_histograms`. The label-joiner writes every tally group of a
 * flush — one per (threshold, window) — under one flush_id; two thresholds of one window (a changed
 * DRIFTLINE_JOINER_THRESHOLD, in a rolling restart or with the old threshold's tallies still in
 * Redis) shared the key, and the replacing merge (within the insert block already) kept one: the
 * current threshold's counts were lost for good (found by a review).
 *
 * A MergeTree's ORDER BY takes by ALTER only columns added in the same ALTER, at its end, so the
 * table is rebuilt under its own name (readers and writers keep it): the old table is renamed aside
 * — from then on a writer of the old code fails UNKNOWN_TABLE, retried, instead of writing where
 * the copy has passed — the new one is created, the rows are copied (`written_at` kept: the
 * retention clock does not restart), and the old table is dropped. Each step may run again after a
 * crash or beside another process migrating: the rename happens only while the table has the old
 * key, and a row copied twice replaces itself (same key, same recorded_at).
 */
export const scoreHistogramsThresholdKeyMigration: Migration = {
  id: '0650_score_histograms_threshold_key',
  statements: [],
  async apply(ch) {
    const tables = await ch.select<{ name: string; sorting_key: string }>(
      `SELECT name, sorting_key FROM system.tables
       WHERE database = {db:String} AND name IN ('score_histograms', {retired:String})`,
      { db: ch.database, retired: RETIRED_SCORE_HISTOGRAMS },
    );
    const current = tables.find((t) => t.name === 'score_histograms');
    if (current !== undefined && !current.sorting_key.split(', ').includes('threshold')) {
      await ch.command(
        `RENAME TABLE IF EXISTS ${ch.table('score_histograms')} TO ${ch.table(RETIRED_SCORE_HISTOGRAMS)}`,
      );
    }
    await ch.command(
      scoreHistogramsTable('(model, model_version, window_start, threshold, flush_id)').replaceAll('{db}', ch.database),
    );
    const retired = await ch.select<{ name: string }>(
      'SELECT name FROM system.tables WHERE database = {db:String} AND name = {retired:String}',
      { db: ch.database, retired: RETIRED_SCORE_HISTOGRAMS },
    );
    if (retired.length === 0) return;
    await ch.command(
      `INSERT INTO ${ch.table('score_histograms')} (${SCORE_HISTOGRAM_COLUMNS})
       SETTINGS insert_allow_materialized_columns = 1
       SELECT ${SCORE_HISTOGRAM_COLUMNS} FROM ${ch.table(RETIRED_SCORE_HISTOGRAMS)}`,
    );
    await ch.command(`DROP TABLE IF EXISTS ${ch.table(RETIRED_SCORE_HISTOGRAMS)}`);
  },
};

/** Increments of one window's score histogram taken by one instance, with a fixed id. */
export interface HistogramFlush {
  readonly ref: WindowRef;
  readonly threshold: number;
  readonly flushId: string;
  readonly histogram: ScoreHistogram;
}

export interface StoredCalibration {
  readonly referenceId: string;
  readonly map: CalibrationMap;
}

export interface PerformanceEstimateStore {
  insertHistograms(flushes: readonly HistogramFlush[]): Promise<void>;
  /** The window's histogram summed over every flush of `threshold`; undefined when none. */
  histogram(ref: WindowRef, threshold: number): Promise<ScoreHistogram | undefined>;
  saveCalibration(model: string, version: string, referenceId: string, map: CalibrationMap): Promise<void>;
  /** The newest calibration of (model, version); a malformed map throws ConfigError naming it. */
  calibration(model: string, version: string): Promise<StoredCalibration | undefined>;
}

export class ClickHousePerformanceEstimateStore implements PerformanceEstimateStore {
  constructor(
    private readonly ch: ClickHouse,
    private readonly now: () => number = Date.now,
  ) {}

  insertHistograms(flushes: readonly HistogramFlush[]): Promise<void> {
    if (flushes.length === 0) return Promise.resolve();
    const recordedAt = chTime(this.now());
    return this.ch.insert(
      'score_histograms',
      flushes.map((f) => {
        const slots: number[] = [];
        const counts: number[] = [];
        const sums: number[] = [];
        f.histogram.counts.forEach((c, slot) => {
          if (c === 0) return;
          slots.push(slot);
          counts.push(c);
          sums.push(f.histogram.sums[slot] ?? 0);
        });
        return {
          model: f.ref.model,
          model_version: f.ref.modelVersion,
          window_start: chTime(f.ref.windowStart),
          threshold: f.threshold,
          flush_id: f.flushId,
          slots,
          counts,
          sums,
          recorded_at: recordedAt,
        };
      }),
    );
  }

  async histogram(ref: WindowRef, threshold: number): Promise<ScoreHistogram | undefined> {
    const rows = await this.ch.select<{ slot: number; count: string | number; sum: number }>(
      `SELECT slot, sum(count) AS count, sum(s) AS sum
       FROM ${this.ch.table('score_histograms')} FINAL
       ARRAY JOIN slots AS slot, counts AS count, sums AS s
       WHERE model = {model:String} AND model_version = {version:String}
         AND window_start = fromUnixTimestamp64Milli({start:Int64}, 'UTC') AND threshold = {threshold:Float64}
       GROUP BY slot`,
      { model: ref.model, version: ref.modelVersion, start: ref.windowStart, threshold },
    );
    if (rows.length === 0) return undefined;
    const h = emptyScoreHistogram();
    for (const r of rows) {
      const slot = Number(r.slot);
      if (slot >= SCORE_SLOTS) continue;
      h.counts[slot] = Number(r.count);
      h.sums[slot] = Number(r.sum);
    }
    return h;
  }

  saveCalibration(model: string, version: string, referenceId: string, map: CalibrationMap): Promise<void> {
    return this.ch.insert('calibration_maps', [
      { model, version, reference_id: referenceId, calibration: JSON.stringify(map), created_at: chTime(this.now()) },
    ]);
  }

  async calibration(model: string, version: string): Promise<StoredCalibration | undefined> {
    const rows = await this.ch.select<{ reference_id: string; calibration: string }>(
      `SELECT reference_id, calibration FROM ${this.ch.table('calibration_maps')} FINAL
       WHERE model = {model:String} AND version = {version:String}
       ORDER BY created_at DESC LIMIT 1`,
      { model, version },
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(row.calibration);
    } catch {
      json = undefined;
    }
    return {
      referenceId: row.reference_id,
      map: parseCalibrationMap(json, `calibration_maps[${model}/${version}/${row.reference_id}].calibration`),
    };
  }
}
