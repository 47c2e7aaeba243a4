import { groupBy, iso } from './group.js';
import { isSampled, sampledNote, sampledTag } from './sampled.js';
import { bdi, color, escapeHtml, type Highlight, isolate, lineChart, type Series, type VerticalMarker } from './svg.js';
import type { PerformancePoint, ReportData } from './types.js';

/**
 * Label coverage from which a window's realized metric may replace its CBPE estimate: the
 * label-joiner's DRIFTLINE_JOINER_REALIZED_COVERAGE default (see {@link RealizedRule}).
 */
export const DEFAULT_REALIZED_COVERAGE = 0.5;

/**
 * Valid labels a window's realized metric must have been computed from before it replaces the
 * estimate: the label-joiner's DRIFTLINE_JOINER_ALERT_MIN_SAMPLES default (see {@link RealizedRule}).
 */
export const DEFAULT_ALERT_MIN_SAMPLES = 100;

/**
 * When a window's realized metric is current rather than its CBPE estimate: the label-joiner's
 * rule (libs/performance alerts.ts `realizedJudges`, which decides whether the PERFORMANCE alert or
 * the ESTIMATED_PERFORMANCE alert judges a metric), restated here because the report's windows are
 * warehouse rows, not its PerformanceRow.
 */
export interface RealizedRule {
  /** DRIFTLINE_JOINER_REALIZED_COVERAGE: label coverage at least this. */
  readonly realizedCoverage: number;
  /** DRIFTLINE_JOINER_ALERT_MIN_SAMPLES: at least this many valid labels used by the metrics. */
  readonly minSamples: number;
}

/** Rows shown by each table of these sections: the latest ones (a week of hourly windows × 2 versions is 336). */
const MAX_TABLE_ROWS = 48;

const ESTIMATED_METRICS = [
  { metric: 'roc_auc', id: 'estimated-roc-auc', label: 'ROC AUC' },
  { metric: 'accuracy', id: 'estimated-accuracy', label: 'accuracy' },
] as const;

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * The valid labels a window's metrics were computed from, as the label-joiner counts them: its
 * sampled labels when it was read as a sample, else its labeled rows less the invalid ones.
 */
const usedLabels = (p: PerformancePoint): number => (isSampled(p) ? p.sampled! : p.labeled - (p.invalidLabels ?? 0));

/**
 * Which value of a window is believed: the realized one when its labels cover
 * `rule.realizedCoverage`, at least `rule.minSamples` valid labels were used and the realized value
 * is finite (as the label-joiner's alerts judge it), the estimate otherwise. 90 labels of 150
 * predictions (coverage 0.6) showed the realized value while the alert judged the estimate.
 */
export function currentValue(
  p: PerformancePoint,
  metric: string,
  rule: RealizedRule,
): { readonly kind: 'realized' | 'estimated'; readonly value: number } | undefined {
  const realized = p.metrics[metric];
  const estimated = p.estimated?.[metric];
  if (
    p.labelCoverage !== null &&
    p.labelCoverage >= rule.realizedCoverage &&
    usedLabels(p) >= rule.minSamples &&
    finite(realized)
  )
    return { kind: 'realized', value: realized };
  if (finite(estimated)) return { kind: 'estimated', value: estimated };
  return undefined;
}

/**
 * Label coverage as shown beside a realized/estimated tag: two decimals, more when two would put
 * it on the other side of `bound` (0.499 read "0.50" next to "estimated", with the bound at 0.5).
 */
function coverageText(coverage: number, bound: number): string {
  const below = coverage < bound;
  for (let digits = 2; digits <= 12; digits++) {
    const shown = coverage.toFixed(digits);
    if (Number(shown) < bound === below) return shown;
  }
  return String(coverage);
}

const byTime = (a: PerformancePoint, b: PerformancePoint) =>
  a.windowStart - b.windowStart || (a.version < b.version ? -1 : a.version > b.version ? 1 : 0);

function estimateChart(
  d: ReportData,
  rows: readonly PerformancePoint[],
  m: (typeof ESTIMATED_METRICS)[number],
  rule: RealizedRule,
  markers: readonly VerticalMarker[],
): string {
  const series: Series[] = [];
  const highlights: Highlight[] = [];
  [...groupBy(rows, (r) => r.version).entries()].forEach(([version, list], i) => {
    const c = color(i);
    const points = (value: (r: PerformancePoint) => number | null | undefined) =>
      list.flatMap((r) => {
        const y = value(r);
        return finite(y) ? [{ x: r.windowStart, y }] : [];
      });
    series.push(
      {
        name: `estimated ${m.label} ${version}`,
        color: c,
        dashed: true,
        points: points((r) => r.estimated?.[m.metric]),
      },
      { name: `realized ${m.label} ${version}`, color: c, points: points((r) => r.metrics[m.metric]) },
    );
    for (const r of list) {
      const current = currentValue(r, m.metric, rule);
      if (current === undefined) continue;
      highlights.push({
        x: r.windowStart,
        y: current.value,
        kind: current.kind,
        color: c,
        label: `current ${m.label} ${isolate(version)} ${iso(r.windowStart)}: ${current.value.toFixed(4)} (${current.kind}, label coverage ${r.labelCoverage === null ? '–' : coverageText(r.labelCoverage, rule.realizedCoverage)})`,
      });
    }
  });
  return lineChart({
    id: m.id,
    title: `Estimated (CBPE, dashed) vs realized (solid) ${m.label} per version`,
    series,
    highlights,
    highlightLegend: `current: realized once label coverage ≥ ${rule.realizedCoverage} with ≥ ${rule.minSamples} valid labels, else the estimate`,
    yLabel: m.label,
    xDomain: [d.from, d.to],
    markers,
  });
}

const cell = (v: number | null | undefined, digits = 4) => `<td class="num">${finite(v) ? v.toFixed(digits) : ''}</td>`;

function latest(rows: readonly PerformancePoint[]): { shown: PerformancePoint[]; note: string } {
  const sorted = [...rows].sort(byTime);
  const shown = sorted.slice(-MAX_TABLE_ROWS);
  const note =
    shown.length < sorted.length
      ? `<p class="no-data">the latest ${shown.length} of ${sorted.length} windows · versions</p>`
      : '';
  return { shown, note };
}

/**
 * Performance before labels: CBPE estimate beside the realized metric per version (estimate dashed,
 * realized solid, the believed value ringed) and a table per window. Empty without estimates.
 */
export function estimateSection(d: ReportData, markers: readonly VerticalMarker[], rule: RealizedRule): string {
  const rows = d.performance.filter((r) => r.estimated !== undefined);
  const charted = ESTIMATED_METRICS.filter((m) => rows.some((r) => finite(r.estimated?.[m.metric])));
  if (charted.length === 0) return '';
  const charts = charted.map((m) => estimateChart(d, rows, m, rule, markers));
  const { shown, note } = latest(rows);
  const body = shown
    .map((r) => {
      const current = currentValue(r, 'roc_auc', rule);
      const coverage = r.labelCoverage === null ? '' : coverageText(r.labelCoverage, rule.realizedCoverage);
      return `<tr><td>${escapeHtml(iso(r.windowStart))}${sampledTag(r)}</td><td>${bdi(r.version)}</td><td class="num">${r.scored ?? ''}</td><td class="num">${coverage}</td><td class="num">${usedLabels(r)}</td>${cell(r.estimated?.roc_auc)}${cell(r.metrics.roc_auc)}${cell(r.estimated?.accuracy)}${cell(r.metrics.accuracy)}<td>${current === undefined ? '' : `<span class="tag ${current.kind}">${current.kind}</span>`}</td></tr>`;
    })
    .join('');
  const table = `<table class="estimates"><thead><tr><th>window</th><th>version</th><th>scored</th><th>label coverage</th><th>labels used</th><th>estimated ROC AUC</th><th>realized ROC AUC</th><th>estimated accuracy</th><th>realized accuracy</th><th>current</th></tr></thead><tbody>${body}</tbody></table>`;
  return `<section id="estimates"><h2>Estimated vs realized performance</h2><p>CBPE estimates performance from the scores alone (calibrated on the reference); the realized value from joined labels replaces it once label coverage reaches ${rule.realizedCoverage} and its metrics were computed from at least ${rule.minSamples} valid labels (labels used), as the label-joiner’s alerts switch from the estimate to the realized metric.</p><div class="grid-2">${charts.join('')}</div>${table}${note}${sampledNote(shown)}</section>`;
}

const BUSINESS = [
  { key: 'valueCaught', label: 'value caught' },
  { key: 'valueMissed', label: 'value missed' },
  { key: 'falseAlarmCost', label: 'false-alarm cost' },
  { key: 'net', label: 'net' },
] as const;

/** Business outcome per version and window: value caught, missed, false-alarm cost and net. Empty without any. */
export function businessSection(d: ReportData, markers: readonly VerticalMarker[]): string {
  const rows = d.performance.filter((r) => r.business !== undefined && r.business !== null);
  if (rows.length === 0) return '';
  const versions = [...groupBy(rows, (r) => r.version).entries()];
  const series: Series[] = BUSINESS.flatMap((b, bi) =>
    versions.map(([version, list], vi) => ({
      name: `${b.label} ${version}`,
      color: color(bi),
      // Versions of one measure share its colour; later versions dashed, so overlapping roles stay apart.
      dashed: vi > 0,
      points: list.map((r) => ({ x: r.windowStart, y: r.business![b.key] })),
    })),
  );
  const chart = lineChart({
    id: 'business-outcome',
    title: 'Business outcome per version (labeled rows at the threshold)',
    series,
    thresholds: [{ value: 0, label: 'break-even', color: '#8a93a3' }],
    yLabel: 'value',
    xDomain: [d.from, d.to],
    markers,
  });
  const { shown, note } = latest(rows);
  const money = (v: number) => `<td class="num">${v.toFixed(2)}</td>`;
  const body = shown
    .map((r) => {
      const b = r.business!;
      return `<tr><td>${escapeHtml(iso(r.windowStart))}${sampledTag(r)}</td><td>${bdi(r.version)}</td><td class="num">${r.labeled}</td><td class="num">${b.valuedLabels}</td>${money(b.valueCaught)}${money(b.valueMissed)}${money(b.falseAlarmCost)}<td class="num${b.net < 0 ? ' loss' : ''}">${b.net.toFixed(2)}</td></tr>`;
    })
    .join('');
  const total = (k: (typeof BUSINESS)[number]['key']) => rows.reduce((s, r) => s + r.business![k], 0);
  const foot = `<tfoot><tr><th colspan="2">range</th><th class="num">${rows.reduce((s, r) => s + r.labeled, 0)}</th><th class="num">${rows.reduce((s, r) => s + r.business!.valuedLabels, 0)}</th>${BUSINESS.map((b) => `<th class="num">${total(b.key).toFixed(2)}</th>`).join('')}</tr></tfoot>`;
  const table = `<table class="business"><thead><tr><th>window</th><th>version</th><th>labeled</th><th>with a value</th><th>value caught</th><th>value missed</th><th>false-alarm cost</th><th>net</th></tr></thead><tbody>${body}</tbody>${foot}</table>`;
  return `<section id="business"><h2>Business outcome</h2><div class="grid-2">${chart}</div>${table}${note}${sampledNote(shown)}</section>`;
}
