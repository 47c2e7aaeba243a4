import { createHash } from 'node:crypto';
import { ConfigError } from '@driftline/core';
import { BUSINESS_METRICS, type BusinessMetricName } from './business.js';
import { type CbpeEstimate, ESTIMATED_METRICS, type EstimatedMetricName } from './cbpe.js';
import { METRIC_NAMES, type MetricName } from './metrics.js';
import { ALL_SEGMENT, type PerformanceRow } from './windows.js';

/** What a bound can name: a realized metric, or a business metric of the whole window. */
export type BoundMetric = MetricName | BusinessMetricName;
/** Every metric a bound, and so a PERFORMANCE alert (its `method`), can name. */
export const BOUND_METRIC_NAMES = [...METRIC_NAMES, ...BUSINESS_METRICS] as const;
const BOUND_METRICS: readonly string[] = BOUND_METRIC_NAMES;

export type BoundOp = '<' | '<=' | '>' | '>=';

/** A bound a metric must respect; the alert fires when `metric op value` holds (e.g. accuracy < 0.8). */
export interface MetricBound {
  readonly metric: BoundMetric;
  readonly op: BoundOp;
  readonly value: number;
}

const BOUND = /^\s*([a-z_0-9]+)\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/i;

/** Parses `accuracy<0.8,roc_auc<0.7,rmse>12.5`; `field` names the variable in errors. */
export function parseBounds(text: string, field: string): MetricBound[] {
  if (text.trim() === '') return [];
  return text.split(',').map((part) => {
    const m = BOUND.exec(part);
    if (m === null) throw new ConfigError(field, `bound ${JSON.stringify(part)} is not <metric><op><number>`);
    const metric = m[1]?.toLowerCase() as BoundMetric;
    if (!BOUND_METRICS.includes(metric)) {
      throw new ConfigError(field, `unknown metric ${JSON.stringify(m[1])} (known: ${BOUND_METRICS.join(', ')})`);
    }
    return { metric, op: m[2] as BoundOp, value: Number(m[3]) };
  });
}

export function breaches(value: number, bound: MetricBound): boolean {
  switch (bound.op) {
    case '<':
      return value < bound.value;
    case '<=':
      return value <= bound.value;
    case '>':
      return value > bound.value;
    case '>=':
      return value >= bound.value;
  }
}

export interface Breach {
  readonly bound: MetricBound;
  readonly value: number;
  readonly row: PerformanceRow;
}

/**
 * The bounds a window's rows break. Rows with fewer than `minSamples` valid labels (0 or 1 for
 * classification) are not judged (a handful of labels says nothing); segment rows only when
 * `includeSegments`.
 */
export function evaluateBounds(
  rows: readonly PerformanceRow[],
  bounds: readonly MetricBound[],
  options: {
    minSamples: number;
    includeSegments: boolean;
    /** Business metrics of the whole window (they have no segment rows). */
    business?: Readonly<Record<BusinessMetricName, number | null>>;
  },
): Breach[] {
  const out: Breach[] = [];
  for (const row of rows) {
    // The labels the metrics used: labels other than 0/1 (invalid) are skipped by the metrics, and
    // 995 of them beside 5 valid ones had fired an alert on 5 rows (found by a review).
    // A sampled window's row: the sampled rows its metrics came from, not its exact count (150
    // labeled rows had been judged on the 7–17 of them in the sample).
    if (usedLabels(row) < options.minSamples) continue;
    const whole = row.segment === ALL_SEGMENT && row.segmentFeature === '';
    // By the feature too: a segment whose value is literally `__all__` is a segment.
    if (!options.includeSegments && !whole) continue;
    for (const bound of bounds) {
      const value = isBusinessMetric(bound.metric)
        ? whole
          ? (options.business?.[bound.metric] ?? null)
          : null
        : row.metrics[bound.metric];
      if (value !== null && Number.isFinite(value) && breaches(value, bound)) out.push({ bound, value, row });
    }
  }
  return out;
}

/**
 * The valid labels a row's metrics were computed from: its sampled rows when its window was read as
 * a sample (a sample with an invalid label has no metrics at all), else its labeled rows less the
 * invalid ones.
 */
function usedLabels(row: PerformanceRow): number {
  return row.sampled ?? row.labeled - row.invalidLabels;
}

const isBusinessMetric = (m: BoundMetric): m is BusinessMetricName =>
  (BUSINESS_METRICS as readonly string[]).includes(m);

export interface EstimateBreach {
  readonly bound: MetricBound & { readonly metric: EstimatedMetricName };
  readonly value: number;
}

/**
 * Whether {@link evaluateBounds} judges `metric` on the window's realized row in place of its CBPE
 * estimate: labels cover `realizedCoverage`, at least `minSamples` valid labels were used (a row
 * with fewer is not judged: 90 labels of 150 predictions had left the window judged by neither, and
 * more labels could turn an alert off — found by a review), and the realized value exists (invalid
 * labels, a cut sample or a single label class leave it null, the estimate then judges).
 */
function realizedJudges(
  row: PerformanceRow | undefined,
  metric: EstimatedMetricName,
  options: { minSamples: number; realizedCoverage: number },
): boolean {
  if (row === undefined || row.labelCoverage === null || row.labelCoverage < options.realizedCoverage) return false;
  if (usedLabels(row) < options.minSamples) return false;
  const value = row.metrics[metric];
  return value !== null && Number.isFinite(value);
}

/**
 * The bounds a window's CBPE estimate breaks: the same bounds as the realized metrics, on the
 * metrics CBPE estimates (accuracy, precision, recall, f1, roc_auc), once at least `minSamples`
 * predictions are scored. A metric the realized row of the whole window (`realized`) judges — its
 * labels cover `realizedCoverage`, at least `minSamples` valid labels, a realized value — is judged
 * there instead (the PERFORMANCE alert), so no metric of a scored window is judged by neither.
 */
export function evaluateEstimateBounds(
  estimate: CbpeEstimate,
  realized: PerformanceRow | undefined,
  bounds: readonly MetricBound[],
  options: { minSamples: number; realizedCoverage: number },
): EstimateBreach[] {
  if (estimate.n < options.minSamples) return [];
  const out: EstimateBreach[] = [];
  for (const bound of bounds) {
    if (!(ESTIMATED_METRICS as readonly string[]).includes(bound.metric)) continue;
    const metric = bound.metric as EstimatedMetricName;
    if (realizedJudges(realized, metric, options)) continue;
    const value = estimate[metric];
    if (value !== null && Number.isFinite(value) && breaches(value, bound)) {
      out.push({ bound: bound as EstimateBreach['bound'], value });
    }
  }
  return out;
}

/**
 * Deterministic alert id: the same window, slice and bound always give the same id, whatever the
 * metric's value when it fired, so consumers recognise re-emitted alerts.
 */
export function performanceAlertId(parts: {
  model: string;
  modelVersion: string;
  windowStart: number;
  windowEnd: number;
  segmentFeature: string;
  segment: string;
  bound: MetricBound;
  /** PERFORMANCE unless given (ESTIMATED_PERFORMANCE): the kinds never share an id. */
  kind?: string;
}): string {
  const text = JSON.stringify([
    parts.kind ?? 'PERFORMANCE',
    parts.model,
    parts.modelVersion,
    parts.windowStart,
    parts.windowEnd,
    parts.segmentFeature,
    parts.segment,
    parts.bound.metric,
    parts.bound.op,
    parts.bound.value,
  ]);
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
