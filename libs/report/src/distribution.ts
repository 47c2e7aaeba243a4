import { edgeLabels } from '@driftline/core';
import type { DistributionBin, FeatureDistribution } from './types.js';

/**
 * The label of a categorical distribution's last bin: current values the reference never saw (and
 * the reference's own share beyond its listed categories). Not "other": a category named `other`
 * and this bin both read "other". The dashboards use the same label (docker/grafana sql.ts).
 */
export const UNSEEN_VALUES = '(unseen values)';

/** The parts of a stored numeric reference profile (`driftline.profile/1`) a distribution needs. */
export interface NumericProfileView {
  readonly kind: 'numeric';
  readonly n: number;
  /** Interior edges of the coarse bins; bins are right-closed: (e[j-1], e[j]]. */
  readonly coarseEdges: readonly number[];
  readonly referenceShares: readonly number[];
}

/** The parts of a stored categorical reference profile a distribution needs. */
export interface CategoricalProfileView {
  readonly kind: 'categorical';
  readonly n: number;
  readonly categories: readonly string[];
  /** One share per category plus a final "other" share. */
  readonly shares: readonly number[];
}

export type ProfileView = NumericProfileView | CategoricalProfileView;

/** Labels of right-closed bins over interior edges: `≤ e0`, `(e0, e1]`, …, `> eN`. */
export function numericBinLabels(edges: readonly number[]): string[] {
  if (edges.length === 0) return ['all'];
  const edgeText = edgeLabels(edges);
  const labels = [`≤ ${edgeText[0]}`];
  for (let j = 1; j < edgeText.length; j++) labels.push(`(${edgeText[j - 1]}, ${edgeText[j]}]`);
  labels.push(`> ${edgeText[edgeText.length - 1]}`);
  return labels;
}

/** Bin index of a value: the number of edges strictly below it (right-closed bins). */
export function numericBinOf(edges: readonly number[], x: number): number {
  let k = 0;
  while (k < edges.length && edges[k]! < x) k++;
  return k;
}

/**
 * Reference vs current shares of one feature. `current` holds counts: per bin index for numeric
 * profiles, per category for categorical ones (unknown categories fall into "other").
 */
export function featureDistribution(
  feature: string,
  version: string,
  profile: ProfileView,
  current: ReadonlyMap<number, number> | ReadonlyMap<string, number>,
): FeatureDistribution {
  let total = 0;
  for (const c of current.values()) total += c;
  const share = (c: number) => (total === 0 ? 0 : c / total);
  let bins: DistributionBin[];
  if (profile.kind === 'numeric') {
    const counts = current as ReadonlyMap<number, number>;
    bins = numericBinLabels(profile.coarseEdges).map((label, j) => ({
      label,
      reference: profile.referenceShares[j] ?? 0,
      current: share(counts.get(j) ?? 0),
    }));
  } else {
    const counts = current as ReadonlyMap<string, number>;
    const known = new Set(profile.categories);
    let other = 0;
    for (const [category, c] of counts) if (!known.has(category)) other += c;
    bins = profile.categories.map((label, j) => ({
      label,
      reference: profile.shares[j] ?? 0,
      current: share(counts.get(label) ?? 0),
    }));
    // Not "other": a category may be named that, and the two read as one (found by a review).
    bins.push({
      label: UNSEEN_VALUES,
      reference: profile.shares[profile.categories.length] ?? 0,
      current: share(other),
    });
  }
  return { feature, kind: profile.kind, version, bins, currentCount: total, referenceCount: profile.n };
}
