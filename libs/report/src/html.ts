import { maxOf, printable } from '@driftline/core';
import { isPredictionFeature } from '@driftline/drift';
import {
  chartedVersions,
  featuresByDrift,
  latestEvents,
  MAX_CHART_VERSIONS,
  MAX_REPORT_FEATURES,
  MAX_TIMELINE_EVENTS,
  markedEvents,
} from './bounds.js';
import {
  businessSection,
  currentValue,
  DEFAULT_ALERT_MIN_SAMPLES,
  DEFAULT_REALIZED_COVERAGE,
  estimateSection,
  type RealizedRule,
} from './estimates.js';
import { groupBy, iso } from './group.js';
import { productionVersion } from './production.js';
import { qualityChecks } from './quality.js';
import { isSampled, SAMPLED_EXPLANATION } from './sampled.js';
import { skewFeatures } from './skew.js';
import { barChart, bdi, cutName, escapeHtml, isolate, lineChart, type Series, type VerticalMarker } from './svg.js';
import type { DriftPoint, DriftTotals, PerformancePoint, QualityCheck, ReportData, RetrainEvent } from './types.js';

const CLASSIFICATION_METRICS = ['accuracy', 'precision', 'recall', 'f1', 'roc_auc'] as const;
const REGRESSION_METRICS = ['mae', 'rmse'] as const;

/** The pages' Content-Security-Policy: no fetch of any kind, inline styles and data: images only. */
export const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

export const STYLE = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .8; }
main { padding: 8px 28px 40px; max-width: 1560px; }
section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 14px 18px; margin: 16px 0; }
section h2 { margin: 0 0 10px; font-size: 17px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 10px 16px; min-width: 150px; }
.card b { display: block; font-size: 20px; }
.card.alert b { color: #c62828; }
.grid-2 { display: grid; grid-template-columns: repeat(auto-fill, minmax(640px, 1fr)); gap: 8px 18px; }
.grid-dist { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 8px 14px; }
figure.chart { margin: 0; }
figure.chart figcaption { font-weight: 600; margin: 4px 0; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
svg .grid { stroke: #e6e9ee; stroke-width: 1; }
svg .axis { stroke: #8a93a3; stroke-width: 1; }
svg .tick, svg .axis-label { fill: #5b6475; font-size: 11px; }
svg .series { fill: none; stroke-width: 2; }
svg .threshold { stroke-width: 1.5; stroke-dasharray: 5 4; }
svg .marker { stroke-width: 1.5; stroke-dasharray: 2 3; }
.legend { list-style: none; padding: 0; margin: 4px 0 0 56px; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; }
.swatch { display: inline-block; width: 14px; height: 0; border-top: 3px solid; margin-right: 5px; vertical-align: middle; }
.swatch.dashed { border-top-style: dashed; }
.ring { display: inline-block; width: 11px; height: 11px; border: 1.5px solid #1d2330; border-radius: 50%; margin-right: 5px; vertical-align: middle; }
.no-data { color: #7a8394; font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceff3; }
th { background: #f7f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tag { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 12px; background: #eceff3; }
.tag.drift, .tag.retrain, .tag.REJECTED { background: #fde2e1; color: #9b1c1c; }
.tag.PROMOTED { background: #dcf3e1; color: #1b5e20; }
.tag.TRAINED { background: #e1ecfb; color: #0d47a1; }
.tag.realized { background: #dcf3e1; color: #1b5e20; }
.tag.estimated { background: #fff1d6; color: #8a5a00; }
.tag.sampled { background: #efe4f6; color: #5b2a86; }
td.loss { color: #c62828; }
tfoot th.num { text-align: right; font-variant-numeric: tabular-nums; }
.notes { color: #8a5a00; background: #fff6e0; border: 1px solid #f3dca4; border-radius: 6px; padding: 8px 14px; margin: 16px 0 0; }
`;

function driftSeries(rows: readonly DriftPoint[], value: (r: DriftPoint) => number | null): Series[] {
  const versions = new Set(rows.map((r) => r.version));
  // Keyed by the whole names (two features may share a cut prefix), named with cut ones.
  const key = (r: DriftPoint) => (versions.size > 1 ? `${r.feature} (${r.version})` : r.feature);
  // Each part isolated: a bidi override in a feature name reversed the version after it.
  const label = (r: DriftPoint) =>
    versions.size > 1 ? `${isolate(cutName(r.feature))} (${isolate(cutName(r.version))})` : cutName(r.feature);
  return [...groupBy(rows, key).entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, list]) => ({
      name: label(list[0]!),
      points: list.flatMap((r) => {
        const y = value(r);
        return y === null || !Number.isFinite(y) ? [] : [{ x: r.windowStart, y }];
      }),
    }));
}

function thresholdOf(rows: readonly DriftPoint[]): number | undefined {
  const values = rows.map((r) => r.threshold).filter(Number.isFinite);
  return values.length === 0 ? undefined : maxOf(values);
}

// The version timeline's colours: a version reaching production green, leaving on evidence red.
const MARKER_COLORS: Readonly<Record<string, string>> = {
  PROMOTED: '#2e7d32',
  PRODUCTION: '#2e7d32',
  SHADOW: '#6a1b9a',
  CANARY: '#ef6c00',
  ROLLED_BACK: '#c62828',
  REJECTED: '#c62828',
  RETIRED: '#78909c',
};

function retrainMarkers(events: readonly RetrainEvent[]): VerticalMarker[] {
  return events.map((e) => ({
    x: e.time,
    label: `${e.kind} ${isolate(cutName(e.version))} ${iso(e.time)}${e.detail === '' ? '' : `: ${isolate(cutName(e.detail))}`}`,
    color: MARKER_COLORS[e.kind] ?? (e.source === 'decision' ? '#c62828' : '#1565c0'),
  }));
}

function driftSection(d: ReportData, markers: readonly VerticalMarker[]): string {
  const domain: [number, number] = [d.from, d.to];
  const inputs = d.drift.filter((r) => !isPredictionFeature(r.feature));
  const psi = inputs.filter((r) => r.method === 'psi');
  const ks = inputs.filter((r) => r.method === 'ks');
  const psiThreshold = thresholdOf(psi);
  const ksAlpha = thresholdOf(ks);
  // The reader's buckets: every drift chart's points are the windows it kept.
  const bucketMs = d.driftTotals?.bucketMs;
  const aggregated = bucketMs === undefined ? {} : { aggregatedBucketMs: bucketMs };
  const charts = [
    lineChart({
      id: 'drift-psi',
      title: 'PSI per feature',
      series: driftSeries(psi, (r) => r.statistic),
      yLabel: 'PSI',
      clipOutliers: true,
      xDomain: domain,
      markers,
      ...aggregated,
      ...(psiThreshold === undefined
        ? {}
        : { thresholds: [{ value: psiThreshold, label: `PSI threshold ${psiThreshold}` }] }),
    }),
    lineChart({
      id: 'drift-ks',
      title: 'KS p-value per feature (log scale; below alpha = drift)',
      series: driftSeries(ks, (r) => r.pValue),
      yLabel: 'p-value',
      yLog: true,
      xDomain: domain,
      markers,
      ...aggregated,
      ...(ksAlpha === undefined ? {} : { thresholds: [{ value: ksAlpha, label: `alpha ${ksAlpha}` }] }),
    }),
    lineChart({
      id: 'drift-ks-statistic',
      title: 'KS statistic D per feature',
      series: driftSeries(ks, (r) => r.statistic),
      yLabel: 'D',
      yMin: 0,
      xDomain: domain,
      markers,
      ...aggregated,
    }),
    lineChart({
      id: 'drift-prediction',
      title: 'Prediction drift (PSI of the prediction)',
      series: driftSeries(
        d.drift.filter((r) => isPredictionFeature(r.feature) && r.method === 'psi'),
        (r) => r.statistic,
      ),
      yLabel: 'PSI',
      clipOutliers: true,
      xDomain: domain,
      markers,
      ...aggregated,
      ...(psiThreshold === undefined
        ? {}
        : { thresholds: [{ value: psiThreshold, label: `PSI threshold ${psiThreshold}` }] }),
    }),
  ];
  return `<section id="drift"><h2>Drift over time</h2><div class="grid-2">${charts.join('')}</div>${latestDriftTable(d.drift)}</section>`;
}

/** Methods whose rows carry a p-value: there a missing one was stored as NaN ("—"); PSI has none (empty). */
const P_VALUE_METHODS: ReadonlySet<string> = new Set(['ks', 'chi2']);
const pValueCell = (r: DriftPoint) =>
  r.pValue !== null && Number.isFinite(r.pValue)
    ? r.pValue.toExponential(2)
    : P_VALUE_METHODS.has(r.method) || r.pValue !== null
      ? '—'
      : '';

function latestDriftTable(rows: readonly DriftPoint[]): string {
  const primary = rows.filter((r) => r.method === 'psi' || r.method === 'ks' || r.method === 'chi2');
  if (primary.length === 0) return '';
  const latest = maxOf(primary.map((r) => r.windowStart));
  const last = primary
    .filter((r) => r.windowStart === latest)
    .sort((a, b) => (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : a.method < b.method ? -1 : 1));
  // The whole name on a feature's first row, cut on its others (methods, versions).
  const named = new Set<string>();
  const name = (feature: string) => {
    if (named.has(feature)) return cutName(feature);
    named.add(feature);
    return feature;
  };
  const body = last
    .map(
      (r) =>
        `<tr><td>${bdi(name(r.feature))}</td><td>${escapeHtml(r.method)}</td><td>${bdi(r.version)}</td><td class="num">${r.statistic === null ? '—' : r.statistic.toFixed(4)}</td><td class="num">${pValueCell(r)}</td><td class="num">${Number.isFinite(r.threshold) ? r.threshold : '—'}</td><td>${r.drifted ? '<span class="tag drift">drift</span>' : 'ok'}</td></tr>`,
    )
    .join('');
  return `<h3>Latest window (${escapeHtml(iso(latest))})</h3><table class="latest"><thead><tr><th>feature</th><th>method</th><th>version</th><th>statistic</th><th>p-value</th><th>threshold</th><th></th></tr></thead><tbody>${body}</tbody></table>`;
}

function distributionSection(d: ReportData): string {
  const charts = [...d.distributions]
    .sort((a, b) => (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0))
    .map((f) =>
      barChart({
        id: `dist-${cutName(f.feature)}`,
        title: `${isolate(cutName(f.feature))} (${f.kind}, ${isolate(cutName(f.version))}; current n=${f.currentCount})`,
        seriesNames: ['reference', 'current'],
        colors: ['#90a4ae', '#ef6c00'],
        groups: f.bins.map((b) => ({ label: b.label, values: [b.reference, b.current] })),
        yLabel: 'share',
      }),
    );
  const body = charts.length === 0 ? '<p class="no-data">no reference profiles for this model</p>' : charts.join('');
  return `<section id="distributions"><h2>Feature distributions: reference vs current</h2><div class="grid-dist">${body}</div></section>`;
}

function performanceSeries(rows: readonly PerformancePoint[], metric: string): Series[] {
  return [...groupBy(rows, (r) => r.version).entries()].map(([version, list]) => ({
    name: `${metric} ${version}`,
    points: list.flatMap((r) => {
      const y = r.metrics[metric];
      return y === null || y === undefined || !Number.isFinite(y) ? [] : [{ x: r.windowStart, y }];
    }),
  }));
}

function performanceSection(d: ReportData, markers: readonly VerticalMarker[]): string {
  const domain: [number, number] = [d.from, d.to];
  const present = (m: string) => d.performance.some((r) => typeof r.metrics[m] === 'number');
  const cls = CLASSIFICATION_METRICS.filter(present);
  const reg = REGRESSION_METRICS.filter(present);
  const charts: string[] = [];
  const main = cls.includes('roc_auc') ? ['accuracy', 'f1', 'roc_auc'].filter((m) => cls.includes(m as never)) : cls;
  if (main.length > 0 || reg.length === 0) {
    charts.push(
      lineChart({
        id: 'performance',
        title: 'Classification metrics per version',
        series: main.flatMap((m) => performanceSeries(d.performance, m)),
        yLabel: 'score',
        xDomain: domain,
        markers,
      }),
    );
  }
  if (reg.length > 0) {
    charts.push(
      lineChart({
        id: 'performance-regression',
        title: 'Regression error per version',
        series: reg.flatMap((m) => performanceSeries(d.performance, m)),
        yLabel: 'error',
        xDomain: domain,
        markers,
      }),
    );
  }
  charts.push(
    lineChart({
      id: 'label-coverage',
      title: 'Label coverage per version',
      series: [...groupBy(d.performance, (r) => r.version).entries()].map(([version, list]) => ({
        name: `coverage ${version}`,
        points: list.flatMap((r) => (r.labelCoverage === null ? [] : [{ x: r.windowStart, y: r.labelCoverage }])),
      })),
      yLabel: 'labeled share',
      yMin: 0,
      yMax: 1,
      xDomain: domain,
      markers,
    }),
  );
  return `<section id="performance"><h2>Model performance</h2><div class="grid-2">${charts.join('')}</div>${sampledWindowsNote(d.performance)}</section>`;
}

/** How many of the charted windows come from a sample, and of how many labels (the tables below mark each). */
function sampledWindowsNote(rows: readonly PerformancePoint[]): string {
  const sampled = rows.filter(isSampled);
  if (sampled.length === 0) return '';
  const labels = sampled.reduce((n, r) => n + (r.sampled ?? 0), 0);
  const of = sampled.reduce((n, r) => n + r.labeled, 0);
  return `<p class="no-data">${escapeHtml(`${sampled.length} of ${rows.length} windows (per version) sampled: ${labels} of their ${of} labels. ${SAMPLED_EXPLANATION}`)}</p>`;
}

function retrainSection(
  d: ReportData,
  markers: readonly VerticalMarker[],
  cards: ReadonlyMap<string, string> | undefined,
): string {
  const version = (v: string) => {
    const file = cards?.get(v);
    // A file name is not a URL: the browser decodes the href, so a card written as
    // model-card-a%20b-v1.html is linked as model-card-a%2520b-v1.html.
    return file === undefined ? bdi(v) : `<a href="${escapeHtml(encodeURIComponent(file))}">${bdi(v)}</a>`;
  };
  const events = latestEvents(d.retrain, MAX_TIMELINE_EVENTS);
  // One step series per source: each event is a point, so the timeline shows when things happened.
  const bySource = groupBy(events, (e) => (e.source === 'decision' ? 'retrain decisions' : `${e.source} ${e.kind}`));
  const levels = [
    'retrain decisions',
    'model TRAINED',
    'model PROMOTED',
    'model REJECTED',
    'stage SHADOW',
    'stage CANARY',
    'stage PRODUCTION',
    'stage ROLLED_BACK',
    'stage REJECTED',
    'stage RETIRED',
  ];
  const series = [...bySource.entries()].map(([name, list]) => {
    const idx = levels.indexOf(name);
    const y = idx === -1 ? levels.length + 1 : idx + 1;
    return { name, points: list.map((e) => ({ x: e.time, y })) };
  });
  const chart = lineChart({
    id: 'retrain-history',
    title: 'Retrain history (decisions and model versions)',
    series,
    yMin: 0,
    yMax:
      maxOf(
        series.map((s) => s.points[0]?.y ?? 0),
        levels.length,
      ) + 1,
    xDomain: [d.from, d.to],
    markers,
    height: 180,
  });
  const rows = events
    .map(
      (e) =>
        `<tr><td>${escapeHtml(iso(e.time))}</td><td>${escapeHtml(e.source)}</td><td><span class="tag ${escapeHtml(e.kind)}">${escapeHtml(e.kind)}</span></td><td>${version(e.version)}</td><td>${bdi(e.detail)}</td></tr>`,
    )
    .join('');
  const table =
    events.length === 0
      ? '<p class="no-data">no retrain decisions or model versions in the selected range</p>'
      : `<table class="retrain"><thead><tr><th>time</th><th>source</th><th>event</th><th>version</th><th>detail</th></tr></thead><tbody>${rows}</tbody></table>`;
  const total = timelineEvents(d);
  const note =
    events.length < total
      ? `<p class="no-data">the latest ${events.length} of ${total} timeline events; ${total - events.length} earlier ones left out</p>`
      : '';
  return `<section id="retrain"><h2>Retrain history</h2>${chart}${table}${note}</section>`;
}

/** Timeline events in the range: the reader's count when it read the latest only. */
const timelineEvents = (d: ReportData) => Math.max(d.retrain.length, d.timelineTotals?.events ?? 0);

/** A section's note when it shows only the first `shown` of `total` rows. */
const cappedNote = (shown: number, total: number, what: string) =>
  shown < total ? `<p class="no-data">the ${shown} of ${total} ${what}; ${total - shown} left out</p>` : '';

/**
 * Training-serving skew: share mismatched per feature over time, and the range per feature
 * (partitions and windows summed); the MAX_REPORT_FEATURES features with the largest share
 * (`skewFeatures`, or the reader's).
 */
function skewSection(d: ReportData, markers: readonly VerticalMarker[]): string {
  const points = d.skew ?? [];
  const features = d.skewTotals?.features ?? skewFeatures(points);
  if (features.length === 0) return '';
  const total = Math.max(features.length, d.skewTotals?.total ?? 0);
  const rows = features.slice(0, MAX_REPORT_FEATURES);
  const byFeature = groupBy(points, (p) => p.feature);
  const series: Series[] = rows.map(({ feature }) => ({
    name: cutName(feature),
    points: [...groupBy(byFeature.get(feature) ?? [], (p) => String(p.windowStart)).values()].flatMap((w) => {
      const compared = w.reduce((s, p) => s + p.compared, 0);
      return compared === 0 ? [] : [{ x: w[0]!.windowStart, y: w.reduce((s, p) => s + p.mismatched, 0) / compared }];
    }),
  }));
  const bucketMs = d.skewTotals?.bucketMs;
  const chart = lineChart({
    id: 'skew-share',
    title: 'Training-serving skew: share of sampled values differing from the online store',
    series,
    yLabel: 'share mismatched',
    yMin: 0,
    xDomain: [d.from, d.to],
    markers,
    ...(bucketMs === undefined ? {} : { aggregatedBucketMs: bucketMs }),
  });
  const body = rows
    .map(
      (r) =>
        `<tr><td>${bdi(r.feature)}</td><td class="num">${r.sampled}</td><td class="num">${r.compared}</td><td class="num">${r.share === null ? '' : r.share.toFixed(4)}</td><td class="num">${r.meanAbsDiff === null ? '' : r.meanAbsDiff.toPrecision(4)}</td><td class="num">${r.missingInStore}</td><td class="num">${r.missingInPrediction}</td><td class="num">${r.newerRow}</td><td class="num">${r.expired}</td></tr>`,
    )
    .join('');
  const table = `<table class="skew"><thead><tr><th>feature</th><th>sampled</th><th>compared</th><th>share mismatched</th><th>mean |served − stored|</th><th>missing in store</th><th>missing in prediction</th><th>row newer than prediction</th><th title="no row read while the prediction was older than the view's TTL">expired (past the TTL)</th></tr></thead><tbody>${body}</tbody></table>`;
  const note = cappedNote(rows.length, total, 'features with the largest share mismatched');
  return `<section id="skew"><h2>Training-serving skew</h2><div class="grid-2">${chart}</div>${table}${note}</section>`;
}

const QUALITY_SHARES = new Set(['type', 'null_rate', 'range', 'categories']);

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Data quality: the shares per feature · expectation over time, and every expectation's record in
 * the range; the MAX_REPORT_FEATURES checks that failed most (`qualityChecks`, or the reader's).
 */
function qualitySection(d: ReportData, markers: readonly VerticalMarker[]): string {
  const points = d.quality ?? [];
  const checks = d.qualityTotals?.checks ?? qualityChecks(points);
  if (checks.length === 0) return '';
  const total = Math.max(checks.length, d.qualityTotals?.total ?? 0);
  const rows = checks.slice(0, MAX_REPORT_FEATURES);
  const key = (feature: string, expectation: string) => `${feature} · ${expectation}`;
  const byCheck = groupBy(points, (p) => key(p.feature, p.expectation));
  const series: Series[] = rows
    .filter((r) => QUALITY_SHARES.has(r.expectation))
    .map((r) => ({
      // Each part isolated, as the drift series' names.
      name: key(isolate(cutName(r.feature)), isolate(r.expectation)),
      // The worst version per window (one series per check, as the dashboard).
      points: [
        ...groupBy(byCheck.get(key(r.feature, r.expectation)) ?? [], (p) => String(p.windowStart)).values(),
      ].flatMap((w) => {
        const observed = w.map((p) => p.observed).filter(finite);
        return observed.length === 0 ? [] : [{ x: w[0]!.windowStart, y: maxOf(observed) }];
      }),
    }));
  const bucketMs = d.qualityTotals?.bucketMs;
  const chart = lineChart({
    id: 'quality-share',
    title: 'Data quality: share of events breaking each expectation',
    series,
    yLabel: 'share',
    yMin: 0,
    xDomain: [d.from, d.to],
    markers,
    ...(bucketMs === undefined ? {} : { aggregatedBucketMs: bucketMs }),
  });
  const fmt = (r: QualityCheck, v: number | null) =>
    v === null || !Number.isFinite(v) ? '—' : r.expectation === 'cardinality' ? String(Math.round(v)) : v.toFixed(4);
  const body = rows
    .map(
      (r) =>
        `<tr><td>${bdi(r.feature)}</td><td>${escapeHtml(r.expectation)}</td><td class="num">${r.windows}</td><td class="num">${r.failed}</td><td class="num">${fmt(r, r.worst)}</td><td class="num">${fmt(r, r.bound)}</td><td>${r.failed > 0 ? '<span class="tag drift">failed</span>' : 'ok'}</td></tr>`,
    )
    .join('');
  const table = `<table class="quality"><thead><tr><th>feature</th><th>expectation</th><th>windows</th><th>failed</th><th>worst observed</th><th>bound</th><th></th></tr></thead><tbody>${body}</tbody></table>`;
  const note = cappedNote(rows.length, total, 'expectations that failed most');
  return `<section id="quality"><h2>Data quality</h2><div class="grid-2">${chart}</div>${table}${note}</section>`;
}

const card = (label: string, value: string, alert = false) =>
  `<div class="card${alert ? ' alert' : ''}"><span>${label}</span><b>${value}</b></div>`;

/**
 * Input features drifted by PSI in the latest window of the production version, or, when that is
 * not known (or not measured), of each version in the latest window: distinct features of one
 * version, not rows of every version over the names (4 features × 2 versions read "8 / 4").
 */
function driftedCards(d: ReportData, production: string | undefined): string[] {
  const perVersion = d.driftTotals?.latest ?? latestPsiWindows(d.drift);
  if (perVersion.length === 0) return [card('features drifted (PSI, latest window)', '–')];
  const latest = maxOf(perVersion.map((v) => v.windowStart));
  const productionLatest = perVersion.find((v) => v.version === production);
  const shown =
    productionLatest !== undefined
      ? [productionLatest]
      : perVersion.filter((v) => v.windowStart === latest).sort((a, b) => (a.version < b.version ? -1 : 1));
  return shown.map(({ version, windowStart: last, features, drifted }) => {
    const who = version === production ? `production ${bdi(version)}` : bdi(version);
    return card(
      `features drifted · ${who} (PSI, window ${escapeHtml(iso(last))})`,
      `${drifted} / ${features}`,
      drifted > 0,
    );
  });
}

/** Per version, its latest window with PSI rows of input features: features measured and drifted there. */
function latestPsiWindows(rows: readonly DriftPoint[]): DriftTotals['latest'] {
  const primary = rows.filter((r) => r.method === 'psi' && !isPredictionFeature(r.feature));
  return [...groupBy(primary, (r) => r.version).entries()].map(([version, list]) => {
    const last = maxOf(list.map((r) => r.windowStart));
    const inLast = list.filter((r) => r.windowStart === last);
    return {
      version,
      windowStart: last,
      features: new Set(inLast.map((r) => r.feature)).size,
      drifted: new Set(inLast.filter((r) => r.drifted).map((r) => r.feature)).size,
    };
  });
}

/**
 * The headline metric: the realized value of the latest window whose labels make it the current
 * value by the estimates section's rule (`currentValue`: label coverage, labels used, a finite
 * value) — the newest window usually waits for its labels; one with 3 labels read "AUC 1.000"
 * while the estimates table called it estimated 0.62. Without such a window, the latest CBPE
 * estimate, tagged "estimated"; without either, "—". Of the production version when it has one.
 */
function performanceCard(d: ReportData, production: string | undefined, rule: RealizedRule): string {
  const has = (r: PerformancePoint, m: string) => finite(r.metrics[m]) || finite(r.estimated?.[m]);
  const metric = (['roc_auc', 'accuracy', 'rmse', 'mae'] as const).find((m) => d.performance.some((r) => has(r, m)));
  if (metric === undefined) return '';
  const rows = d.performance.filter((r) => has(r, metric));
  const pool =
    production !== undefined && rows.some((r) => r.version === production)
      ? rows.filter((r) => r.version === production)
      : rows;
  const newest = (list: readonly PerformancePoint[]) =>
    list.reduce<PerformancePoint | undefined>(
      (a, b) =>
        a === undefined || b.windowStart > a.windowStart || (b.windowStart === a.windowStart && b.labeled > a.labeled)
          ? b
          : a,
      undefined,
    );
  const kind = (r: PerformancePoint) => currentValue(r, metric, rule)?.kind;
  const realized = newest(pool.filter((r) => kind(r) === 'realized'));
  if (realized !== undefined) {
    const sampled = isSampled(realized) ? `, sampled ${realized.sampled} of ${realized.labeled} labels` : '';
    return card(
      `${metric} · ${bdi(realized.version)} (latest window with enough labels, ${escapeHtml(iso(realized.windowStart))}${sampled})`,
      realized.metrics[metric]!.toFixed(3),
    );
  }
  const estimated = newest(pool.filter((r) => kind(r) === 'estimated'));
  const enough = `label coverage ≥ ${rule.realizedCoverage} and ≥ ${rule.minSamples} labels`;
  if (estimated !== undefined) {
    return card(
      `${metric} · ${bdi(estimated.version)} (CBPE estimate, window ${escapeHtml(iso(estimated.windowStart))}: no window has ${enough})`,
      `${estimated.estimated![metric]!.toFixed(3)} <span class="tag estimated">estimated</span>`,
    );
  }
  return card(`${metric} · ${bdi(newest(pool)!.version)} (no window has ${enough}, no estimate)`, '—');
}

function summary(d: ReportData, rule: RealizedRule): string {
  const windows = d.driftTotals?.windows ?? new Set(d.drift.map((r) => r.windowStart)).size;
  const production = productionVersion(d);
  const cards = [
    card('drift windows', String(windows)),
    ...driftedCards(d, production),
    performanceCard(d, production, rule),
    card(
      'retrain decisions',
      String(d.timelineTotals?.decisions ?? d.retrain.filter((e) => e.source === 'decision').length),
    ),
    card('production version', production === undefined ? '–' : bdi(production)),
  ];
  return `<div class="cards">${cards.join('')}</div>`;
}

/** Versions named in a note, at most this many (each name can be 256 characters). */
const MAX_NAMED_VERSIONS = 20;

function versionNote(
  what: string,
  versions: { shown: readonly string[]; leftOut: readonly string[] },
  production: string | undefined,
): string[] {
  const { shown, leftOut } = versions;
  if (leftOut.length === 0) return [];
  const order =
    shown[0] === production ? 'the production version first, then the latest measured' : 'the latest measured';
  const named = leftOut.slice(0, MAX_NAMED_VERSIONS).join(', ');
  const more = leftOut.length > MAX_NAMED_VERSIONS ? ` and ${leftOut.length - MAX_NAMED_VERSIONS} more` : '';
  return [
    `${shown.length + leftOut.length} versions: ${what} show ${MAX_CHART_VERSIONS} (${shown.join(', ')}: ${order}); ${leftOut.length} left out: ${named}${more}`,
  ];
}

/** Renders the whole report: one HTML document, inline CSS and SVG, no script and no external resource. */
export interface ReportOptions {
  /**
   * Version → file name of its model card, written beside the report (a name, not a URL: the link
   * percent-encodes it); versions without one are plain text.
   */
  readonly modelCards?: ReadonlyMap<string, string>;
  /**
   * Label coverage from which the realized metric replaces the CBPE estimate as the current value
   * (the label-joiner's DRIFTLINE_JOINER_REALIZED_COVERAGE); default DEFAULT_REALIZED_COVERAGE (0.5).
   * With `alertMinSamples`, the label-joiner's rule for which of the two its alerts judge.
   */
  readonly realizedCoverage?: number;
  /**
   * Valid labels a window's realized metric must have been computed from to replace the estimate
   * as the current value (the label-joiner's DRIFTLINE_JOINER_ALERT_MIN_SAMPLES); default
   * DEFAULT_ALERT_MIN_SAMPLES (100).
   */
  readonly alertMinSamples?: number;
  /** More notes for the top of the page (the CLI's: model cards left out). */
  readonly notes?: readonly string[];
}

export function renderReport(d: ReportData, options: ReportOptions = {}): string {
  const rule: RealizedRule = {
    realizedCoverage: options.realizedCoverage ?? DEFAULT_REALIZED_COVERAGE,
    minSamples: options.alertMinSamples ?? DEFAULT_ALERT_MIN_SAMPLES,
  };
  // Per-feature sections show the most drifted features only (MAX_REPORT_FEATURES), so the page
  // stays a page; the summary counts every feature.
  const ranked = featuresByDrift(
    d.drift,
    d.distributions.map((x) => x.feature),
  );
  const shown = new Set(ranked.slice(0, MAX_REPORT_FEATURES));
  // The reader may have left features out already (driftTotals counts them).
  const inputFeatures = Math.max(ranked.length, d.driftTotals?.features ?? 0);
  const keep = (feature: string) => isPredictionFeature(feature) || shown.has(feature);
  // And as many versions per chart (MAX_CHART_VERSIONS): the charts' points are bounded per
  // chart, so without it every version got fewer of them.
  const production = productionVersion(d);
  const driftVersions = chartedVersions([...d.drift, ...(d.driftTotals?.latest ?? [])], production);
  const performanceVersions = chartedVersions(d.performance, production);
  const driftShown = new Set(driftVersions.shown);
  const performanceShown = new Set(performanceVersions.shown);
  // Markers on every time chart: a line each on ~12 charts, so those of the charted versions only.
  const charted = new Set([...driftShown, ...performanceShown, ...(production === undefined ? [] : [production])]);
  const marked = markedEvents(d.retrain, charted);
  const markers = retrainMarkers(marked.marked);
  const view: ReportData = {
    ...d,
    drift: d.drift.filter((r) => keep(r.feature) && driftShown.has(r.version)),
    distributions: d.distributions.filter((x) => keep(x.feature)),
  };
  const performanceView: ReportData = {
    ...d,
    performance: d.performance.filter((r) => performanceShown.has(r.version)),
  };
  const capped = [
    ...(inputFeatures > MAX_REPORT_FEATURES
      ? [
          `${inputFeatures} input features: drift over time, the latest window and the distributions show the ${MAX_REPORT_FEATURES} that drifted most (most drifted windows, then the largest PSI); ${inputFeatures - MAX_REPORT_FEATURES} left out`,
        ]
      : []),
    ...versionNote('drift over time and the latest window', driftVersions, production),
    ...versionNote('performance, estimates and business outcome', performanceVersions, production),
    ...(marked.marked.length < timelineEvents(d)
      ? [
          `${timelineEvents(d)} timeline events: the time charts mark ${marked.marked.length} (the charted versions' stages and every rollback first, then retrain decisions spread over the range, then the latest others)`,
        ]
      : []),
  ];
  const allNotes = [...(d.notes ?? []), ...capped, ...(options.notes ?? [])];
  const notes =
    allNotes.length === 0
      ? ''
      : // A note quotes names (models, versions, features): a bidi control in one is shown as its
        // escape, as on stderr, never reordering the note's numbers.
        `<div class="notes">${allNotes.map((n) => `<p>${escapeHtml(printable(n))}</p>`).join('')}</div>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<title>driftline report · ${escapeHtml(isolate(d.model))}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>Drift report · ${bdi(d.model)}</h1><p>${escapeHtml(iso(d.from))} → ${escapeHtml(iso(d.to))} · generated ${escapeHtml(iso(d.generatedAt))}</p></header>
<main>
${notes}
${summary(d, rule)}
${driftSection(view, markers)}
${distributionSection(view)}
${performanceSection(performanceView, markers)}
${estimateSection(performanceView, markers, rule)}
${businessSection(performanceView, markers)}
${skewSection(d, markers)}
${qualitySection(d, markers)}
${retrainSection(d, markers, options.modelCards)}
</main>
</body>
</html>
`;
}
