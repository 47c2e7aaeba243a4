import { groupBy } from './group.js';
import type { SkewFeature, SkewPoint } from './types.js';

type Count = 'sampled' | 'compared' | 'mismatched' | 'missingInStore' | 'missingInPrediction' | 'newerRow' | 'expired';
const sum = (list: readonly SkewPoint[], k: Count) => list.reduce((s, p) => s + p[k], 0);

/**
 * Each feature's skew over `points` (windows, versions and partitions summed): the largest share
 * mismatched first (none compared last), then by name. Mean |served − stored| is pooled as the
 * dashboard pools it, Σ|diff| / Σ numeric comparisons: each window's mean weighted by all its
 * comparisons (categorical ones too) read 1.818 for a pooled 5.5. The warehouse reader computes
 * the same in SQL.
 */
export function skewFeatures(points: readonly SkewPoint[]): SkewFeature[] {
  return [...groupBy(points, (p) => p.feature).entries()]
    .map(([feature, list]) => {
      const compared = sum(list, 'compared');
      const mismatched = sum(list, 'mismatched');
      const diffs = list.filter((p) => p.absDiffSum !== null && p.numericCompared > 0);
      const numeric = diffs.reduce((s, p) => s + p.numericCompared, 0);
      return {
        feature,
        sampled: sum(list, 'sampled'),
        compared,
        share: compared === 0 ? null : mismatched / compared,
        meanAbsDiff: numeric === 0 ? null : diffs.reduce((s, p) => s + p.absDiffSum!, 0) / numeric,
        missingInStore: sum(list, 'missingInStore'),
        missingInPrediction: sum(list, 'missingInPrediction'),
        newerRow: sum(list, 'newerRow'),
        expired: sum(list, 'expired'),
      };
    })
    .sort((a, b) => (b.share ?? -1) - (a.share ?? -1) || (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0));
}
