import {
  ALL_SEGMENT,
  type BusinessOutcome,
  type CbpeEstimate,
  type PerformanceRow,
  type Task,
  type WindowRef,
} from '@driftline/performance';
import type { ClickHouse } from '../client.js';
import type { Migration } from '../migrate.js';
import { chTime } from '../time.js';

/**
 * Rows by window and segment with `version` = when the recompute read its input (newest wins:
 * query with FINAL or argMax(…, version)). Part of the label-joiner's original migration id.
 */
export const performanceWindowsMigration: Migration = {
  id: '0201_performance_windows',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.performance_windows (
      model LowCardinality(String),
      model_version LowCardinality(String),
      window_start DateTime64(3, 'UTC'),
      window_end DateTime64(3, 'UTC'),
      segment_feature LowCardinality(String),
      segment String,
      task LowCardinality(String),
      predictions UInt64,
      labeled UInt64,
      expired UInt64,
      pending UInt64,
      label_coverage Nullable(Float64),
      invalid_labels UInt64,
      accuracy Nullable(Float64),
      precision Nullable(Float64),
      recall Nullable(Float64),
      f1 Nullable(Float64),
      roc_auc Nullable(Float64),
      log_loss Nullable(Float64),
      brier Nullable(Float64),
      mae Nullable(Float64),
      rmse Nullable(Float64),
      mape Nullable(Float64),
      threshold Float64,
      version UInt64,
      computed_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(version)
    ORDER BY (model, model_version, window_start, segment_feature, segment)`,
  ],
};

/**
 * 0680: `sampled_labels`, the labeled rows a row's metrics were computed from when its window held
 * more than the label-joiner's bound (DRIFTLINE_JOINER_MAX_WINDOW_ROWS) and was read as a sample;
 * 0 when computed from every labeled row. The counts (`labeled`, `invalid_labels`, …) are exact
 * either way. ADD COLUMN IF NOT EXISTS: existing rows read 0, nothing is rewritten.
 */
export const performanceWindowsSampledMigration: Migration = {
  id: '0680_performance_windows_sampled',
  statements: [
    `ALTER TABLE {db}.performance_windows ADD COLUMN IF NOT EXISTS sampled_labels UInt64 DEFAULT 0
       COMMENT 'labeled rows of a sample the metrics were computed from (window over DRIFTLINE_JOINER_MAX_WINDOW_ROWS); 0: all'`,
  ],
};

/** One recompute of a window's metrics, every segment. */
export interface PerformanceWindow {
  readonly ref: WindowRef;
  readonly windowMs: number;
  readonly task: Task;
  readonly threshold: number;
  readonly rows: readonly PerformanceRow[];
  /** When the recompute read its input; the newest version of a key wins. */
  readonly version: number;
  readonly computedAt: number;
  /** CBPE estimate of the whole window (migration 0610), from its score histogram. */
  readonly estimate?: { readonly value: CbpeEstimate; readonly calibrationId: string };
  /** Business outcome of the window's labeled rows at the threshold (null: no value known). */
  readonly business?: BusinessOutcome | null;
}

/** Columns of 0610 for a row: the whole-window row carries them, segment rows leave them null. */
function estimateColumns(w: PerformanceWindow, r: PerformanceRow) {
  const whole = r.segment === ALL_SEGMENT && r.segmentFeature === '';
  const e = whole ? w.estimate?.value : undefined;
  const b = whole ? w.business : undefined;
  return {
    scored: e?.n ?? 0,
    calibration_id: e === undefined ? '' : (w.estimate?.calibrationId ?? ''),
    estimated_accuracy: e?.accuracy ?? null,
    estimated_precision: e?.precision ?? null,
    estimated_recall: e?.recall ?? null,
    estimated_f1: e?.f1 ?? null,
    estimated_roc_auc: e?.roc_auc ?? null,
    valued_labels: b?.valued ?? 0,
    value_caught: b?.valueCaught ?? null,
    value_missed: b?.valueMissed ?? null,
    false_alarm_cost: b?.falseAlarmCost ?? null,
    business_net: b?.net ?? null,
  };
}

export interface PerformanceStore {
  insert(window: PerformanceWindow): Promise<void>;
}

export class ClickHousePerformanceStore implements PerformanceStore {
  constructor(private readonly ch: ClickHouse) {}

  insert(w: PerformanceWindow): Promise<void> {
    return this.ch.insert(
      'performance_windows',
      w.rows.map((r) => ({
        model: w.ref.model,
        model_version: w.ref.modelVersion,
        window_start: chTime(w.ref.windowStart),
        window_end: chTime(w.ref.windowStart + w.windowMs),
        segment_feature: r.segmentFeature,
        segment: r.segment,
        task: w.task,
        predictions: r.predictions,
        labeled: r.labeled,
        expired: r.expired,
        pending: r.pending,
        label_coverage: r.labelCoverage,
        invalid_labels: r.invalidLabels,
        sampled_labels: r.sampled ?? 0,
        ...r.metrics,
        ...estimateColumns(w, r),
        threshold: w.threshold,
        version: w.version,
        computed_at: chTime(w.computedAt),
      })),
    );
  }
}
