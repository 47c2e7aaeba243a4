import { z } from 'zod';
import { envField } from './config.js';

/** Variables of a Redis connection, shared by every service that keeps state in Redis. */
export const redisEnvShape = {
  /** redis:// or rediss:// URL. */
  DRIFTLINE_REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  DRIFTLINE_REDIS_PASSWORD: z.string().optional(),
  DRIFTLINE_REDIS_TLS: envField.bool().default(false),
};

export interface RedisConnectionConfig {
  readonly url: string;
  readonly password?: string;
  readonly tls: boolean;
}

export function toRedisConnectionConfig(env: {
  DRIFTLINE_REDIS_URL: string;
  DRIFTLINE_REDIS_PASSWORD?: string | undefined;
  DRIFTLINE_REDIS_TLS: boolean;
}): RedisConnectionConfig {
  return {
    url: env.DRIFTLINE_REDIS_URL,
    tls: env.DRIFTLINE_REDIS_TLS,
    ...(env.DRIFTLINE_REDIS_PASSWORD === undefined ? {} : { password: env.DRIFTLINE_REDIS_PASSWORD }),
  };
}
