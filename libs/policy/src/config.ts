import {
  ConfigError,
  checkConfigDocument,
  DURATION_HINT,
  ownValue,
  parseConfigText,
  parseDurationMs,
} from '@driftline/core';
import { BOUND_METRIC_NAMES } from '@driftline/performance';
import { z } from 'zod';

/** At most this many windows are remembered per model and signal family (drift, performance), whatever the horizon (so `sustain` is at most this). */
export const MAX_WINDOWS = 512;

/**
 * Longest duration a policy takes (ten years): `cooldown: 100000000d` was accepted, and every
 * decision in its cooldown then threw a RangeError writing the date it ends (the alert
 * dead-lettered as INTERNAL).
 */
const MAX_DURATION_MS = 3_650 * 86_400_000;

/** A duration: core's grammar (`30s`, `5m`, `6h`, `7d`), or a number of milliseconds; at most ten years. */
const duration = z
  .union([z.number().int().nonnegative(), z.string()])
  .transform((v, ctx) => {
    if (typeof v === 'number') return v;
    const ms = parseDurationMs(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be ${DURATION_HINT}` });
      return z.NEVER;
    }
    return ms;
  })
  .refine((ms) => ms <= MAX_DURATION_MS, { message: 'must be at most 3650d (ten years)' });

// The metrics a PERFORMANCE alert can name (its `method`): the label-joiner's bounds. Any other
// name (`rocauc`) was accepted and never matched an alert.
const metricName = z.enum(BOUND_METRIC_NAMES, {
  error: () => `must be a metric a PERFORMANCE alert names: ${BOUND_METRIC_NAMES.join(', ')}`,
});

/**
 * A performance signal on PERFORMANCE alerts of the overall slice. Exactly one comparison:
 * `below`/`above` an absolute bound, or `below_baseline_by`/`above_baseline_by` a margin relative
 * to the serving version's own metric at evaluation time (the "last model's" value).
 */
const performanceRule = z
  .strictObject({
    metric: metricName,
    below: z.number().optional(),
    above: z.number().optional(),
    below_baseline_by: z.number().nonnegative().optional(),
    above_baseline_by: z.number().nonnegative().optional(),
  })
  .refine(
    (r) => [r.below, r.above, r.below_baseline_by, r.above_baseline_by].filter((v) => v !== undefined).length === 1,
    { message: 'needs exactly one of below, above, below_baseline_by, above_baseline_by' },
  );

const signalsShape = z.strictObject({
  /** FEATURE_DRIFT alerts whose share of drifted features is at least this. */
  share_drifted: z.number().min(0).max(1).optional(),
  /**
   * FEATURE_DRIFT alerts in which any of these features drifted. At most 1,000 characters: alerts
   * carry names cut there (ALERT_NAME_MAX_CHARS of libs/drift), so a longer one could never match.
   */
  key_features: z
    .array(z.string().min(1).max(1_000, 'at most 1,000 characters: alerts carry feature names cut there'))
    .min(1)
    .optional(),
  /** PREDICTION_DRIFT alerts count. */
  prediction_drift: z.boolean().optional(),
  performance: z.array(performanceRule).min(1).optional(),
  /** PERFORMANCE alerts of segments (not only the overall slice) count too. */
  include_segments: z.boolean().optional(),
});

const modelShape = z.strictObject({
  signals: signalsShape.optional(),
  /** Consecutive windows (event time, tumbling) that must each carry a signal. */
  sustain: z.number().int().min(1).max(MAX_WINDOWS).optional(),
  /** After a retrain request, no new one until the deciding window ends this much later. */
  cooldown: duration.optional(),
  /** The requested training data: this much event time up to the deciding window's end. */
  training_window: duration.optional(),
  /** Alerts for windows ending more than this before the newest window seen are ignored (and state is pruned): at least (sustain − 1) windows. */
  late_horizon: duration.optional(),
  /**
   * The data-quality veto (default true): a run with a window the model's DATA_QUALITY alerts cover
   * counts only its windows after that one, and a fire it would have made holds as `data_quality`.
   */
  data_quality_veto: z.boolean().optional(),
});

const documentShape = z.strictObject({
  version: z.literal(1).optional(),
  defaults: modelShape.optional(),
  // Empty, every alert was held as unknown_model: nothing could ever fire.
  models: z
    .record(z.string().min(1), modelShape)
    .refine((m) => Object.keys(m).length > 0, 'at least one model (or "*" for any model)'),
});

export interface PerformanceRule {
  readonly metric: string;
  readonly below?: number;
  readonly above?: number;
  readonly below_baseline_by?: number;
  readonly above_baseline_by?: number;
}

/** The schema's optional bounds, with absent ones left out (not set to undefined). */
function toPerformanceRule(
  rule: { metric: string } & Partial<Record<Exclude<keyof PerformanceRule, 'metric'>, number | undefined>>,
): PerformanceRule {
  const out: { -readonly [K in keyof PerformanceRule]: PerformanceRule[K] } = { metric: rule.metric };
  if (rule.below !== undefined) out.below = rule.below;
  if (rule.above !== undefined) out.above = rule.above;
  if (rule.below_baseline_by !== undefined) out.below_baseline_by = rule.below_baseline_by;
  if (rule.above_baseline_by !== undefined) out.above_baseline_by = rule.above_baseline_by;
  return out;
}

export interface SignalConfig {
  readonly shareDrifted?: number;
  readonly keyFeatures: readonly string[];
  readonly predictionDrift: boolean;
  readonly performance: readonly PerformanceRule[];
  readonly includeSegments: boolean;
}

export interface ModelPolicy {
  readonly signals: SignalConfig;
  readonly sustain: number;
  readonly cooldownMs: number;
  readonly trainingWindowMs: number;
  /** How far behind the newest window of its signal family (drift or performance) an alert's window may end and still count. */
  readonly lateHorizonMs: number;
  /** Whether the model's DATA_QUALITY alerts veto the runs whose windows they cover (`data_quality_veto`). */
  readonly dataQualityVeto: boolean;
}

/** A validated policy: per model, with `*` as the fallback for models not listed. */
export interface Policy {
  readonly models: Readonly<Record<string, ModelPolicy>>;
}

export const POLICY_DEFAULTS = {
  sustain: 3,
  cooldownMs: 24 * 3_600_000,
  trainingWindowMs: 7 * 86_400_000,
  lateHorizonMs: 86_400_000,
  // On by default: a broken upstream that also drifts the features fired a retrain on broken data
  // (and its cooldown then held the real one; found by a review).
  dataQualityVeto: true,
} as const;

/** Used when no policy file is configured: any model, half the features or the prediction drifted, 3 windows, 24 h cooldown, the data-quality veto on. */
export const DEFAULT_POLICY_DOCUMENT = {
  version: 1,
  models: { '*': { signals: { share_drifted: 0.5, prediction_drift: true } } },
} as const;

/**
 * The policy of a model (exact name first, then `*`), or undefined when none applies. Own keys
 * only: a model named `constructor` or `toString` is a name like any other.
 */
export function policyFor(policy: Policy, model: string): ModelPolicy | undefined {
  return ownValue(policy.models, model) ?? ownValue(policy.models, '*');
}

/**
 * Validates a parsed policy document. Problems throw a ConfigError whose field is the path in the
 * document prefixed by `source`, e.g. `policy.models.fraud.cooldown`.
 */
export function parsePolicy(document: unknown, source = 'policy'): Policy {
  const doc = checkConfigDocument(documentShape, document, source);
  const d = doc.defaults ?? {};
  const models: Record<string, ModelPolicy> = {};
  for (const [name, m] of Object.entries(doc.models)) {
    const s = m.signals ?? d.signals ?? {};
    const signals: SignalConfig = {
      ...(s.share_drifted === undefined ? {} : { shareDrifted: s.share_drifted }),
      keyFeatures: s.key_features ?? [],
      predictionDrift: s.prediction_drift ?? false,
      performance: (s.performance ?? []).map(toPerformanceRule),
      includeSegments: s.include_segments ?? false,
    };
    if (
      signals.shareDrifted === undefined &&
      signals.keyFeatures.length === 0 &&
      !signals.predictionDrift &&
      signals.performance.length === 0
    ) {
      throw new ConfigError(
        `${source}.models.${name}.signals`,
        'no signal configured (share_drifted, key_features, prediction_drift or performance)',
      );
    }
    models[name] = {
      signals,
      sustain: m.sustain ?? d.sustain ?? POLICY_DEFAULTS.sustain,
      cooldownMs: m.cooldown ?? d.cooldown ?? POLICY_DEFAULTS.cooldownMs,
      trainingWindowMs: m.training_window ?? d.training_window ?? POLICY_DEFAULTS.trainingWindowMs,
      lateHorizonMs: m.late_horizon ?? d.late_horizon ?? POLICY_DEFAULTS.lateHorizonMs,
      dataQualityVeto: m.data_quality_veto ?? d.data_quality_veto ?? POLICY_DEFAULTS.dataQualityVeto,
    };
    if (models[name].trainingWindowMs <= 0) {
      throw new ConfigError(`${source}.models.${name}.training_window`, 'must be positive');
    }
    if (models[name].lateHorizonMs === 0 && models[name].sustain > 1) {
      // Only the newest window is kept then: a streak of two or more could never form.
      throw new ConfigError(
        `${source}.models.${name}.late_horizon`,
        `0 keeps only the newest window, so sustain ${models[name].sustain} could never fire: give it at least (sustain − 1) windows`,
      );
    }
  }
  return { models };
}

/** Parses policy text (YAML, of which JSON is a subset) and validates it; `source` prefixes field names. */
export function parsePolicyText(text: string, source = 'policy'): Policy {
  return parsePolicy(parseConfigText(text, source), source);
}
