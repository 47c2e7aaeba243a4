import { ConfigError, DURATION_HINT, parseDurationMs } from '@driftline/core';
import { z } from 'zod';

/**
 * The per-prediction loss the paired test compares, both bounded in [0, 1] so a paired difference
 * lies in [−1, 1]:
 * - `brier`: (p − y)², the Brier score. A strictly proper scoring rule (it rewards calibrated
 *   probabilities, not only the ranking at one threshold) and bounded, unlike log loss, which is
 *   unbounded as p → 0 or 1 and would need an arbitrary clip for an always-valid bound.
 * - `error_rate`: 1 when the decision at `threshold` is wrong. Bounded but not proper, and blind
 *   to changes that do not cross the threshold; for models served as hard decisions.
 */
export type LossMetric = 'brier' | 'error_rate';

/**
 * A guard: a bounded per-observation value (in [0, 1]: a positive prediction, a request over its
 * latency budget, …) whose mean must not exceed `max`, or whose mean paired increase over the
 * baseline version must not exceed `maxIncrease` (exactly one of the two). A guard is breached
 * only on evidence: when the lower confidence bound of the mean exceeds the limit at level `alpha`.
 */
export interface GuardRule {
  readonly name: string;
  readonly max?: number;
  readonly maxIncrease?: number;
  readonly alpha: number;
  /**
   * Observations of the guard before it may decide; a decision that lets the newer version through
   * (a promotion, a watch's keep on evidence) waits for them. At most `max_labels` (refused at
   * parse above it); default min(100, `max_labels`).
   */
  readonly minObservations: number;
}

/**
 * Promotion: the candidate (challenger) against production (incumbent), on the same predictions.
 * d = loss(production) − loss(candidate): positive when the candidate is better.
 * The bar θ is `+margin` for `superiority` (better by at least margin) and `−margin` for
 * `non_inferiority` (not worse by more than margin). Promote when the lower bound of mean d is
 * above θ (false promotion ≤ `alpha`) and every guard has its `minObservations` (until then it
 * waits); reject when the upper bound is below θ (at level `alphaReject`), when a guard is
 * breached, or at `maxLabels`/`maxTimeMs` without evidence (or with a guard still short).
 */
export interface PromotionPolicy {
  readonly kind: 'promotion';
  readonly metric: LossMetric;
  readonly threshold: number;
  readonly test: 'superiority' | 'non_inferiority';
  readonly margin: number;
  readonly alpha: number;
  readonly alphaReject: number;
  readonly minLabels: number;
  readonly maxLabels: number;
  readonly maxTimeMs: number;
  readonly guards: readonly GuardRule[];
}

/**
 * Rollback: production (incumbent) against the version it replaced (still shadow-scored on the
 * same predictions). d = loss(production) − loss(previous): positive when production is worse.
 * Roll back when the lower bound of mean d is above `margin` (false rollback ≤ `alpha`) or a
 * guard on production is breached; keep when the upper bound is below `margin` (at level
 * `alphaKeep`; once every guard has its `minObservations`, or at `maxLabels`/`maxTimeMs` without
 * them), at `maxLabels`/`maxTimeMs` with the interval containing `margin`, or at `maxTimeMs`
 * with a few pairs (fewer than `minLabels`: no evidence of a degradation). At `maxTimeMs` with no
 * pair the rollout decides by whether production answered at all (`runPlan`'s `answered`).
 */
export interface RollbackPolicy {
  readonly kind: 'rollback';
  readonly metric: LossMetric;
  readonly threshold: number;
  readonly margin: number;
  readonly alpha: number;
  readonly alphaKeep: number;
  readonly minLabels: number;
  readonly maxLabels: number;
  readonly maxTimeMs: number;
  readonly guards: readonly GuardRule[];
}

export type ComparisonPolicy = PromotionPolicy | RollbackPolicy;

export const COMPARISON_DEFAULTS = {
  metric: 'brier',
  threshold: 0.5,
  alpha: 0.05,
  minLabels: 500,
  maxLabels: 100_000,
  maxTimeMs: 7 * 86_400_000,
  guardMinObservations: 100,
} as const;

const duration = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const ms = parseDurationMs(v);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `must be ${DURATION_HINT}, positive` });
    return z.NEVER;
  }
  return ms;
});

// α above 1/2 would make "evidence" weaker than a coin flip; below 1e-9 no realistic run decides.
const alpha = z.number().min(1e-9).max(0.5);
const labels = z.number().int().min(1).max(100_000_000);

const guardShape = z
  .strictObject({
    name: z.string().regex(/^[a-z][a-z0-9_]*$/, 'must be a name such as positive_rate'),
    max: z.number().min(0).max(1).optional(),
    max_increase: z.number().min(0).max(1).optional(),
    alpha: alpha.optional(),
    min_observations: labels.optional(),
  })
  .refine((g) => (g.max === undefined) !== (g.max_increase === undefined), {
    message: 'needs exactly one of max, max_increase',
  });

const common = {
  metric: z.enum(['brier', 'error_rate']).optional(),
  threshold: z.number().gt(0).lt(1).optional(),
  alpha: alpha.optional(),
  margin: z.number().min(0).max(0.5).optional(),
  min_labels: labels.optional(),
  max_labels: labels.optional(),
  max_time: duration.optional(),
  guards: z.array(guardShape).max(32).optional(),
};

const promotionShape = z.strictObject({
  ...common,
  test: z.enum(['superiority', 'non_inferiority']).optional(),
  alpha_reject: alpha.optional(),
});

const rollbackShape = z.strictObject({ ...common, alpha_keep: alpha.optional() });

/** `guardsSource`: where `guards` is written, when not in `source` (a model's section merged over `defaults`). */
function fail(error: z.ZodError, source: string, guardsSource: string): never {
  const issue = error.issues[0];
  const segments = issue?.path.map(String) ?? [];
  const at = segments[0] === 'guards' ? guardsSource : source;
  const path = (segments[0] === 'guards' ? segments.slice(1) : segments).join('.');
  const prefix = segments[0] === 'guards' ? `${at}.guards` : at;
  throw new ConfigError(path === '' ? prefix : `${prefix}.${path}`, issue?.message ?? 'invalid');
}

function guardsOf(
  guards: z.infer<typeof guardShape>[] | undefined,
  defaultAlpha: number,
  maxLabels: number,
  source: string,
  guardsSource: string,
): GuardRule[] {
  const seen = new Set<string>();
  return (guards ?? []).map((g, i) => {
    if (seen.has(g.name)) throw new ConfigError(`${guardsSource}.guards.${i}.name`, `duplicate guard ${g.name}`);
    seen.add(g.name);
    // A promotion waits for every guard's observations: more than max_labels, it could only be
    // rejected at max_labels (a guard fed once per pair never gets them).
    if (g.min_observations !== undefined && g.min_observations > maxLabels) {
      const of = guardsSource === source ? '' : ` at ${source}`;
      throw new ConfigError(
        `${guardsSource}.guards.${i}.min_observations`,
        `must be at most max_labels (${maxLabels}${of}): a promotion waits for the guard's observations`,
      );
    }
    return {
      name: g.name,
      ...(g.max === undefined ? {} : { max: g.max }),
      ...(g.max_increase === undefined ? {} : { maxIncrease: g.max_increase }),
      alpha: g.alpha ?? defaultAlpha,
      minObservations: g.min_observations ?? Math.min(COMPARISON_DEFAULTS.guardMinObservations, maxLabels),
    };
  });
}

function limits(
  doc: { min_labels?: number | undefined; max_labels?: number | undefined; max_time?: number | undefined },
  source: string,
) {
  const minLabels = doc.min_labels ?? COMPARISON_DEFAULTS.minLabels;
  const maxLabels = doc.max_labels ?? Math.max(COMPARISON_DEFAULTS.maxLabels, minLabels);
  if (maxLabels < minLabels) {
    throw new ConfigError(`${source}.max_labels`, `must be at least min_labels (${minLabels})`);
  }
  return { minLabels, maxLabels, maxTimeMs: doc.max_time ?? COMPARISON_DEFAULTS.maxTimeMs };
}

/**
 * Checks each field of a promotion or rollback document on its own (types, ranges, the guards'
 * shape), not how they combine (max_labels ≥ min_labels, a guard's min_observations ≤ max_labels):
 * for a rollout policy's `defaults`, which a model's section completes. Errors as
 * {@link parsePromotionPolicy}'s, prefixed by `source`.
 */
export function checkComparisonFields(kind: 'promotion' | 'rollback', document: unknown, source: string): void {
  const result = (kind === 'promotion' ? promotionShape : rollbackShape).safeParse(document ?? {});
  if (!result.success) fail(result.error, source, source);
}

/**
 * Validates a promotion policy document (snake_case keys as in YAML; all optional):
 * `{ metric, threshold, test, margin, alpha, alpha_reject, min_labels, max_labels, max_time, guards }`.
 * Errors are ConfigErrors naming the field, prefixed by `source` (e.g. `promotion.margin`), or by
 * `guardsSource` for a field of `guards` (where the guards are written, when the document merges a
 * model's section over defaults that hold them).
 */
export function parsePromotionPolicy(document: unknown, source = 'promotion', guardsSource = source): PromotionPolicy {
  const result = promotionShape.safeParse(document ?? {});
  if (!result.success) fail(result.error, source, guardsSource);
  const doc = result.data;
  const a = doc.alpha ?? COMPARISON_DEFAULTS.alpha;
  const bounds = limits(doc, source);
  return {
    kind: 'promotion',
    metric: doc.metric ?? COMPARISON_DEFAULTS.metric,
    threshold: doc.threshold ?? COMPARISON_DEFAULTS.threshold,
    test: doc.test ?? 'superiority',
    margin: doc.margin ?? 0,
    alpha: a,
    alphaReject: doc.alpha_reject ?? a,
    ...bounds,
    guards: guardsOf(doc.guards, a, bounds.maxLabels, source, guardsSource),
  };
}

/**
 * Validates a rollback policy document:
 * `{ metric, threshold, margin, alpha, alpha_keep, min_labels, max_labels, max_time, guards }`
 * (errors as {@link parsePromotionPolicy}'s).
 */
export function parseRollbackPolicy(document: unknown, source = 'rollback', guardsSource = source): RollbackPolicy {
  const result = rollbackShape.safeParse(document ?? {});
  if (!result.success) fail(result.error, source, guardsSource);
  const doc = result.data;
  const a = doc.alpha ?? COMPARISON_DEFAULTS.alpha;
  const bounds = limits(doc, source);
  return {
    kind: 'rollback',
    metric: doc.metric ?? COMPARISON_DEFAULTS.metric,
    threshold: doc.threshold ?? COMPARISON_DEFAULTS.threshold,
    margin: doc.margin ?? 0,
    alpha: a,
    alphaKeep: doc.alpha_keep ?? a,
    ...bounds,
    guards: guardsOf(doc.guards, a, bounds.maxLabels, source, guardsSource),
  };
}
