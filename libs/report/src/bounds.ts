import { isPredictionFeature } from '@driftline/drift';
import type { DriftPoint } from './types.js';

/**
 * Most features (columns) a report draws or lists one by one: its charts, its latest-window and
 * distribution sections, its skew and data-quality rows. A chart and a line per feature made
 * `driftline report` fail with "RangeError: Invalid string length" at about 7,000 features and
 * `drift --html` at about 100,000 columns: the page outgrew V8's longest string (2^29 characters).
 */
export const MAX_REPORT_FEATURES = 500;

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Input features, the most drifted first: drifted rows in the range (any method, any version),
 * then the largest PSI, then the name. `others` (e.g. features with a reference profile but no
 * drift row) follow by name. Prediction pseudo-features are outputs, not inputs: left out.
 */
export function featuresByDrift(rows: readonly DriftPoint[], others: Iterable<string> = []): string[] {
  const score = new Map<string, { drifted: number; psi: number }>();
  for (const r of rows) {
    if (isPredictionFeature(r.feature)) continue;
    let s = score.get(r.feature);
    if (s === undefined) {
      s = { drifted: 0, psi: Number.NEGATIVE_INFINITY };
      score.set(r.feature, s);
    }
    if (r.drifted) s.drifted++;
    if (r.method === 'psi' && r.statistic !== null && Number.isFinite(r.statistic))
      s.psi = Math.max(s.psi, r.statistic);
  }
  const ranked = [...score.entries()]
    .sort(([a, x], [b, y]) => y.drifted - x.drifted || (y.psi > x.psi ? 1 : y.psi < x.psi ? -1 : 0) || byName(a, b))
    .map(([feature]) => feature);
  const rest = [...new Set(others)].filter((f) => !score.has(f) && !isPredictionFeature(f)).sort(byName);
  return [...ranked, ...rest];
}
