import { describe, expect, it } from 'vitest';
import {
  featureDistribution,
  MAX_REPORT_FEATURES,
  modelCardFileName,
  numericBinLabels,
  numericBinOf,
  type ReportData,
  renderReport,
} from '../src/index.js';

const H = 3_600_000;
const t0 = Date.UTC(2025, 0, 1);

function sample(): ReportData {
  const drift = [0, 1, 2, 3].flatMap((k) => [
    {
      feature: 'amount',
      method: 'psi',
      version: 'v1',
      windowStart: t0 + k * H,
      statistic: k > 1 ? 0.4 : 0.05,
      pValue: null,
      threshold: 0.2,
      drifted: k > 1,
    },
    {
      feature: 'amount',
      method: 'ks',
      version: 'v1',
      windowStart: t0 + k * H,
      statistic: 0.1,
      pValue: k > 1 ? 1e-6 : 0.5,
      threshold: 0.05,
      drifted: k > 1,
    },
    {
      feature: '<b>x</b>',
      method: 'psi',
      version: 'v1',
      windowStart: t0 + k * H,
      statistic: 0.01,
      pValue: null,
      threshold: 0.2,
      drifted: false,
    },
  ]);
  return {
    model: 'm<script>',
    from: t0,
    to: t0 + 4 * H,
    generatedAt: t0 + 5 * H,
    drift,
    distributions: [
      featureDistribution(
        'amount',
        'v1',
        { kind: 'numeric', n: 10, coarseEdges: [1, 2], referenceShares: [0.3, 0.4, 0.3] },
        new Map([
          [0, 1],
          [2, 3],
        ]),
      ),
    ],
    performance: [0, 1, 2].map((k) => ({
      version: 'v1',
      windowStart: t0 + k * H,
      task: 'binary',
      predictions: 10,
      labeled: 8,
      labelCoverage: 0.8,
      metrics: { accuracy: 0.9, f1: 0.8, roc_auc: 0.95, mae: null },
    })),
    retrain: [{ time: t0 + 2.5 * H, source: 'decision', kind: 'retrain', version: 'v1', detail: 'amount drifted' }],
  };
}

const count = (html: string, re: RegExp) => (html.match(re) ?? []).length;

describe('renderReport', () => {
  it('renders every chart as inline SVG with one path per series and one point per value', () => {
    const html = renderReport(sample());
    const psi = html.slice(html.indexOf('data-chart="drift-psi"'), html.indexOf('data-chart="drift-ks"'));
    expect(count(psi, /<path class="series"/g)).toBe(2);
    expect(count(psi, /<circle class="point"/g)).toBe(8);
    expect(count(psi, /<line class="threshold"/g)).toBe(1);
    expect(count(psi, /<line class="marker"/g)).toBe(1);
    expect(count(html, /<rect class="bar"/g)).toBe(6);
    expect(html).toContain('data-chart="performance"');
    expect(html).toContain('data-chart="label-coverage"');
    expect(html).toContain('data-chart="retrain-history"');
    expect(html).not.toMatch(/<script|<link|https?:\/\/(?!www\.w3\.org)/);
  });

  it('renders 200,000 drift rows (a month of 5-minute windows × 20 features × 2 methods) without a stack overflow (found by a review)', () => {
    // Math.max(...rows) overflowed the stack past ~125,000 rows.
    const rows = Array.from({ length: 200_000 }, (_, i) => ({
      feature: `f${i % 20}`,
      method: i % 40 < 20 ? 'psi' : 'ks',
      version: 'v1',
      windowStart: t0 + Math.floor(i / 40) * 300_000,
      statistic: (i % 7) / 10,
      pValue: null,
      threshold: 0.2,
      drifted: i % 7 > 1,
    }));
    const html = renderReport({ ...sample(), drift: rows, to: t0 + 5_000 * 300_000 });
    expect(html).toContain('data-chart="drift-psi"');
    expect(count(html, /<path class="series"/g)).toBeGreaterThanOrEqual(40);
  });

  it('escapes every name that comes from data', () => {
    const html = renderReport(sample());
    expect(html).toContain('m&lt;script&gt;');
    expect(html).toContain('&lt;b&gt;x&lt;/b&gt;');
    expect(html).not.toContain('<b>x</b>');
  });

  it('shows empty charts with a message instead of failing', () => {
    const html = renderReport({
      ...sample(),
      drift: [],
      performance: [],
      retrain: [],
      distributions: [],
      notes: ['table x missing'],
    });
    expect(html).toContain('class="chart empty" data-chart="drift-psi"');
    expect(html).toContain('table x missing');
  });
});

describe('renderReport: found by a review', () => {
  it('a stored 1e308 PSI does not lay the other lines flat: the axis is capped, the point drawn at its top and counted', () => {
    const psi = (k: number, statistic: number) => ({
      feature: 'amount',
      method: 'psi',
      version: 'v1',
      windowStart: t0 + k * H,
      statistic,
      pValue: null,
      threshold: 0.2,
      drifted: statistic > 0.2,
    });
    const drift = [...Array.from({ length: 23 }, (_, k) => psi(k, 0.05 + k * 0.01)), psi(23, 1e308)];
    const html = renderReport({ ...sample(), drift });
    const chart = html.slice(
      html.indexOf('data-chart="drift-psi"'),
      html.indexOf('</figure>', html.indexOf('data-chart="drift-psi"')),
    );
    const ticks = [...chart.matchAll(/<text class="tick" [^>]*text-anchor="end">([^<]+)</g)].map((m) => Number(m[1]));
    // The bulk (its 90th percentile 0.25 of 0.05 … 0.27; threshold 0.2) times 10: the axis ends near 2.5, not at 1e308.
    expect(Math.max(...ticks)).toBeLessThan(3);
    expect(chart).toContain('1 value above 2.5 drawn at the top of the axis (largest 1.0e+308)');
    expect(chart).toContain('1.0e+308</title>');
    // A chart without an outlier says nothing.
    expect(renderReport(sample())).not.toContain('drawn at the top of the axis');
  });

  it('a NaN p-value of a KS row is "—" (it was empty, as for PSI, which has none)', () => {
    const ks = { ...sample().drift.find((r) => r.method === 'ks')!, windowStart: t0 + 9 * H, pValue: null };
    const psi = { ...sample().drift.find((r) => r.method === 'psi')!, windowStart: t0 + 9 * H };
    const latest = renderReport({ ...sample(), drift: [ks, psi] }).split('<table class="latest">')[1]!;
    const cells = (method: string) =>
      /<tr>(.*?)<\/tr>/g.exec(latest.slice(latest.indexOf(`<td>${method}</td>`) - 60))![1]!;
    expect(cells('ks')).toMatch(/<td class="num">0\.1000<\/td><td class="num">—<\/td>/);
    expect(cells('psi')).toMatch(/<td class="num">0\.0500<\/td><td class="num"><\/td>/);
  });

  it('links a model card by its file name percent-encoded: the browser decodes the href back to that name', () => {
    const file = modelCardFileName('fraud detector', 'v 1/é'); // model-card-fraud%20detector-v%201%2F%C3%A9.html
    const html = renderReport(
      { ...sample(), retrain: [{ time: t0, source: 'stage', kind: 'PRODUCTION', version: 'v 1/é', detail: '' }] },
      { modelCards: new Map([['v 1/é', file]]) },
    );
    const href = /<a href="([^"]+)">/.exec(html)![1]!.replaceAll('&amp;', '&');
    // As a browser resolves it beside the report: a path, percent-decoded once.
    const url = new URL(href, 'file:///reports/report.html');
    expect(decodeURIComponent(url.pathname)).toBe(`/reports/${file}`);
  });

  it(`charts and lists at most ${MAX_REPORT_FEATURES} input features, the most drifted, and says how many were left out`, () => {
    const features = 600;
    const drift = Array.from({ length: features }, (_, i) => ({
      feature: `f${String(i).padStart(3, '0')}`,
      method: 'psi',
      version: 'v1',
      windowStart: t0,
      statistic: i / 1000,
      pValue: null,
      threshold: 0.2,
      drifted: i >= 200,
    }));
    const html = renderReport({ ...sample(), drift, distributions: [] });
    const psi = html.slice(html.indexOf('data-chart="drift-psi"'), html.indexOf('data-chart="drift-ks"'));
    expect(count(psi, /<path class="series"/g)).toBe(MAX_REPORT_FEATURES);
    // The most drifted: f100 … f599 (drifted, then the largest PSI); f000 … f099 left out.
    expect(psi).toContain('data-series="f599"');
    expect(psi).toContain('data-series="f100"');
    expect(psi).not.toContain('data-series="f099"');
    const latest = html.slice(html.indexOf('<table class="latest">'));
    expect(count(latest.slice(0, latest.indexOf('</table>')), /<tr><td>/g)).toBe(MAX_REPORT_FEATURES);
    expect(html).toContain(
      '600 input features: drift over time, the latest window and the distributions show the 500 that drifted most',
    );
    expect(html).toContain('100 left out');
    // The summary still counts every feature.
    expect(html).toContain('<b>400 / 600</b>');
  });

  it('shows a statistic stored as NaN (read as null) as "—" instead of failing', () => {
    const d = sample();
    const drift = d.drift.map((r, i) => (i === d.drift.length - 1 ? { ...r, statistic: null } : r));
    const html = renderReport({ ...d, drift });
    expect(html).toContain('<td class="num">—</td>');
  });

  it('isolates names from events, so a bidi override cannot reorder the text around them', () => {
    const html = renderReport({ ...sample(), model: 'fraud\u202Egnp.exe' });
    expect(html).toContain('<h1>Drift report · <bdi>fraud\u202Egnp.exe</bdi></h1>');
    expect(html).toContain('<td><bdi>amount</bdi></td>');
  });

  it('leaves no bidi override outside an isolate: captions, legends, tooltips, markers, notes (found by a review)', () => {
    // A feature `amount\u202E` rendered its caption "amount(0521=n tnerruc ;1v ,ciremun)"; 33 of 36
    // overrides in a hostile page were outside <bdi>.
    const R = '\u202E';
    const d = sample();
    const versions = ['v1', 'v2', 'v3', 'v4', `v5${R}`, `v6${R}`];
    const html = renderReport({
      ...d,
      model: `fraud${R}`,
      drift: versions.flatMap((version) => d.drift.map((r) => ({ ...r, feature: `amount${R}`, version }))),
      distributions: [
        {
          feature: `amount${R}`,
          kind: 'categorical',
          version: `v1${R}`,
          currentCount: 1250,
          referenceCount: 2000,
          bins: [{ label: `de${R}`, reference: 0.5, current: 0.1 }],
        },
      ],
      performance: versions.map((version, k) => ({
        version,
        windowStart: d.from + k * 3_600_000,
        task: 'binary_classification',
        predictions: 10,
        labeled: 10,
        labelCoverage: 1,
        metrics: { accuracy: 0.9, roc_auc: 0.8 },
        scored: 10,
        estimated: { accuracy: 0.9, roc_auc: 0.8 },
      })),
      retrain: [{ time: d.from + 1000, source: 'stage', kind: 'PRODUCTION', version: `v1${R}`, detail: `why${R}` }],
      notes: [`reference profile of amount${R} (v1) is malformed (x); its distribution is left out`],
    });
    expect(html.split(R).length - 1).toBeGreaterThan(30);
    // data-series and data-chart attributes name what was drawn for tests; a browser shows them nowhere.
    const outside = html
      .replaceAll(/ data-(series|chart)="[^"]*"/g, '')
      .replaceAll(/<bdi>[^<]*<\/bdi>/g, '')
      .replaceAll(/\u2068[^\u2068\u2069]*\u2069/g, '');
    expect(outside.split(R).length - 1).toBe(0);
    expect(html).toContain(
      '<figcaption>\u2068amount\u202E\u2069 (categorical, \u2068v1\u202E\u2069; current n=1250)</figcaption>',
    );
    // Notes show the override as its escape, as stderr does.
    expect(html).toContain('<p>reference profile of amount\\u202e (v1) is malformed');
  });
});

describe('distributions', () => {
  it('uses right-closed bins on the reference edges', () => {
    expect(numericBinLabels([1, 2])).toEqual(['≤ 1', '(1, 2]', '> 2']);
    expect([0.5, 1, 1.5, 2, 3].map((x) => numericBinOf([1, 2], x))).toEqual([0, 0, 1, 1, 2]);
  });

  it('puts unknown categories into "(unseen values)" and turns counts into shares', () => {
    // A category named `other`: the unseen bucket was "other" too, two bars of one name (found by a review).
    const d = featureDistribution(
      'c',
      'v1',
      { kind: 'categorical', n: 4, categories: ['a', 'other'], shares: [0.5, 0.5, 0] },
      new Map([
        ['a', 1],
        ['z', 3],
      ]),
    );
    expect(d.bins).toEqual([
      { label: 'a', reference: 0.5, current: 0.25 },
      { label: 'other', reference: 0.5, current: 0 },
      { label: '(unseen values)', reference: 0, current: 0.75 },
    ]);
    expect(d.currentCount).toBe(4);
  });
});
