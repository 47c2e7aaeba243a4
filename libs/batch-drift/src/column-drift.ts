import { DriftlineError } from '@driftline/core';
import { type MissingCount, missingShareRise } from '@driftline/drift';
import {
  chiSquareHomogeneity,
  DEFAULT_PSI_EPSILON,
  jensenShannon,
  jensenShannonNumeric,
  ks2sampSorted,
  missingRate,
  outOfRangeShare,
  type PsiBinning,
  psiCategorical,
  psiFromCounts,
  psiNumeric,
  sortedFinite,
  wassersteinSorted,
} from '@driftline/stats';
import { type Column, isTextNumber, parseNumberText, quotedName, suggestedOption } from './columns.js';
import { type EvidentlyDecision, type EvidentlyStattest, evidentlyCategorical, evidentlyNumeric } from './evidently.js';
import { floatPairAtWidth } from './narrow-float.js';
import { timeTextColumn, timeTextValue } from './time-text.js';

export interface DriftOptions {
  readonly bins?: number;
  readonly binning?: PsiBinning;
  /** PSI at or above this is drift (default 0.2, the usual "significant shift"). */
  readonly psiThreshold?: number;
  /** KS / chi-square p-value below this is drift (default 0.05). */
  readonly alpha?: number;
  /**
   * Who decides `drifted`: driftline's tests (PSI ≥ threshold or a p-value < alpha; the default) or
   * `evidently`: the test, threshold and binning Evidently's DataDriftPreset picks for the column
   * (see evidently.ts); the driftline statistics are reported either way.
   */
  readonly stattest?: 'driftline' | 'evidently';
  /**
   * Fewest present (non-missing) values a column needs on each side for PSI to decide its verdict
   * (default 100, as the streaming monitor's DRIFTLINE_DRIFT_ALERT_MIN_EVENTS): under no drift PSI
   * grows like (bins − 1)(1/n + 1/m), so on 20 rows it passed 0.2 for most unchanged columns. Below
   * it only the tests with a p-value (KS, chi-square, the missing share) decide. Evidently's rule is
   * never changed; the row says `small_sample` either way.
   */
  readonly minRows?: number;
  /**
   * A current missing share at least this much above the reference's (absolute, default 0.1) is
   * drift by `missing` when the two-proportion test agrees (p < alpha); 1 leaves only a current
   * column with every cell missing. Not in Evidently's rule.
   */
  readonly missingThreshold?: number;
}

export interface ColumnDrift {
  readonly column: string;
  readonly kind: 'numeric' | 'categorical';
  readonly reference_size: number;
  readonly current_size: number;
  readonly psi: number;
  readonly psi_binning: PsiBinning;
  readonly psi_threshold: number;
  readonly ks_statistic?: number;
  readonly ks_p_value?: number;
  readonly ks_method?: 'exact' | 'asymp';
  readonly chi2_statistic?: number;
  readonly chi2_p_value?: number;
  readonly wasserstein?: number;
  readonly jensen_shannon: number;
  readonly missing_rate_reference: number;
  readonly missing_rate_current: number;
  /**
   * The two missing shares compared as two proportions: chi-square of the 2×2 table (present,
   * missing) × (reference, current) without continuity correction (scipy's
   * `chi2_contingency(correction=False)`); 1 when neither side misses a value.
   */
  readonly missing_p_value: number;
  /** A side has fewer present values than `minRows`: PSI did not decide (default mode). */
  readonly small_sample: boolean;
  /** Numeric: share of current values outside [reference min, reference max]. */
  readonly out_of_range_share?: number;
  readonly drifted: boolean;
  /** The tests that called drift. */
  readonly drifted_by: string[];
  /** `stattest: 'evidently'`: Evidently's test for this column, its score (p-value or distance) and threshold. */
  readonly stattest?: EvidentlyStattest;
  readonly drift_score?: number;
  readonly stattest_threshold?: number;
}

/**
 * Drift of one column of the current table against the same column of the reference. A current
 * column with every cell missing (the feature stopped arriving) is drifted by `missing`, its
 * p-values NaN: there is no sample to test, and "no drift" (KS p = 1) hid exactly that outage.
 */
export function columnDrift(referenceColumn: Column, currentColumn: Column, options: DriftOptions = {}): ColumnDrift {
  const reference = infinityAsMissing(referenceColumn);
  const current = missingAsKindOf(reference, infinityAsMissing(currentColumn));
  if (!hasValue(reference)) {
    throw new DriftlineError(
      'BAD_REQUEST',
      `column ${quotedName(reference.name)}: every cell of the reference is missing — nothing to compare against; leave it out with ${suggestedOption('--ignore', reference.name)}`,
    );
  }
  let drift: ColumnDrift;
  try {
    drift = compareColumns(reference, current, options);
  } catch (error) {
    // A statistic refusing the column's values (±1.7e308 under Evidently's binning): say which column.
    if (error instanceof DriftlineError && error.code === 'VALIDATION_FAILED')
      throw new DriftlineError('BAD_REQUEST', `column ${quotedName(reference.name)}: ${error.message}`);
    throw error;
  }
  if (hasValue(current)) return drift;
  return {
    ...drift,
    ...(drift.ks_p_value === undefined ? {} : { ks_p_value: Number.NaN }),
    ...(drift.chi2_p_value === undefined ? {} : { chi2_p_value: Number.NaN }),
    drifted: true,
    drifted_by: ['missing'],
  };
}

function compareColumns(referenceRead: Column, currentRead: Column, options: DriftOptions): ColumnDrift {
  // A timestamp, date or time of day (Arrow, Parquet) against its ISO-8601 text (CSV): the same numbers;
  // a float32/16 column against any spelling of the same values (shortest digits, widened): the same numbers.
  const [reference, current] = floatPairAtWidth(
    timeTextColumn(currentRead, referenceRead) ?? referenceRead,
    timeTextColumn(referenceRead, currentRead) ?? currentRead,
  );
  if (reference.kind === 'numeric' && current.kind === 'numeric') {
    // Sort each column once: every statistic (both modes) walks the sorted samples, and sorting is
    // most of the time on large tables (re-sorting a sorted array is a linear check).
    const ref = sortedFinite(reference.values);
    const cur = sortedFinite(current.values);
    const drift = numericDrift(reference, current, ref, cur, options);
    if (options.stattest !== 'evidently') return drift;
    // numericDrift sets both: the same functions on the same sorted samples as Evidently's tests.
    const known = { wasserstein: drift.wasserstein!, ksPValue: drift.ks_p_value! };
    return withEvidently(drift, evidentlyNumeric(ref, cur, current.values, known, current.integerText));
  }
  // A column read as numbers on one side and text on the other has no common categories: `1.0`
  // would become "1" against "1.0" (every value drifts). Say so instead of answering wrong. (A
  // side with no value at all is typed numeric: it compares as missing categories.)
  if (reference.kind !== current.kind && hasNumber(reference) && hasNumber(current)) {
    const [numeric, text] = reference.kind === 'numeric' ? ['reference', 'current'] : ['current', 'reference'];
    const textColumn = reference.kind === 'numeric' ? current : reference;
    const numericColumn = reference.kind === 'numeric' ? reference : current;
    if (numericColumn.kind === 'numeric' && numericColumn.time !== undefined && textColumn.kind === 'categorical') {
      // Not --categorical: that compares the reader's numbers with the text, and identical data drifts.
      const kind = numericColumn.time;
      const bad = textColumn.values.find((v): v is string => v !== null && timeTextValue(v, kind) === undefined);
      throw new DriftlineError(
        'BAD_REQUEST',
        `column ${quotedName(reference.name)}: ${TIME_KINDS[kind].what} in the ${numeric} but text in the ${text} that is not ISO-8601${bad === undefined ? '' : ` (such as ${JSON.stringify(bad.slice(0, 40))})`} — write those values as ISO-8601 (${TIME_KINDS[kind].example}, as pandas writes them), or leave the column out with ${suggestedOption('--ignore', reference.name)}`,
      );
    }
    if (
      textColumn.kind === 'categorical' &&
      numericColumn.kind === 'numeric' &&
      booleansAgainstBits(textColumn, numericColumn)
    ) {
      // Not --categorical: `1` and `0` against `true` and `false` share no category (PSI 17.7 on identical data).
      throw new DriftlineError(
        'BAD_REQUEST',
        `column ${quotedName(reference.name)}: true/false in the ${text} but 1/0 in the ${numeric} — convert one side (the booleans to 1/0, or the 1/0 to true/false), or leave the column out with ${suggestedOption('--ignore', reference.name)}`,
      );
    }
    const sample = textColumn.kind === 'categorical' ? textSample(textColumn.values) : undefined;
    // --numeric would only move the error to the first text cell; --categorical always compares.
    throw new DriftlineError(
      'BAD_REQUEST',
      `column ${quotedName(reference.name)}: numbers in the ${numeric} but text in the ${text}${sample === undefined ? '' : ` (such as ${JSON.stringify(sample)})`} — compare it as categories with ${suggestedOption('--categorical', reference.name)}, or make those values numbers`,
    );
  }
  const ref = categories(reference);
  const cur = categories(current);
  const refCounts = valueCounts(ref);
  const curCounts = valueCounts(cur);
  const drift = categoricalDrift(reference.name, ref, cur, refCounts, curCounts, options);
  return options.stattest === 'evidently'
    ? withEvidently(drift, evidentlyCategorical(refCounts.counts, curCounts.counts))
    : drift;
}

/** How the error for a time column facing other text names the column and shows ISO-8601. */
const TIME_KINDS = {
  timestamp: { what: 'timestamps', example: '2025-01-31 12:00:00' },
  date: { what: 'dates', example: '2025-01-31' },
  time: { what: 'times of day', example: '12:00:00' },
} as const;

/** Present values a side needs for PSI to decide (`DriftOptions.minRows`). */
export const DEFAULT_MIN_ROWS = 100;
/** Rise of the missing share that is drift when significant (`DriftOptions.missingThreshold`). */
export const DEFAULT_MISSING_THRESHOLD = 0.1;

/**
 * The missing shares of the two sides as two proportions (`missing_p_value`), and whether the
 * current one rose by at least the threshold and significantly (`missingShareRise` of
 * @driftline/drift, the streaming monitor's rule too): a feature 90% missing in the current
 * table printed "no" (its present values were still N(0,1)).
 */
function missingShares(
  reference: MissingCount,
  current: MissingCount,
  t: { readonly alpha: number; readonly missingThreshold: number },
): { pValue: number; drifted: boolean } {
  const { pValue, rose } = missingShareRise(reference, current, { alpha: t.alpha, increase: t.missingThreshold });
  return { pValue, drifted: rose };
}

function withEvidently(drift: ColumnDrift, e: EvidentlyDecision): ColumnDrift {
  return {
    ...drift,
    drifted: e.drifted,
    drifted_by: e.drifted ? [e.stattest] : [],
    stattest: e.stattest,
    drift_score: e.score,
    stattest_threshold: e.threshold,
  };
}

function thresholds(options: DriftOptions) {
  return {
    psiThreshold: options.psiThreshold ?? 0.2,
    alpha: options.alpha ?? 0.05,
    minRows: options.minRows ?? DEFAULT_MIN_ROWS,
    missingThreshold: options.missingThreshold ?? DEFAULT_MISSING_THRESHOLD,
    psiOptions: {
      ...(options.bins === undefined ? {} : { bins: options.bins }),
      binning: options.binning ?? 'quantile',
    },
  };
}

function numericDrift(
  reference: Column & { kind: 'numeric' },
  current: Column & { kind: 'numeric' },
  ref: Float64Array,
  cur: Float64Array,
  options: DriftOptions,
): ColumnDrift {
  const t = thresholds(options);
  const { psiThreshold, alpha, psiOptions } = t;
  const psi = psiNumeric(ref, cur, psiOptions);
  const ks = ks2sampSorted(ref, cur);
  const min = ref.length > 0 ? ref[0]! : Number.NaN;
  const max = ref.length > 0 ? ref[ref.length - 1]! : Number.NaN;
  // ref and cur hold the finite values: the rest (NaN, and ±Infinity read as NaN) is missing.
  const missing = missingShares(
    { missing: reference.values.length - ref.length, total: reference.values.length },
    { missing: current.values.length - cur.length, total: current.values.length },
    t,
  );
  const small = ref.length < t.minRows || cur.length < t.minRows;
  const drifted_by = [
    ...(!small && psi.value >= psiThreshold ? ['psi'] : []),
    ...(ks.pValue < alpha ? ['ks'] : []),
    ...(missing.drifted ? ['missing'] : []),
  ];
  return {
    column: reference.name,
    kind: 'numeric',
    reference_size: psi.referenceSize,
    current_size: psi.currentSize,
    psi: psi.value,
    psi_binning: psi.binning,
    psi_threshold: psiThreshold,
    ks_statistic: ks.statistic,
    ks_p_value: ks.pValue,
    ks_method: ks.method,
    wasserstein: wassersteinSorted(ref, cur),
    jensen_shannon: jensenShannonNumeric(ref, cur, options.bins === undefined ? {} : { bins: options.bins }),
    missing_rate_reference: missingRate(reference.values),
    missing_rate_current: missingRate(current.values),
    missing_p_value: missing.pValue,
    small_sample: small,
    out_of_range_share: outOfRangeShare(current.values, min, max),
    drifted: drifted_by.length > 0,
    drifted_by,
  };
}

/**
 * The column with ±Infinity read as missing (NaN). Arrow and Parquet float columns keep
 * infinities, and the CSV reader reads pandas' spellings (`inf`, `-Infinity`) as them; no statistic
 * can use them, and dropping them silently hid drift: a current column that was 90% +Infinity said "no drift" with a missing rate
 * of 0, and one all +Infinity said NaN statistics, "no drift" (found by a review). As missing,
 * the missing rate shows them and a column with no finite value is drifted by `missing`.
 */
function infinityAsMissing(column: Column): Column {
  if (column.kind !== 'numeric' || !column.values.some((v) => v === Infinity || v === -Infinity)) return column;
  return { ...column, values: column.values.map((v) => (Number.isFinite(v) ? v : Number.NaN)) };
}

/**
 * A `column` with no value at all, as a column of `like`'s kind (all missing): a column that is
 * all null has no type of its own (Arrow's Null type, or Utf8 all null — what pyarrow writes for
 * all-None; a CSV's empty cells read as numbers), so it takes the other side's, and is compared as
 * missing instead of being refused as "numbers in one, text in the other".
 */
export function missingAsKindOf(like: Column, column: Column): Column {
  if (column.kind === like.kind || hasValue(column)) return column;
  const n = column.values.length;
  return like.kind === 'numeric'
    ? { name: column.name, kind: 'numeric', values: new Float64Array(n).fill(Number.NaN) }
    : { name: column.name, kind: 'categorical', values: new Array<string | null>(n).fill(null) };
}

/** False only for a numeric column without one number (all missing). */
/** The first present cell that is not a number (cut to 40 characters), for the error line. */
function textSample(values: ReadonlyArray<string | null>): string | undefined {
  for (const v of values) if (v !== null && isTextNumber(parseNumberText(v), v)) return v.slice(0, 40);
  return undefined;
}

/** A boolean column (`true` / `false`, as every reader keys bools) against one of only 0 and 1. */
function booleansAgainstBits(text: Column & { kind: 'categorical' }, numbers: Column & { kind: 'numeric' }): boolean {
  for (const v of text.values) if (v !== null && v !== 'true' && v !== 'false') return false;
  for (const x of numbers.values) if (x !== 0 && x !== 1 && !Number.isNaN(x)) return false;
  return true;
}

function hasNumber(column: Column): boolean {
  if (column.kind === 'categorical') return true;
  for (const v of column.values) if (!Number.isNaN(v)) return true;
  return false;
}

/** Whether any cell of the column is present. */
const hasValue = (column: Column): boolean =>
  column.kind === 'numeric' ? hasNumber(column) : column.values.some((v) => v !== null);

function categories(column: Column): ReadonlyArray<string | null> {
  return column.kind === 'categorical'
    ? column.values
    : Array.from(column.values, (v) => (Number.isNaN(v) ? null : String(v)));
}

/** One pass over a categorical column: occurrences of each category, and the missing cells. */
function valueCounts(values: ReadonlyArray<string | null>): { counts: Map<string, number>; missing: number } {
  const counts = new Map<string, number>();
  let missing = 0;
  for (const v of values) {
    if (typeof v === 'string') counts.set(v, (counts.get(v) ?? 0) + 1);
    else missing++;
  }
  return { counts, missing };
}

/**
 * PSI, chi-square (homogeneity) and Jensen-Shannon from one table of counts: the reference's
 * categories (sorted) plus "other" for categories only the current sample has — the table
 * `categoryTable` of @driftline/stats builds, counted once instead of once per statistic.
 */
function categoricalDrift(
  name: string,
  ref: ReadonlyArray<string | null>,
  cur: ReadonlyArray<string | null>,
  refCounts: { counts: Map<string, number>; missing: number },
  curCounts: { counts: Map<string, number>; missing: number },
  options: DriftOptions,
): ColumnDrift {
  const t = thresholds(options);
  const { psiThreshold, alpha, psiOptions } = t;
  const labels = [...refCounts.counts.keys()].sort();
  const referenceCounts = labels.map((k) => refCounts.counts.get(k)!);
  const currentCounts = labels.map((k) => curCounts.counts.get(k) ?? 0);
  const referenceSize = ref.length - refCounts.missing;
  const currentSize = cur.length - curCounts.missing;
  referenceCounts.push(0);
  currentCounts.push(currentSize - currentCounts.reduce((a, b) => a + b, 0));
  // The rare cases (an empty side, Evidently's per-value binning) take psiCategorical's own path.
  const psi =
    referenceSize === 0 || currentSize === 0 || psiOptions.binning === 'evidently'
      ? psiCategorical(ref, cur, psiOptions)
      : {
          ...psiFromCounts(referenceCounts, currentCounts, DEFAULT_PSI_EPSILON),
          binning: psiOptions.binning,
          referenceSize,
          currentSize,
        };
  const chi2 = chiSquareHomogeneity(referenceCounts, currentCounts);
  const missing = missingShares(
    { missing: refCounts.missing, total: ref.length },
    { missing: curCounts.missing, total: cur.length },
    t,
  );
  const small = referenceSize < t.minRows || currentSize < t.minRows;
  const drifted_by = [
    ...(!small && psi.value >= psiThreshold ? ['psi'] : []),
    ...(chi2.pValue < alpha ? ['chi2'] : []),
    ...(missing.drifted ? ['missing'] : []),
  ];
  return {
    column: name,
    kind: 'categorical',
    reference_size: psi.referenceSize,
    current_size: psi.currentSize,
    psi: psi.value,
    psi_binning: psi.binning,
    psi_threshold: psiThreshold,
    chi2_statistic: chi2.statistic,
    chi2_p_value: chi2.pValue,
    jensen_shannon:
      referenceSize === 0 || currentSize === 0 ? Number.NaN : jensenShannon(referenceCounts, currentCounts),
    missing_rate_reference: ref.length === 0 ? Number.NaN : refCounts.missing / ref.length,
    missing_rate_current: cur.length === 0 ? Number.NaN : curCounts.missing / cur.length,
    missing_p_value: missing.pValue,
    small_sample: small,
    drifted: drifted_by.length > 0,
    drifted_by,
  };
}

/** Drift of every column the two tables share, in the reference's column order. */
export function tableDrift(
  reference: readonly Column[],
  current: readonly Column[],
  options: DriftOptions = {},
): ColumnDrift[] {
  const byName = new Map(current.map((c) => [c.name, c]));
  const shared = reference.filter((c) => byName.has(c.name));
  if (shared.length === 0) {
    throw new DriftlineError('VALIDATION_FAILED', 'the reference and current tables share no column');
  }
  return shared.map((c) => columnDrift(c, byName.get(c.name)!, options));
}
