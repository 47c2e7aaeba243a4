import { registryEnvShape } from '@driftline/codec';
import {
  ConfigError,
  type EventTimeBounds,
  envField,
  eventTimeEnvShape,
  startupTimeoutEnvShape,
  TOPIC_PREFIX_PATTERN,
  TOPIC_PREFIX_RULE,
  toEventTimeBounds,
} from '@driftline/core';
import { DEFAULT_STALL_TIMEOUT_MS, kafkaEnvShape } from '@driftline/kafka';
import { clickhouseEnvShape } from '@driftline/warehouse';
import { z } from 'zod';

/** `auto` (undefined: decided from the cluster) or an integer in [min, max]. */
function autoOrInt(min: number, max: number) {
  return z.union([z.literal('auto').transform(() => undefined), envField.int(min, max)]).optional();
}

/** Variables every service process reads, whatever it runs; each service adds its own shape. */
export const baseEnvShape = {
  /** Port of /metrics, /healthz, /readyz (0 picks a free one). */
  DRIFTLINE_HTTP_PORT: envField.int(0, 65_535).default(9464),
  DRIFTLINE_HTTP_HOST: envField.name().default('127.0.0.1'),
  DRIFTLINE_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Prepended to every topic name (isolates tenants, tests and demos on one cluster). */
  DRIFTLINE_TOPIC_PREFIX: z.string().regex(TOPIC_PREFIX_PATTERN, TOPIC_PREFIX_RULE).default(''),
  DRIFTLINE_TOPIC_PARTITIONS: envField.int(1, 10_000).default(6),
  /**
   * Replication factor of the topics driftline creates: a number, or `auto` (default) = the
   * cluster's broker count capped at 3 (3 on a production cluster, 1 on a single local broker).
   */
  DRIFTLINE_TOPIC_REPLICATION_FACTOR: autoOrInt(1, 32),
  /** `min.insync.replicas` of the topics driftline creates: a number, or `auto` (default) = 2 when the replication factor is 3 or more, else 1. */
  DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS: autoOrInt(1, 32),
  /**
   * A consumed partition with lag on its committed offset whose commit has not moved for this long
   * is stalled: /healthz (and /readyz) answer 503 until it moves again.
   */
  DRIFTLINE_STALL_TIMEOUT: envField.duration(1_000).default(DEFAULT_STALL_TIMEOUT_MS),
  /**
   * How long start-up waits for a backend that is unreachable (a broker restarting, a registry not
   * up yet), starting again with backoff; `0` = no new attempt after the first fails. It bounds the
   * attempt in flight too: past it, a backend that stays unreachable for the refusal grace (10 s:
   * no connection, or a Kafka that answers no request) ends the start, naming it
   * (StartupTimeoutError); a start whose backends all answer is never cut.
   * Config errors never retry.
   */
  ...startupTimeoutEnvShape,
  /**
   * Largest accepted skew of event_time into the future of the wall clock, and the earliest
   * accepted event_time (outside: the DLQ): one definition with the SDK's `connectionFromEnv`.
   */
  ...eventTimeEnvShape,
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
  /** Replication factor and min.insync.replicas of created topics; undefined = `auto` (see ensureTopics). */
  readonly topicReplicationFactor: number | undefined;
  readonly topicMinInsyncReplicas: number | undefined;
  /** DRIFTLINE_STALL_TIMEOUT in ms: lag and no commit for this long is a stalled partition. */
  readonly stallTimeoutMs: number;
  /** DRIFTLINE_STARTUP_TIMEOUT in ms: retriable start-up failures are retried this long. */
  readonly startupTimeoutMs: number;
  /** Accepted event times (DRIFTLINE_EVENT_TIME_MAX_FUTURE, DRIFTLINE_EVENT_TIME_MIN), shared by every processor. */
  readonly eventTime: EventTimeBounds;
}

/** `now`: the wall clock the event-time minimum is checked against (tests pass their own). */
export function toCommonConfig(env: z.infer<z.ZodObject<typeof baseEnvShape>>, now = Date.now()): CommonConfig {
  const rf = env.DRIFTLINE_TOPIC_REPLICATION_FACTOR;
  const isr = env.DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS;
  if (rf !== undefined && isr !== undefined && isr > rf) {
    throw new ConfigError(
      'DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS',
      `must be at most DRIFTLINE_TOPIC_REPLICATION_FACTOR (${rf}), or every acks=all write fails (got ${isr})`,
    );
  }
  const eventTime = toEventTimeBounds(env, now);
  return {
    http: { port: env.DRIFTLINE_HTTP_PORT, host: env.DRIFTLINE_HTTP_HOST },
    logLevel: env.DRIFTLINE_LOG_LEVEL,
    topicPrefix: env.DRIFTLINE_TOPIC_PREFIX,
    topicPartitions: env.DRIFTLINE_TOPIC_PARTITIONS,
    topicReplicationFactor: env.DRIFTLINE_TOPIC_REPLICATION_FACTOR,
    topicMinInsyncReplicas: env.DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS,
    stallTimeoutMs: env.DRIFTLINE_STALL_TIMEOUT,
    startupTimeoutMs: env.DRIFTLINE_STARTUP_TIMEOUT,
    eventTime,
  };
}
