import type { ExpectationResult } from '@driftline/quality';
import { chiSquareHomogeneity, type ReferenceProfile, type Summary } from '@driftline/stats';
import { isPredictionFeature, type ReferenceSet } from './reference.js';

/** Missing values of one side among all its values (events, or table rows). */
export interface MissingCount {
  readonly missing: number;
  readonly total: number;
}

/**
 * A reference feature's missing values among its training rows. A numeric ±Infinity counts as
 * present (its `out_of_range` share reports it), as in a window's summary.
 */
export function profileMissingCount(profile: ReferenceProfile): MissingCount {
  return {
    missing: profile.missing,
    total: profile.n + profile.missing + (profile.kind === 'numeric' ? profile.infinite : 0),
  };
}

/**
 * A window summary's missing values among its events. The counts do not depend on the reference
 * the summary was built on (only its bins do), so summaries of one window on different references
 * add up.
 */
export function summaryMissingCount(summary: Summary): MissingCount {
  return {
    missing: summary.missing,
    total: summary.count + summary.missing + (summary.kind === 'numeric' ? summary.infinite : 0),
  };
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
 * streaming `missing_rate` row of `drift_windows`. At the drift alpha (0.05) it is a per-window
 * flag, not an alarm: a stationary share of 0.2–0.5 in 100-event windows still passes it in
 * 1.1–2.8% of windows (the test adds little to the rise on 100 events). The drift monitor's
 * DATA_QUALITY alert judges the same table at its own, strict level (`missingShareCheck`).
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

/** The expectation name of the built-in missing-share check (alerts and `data_quality_windows`). */
export const MISSING_SHARE_EXPECTATION = 'missing_share';

/**
 * The default level of the built-in check (DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA). Exact binomial
 * false-alert rates per window and feature with nothing changed (a reference of 10,000 rows):
 * at most 4.1e-5 over shares 0.1–0.5 at 100 events (1e-4 let 3.1e-4 through at 0.1, chi-square on
 * ~10 expected missing values being anti-conservative; the drift rows' 0.05, 1.8%), ≤ 1e-10 at
 * 1,000. It still catches a feature absent from every event (p < 1e-20 at 100 events for
 * reference shares up to 0.5) and a +0.3 partial outage in ≥ 96.6% of 100-event windows
 * (≥ 99.99% at 200). The figures: libs/drift README, "Missing share".
 */
export const DEFAULT_MISSING_ALERT_ALPHA = 1e-5;

/** One input feature the built-in check measured in a window (a `data_quality_windows` row). */
export interface MissingShareResult {
  readonly feature: string;
  /** The window's missing share. */
  readonly observed: number;
  /** The reference's missing share. */
  readonly referenceShare: number;
  /** The reference's share plus the increase: a share at or under it passes. */
  readonly bound: number;
  /** Events of the window the share counts, and those missing the feature. */
  readonly count: number;
  readonly missing: number;
  /** The two-proportion chi-square p-value (`missingShareRise`); null when it is not a number. */
  readonly pValue: number | null;
  /** The level the check was judged at. */
  readonly alpha: number;
  /** False when the share rose by more than the increase AND p < alpha. */
  readonly passed: boolean;
}

/** What the built-in missing-share check found in a window: every feature it measured, and those that failed. */
export interface MissingShareCheck {
  /** In feature order. */
  readonly results: readonly MissingShareResult[];
  readonly failed: readonly MissingShareResult[];
}

export const NO_MISSING_SHARE_CHECK: MissingShareCheck = { results: [], failed: [] };

export interface MissingShareOptions {
  /** Fewest events a feature's count needs to be checked (DRIFTLINE_DRIFT_ALERT_MIN_EVENTS). */
  readonly minEvents: number;
  /** The check's level (DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA), not the drift rows' chi-square alpha. */
  readonly alpha: number;
  /** The rise over the reference's share a failure needs, strictly more (DRIFTLINE_DRIFT_MISSING_RATE_INCREASE). */
  readonly increase: number;
  /**
   * The window's evaluated expectations: a feature with a `null_rate` result (its declared
   * `max_null_rate`, evaluated on this window's counts) is left to it. Declared but not evaluated
   * (the counts were built against other expectations, or are absent) is checked here.
   */
  readonly declared?: readonly ExpectationResult[];
}

/**
 * The drift monitor's built-in data-quality check: every input feature of `reference` (the
 * prediction features are not checked) whose window count reaches `minEvents` fails when its
 * missing share rose by MORE than `increase` over the reference's AND the two-proportion test gives
 * p < `alpha` — a strict level of its own: it raises an alert, where the `missing_rate` row
 * (`missingShareRise` at the drift alpha, a rise of at least the increase) is a per-window flag.
 * So an upstream outage (a feature absent from every event: the model scores it with its default
 * direction; no drift row alerts on it, see `windowVerdict`) alerts with no expectation declared.
 * `counts` are the whole window's, whatever reference each part was summarised on (the counts do
 * not depend on it). A feature whose declared `max_null_rate` was evaluated is left to it.
 */
export function missingShareCheck(
  reference: ReferenceSet,
  counts: ReadonlyMap<string, MissingCount>,
  options: MissingShareOptions,
): MissingShareCheck {
  const exempt = new Set((options.declared ?? []).filter((r) => r.expectation === 'null_rate').map((r) => r.feature));
  const results: MissingShareResult[] = [];
  for (let i = 0; i < reference.features.length; i++) {
    const feature = reference.features[i]!;
    const current = counts.get(feature);
    if (isPredictionFeature(feature) || exempt.has(feature) || current === undefined) continue;
    if (current.total === 0 || current.total < options.minEvents) continue;
    const m = missingShareRise(profileMissingCount(reference.profiles[i]!), current, {
      alpha: options.alpha,
      increase: options.increase,
    });
    // Strictly more than the increase (a share at the bound passes, as `max_null_rate` does), with
    // the slack of `missingShareRise`: 0.8 − 0.7 is 0.1000…1 in binary.
    const failed = m.rate - m.referenceRate > options.increase + 1e-12 && m.pValue < options.alpha;
    results.push({
      feature,
      observed: m.rate,
      referenceShare: m.referenceRate,
      bound: m.referenceRate + options.increase,
      count: current.total,
      missing: current.missing,
      pValue: Number.isNaN(m.pValue) ? null : m.pValue,
      alpha: options.alpha,
      passed: !failed,
    });
  }
  return { results, failed: results.filter((r) => !r.passed) };
}

/**
 * Missing counts per feature, added over summaries of one window: the measured part's and the
 * set-aside parts' (each merged on its own reference; `mergeGroup`), so the whole window counts.
 */
export function windowMissingCounts(parts: ReadonlyArray<ReadonlyMap<string, Summary>>): Map<string, MissingCount> {
  const out = new Map<string, MissingCount>();
  for (const part of parts) {
    for (const [feature, summary] of part) {
      const c = summaryMissingCount(summary);
      const prev = out.get(feature);
      out.set(feature, prev === undefined ? c : { missing: prev.missing + c.missing, total: prev.total + c.total });
    }
  }
  return out;
}
