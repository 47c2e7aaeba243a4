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
});
