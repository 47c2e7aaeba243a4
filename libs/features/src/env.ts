import { envField } from '@driftline/core';
import { z } from 'zod';
import { isValidKeyPrefix } from './keys.js';

/** Variables of the online store, shared by the feature materializer and the feature API. */
export const onlineStoreEnvShape = {
  /** Path of the feature view file (YAML or JSON). */
  DRIFTLINE_FEATURE_VIEWS: envField.string(),
  /** redis:// or rediss:// URL of the online store. */
  DRIFTLINE_REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  DRIFTLINE_REDIS_PASSWORD: z.string().optional(),
  DRIFTLINE_REDIS_TLS: envField.bool().default(false),
  /** First part of every key (isolates deployments and tests sharing one Redis). */
  DRIFTLINE_FEATURE_KEY_PREFIX: z
    .string()
    .refine(isValidKeyPrefix, 'letters, digits, dot, dash, underscore only (1..64)')
    .default('dl'),
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
