import { createHash } from 'node:crypto';
import type { RetrainRequest } from '@driftline/schemas';

export type PromotionMetric = 'roc_auc' | 'log_loss' | 'accuracy';

/** Metrics where lower is better. */
const LOWER_IS_BETTER: ReadonlySet<PromotionMetric> = new Set(['log_loss']);

export interface PromotionRule {
  readonly metric: PromotionMetric;
  /** The new model must beat the current one by at least this much on the held-out slice. */
  readonly margin: number;
}

export interface PromotionVerdict {
  readonly promote: boolean;
  readonly reason: string;
  readonly candidate: number | undefined;
  readonly current: number | undefined;
}

/** What the candidate is gated against, besides its metrics. */
export interface GateBaseline {
  /**
   * The version the request names as serving (`model_version`): its logged scores are the current
   * value. Empty: no version named (each row's answered score stands for it, training-source.ts).
   */
  readonly baseVersion: string;
  /** Held-out rows, and how many of them are labelled 1: the no-skill floor's class rate. */
  readonly holdoutRows: number;
  readonly holdoutPositives: number;
}

/**
 * The held-out metric of a predictor with no skill: the best constant on the held-out slice
 * (roc_auc 0.5; log loss the class rate's entropy; accuracy the majority class's share).
 */
export function noSkillValue(metric: PromotionMetric, holdoutRows: number, holdoutPositives: number): number {
  if (metric === 'roc_auc') return 0.5;
  const p = holdoutRows > 0 ? holdoutPositives / holdoutRows : 0;
  if (metric === 'accuracy') return Math.max(p, 1 - p);
  const nats = (q: number) => (q > 0 ? -q * Math.log(q) : 0);
  return nats(p) + nats(1 - p);
}

/**
 * Promote when the candidate beats the serving model on the same held-out rows by `margin`
 * (`candidate ≥ current + margin`, or `≤ current − margin` for log loss). The serving model's
 * value (`current_*`) is measured on the held-out rows that carry the base version's score
 * (`current_rows` of them); the candidate's on those same rows (`gate_*`) when the worker reports
 * it, else on the whole slice. Without a candidate value: rejected.
 *
 * With no measurable current value:
 * - the request names a base version (no held-out row carries its score: a typo, a version rolled
 *   back or replaced since the alert; or the rows it scored are one class): rejected. The
 *   comparison the gate exists for is broken; promoting on the candidate alone had a model worse
 *   than random (roc_auc 0.479) replace production (found by a review). The label wait does not
 *   let such a window train: it waits for both classes among the held-out rows the base version
 *   scored (label-wait.ts, dataset.ts measuresBase), then refuses the request (replayable) rather
 *   than have it trained and REJECTED for good; this rejection is what is left if it ever does.
 * - no base version named (every row's answered score stands for it, so this is a window whose
 *   scores cannot be measured: no baseline at all, as for a model's first version): gated against
 *   a predictor with no skill (noSkillValue), strictly and by the same margin (TFX's Evaluator
 *   blesses a model without a baseline on absolute thresholds alone).
 */
export function decidePromotion(
  metrics: Readonly<Record<string, number>>,
  rule: PromotionRule,
  baseline: GateBaseline,
): PromotionVerdict {
  const gated = metrics[`gate_${rule.metric}`];
  const candidate = gated !== undefined && Number.isFinite(gated) ? gated : metrics[rule.metric];
  const measured = metrics[`current_${rule.metric}`];
  if (candidate === undefined || !Number.isFinite(candidate)) {
    return { promote: false, reason: `${rule.metric} of the candidate is undefined`, candidate, current: measured };
  }
  const rows = metrics.current_rows;
  const lower = LOWER_IS_BETTER.has(rule.metric);
  const judged = (against: number, what: string, strictly = false): { promote: boolean; reason: string } => {
    const gain = lower ? against - candidate : candidate - against;
    // A hair of tolerance so that a gain equal to the margin (in decimal) is not lost to rounding.
    const promote = gain >= rule.margin - 1e-12 && (!strictly || gain > 1e-12);
    const verdict = `gain ${gain.toFixed(4)} ${promote ? (lower ? '≤' : '≥') : 'below'} margin ${rule.margin}`;
    return { promote, reason: `${rule.metric} ${candidate.toFixed(4)} vs ${what}: ${verdict}` };
  };
  if (measured !== undefined && Number.isFinite(measured)) {
    const on = rows === undefined ? '' : ` on the ${rows} held-out rows the base version scored`;
    return { ...judged(measured, `current ${measured.toFixed(4)}${on}`), candidate, current: measured };
  }
  const { baseVersion, holdoutRows, holdoutPositives } = baseline;
  if (baseVersion !== '') {
    const why =
      rows === undefined || rows === 0
        ? `no held-out row carries the score of the base version ${baseVersion} (it did not serve the newest rows of the window: a typo, or a version rolled back or replaced since the request)`
        : `the ${rows} held-out rows the base version ${baseVersion} scored leave its ${rule.metric} undefined (one class only)`;
    return {
      promote: false,
      reason: `no current ${rule.metric} to compare with: ${why}; rejected: a request naming a base version is gated against that version, never on the candidate alone`,
      candidate,
      current: measured,
    };
  }
  const floor = noSkillValue(rule.metric, holdoutRows, holdoutPositives);
  const what = `no skill ${floor.toFixed(4)} (no baseline: no base version named, no answered score measured; the floor on the ${holdoutRows} held-out rows, ${holdoutPositives} labelled 1)`;
  // Strictly above it even with a margin of 0: a model with no skill is no first model either.
  return { ...judged(floor, what, true), candidate, current: undefined };
}

const compact = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace('T', 't').slice(0, 15);

/**
 * The version a request trains: deterministic, so a redelivered request (or a retry after a
 * crash) addresses the same artifact directory and the same model_versions row.
 */
export function versionFor(request: RetrainRequest): string {
  const h = createHash('sha256').update(request.request_id).digest('hex').slice(0, 8);
  return `r${compact(request.data_to)}-${h}`;
}
