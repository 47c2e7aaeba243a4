import { envField, startupTimeoutEnvShape } from '@driftline/core';
import type { z } from 'zod';
import { enginePathField } from '../config.js';
import { CLICKHOUSE_HOST_DEFAULTS, type ClickHouseHostOptions } from './server.js';

/** `driftline clickhouse serve`: the host's environment (the data directory is DRIFTLINE_CLICKHOUSE_PATH). */
export const clickhouseHostEnvShape = {
  DRIFTLINE_CLICKHOUSE_PATH: enginePathField(),
  DRIFTLINE_CLICKHOUSE_HOST_BIND: envField.name().default(CLICKHOUSE_HOST_DEFAULTS.host),
  DRIFTLINE_CLICKHOUSE_HOST_PORT: envField.int(0, 65_535).default(CLICKHOUSE_HOST_DEFAULTS.port),
  DRIFTLINE_CLICKHOUSE_HOST_USER: envField.name().default(CLICKHOUSE_HOST_DEFAULTS.username),
  /** Compared with what clients send; a header loses leading and trailing white space, so it may have none. */
  DRIFTLINE_CLICKHOUSE_HOST_PASSWORD: envField.name({ empty: true }).optional(),
  DRIFTLINE_CLICKHOUSE_HOST_MAX_BODY_BYTES: envField.int(1024, 2 ** 31).default(CLICKHOUSE_HOST_DEFAULTS.maxBodyBytes),
  DRIFTLINE_CLICKHOUSE_HOST_TIMEOUT: envField.timeout().default(CLICKHOUSE_HOST_DEFAULTS.requestTimeoutMs),
  DRIFTLINE_CLICKHOUSE_HOST_MAX_QUEUE: envField.int(1, 100_000).default(CLICKHOUSE_HOST_DEFAULTS.maxQueue),
  /** How long start-up retries a full or read-only disk; the variable and default of `driftline run`. */
  ...startupTimeoutEnvShape,
};

export function toClickHouseHostOptions(
  env: z.infer<z.ZodObject<typeof clickhouseHostEnvShape>>,
): Omit<ClickHouseHostOptions, 'logger' | 'signal'> {
  return {
    path: env.DRIFTLINE_CLICKHOUSE_PATH,
    host: env.DRIFTLINE_CLICKHOUSE_HOST_BIND,
    port: env.DRIFTLINE_CLICKHOUSE_HOST_PORT,
    username: env.DRIFTLINE_CLICKHOUSE_HOST_USER,
    ...(env.DRIFTLINE_CLICKHOUSE_HOST_PASSWORD === undefined
      ? {}
      : { password: env.DRIFTLINE_CLICKHOUSE_HOST_PASSWORD }),
    maxBodyBytes: env.DRIFTLINE_CLICKHOUSE_HOST_MAX_BODY_BYTES,
    requestTimeoutMs: env.DRIFTLINE_CLICKHOUSE_HOST_TIMEOUT,
    maxQueue: env.DRIFTLINE_CLICKHOUSE_HOST_MAX_QUEUE,
    startupTimeoutMs: env.DRIFTLINE_STARTUP_TIMEOUT,
  };
}
