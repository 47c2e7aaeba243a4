import { createHash } from 'node:crypto';
import { cutText } from '@driftline/core';
import type { ExpectationResult } from '@driftline/quality';
import type { AlertKind, DriftAlert } from '@driftline/schemas';
import type { MethodResult, WindowVerdict } from './decide.js';
import { MISSING_SHARE_EXPECTATION, type MissingShareCheck, NO_MISSING_SHARE_CHECK } from './missing-share.js';

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
    feature: alertName(r.feature),
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
 * Items an alert's evidence lists in detail (drifted features, failed expectations), the first in
 * its order; the rest are counted. alerts.v1 keeps the broker's 1 MB `max.message.bytes`: a
 * FEATURE_DRIFT alert listing all of 8,000 drifted features (~147 B each) was refused and its
 * window quarantined (found by a review).
 */
export const ALERT_LIST_MAX_ITEMS = 100;
/**
 * UTF-8 bytes of the JSON of an evidence's list: long names fill it first. 900 KiB leaves alerts.v1's
 * 1 MB room for the rest of the alert (every other field is bounded). A quarter of it, first, cut
 * names the whole list had fit before, and the retrain policy's `key_features` missed a key feature
 * it had seen (found by a review).
 */
export const ALERT_LIST_MAX_BYTES = 900 * 1024;
/** Longest feature name an alert carries (`feature`, the evidence's names): longer ones are cut, ending in `…`. */
export const ALERT_NAME_MAX_CHARS = 1_000;

function capText(text: string, max: number): string {
  return text.length <= max ? text : `${cutText(text, max)}…`;
}

/** A feature name as an alert carries it: reference columns' names are not bounded anywhere else. */
export function alertName(name: string): string {
  return capText(name, ALERT_NAME_MAX_CHARS);
}

/**
 * The entries of the first `items` whose JSON array fits `ALERT_LIST_MAX_BYTES` (always the first
 * one: its name is at most ALERT_NAME_MAX_CHARS, 6 bytes each escaped).
 */
function boundedList<T, E>(items: readonly T[], entry: (item: T, index: number) => E): E[] {
  const out: E[] = [];
  let bytes = 2;
  for (const item of items) {
    const e = entry(item, out.length);
    const size = Buffer.byteLength(JSON.stringify(e)) + (out.length > 0 ? 1 : 0);
    if (out.length > 0 && bytes + size > ALERT_LIST_MAX_BYTES) break;
    out.push(e);
    bytes += size;
  }
  return out;
}

/**
 * Most severe first: by p-value where the method has one (ks, chi2: the decision is p < alpha, and
 * chi-square statistics of different degrees of freedom do not compare), then the larger statistic
 * (psi, Jensen–Shannon), then the feature name, so the order (and a replay's alert) is deterministic.
 */
function bySeverity(a: MethodResult, b: MethodResult): number {
  const pa = nullable(a.pValue) ?? Number.POSITIVE_INFINITY;
  const pb = nullable(b.pValue) ?? Number.POSITIVE_INFINITY;
  if (pa !== pb) return pa - pb;
  if (a.statistic !== b.statistic) return b.statistic - a.statistic;
  return a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0;
}

/**
 * At most one FEATURE_DRIFT and one PREDICTION_DRIFT alert per (model, version, window), built only
 * from the window's data (event_time = window end), so a replay produces byte-identical alerts.
 * FEATURE_DRIFT's `method`/`statistic`/`p_value` are the most severe drifted feature's; its evidence
 * lists the drifted features most severe first — ALERT_LIST_MAX_ITEMS in detail, then names only,
 * within ALERT_LIST_MAX_BYTES — with `drifted_count` (all of them) and `drifted_truncated` (some
 * not named). PREDICTION_DRIFT lists at most the two prediction features.
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
    const ranked = [...verdict.drifted].sort(bySeverity);
    const top = ranked[0]!;
    // Past the detailed rows, names only: the retrain policy's key_features reads `drifted[].feature`.
    const listed = boundedList(ranked, (r, i) =>
      i < ALERT_LIST_MAX_ITEMS ? evidenceRow(r) : { feature: alertName(r.feature) },
    );
    alerts.push({
      ...base,
      alert_id: alertId(ctx.model, ctx.version, ctx.windowStart, 'FEATURE_DRIFT'),
      kind: 'FEATURE_DRIFT',
      feature: verdict.drifted.length === 1 ? alertName(top.feature) : null,
      method: top.method,
      statistic: top.statistic,
      p_value: nullable(top.pValue),
      threshold: top.threshold,
      share_drifted: verdict.shareDrifted,
      evidence: JSON.stringify({
        ...common,
        features: verdict.features,
        drifted_count: ranked.length,
        drifted_truncated: listed.length < ranked.length,
        drifted: listed,
      }),
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
  return capText(reason, QUARANTINE_REASON_MAX_CHARS);
}

/**
 * The alert for a (model, version, window) whose drift could not be computed or stored, or whose
 * alerts were refused, and was quarantined: deterministic (id from the window, event_time = window
 * end), so a replay that quarantines it again yields the same alert. It carries no statistic (0,
 * NaN-free); the evidence holds the code and the reason.
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

/** A failure a DATA_QUALITY alert lists: a declared expectation's, or the built-in missing-share check's (with its p-value). */
interface QualityFailure {
  readonly feature: string;
  readonly expectation: string;
  readonly observed: number;
  readonly bound: number;
  readonly count: number;
  readonly pValue?: number | null;
}

/**
 * One DATA_QUALITY alert per (model, version, window) with at least one failed expectation or
 * built-in missing-share failure (`missing`, from `missingShareCheck`), or undefined. Declared
 * expectations count only in a window of at least `minEvents` events (`ctx.events`; the drift
 * alerts' minimum): one event with a null had failed `max_null_rate 0.05` and raised an alert,
 * which also holds retraining (found by a review); the built-in check gates its features itself.
 * Their `data_quality_windows` rows are written whatever the count.
 * Deterministic (id from the window and kind, event_time = window end), so a replay yields the
 * same alert. The failures are listed by feature, a feature's declared ones (in evaluation order:
 * type, null_rate, range, categories, cardinality) before its `missing_share`; `method`,
 * `statistic`, `threshold` and `p_value` (null but for `missing_share`) are the first's; `feature`
 * is set when a single feature failed; the evidence lists the first ALERT_LIST_MAX_ITEMS failures
 * within ALERT_LIST_MAX_BYTES, with `expectations` (declared ones evaluated),
 * `missing_share_checks` (features the built-in check measured), `missing_share_alpha` (its level;
 * null when it measured none), `failed_count` (all failures) and `failed_truncated`.
 */
export function dataQualityAlert(
  ctx: AlertContext,
  results: readonly ExpectationResult[],
  options: { readonly minEvents: number; readonly missing?: MissingShareCheck },
): DriftAlert | undefined {
  const missing = options.missing ?? NO_MISSING_SHARE_CHECK;
  const builtIn = missing.failed.map(
    (f): QualityFailure => ({
      feature: f.feature,
      expectation: MISSING_SHARE_EXPECTATION,
      observed: f.observed,
      bound: f.bound,
      count: f.count,
      pValue: nullable(f.pValue),
    }),
  );
  const declared: QualityFailure[] = ctx.events >= options.minEvents ? results.filter((r) => !r.passed) : [];
  // Stable: a feature's declared failures keep their order and come before its built-in one.
  const failed =
    builtIn.length === 0
      ? declared
      : [...declared, ...builtIn].sort((a, b) => (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0));
  const first = failed[0];
  if (first === undefined) return undefined;
  const features = new Set(failed.map((r) => r.feature));
  const listed = boundedList(failed.slice(0, ALERT_LIST_MAX_ITEMS), (r) => ({
    feature: alertName(r.feature),
    expectation: r.expectation,
    observed: r.observed,
    bound: r.bound,
    count: r.count,
    ...(r.pValue === undefined ? {} : { p_value: r.pValue }),
  }));
  return {
    alert_id: alertId(ctx.model, ctx.version, ctx.windowStart, 'DATA_QUALITY'),
    kind: 'DATA_QUALITY',
    model: ctx.model,
    model_version: ctx.version,
    feature: features.size === 1 ? alertName(first.feature) : null,
    window_start: ctx.windowStart,
    window_end: ctx.windowEnd,
    event_time: ctx.windowEnd,
    method: first.expectation,
    statistic: first.observed,
    p_value: first.pValue ?? null,
    threshold: first.bound,
    share_drifted: null,
    evidence: JSON.stringify({
      events: ctx.events,
      late_events: ctx.lateEvents,
      expectations: results.length,
      missing_share_checks: missing.results.length,
      missing_share_alpha: missing.results[0]?.alpha ?? null,
      failed_count: failed.length,
      failed_truncated: listed.length < failed.length,
      failed: listed,
    }),
  };
}
