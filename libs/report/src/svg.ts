import { cutText, hashText32, maxOf, minOf } from '@driftline/core';
import { groupBy } from './group.js';
/**
 * Minimal chart rendering to inline SVG strings: no DOM, no fonts to fetch, no script. Every chart is
 * a `<figure class="chart" data-chart="…">` whose series are `path.series`, whose points are
 * `circle.point` and whose bars are `rect.bar`, so a browser test can count what was drawn.
 */

export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
] as const;

export function color(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

export function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/**
 * A name from events (model, version, feature, segment, reason) in HTML text: escaped and isolated,
 * so a bidi override in it (U+202E) cannot reorder the text around it.
 */
export function bdi(text: string): string {
  return `<bdi>${escapeHtml(text)}</bdi>`;
}

/**
 * A name from events inside a longer text that is not HTML markup (an SVG <title>, an attribute, a
 * caption built as one string): between U+2068 and U+2069 (first-strong isolate … pop), the plain
 * text <bdi>, so a bidi override in it cannot reorder the numbers and names after it.
 */
export function isolate(text: string): string {
  return `\u2068${text}\u2069`;
}

/**
 * Most characters of a name a chart repeats — in every point's tooltip, its legend and its
 * data-series — and of a label (`…` marks a cut): 500 features named with 10,000 characters made a
 * 322 MB page, 20,000 characters "Invalid string length". The tables show the whole name, once.
 */
export const MAX_CHART_NAME = 100;
/** Most characters of a whole series name or label a chart draws (names in it cut already). */
const MAX_CHART_TEXT = 3 * MAX_CHART_NAME;

/**
 * `name` cut to `max` characters (never half a surrogate pair): its start, `…` and `#` with 7
 * characters of a hash of the whole name — two names sharing their first 99 characters were one
 * legend entry and one `data-series`; the tag tells them apart and stays the same from page to page.
 */
export function cutName(name: string, max = MAX_CHART_NAME): string {
  if (name.length <= max) return name;
  const tag = `#${hashText32(name).toString(36).padStart(7, '0')}`;
  return `${cutText(name, Math.max(1, max - 1 - tag.length))}…${tag}`;
}

export interface Point {
  readonly x: number;
  readonly y: number;
}

export interface Series {
  readonly name: string;
  readonly points: readonly Point[];
  readonly color?: string;
  readonly dashed?: boolean;
}

export interface HorizontalLine {
  readonly value: number;
  readonly label: string;
  readonly color?: string;
}

export interface VerticalMarker {
  readonly x: number;
  readonly label: string;
  readonly color?: string;
}

/** A point to ring (e.g. the value currently believed): `circle.highlight`, with its `data-kind`. */
export interface Highlight {
  readonly x: number;
  readonly y: number;
  readonly kind: string;
  readonly label: string;
  readonly color?: string;
}

export interface LineChartOptions {
  readonly id: string;
  readonly title: string;
  readonly series: readonly Series[];
  readonly yLabel?: string;
  /** Log10 y axis (p-values); values ≤ 0 are clamped to the smallest positive value shown. */
  readonly yLog?: boolean;
  readonly yMin?: number;
  readonly yMax?: number;
  readonly thresholds?: readonly HorizontalLine[];
  readonly markers?: readonly VerticalMarker[];
  /** Rings drawn over the series, and their legend entry (`highlightLegend`). */
  readonly highlights?: readonly Highlight[];
  readonly highlightLegend?: string;
  /**
   * Caps the y axis at {@link OUTLIER_FACTOR} × the larger of the values' 90th percentile and the
   * thresholds: a value above it (a stored PSI of 1e308 laid every other line flat on the axis) is
   * drawn at the top, its title the value, and the chart says how many were. Linear axes only.
   */
  readonly clipOutliers?: boolean;
  /**
   * Set when the series were reduced before the chart (the warehouse reader): per bucket of this
   * width (ms), the windows with the lowest and the highest statistic. The chart says so, as when
   * it reduces them itself.
   */
  readonly aggregatedBucketMs?: number;
  /** x domain (epoch ms); defaults to the data's extent. */
  readonly xDomain?: readonly [number, number];
  readonly width?: number;
  readonly height?: number;
}

const MARGIN = { top: 12, right: 16, bottom: 34, left: 56 };

/**
 * How far above the bulk of a chart's values (their 90th percentile, or a threshold if larger) its
 * axis reaches with `clipOutliers`: a PSI threshold of 0.2 and quiet features give 2. A larger value
 * is drawn at the top of the axis, its title the value, and counted under the chart — a drifted
 * window stays at the top, visible, instead of pressing every other line onto the axis.
 */
export const OUTLIER_FACTOR = 10;

/** The y value above which `clipOutliers` draws points at the top, when some are. */
function outlierCap(values: readonly number[], lines: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const bulk = Math.max(Math.abs(sorted[Math.floor(0.9 * (sorted.length - 1))]!), ...lines.map(Math.abs));
  const cap = OUTLIER_FACTOR * bulk;
  return cap > 0 && sorted.at(-1)! > cap ? cap : undefined;
}

/**
 * Most points a line chart draws over all its series (and as many rings). Each point is a circle
 * with a title, ~150 bytes: 5-minute windows over 7 days (2,016) per feature and version made a
 * 20-feature page 17.7 MB and a 500-feature one outgrow V8's longest string.
 */
export const MAX_CHART_POINTS = 8_000;

/**
 * Items in x order, at most `2 × buckets + 2`: per bucket of equal width over [x0, x1] the lowest
 * and the highest value (in x order), so a spike in either direction stays visible, and always the
 * first and the last item — the newest window was dropped whenever it was neither extreme of its
 * bucket. Items are kept as they are when there are no more than `2 × buckets`.
 */
export function downsample<T>(
  items: readonly T[],
  x: (t: T) => number,
  y: (t: T) => number,
  domain: readonly [number, number],
  buckets: number,
): T[] {
  const sorted = [...items].sort((a, b) => x(a) - x(b));
  if (sorted.length <= 2 * buckets) return sorted;
  const [x0, x1] = domain;
  const lows: (T | undefined)[] = new Array(buckets);
  const highs: (T | undefined)[] = new Array(buckets);
  for (const t of sorted) {
    const k = Math.min(buckets - 1, Math.max(0, Math.floor(((x(t) - x0) / (x1 - x0)) * buckets)));
    const low = lows[k];
    const high = highs[k];
    if (low === undefined || y(t) < y(low)) lows[k] = t;
    if (high === undefined || y(t) > y(high)) highs[k] = t;
  }
  const kept = new Set<T>([sorted[0]!, sorted.at(-1)!]);
  for (let k = 0; k < buckets; k++) {
    const low = lows[k];
    const high = highs[k];
    if (low !== undefined) kept.add(low);
    if (high !== undefined) kept.add(high);
  }
  // `sorted` is in x order, so filtering it keeps that order (and equal-x items in input order).
  return sorted.filter((t) => kept.has(t));
}

const fmt = (n: number): string => {
  if (n === 0) return '0';
  const a = Math.abs(n);
  if (a >= 1e4 || a < 1e-3) return n.toExponential(1);
  return Number(n.toPrecision(3)).toString();
};

const px = (n: number): string => (Math.round(n * 10) / 10).toString();

/** "Nice" linear ticks covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function timeLabel(ms: number, span: number): string {
  const iso = new Date(ms).toISOString();
  if (span <= 2 * 86_400_000) return iso.slice(11, 16);
  if (span <= 60 * 86_400_000) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  return iso.slice(0, 10);
}

function empty(id: string, title: string, message: string): string {
  return `<figure class="chart empty" data-chart="${escapeHtml(id)}"><figcaption>${escapeHtml(title)}</figcaption><p class="no-data">${escapeHtml(message)}</p></figure>`;
}

function legend(items: readonly { name: string; color: string; dashed?: boolean }[], extra = ''): string {
  return `<ul class="legend">${items
    .map(
      (i) =>
        `<li><span class="swatch${i.dashed ? ' dashed' : ''}" style="border-color:${i.color};background:${i.dashed ? 'transparent' : i.color}"></span>${escapeHtml(isolate(cutName(i.name, MAX_CHART_TEXT)))}</li>`,
    )
    .join('')}${extra}</ul>`;
}

/** A time-series line chart (x: epoch ms). */
export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 720;
  const height = o.height ?? 260;
  const series = o.series.filter((s) => s.points.some((p) => Number.isFinite(p.y)));
  if (series.length === 0) return empty(o.id, o.title, 'no data in the selected range');

  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  let [x0, x1] = o.xDomain ?? [minOf(xs), maxOf(xs)];
  if (x1 <= x0) {
    x0 -= 60_000;
    x1 += 60_000;
  }
  const finiteYs = series.flatMap((s) => s.points.map((p) => p.y)).filter(Number.isFinite);
  const lineValues = (o.thresholds ?? []).map((t) => t.value);
  const cap = o.clipOutliers && !o.yLog && o.yMax === undefined ? outlierCap(finiteYs, lineValues) : undefined;
  const clipped = cap === undefined ? [] : finiteYs.filter((y) => y > cap);
  let ys = [...(cap === undefined ? finiteYs : finiteYs.map((y) => Math.min(y, cap))), ...lineValues];
  if (o.yLog) ys = ys.filter((y) => y > 0);
  const floor = o.yLog ? Math.max(ys.length > 0 ? minOf(ys) : 1e-6, 1e-12) : 0;
  let y0 = o.yMin ?? (o.yLog ? floor : minOf(ys, 0));
  let y1 = o.yMax ?? maxOf(ys, o.yLog ? 1 : 0);
  if (y1 <= y0) y1 = y0 + (o.yLog ? 1 : 1);
  if (!o.yLog && o.yMax === undefined) y1 += (y1 - y0) * 0.05;
  if (o.yLog) {
    y0 = 10 ** Math.floor(Math.log10(y0));
    y1 = 10 ** Math.ceil(Math.log10(y1));
  }

  const iw = width - MARGIN.left - MARGIN.right;
  const ih = height - MARGIN.top - MARGIN.bottom;
  const sx = (x: number) => MARGIN.left + ((x - x0) / (x1 - x0)) * iw;
  const ty = (y: number) => (o.yLog ? Math.log10(Math.max(y, y0)) : y);
  const sy = (y: number) =>
    MARGIN.top + ih - ((ty(cap === undefined ? y : Math.min(y, cap)) - ty(y0)) / (ty(y1) - ty(y0))) * ih;

  const parts: string[] = [];
  const yTicks = o.yLog
    ? Array.from({ length: Math.round(Math.log10(y1 / y0)) + 1 }, (_, k) => y0 * 10 ** k)
    : niceTicks(y0, y1);
  for (const t of yTicks) {
    parts.push(
      `<line class="grid" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${px(sy(t))}" y2="${px(sy(t))}"/>`,
      `<text class="tick" x="${MARGIN.left - 6}" y="${px(sy(t) + 4)}" text-anchor="end">${fmt(t)}</text>`,
    );
  }
  const span = x1 - x0;
  for (let k = 0; k <= 4; k++) {
    const t = x0 + (span * k) / 4;
    parts.push(
      `<text class="tick" x="${px(sx(t))}" y="${height - MARGIN.bottom + 16}" text-anchor="middle">${escapeHtml(timeLabel(t, span))}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + ih}"/>`,
    `<line class="axis" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${MARGIN.top + ih}" y2="${MARGIN.top + ih}"/>`,
  );
  if (o.yLabel !== undefined) {
    parts.push(
      `<text class="axis-label" transform="translate(12 ${px(MARGIN.top + ih / 2)}) rotate(-90)" text-anchor="middle">${escapeHtml(o.yLabel)}</text>`,
    );
  }
  for (const m of o.markers ?? []) {
    if (m.x < x0 || m.x > x1) continue;
    parts.push(
      `<line class="marker" x1="${px(sx(m.x))}" x2="${px(sx(m.x))}" y1="${MARGIN.top}" y2="${MARGIN.top + ih}" stroke="${m.color ?? '#555'}"><title>${escapeHtml(cutName(m.label, MAX_CHART_TEXT))}</title></line>`,
    );
  }
  for (const t of o.thresholds ?? []) {
    if (o.yLog && t.value <= 0) continue;
    parts.push(
      `<line class="threshold" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${px(sy(t.value))}" y2="${px(sy(t.value))}" stroke="${t.color ?? '#d62728'}"><title>${escapeHtml(t.label)}</title></line>`,
    );
  }
  // Bounded whatever the windows: about one point per pixel column per series, and
  // MAX_CHART_POINTS over the chart (rings counted as one more series per colour and kind; each
  // keeps 2 per bucket plus its first and last point).
  const highlightGroups = groupCount(o.highlights ?? [], (h) => `${h.color ?? ''}|${h.kind}`);
  const perSeries = Math.floor(MAX_CHART_POINTS / (series.length + highlightGroups));
  const buckets = Math.max(1, Math.min(Math.floor(iw / 2), Math.floor((perSeries - 2) / 2)));
  let downsampled = false;
  series.forEach((s, i) => {
    const c = s.color ?? color(i);
    const name = cutName(s.name, MAX_CHART_TEXT);
    const finitePoints = s.points.filter((p) => Number.isFinite(p.y));
    const pts = downsample(
      finitePoints,
      (p) => p.x,
      (p) => p.y,
      [x0, x1],
      buckets,
    );
    if (pts.length < finitePoints.length) downsampled = true;
    const d = pts.map((p, k) => `${k === 0 ? 'M' : 'L'}${px(sx(p.x))} ${px(sy(p.y))}`).join(' ');
    parts.push(
      `<path class="series" data-series="${escapeHtml(name)}" d="${d}" stroke="${c}"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    for (const p of pts) {
      parts.push(
        `<circle class="point" cx="${px(sx(p.x))}" cy="${px(sy(p.y))}" r="2.5" fill="${c}"><title>${escapeHtml(`${isolate(name)} ${new Date(p.x).toISOString()}: ${fmt(p.y)}`)}</title></circle>`,
      );
    }
  });
  const rings = [...groupBy(o.highlights ?? [], (h) => `${h.color ?? ''}|${h.kind}`).values()].flatMap((list) => {
    const shown = list.filter((h) => Number.isFinite(h.y) && h.x >= x0 && h.x <= x1);
    const kept = downsample(
      shown,
      (h) => h.x,
      (h) => h.y,
      [x0, x1],
      buckets,
    );
    if (kept.length < shown.length) downsampled = true;
    return kept;
  });
  for (const h of rings) {
    parts.push(
      `<circle class="highlight" data-kind="${escapeHtml(h.kind)}" cx="${px(sx(h.x))}" cy="${px(sy(h.y))}" r="5.5" fill="none" stroke="${h.color ?? '#1d2330'}" stroke-width="1.5"><title>${escapeHtml(cutName(h.label, MAX_CHART_TEXT))}</title></circle>`,
    );
  }

  const items = [
    ...series.map((s, i) => ({ name: s.name, color: s.color ?? color(i), dashed: s.dashed ?? false })),
    ...(o.thresholds ?? []).map((t) => ({ name: t.label, color: t.color ?? '#d62728', dashed: true })),
  ];
  const ring =
    o.highlightLegend === undefined || (o.highlights ?? []).length === 0
      ? ''
      : `<li><span class="ring"></span>${escapeHtml(o.highlightLegend)}</li>`;
  const reduced = [
    ...(o.aggregatedBucketMs === undefined
      ? []
      : [`per ${duration(o.aggregatedBucketMs)} the windows with the lowest and the highest statistic`]),
    ...(downsampled ? [`the lowest and the highest value per ${duration((x1 - x0) / buckets)}`] : []),
  ];
  const bucketNote =
    reduced.length === 0
      ? ''
      : `<p class="no-data">more windows than the chart draws: ${escapeHtml(reduced.join(', of those '))} shown</p>`;
  const clipNote =
    clipped.length === 0
      ? ''
      : `<p class="no-data clipped">${clipped.length} ${clipped.length === 1 ? 'value' : 'values'} above ${escapeHtml(fmt(cap!))} drawn at the top of the axis (largest ${escapeHtml(fmt(maxOf(clipped)))})</p>`;
  return `<figure class="chart" data-chart="${escapeHtml(o.id)}"${downsampled ? ` data-buckets="${buckets}"` : ''}><figcaption>${escapeHtml(o.title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(cutName(o.title, MAX_CHART_TEXT))}">${parts.join('')}</svg>${legend(items, ring)}${bucketNote}${clipNote}</figure>`;
}

const groupCount = <T>(items: readonly T[], key: (t: T) => string) => new Set(items.map(key)).size;

/** A bucket width for the chart's note: 45 min, 2.5 h, 3 d. */
function duration(ms: number): string {
  const minutes = ms / 60_000;
  if (minutes < 120) return `${Number(minutes.toPrecision(2))} min`;
  if (minutes < 48 * 60) return `${Number((minutes / 60).toPrecision(2))} h`;
  return `${Number((minutes / 1440).toPrecision(2))} d`;
}

export interface BarGroup {
  readonly label: string;
  readonly values: readonly number[];
}

export interface BarChartOptions {
  readonly id: string;
  readonly title: string;
  /** Names of the bars inside each group (e.g. reference, current). */
  readonly seriesNames: readonly string[];
  readonly colors?: readonly string[];
  readonly groups: readonly BarGroup[];
  readonly yLabel?: string;
  readonly width?: number;
  readonly height?: number;
}

/** Most characters of a bar chart's axis label (drawn rotated under its bars). */
const AXIS_LABEL = 12;
/** Most characters an axis label is widened to while its cut still reads as another label's. */
const AXIS_LABEL_WIDEST = 24;

/** `chars` (code points) as its start, `…` and its end, `max` characters in all; as it is when it fits. */
function cutMiddle(chars: readonly string[], max: number): string {
  if (chars.length <= max) return chars.join('');
  const head = Math.ceil((max - 1) / 2);
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - (max - 1 - head)).join('')}`;
}

/**
 * The axis labels of a bar chart's groups, each at most AXIS_LABEL characters: a longer label is its
 * start, `…` and its end (`custom…ent_a`), so labels that differ at the end stay apart — cut to their
 * first 11 characters, `customer_segment_a` and `customer_segment_b` read the same, and so did
 * the bins of close edges (`(1734000000123, 1734000000456]`, `(1734000000456, 1734000000789]`:
 * edgeLabels tells the edges apart, the axis cut did not). Labels whose cuts still
 * coincide (they differ in the middle) are widened together, up to AXIS_LABEL_WIDEST, and then cut
 * as {@link cutName} cuts (start, `…`, a hash of the whole). Counted in code points: never half a
 * surrogate pair. The whole label is the label's tooltip (its <title>).
 */
function axisLabels(labels: readonly string[]): string[] {
  const chars = labels.map((label) => Array.from(label));
  const budget = labels.map(() => AXIS_LABEL);
  const out = chars.map((c, i) => cutMiddle(c, budget[i]!));
  const clashing = () => {
    const seen = new Map<string, number>();
    for (const text of out) seen.set(text, (seen.get(text) ?? 0) + 1);
    return out.flatMap((text, i) => ((seen.get(text) ?? 0) > 1 ? [i] : []));
  };
  for (;;) {
    const widen = clashing().filter((i) => chars[i]!.length > budget[i]! && budget[i]! < AXIS_LABEL_WIDEST);
    if (widen.length === 0) break;
    for (const i of widen) {
      budget[i] = Math.min(AXIS_LABEL_WIDEST, budget[i]! + 2);
      out[i] = cutMiddle(chars[i]!, budget[i]!);
    }
  }
  for (const i of clashing()) if (chars[i]!.length > budget[i]!) out[i] = cutName(labels[i]!, AXIS_LABEL_WIDEST);
  return out;
}

/** Grouped bar chart over categorical x labels. */
export function barChart(o: BarChartOptions): string {
  const width = o.width ?? 360;
  const height = o.height ?? 220;
  if (o.groups.length === 0) return empty(o.id, o.title, 'no bins');
  const values = o.groups.flatMap((g) => g.values).filter(Number.isFinite);
  const yMax = maxOf(values, 1e-9) * 1.08;
  const iw = width - MARGIN.left - MARGIN.right;
  const ih = height - MARGIN.top - MARGIN.bottom - 14;
  const sy = (y: number) => MARGIN.top + ih - (y / yMax) * ih;
  const band = iw / o.groups.length;
  const inner = (band * 0.8) / Math.max(o.seriesNames.length, 1);
  const parts: string[] = [];
  for (const t of niceTicks(0, yMax, 4)) {
    parts.push(
      `<line class="grid" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${px(sy(t))}" y2="${px(sy(t))}"/>`,
      `<text class="tick" x="${MARGIN.left - 6}" y="${px(sy(t) + 4)}" text-anchor="end">${fmt(t)}</text>`,
    );
  }
  const labelEvery = Math.ceil(o.groups.length / 12);
  const axis = axisLabels(o.groups.map((g) => g.label));
  o.groups.forEach((g, gi) => {
    const gx = MARGIN.left + gi * band + band * 0.1;
    g.values.forEach((v, si) => {
      const c = o.colors?.[si] ?? color(si);
      const h = Number.isFinite(v) ? Math.max(0, (v / yMax) * ih) : 0;
      parts.push(
        `<rect class="bar" data-series="${escapeHtml(o.seriesNames[si] ?? String(si))}" x="${px(gx + si * inner)}" y="${px(MARGIN.top + ih - h)}" width="${px(Math.max(inner - 1, 1))}" height="${px(h)}" fill="${c}"><title>${escapeHtml(`${isolate(cutName(g.label))} · ${o.seriesNames[si] ?? si}: ${fmt(v)}`)}</title></rect>`,
      );
    });
    if (gi % labelEvery === 0) {
      const cx = MARGIN.left + gi * band + band / 2;
      const text = axis[gi]!;
      // A cut label keeps the whole one as its tooltip (as long as the bars' tooltips show it).
      const whole = text === g.label ? '' : `<title>${escapeHtml(isolate(cutName(g.label)))}</title>`;
      parts.push(
        `<text class="tick" x="${px(cx)}" y="${MARGIN.top + ih + 14}" text-anchor="end" transform="rotate(-30 ${px(cx)} ${MARGIN.top + ih + 14})">${whole}${escapeHtml(isolate(text))}</text>`,
      );
    }
  });
  parts.push(
    `<line class="axis" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${MARGIN.top + ih}" y2="${MARGIN.top + ih}"/>`,
  );
  if (o.yLabel !== undefined) {
    parts.push(
      `<text class="axis-label" transform="translate(12 ${px(MARGIN.top + ih / 2)}) rotate(-90)" text-anchor="middle">${escapeHtml(o.yLabel)}</text>`,
    );
  }
  const items = o.seriesNames.map((name, i) => ({ name, color: o.colors?.[i] ?? color(i) }));
  return `<figure class="chart" data-chart="${escapeHtml(o.id)}"><figcaption>${escapeHtml(o.title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(cutName(o.title, MAX_CHART_TEXT))}">${parts.join('')}</svg>${legend(items)}</figure>`;
}
