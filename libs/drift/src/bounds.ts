import {
  EVENT_TIME_MAX_FUTURE_LIMIT_MS,
  type EventTimeBounds,
  eventTimeProblem,
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
