import { envField } from '@driftline/core';
import { z } from 'zod';

export const clickhouseEnvShape = {
  /** A ClickHouse server over HTTP; when absent the embedded engine (chdb) is used. */
  DRIFTLINE_CLICKHOUSE_URL: envField.url().optional(),
  DRIFTLINE_CLICKHOUSE_USERNAME: envField.string().optional(),
  DRIFTLINE_CLICKHOUSE_PASSWORD: z.string().optional(),
  DRIFTLINE_CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a plain identifier')
    .default('driftline'),
  /** Data directory of the embedded engine (one per process). */
  DRIFTLINE_CLICKHOUSE_PATH: envField.string().default('.driftline/chdb'),
};

export type ClickHouseConfig =
  | {
      readonly mode: 'server';
      readonly url: string;
      readonly username?: string;
      readonly password?: string;
      readonly database: string;
    }
  | { readonly mode: 'embedded'; readonly path: string; readonly database: string };

export function toClickHouseConfig(env: z.infer<z.ZodObject<typeof clickhouseEnvShape>>): ClickHouseConfig {
  if (env.DRIFTLINE_CLICKHOUSE_URL !== undefined) {
    return {
      mode: 'server',
      url: env.DRIFTLINE_CLICKHOUSE_URL,
      database: env.DRIFTLINE_CLICKHOUSE_DATABASE,
      ...(env.DRIFTLINE_CLICKHOUSE_USERNAME === undefined ? {} : { username: env.DRIFTLINE_CLICKHOUSE_USERNAME }),
      ...(env.DRIFTLINE_CLICKHOUSE_PASSWORD === undefined ? {} : { password: env.DRIFTLINE_CLICKHOUSE_PASSWORD }),
    };
  }
  return { mode: 'embedded', path: env.DRIFTLINE_CLICKHOUSE_PATH, database: env.DRIFTLINE_CLICKHOUSE_DATABASE };
}
