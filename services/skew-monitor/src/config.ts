import { envField, type RedisConnectionConfig, toRedisConnectionConfig } from '@driftline/core';
import { type FeatureViews, loadFeatureViews } from '@driftline/features';
import { onlineStoreEnvShape } from '@driftline/online-store';
import { DEFAULT_ALERT_RULE, DEFAULT_TOLERANCE, type SkewAlertRule, type Tolerance } from '@driftline/skew';
import type { z } from 'zod';

/**
 * Longest window. An alert waits until its window's end is within the event-time bound (1 h by
 * default) of now (alert consumers refuse it before): a 1 d window alerts up to 23 h after its
 * breach, a longer one would be later still.
 */
const MAX_SKEW_WINDOW_MS = 86_400_000;

/** Sampled prediction ids remembered per source partition by default (2.4 to 4 MB a partition). */
export const DEFAULT_RECENT_IDS = 100_000;

/** Most sampled ids remembered per source partition: ~35 MB a partition, so a typo cannot exhaust memory. */
const MAX_RECENT_IDS = 1_000_000;

export const skewEnvShape = {
  ...onlineStoreEnvShape,
  /** Share of predictions compared: those whose id hashes below it (the same ones on every replay). */
  DRIFTLINE_SKEW_SAMPLE_RATE: envField.number(0, 1).default(0.05),
  /** Tumbling event-time window of the counts, 1 s to 1 d (30s, 5m, 1h). */
  DRIFTLINE_SKEW_WINDOW: envField.duration(1_000, MAX_SKEW_WINDOW_MS).default(5 * 60_000),
  /** Share mismatched strictly above which a feature's window raises TRAINING_SERVING_SKEW: below 1, or it never could. */
  DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED: envField
    .number(0, 1)
    .refine((share) => share < 1, 'must be below 1 (a window alerts when its share mismatched is above it)')
    .default(DEFAULT_ALERT_RULE.maxShareMismatched),
  /** Comparisons a window's feature needs before it can alert (sampling error). */
  DRIFTLINE_SKEW_MIN_COMPARED: envField.int(1, 1_000_000_000).default(DEFAULT_ALERT_RULE.minCompared),
  /** Numbers are equal when |a − b| ≤ max(absolute, relative · max(|a|, |b|)). */
  DRIFTLINE_SKEW_RELATIVE_TOLERANCE: envField.number(0, 1).default(DEFAULT_TOLERANCE.relative),
  DRIFTLINE_SKEW_ABSOLUTE_TOLERANCE: envField.number(0).default(DEFAULT_TOLERANCE.absolute),
  /**
   * Sampled prediction ids remembered per source partition to count a re-sent prediction once
   * (24 to 40 B each); 0 remembers none (every sampled record counted).
   */
  DRIFTLINE_SKEW_RECENT_IDS: envField.int(0, MAX_RECENT_IDS).default(DEFAULT_RECENT_IDS),
  /** Consumer group, prefixed by DRIFTLINE_TOPIC_PREFIX. */
  DRIFTLINE_SKEW_GROUP: envField.name().default('skew-monitor'),
};

export interface SkewConfig {
  readonly views: FeatureViews;
  readonly redis: RedisConnectionConfig;
  readonly keyPrefix: string;
  readonly readV1: boolean;
  readonly sampleRate: number;
  readonly windowMs: number;
  readonly rule: SkewAlertRule;
  readonly tolerance: Tolerance;
  readonly group: string;
  readonly recentIds: number;
}

export function toSkewConfig(env: z.infer<z.ZodObject<typeof skewEnvShape>>): SkewConfig {
  return {
    // Parsed and validated now, at start-up: a bad file fails before anything connects.
    views: loadFeatureViews(env.DRIFTLINE_FEATURE_VIEWS),
    redis: toRedisConnectionConfig(env),
    keyPrefix: env.DRIFTLINE_FEATURE_KEY_PREFIX,
    readV1: env.DRIFTLINE_FEATURE_READ_V1,
    sampleRate: env.DRIFTLINE_SKEW_SAMPLE_RATE,
    windowMs: env.DRIFTLINE_SKEW_WINDOW,
    rule: { maxShareMismatched: env.DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED, minCompared: env.DRIFTLINE_SKEW_MIN_COMPARED },
    tolerance: {
      relative: env.DRIFTLINE_SKEW_RELATIVE_TOLERANCE,
      absolute: env.DRIFTLINE_SKEW_ABSOLUTE_TOLERANCE,
    },
    group: env.DRIFTLINE_SKEW_GROUP,
    recentIds: env.DRIFTLINE_SKEW_RECENT_IDS,
  };
}
