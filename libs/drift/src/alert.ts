import { createHash } from 'node:crypto';
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
  return reason.length <= QUARANTINE_REASON_MAX_CHARS ? reason : `${reason.slice(0, QUARANTINE_REASON_MAX_CHARS)}…`;
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
