import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  type Logger,
  MAX_REDIS_TIMEOUT_MS,
  parseEnv,
  redisEnvShape,
  silentLogger,
  toRedisConnectionConfig,
} from '../src/index.js';

describe('redis connection config', () => {
  it('parses URL, password and TLS', () => {
    const env = parseEnv(redisEnvShape, {
      DRIFTLINE_REDIS_URL: 'rediss://cache:6380/2',
      DRIFTLINE_REDIS_PASSWORD: 's3cret',
      DRIFTLINE_REDIS_TLS: 'true',
    });
    expect(toRedisConnectionConfig(env)).toEqual({ url: 'rediss://cache:6380/2', password: 's3cret', tls: true });
  });

  it('defaults TLS off and leaves out an absent password (no `password: undefined`)', () => {
    const config = toRedisConnectionConfig(parseEnv(redisEnvShape, { DRIFTLINE_REDIS_URL: 'redis://localhost:6379' }));
    expect(config).toEqual({ url: 'redis://localhost:6379', tls: false });
    expect('password' in config).toBe(false);
  });

  it('rejects a URL of another scheme, naming the variable', () => {
    expect(() => parseEnv(redisEnvShape, { DRIFTLINE_REDIS_URL: 'http://localhost:6379' })).toThrow(
      new ConfigError('DRIFTLINE_REDIS_URL', 'must be a redis:// or rediss:// URL (got "http://localhost:6379")'),
    );
  });

  it('requires the URL', () => {
    expect(() => parseEnv(redisEnvShape, {})).toThrow(/^DRIFTLINE_REDIS_URL: /);
  });
});

describe('redis timeouts (DRIFTLINE_REDIS_COMMAND_TIMEOUT, _READ_TIMEOUT, _CONNECT_TIMEOUT)', () => {
  const url = { DRIFTLINE_REDIS_URL: 'redis://localhost:6379' };
  const config = (env: Record<string, string>) => toRedisConnectionConfig(parseEnv(redisEnvShape, { ...url, ...env }));

  it('are durations in ms, from 100 ms to 1 min, each to its own field', () => {
    expect(
      config({
        DRIFTLINE_REDIS_COMMAND_TIMEOUT: '30s',
        DRIFTLINE_REDIS_READ_TIMEOUT: '150',
        DRIFTLINE_REDIS_CONNECT_TIMEOUT: '1.5s',
      }),
    ).toMatchObject({ commandTimeoutMs: 30_000, readTimeoutMs: 150, connectTimeoutMs: 1_500 });
    expect(config({ DRIFTLINE_REDIS_READ_TIMEOUT: '100ms' }).readTimeoutMs).toBe(100);
    expect(config({ DRIFTLINE_REDIS_COMMAND_TIMEOUT: '1m' }).commandTimeoutMs).toBe(MAX_REDIS_TIMEOUT_MS);
  });

  it('unset, none is given: the defaults of each use apply (libs/online-store)', () => {
    const { commandTimeoutMs, readTimeoutMs, connectTimeoutMs } = config({});
    expect([commandTimeoutMs, readTimeoutMs, connectTimeoutMs]).toEqual([undefined, undefined, undefined]);
  });

  const refusals: Array<[string, string]> = [
    ['0', 'must be at least 100 ms'],
    ['99', 'must be at least 100 ms'],
    ['-1', 'must be a duration such as 500ms, 30s, 5m, 1h, 7d or 2w'],
    ['-5s', 'must be a duration such as 500ms, 30s, 5m, 1h, 7d or 2w'],
    ['150.5', 'must be a duration such as 500ms, 30s, 5m, 1h, 7d or 2w'],
    ['', 'must be a duration such as 500ms, 30s, 5m, 1h, 7d or 2w'],
    ['ten seconds', 'must be a duration such as 500ms, 30s, 5m, 1h, 7d or 2w'],
    ['60001', 'must be at most 60000 ms'],
    ['2m', 'must be at most 60000 ms'],
    ['30d', 'must be at most 60000 ms'],
  ];
  for (const name of [
    'DRIFTLINE_REDIS_COMMAND_TIMEOUT',
    'DRIFTLINE_REDIS_READ_TIMEOUT',
    'DRIFTLINE_REDIS_CONNECT_TIMEOUT',
  ]) {
    it(`${name}: 0, too short, negative, not a whole ms, not a duration and above 1 min are one line naming it`, () => {
      for (const [value, problem] of refusals) {
        expect(() => config({ [name]: value }), value).toThrow(
          new ConfigError(name, `${problem} (got ${JSON.stringify(value)})`),
        );
      }
    });
  }
});

describe('silentLogger', () => {
  it('implements Logger, discards everything and its children are silent too', () => {
    const logger: Logger = silentLogger;
    expect(logger.info({ a: 1 }, 'x')).toBeUndefined();
    expect(logger.error({ err: new Error('e') })).toBeUndefined();
    expect(logger.child({ service: 's' })).toBe(silentLogger);
    expect(logger.child({}).child({ topic: 't' }).warn({}, 'w')).toBeUndefined();
  });
});
