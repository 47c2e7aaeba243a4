import { envField } from '@driftline/core';
import { z } from 'zod';

/** Default bound on every ClickHouse call (insert, query, DDL); see DRIFTLINE_CLICKHOUSE_TIMEOUT. */
export const DEFAULT_CLICKHOUSE_TIMEOUT_MS = 30_000;

// C0 and C1 controls and DEL.
const CONTROL = /\p{Cc}/u;

/**
 * The embedded engine's data directory: a name (not empty, no white space at an end) without
 * control characters. A newline or a tab in a path is a paste, not a directory meant (the engine
 * took `/data/a<LF>b` and made a second warehouse there); an environment variable cannot hold NUL.
 */
export const enginePathField = () =>
  envField
    .name()
    .refine((path) => !CONTROL.test(path), 'must not contain control characters (a newline, a tab: a paste?)')
    .default('.driftline/chdb');

export const clickhouseEnvShape = {
  /**
   * A ClickHouse server over HTTP(S); when absent the embedded engine (chdb) is used. No path: the
   * client would take it as the database, which is DRIFTLINE_CLICKHOUSE_DATABASE.
   */
  DRIFTLINE_CLICKHOUSE_URL: envField.httpUrl({ path: false }).optional(),
  DRIFTLINE_CLICKHOUSE_USERNAME: envField.name().optional(),
  DRIFTLINE_CLICKHOUSE_PASSWORD: z.string().optional(),
  DRIFTLINE_CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a plain identifier')
    .default('driftline'),
  /** Data directory of the embedded engine (one per process). */
  DRIFTLINE_CLICKHOUSE_PATH: enginePathField(),
  /** Bound on every call (100 ms to MAX_TIMER_MS); a call that exceeds it fails as retriable (SINK_UNAVAILABLE). */
  DRIFTLINE_CLICKHOUSE_TIMEOUT: envField.timeout().default(DEFAULT_CLICKHOUSE_TIMEOUT_MS),
};

interface CommonConfig {
  readonly database: string;
  /** Per-call timeout in ms (default 30 s). */
  readonly timeoutMs?: number;
}

export type ClickHouseConfig =
  | (CommonConfig & {
      readonly mode: 'server';
      readonly url: string;
      readonly username?: string;
      readonly password?: string;
    })
  | (CommonConfig & { readonly mode: 'embedded'; readonly path: string });

export function toClickHouseConfig(env: z.infer<z.ZodObject<typeof clickhouseEnvShape>>): ClickHouseConfig {
  const common = { database: env.DRIFTLINE_CLICKHOUSE_DATABASE, timeoutMs: env.DRIFTLINE_CLICKHOUSE_TIMEOUT };
  if (env.DRIFTLINE_CLICKHOUSE_URL !== undefined) {
    return {
      mode: 'server',
      url: env.DRIFTLINE_CLICKHOUSE_URL,
      ...common,
      ...(env.DRIFTLINE_CLICKHOUSE_USERNAME === undefined ? {} : { username: env.DRIFTLINE_CLICKHOUSE_USERNAME }),
      ...(env.DRIFTLINE_CLICKHOUSE_PASSWORD === undefined ? {} : { password: env.DRIFTLINE_CLICKHOUSE_PASSWORD }),
    };
  }
  return { mode: 'embedded', path: env.DRIFTLINE_CLICKHOUSE_PATH, ...common };
}
