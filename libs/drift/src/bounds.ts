import {
  EVENT_TIME_MAX_FUTURE_LIMIT_MS,
  type EventTimeBounds,
  eventTimeProblem,
  formatDuration,
  PoisonRecordError,
} from '@driftline/core';
import type { PartialsMessage } from './messages.js';

/**
 * Why a restored window frontier (drift_progress: stage 1's closedUntil, the merge stage's last
 * completed window start) cannot be used at wall-clock `now`, or undefined when it can. A frontier
 * is derived from accepted event times, so it lies within the event-time bounds widened by one
 * window (it is aligned up to a window end); anything else was written before the bounds existed
 * (a µs event_time) and would make every later event late forever.
 */
export function restoredFrontierProblem(
  position: number,
  sizeMs: number,
  now: number,
  bounds: EventTimeBounds,
): string | undefined {
  return eventTimeProblem(position, now, widened(bounds, sizeMs), 'position');
}

function widened(bounds: EventTimeBounds, sizeMs: number): EventTimeBounds {
  return { maxFutureMs: bounds.maxFutureMs + sizeMs, minMs: bounds.minMs - sizeMs };
}

/**
 * Rejects a partials message whose window lies outside the event-time bounds (a poison record):
 * stage 1 never emits one, but a message written before the bounds existed would complete an
 * absurd window in the merge stage, after which every real window counts as already completed.
 */
export function checkPartialsTime(message: PartialsMessage, now: number, bounds: EventTimeBounds): PartialsMessage {
  const size = Math.min(message.windowEnd - message.windowStart, EVENT_TIME_MAX_FUTURE_LIMIT_MS);
  const b = widened(bounds, size);
  const problem =
    eventTimeProblem(message.windowStart, now, b, 'windowStart') ??
    eventTimeProblem(message.windowEnd, now, b, 'windowEnd') ??
    (message.type === 'closed' ? eventTimeProblem(message.closedUntil, now, b, 'closedUntil') : undefined);
  if (problem !== undefined) throw new PoisonRecordError('VALIDATION_FAILED', `drift partials: ${problem}`);
  return message;
}

/**
 * Why a partials message cannot be merged by a merge stage measuring windows of `windowMs`
 * (DRIFTLINE_DRIFT_WINDOW), or undefined when it can: its window is of another length, sent by a
 * stage-one instance of the group configured with another size. The merge keeps its pending
 * windows by start alone, so it fused windows of two sizes: with a 1 s and a 2 s instance in one
 * group, windows of 600 and 200 events where either size alone gave 400 each, ends taken from
 * whichever message came first (found by a review).
 */
export function partialsWindowProblem(message: PartialsMessage, windowMs: number): string | undefined {
  const size = message.windowEnd - message.windowStart;
  if (size === windowMs) return undefined;
  const source = `${message.source.topic}[${message.source.partition}]`;
  return `drift partials: a window of ${formatDuration(size)} from ${source} (window start ${message.windowStart}), this merge's DRIFTLINE_DRIFT_WINDOW is ${formatDuration(windowMs)}: refused, not merged (every instance of one DRIFTLINE_DRIFT_GROUP must have the same DRIFTLINE_DRIFT_WINDOW; a new size needs a new group)`;
}

/** Rejects (a poison record) a partials message of another window length than `windowMs`: see {@link partialsWindowProblem}. */
export function checkPartialsWindow(message: PartialsMessage, windowMs: number): PartialsMessage {
  const problem = partialsWindowProblem(message, windowMs);
  if (problem !== undefined) throw new PoisonRecordError('VALIDATION_FAILED', problem);
  return message;
}
