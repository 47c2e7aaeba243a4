import { MAX_TIMER_MS, parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { clickhouseEnvShape, DEFAULT_CLICKHOUSE_TIMEOUT_MS, toClickHouseConfig } from '../src/config.js';
import { clickhouseHostEnvShape } from '../src/http-host/config.js';

const parse = (env: Record<string, string>) => parseEnv(clickhouseEnvShape, env);

describe('ClickHouse variables (found by a review)', () => {
  it('DRIFTLINE_CLICKHOUSE_URL: http(s), no query, fragment or path (it ended as "internal error")', () => {
    for (const [url, message] of [
      ['localhost:8123', 'must be an http:// or https:// URL'],
      ['ftp://h:8123', 'must be an http:// or https:// URL'],
      ['http://h:1/?foo=bar', 'must have no query (?…)'],
      ['http://h:1/#x', 'must have no fragment (#…)'],
      // The client would read the path as the database; that is DRIFTLINE_CLICKHOUSE_DATABASE.
      ['http://h:1/other_db', 'must have no path'],
    ] as const)
      expect(() => parse({ DRIFTLINE_CLICKHOUSE_URL: url })).toThrow(`DRIFTLINE_CLICKHOUSE_URL: ${message}`);
    expect(toClickHouseConfig(parse({ DRIFTLINE_CLICKHOUSE_URL: 'https://h:8443' }))).toMatchObject({
      mode: 'server',
      url: 'https://h:8443',
    });
  });

  it('timeouts: at least 100 ms and at most MAX_TIMER_MS (25d fired after 1 ms)', () => {
    expect(() => parse({ DRIFTLINE_CLICKHOUSE_TIMEOUT: '25d' })).toThrow(
      `DRIFTLINE_CLICKHOUSE_TIMEOUT: must be at most ${MAX_TIMER_MS} ms`,
    );
    expect(() => parse({ DRIFTLINE_CLICKHOUSE_TIMEOUT: '1' })).toThrow(/must be at least 100 ms/);
    expect(parse({}).DRIFTLINE_CLICKHOUSE_TIMEOUT).toBe(DEFAULT_CLICKHOUSE_TIMEOUT_MS);
    const host = (env: Record<string, string>) => parseEnv(clickhouseHostEnvShape, env);
    expect(() => host({ DRIFTLINE_CLICKHOUSE_HOST_TIMEOUT: '30d' })).toThrow(
      `DRIFTLINE_CLICKHOUSE_HOST_TIMEOUT: must be at most ${MAX_TIMER_MS} ms`,
    );
    expect(host({ DRIFTLINE_CLICKHOUSE_HOST_TIMEOUT: '24d' }).DRIFTLINE_CLICKHOUSE_HOST_TIMEOUT).toBe(24 * 86_400_000);
    // The host's start-up patience drives a timer too (it accepted 30d, then gave up at once).
    expect(() => host({ DRIFTLINE_STARTUP_TIMEOUT: '30d' })).toThrow(
      `DRIFTLINE_STARTUP_TIMEOUT: must be at most ${MAX_TIMER_MS} ms`,
    );
  });

  it('names and passwords compared as they are refuse white space at an end', () => {
    expect(() => parse({ DRIFTLINE_CLICKHOUSE_USERNAME: ' admin' })).toThrow(
      /^DRIFTLINE_CLICKHOUSE_USERNAME: must not start or end with white space/,
    );
    const host = (env: Record<string, string>) => parseEnv(clickhouseHostEnvShape, env);
    expect(() => host({ DRIFTLINE_CLICKHOUSE_HOST_PASSWORD: 'secret ' })).toThrow(
      /^DRIFTLINE_CLICKHOUSE_HOST_PASSWORD: must not start or end with white space$/,
    );
    expect(() => host({ DRIFTLINE_CLICKHOUSE_HOST_USER: '   ' })).toThrow(/^DRIFTLINE_CLICKHOUSE_HOST_USER: /);
    expect(host({ DRIFTLINE_CLICKHOUSE_HOST_PASSWORD: '' }).DRIFTLINE_CLICKHOUSE_HOST_PASSWORD).toBe('');
  });

  it('DRIFTLINE_CLICKHOUSE_PATH: not empty, no control character (a newline made a second warehouse at "/data/a<LF>b")', () => {
    const host = (env: Record<string, string>) => parseEnv(clickhouseHostEnvShape, env);
    for (const shape of [parse, host]) {
      for (const path of ['/data/a\nb', '/data/a\tb', '/data/\u001b[2Jchdb', '/data/\u009bchdb']) {
        expect(() => shape({ DRIFTLINE_CLICKHOUSE_PATH: path })).toThrow(
          /^DRIFTLINE_CLICKHOUSE_PATH: must not contain control characters \(a newline, a tab: a paste\?\)/,
        );
      }
      expect(() => shape({ DRIFTLINE_CLICKHOUSE_PATH: '' })).toThrow(/^DRIFTLINE_CLICKHOUSE_PATH: /);
      expect(shape({ DRIFTLINE_CLICKHOUSE_PATH: '/data/é chdb' }).DRIFTLINE_CLICKHOUSE_PATH).toBe('/data/é chdb');
      expect(shape({}).DRIFTLINE_CLICKHOUSE_PATH).toBe('.driftline/chdb');
    }
  });
});
