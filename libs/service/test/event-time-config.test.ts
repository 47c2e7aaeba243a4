import { ConfigError, DEFAULT_EVENT_TIME_BOUNDS, parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { baseEnvShape, toCommonConfig } from '../src/common-config.js';

const parse = (env: Record<string, string>) => toCommonConfig(parseEnv(baseEnvShape, env)).eventTime;

describe('event-time bounds configuration', () => {
  it('defaults to 1 hour into the future and 2000-01-01', () => {
    expect(parse({})).toEqual(DEFAULT_EVENT_TIME_BOUNDS);
  });

  it('parses a duration and an ISO date or date-time', () => {
    expect(parse({ DRIFTLINE_EVENT_TIME_MAX_FUTURE: '1d', DRIFTLINE_EVENT_TIME_MIN: '1950-06-01' })).toEqual({
      maxFutureMs: 86_400_000,
      minMs: Date.UTC(1950, 5, 1),
    });
    expect(parse({ DRIFTLINE_EVENT_TIME_MIN: '2020-01-01T12:00:00Z' }).minMs).toBe(Date.UTC(2020, 0, 1, 12));
  });

  it('names the variable when a bound is wrong or beyond what ClickHouse can store', () => {
    const error = (env: Record<string, string>) => {
      try {
        parse(env);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as ConfigError).message;
      }
      throw new Error('expected a ConfigError');
    };
    expect(error({ DRIFTLINE_EVENT_TIME_MIN: '1899-12-31' })).toMatch(/^DRIFTLINE_EVENT_TIME_MIN: must be 1900-01-01/);
    expect(error({ DRIFTLINE_EVENT_TIME_MIN: 'yesterday' })).toMatch(/^DRIFTLINE_EVENT_TIME_MIN: must be an ISO date/);
    expect(error({ DRIFTLINE_EVENT_TIME_MIN: '2020-13-45' })).toMatch(/^DRIFTLINE_EVENT_TIME_MIN: must be a valid/);
    expect(error({ DRIFTLINE_EVENT_TIME_MAX_FUTURE: '2y' })).toMatch(/^DRIFTLINE_EVENT_TIME_MAX_FUTURE: must be a dur/);
    expect(error({ DRIFTLINE_EVENT_TIME_MAX_FUTURE: '400d' })).toMatch(/must be at most 366d/);
  });

  it('refuses a day or time that does not exist: Date.parse rolled 2024-02-30 over into March', () => {
    for (const text of ['2024-02-30', '2023-02-29', '2024-04-31', '2024-01-01T25:00:00Z', '2024-01-01T12:61:00Z'])
      expect(() => parse({ DRIFTLINE_EVENT_TIME_MIN: text })).toThrow(
        /^DRIFTLINE_EVENT_TIME_MIN: must be a valid ISO date: that day or time does not exist/,
      );
    expect(parse({ DRIFTLINE_EVENT_TIME_MIN: '2024-02-29' }).minMs).toBe(Date.UTC(2024, 1, 29));
    expect(parse({ DRIFTLINE_EVENT_TIME_MIN: '2024-03-01T12:30+02:00' }).minMs).toBe(Date.UTC(2024, 2, 1, 10, 30));
    // A date-time without a zone was read in the machine's local time.
    expect(() => parse({ DRIFTLINE_EVENT_TIME_MIN: '2024-01-01T00:00:00' })).toThrow(/must be an ISO date/);
  });

  it('refuses a minimum in the future: every event would be dead-lettered', () => {
    const now = Date.UTC(2026, 0, 1);
    const at = (min: string, maxFuture = '1h') =>
      toCommonConfig(
        parseEnv(baseEnvShape, { DRIFTLINE_EVENT_TIME_MIN: min, DRIFTLINE_EVENT_TIME_MAX_FUTURE: maxFuture }),
        now,
      );
    expect(() => at('2999-01-01')).toThrow(
      /^DRIFTLINE_EVENT_TIME_MIN: must not be in the future \(2999-01-01T00:00:00\.000Z\)/,
    );
    // Later than now but within now + the allowed skew: still only future-skewed events would pass.
    expect(() => at('2026-01-01T00:30:00Z')).toThrow(/^DRIFTLINE_EVENT_TIME_MIN: must not be in the future/);
    expect(at('2025-12-31').eventTime.minMs).toBe(Date.UTC(2025, 11, 31));
    expect(at('2026-01-01').eventTime.minMs).toBe(now);
  });
});
