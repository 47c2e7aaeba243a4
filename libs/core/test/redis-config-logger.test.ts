import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  type Logger,
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

describe('silentLogger', () => {
  it('implements Logger, discards everything and its children are silent too', () => {
    const logger: Logger = silentLogger;
    expect(logger.info({ a: 1 }, 'x')).toBeUndefined();
    expect(logger.error({ err: new Error('e') })).toBeUndefined();
    expect(logger.child({ service: 's' })).toBe(silentLogger);
    expect(logger.child({}).child({ topic: 't' }).warn({}, 'w')).toBeUndefined();
  });
});
