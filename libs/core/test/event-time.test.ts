import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  checkEventTime,
  DEFAULT_EVENT_TIME_BOUNDS,
  type EventTimeBounds,
  eventTimeEnvShape,
  eventTimeProblem,
  humanSpan,
  PoisonRecordError,
  parseEnv,
  toEventTimeBounds,
  windowTimeProblem,
} from '../src/index.js';

const NOW = Date.UTC(2024, 11, 2, 12, 0, 0); // 2024-12-02T12:00:00Z
const B = DEFAULT_EVENT_TIME_BOUNDS;

describe('event-time bounds', () => {
  it('defaults: 1 hour into the future, not before 2000-01-01', () => {
    expect(B).toEqual({ maxFutureMs: 3_600_000, minMs: Date.parse('2000-01-01T00:00:00Z') });
  });

  it('accepts integer ms from the minimum up to now + max future, inclusive', () => {
    for (const t of [NOW, NOW - 86_400_000 * 365 * 10, B.minMs, NOW + B.maxFutureMs]) {
      expect(eventTimeProblem(t, NOW, B)).toBeUndefined();
      expect(checkEventTime(t, NOW, B)).toBe(t);
    }
  });

  it('says microseconds for a µs value, with how far in the future it is', () => {
    expect(eventTimeProblem(1_733_140_000_000_000, NOW, B)).toBe(
      'event_time 1733140000000000 is 54,864 years in the future (at most 1 hour allowed): microseconds?',
    );
  });

  it('says nanoseconds for a ns value and seconds for a seconds value', () => {
    expect(eventTimeProblem(NOW * 1_000_000, NOW, B)).toMatch(/years in the future .*: nanoseconds\?$/);
    expect(eventTimeProblem(NOW / 1000, NOW, B)).toBe(
      'event_time 1733140800 (1970-01-21T01:25:40.800Z) is before the minimum 2000-01-01T00:00:00.000Z: seconds?',
    );
  });

  it('refuses a little too far in the future with the span, and pre-1900 / before-min times with the date', () => {
    expect(eventTimeProblem(NOW + B.maxFutureMs + 1, NOW, B)).toBe(
      `event_time ${NOW + B.maxFutureMs + 1} is 1 hour in the future (at most 1 hour allowed)`,
    );
    expect(eventTimeProblem(NOW + 3 * 86_400_000, NOW, B)).toMatch(/is 3 days in the future/);
    expect(eventTimeProblem(Date.UTC(1899, 0, 1), NOW, B)).toBe(
      `event_time ${Date.UTC(1899, 0, 1)} (1899-01-01T00:00:00.000Z) is before the minimum 2000-01-01T00:00:00.000Z`,
    );
    expect(eventTimeProblem(0, NOW, B)).toMatch(/^event_time 0 \(1970-01-01T00:00:00.000Z\) is before the minimum/);
    expect(eventTimeProblem(-1, NOW, B)).toMatch(/before the minimum/);
  });

  it('refuses non-integers and names the field', () => {
    expect(eventTimeProblem(1.5, NOW, B, 'window_start')).toBe(
      'window_start 1.5 is not an integer of epoch milliseconds',
    );
    expect(eventTimeProblem(Number.NaN, NOW, B)).toMatch(/not an integer/);
    expect(eventTimeProblem(Number.POSITIVE_INFINITY, NOW, B)).toMatch(/not an integer/);
    expect(eventTimeProblem(2 ** 60, NOW, B)).toMatch(/years in the future/);
    expect(eventTimeProblem('1733140000000', NOW, B)).toMatch(/not an integer/);
  });

  it('follows the configured bounds', () => {
    const wide: EventTimeBounds = { maxFutureMs: 86_400_000, minMs: Date.UTC(1900, 0, 1) };
    expect(eventTimeProblem(NOW + 23 * 3_600_000, NOW, wide)).toBeUndefined();
    expect(eventTimeProblem(Date.UTC(1950, 0, 1), NOW, wide)).toBeUndefined();
    expect(eventTimeProblem(NOW + 25 * 3_600_000, NOW, wide)).toMatch(/1 day in the future \(at most 1 day allowed\)/);
  });

  it('throws a poison VALIDATION_FAILED error whose message is the reason', () => {
    try {
      checkEventTime(NOW * 1000, NOW, B);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PoisonRecordError);
      expect((e as PoisonRecordError).code).toBe('VALIDATION_FAILED');
      expect((e as PoisonRecordError).retriable).toBe(false);
      expect((e as PoisonRecordError).message).toMatch(/microseconds\?$/);
    }
  });

  it('judges a window [start, end): end within the bounds, start from 1900 and strictly before end', () => {
    const end = NOW - 60_000;
    expect(windowTimeProblem(end - 600_000, end, NOW, B)).toBeUndefined();
    expect(windowTimeProblem(Date.UTC(1950, 0, 1), end, NOW, B)).toBeUndefined(); // only end has B's minimum
    expect(windowTimeProblem(end, end, NOW, B)).toBe(
      `window_start ${end} is not before window_end ${end} (an empty window)`,
    );
    expect(windowTimeProblem(end + 1, end, NOW, B)).toBe(
      `window_start ${end + 1} is not before window_end ${end} (inverted, 1 ms after it)`,
    );
    expect(windowTimeProblem(-9e15, end, NOW, B)).toMatch(
      /^window_start -9000000000000000 \(out of any date range\) is before the minimum 1900/,
    );
    expect(windowTimeProblem(end - 1, end * 1000, NOW, B)).toMatch(/^window_end \d+ is .* microseconds\?$/);
    expect(windowTimeProblem('x', end, NOW, B)).toMatch(/^window_start x is not an integer/);
  });

  it('says an inverted window is inverted, not that its start is in the future (found by a review)', () => {
    // window_end 20 minutes ago, window_start 15: was "is 0 ms in the future (at most 0 ms allowed): microseconds?".
    const start = NOW - 15 * 60_000;
    const end = NOW - 20 * 60_000;
    expect(windowTimeProblem(start, end, NOW, B)).toBe(
      `window_start ${start} is not before window_end ${end} (inverted, 5 minutes after it)`,
    );
    // A start beyond the future bound too: still the inversion, the one thing wrong with it relative to end.
    expect(windowTimeProblem(NOW + 2 * 3_600_000, end, NOW, B)).toMatch(/^window_start \d+ is not before window_end/);
    // A start in µs beside an end in ms: inverted, and the hint the old reason gave is kept (found by a review).
    const inMs = NOW - 30 * 60_000;
    expect(windowTimeProblem(inMs * 1000, end, NOW, B)).toMatch(
      new RegExp(
        `^window_start ${inMs * 1000} is not before window_end ${end} \\(inverted, .* after it\\): microseconds\\?$`,
      ),
    );
    // A start that is a time in ms gets no hint, nor one that read as µs is not before end.
    expect(windowTimeProblem(start, end, NOW, B)).not.toMatch(/microseconds/);
    expect(windowTimeProblem(NOW + 2 * 3_600_000, end, NOW, B)).not.toMatch(/microseconds/);
    expect(windowTimeProblem(end * 1000, end, NOW, B)).not.toMatch(/microseconds/);
    // Before end, only the 1900 floor applies to start (with its unit hint).
    expect(windowTimeProblem(Date.UTC(1899, 0, 1), end, NOW, B)).toMatch(
      /^window_start -\d+ \(1899-01-01T00:00:00\.000Z\) is before the minimum 1900/,
    );
  });

  it('spells spans for humans', () => {
    expect(humanSpan(500)).toBe('500 ms');
    expect(humanSpan(61_000)).toBe('1 minute');
    expect(humanSpan(2 * 3_600_000 + 5)).toBe('2 hours');
    expect(humanSpan(47 * 3_600_000)).toBe('1.9 days');
    expect(humanSpan(15 * 86_400_000)).toBe('15 days');
  });

  // A span of more years than 2^53 put commas into the exponent form: "3.168,808,781,402,895e+297 years" (a review).
  it('spells a span past 2^53 units in three significant digits, rounded down, without separators in it', () => {
    expect(humanSpan(1e308)).toBe('3.16e+297 years');
    expect(eventTimeProblem(1e308, NOW, B)).toBe(
      'event_time 1e+308 is 3.16e+297 years in the future (at most 1 hour allowed)',
    );
    expect(humanSpan(Number.MAX_SAFE_INTEGER * 31_557_600_000)).toBe('9,007,199,254,740,991 years');
    expect(humanSpan(2 ** 60 * 31_557_600_000)).toBe('1.15e+18 years');
  });
});

// One definition of the variables for the services and the SDK's connectionFromEnv.
describe('event-time bounds from the environment (eventTimeEnvShape, toEventTimeBounds)', () => {
  const bounds = (env: Record<string, string>, now = NOW) => toEventTimeBounds(parseEnv(eventTimeEnvShape, env), now);

  it('defaults when unset; a duration and an ISO date or date-time with a zone otherwise', () => {
    expect(bounds({})).toEqual(DEFAULT_EVENT_TIME_BOUNDS);
    expect(bounds({ DRIFTLINE_EVENT_TIME_MAX_FUTURE: '1d', DRIFTLINE_EVENT_TIME_MIN: '1950-06-01' })).toEqual({
      maxFutureMs: 86_400_000,
      minMs: Date.UTC(1950, 5, 1),
    });
    expect(bounds({ DRIFTLINE_EVENT_TIME_MIN: '2024-03-01T12:30+02:00' }).minMs).toBe(Date.UTC(2024, 2, 1, 10, 30));
    expect(bounds({ DRIFTLINE_EVENT_TIME_MIN: '2024-02-29' }).minMs).toBe(Date.UTC(2024, 1, 29));
  });

  it('names the variable of a bound that is wrong, missing a zone, a day that does not exist, before 1900 or in the future', () => {
    for (const [env, message] of [
      [{ DRIFTLINE_EVENT_TIME_MIN: '1899-12-31' }, /^DRIFTLINE_EVENT_TIME_MIN: must be 1900-01-01 or later/],
      [{ DRIFTLINE_EVENT_TIME_MIN: 'yesterday' }, /^DRIFTLINE_EVENT_TIME_MIN: must be an ISO date such as/],
      [{ DRIFTLINE_EVENT_TIME_MIN: '2024-01-01T00:00:00' }, /^DRIFTLINE_EVENT_TIME_MIN: must be an ISO date such as/],
      [{ DRIFTLINE_EVENT_TIME_MIN: '2024-02-30' }, /^DRIFTLINE_EVENT_TIME_MIN: must be a valid ISO date: that day/],
      [
        { DRIFTLINE_EVENT_TIME_MIN: '2024-12-02T12:30:00Z' },
        /^DRIFTLINE_EVENT_TIME_MIN: must not be in the future \(2024-12-02T12:30:00\.000Z\)/,
      ],
      [{ DRIFTLINE_EVENT_TIME_MAX_FUTURE: '400d' }, /^DRIFTLINE_EVENT_TIME_MAX_FUTURE: must be at most 366d/],
    ] as const) {
      expect(() => bounds(env)).toThrow(ConfigError);
      expect(() => bounds(env)).toThrow(message);
    }
  });
});
