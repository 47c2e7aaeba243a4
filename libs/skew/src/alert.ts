import { createHash } from 'node:crypto';
import type { DriftAlert } from '@driftline/schemas';
import type { SkewGroupKey } from './batch.js';
import type { Tolerance } from './compare.js';
import { type SkewCounts, summarize } from './counts.js';

/** When a window's feature raises TRAINING_SERVING_SKEW. */
export interface SkewAlertRule {
  /** Share mismatched strictly above this alerts. */
  readonly maxShareMismatched: number;
  /** Fewer comparisons than this never alert: sampling error on a handful of values is large. */
  readonly minCompared: number;
}

export const DEFAULT_ALERT_RULE: SkewAlertRule = { maxShareMismatched: 0.01, minCompared: 30 };

export function breaches(counts: Readonly<SkewCounts>, rule: SkewAlertRule): boolean {
  return counts.compared >= rule.minCompared && counts.mismatched / counts.compared > rule.maxShareMismatched;
}

/** Deterministic: one id per (model, version, feature, window), whatever instance or replay raises it. */
export function skewAlertId(key: SkewGroupKey, feature: string): string {
  return createHash('sha256')
    .update(JSON.stringify([key.model, key.version, key.windowStart, 'TRAINING_SERVING_SKEW', feature]))
    .digest('hex')
    .slice(0, 32);
}

const finite = (v: number | null): number | null => (v === null || !Number.isFinite(v) ? null : v);

/** How far inside the event-time bound a held alert is released: a minute, or half a short bound. */
export const releaseMarginMs = (maxFutureMs: number): number => Math.min(60_000, maxFutureMs / 2);

/** The latest window end whose alert may be raised at wall-clock `now` (`skewAlertTime`'s rule). */
export const releaseHorizon = (now: number, maxFutureMs: number): number =>
  now + maxFutureMs - releaseMarginMs(maxFutureMs);

/** A window as the release sweep reads it from skew_windows. */
export interface WrittenWindow extends SkewGroupKey {
  readonly windowEnd: number;
  /** When a batch last wrote one of its rows (the latest over partitions and features). */
  readonly lastWrittenAt: number;
}

/**
 * Whether a window's alert is the release sweep's to raise at `now`: its end is within the release
 * horizon now, and was beyond it when a batch last wrote the window — that batch could not raise
 * the alert (consumers would have refused it), and no batch has touched the window since. A window
 * last written once within the horizon was checked by that batch (or by its redelivery after a
 * crash), so the sweep leaves it alone: a restart re-raises only what was held.
 */
export function awaitsRelease(window: WrittenWindow, now: number, maxFutureMs: number): boolean {
  return (
    window.windowEnd <= releaseHorizon(now, maxFutureMs) &&
    window.windowEnd > releaseHorizon(window.lastWrittenAt, maxFutureMs)
  );
}

/** How far back a sweep with no earlier position looks: a day of window ends, at most 1,440 windows. */
export const releaseCatchUpMs = (windowMs: number): number => Math.min(86_400_000, 1_440 * windowMs);

/**
 * How far back every sweep looks again, besides what came due since the last one: the clock
 * difference between instances it tolerates. A window one instance's sweep passed (not breaching
 * then) may be written breaching by another whose clock, a little behind, still counts it as held;
 * after a rebalance only the first one's sweeps would see it (found by a review). Re-checking costs
 * a query of these few minutes' windows per tick; an alert already raised here is not raised again.
 */
export const RELEASE_OVERLAP_MS = 5 * 60_000;

/**
 * The window ends a release sweep at `now` covers, up to the release horizon: from where the last
 * sweep of this process got to (`sweptTo`), or at most {@link RELEASE_OVERLAP_MS} before the horizon
 * when it got that far; with no position (start-up, a partition assignment), `releaseCatchUpMs`
 * back (what a restart may have left held). A position is never cut short: a sweep failing through
 * an outage resumes where it stopped (a clamp to the catch-up span skipped what came due meanwhile,
 * found by a review); each sweep reads a bounded number of pages.
 */
export function releaseRange(
  sweptTo: number | undefined,
  now: number,
  windowMs: number,
  maxFutureMs: number,
): { readonly after: number; readonly upTo: number } {
  const upTo = releaseHorizon(now, maxFutureMs);
  if (sweptTo === undefined) return { after: upTo - releaseCatchUpMs(windowMs), upTo };
  return { after: Math.min(sweptTo, upTo - RELEASE_OVERLAP_MS), upTo };
}

/**
 * The event_time of a window's alert raised at wall-clock `now`, or undefined while it must wait.
 * Consumers of alerts.v1 (retrain-trigger, alert-router) dead-letter an alert whose event_time or
 * window_end lies more than the event-time bound (`maxFutureMs`) ahead of their clock. Skew windows
 * are open-ended, so a window can breach long before it ends (30 min into a 2 h window), or hold
 * predictions stamped up to the bound ahead: its alert waits until the window's end is within
 * `now + maxFutureMs`, less a margin for consumers' clocks (`releaseMarginMs`). Then event_time = `now` clamped into the window: the processing time while
 * the window is open (when it was raised), the window's end once it has closed (the drift alerts'
 * convention: the same on every replay), never beyond `now + maxFutureMs`.
 */
export function skewAlertTime(
  key: SkewGroupKey,
  windowMs: number,
  now: number,
  maxFutureMs: number,
): number | undefined {
  const windowEnd = key.windowStart + windowMs;
  // Released with a margin: a consumer whose clock is a little behind this one's would refuse
  // an alert released right at the bound (and it is not raised again).
  if (windowEnd > releaseHorizon(now, maxFutureMs)) return undefined;
  return Math.min(Math.max(now, key.windowStart), windowEnd);
}

/**
 * The TRAINING_SERVING_SKEW alert of one feature of one window, from the window's counts over every
 * partition: statistic = share mismatched, threshold = the rule's bound, window_end = the window's
 * end (the window identifies the alert downstream), event_time = `eventTime` (from `skewAlertTime`),
 * the counts and staleness in `evidence`.
 */
export function skewAlert(
  key: SkewGroupKey,
  feature: string,
  windowMs: number,
  eventTime: number,
  counts: Readonly<SkewCounts>,
  rule: SkewAlertRule,
  context: { readonly sampleRate: number; readonly tolerance: Tolerance },
): DriftAlert {
  const s = summarize(counts);
  return {
    alert_id: skewAlertId(key, feature),
    kind: 'TRAINING_SERVING_SKEW',
    model: key.model,
    model_version: key.version,
    feature,
    window_start: key.windowStart,
    window_end: key.windowStart + windowMs,
    event_time: eventTime,
    method: 'share_mismatched',
    statistic: s.shareMismatched ?? 0,
    p_value: null,
    threshold: rule.maxShareMismatched,
    share_drifted: null,
    evidence: JSON.stringify({
      sampled: counts.sampled,
      compared: counts.compared,
      mismatched: counts.mismatched,
      mean_abs_diff: finite(s.meanAbsDiff),
      missing_in_store: counts.missingInStore,
      missing_in_prediction: counts.missingInPrediction,
      newer_row: counts.newerRow,
      expired: counts.expired,
      staleness_p50_ms: finite(s.stalenessP50Ms),
      staleness_p99_ms: finite(s.stalenessP99Ms),
      sample_rate: context.sampleRate,
      min_compared: rule.minCompared,
      tolerance: context.tolerance,
    }),
  };
}
