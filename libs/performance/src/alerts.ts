import { createHash } from 'node:crypto';
import { ConfigError } from '@driftline/core';
import { METRIC_NAMES, type MetricName } from './metrics.js';
import { ALL_SEGMENT, type PerformanceRow } from './windows.js';

export type BoundOp = '<' | '<=' | '>' | '>=';

/** A bound a metric must respect; the alert fires when `metric op value` holds (e.g. accuracy < 0.8). */
export interface MetricBound {
  readonly metric: MetricName;
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
    const metric = m[1]?.toLowerCase() as MetricName;
    if (!METRIC_NAMES.includes(metric)) {
      throw new ConfigError(field, `unknown metric ${JSON.stringify(m[1])} (known: ${METRIC_NAMES.join(', ')})`);
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
 * The bounds a window's rows break. Rows with fewer than `minSamples` labeled predictions are
 * not judged (a handful of labels says nothing); segment rows only when `includeSegments`.
 */
export function evaluateBounds(
  rows: readonly PerformanceRow[],
  bounds: readonly MetricBound[],
  options: { minSamples: number; includeSegments: boolean },
): Breach[] {
  const out: Breach[] = [];
  for (const row of rows) {
    if (row.labeled < options.minSamples) continue;
    if (!options.includeSegments && row.segment !== ALL_SEGMENT) continue;
    for (const bound of bounds) {
      const value = row.metrics[bound.metric];
      if (value !== null && Number.isFinite(value) && breaches(value, bound)) out.push({ bound, value, row });
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
}): string {
  const text = JSON.stringify([
    'PERFORMANCE',
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
