import { createHash } from 'node:crypto';
import { cutText } from '@driftline/core';
import type { ExpectationResult } from '@driftline/quality';
import type { AlertKind, DriftAlert } from '@driftline/schemas';
import type { MethodResult, WindowVerdict } from './decide.js';

/** Deterministic alert id: the same (model, version, window, kind) always yields the same id. */
export function alertId(model: string, version: string, windowStart: number, kind: AlertKind): string {
  return createHash('sha256')
    .update(JSON.stringify([model, version, windowStart, kind]))
    .digest('hex')
    .slice(0, 32);
}

export interface AlertContext {
  readonly model: string;
  readonly version: string;
  readonly referenceId: string;
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly events: number;
  readonly lateEvents: number;
}

const nullable = (v: number | null): number | null => (v === null || Number.isNaN(v) ? null : v);

function evidenceRow(r: MethodResult) {
  return {
    feature: r.feature,
    method: r.method,
    statistic: r.statistic,
    p_value: nullable(r.pValue),
    threshold: r.threshold,
    reference_size: r.referenceSize,
    current_size: r.currentSize,
    ...(r.errorBound === null ? {} : { error_bound: r.errorBound }),
  };
}

/**
 * At most one FEATURE_DRIFT and one PREDICTION_DRIFT alert per (model, version, window), built only
 * from the window's data (event_time = window end), so a replay produces byte-identical alerts.
 */
export function buildAlerts(ctx: AlertContext, verdict: WindowVerdict): DriftAlert[] {
  const alerts: DriftAlert[] = [];
  const base = {
    model: ctx.model,
    model_version: ctx.version,
    window_start: ctx.windowStart,
    window_end: ctx.windowEnd,
    event_time: ctx.windowEnd,
  };
  const common = { reference_id: ctx.referenceId, events: ctx.events, late_events: ctx.lateEvents };
  if (verdict.featureDrift) {
    const top = [...verdict.drifted].sort((a, b) => b.statistic - a.statistic)[0]!;
    alerts.push({
      ...base,
      alert_id: alertId(ctx.model, ctx.version, ctx.windowStart, 'FEATURE_DRIFT'),
      kind: 'FEATURE_DRIFT',
      feature: verdict.drifted.length === 1 ? top.feature : null,
      method: top.method,
      statistic: top.statistic,
      p_value: nullable(top.pValue),
      threshold: top.threshold,
      share_drifted: verdict.shareDrifted,
      evidence: JSON.stringify({ ...common, features: verdict.features, drifted: verdict.drifted.map(evidenceRow) }),
    });
  }
  if (verdict.predictionDrift.length > 0) {
    const top = verdict.predictionDrift[0]!;
    alerts.push({
      ...base,
      alert_id: alertId(ctx.model, ctx.version, ctx.windowStart, 'PREDICTION_DRIFT'),
      kind: 'PREDICTION_DRIFT',
      feature: top.feature,
      method: top.method,
      statistic: top.statistic,
      p_value: nullable(top.pValue),
      threshold: top.threshold,
      share_drifted: null,
      evidence: JSON.stringify({ ...common, drifted: verdict.predictionDrift.map(evidenceRow) }),
    });
  }
  return alerts;
}

/** Why a window's drift was set aside: the error's code and message (capped). */
export interface QuarantineCause {
  readonly code: string;
  readonly reason: string;
}

/** Longest reason kept in a quarantine alert's evidence and the drift_quarantine row. */
export const QUARANTINE_REASON_MAX_CHARS = 2000;

export function capReason(reason: string): string {
  return reason.length <= QUARANTINE_REASON_MAX_CHARS ? reason : `${cutText(reason, QUARANTINE_REASON_MAX_CHARS)}…`;
}

/**
 * The alert for a (model, version, window) whose drift could not be computed or stored and was
 * quarantined: deterministic (id from the window, event_time = window end), so a replay that
 * quarantines it again yields the same alert. It carries no statistic (0, NaN-free); the evidence
 * holds the code and the reason.
 */
export function quarantineAlert(ctx: AlertContext, cause: QuarantineCause): DriftAlert {
  return {
    alert_id: alertId(ctx.model, ctx.version, ctx.windowStart, 'DRIFT_WINDOW_QUARANTINED'),
    kind: 'DRIFT_WINDOW_QUARANTINED',
    model: ctx.model,
    model_version: ctx.version,
    feature: null,
    window_start: ctx.windowStart,
    window_end: ctx.windowEnd,
    event_time: ctx.windowEnd,
    method: 'quarantine',
    statistic: 0,
    p_value: null,
    threshold: 0,
    share_drifted: null,
    evidence: JSON.stringify({
      reference_id: ctx.referenceId,
      events: ctx.events,
      late_events: ctx.lateEvents,
      code: cause.code,
      reason: capReason(cause.reason),
    }),
  };
}

/** Failed expectations listed in one DATA_QUALITY alert's evidence (the rest are counted). */
export const QUALITY_ALERT_MAX_FAILURES = 100;

/**
 * One DATA_QUALITY alert per (model, version, window) with at least one failed expectation, or
 * undefined. Deterministic (id from the window and kind, event_time = window end), so a replay
 * yields the same alert. `method` and `statistic` are those of the first failure in evaluation
 * order (features sorted; per feature type, null_rate, range, categories, cardinality); `feature` is set when a single feature failed; the evidence lists every failure.
 */
export function dataQualityAlert(ctx: AlertContext, results: readonly ExpectationResult[]): DriftAlert | undefined {
  const failed = results.filter((r) => !r.passed);
  const first = failed[0];
  if (first === undefined) return undefined;
  const features = new Set(failed.map((r) => r.feature));
  return {
    alert_id: alertId(ctx.model, ctx.version, ctx.windowStart, 'DATA_QUALITY'),
    kind: 'DATA_QUALITY',
    model: ctx.model,
    model_version: ctx.version,
    feature: features.size === 1 ? first.feature : null,
    window_start: ctx.windowStart,
    window_end: ctx.windowEnd,
    event_time: ctx.windowEnd,
    method: first.expectation,
    statistic: first.observed,
    p_value: null,
    threshold: first.bound,
    share_drifted: null,
    evidence: JSON.stringify({
      events: ctx.events,
      late_events: ctx.lateEvents,
      expectations: results.length,
      failed_count: failed.length,
      failed: failed.slice(0, QUALITY_ALERT_MAX_FAILURES).map((r) => ({
        feature: r.feature,
        expectation: r.expectation,
        observed: r.observed,
        bound: r.bound,
        count: r.count,
      })),
    }),
  };
}
