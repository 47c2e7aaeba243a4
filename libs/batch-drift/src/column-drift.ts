import { DriftlineError } from '@driftline/core';
import {
  chiSquareCategorical,
  jensenShannonCategorical,
  jensenShannonNumeric,
  ks2sampSorted,
  missingRate,
  outOfRangeShare,
  type PsiBinning,
  psiCategorical,
  psiNumeric,
  sortedFinite,
  wassersteinSorted,
} from '@driftline/stats';
import type { Column } from './columns.js';

export interface DriftOptions {
  readonly bins?: number;
  readonly binning?: PsiBinning;
  /** PSI at or above this is drift (default 0.2, the usual "significant shift"). */
  readonly psiThreshold?: number;
  /** KS / chi-square p-value below this is drift (default 0.05). */
  readonly alpha?: number;
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
  /** Numeric: share of current values outside [reference min, reference max]. */
  readonly out_of_range_share?: number;
  readonly drifted: boolean;
  /** The tests that called drift. */
  readonly drifted_by: string[];
}

/** Drift of one column of the current table against the same column of the reference. */
export function columnDrift(reference: Column, current: Column, options: DriftOptions = {}): ColumnDrift {
  const psiThreshold = options.psiThreshold ?? 0.2;
  const alpha = options.alpha ?? 0.05;
  const psiOptions = {
    ...(options.bins === undefined ? {} : { bins: options.bins }),
    binning: options.binning ?? 'quantile',
  };
  if (reference.kind === 'numeric' && current.kind === 'numeric') {
    // Sort each column once: every statistic below walks the sorted samples (and re-sorting a
    // sorted array is nearly free), which is most of the time on large tables.
    const ref = sortedFinite(reference.values);
    const cur = sortedFinite(current.values);
    const psi = psiNumeric(ref, cur, psiOptions);
    const ks = ks2sampSorted(ref, cur);
    const min = ref.length > 0 ? ref[0]! : Number.NaN;
    const max = ref.length > 0 ? ref[ref.length - 1]! : Number.NaN;
    const drifted_by = [...(psi.value >= psiThreshold ? ['psi'] : []), ...(ks.pValue < alpha ? ['ks'] : [])];
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
      out_of_range_share: outOfRangeShare(current.values, min, max),
      drifted: drifted_by.length > 0,
      drifted_by,
    };
  }
  // A column numeric on one side only is compared as categories (its text form).
  const ref =
    reference.kind === 'categorical'
      ? reference.values
      : Array.from(reference.values, (v) => (Number.isNaN(v) ? null : String(v)));
  const cur =
    current.kind === 'categorical'
      ? current.values
      : Array.from(current.values, (v) => (Number.isNaN(v) ? null : String(v)));
  const psi = psiCategorical(ref, cur, psiOptions);
  const chi2 = chiSquareCategorical(ref, cur);
  const drifted_by = [...(psi.value >= psiThreshold ? ['psi'] : []), ...(chi2.pValue < alpha ? ['chi2'] : [])];
  return {
    column: reference.name,
    kind: 'categorical',
    reference_size: psi.referenceSize,
    current_size: psi.currentSize,
    psi: psi.value,
    psi_binning: psi.binning,
    psi_threshold: psiThreshold,
    chi2_statistic: chi2.statistic,
    chi2_p_value: chi2.pValue,
    jensen_shannon: jensenShannonCategorical(ref, cur),
    missing_rate_reference: missingRate(ref.map((v) => v ?? null)),
    missing_rate_current: missingRate(cur.map((v) => v ?? null)),
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
