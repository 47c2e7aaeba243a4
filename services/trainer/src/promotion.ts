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

/**
 * Promote when the candidate beats the serving model on the same held-out rows by `margin`
 * (`candidate ≥ current + margin`, or `≤ current − margin` for log loss). The serving model's
 * value (`current_*`) is measured on the held-out rows that carry the base version's score
 * (`current_rows` of them); the candidate's on those same rows (`gate_*`) when the worker reports
 * it, else on the whole slice. With no measurable current value (no row scored by the base
 * version, one class only) the candidate is promoted when its own metric is defined; without a
 * candidate value it is rejected.
 */
export function decidePromotion(metrics: Readonly<Record<string, number>>, rule: PromotionRule): PromotionVerdict {
  const gated = metrics[`gate_${rule.metric}`];
  const candidate = gated !== undefined && Number.isFinite(gated) ? gated : metrics[rule.metric];
  const current = metrics[`current_${rule.metric}`];
  if (candidate === undefined || !Number.isFinite(candidate)) {
    return { promote: false, reason: `${rule.metric} of the candidate is undefined`, candidate, current };
  }
  const rows = metrics.current_rows;
  if (current === undefined || !Number.isFinite(current)) {
    const why = rows === 0 ? ' (no held-out row carries the base version’s score)' : '';
    return { promote: true, reason: `no current ${rule.metric} to compare with${why}`, candidate, current };
  }
  const lower = LOWER_IS_BETTER.has(rule.metric);
  const gain = lower ? current - candidate : candidate - current;
  // A hair of tolerance so that a gain equal to the margin (in decimal) is not lost to rounding.
  const promote = gain >= rule.margin - 1e-12;
  const rel = lower ? '≤' : '≥';
  return {
    promote,
    reason: `${rule.metric} ${candidate.toFixed(4)} vs current ${current.toFixed(4)}${rows === undefined ? '' : ` on the ${rows} held-out rows the base version scored`}: gain ${gain.toFixed(4)} ${promote ? rel : 'below'} margin ${rule.margin}`,
    candidate,
    current,
  };
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
