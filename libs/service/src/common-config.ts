import { registryEnvShape } from '@driftline/codec';
import { envField } from '@driftline/core';
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
}

export function toCommonConfig(env: z.infer<z.ZodObject<typeof baseEnvShape>>): CommonConfig {
  return {
    http: { port: env.DRIFTLINE_HTTP_PORT, host: env.DRIFTLINE_HTTP_HOST },
    logLevel: env.DRIFTLINE_LOG_LEVEL,
    topicPrefix: env.DRIFTLINE_TOPIC_PREFIX,
    topicPartitions: env.DRIFTLINE_TOPIC_PARTITIONS,
  };
}
