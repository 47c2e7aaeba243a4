import type { ClassCounts } from './dataset.js';

/**
 * How long a retrain request waits for its labels. Labels arrive after the predictions they
 * label (minutes to days, by domain), so a request fired right after its window can find too few
 * labeled rows only because the label-joiner has not seen them yet. Refusing it at once would
 * dead-letter a good request, and the trigger's cooldown (24 h by default) would keep the model
 * from retraining. The wait is bounded in event time: labels of predictions made before `data_to`
 * are expected by `data_to + waitMs`; after that the request is refused as before. Enough labels
 * means rows (MIN_ROWS) and both classes on both sides of the split (MIN_CLASS_ROWS), and, when the
 * request names a base version, among the held-out rows that carry its score.
 */
export interface LabelWaitPolicy {
  /** How long after the window's end labels are awaited (0: refuse at once). */
  readonly waitMs: number;
  /** How often the labeled rows are counted again while waiting. */
  readonly pollMs: number;
}

/** What a window needs to train: rows, and rows of each class on each side of the split. */
export interface LabelNeeds {
  readonly minRows: number;
  /**
   * Rows labeled 0 and rows labeled 1, each, in the training split and in the held-out slice. With
   * one class only the training fits a constant (that accuracy and log loss then PROMOTED) and the
   * held-out ROC AUC is undefined (REJECTED, the retrain lost): such a window waits for labels.
   * So does a window whose held-out rows scored by the named base version are one class: the gate
   * measures that version on them alone (dataset.ts measuresBase), and with one class its ROC AUC
   * is undefined and the request REJECTED for good (the held-out positives answered by a canary,
   * or by a version that took over mid-slice; found by a review).
   */
  readonly minClassRows: number;
}

/**
 * Why `counts` cannot train yet (one line), or undefined when it can. `of` names the window in
 * the text ("of fraud in [from, to)").
 */
export function labelShortfall(counts: ClassCounts, needs: LabelNeeds, of = ''): string | undefined {
  const where = of === '' ? '' : ` ${of}`;
  if (counts.rows < needs.minRows) return `${counts.rows} labeled rows${where} — at least ${needs.minRows} needed`;
  for (const side of ['train', 'holdout'] as const) {
    for (const cls of ['negative', 'positive'] as const) {
      const have = counts[side][cls];
      if (have < needs.minClassRows) {
        const slice = side === 'train' ? 'training split' : 'held-out slice';
        const size = counts[side].negative + counts[side].positive;
        return `${have} of the ${size} rows of the ${slice}${where} labeled ${cls === 'positive' ? 1 : 0} — at least ${needs.minClassRows} of each class needed in the training split and in the held-out slice (DRIFTLINE_TRAINER_MIN_CLASS_ROWS)`;
      }
    }
  }
  // No base version named: each row's answered score stands for it, the whole held-out slice.
  const { version, negative, positive } = counts.base;
  if (version === '') return undefined;
  for (const cls of ['negative', 'positive'] as const) {
    const have = counts.base[cls];
    if (have < needs.minClassRows) {
      const scored =
        negative + positive === 0
          ? `none of the held-out rows${where} carries the score of the base version ${version} (it served none of them: a version replaced before them, or not this model's)`
          : `${have} of the ${negative + positive} held-out rows${where} the base version ${version} scored labeled ${cls === 'positive' ? 1 : 0}`;
      return `${scored} — at least ${needs.minClassRows} of each class needed among them: the gate measures ${version} on these rows alone (DRIFTLINE_TRAINER_MIN_CLASS_ROWS)`;
    }
  }
  return undefined;
}

export type LabelWaitStep =
  | { readonly kind: 'train' }
  /** Not enough labels yet: read again after `ms`; the wait ends at `until` (epoch ms). */
  | { readonly kind: 'wait'; readonly ms: number; readonly until: number; readonly shortfall: string }
  /** Not enough labels and the wait is over (or was 0). */
  | { readonly kind: 'refuse'; readonly until: number; readonly shortfall: string };

export function labelWaitStep(
  counts: ClassCounts,
  needs: LabelNeeds,
  dataTo: number,
  now: number,
  policy: LabelWaitPolicy,
  of = '',
): LabelWaitStep {
  const shortfall = labelShortfall(counts, needs, of);
  if (shortfall === undefined) return { kind: 'train' };
  const until = dataTo + policy.waitMs;
  if (now >= until) return { kind: 'refuse', until, shortfall };
  return { kind: 'wait', ms: Math.min(policy.pollMs, until - now), until, shortfall };
}

/**
 * The requests waiting for labels now, in memory: a waiting request is no longer held inside its
 * batch (that held every partition of the process) but deferred and redelivered every poll, so
 * when it began waiting (its first log line, the gauge, how long it waited) is kept here across
 * those redeliveries. A restart forgets it: the first delivery after it logs the wait's start
 * again. Its deadline is in event time (`data_to + waitMs`), so a restart does not lengthen it.
 */
export class LabelWaits {
  readonly #since = new Map<string, { readonly model: string; readonly since: number }>();

  /** The request waits (again) at `now`: since when, and whether it starts waiting here. */
  waiting(requestId: string, model: string, now: number): { readonly since: number; readonly began: boolean } {
    const known = this.#since.get(requestId);
    if (known !== undefined) return { since: known.since, began: false };
    this.#since.set(requestId, { model, since: now });
    return { since: now, began: true };
  }

  /** The request waits no more (trained, refused, or its partition is another member's): its wait, if any. */
  end(requestId: string): { readonly model: string; readonly since: number } | undefined {
    const known = this.#since.get(requestId);
    this.#since.delete(requestId);
    return known;
  }
}
