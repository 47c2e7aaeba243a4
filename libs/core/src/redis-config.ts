import { z } from 'zod';
import { envField, MIN_TIMEOUT_MS, paddingProblem } from './config.js';

/**
 * Longest Redis timeout a variable may set (1 min): Redis that has not answered within a minute is
 * down, not slow, and the consumer loop should be backing off already. It also keeps the stall
 * watch's replacement of a silent connection (after 3 command timeouts) within 3 min, ahead of
 * TCP giving up (~15 min).
 */
export const MAX_REDIS_TIMEOUT_MS = 60_000;

/** A Redis timeout variable: a duration from MIN_TIMEOUT_MS to MAX_REDIS_TIMEOUT_MS; unset, the use's default. */
const redisTimeoutField = () => envField.duration(MIN_TIMEOUT_MS, MAX_REDIS_TIMEOUT_MS).optional();

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
  /** Deadline of every command but feature reads: materializer writes, join state, checks (default 10 s). */
  DRIFTLINE_REDIS_COMMAND_TIMEOUT: redisTimeoutField(),
  /** Deadline of every feature read: feature API, model-server, skew-monitor (default 2 s). */
  DRIFTLINE_REDIS_READ_TIMEOUT: redisTimeoutField(),
  /** Deadline of opening a connection, TCP and TLS (default 5 s, feature reads 2 s). */
  DRIFTLINE_REDIS_CONNECT_TIMEOUT: redisTimeoutField(),
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
 * known at connect. Query parameters are client options to ioredis (see queryProblem).
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
  return queryProblem(url.searchParams);
}

/** The one query parameter accepted: the address family of the host's look-up (0 = either). */
const FAMILY = /^[046]$/;

/**
 * ioredis copies every query parameter of the URL into its client options, ahead of driftline's
 * own: `?db=99` selected a database no check saw (writes in database 0, or in one never asked),
 * and `?keyPrefix=`, `?commandTimeout=`, `?password=` would override the key layout, the policy
 * of the use or DRIFTLINE_REDIS_PASSWORD. Only `family` (4 or 6) means what it says.
 */
function queryProblem(query: URLSearchParams): string | undefined {
  const names = [...query.keys()];
  if (names.includes('db')) {
    return 'a database in the query (db=) escapes the database check: write it as the path (redis://host:6379/3)';
  }
  const foreign = names.find((name, i) => name !== 'family' || names.indexOf(name) !== i);
  if (foreign !== undefined) {
    return `its query parameter ${JSON.stringify(foreign)} would override the Redis client's options: only family=4 or family=6 is accepted`;
  }
  const family = query.get('family');
  if (family !== null && !FAMILY.test(family)) return 'its query parameter family must be 4, 6 or 0 (either)';
  return undefined;
}

/**
 * Where a Redis connection goes and the timeouts the operator set. An absent timeout is the
 * default of the connection's use (REDIS_POLICIES of libs/online-store), which applies them.
 */
export interface RedisConnectionConfig {
  readonly url: string;
  readonly password?: string;
  readonly tls: boolean;
  /** DRIFTLINE_REDIS_COMMAND_TIMEOUT: every connection but the feature reads'. */
  readonly commandTimeoutMs?: number | undefined;
  /** DRIFTLINE_REDIS_READ_TIMEOUT: the feature reads' connections (`online-read`). */
  readonly readTimeoutMs?: number | undefined;
  /** DRIFTLINE_REDIS_CONNECT_TIMEOUT: every connection. */
  readonly connectTimeoutMs?: number | undefined;
}

export function toRedisConnectionConfig(env: {
  DRIFTLINE_REDIS_URL: string;
  DRIFTLINE_REDIS_PASSWORD?: string | undefined;
  DRIFTLINE_REDIS_TLS: boolean;
  DRIFTLINE_REDIS_COMMAND_TIMEOUT?: number | undefined;
  DRIFTLINE_REDIS_READ_TIMEOUT?: number | undefined;
  DRIFTLINE_REDIS_CONNECT_TIMEOUT?: number | undefined;
}): RedisConnectionConfig {
  return {
    url: env.DRIFTLINE_REDIS_URL,
    tls: env.DRIFTLINE_REDIS_TLS,
    ...(env.DRIFTLINE_REDIS_PASSWORD === undefined ? {} : { password: env.DRIFTLINE_REDIS_PASSWORD }),
    commandTimeoutMs: env.DRIFTLINE_REDIS_COMMAND_TIMEOUT,
    readTimeoutMs: env.DRIFTLINE_REDIS_READ_TIMEOUT,
    connectTimeoutMs: env.DRIFTLINE_REDIS_CONNECT_TIMEOUT,
  };
}
