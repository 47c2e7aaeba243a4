import { envField, TOPIC_PREFIX_PATTERN, TOPIC_PREFIX_RULE } from '@driftline/core';
import {
  DEFAULT_MISSING_ALERT_ALPHA,
  DEFAULT_RECENT_IDS,
  DEFAULT_THRESHOLDS,
  type DriftThresholds,
  MAX_BORROWED_VERSIONS_PER_MODEL,
  MAX_MODEL_VERSIONS_PER_WINDOW,
  MAX_RECENT_IDS,
  type PrimaryMethod,
  type SequentialConfig,
  WATERMARK_MAX_AHEAD_MS,
} from '@driftline/drift';
import { expectationsOf, loadFeatureViews } from '@driftline/features';
import { EMPTY_EXPECTATIONS, type ExpectationSet } from '@driftline/quality';
import { z } from 'zod';
import { sequentialEnvShape, toSequentialConfig } from './sequential-config.js';

/** DRIFTLINE_DRIFT_GROUP's default: its partials topic keeps the name it had before groups had topics of their own. */
export const DEFAULT_DRIFT_GROUP = 'drift-monitor';

// Decimal numbers as every setting reads them (`0.05`, `1e-3`): a pattern of its own here had
// refused `DRIFTLINE_DRIFT_KS_ALPHA=1e-3` as "must be a number".
const share = (fallback: number) => envField.number(0, 1).default(fallback);
const positive = (fallback: number) =>
  envField
    .number(0)
    .refine((v) => v > 0, 'must be more than 0')
    .default(fallback);

export const driftEnvShape = {
  /** Tumbling event-time window size (30s, 5m, 1h, 1d). */
  DRIFTLINE_DRIFT_WINDOW: envField.duration(1_000).default(5 * 60_000),
  /** How far behind the largest event time the watermark trails. */
  DRIFTLINE_DRIFT_ALLOWED_LATENESS: envField.duration().default(60_000),
  /**
   * How far ahead of wall time an event may move the watermark (producers' clock skew): one event
   * dated far ahead must not close every open window. Raise it only for simulated time that runs
   * faster than the clock (the demo).
   */
  DRIFTLINE_DRIFT_MAX_AHEAD: envField.duration().default(WATERMARK_MAX_AHEAD_MS),
  /**
   * Source idleness: a source partition read to its end and silent this long moves its watermark
   * on processing time, closing its windows without waiting for its next event (0: off).
   */
  DRIFTLINE_DRIFT_SOURCE_IDLE: envField.duration().default(30_000),
  /** Processing time after which a silent source partition no longer blocks the merge. */
  DRIFTLINE_DRIFT_IDLE_TIMEOUT: envField.duration(1).default(10 * 60_000),
  DRIFTLINE_DRIFT_PSI_THRESHOLD: positive(DEFAULT_THRESHOLDS.psi),
  DRIFTLINE_DRIFT_KS_ALPHA: share(DEFAULT_THRESHOLDS.ksAlpha),
  DRIFTLINE_DRIFT_JS_THRESHOLD: share(DEFAULT_THRESHOLDS.jensenShannon),
  DRIFTLINE_DRIFT_CHI2_ALPHA: share(DEFAULT_THRESHOLDS.chi2Alpha),
  DRIFTLINE_DRIFT_MISSING_RATE_INCREASE: share(DEFAULT_THRESHOLDS.missingRateIncrease),
  DRIFTLINE_DRIFT_OUT_OF_RANGE: share(DEFAULT_THRESHOLDS.outOfRange),
  /** Method deciding whether a feature drifted: psi, ks or jensen_shannon. */
  DRIFTLINE_DRIFT_METHOD: z.enum(['psi', 'ks', 'jensen_shannon']).default('psi'),
  /** A window raises FEATURE_DRIFT when at least one feature and this share of features drifted. */
  DRIFTLINE_DRIFT_ALERT_SHARE: share(0),
  /**
   * Fewest events of a window (per model version) for FEATURE_DRIFT / PREDICTION_DRIFT alerts; its
   * rows are written all the same. On a few events PSI is noise (8.3 for one event, 0.38 for 50
   * against the 0.2 threshold): a quiet model alerted every window, and the retrain policy fired.
   */
  DRIFTLINE_DRIFT_ALERT_MIN_EVENTS: envField.int(1, 1_000_000_000).default(100),
  /**
   * The built-in data-quality check: a window's DATA_QUALITY alert reports every input feature
   * whose missing share rose significantly over the whole window (an upstream outage), with no
   * expectation declared, and writes a `missing_share` row per feature checked. Off for models
   * whose features are expected to be sparse.
   */
  DRIFTLINE_DRIFT_MISSING_ALERT: envField.bool().default(true),
  /**
   * Level of that check's two-proportion test: strict, as it raises an alert every window it
   * fails. At the drift rows' 0.05, 1.1–2.8% of 100-event windows failed with nothing changed
   * (reference shares 0.2–0.5: ~8 false alerts a day per feature at 5-minute windows).
   */
  DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA: envField
    .number(0, 1)
    .refine((v) => v > 0 && v < 1, 'must be between 0 and 1, both excluded')
    .default(DEFAULT_MISSING_ALERT_ALPHA),
  /**
   * Most versions of one model one window of a source partition measures against another
   * version's (the promoted) reference: a new one past it is refused for that window, like one past
   * the pair cap. Versions with a reference of their own are not limited.
   */
  DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS: envField
    .int(1, MAX_MODEL_VERSIONS_PER_WINDOW)
    .default(MAX_BORROWED_VERSIONS_PER_MODEL),
  /**
   * Predictions stage one remembers per source partition, by model, version, window and
   * prediction id: one summarized among them is a producer's re-send, not summarized again
   * (`outcome="duplicate"`). 0: off.
   */
  DRIFTLINE_DRIFT_RECENT_IDS: envField.int(0, MAX_RECENT_IDS).default(DEFAULT_RECENT_IDS),
  /** Partitions of the internal partials topic (default: DRIFTLINE_TOPIC_PARTITIONS). */
  DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: envField.int(1, 10_000).optional(),
  /**
   * Consumer group of stage 1 (the merge stage uses `<group>-merge`), prefixed by the topic prefix.
   * It also names the group's partials topic (`drift.partials.<group>.v1`; the default group's is
   * `drift.partials.v1`), so it is made of the characters a topic name may hold.
   */
  DRIFTLINE_DRIFT_GROUP: envField
    .string()
    .regex(TOPIC_PREFIX_PATTERN, `must be ${TOPIC_PREFIX_RULE} (it names the group's partials topic)`)
    .default(DEFAULT_DRIFT_GROUP),
  ...sequentialEnvShape,
  /** Feature view file: the `expect` blocks of its features are the data-quality expectations (optional). */
  DRIFTLINE_FEATURE_VIEWS: envField.string().optional(),
};

export interface DriftConfig {
  readonly windowMs: number;
  readonly latenessMs: number;
  readonly maxAheadMs: number;
  readonly idleTimeoutMs: number;
  /** Source idleness of stage one (0: off). */
  readonly sourceIdleMs: number;
  readonly thresholds: DriftThresholds;
  readonly primary: PrimaryMethod;
  readonly alertShare: number;
  readonly alertMinEvents: number;
  /** The built-in missing-share check of the DATA_QUALITY alert (DRIFTLINE_DRIFT_MISSING_ALERT). */
  readonly missingAlert: boolean;
  /** Its level (DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA). */
  readonly missingAlertAlpha: number;
  /** Most versions per model and window on a borrowed reference in stage one (`PartitionWindows`). */
  readonly maxBorrowedVersions: number;
  /** Prediction ids remembered per source partition to recognise re-sends (0: off). */
  readonly recentIds: number;
  readonly partialsPartitions: number | undefined;
  readonly group: string;
  /** The online sequential detector (undefined: off). */
  readonly sequential: SequentialConfig | undefined;
  /** Data-quality expectations of prediction features (empty: no quality counted). */
  readonly expectations: ExpectationSet;
}

export function toDriftConfig(env: z.infer<z.ZodObject<typeof driftEnvShape>>): DriftConfig {
  return {
    windowMs: env.DRIFTLINE_DRIFT_WINDOW,
    latenessMs: env.DRIFTLINE_DRIFT_ALLOWED_LATENESS,
    maxAheadMs: env.DRIFTLINE_DRIFT_MAX_AHEAD,
    idleTimeoutMs: env.DRIFTLINE_DRIFT_IDLE_TIMEOUT,
    sourceIdleMs: env.DRIFTLINE_DRIFT_SOURCE_IDLE,
    thresholds: {
      psi: env.DRIFTLINE_DRIFT_PSI_THRESHOLD,
      ksAlpha: env.DRIFTLINE_DRIFT_KS_ALPHA,
      jensenShannon: env.DRIFTLINE_DRIFT_JS_THRESHOLD,
      chi2Alpha: env.DRIFTLINE_DRIFT_CHI2_ALPHA,
      missingRateIncrease: env.DRIFTLINE_DRIFT_MISSING_RATE_INCREASE,
      outOfRange: env.DRIFTLINE_DRIFT_OUT_OF_RANGE,
    },
    primary: env.DRIFTLINE_DRIFT_METHOD,
    alertShare: env.DRIFTLINE_DRIFT_ALERT_SHARE,
    alertMinEvents: env.DRIFTLINE_DRIFT_ALERT_MIN_EVENTS,
    missingAlert: env.DRIFTLINE_DRIFT_MISSING_ALERT,
    missingAlertAlpha: env.DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA,
    maxBorrowedVersions: env.DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS,
    recentIds: env.DRIFTLINE_DRIFT_RECENT_IDS,
    partialsPartitions: env.DRIFTLINE_DRIFT_PARTIALS_PARTITIONS,
    group: env.DRIFTLINE_DRIFT_GROUP,
    sequential: toSequentialConfig(env),
    // Loaded and checked at start-up: a bad file fails naming the field (views[0].features.age.expect.…).
    expectations:
      env.DRIFTLINE_FEATURE_VIEWS === undefined
        ? EMPTY_EXPECTATIONS
        : expectationsOf(loadFeatureViews(env.DRIFTLINE_FEATURE_VIEWS)),
  };
}
