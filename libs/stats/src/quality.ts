import type { MaybeNumber } from './numeric.js';

/** Share of values that are missing: null, undefined or NaN (strings: null/undefined). NaN if empty. */
export function missingRate(values: ArrayLike<MaybeNumber | string>): number {
  if (values.length === 0) return Number.NaN;
  let missing = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) missing++;
  }
  return missing / values.length;
}

/**
 * Share of the present (non-missing) current values outside [referenceMin, referenceMax];
 * infinities count as out of range. NaN when nothing is present.
 */
export function outOfRangeShare(values: ArrayLike<MaybeNumber>, referenceMin: number, referenceMax: number): number {
  let present = 0;
  let outside = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || Number.isNaN(v)) continue;
    present++;
    if (v < referenceMin || v > referenceMax) outside++;
  }
  return present === 0 ? Number.NaN : outside / present;
}
