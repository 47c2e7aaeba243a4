import { registryEnvShape } from '@driftline/codec';
import {
  DEFAULT_EVENT_TIME_BOUNDS,
  EVENT_TIME_FLOOR_MS,
  EVENT_TIME_MAX_FUTURE_LIMIT_MS,
  type EventTimeBounds,
  envField,
  formatDuration,
} from '@driftline/core';
import { kafkaEnvShape } from '@driftline/kafka';
import { clickhouseEnvShape } from '@driftline/warehouse';
import { z } from 'zod';

/** Variables every service process reads, whatever it runs; each service adds its own shape. */
export const baseEnvShape = {
  /** Port of /metrics, /healthz, /readyz (0 picks a free one). */
  DRIFTLINE_HTTP_PORT: envField.int(0, 65_535).default(9464),
  DRIFTLINE_HTTP_HOST: envField.string().default('127.0.0.1'),
  DRIFTLINE_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Prepended to every topic name (isolates tenants, tests and demos on one cluster). */
  DRIFTLINE_TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, 'letters, digits, dot, dash, underscore only')
    .default(''),
  DRIFTLINE_TOPIC_PARTITIONS: envField.int(1, 10_000).default(6),
  /** Largest accepted skew of event_time into the future of the wall clock (later events go to the DLQ). */
  DRIFTLINE_EVENT_TIME_MAX_FUTURE: envField
    .duration()
    .pipe(
      z
        .number()
        .max(EVENT_TIME_MAX_FUTURE_LIMIT_MS, `must be at most ${formatDuration(EVENT_TIME_MAX_FUTURE_LIMIT_MS)}`),
    )
    .default(DEFAULT_EVENT_TIME_BOUNDS.maxFutureMs),
  /** Earliest accepted event_time, an ISO date (UTC) or date-time (earlier events go to the DLQ). */
  DRIFTLINE_EVENT_TIME_MIN: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2}))?$/, 'must be an ISO date such as 2000-01-01')
    .transform((v, ctx) => {
      const ms = Date.parse(v.length === 10 ? `${v}T00:00:00Z` : v);
      if (Number.isNaN(ms)) {
        ctx.addIssue({ code: 'custom', message: 'must be a valid ISO date such as 2000-01-01' });
        return z.NEVER;
      }
      return ms;
    })
    .pipe(z.number().min(EVENT_TIME_FLOOR_MS, 'must be 1900-01-01 or later (ClickHouse DateTime64 starts there)'))
    .default(DEFAULT_EVENT_TIME_BOUNDS.minMs),
};

/**
 * Variables of each shared resource a service can declare in `needs`. The runner requires them
 * only when a started service needs the resource. Redis has none here: its variables belong to
 * the shapes of the services that use it.
 */
export const needEnvShapes = {
  kafka: kafkaEnvShape,
  registry: registryEnvShape,
  clickhouse: clickhouseEnvShape,
  redis: {},
} as const;

/** Every variable the runner itself reads (base + every resource), for the unknown-variable check. */
export const commonEnvShape = {
  ...baseEnvShape,
  ...kafkaEnvShape,
  ...registryEnvShape,
  ...clickhouseEnvShape,
};

export interface CommonConfig {
  readonly http: { readonly port: number; readonly host: string };
  readonly logLevel: string;
  readonly topicPrefix: string;
  readonly topicPartitions: number;
  /** Accepted event times (DRIFTLINE_EVENT_TIME_MAX_FUTURE, DRIFTLINE_EVENT_TIME_MIN), shared by every processor. */
  readonly eventTime: EventTimeBounds;
}

export function toCommonConfig(env: z.infer<z.ZodObject<typeof baseEnvShape>>): CommonConfig {
  return {
    http: { port: env.DRIFTLINE_HTTP_PORT, host: env.DRIFTLINE_HTTP_HOST },
    logLevel: env.DRIFTLINE_LOG_LEVEL,
    topicPrefix: env.DRIFTLINE_TOPIC_PREFIX,
    topicPartitions: env.DRIFTLINE_TOPIC_PARTITIONS,
    eventTime: { maxFutureMs: env.DRIFTLINE_EVENT_TIME_MAX_FUTURE, minMs: env.DRIFTLINE_EVENT_TIME_MIN },
  };
}
