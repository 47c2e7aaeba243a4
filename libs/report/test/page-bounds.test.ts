import { describe, expect, it } from 'vitest';
import {
  type DriftPoint,
  MAX_CHART_MARKERS,
  MAX_CHART_VERSIONS,
  MAX_MODEL_CARDS,
  MAX_REPORT_FEATURES,
  MAX_TIMELINE_EVENTS,
  modelCardVersions,
  type PerformancePoint,
  type ReportData,
  type RetrainEvent,
  renderReport,
} from '../src/index.js';
import { downsample, lineChart, MAX_CHART_NAME, MAX_CHART_POINTS } from '../src/svg.js';

const STEP = 300_000; // 5-minute windows, the drift-monitor's default
const from = Date.UTC(2026, 0, 1);

/** PSI and KS rows of `features` × `versions` × `windows`, with one PSI spike (feature 0, window `spikeAt`). */
function driftRows(features: number, versions: number, windows: number, spikeAt = -1): DriftPoint[] {
  const rows: DriftPoint[] = [];
  for (let v = 0; v < versions; v++)
    for (let f = 0; f < features; f++)
      for (let w = 0; w < windows; w++) {
        const base = { feature: `feature_${f}`, version: `v${v}`, windowStart: from + w * STEP };
        const spike = f === 0 && w === spikeAt;
        const psi = spike ? 7.5 : 0.01 + ((w * 7 + f) % 10) / 100;
        rows.push({ ...base, method: 'psi', statistic: psi, pValue: null, threshold: 0.2, drifted: spike });
        rows.push({
          ...base,
          method: 'ks',
          statistic: 0.05,
          pValue: spike ? 1e-9 : 0.5,
          threshold: 0.05,
          drifted: spike,
        });
      }
  return rows;
}

const page = (data: Partial<ReportData> & { to: number }): string =>
  renderReport({
    model: 'm',
    from,
    generatedAt: data.to,
    drift: [],
    distributions: [],
    performance: [],
    retrain: [],
    ...data,
  });

/** The `<figure>` of chart `id`. */
function chart(html: string, id: string): string {
  const start = html.indexOf(`data-chart="${id}"`);
  expect(start).toBeGreaterThan(-1);
  return html.slice(start, html.indexOf('</figure>', start));
}
const count = (text: string, what: string) => text.split(what).length - 1;

describe('report page size: found by a review', () => {
  it('draws at most MAX_CHART_POINTS per chart over a week of 5-minute windows, and keeps a one-window spike', () => {
    // 20 features × 2,016 windows drew 40,320 circles per drift chart: a 17.7 MB page.
    const windows = 2016;
    const html = page({ to: from + windows * STEP, drift: driftRows(10, 1, windows, 1234) });
    for (const id of ['drift-psi', 'drift-ks', 'drift-ks-statistic']) {
      const figure = chart(html, id);
      expect(count(figure, '<circle class="point"')).toBeLessThanOrEqual(MAX_CHART_POINTS);
      expect(count(figure, '<circle class="point"')).toBeGreaterThan(10 * 300); // still a line per feature
      expect(figure).toContain('the lowest and the highest value per');
    }
    // The spike is one window of 2,016, in a bucket of several: still drawn, with its own value.
    expect(chart(html, 'drift-psi')).toContain('\u2068feature_0\u2069 2026-01-05T06:50:00.000Z: 7.5</title>');
    expect(chart(html, 'drift-ks')).toContain('\u2068feature_0\u2069 2026-01-05T06:50:00.000Z: 1.0e-9</title>');
    expect(html.length).toBeLessThan(3_000_000);
  });

  it(`draws at most ${MAX_CHART_VERSIONS} versions per chart: the production version and the latest, the rest named in a note`, () => {
    // 100 versions × 288 windows: 47 MB of performance charts.
    const versions = 12;
    const windows = 96;
    const performance: PerformancePoint[] = [];
    for (let v = 0; v < versions; v++)
      for (let w = 0; w < windows; w++) {
        // Version v is measured up to window 84 + v: the later the version, the later its last window.
        if (w > 84 + v) continue;
        performance.push({
          version: `v${v}`,
          windowStart: from + w * STEP,
          task: 'classification',
          predictions: 10,
          labeled: 5,
          labelCoverage: 0.5,
          metrics: { roc_auc: 0.8, accuracy: 0.7, f1: 0.6 },
        });
      }
    const html = page({
      to: from + windows * STEP,
      performance,
      drift: driftRows(2, versions, 4),
      productionVersion: 'v3',
    });
    const perf = chart(html, 'performance');
    const charted = new Set([...perf.matchAll(/data-series="[a-z0-9_]+ (v\d+)"/g)].map((m) => m[1]));
    expect([...charted].sort()).toEqual(['v10', 'v11', 'v3', 'v9']);
    expect(count(chart(html, 'label-coverage'), '<path class="series"')).toBe(MAX_CHART_VERSIONS);
    expect(count(chart(html, 'drift-psi'), '<path class="series"')).toBe(2 * MAX_CHART_VERSIONS);
    expect(html).toContain(
      '12 versions: performance, estimates and business outcome show 4 (v3, v11, v10, v9: the production version first, then the latest measured); 8 left out: v8, v7, v6, v5, v4, v2, v1, v0',
    );
    expect(html).toMatch(/12 versions: drift over time and the latest window show 4 \(v3, /);
  });

  it(`stays under 12 MB at the caps: ${MAX_REPORT_FEATURES} features × ${MAX_CHART_VERSIONS}+ versions`, () => {
    // 500 features × 2 versions × 2,016 windows outgrew V8's longest string (RangeError). A chart's
    // size no longer grows with the windows once they outnumber its points, so 8 windows stand in.
    const html = page({ to: from + 8 * STEP, drift: driftRows(MAX_REPORT_FEATURES, MAX_CHART_VERSIONS + 1, 8) });
    for (const id of ['drift-psi', 'drift-ks', 'drift-ks-statistic'])
      expect(count(chart(html, id), '<circle class="point"')).toBeLessThanOrEqual(MAX_CHART_POINTS);
    expect(html.length).toBeLessThan(12_000_000);
  });
});

describe('downsample', () => {
  it('keeps the lowest and the highest point of every bucket, in x order', () => {
    const points = Array.from({ length: 100 }, (_, x) => ({ x, y: x === 37 ? -5 : x === 62 ? 9 : x % 3 }));
    const kept = downsample(
      points,
      (p) => p.x,
      (p) => p.y,
      [0, 100],
      4,
    );
    expect(kept.length).toBeLessThanOrEqual(2 * 4 + 2);
    expect(kept.map((p) => p.x)).toEqual([...kept.map((p) => p.x)].sort((a, b) => a - b));
    expect(kept).toContainEqual({ x: 37, y: -5 });
    expect(kept).toContainEqual({ x: 62, y: 9 });
    expect(
      downsample(
        points.slice(0, 8),
        (p) => p.x,
        (p) => p.y,
        [0, 100],
        4,
      ),
    ).toEqual(points.slice(0, 8));
  });

  it('always keeps the first and the last point: the newest window was dropped when neither extreme of its bucket', () => {
    // Found by a review: 5,000 points in 300 buckets, the newest (0.5) between its bucket's 0.1 and 0.9.
    const points = Array.from({ length: 5000 }, (_, x) => ({ x, y: x === 4999 ? 0.5 : x % 3 === 0 ? 0.1 : 0.9 }));
    const kept = downsample(
      [...points].reverse(),
      (p) => p.x,
      (p) => p.y,
      [0, 4999],
      300,
    );
    expect(kept.length).toBeLessThanOrEqual(2 * 300 + 2);
    expect(kept[0]).toBe(points[0]);
    expect(kept.at(-1)).toBe(points[4999]);
    expect(kept.map((p) => p.x)).toEqual([...kept.map((p) => p.x)].sort((a, b) => a - b));
  });
});

describe('lineChart: reduced series', () => {
  const T = Date.UTC(2026, 9, 1);
  const BUCKET = 1_860_000; // ~31-minute buckets of the reader: 325 points per series
  const series = (n: number) =>
    Array.from({ length: n }, (_, f) => ({
      name: `f${f}`,
      points: Array.from({ length: 325 }, (_, i) => ({ x: T + i * BUCKET, y: i === 324 ? 0.15 : i % 2 ? 0.05 : 0.3 })),
    }));

  it("draws every series' newest point and the newest ring, within MAX_CHART_POINTS", () => {
    const list = series(100);
    const newest = new Date(T + 324 * BUCKET).toISOString();
    const svg = lineChart({
      id: 'c',
      title: 't',
      series: list,
      xDomain: [T, T + 324 * BUCKET],
      highlights: list[0]!.points.map((p) => ({ x: p.x, y: p.y, kind: 'current', label: `ring ${p.x}` })),
    });
    for (const s of list) expect(svg).toContain(`<title>\u2068${s.name}\u2069 ${newest}: 0.15</title>`);
    expect(svg).toContain(`<title>ring ${T + 324 * BUCKET}</title>`);
    expect(count(svg, '<circle class="point"') + count(svg, '<circle class="highlight"')).toBeLessThanOrEqual(
      MAX_CHART_POINTS,
    );
    expect(svg).toContain('the lowest and the highest value per');
  });

  it('says the series were aggregated before it, even when it draws every point it got', () => {
    const svg = lineChart({
      id: 'c',
      title: 't',
      series: series(1),
      xDomain: [T, T + 324 * BUCKET],
      aggregatedBucketMs: BUCKET,
    });
    expect(count(svg, '<circle class="point"')).toBe(325);
    expect(svg).toContain(
      'more windows than the chart draws: per 31 min the windows with the lowest and the highest statistic shown',
    );
    expect(lineChart({ id: 'c', title: 't', series: series(1), xDomain: [T, T + 324 * BUCKET] })).not.toContain(
      'more windows than the chart draws',
    );
  });

  it("puts the note on every drift chart when the reader's driftTotals has a bucket width", () => {
    const drift = driftRows(1, 1, 4);
    const totals = { features: 1, windows: 4, latest: [] };
    const aggregated = page({ to: from + 4 * STEP, drift, driftTotals: { ...totals, bucketMs: 2 * STEP } });
    for (const id of ['drift-psi', 'drift-ks', 'drift-ks-statistic'])
      expect(chart(aggregated, id)).toContain('per 10 min the windows with the lowest and the highest statistic');
    expect(page({ to: from + 4 * STEP, drift, driftTotals: totals })).not.toContain('the highest statistic');
  });
});

describe('the version timeline, bounded (found by a review)', () => {
  // The reviewer's shape: 10,000 versions, each registered and moved through five stages (60,000
  // events) — a table row each and a marker on every time chart: a 33 MB page.
  const versions = 10_000;
  const stages = ['SHADOW', 'CANARY', 'PRODUCTION', 'RETIRED', 'ROLLED_BACK'];
  const to = from + 7 * 86_400_000;
  const name = (v: number) => `v${String(v).padStart(6, '0')}`;
  const retrain: RetrainEvent[] = [];
  for (let v = 0; v < versions; v++) {
    const t = from + Math.floor((v / versions) * (to - from));
    retrain.push({ time: t, source: 'model', kind: 'PROMOTED', version: name(v), detail: 'roc_auc 0.91 > 0.90' });
    for (const [k, kind] of stages.entries())
      retrain.push({ time: t + (k + 1) * 1000, source: 'stage', kind, version: name(v), detail: 'policy:promotion' });
  }
  const performance: PerformancePoint[] = [0, 1].map((w) => ({
    version: name(42),
    windowStart: from + w * 3_600_000,
    task: 'binary_classification',
    predictions: 100,
    labeled: 100,
    labelCoverage: 1,
    metrics: { accuracy: 0.9 },
  }));

  it(`lists the latest ${MAX_TIMELINE_EVENTS} events and marks at most ${MAX_CHART_MARKERS} per chart, saying so`, () => {
    const html = page({ to, retrain, performance, productionVersion: name(7) });
    expect(html.length).toBeLessThan(2_000_000);
    expect(count(html.slice(html.indexOf('<table class="retrain">')), '<tr>')).toBe(MAX_TIMELINE_EVENTS + 1);
    expect(html).toContain(`the latest ${MAX_TIMELINE_EVENTS} of 60000 timeline events; 59000 earlier ones left out`);
    const performanceChart = chart(html, 'performance');
    expect(count(performanceChart, 'class="marker"')).toBe(MAX_CHART_MARKERS);
    // The charted versions' events first (v000042's and the production version's, early in the
    // week), then the latest others.
    expect(performanceChart).toContain('PRODUCTION \u2068v000007\u2069');
    expect(performanceChart).toContain('SHADOW \u2068v000042\u2069');
    expect(performanceChart).toContain('ROLLED_BACK \u2068v009999\u2069');
    expect(performanceChart).not.toContain('\u2068v000100\u2069');
    expect(html).toContain(`60000 timeline events: the time charts mark ${MAX_CHART_MARKERS}`);
  });

  it("marks the production version's PRODUCTION and a rollback whatever the decisions, and spreads the decisions", () => {
    // Decisions name the production version too: 150 of them, ranked with its stages, pushed its
    // PRODUCTION marker and v-bad's rollback off every chart.
    const end = from + 30 * 86_400_000;
    const H = 3_600_000;
    const timeline: RetrainEvent[] = [
      { time: from + 2 * H, source: 'stage', kind: 'PRODUCTION', version: 'v-prod', detail: '', previous: 'v-old' },
      { time: from + 5 * H, source: 'stage', kind: 'CANARY', version: 'v-bad', detail: '', previous: null },
      { time: from + 9 * H, source: 'stage', kind: 'ROLLED_BACK', version: 'v-bad', detail: '', previous: 'v-prod' },
      { time: from + 9 * H + 1, source: 'model', kind: 'REJECTED', version: 'v-other', detail: '' },
    ];
    const decisions = 150;
    for (let i = 0; i < decisions; i++)
      timeline.push({
        time: from + 10 * H + i * 4 * H,
        source: 'decision',
        kind: 'retrain',
        version: 'v-prod',
        detail: '',
      });
    const drift = [0, 1].map((w) => ({
      feature: 'a',
      method: 'psi',
      version: 'v-prod',
      windowStart: from + w * H,
      statistic: 0.1,
      pValue: null,
      threshold: 0.2,
      drifted: false,
    }));
    const psi = chart(page({ to: end, drift, retrain: timeline, productionVersion: 'v-prod' }), 'drift-psi');
    const labels = [...psi.matchAll(/<line class="marker"[^>]*><title>([^<]*)<\/title>/g)].map((m) => m[1]!);
    expect(labels).toHaveLength(MAX_CHART_MARKERS);
    expect(labels.filter((l) => l.startsWith('PRODUCTION \u2068v-prod\u2069'))).toHaveLength(1);
    expect(labels.filter((l) => l.startsWith('ROLLED_BACK \u2068v-bad\u2069'))).toHaveLength(1);
    // The decisions over the whole range, the first weeks' too and the latest, not the latest 98.
    const marked = labels.filter((l) => l.startsWith('retrain '));
    expect(marked).toHaveLength(MAX_CHART_MARKERS - 2);
    const at = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('.000Z', 'Z');
    const times = timeline.filter((e) => e.source === 'decision').map((e) => e.time);
    const markedAt = (k: number) => marked.some((l) => l.includes(` ${at(times[k]!)}`));
    expect(markedAt(decisions - 1)).toBe(true);
    expect(times.slice(0, 10).some((_, k) => markedAt(k))).toBe(true);
  });

  it('counts every retrain decision when the reader read the latest events only', () => {
    const html = page({ to, retrain: [], timelineTotals: { events: 7, decisions: 7 } });
    expect(html).toContain('<span>retrain decisions</span><b>7</b>');
  });

  it(`writes the model cards of at most ${MAX_MODEL_CARDS} versions: production and charted first, then the latest events`, () => {
    const chosen = modelCardVersions({
      model: 'm',
      from,
      to,
      generatedAt: to,
      drift: [],
      distributions: [],
      performance,
      retrain,
      productionVersion: name(7),
    });
    expect(chosen.versions).toHaveLength(MAX_MODEL_CARDS);
    expect(chosen.versions.slice(0, 4)).toEqual([name(7), name(42), name(9999), name(9998)]);
    // The versions the page names: production, the charted one, those of the listed events.
    expect(chosen.named).toBe(2 + Math.ceil(MAX_TIMELINE_EVENTS / 6));
  });
});

describe('long names (found by a review)', () => {
  it('repeats a cut name in tooltips and legends, and shows the whole name once, in the table', () => {
    // Each point's tooltip repeated the name: 500 features named with 10,000 characters made a
    // 322 MB page, 20,000 characters "Invalid string length".
    const to = from + 24 * 3_600_000;
    const names = Array.from({ length: 20 }, (_, i) => `f${i}_${'x'.repeat(20_000)}`);
    const drift: DriftPoint[] = names.flatMap((feature) =>
      Array.from({ length: 24 }, (_, w) => ({
        feature,
        method: 'psi',
        version: 'v1',
        windowStart: from + w * 3_600_000,
        statistic: 0.1,
        pValue: null,
        threshold: 0.2,
        drifted: false,
      })),
    );
    const html = page({ to, drift });
    expect(html.length).toBeLessThan(2_000_000);
    for (const name of names) expect(html.split(name).length - 1).toBe(1);
    expect(html).toContain(`<bdi>${names[3]}</bdi>`);
    // Its start, `…` and a tag of the whole name (#, 7 characters): MAX_CHART_NAME in all.
    expect(chart(html, 'drift-psi')).toMatch(
      new RegExp(`\u2068${names[3]!.slice(0, MAX_CHART_NAME - 9)}…#[0-9a-z]{7}\u2069 `),
    );
  });

  it('isolates each part of a composite series name: a bidi override in a feature cannot reverse the version after it', () => {
    const to = from + 3 * 3_600_000;
    const feature = 'amount\u202E';
    const drift = (['v1', 'v2'] as const).flatMap((version) =>
      driftRows(1, 1, 3).map((r) => ({ ...r, feature, version })),
    );
    const quality = [0, 1].map((w) => ({
      feature,
      expectation: 'null_rate',
      version: 'v1',
      windowStart: from + w * 3_600_000,
      observed: 0.25,
      bound: 0.1,
      passed: false,
    }));
    const html = page({ to, drift, quality });
    expect(chart(html, 'drift-psi')).toContain('data-series="\u2068amount\u202E\u2069 (\u2068v2\u2069)"');
    expect(chart(html, 'quality-share')).toContain('data-series="\u2068amount\u202E\u2069 · \u2068null_rate\u2069"');
  });

  it('tells apart two cut names that share their first characters, the same way on every page', () => {
    // Both cut to the same 99 characters and `…`: one legend entry for two series.
    const to = from + 3 * 3_600_000;
    const names = [`${'p'.repeat(99)}AB`, `${'p'.repeat(99)}AC`];
    const drift = names.flatMap((feature) => driftRows(1, 1, 3).map((r) => ({ ...r, feature })));
    const series = (html: string) => [...chart(html, 'drift-psi').matchAll(/data-series="([^"]+)"/g)].map((m) => m[1]!);
    const first = series(page({ to, drift }));
    expect(first).toHaveLength(2);
    expect(new Set(first).size).toBe(2);
    for (const s of first) expect(s.length).toBeLessThanOrEqual(MAX_CHART_NAME);
    expect(series(page({ to, drift: [...drift].reverse() }))).toEqual(first);
  });
});
