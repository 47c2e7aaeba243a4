import { type ClickHouseConfig, clickhouseEnvShape, toClickHouseConfig } from '@driftline/clickhouse';
import { envField } from '@driftline/core';
import { type KafkaConfig, kafkaEnvShape, toKafkaConfig } from '@driftline/kafka';
import { z } from 'zod';

/** Variables every service process reads; each service adds its own shape. */
export const commonEnvShape = {
  ...kafkaEnvShape,
  ...clickhouseEnvShape,
  DRIFTLINE_SCHEMA_REGISTRY_URL: envField.url(),
  DRIFTLINE_SCHEMA_REGISTRY_USERNAME: envField.string().optional(),
  DRIFTLINE_SCHEMA_REGISTRY_PASSWORD: z.string().optional(),
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

export interface CommonConfig {
  readonly kafka: KafkaConfig;
  readonly clickhouse: ClickHouseConfig;
  readonly registry: { readonly url: string; readonly username?: string; readonly password?: string };
  readonly http: { readonly port: number; readonly host: string };
  readonly logLevel: string;
  readonly topicPrefix: string;
  readonly topicPartitions: number;
}

export function toCommonConfig(env: z.infer<z.ZodObject<typeof commonEnvShape>>): CommonConfig {
  return {
    kafka: toKafkaConfig(env),
    clickhouse: toClickHouseConfig(env),
    registry: {
      url: env.DRIFTLINE_SCHEMA_REGISTRY_URL,
      ...(env.DRIFTLINE_SCHEMA_REGISTRY_USERNAME === undefined
        ? {}
        : { username: env.DRIFTLINE_SCHEMA_REGISTRY_USERNAME }),
      ...(env.DRIFTLINE_SCHEMA_REGISTRY_PASSWORD === undefined
        ? {}
        : { password: env.DRIFTLINE_SCHEMA_REGISTRY_PASSWORD }),
    },
    http: { port: env.DRIFTLINE_HTTP_PORT, host: env.DRIFTLINE_HTTP_HOST },
    logLevel: env.DRIFTLINE_LOG_LEVEL,
    topicPrefix: env.DRIFTLINE_TOPIC_PREFIX,
    topicPartitions: env.DRIFTLINE_TOPIC_PARTITIONS,
  };
}
