import { createHash } from 'node:crypto';
import type { DriftAlert } from '@driftline/schemas';
import { alertName } from '../alert.js';
import type { SequentialAlarm, SequentialThresholds } from './detector.js';

/** Where and on what an alarm happened: one (model, version, feature) of one source partition. */
export interface SequentialAlarmContext {
  readonly model: string;
  readonly version: string;
  readonly referenceId: string;
  readonly feature: string;
  readonly partition: number;
  /** Offset of the value that completed the alarming check. */
  readonly offset: number;
  /** Its event time. */
  readonly eventTime: number;
  /** The drift window (tumbling, event time) the value falls in. */
  readonly windowStart: number;
  readonly windowEnd: number;
}

/** Deterministic id of the SEQUENTIAL_DRIFT alert of one feature in one drift window. */
export function sequentialAlertId(model: string, version: string, feature: string, windowStart: number): string {
  return createHash('sha256')
    .update(JSON.stringify([model, version, windowStart, 'SEQUENTIAL_DRIFT', feature]))
    .digest('hex')
    .slice(0, 32);
}

/**
 * SEQUENTIAL_DRIFT alert. Its id hashes (model, version, feature, window start): at most one alert
 * per feature and drift window, whichever partition alarms first, so consumers that deduplicate
 * by id (alert-router, retrain-trigger) see one; the evidence names the partition and offset.
 * `feature` is cut like every alert's (`alertName`); the id hashes the whole name.
 */
export function sequentialAlert(
  ctx: SequentialAlarmContext,
  alarm: SequentialAlarm,
  th: SequentialThresholds,
): DriftAlert {
  return {
    alert_id: sequentialAlertId(ctx.model, ctx.version, ctx.feature, ctx.windowStart),
    kind: 'SEQUENTIAL_DRIFT',
    model: ctx.model,
    model_version: ctx.version,
    feature: alertName(ctx.feature),
    window_start: ctx.windowStart,
    window_end: ctx.windowEnd,
    event_time: ctx.eventTime,
    method: `sequential_${th.statistic}`,
    statistic: alarm.statistic,
    p_value: null,
    threshold: alarm.threshold,
    share_drifted: null,
    evidence: JSON.stringify({
      reference_id: ctx.referenceId,
      partition: ctx.partition,
      offset: ctx.offset,
      t: alarm.t,
      check: alarm.check,
      run_length: alarm.t - th.window + 1,
      window: th.window,
      every: th.every,
      ert: th.ert,
    }),
  };
}
