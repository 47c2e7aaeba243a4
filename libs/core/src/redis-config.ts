import { z } from 'zod';
import { envField, paddingProblem } from './config.js';

/** Variables of a Redis connection, shared by every service that keeps state in Redis. */
export const redisEnvShape = {
  /** redis:// or rediss:// URL; its path, if any, is the database index (`/0`, the default). */
  DRIFTLINE_REDIS_URL: z.string().transform((v, ctx) => {
    const problem = redisUrlProblem(v);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return v;
  }),
  DRIFTLINE_REDIS_PASSWORD: z.string().optional(),
  DRIFTLINE_REDIS_TLS: envField.bool().default(false),
};

/** Largest database index accepted: Redis reads SELECT's argument as a C int. */
const MAX_REDIS_DB = 2 ** 31 - 1;

/**
 * The path of a URL's text as written (`//authority` skipped, up to `?` or `#`): the URL parser
 * resolves dot segments (`/abc/..` → `/`), ioredis (Node's legacy parser) does not.
 */
const RAW_PATH = /^[a-z][a-z\d+.-]*:\/\/[^/?#]*([^?#]*)/i;

/** No path, `/`, or `/<index>`: ioredis reads everything after the first `/` as the database. */
const DATABASE_PATH = /^\/?$|^\/\d{1,10}$/;

/**
 * Why a Redis URL cannot work, or undefined. The database path is checked here, as written,
 * because ioredis does not: `/abc` (or `/abc/..`, which a URL parser normalises to `/`) threw
 * inside the client (a restart loop). Whether the index is below the server's `databases` is only
 * known at connect.
 */
export function redisUrlProblem(text: string): string | undefined {
  const padding = paddingProblem(text);
  if (padding !== undefined) return padding;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be a redis:// or rediss:// URL';
  }
  const rawPath = RAW_PATH.exec(text)?.[1];
  if ((url.protocol !== 'redis:' && url.protocol !== 'rediss:') || rawPath === undefined) {
    return 'must be a redis:// or rediss:// URL';
  }
  if (!DATABASE_PATH.test(rawPath) || Number(rawPath.slice(1)) > MAX_REDIS_DB) {
    return 'its path must be a database index, an integer >= 0 (redis://host:6379/0)';
  }
  return undefined;
}

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
