import { MAX_REPORT_FEATURES } from './bounds.js';
import { CSP, STYLE } from './html.js';
import { barChart, bdi, escapeHtml, isolate } from './svg.js';

/** One column's verdict in a two-table comparison (the fields of `driftline drift --json` it shows). */
export interface TableColumnDrift {
  readonly column: string;
  readonly kind: 'numeric' | 'categorical';
  readonly psi: number;
  readonly ks_p_value?: number;
  readonly chi2_p_value?: number;
  readonly wasserstein?: number;
  readonly jensen_shannon: number;
  readonly missing_rate_reference: number;
  readonly missing_rate_current: number;
  readonly drifted: boolean;
  readonly drifted_by: readonly string[];
  /** A side had fewer present values than --min-rows: PSI did not decide (`driftline drift`). */
  readonly small_sample?: boolean;
}

/** The mark of a column whose sample was too small for PSI to decide (the terminal table's `*`). */
const SMALL_SAMPLE_MARK =
  ' <span class="tag" title="fewer present values on a side than --min-rows: PSI did not decide">small sample</span>';

/** A column's shares per bin on both sides (bins of the reference). */
export interface TableColumnDistribution {
  readonly column: string;
  readonly kind: 'numeric' | 'categorical';
  readonly bins: ReadonlyArray<{ readonly label: string; readonly reference: number; readonly current: number }>;
  readonly referenceCount: number;
  readonly currentCount: number;
}

export interface TableReportData {
  readonly reference: { readonly name: string; readonly rows: number };
  readonly current: { readonly name: string; readonly rows: number };
  readonly generatedAt: number;
  /** How the verdicts were made, e.g. "PSI ≥ 0.2 or p < 0.05". */
  readonly rule: string;
  readonly columns: readonly TableColumnDrift[];
  readonly distributions: readonly TableColumnDistribution[];
}

const num = (n: number | undefined, digits = 4) =>
  n === undefined
    ? ''
    : Number.isNaN(n)
      ? 'nan'
      : Math.abs(n) > 0 && Math.abs(n) < 1e-4
        ? n.toExponential(2)
        : n.toFixed(digits);

/** Columns the page's table lists at most (the most drifted first); `driftline drift --json` has every one. */
export const MAX_TABLE_COLUMNS = 10_000;

/** Columns, the most drifted first: drifted ones, then the largest PSI (NaN last), then by name. */
export function columnsByDrift<T extends TableColumnDrift>(columns: readonly T[]): T[] {
  const psi = (c: TableColumnDrift) => (Number.isNaN(c.psi) ? Number.NEGATIVE_INFINITY : c.psi);
  return [...columns].sort(
    (a, b) =>
      Number(b.drifted) - Number(a.drifted) ||
      (psi(b) > psi(a) ? 1 : psi(b) < psi(a) ? -1 : 0) ||
      (a.column < b.column ? -1 : a.column > b.column ? 1 : 0),
  );
}

/**
 * The columns whose distributions the page charts: the first MAX_REPORT_FEATURES of
 * {@link columnsByDrift}, so a caller computes no distribution the page leaves out.
 */
export function chartedColumns(columns: readonly TableColumnDrift[]): string[] {
  return columnsByDrift(columns)
    .slice(0, MAX_REPORT_FEATURES)
    .map((c) => c.column);
}

const leftOut = (shown: number, total: number, what: string) =>
  shown < total
    ? `<p class="no-data">the ${shown} of ${total} columns ${what}; ${total - shown} left out (<code>driftline drift --json</code> lists every column)</p>`
    : '';

/**
 * The drift of two tables as one self-contained HTML page in the look of `renderReport` (same CSS,
 * same inline SVG charts, no script, a CSP that forbids any fetch): summary cards, one row per
 * column with its statistics and verdict (drifted first), and reference vs current distributions.
 * Wide tables are capped: MAX_TABLE_COLUMNS rows and MAX_REPORT_FEATURES charts, the most drifted.
 */
export function renderTableReport(d: TableReportData): string {
  const drifted = d.columns.filter((c) => c.drifted).length;
  const cards = [
    `<div class="card"><span>reference rows</span><b>${d.reference.rows}</b></div>`,
    `<div class="card"><span>current rows</span><b>${d.current.rows}</b></div>`,
    `<div class="card${drifted > 0 ? ' alert' : ''}"><span>columns drifted</span><b>${drifted} / ${d.columns.length}</b></div>`,
  ];
  const order = columnsByDrift(d.columns);
  const listed = order.slice(0, MAX_TABLE_COLUMNS);
  const rows = listed
    .map(
      (c) =>
        `<tr><td>${bdi(c.column)}</td><td>${c.kind}</td><td class="num">${num(c.psi)}</td><td class="num">${num(c.ks_p_value)}</td><td class="num">${num(c.chi2_p_value)}</td><td class="num">${num(c.wasserstein)}</td><td class="num">${num(c.jensen_shannon)}</td><td class="num">${num(c.missing_rate_reference, 3)} → ${num(c.missing_rate_current, 3)}</td><td>${c.drifted ? `<span class="tag drift">drift (${escapeHtml(c.drifted_by.join('+'))})</span>` : 'ok'}${c.small_sample === true ? SMALL_SAMPLE_MARK : ''}</td></tr>`,
    )
    .join('');
  const rank = new Map(order.map((c, i) => [c.column, i]));
  const verdict = new Set(order.filter((c) => c.drifted).map((c) => c.column));
  const charted = new Set(chartedColumns(d.columns));
  const distributions = d.distributions
    .filter((f) => charted.has(f.column))
    .sort((a, b) => (rank.get(a.column) ?? Infinity) - (rank.get(b.column) ?? Infinity));
  const charts = distributions.map((f) =>
    barChart({
      id: `dist-${f.column}`,
      // Isolated, as the report's names are: a bidi control in a column name reordered the counts.
      title: `${isolate(f.column)} (${f.kind}; reference n=${f.referenceCount}, current n=${f.currentCount})${verdict.has(f.column) ? ' · drift' : ''}`,
      seriesNames: ['reference', 'current'],
      colors: ['#90a4ae', '#ef6c00'],
      groups: f.bins.map((b) => ({ label: b.label, values: [b.reference, b.current] })),
      yLabel: 'share',
    }),
  );
  const title = `${isolate(d.reference.name)} → ${isolate(d.current.name)}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<title>driftline drift · ${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>Drift · ${bdi(d.reference.name)} → ${bdi(d.current.name)}</h1><p>reference ${bdi(d.reference.name)} · current ${bdi(d.current.name)} · ${escapeHtml(d.rule)} · generated ${escapeHtml(new Date(d.generatedAt).toISOString())}</p></header>
<main>
<div class="cards">${cards.join('')}</div>
<section id="columns"><h2>Columns</h2><table class="columns"><thead><tr><th>column</th><th>kind</th><th>PSI</th><th>KS p</th><th>chi² p</th><th>Wasserstein</th><th>Jensen-Shannon</th><th>missing (ref → cur)</th><th></th></tr></thead><tbody>${rows}</tbody></table>${leftOut(listed.length, order.length, 'that drifted most are listed')}</section>
<section id="distributions"><h2>Distributions: reference vs current</h2><div class="grid-dist">${charts.join('')}</div>${leftOut(charted.size, d.columns.length, 'that drifted most are charted')}</section>
</main>
</body>
</html>
`;
}
