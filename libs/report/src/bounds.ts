import { isPredictionFeature } from '@driftline/drift';
import { productionVersion } from './production.js';
import type { DriftPoint, ReportData } from './types.js';

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

/**
 * Timeline events (fired retrain decisions, trained versions, stage transitions) the page lists
 * and charts: the latest. Each was a table row and a marker on every time chart: 10,000 versions
 * (60,000 events) made a 33 MB page, 180,000 transitions "Invalid string length".
 */
export const MAX_TIMELINE_EVENTS = 1_000;

/** Timeline events marked (a dotted line) on each time chart. */
export const MAX_CHART_MARKERS = 100;

/** Model cards written beside a report (~7 queries each; one per version took 369 s for 10,000). */
export const MAX_MODEL_CARDS = 50;

/** The latest `max` of `events` (by time; ties in input order), in time order. */
export function latestEvents<T extends { readonly time: number }>(events: readonly T[], max: number): T[] {
  const sorted = [...events].sort((a, b) => a.time - b.time);
  return sorted.slice(Math.max(0, sorted.length - max));
}

/**
 * The events each time chart marks, at most MAX_CHART_MARKERS, in time order: every event when
 * they fit; else slots reserved in this order — the stage transitions and trained versions of
 * `versions` (those the charts draw, the production version), then every other ROLLED_BACK, each
 * the latest first; then retrain decisions, thinned evenly over their times (the latest kept);
 * then the latest others. Decisions name the production version too: ranked with its stages, 150
 * of them pushed its PRODUCTION marker and a rollback off every chart. `total` the events they
 * were chosen from.
 */
export function markedEvents<
  T extends { readonly time: number; readonly source: string; readonly kind: string; readonly version: string },
>(events: readonly T[], versions: ReadonlySet<string>): { marked: T[]; total: number } {
  const decision = (e: T) => e.source === 'decision';
  const charted = (e: T) => !decision(e) && versions.has(e.version);
  const rollback = (e: T) => !decision(e) && !charted(e) && e.kind === 'ROLLED_BACK';
  const other = (e: T) => !decision(e) && !charted(e) && !rollback(e);
  const marked: T[] = [];
  const free = () => MAX_CHART_MARKERS - marked.length;
  marked.push(...latestEvents(events.filter(charted), free()));
  marked.push(...latestEvents(events.filter(rollback), free()));
  marked.push(...thinned(events.filter(decision), free()));
  marked.push(...latestEvents(events.filter(other), free()));
  return { marked: marked.sort((a, b) => a.time - b.time), total: events.length };
}

/** `max` of `events` spread evenly over them in time order, the latest among them. */
function thinned<T extends { readonly time: number }>(events: readonly T[], max: number): T[] {
  const sorted = [...events].sort((a, b) => a.time - b.time);
  if (sorted.length <= max) return sorted;
  return Array.from({ length: max }, (_, i) => sorted[Math.round(((i + 1) * sorted.length) / max) - 1]!);
}

/**
 * Versions whose model card a report writes and links, at most MAX_MODEL_CARDS: the production
 * version and the charted ones (drift, performance) first, then those of the listed timeline
 * events, the latest first. `named` counts every version the page names (charts and timeline).
 */
export function modelCardVersions(d: ReportData): { versions: string[]; named: number } {
  const production = productionVersion(d);
  const ordered = new Set<string>();
  if (production !== undefined) ordered.add(production);
  for (const v of chartedVersions([...d.drift, ...(d.driftTotals?.latest ?? [])], production).shown) ordered.add(v);
  for (const v of chartedVersions(d.performance, production).shown) ordered.add(v);
  for (const e of latestEvents(d.retrain, MAX_TIMELINE_EVENTS).reverse()) ordered.add(e.version);
  return { versions: [...ordered].slice(0, MAX_MODEL_CARDS), named: ordered.size };
}
