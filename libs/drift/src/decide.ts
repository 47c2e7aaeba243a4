import {
  type CategoricalReferenceProfile,
  type CategoricalSummary,
  chiSquareFromSummary,
  jensenShannonFromCategoricalSummary,
  jensenShannonFromSummary,
  type KsExactBudget,
  ksFromSummary,
  type NumericReferenceProfile,
  type NumericSummary,
  outOfRangeShareFromSummary,
  psiFromCategoricalSummary,
  psiFromSummary,
  type ReferenceProfile,
  type Summary,
} from '@driftline/stats';
import { type MissingCount, missingShareRise, profileMissingCount, summaryMissingCount } from './missing-share.js';
import { isPredictionFeature } from './reference.js';

export type DriftMethod = 'psi' | 'ks' | 'jensen_shannon' | 'chi2' | 'missing_rate' | 'out_of_range';
/** The method that decides whether a feature drifted (categoricals: psi→psi, ks→chi2, js→js). */
export type PrimaryMethod = 'psi' | 'ks' | 'jensen_shannon';

export interface DriftThresholds {
  /** PSI at or above this drifts (default 0.2). */
  readonly psi: number;
  /** KS p-value below this drifts (default 0.05). */
  readonly ksAlpha: number;
  /** Jensen–Shannon distance at or above this drifts (default 0.1, as Evidently). */
  readonly jensenShannon: number;
  /** Chi-square p-value below this drifts (default 0.05). */
  readonly chi2Alpha: number;
  /**
   * A missing rate at least this much above the reference's drifts when the two-proportion test
   * agrees (p < `chi2Alpha`; `missingShareRise`) (default 0.1).
   */
  readonly missingRateIncrease: number;
  /** Share of values outside the reference [min, max] above this drifts (default 0.1). */
  readonly outOfRange: number;
}

export const DEFAULT_THRESHOLDS: DriftThresholds = {
  psi: 0.2,
  ksAlpha: 0.05,
  jensenShannon: 0.1,
  chi2Alpha: 0.05,
  missingRateIncrease: 0.1,
  outOfRange: 0.1,
};

/** One row of `drift_windows`: one feature measured one way in one window. */
export interface MethodResult {
  readonly feature: string;
  readonly method: DriftMethod;
  readonly statistic: number;
  readonly pValue: number | null;
  readonly threshold: number;
  readonly drifted: boolean;
  readonly referenceSize: number;
  readonly currentSize: number;
  /** KS from a merged summary: the exact D lies in [statistic, statistic + errorBound]. */
  readonly errorBound: number | null;
}

function row(
  feature: string,
  method: DriftMethod,
  statistic: number,
  threshold: number,
  drifted: boolean,
  sizes: [number, number],
  pValue: number | null = null,
  errorBound: number | null = null,
): MethodResult {
  return {
    feature,
    method,
    statistic,
    pValue,
    threshold,
    drifted,
    referenceSize: sizes[0],
    currentSize: sizes[1],
    errorBound,
  };
}

function numericResults(
  feature: string,
  profile: NumericReferenceProfile,
  s: NumericSummary,
  t: DriftThresholds,
  budget: KsExactBudget | undefined,
): MethodResult[] {
  const out: MethodResult[] = [];
  const sizes: [number, number] = [profile.n, s.count];
  if (s.count > 0) {
    const psi = psiFromSummary(profile, s).value;
    out.push(row(feature, 'psi', psi, t.psi, psi >= t.psi, sizes));
    const ks = ksFromSummary(profile, s, { budget });
    // The grid statistic is a lower bound of the exact D. Up to 10,000 rows a side, within the
    // exact walk's budgets, the p-value is the exact one (as scipy's method='auto'), so it bounds
    // the raw-data exact p from above and "p < alpha" is a conservative drift call; otherwise it is
    // asymptotic (within ~1% of exact where the budget cuts in), as scipy's is above 10,000.
    const p = ks.pValue;
    out.push(row(feature, 'ks', ks.statistic, t.ksAlpha, p < t.ksAlpha, sizes, p, ks.errorBound));
    const js = jensenShannonFromSummary(profile, s);
    out.push(row(feature, 'jensen_shannon', js, t.jensenShannon, js >= t.jensenShannon, sizes));
  }
  pushQuality(out, feature, profileMissingCount(profile), summaryMissingCount(s), t);
  const oor = outOfRangeShareFromSummary(s);
  if (!Number.isNaN(oor))
    out.push(row(feature, 'out_of_range', oor, t.outOfRange, oor > t.outOfRange, [profile.n, s.count + s.infinite]));
  return out;
}

function categoricalResults(
  feature: string,
  profile: CategoricalReferenceProfile,
  s: CategoricalSummary,
  t: DriftThresholds,
): MethodResult[] {
  const out: MethodResult[] = [];
  const sizes: [number, number] = [profile.n, s.count];
  if (s.count > 0) {
    const psi = psiFromCategoricalSummary(profile, s).value;
    out.push(row(feature, 'psi', psi, t.psi, psi >= t.psi, sizes));
    const chi = chiSquareFromSummary(profile, s);
    if (!Number.isNaN(chi.statistic)) {
      out.push(row(feature, 'chi2', chi.statistic, t.chi2Alpha, chi.pValue < t.chi2Alpha, sizes, chi.pValue));
    }
    const js = jensenShannonFromCategoricalSummary(profile, s);
    out.push(row(feature, 'jensen_shannon', js, t.jensenShannon, js >= t.jensenShannon, sizes));
  }
  pushQuality(out, feature, profileMissingCount(profile), summaryMissingCount(s), t);
  return out;
}

/**
 * The `missing_rate` row: the current share, drifted by `missingShareRise` (a rise of at least
 * `missingRateIncrease` and p < `chi2Alpha`, the batch drift's rule), its threshold the reference's
 * share plus the increase, its p-value the test's. A per-window flag: with nothing changed it is
 * set in 1.1–2.8% of 100-event windows at reference shares 0.2–0.5 (at 0.4: 2.7%, against 1.7%
 * for the rise alone before; the test rejects almost nothing the rise lets through at 100 events,
 * and "at least" counts a share at the threshold). The drift monitor's DATA_QUALITY alert does not
 * read it: `missingShareCheck` judges the whole window at its own, strict level.
 */
function pushQuality(
  out: MethodResult[],
  feature: string,
  reference: MissingCount,
  current: MissingCount,
  t: DriftThresholds,
): void {
  if (current.total === 0) return;
  const m = missingShareRise(reference, current, { alpha: t.chi2Alpha, increase: t.missingRateIncrease });
  out.push(
    row(
      feature,
      'missing_rate',
      m.rate,
      m.referenceRate + t.missingRateIncrease,
      m.rose,
      [reference.total, current.total],
      Number.isNaN(m.pValue) ? null : m.pValue,
    ),
  );
}

/**
 * Every method libs/stats computes cheaply from a merged summary; NaN statistics are left out.
 * `ksBudget`: one `KsExactBudget` shared by every feature of a window bounds the exact KS p-value
 * work of the whole window (without it, each feature is bounded alone: ≤ ~17 ms).
 */
export function featureResults(
  feature: string,
  profile: ReferenceProfile,
  summary: Summary,
  t: DriftThresholds,
  ksBudget?: KsExactBudget,
): MethodResult[] {
  const rows =
    profile.kind === 'numeric' && summary.kind === 'numeric'
      ? numericResults(feature, profile, summary, t, ksBudget)
      : profile.kind === 'categorical' && summary.kind === 'categorical'
        ? categoricalResults(feature, profile, summary, t)
        : [];
  return rows.filter((r) => !Number.isNaN(r.statistic));
}

export function primaryMethodFor(kind: 'numeric' | 'categorical', primary: PrimaryMethod): DriftMethod {
  if (kind === 'numeric') return primary;
  return primary === 'ks' ? 'chi2' : primary;
}

/**
 * The feature and method of the one `drift_windows` row a (model, version, window) gets when it has
 * late events and no row of its own (no event on time: every statistic is NaN, so no method row):
 * its `late_events` would reach no table otherwise (a review sent 3 late events, counted in the
 * metric, and every row said 0). Not a measurement — statistic 0, never drifted, `events` 0 — and
 * no verdict, alert or share reads it: queries filtering by method (the dashboards' and the
 * report's) leave it out, and `max(late_events)` per window reads it like any row. `__` as the
 * prediction features: not an input feature where names starting with `__` are left out.
 */
export const LATE_ONLY_FEATURE = '__window__';
export const LATE_ONLY_METHOD = 'late_only';

export interface WindowVerdict {
  /**
   * Input features the window covers (prediction features excluded): those with any row, which is
   * every input feature of the reference once the window has an event (a feature absent from
   * every event still has its missing_rate row).
   */
  readonly features: number;
  /** Their primary-method rows that drifted, sorted by feature. */
  readonly drifted: readonly MethodResult[];
  readonly shareDrifted: number;
  /** True when at least one input feature drifted and the share reached `alertShare`. */
  readonly featureDrift: boolean;
  /** Drifted primary-method rows of the prediction features. */
  readonly predictionDrift: readonly MethodResult[];
}

/**
 * Window-level verdict from the per-feature rows: a feature drifted when its primary method did;
 * the window has feature drift when at least one input feature and at least `alertShare` of them
 * drifted (0 = any), and prediction drift when `__prediction__`/`__predicted_class__` drifted.
 * The share's denominator is every input feature the window covers, also one with no primary row
 * (no value the primary method could measure: absent or null in every event, or every value
 * infinite). Such a feature is not drifted here. Absent or null, its missing_rate row records it
 * and the DATA_QUALITY alert reports it (the drift monitor's built-in `missingShareCheck`, or the
 * feature's evaluated `max_null_rate`, which replaces that check for it). Every value infinite,
 * it is not missing — ±Infinity counts as present in a window (and in the reference), so its
 * missing share does not move — and only its `out_of_range` row (share 1, drifted) records it: no
 * alert (the batch `driftline drift` counts ±Infinity as missing instead). Before, it left the
 * denominator, so a feature dropping out raised the share (x drifted and y gone: 0.5 where windows
 * with y said 0.33; a review). Counting it as drifted (tried) made an upstream outage push the
 * retrain policy towards training on broken data, and a reference column live events never carry
 * raise FEATURE_DRIFT in every window (a regression review).
 */
export function windowVerdict(
  rows: readonly MethodResult[],
  kinds: ReadonlyMap<string, 'numeric' | 'categorical'>,
  primary: PrimaryMethod,
  alertShare: number,
): WindowVerdict {
  const primaryRows = new Map<string, MethodResult>();
  const covered = new Set<string>();
  for (const r of rows) {
    covered.add(r.feature);
    if (r.method === primaryMethodFor(kinds.get(r.feature) ?? 'numeric', primary)) primaryRows.set(r.feature, r);
  }
  const byName = (a: MethodResult, b: MethodResult) => (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0);
  const inputs = [...covered].filter((f) => !isPredictionFeature(f));
  const drifted = inputs
    .map((f) => primaryRows.get(f))
    .filter((r): r is MethodResult => r?.drifted === true)
    .sort(byName);
  const shareDrifted = inputs.length === 0 ? 0 : drifted.length / inputs.length;
  return {
    features: inputs.length,
    drifted,
    shareDrifted,
    featureDrift: drifted.length > 0 && shareDrifted >= alertShare,
    predictionDrift: [...primaryRows.values()].filter((r) => isPredictionFeature(r.feature) && r.drifted).sort(byName),
  };
}
