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

/** Where flushes are written since 0650. */
const SCORE_HISTOGRAMS = 'score_histograms_v2';
/** 0610's table: still read (old-code writers in a rolling deploy, rows until its TTL ages them out). */
const SCORE_HISTOGRAMS_0610 = 'score_histograms';
/** A flush's row of one (window, threshold): the key of `score_histograms_v2`. */
const FLUSH_ROW_KEY = 'model, model_version, window_start, threshold, flush_id';

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
 *   the write, as performance_windows. Written to `score_histograms_v2` since 0650 (below).
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
    scoreHistogramsTable(SCORE_HISTOGRAMS_0610, '(model, model_version, window_start, flush_id)'),
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

/** `score_histograms` (0610) and `score_histograms_v2` (0650): the same columns and TTL, two sorting keys. */
function scoreHistogramsTable(name: string, orderBy: string): string {
  return `CREATE TABLE IF NOT EXISTS {db}.${name} (
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

/**
 * 0650: `score_histograms_v2`, `score_histograms` with `threshold` in the key. The label-joiner
 * writes every tally group of a flush — one per (threshold, window) — under one flush_id; two
 * thresholds of one window (a changed DRIFTLINE_JOINER_THRESHOLD, in a rolling restart or with the
 * old threshold's tallies still in Redis) shared 0610's key, and the replacing merge (within the
 * insert block already) kept one: the current threshold's counts were lost for good (found by a review).
 *
 * A MergeTree's ORDER BY takes by ALTER only columns added in the same ALTER, so the key is a new
 * table, not a rebuild: a copy of the rows was bounded by the call timeout (a large table never
 * finished, and each retry copied again), and a rename beside other processes raced. Nothing is
 * copied: writers use the new table, readers read both (see `flushRows`), and the 0610 table's rows
 * age out by its TTL while old-code writers of a rolling deploy may still add to it.
 */
export const scoreHistogramsV2Migration: Migration = {
  id: '0650_score_histograms_v2',
  statements: [scoreHistogramsTable(SCORE_HISTOGRAMS, `(${FLUSH_ROW_KEY})`)],
};

/** Increments of one window's score histogram taken by one instance, with a fixed id. */
export interface HistogramFlush {
  readonly ref: WindowRef;
  readonly threshold: number;
  readonly flushId: string;
  readonly histogram: ScoreHistogram;
}

/** {@link PerformanceEstimateStore.scoreTotals}: one (version, window, threshold) of a model. */
export interface ScoreTotal {
  readonly modelVersion: string;
  readonly windowStart: number;
  readonly threshold: number;
  /** Predictions tallied. */
  readonly count: number;
  /** Their scores' sum. */
  readonly sum: number;
}

/** Most rows one {@link PerformanceEstimateStore.scoreTotals} call returns. */
export const MAX_SCORE_TOTALS = 100_000;

export interface StoredCalibration {
  readonly referenceId: string;
  readonly map: CalibrationMap;
}

export interface PerformanceEstimateStore {
  insertHistograms(flushes: readonly HistogramFlush[]): Promise<void>;
  /** The window's histogram summed over every flush of `threshold`; undefined when none. */
  histogram(ref: WindowRef, threshold: number): Promise<ScoreHistogram | undefined>;
  /**
   * A model's scores tallied per (version, window, threshold): count and sum over every flush; at
   * most MAX_SCORE_TOTALS rows, newest windows first (a check of what the label-joiner wrote).
   */
  scoreTotals(model: string): Promise<ScoreTotal[]>;
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
      SCORE_HISTOGRAMS,
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
       FROM (${this.flushRows(
         `model = {model:String} AND model_version = {version:String}
          AND window_start = fromUnixTimestamp64Milli({start:Int64}, 'UTC') AND threshold = {threshold:Float64}`,
       )})
       ARRAY JOIN slots AS slot, counts AS count, sums AS s
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

  async scoreTotals(model: string): Promise<ScoreTotal[]> {
    const rows = await this.ch.select<{
      model_version: string;
      start: string | number;
      threshold: number;
      count: string | number;
      sum: number;
    }>(
      `SELECT toString(model_version) AS model_version, toUnixTimestamp64Milli(window_start) AS start, threshold,
         sum(arraySum(counts)) AS count, sum(arraySum(sums)) AS sum
       FROM (${this.flushRows('model = {model:String}')})
       GROUP BY model_version, window_start, threshold
       ORDER BY window_start DESC, model_version, threshold
       LIMIT {limit:UInt32}`,
      { model, limit: MAX_SCORE_TOTALS },
    );
    return rows.map((r) => ({
      modelVersion: r.model_version,
      windowStart: Number(r.start),
      threshold: Number(r.threshold),
      count: Number(r.count),
      sum: Number(r.sum),
    }));
  }

  /**
   * The flush rows matching `where` (over columns both tables have) from both tables, each FINAL
   * (a retried flush replaces itself). One flush can land in both only across a rolling deploy: the
   * batch in flight in Redis is taken again under the same id by any instance, so an old-code
   * instance's insert that landed without its acknowledgement is sent again by a new-code one (or
   * the reverse). Its rows are then the same counts in both tables, so a 0610 row whose
   * (window, threshold, flush) the new table holds is left out. In 0610's table a flush keeps one
   * row per window whatever its thresholds (the merged-away tally is lost there), so its key with
   * `threshold` is unique too.
   */
  private flushRows(where: string): string {
    const columns = `${FLUSH_ROW_KEY}, slots, counts, sums`;
    const current = this.ch.table(SCORE_HISTOGRAMS);
    return `SELECT ${columns} FROM ${current} FINAL WHERE ${where}
      UNION ALL
      SELECT ${columns} FROM ${this.ch.table(SCORE_HISTOGRAMS_0610)} FINAL
      WHERE ${where} AND (${FLUSH_ROW_KEY}) NOT IN (SELECT ${FLUSH_ROW_KEY} FROM ${current} WHERE ${where})`;
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
