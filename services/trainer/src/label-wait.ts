/**
 * How long a retrain request waits for its labels. Labels arrive after the predictions they
 * label (minutes to days, by domain), so a request fired right after its window can find too few
 * labeled rows only because the label-joiner has not seen them yet. Refusing it at once would
 * dead-letter a good request, and the trigger's cooldown (24 h by default) would keep the model
 * from retraining. The wait is bounded in event time: labels of predictions made before `data_to`
 * are expected by `data_to + waitMs`; after that the request is refused as before.
 */
export interface LabelWaitPolicy {
  /** How long after the window's end labels are awaited (0: refuse at once). */
  readonly waitMs: number;
  /** How often the labeled rows are counted again while waiting. */
  readonly pollMs: number;
}

export type LabelWaitStep =
  | { readonly kind: 'train' }
  /** Too few rows yet: read again after `ms`; the wait ends at `until` (epoch ms). */
  | { readonly kind: 'wait'; readonly ms: number; readonly until: number }
  /** Too few rows and the wait is over (or was 0). */
  | { readonly kind: 'refuse'; readonly until: number };

export function labelWaitStep(
  rows: number,
  minRows: number,
  dataTo: number,
  now: number,
  policy: LabelWaitPolicy,
): LabelWaitStep {
  if (rows >= minRows) return { kind: 'train' };
  const until = dataTo + policy.waitMs;
  if (now >= until) return { kind: 'refuse', until };
  return { kind: 'wait', ms: Math.min(policy.pollMs, until - now), until };
}
