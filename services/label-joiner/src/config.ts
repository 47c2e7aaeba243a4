import {
  ConfigError,
  envField,
  formatDuration,
  MAX_TIMER_MS,
  type RedisConnectionConfig,
  redisEnvShape,
  toRedisConnectionConfig,
} from '@driftline/core';
import type { JoinConfig } from '@driftline/join';
import { type MetricBound, parseBounds, realizedRuleEnvShape, type Task } from '@driftline/performance';
import { z } from 'zod';

/** A duration in milliseconds (core's grammar), from `min` to `max`. */
export const duration = (min = 1, max = Number.MAX_SAFE_INTEGER) =>
  envField.duration(min).pipe(z.number().max(max, `must be at most ${formatDuration(max)}`));

/**
 * Bound of the join's lifetimes (label delay, grace, tombstones). Redis keeps a joined or expired
 * state for 2 × delay + grace + tombstone (backstopTtl of @driftline/join) and the join scripts
 * refuse a TTL of more than 15 digits: a longer value passed start-up and then failed every batch.
 */
export const MAX_JOIN_LIFETIME_MS = 365 * 86_400_000;

/**
 * Kafka session timeout bound, the materializer's (DRIFTLINE_MATERIALIZER_SESSION_TIMEOUT_MS): at
 * least group.min.session.timeout.ms (6 s) and at most 5 min, under any broker's
 * group.max.session.timeout.ms (5 min before Kafka 2.3, 30 min since). Above the broker's, the
 * group join fails (INVALID_SESSION_TIMEOUT) and the consumer never consumes.
 */
const sessionTimeout = () => duration(6_000, 300_000);

/** Two bounds of one metric in one direction (`accuracy<0.8,accuracy<0.9`) contradict: the key of each. */
function boundKey(bound: string): string {
  const m = /^\s*(\w+)\s*([<>])/.exec(bound);
  return m === null ? bound : `${m[1]!.toLowerCase()}${m[2]}`;
}

/** DRIFTLINE_JOINER_MAX_WINDOW_ROWS' default (the joiner's memory grew by 40–60 bytes per row held, README). */
export const DEFAULT_MAX_WINDOW_ROWS = 1_000_000;

export const labelJoinerEnvShape = {
  /** The join state store (same variables as the online store). */
  ...redisEnvShape,
  /** First part of every Redis key of the joiner. */
  DRIFTLINE_JOINER_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,64}$/, 'letters, digits, dot, colon, dash, underscore only (1..64)')
    .default('dl:joiner:'),
  DRIFTLINE_JOINER_GROUP: envField.name().default('driftline-label-joiner'),
  /**
   * Labels later than this after their prediction (event time) never join; pending predictions then
   * expire. At least 1 s: below it nearly every label arrives too late and nothing joins.
   */
  DRIFTLINE_JOINER_MAX_LABEL_DELAY: duration(1_000, MAX_JOIN_LIFETIME_MS).default(7 * 86_400_000),
  /**
   * How long past its deadline a prediction waits before it is declared unlabeled: it must exceed
   * how long after their event time labels are published (a nightly batch: a day), or labels on
   * time by event time are dropped (`expired-before-label`).
   */
  DRIFTLINE_JOINER_EXPIRY_GRACE: duration(0, MAX_JOIN_LIFETIME_MS).default(5 * 60_000),
  /**
   * How long joined/expired tombstones recognise replays. Two hours: an hour more than the default
   * event-time future bound, so that copies of live predictions are judged by their tombstone
   * and only older ones are looked up in ClickHouse (sinkLookup of @driftline/join).
   */
  DRIFTLINE_JOINER_TOMBSTONE_TTL: duration(1, MAX_JOIN_LIFETIME_MS).default(7_200_000),
  DRIFTLINE_JOINER_EXPIRY_INTERVAL: envField.duration(10, MAX_TIMER_MS).default(5_000),
  /** Tumbling window size of performance windows (on prediction time). */
  DRIFTLINE_JOINER_WINDOW: duration(1_000).default(3_600_000),
  DRIFTLINE_JOINER_RECOMPUTE_INTERVAL: envField.duration(10, MAX_TIMER_MS).default(10_000),
  DRIFTLINE_JOINER_TASK: z.enum(['classification', 'regression']).default('classification'),
  /** Per-model task overrides: `model:regression,other:classification` (a model once). */
  DRIFTLINE_JOINER_MODEL_TASKS: envField
    .list({ min: 0, key: (item) => item.slice(0, Math.max(0, item.lastIndexOf(':'))) || item })
    .default([]),
  /** Score threshold of the positive class. */
  DRIFTLINE_JOINER_THRESHOLD: envField.number(0, 1).default(0.5),
  /** Features to slice performance by (e.g. `country,device`). */
  DRIFTLINE_JOINER_SEGMENT_FEATURES: envField.list({ min: 0 }).default([]),
  DRIFTLINE_JOINER_MAX_SEGMENTS: envField.int(1, 1_000).default(20),
  /** Alert bounds, e.g. `accuracy<0.8,roc_auc<0.7,rmse>12` (a metric once per direction). */
  DRIFTLINE_JOINER_ALERT_BOUNDS: envField.list({ min: 0, key: boundKey }).default([]),
  // DRIFTLINE_JOINER_ALERT_MIN_SAMPLES and DRIFTLINE_JOINER_REALIZED_COVERAGE: realizedRuleEnvShape.
  ...realizedRuleEnvShape,
  DRIFTLINE_JOINER_ALERT_SEGMENTS: envField.bool().default(false),
  /** Partitions processed concurrently by one instance (each still strictly in order). */
  DRIFTLINE_JOINER_CONCURRENCY: envField.int(1, 64).default(3),
  /** Kafka session timeout: how long a dead instance keeps its partitions. */
  DRIFTLINE_JOINER_SESSION_TIMEOUT: sessionTimeout().default(30_000),
  /** Bytes fetched per partition; at most 64 MiB, the materializer's bound (the fetch-vs-heap check at start-up was the only one). */
  DRIFTLINE_JOINER_MAX_BATCH_BYTES: envField.int(1_024, 64 * 1_048_576).default(1_048_576),
  /** CBPE estimates (score histograms) and the business outcome of classification windows. */
  DRIFTLINE_JOINER_ESTIMATES: envField.bool().default(true),
  /**
   * Score histograms waiting in Redis for ClickHouse; past it consumption pauses. At most 10,000:
   * each is up to 45 KB, in Redis and in the one reply that takes them all (100,000 was accepted:
   * ~4.5 GB in one take; found by a memory audit).
   */
  DRIFTLINE_JOINER_SCORE_WINDOWS: envField.int(1, 10_000).default(1_000),
  /** Cost of one false alarm in the business outcome; empty: a false alarm costs its label's value. */
  DRIFTLINE_JOINER_FALSE_ALARM_COST: z.preprocess((v) => (v === '' ? undefined : v), envField.number(0).optional()),
  /**
   * Most labeled rows one window's recompute holds: a window with more is read as a deterministic
   * uniform sample of about this many rows for its metrics, its counts exact (README, "Windows
   * larger than the bound").
   */
  DRIFTLINE_JOINER_MAX_WINDOW_ROWS: envField.int(1_000, 100_000_000).default(DEFAULT_MAX_WINDOW_ROWS),
  /** How long a version's calibration map is cached before it is read again. */
  DRIFTLINE_JOINER_CALIBRATION_REFRESH: envField.duration(0, MAX_TIMER_MS).default(300_000),
};

export type LabelJoinerEnv = z.infer<z.ZodObject<typeof labelJoinerEnvShape>>;

export interface LabelJoinerConfig {
  readonly redis: RedisConnectionConfig;
  readonly keyPrefix: string;
  /** The group's name as configured: the consumer group is this after the topic prefix. */
  readonly groupId: string;
  readonly join: JoinConfig;
  readonly expiryIntervalMs: number;
  readonly windowMs: number;
  readonly recomputeIntervalMs: number;
  readonly defaultTask: Task;
  readonly modelTasks: ReadonlyMap<string, Task>;
  readonly threshold: number;
  readonly segmentFeatures: readonly string[];
  readonly maxSegments: number;
  readonly bounds: readonly MetricBound[];
  readonly alertMinSamples: number;
  readonly alertSegments: boolean;
  readonly concurrency: number;
  readonly sessionTimeoutMs: number;
  readonly maxBatchBytes: number;
  readonly estimates: boolean;
  readonly realizedCoverage: number;
  readonly scoreWindows: number;
  readonly falseAlarmCost: number | undefined;
  readonly calibrationRefreshMs: number;
  readonly maxWindowRows: number;
}

function parseModelTasks(parts: readonly string[]): Map<string, Task> {
  const out = new Map<string, Task>();
  for (const part of parts) {
    const at = part.lastIndexOf(':');
    const model = part.slice(0, at);
    const task = part.slice(at + 1);
    if (at <= 0 || (task !== 'classification' && task !== 'regression')) {
      throw new ConfigError(
        'DRIFTLINE_JOINER_MODEL_TASKS',
        `${JSON.stringify(part)} is not model:classification|regression`,
      );
    }
    out.set(model, task);
  }
  return out;
}

export function toLabelJoinerConfig(env: LabelJoinerEnv): LabelJoinerConfig {
  // A sampled window (over MAX_WINDOW_ROWS) nulls the metrics of every slice with fewer sampled
  // labels than ALERT_MIN_SAMPLES: at or near the bound, every large window would publish none.
  if (env.DRIFTLINE_JOINER_ALERT_MIN_SAMPLES * 2 > env.DRIFTLINE_JOINER_MAX_WINDOW_ROWS) {
    throw new ConfigError(
      'DRIFTLINE_JOINER_ALERT_MIN_SAMPLES',
      `${env.DRIFTLINE_JOINER_ALERT_MIN_SAMPLES} is more than half of DRIFTLINE_JOINER_MAX_WINDOW_ROWS (${env.DRIFTLINE_JOINER_MAX_WINDOW_ROWS}): a window sampled to that bound would publish no metrics; lower it or raise DRIFTLINE_JOINER_MAX_WINDOW_ROWS`,
    );
  }
  return {
    redis: toRedisConnectionConfig(env),
    keyPrefix: env.DRIFTLINE_JOINER_KEY_PREFIX,
    groupId: env.DRIFTLINE_JOINER_GROUP,
    join: {
      maxDelayMs: env.DRIFTLINE_JOINER_MAX_LABEL_DELAY,
      graceMs: env.DRIFTLINE_JOINER_EXPIRY_GRACE,
      tombstoneMs: env.DRIFTLINE_JOINER_TOMBSTONE_TTL,
    },
    expiryIntervalMs: env.DRIFTLINE_JOINER_EXPIRY_INTERVAL,
    windowMs: env.DRIFTLINE_JOINER_WINDOW,
    recomputeIntervalMs: env.DRIFTLINE_JOINER_RECOMPUTE_INTERVAL,
    defaultTask: env.DRIFTLINE_JOINER_TASK,
    modelTasks: parseModelTasks(env.DRIFTLINE_JOINER_MODEL_TASKS),
    threshold: env.DRIFTLINE_JOINER_THRESHOLD,
    segmentFeatures: env.DRIFTLINE_JOINER_SEGMENT_FEATURES,
    maxSegments: env.DRIFTLINE_JOINER_MAX_SEGMENTS,
    bounds: parseBounds(env.DRIFTLINE_JOINER_ALERT_BOUNDS.join(','), 'DRIFTLINE_JOINER_ALERT_BOUNDS'),
    alertMinSamples: env.DRIFTLINE_JOINER_ALERT_MIN_SAMPLES,
    alertSegments: env.DRIFTLINE_JOINER_ALERT_SEGMENTS,
    concurrency: env.DRIFTLINE_JOINER_CONCURRENCY,
    sessionTimeoutMs: env.DRIFTLINE_JOINER_SESSION_TIMEOUT,
    maxBatchBytes: env.DRIFTLINE_JOINER_MAX_BATCH_BYTES,
    estimates: env.DRIFTLINE_JOINER_ESTIMATES,
    realizedCoverage: env.DRIFTLINE_JOINER_REALIZED_COVERAGE,
    scoreWindows: env.DRIFTLINE_JOINER_SCORE_WINDOWS,
    falseAlarmCost: env.DRIFTLINE_JOINER_FALSE_ALARM_COST,
    calibrationRefreshMs: env.DRIFTLINE_JOINER_CALIBRATION_REFRESH,
    maxWindowRows: env.DRIFTLINE_JOINER_MAX_WINDOW_ROWS,
  };
}
