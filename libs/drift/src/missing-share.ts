import type { ExpectationSet } from '@driftline/quality';
import { chiSquareHomogeneity } from '@driftline/stats';
import type { MethodResult } from './decide.js';
import { isPredictionFeature } from './reference.js';

/** Missing values of one side among all its values (events, or table rows). */
export interface MissingCount {
  readonly missing: number;
  readonly total: number;
}

export interface MissingShareRise {
  /** The current missing share (NaN when the current side is empty). */
  readonly rate: number;
  readonly referenceRate: number;
  /**
   * The two shares compared as two proportions: chi-square of the 2×2 table (present, missing) ×
   * (reference, current) without continuity correction, as scipy's
   * `chi2_contingency(correction=False)`; 1 when neither side misses a value, NaN when a side is empty.
   */
  readonly pValue: number;
  /** The current share rose by at least `increase` over the reference's and p < `alpha`. */
  readonly rose: boolean;
}

/**
 * Whether the missing share rose significantly: by at least `increase` (absolute) AND with a
 * two-proportion test at `alpha`. The one rule of the batch drift (`driftline drift`) and the
 * streaming `missing_rate` row (and the drift monitor's built-in data-quality check). The rise
 * alone flagged noise: a reference share of 0.4 against windows of 100 events passes 0.5 in ~2%
 * of windows, ~30 false flags a day at 1-minute windows; and a feature 90% missing in the current
 * table printed "no" before the rise was checked at all.
 */
export function missingShareRise(
  reference: MissingCount,
  current: MissingCount,
  t: { readonly alpha: number; readonly increase: number },
): MissingShareRise {
  const { pValue } = chiSquareHomogeneity(
    [reference.total - reference.missing, reference.missing],
    [current.total - current.missing, current.missing],
  );
  const rate = current.total === 0 ? Number.NaN : current.missing / current.total;
  const referenceRate = reference.total === 0 ? Number.NaN : reference.missing / reference.total;
  // A little slack: 0.3 − 0.2 is 0.0999… in binary, and "at least 0.1" means it.
  return { rate, referenceRate, pValue, rose: rate - referenceRate >= t.increase - 1e-12 && pValue < t.alpha };
}

/** The expectation name of a built-in missing-share failure on a DATA_QUALITY alert. */
export const MISSING_SHARE_EXPECTATION = 'missing_share';

/** One input feature whose missing share rose significantly in a window (its `missing_rate` row drifted). */
export interface MissingShareFailure {
  readonly feature: string;
  /** The window's missing share. */
  readonly observed: number;
  /** The reference's missing share plus the increase (`missingRateIncrease`). */
  readonly bound: number;
  /** Events of the window the share counts. */
  readonly count: number;
  readonly pValue: number | null;
}

/** What the built-in missing-share check found in a window: the features it measured, and those that failed. */
export interface MissingShareCheck {
  readonly checked: number;
  readonly failed: readonly MissingShareFailure[];
}

export const NO_MISSING_SHARE_CHECK: MissingShareCheck = { checked: 0, failed: [] };

/**
 * The built-in data-quality check of a window's input features, from its `missing_rate` rows
 * (`featureResults`: drifted = `missingShareRise`): a feature whose missing share rose
 * significantly fails — up to an upstream outage, absent from every event, which no drift row
 * alerts on (the feature is not drifted: see `windowVerdict`). Nothing is checked under
 * `minEvents` events (DRIFTLINE_DRIFT_ALERT_MIN_EVENTS), nor the prediction features, nor a feature
 * with a declared `max_null_rate` in `expectations` (the user stated the share they accept, and
 * that expectation decides). Failures in feature order.
 */
export function missingShareCheck(
  rows: readonly MethodResult[],
  options: { readonly events: number; readonly minEvents: number; readonly expectations?: ExpectationSet },
): MissingShareCheck {
  if (options.events < options.minEvents) return NO_MISSING_SHARE_CHECK;
  const declared = new Set(
    (options.expectations?.features ?? []).filter((e) => e.maxNullRate !== undefined).map((e) => e.feature),
  );
  const checked = rows.filter(
    (r) => r.method === 'missing_rate' && !isPredictionFeature(r.feature) && !declared.has(r.feature),
  );
  const failed = checked
    .filter((r) => r.drifted)
    .map(
      (r): MissingShareFailure => ({
        feature: r.feature,
        observed: r.statistic,
        bound: r.threshold,
        count: r.currentSize,
        pValue: r.pValue,
      }),
    )
    .sort((a, b) => (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0));
  return { checked: checked.length, failed };
}
