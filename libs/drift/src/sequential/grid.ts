import { ConfigError } from '@driftline/core';
import { coarseCounts, GridIndex, type NumericReferenceProfile } from '@driftline/stats';

/** Most bins a detector grid may have: window slots are stored as bytes. */
export const SEQUENTIAL_MAX_BINS = 256;

/**
 * The sequential detector's view of a numeric reference: B right-closed bins on reference
 * quantiles k/B (taken from the profile's fine grid, deduplicated, so ties collapse into one bin)
 * and the reference's exact counts in them. The window is kept as counts on the same bins, so a
 * statistic costs O(B) whatever the reference size, and simulation can bootstrap the reference
 * from its counts alone (the profile keeps no raw values).
 */
export interface SequentialGrid {
  /** Interior edges, strictly increasing: bin b is (edges[b−1], edges[b]] (open-ended at both ends). */
  readonly edges: Float64Array;
  /** Reference counts per bin (length edges.length + 1). */
  readonly refCounts: Int32Array;
  /** Reference size (finite values). */
  readonly n: number;
  /** O(1) bin look-up on the edges (the summaries' bucket table). */
  readonly index: GridIndex;
}

export function sequentialGrid(profile: NumericReferenceProfile, bins: number): SequentialGrid {
  if (!Number.isInteger(bins) || bins < 2 || bins > SEQUENTIAL_MAX_BINS)
    throw new ConfigError('bins', `must be an integer in [2, ${SEQUENTIAL_MAX_BINS}], got ${bins}`);
  const n = profile.n;
  const cuts = profile.cuts;
  const slots = profile.slotCounts;
  const idx: number[] = [];
  let cum = 0;
  let i = 0;
  for (let j = 1; j < bins; j++) {
    const target = (j * n) / bins;
    // Smallest cut whose cumulative count (through its point slot) reaches the target quantile.
    while (i < cuts.length) {
      const through = cum + (slots[2 * i] ?? 0) + (slots[2 * i + 1] ?? 0);
      if (through >= target) break;
      cum = through;
      i++;
    }
    if (i >= cuts.length) break;
    if (idx.length === 0 || idx[idx.length - 1]! < i) idx.push(i);
  }
  const counts = coarseCounts(slots, idx);
  const edges = Float64Array.from(idx, (k) => cuts[k]!);
  return { edges, refCounts: Int32Array.from(counts), n, index: new GridIndex(edges) };
}
