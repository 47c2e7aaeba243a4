import { PoisonRecordError } from './errors.js';

/**
 * The window of event times every processor accepts, relative to its wall clock when the event is
 * read: integer epoch milliseconds, not before `minMs`, not more than `maxFutureMs` ahead of now.
 * An event outside it would move a watermark (drift), freeze a last-write-wins row (features) or
 * make a ClickHouse insert fail (joiner) for everyone sharing the partition: it is poison.
 */
export interface EventTimeBounds {
  /** Largest accepted skew into the future, in ms (event_time <= now + maxFutureMs). */
  readonly maxFutureMs: number;
  /** Earliest accepted event time, epoch ms (event_time >= minMs). */
  readonly minMs: number;
}

/** The bounds and the wall-clock time (ms) they are applied at: what a processor's edge check needs. */
export interface EventTimeCheck {
  readonly bounds: EventTimeBounds;
  readonly now: number;
}

/** Lowest minimum the configuration accepts: ClickHouse DateTime64 starts at 1900-01-01. */
export const EVENT_TIME_FLOOR_MS = Date.UTC(1900, 0, 1);
/** The latest time a JS Date (hence toISOString, a version name, a ClickHouse DateTime64) holds, in ms. */
export const MAX_DATE_MS = 8.64e15;

/** Largest skew into the future the configuration accepts (366 days). */
export const EVENT_TIME_MAX_FUTURE_LIMIT_MS = 366 * 86_400_000;

/**
 * Defaults. 1 hour into the future: the default of Kafka 4's broker for record timestamps ahead of
 * its clock (`log.message.timestamp.after.max.ms`); far above real clock skew (NTP: milliseconds),
 * and one accepted future event can hold a drift partition's watermark ahead by at most an hour.
 * 2000-01-01 as the minimum: older than any production ML event, while the usual bugs land before
 * it (0 for an unset field, seconds read as ms = January 1970, 1900 sentinels) and ClickHouse
 * DateTime64 cannot store pre-1900 times at all.
 */
export const DEFAULT_EVENT_TIME_BOUNDS: EventTimeBounds = {
  maxFutureMs: 3_600_000,
  minMs: Date.UTC(2000, 0, 1),
};

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const YEAR = 365.25 * DAY;

/**
 * "54,864": a whole number with thousands separators; one past 2^53 in three significant digits,
 * rounded down ("3.16e+297": its digits are not all exact, and grouping String(n) garbled the exponent form into
 * "3.168,808,781,402,895e+297", found by a review).
 */
function grouped(n: number): string {
  if (!Number.isSafeInteger(n)) {
    // Rounded down, as the spans are: never more than the truth.
    const [mantissa, exponent] = n.toExponential().split('e');
    return `${Math.floor(Number(mantissa) * 100) / 100}e${exponent}`;
  }
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** "54,864 years", "3.16e+297 years", "1.9 days", "2 hours", "12 minutes", "40 seconds" (rounded down; one decimal below 10). */
export function humanSpan(ms: number): string {
  const units: Array<[number, string]> = [
    [YEAR, 'year'],
    [DAY, 'day'],
    [HOUR, 'hour'],
    [MINUTE, 'minute'],
    [SECOND, 'second'],
  ];
  for (const [size, name] of units) {
    if (ms < size) continue;
    // One decimal below 10 units (rounded down, so never more than the truth): "1.9 days", "2 hours".
    const n = ms < 10 * size ? Math.floor((ms / size) * 10) / 10 : Math.floor(ms / size);
    return `${n < 10 ? String(n) : grouped(n)} ${name}${n === 1 ? '' : 's'}`;
  }
  return `${Math.max(0, Math.floor(ms))} ms`;
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? 'out of any date range' : d.toISOString();
}

function within(t: number, now: number, b: EventTimeBounds): boolean {
  return t >= b.minMs && t <= now + b.maxFutureMs;
}

/** A guess at the unit mistake behind an out-of-bounds time, when rescaling lands inside the bounds. */
function unitHint(t: number, now: number, b: EventTimeBounds): string {
  if (within(Math.trunc(t / 1_000), now, b)) return ': microseconds?';
  if (within(Math.trunc(t / 1_000_000), now, b)) return ': nanoseconds?';
  if (within(t * 1_000, now, b)) return ': seconds?';
  return '';
}

/**
 * Why `value` is not an acceptable event time at wall-clock `now`, or undefined when it is.
 * The text names the field and says what is wrong, e.g.
 * "event_time 1733140000000000 is 54,864 years in the future: microseconds?".
 */
export function eventTimeProblem(
  value: unknown,
  now: number,
  bounds: EventTimeBounds,
  field = 'event_time',
): string | undefined {
  // Within the bounds every integer is a safe one; an unsafe one is judged by its size (nanoseconds).
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    return `${field} ${String(value)} is not an integer of epoch milliseconds`;
  }
  const latest = now + bounds.maxFutureMs;
  if (value > latest) {
    return `${field} ${value} is ${humanSpan(value - now)} in the future (at most ${humanSpan(bounds.maxFutureMs)} allowed)${unitHint(value, now, bounds)}`;
  }
  if (value < bounds.minMs) {
    return `${field} ${value} (${iso(value)}) is before the minimum ${iso(bounds.minMs)}${unitHint(value, now, bounds)}`;
  }
  return undefined;
}

/**
 * Why the event-time window [start, end) an event reports (an alert's `window_start`/
 * `window_end`) is not acceptable, or undefined: `end` within the bounds, `start` not before
 * 1900 (ClickHouse DateTime64) and strictly before `end` (an empty window is no evidence, and one
 * had hung the retrain policy). A `start` at or after `end` is said to be so first: bounded by
 * `end` as the latest time, an inverted window in the past read "is 0 ms in the future (at most
 * 0 ms allowed): microseconds?" (found by a review). A start past the future bound that, read as
 * microseconds, lies in [bounds.minMs, end) keeps that hint after the inversion.
 */
export function windowTimeProblem(
  start: unknown,
  end: unknown,
  now: number,
  bounds: EventTimeBounds,
): string | undefined {
  const endProblem = eventTimeProblem(end, now, bounds, 'window_end');
  if (endProblem !== undefined) return endProblem;
  if (Number.isInteger(start) && (start as number) >= (end as number)) {
    const inverted =
      start === end ? 'an empty window' : `inverted, ${humanSpan((start as number) - (end as number))} after it`;
    // A start in µs beside an end in ms is "inverted" too: the hint the old order of checks gave is
    // kept when start is no time in ms (past the future bound) but, read as µs, an accepted one before end.
    const asMs = Math.trunc((start as number) / 1_000);
    const microseconds = (start as number) > now + bounds.maxFutureMs && asMs >= bounds.minMs && asMs < (end as number);
    const hint = microseconds ? ': microseconds?' : '';
    return `window_start ${start} is not before window_end ${end} (${inverted})${hint}`;
  }
  // Before `end` from here: only the floor applies (`end` as the latest time keeps the unit hints sane).
  return eventTimeProblem(
    start,
    now,
    { minMs: EVENT_TIME_FLOOR_MS, maxFutureMs: (end as number) - now },
    'window_start',
  );
}

/** Returns `value` when it is an acceptable event time; otherwise a PoisonRecordError (VALIDATION_FAILED). */
export function checkEventTime(value: unknown, now: number, bounds: EventTimeBounds, field = 'event_time'): number {
  const problem = eventTimeProblem(value, now, bounds, field);
  if (problem !== undefined) {
    throw new PoisonRecordError('VALIDATION_FAILED', problem, { details: { field, value } });
  }
  return value as number;
}
