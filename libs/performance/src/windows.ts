import { DriftlineError } from '@driftline/core';
import { classificationMetrics, emptyMetrics, type Metrics, regressionMetrics, type Task } from './metrics.js';

/** Start of the tumbling window of size `sizeMs` containing `timeMs` (aligned to the epoch). */
export function windowStart(timeMs: number, sizeMs: number): number {
  if (!Number.isInteger(sizeMs) || sizeMs <= 0) {
    throw new DriftlineError('VALIDATION_FAILED', `window size must be a positive integer (got ${sizeMs})`);
  }
  return timeMs - (((timeMs % sizeMs) + sizeMs) % sizeMs);
}

/** Identity of a performance window; `key` is a stable string form (JSON, so any model name is safe). */
export interface WindowRef {
  readonly model: string;
  readonly modelVersion: string;
  readonly windowStart: number;
}

export function windowKey(ref: WindowRef): string {
  return JSON.stringify([ref.model, ref.modelVersion, ref.windowStart]);
}

export function parseWindowKey(key: string): WindowRef {
  const parsed: unknown = JSON.parse(key);
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 3 ||
    typeof parsed[0] !== 'string' ||
    typeof parsed[1] !== 'string' ||
    typeof parsed[2] !== 'number'
  ) {
    throw new DriftlineError('VALIDATION_FAILED', `not a window key: ${key}`);
  }
  return { model: parsed[0], modelVersion: parsed[1], windowStart: parsed[2] };
}

export const ALL_SEGMENT = '__all__';
export const OTHER_SEGMENT = '__other__';
export const MISSING_SEGMENT = '__missing__';

/**
 * Bounds the number of segments of one feature: with at most `maxSegments` distinct values all are
 * kept; otherwise the `maxSegments - 1` most frequent (ties by value) are kept and the rest fold into
 * `__other__`, so a window never has more than `maxSegments` segments per feature.
 */
export function boundSegments(counts: ReadonlyMap<string, number>, maxSegments: number): (value: string) => string {
  if (counts.size <= maxSegments) return (v) => v;
  const kept = new Set(
    [...counts.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, Math.max(0, maxSegments - 1))
      .map(([v]) => v),
  );
  return (v) => (kept.has(v) ? v : OTHER_SEGMENT);
}

export interface LabeledPoint {
  readonly prediction: number;
  readonly label: number;
  /** Segment value per declared segment feature, same order as `segmentFeatures`. */
  readonly segments: readonly string[];
}

export interface ExpiredPoint {
  readonly segments: readonly string[];
}

export interface WindowInput {
  readonly task: Task;
  readonly threshold: number;
  readonly segmentFeatures: readonly string[];
  readonly maxSegments: number;
  readonly labeled: readonly LabeledPoint[];
  /** Predictions whose labels never came within the maximum delay. */
  readonly expired: readonly ExpiredPoint[];
  /** Predictions of the window still waiting for a label (window level only). */
  readonly pending: number;
}

export interface PerformanceRow {
  /** '' for the whole window. */
  readonly segmentFeature: string;
  readonly segment: string;
  /** Predictions known in this slice: labeled + expired (+ pending for the whole window). */
  readonly predictions: number;
  readonly labeled: number;
  readonly expired: number;
  readonly pending: number;
  /** labeled / predictions (null when there is none). */
  readonly labelCoverage: number | null;
  /** Labeled rows left out of classification metrics because their label is not 0 or 1. */
  readonly invalidLabels: number;
  readonly metrics: Metrics;
}

function metricsOf(
  task: Task,
  threshold: number,
  points: readonly LabeledPoint[],
): { metrics: Metrics; invalid: number } {
  const labels: number[] = [];
  const predictions: number[] = [];
  let invalid = 0;
  for (const p of points) {
    if (task === 'classification' && p.label !== 0 && p.label !== 1) {
      invalid++;
      continue;
    }
    labels.push(p.label);
    predictions.push(p.prediction);
  }
  if (labels.length === 0) return { metrics: emptyMetrics(), invalid };
  return {
    metrics:
      task === 'classification'
        ? classificationMetrics(labels, predictions, threshold)
        : regressionMetrics(labels, predictions),
    invalid,
  };
}

function row(
  input: WindowInput,
  segmentFeature: string,
  segment: string,
  labeled: readonly LabeledPoint[],
  expired: number,
  pending: number,
): PerformanceRow {
  const predictions = labeled.length + expired + pending;
  const { metrics, invalid } = metricsOf(input.task, input.threshold, labeled);
  return {
    segmentFeature,
    segment,
    predictions,
    labeled: labeled.length,
    expired,
    pending,
    labelCoverage: predictions === 0 ? null : labeled.length / predictions,
    invalidLabels: invalid,
    metrics,
  };
}

/**
 * The rows of one window: the whole window (`__all__`) and, per declared segment feature, one row
 * per (bounded) segment value. Pending predictions are only known for the whole window.
 */
export function computeWindow(input: WindowInput): PerformanceRow[] {
  const rows = [row(input, '', ALL_SEGMENT, input.labeled, input.expired.length, input.pending)];
  input.segmentFeatures.forEach((feature, f) => {
    const counts = new Map<string, number>();
    const segmentOf = (segments: readonly string[]) => segments[f] ?? MISSING_SEGMENT;
    for (const p of input.labeled) counts.set(segmentOf(p.segments), (counts.get(segmentOf(p.segments)) ?? 0) + 1);
    for (const p of input.expired) counts.set(segmentOf(p.segments), (counts.get(segmentOf(p.segments)) ?? 0) + 1);
    const bucket = boundSegments(counts, input.maxSegments);
    const labeledBy = new Map<string, LabeledPoint[]>();
    const expiredBy = new Map<string, number>();
    for (const p of input.labeled) {
      const b = bucket(segmentOf(p.segments));
      const list = labeledBy.get(b);
      if (list === undefined) labeledBy.set(b, [p]);
      else list.push(p);
    }
    for (const p of input.expired) {
      const b = bucket(segmentOf(p.segments));
      expiredBy.set(b, (expiredBy.get(b) ?? 0) + 1);
    }
    const segments = [...new Set([...labeledBy.keys(), ...expiredBy.keys()])].sort();
    for (const s of segments) rows.push(row(input, feature, s, labeledBy.get(s) ?? [], expiredBy.get(s) ?? 0, 0));
  });
  return rows;
}
