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

/**
 * Most versions a chart draws (a series per version, per feature in the drift charts): 100
 * versions × 288 windows made the performance charts 47 MB. The rest are named in a note.
 */
export const MAX_CHART_VERSIONS = 4;

/**
 * The versions charts draw: the production version, then the ones measured last (latest window,
 * then the name), at most MAX_CHART_VERSIONS; `leftOut` the others, in the same order.
 */
export function chartedVersions(
  rows: readonly { readonly version: string; readonly windowStart: number }[],
  production: string | undefined,
): { shown: string[]; leftOut: string[] } {
  const latest = new Map<string, number>();
  for (const r of rows)
    latest.set(r.version, Math.max(latest.get(r.version) ?? Number.NEGATIVE_INFINITY, r.windowStart));
  const ranked = [...latest.entries()]
    .sort(([a, x], [b, y]) => (a === production ? -1 : b === production ? 1 : y - x || byName(a, b)))
    .map(([version]) => version);
  return { shown: ranked.slice(0, MAX_CHART_VERSIONS), leftOut: ranked.slice(MAX_CHART_VERSIONS) };
}
