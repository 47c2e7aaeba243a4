import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ALERT_MIN_SAMPLES,
  DEFAULT_REALIZED_COVERAGE,
  type PerformancePoint,
  type ReportData,
  renderReport,
} from '../src/index.js';

const H = 3_600_000;
const t0 = Date.UTC(2025, 0, 1);

function data(performance: PerformancePoint[]): ReportData {
  return {
    model: 'm',
    from: t0,
    to: t0 + 4 * H,
    generatedAt: t0 + 5 * H,
    drift: [],
    distributions: [],
    performance,
    retrain: [],
  };
}

/** A window of 1,000 predictions (so labels cover `coverage` with ≥ 100 of them from 0.1 on). */
const point = (
  version: string,
  k: number,
  coverage: number | null,
  realized: number | null,
  estimated: number | null,
  business: PerformancePoint['business'] = null,
): PerformancePoint => ({
  version,
  windowStart: t0 + k * H,
  task: 'binary',
  predictions: 1000,
  labeled: Math.round((coverage ?? 0) * 1000),
  labelCoverage: coverage,
  metrics: { roc_auc: realized, accuracy: realized === null ? null : realized - 0.1 },
  estimated: { roc_auc: estimated, accuracy: estimated === null ? null : estimated - 0.1 },
  scored: 1000,
  business,
});

const section = (html: string, id: string) => {
  const start = html.indexOf(`<section id="${id}">`);
  return start === -1 ? '' : html.slice(start, html.indexOf('</section>', start));
};
const chart = (html: string, id: string) => {
  const start = html.indexOf(`data-chart="${id}"`);
  return html.slice(start, html.indexOf('</figure>', start));
};
const kinds = (svg: string) => [...svg.matchAll(/class="highlight" data-kind="(\w+)"/g)].map((m) => m[1]);

describe('the estimated-vs-realized section of the report', () => {
  it('is absent without estimates (an older table) and without any estimated value', () => {
    const { estimated: _, ...old } = point('v1', 0, 1, 0.9, 0.9);
    expect(renderReport(data([old]))).not.toContain('id="estimates"');
    expect(renderReport(data([point('v1', 0, 1, 0.9, null)]))).not.toContain('id="estimates"');
  });

  it('draws estimate dashed and realized solid per version, and rings the realized value only from the bound on', () => {
    const html = renderReport(
      data([
        point('v1', 0, 0.9, 0.91, 0.88),
        point('v1', 1, 0.5, 0.8, 0.85), // exactly at the bound: realized
        point('v2', 2, 0.49, 0.7, 0.83), // below: the estimate
        point('v2', 3, null, null, 0.86), // no labels at all
      ]),
    );
    const s = section(html, 'estimates');
    expect(s).toContain('reaches 0.5');
    const auc = chart(s, 'estimated-roc-auc');
    const paths = [...auc.matchAll(/<path class="series" data-series="([^"]+)"[^>]*?(stroke-dasharray="6 4")?\/>/g)];
    expect(paths.map((m) => [m[1], m[2] !== undefined])).toEqual([
      ['estimated ROC AUC v1', true],
      ['realized ROC AUC v1', false],
      ['estimated ROC AUC v2', true],
      ['realized ROC AUC v2', false],
    ]);
    expect(kinds(auc)).toEqual(['realized', 'realized', 'estimated', 'estimated']);
    expect(auc).toContain(
      'current ROC AUC \u2068v2\u2069 2025-01-01 02:00:00Z: 0.8300 (estimated, label coverage 0.49)',
    );
    expect(chart(s, 'estimated-accuracy')).toContain('data-series="estimated accuracy v2"');
    const rows = [...s.matchAll(/<span class="tag (\w+)">/g)].map((m) => m[1]);
    expect(rows).toEqual(['realized', 'realized', 'estimated', 'estimated']);
  });

  it('shows label coverage with enough digits to agree with its tag (0.499 read "0.50" beside "estimated"; found by a review)', () => {
    const html = renderReport(
      data([point('v1', 0, 0.499, 0.9, 0.8), point('v1', 1, 0.4999, 0.9, 0.8), point('v1', 2, 0.5, 0.9, 0.8)]),
    );
    const s = section(html, 'estimates');
    const rows = [
      ...s.matchAll(/<td class="num">1000<\/td><td class="num">([^<]*)<\/td>.*?<span class="tag (\w+)">/g),
    ].map((m) => [m[1], m[2]]);
    expect(rows).toEqual([
      ['0.499', 'estimated'],
      ['0.4999', 'estimated'],
      ['0.50', 'realized'],
    ]);
    expect(chart(s, 'estimated-roc-auc')).toContain('(estimated, label coverage 0.499)');
  });

  it('follows the configured bound', () => {
    const html = renderReport(data([point('v1', 0, 0.6, 0.9, 0.8)]), { realizedCoverage: 0.7 });
    expect(kinds(chart(html, 'estimated-roc-auc'))).toEqual(['estimated']);
  });

  // The label-joiner's alerts judge the realized metric only from DRIFTLINE_JOINER_ALERT_MIN_SAMPLES
  // valid labels on (libs/performance alerts.ts realizedJudges): 90 labels of 150 predictions
  // (coverage 0.6) showed the realized value while the ESTIMATED_PERFORMANCE alert judged the estimate.
  const few = (labeled: number, more: Partial<PerformancePoint> = {}): PerformancePoint => ({
    ...point('v1', 0, 0.6, 0.9, 0.8),
    predictions: Math.round(labeled / 0.6),
    labeled,
    ...more,
  });
  const current = (p: PerformancePoint, options = {}) => {
    const s = section(renderReport(data([p]), options), 'estimates');
    return {
      chart: kinds(chart(s, 'estimated-roc-auc')),
      table: [...s.matchAll(/<span class="tag (realized|estimated)">/g)].map((m) => m[1]),
    };
  };

  it('shows the estimate while fewer than 100 valid labels were used, whatever the coverage, as the alerts judge', () => {
    expect(current(few(90))).toEqual({ chart: ['estimated'], table: ['estimated'] });
    expect(current(few(99))).toEqual({ chart: ['estimated'], table: ['estimated'] });
    expect(current(few(100))).toEqual({ chart: ['realized'], table: ['realized'] });
    const s = section(renderReport(data([few(90)])), 'estimates');
    expect(s).toContain('current ROC AUC \u2068v1\u2069 2025-01-01 00:00:00Z: 0.8000 (estimated, label coverage 0.60)');
    expect(s).toContain('current: realized once label coverage ≥ 0.5 with ≥ 100 valid labels, else the estimate');
    expect(s).toContain('reaches 0.5 and its metrics were computed from at least 100 valid labels');
    // The labels it counted, beside the coverage.
    expect(s).toContain('<td class="num">0.60</td><td class="num">90</td>');
  });

  it('counts valid labels as the label-joiner does: labeled less invalid, or the sample when sampled', () => {
    // 120 labeled, 30 invalid: 90 used (a regression window keeps its metric with invalid labels' rows).
    expect(current(few(120, { invalidLabels: 30 })).table).toEqual(['estimated']);
    expect(current(few(130, { invalidLabels: 30 })).table).toEqual(['realized']);
    // Sampled: the metrics came from 90 of the 150,000 labels.
    expect(current(few(150_000, { sampled: 90 })).table).toEqual(['estimated']);
    expect(current(few(150_000, { sampled: 100 })).table).toEqual(['realized']);
    // sampled 0: computed from all of them.
    expect(current(few(100, { sampled: 0 })).table).toEqual(['realized']);
  });

  it('follows the configured min-samples bound (DRIFTLINE_JOINER_ALERT_MIN_SAMPLES)', () => {
    expect(current(few(90), { alertMinSamples: 50 }).table).toEqual(['realized']);
    expect(current(few(100), { alertMinSamples: 101 }).table).toEqual(['estimated']);
    const s = section(renderReport(data([few(90)]), { alertMinSamples: 50, realizedCoverage: 0.55 }), 'estimates');
    expect(s).toContain('current: realized once label coverage ≥ 0.55 with ≥ 50 valid labels, else the estimate');
    // Enough labels, but no finite realized value: still the estimate.
    expect(
      current(few(90, { metrics: { roc_auc: Number.NaN, accuracy: null } }), { alertMinSamples: 50 }).table,
    ).toEqual(['estimated']);
    expect(current(few(90, { metrics: { roc_auc: null, accuracy: null } }), { alertMinSamples: 50 }).table).toEqual([
      'estimated',
    ]);
  });

  it("defaults to the label-joiner's DRIFTLINE_JOINER_REALIZED_COVERAGE and DRIFTLINE_JOINER_ALERT_MIN_SAMPLES defaults", () => {
    const config = readFileSync(resolve(import.meta.dirname, '../../../libs/performance/src/realized-rule.ts'), 'utf8');
    const declared = (name: string) => {
      const m = new RegExp(`\\b${name}:[^\\n]*\\.default\\(([\\d_.]+)\\)`).exec(config);
      expect(m, `${name} and its default in libs/performance/src/realized-rule.ts`).not.toBeNull();
      return Number(m![1]!.replaceAll('_', ''));
    };
    expect(DEFAULT_REALIZED_COVERAGE).toBe(declared('DRIFTLINE_JOINER_REALIZED_COVERAGE'));
    expect(DEFAULT_ALERT_MIN_SAMPLES).toBe(declared('DRIFTLINE_JOINER_ALERT_MIN_SAMPLES'));
  });
});

describe('the business-outcome section of the report', () => {
  const b = (caught: number, missed: number, cost: number) => ({
    valuedLabels: 30,
    valueCaught: caught,
    valueMissed: missed,
    falseAlarmCost: cost,
    net: caught - cost,
  });

  it('is absent when no window has a value', () => {
    expect(renderReport(data([point('v1', 0, 1, 0.9, 0.9, null)]))).not.toContain('id="business"');
  });

  it('charts and lists caught, missed, false-alarm cost and net per version and window, with the range total', () => {
    const html = renderReport(
      data([
        point('v1', 0, 0.8, 0.9, 0.9, b(900, 100, 50)),
        point('v1', 1, 0.8, 0.9, 0.9, b(100, 600, 250)),
        point('v2', 1, 0.8, 0.9, 0.9, b(700, 200, 20)),
        point('v2', 2, 0.8, 0.9, 0.9, null),
      ]),
    );
    const s = section(html, 'business');
    const c = chart(s, 'business-outcome');
    expect([...c.matchAll(/<path class="series" data-series="([^"]+)"/g)].map((m) => m[1])).toEqual([
      'value caught v1',
      'value caught v2',
      'value missed v1',
      'value missed v2',
      'false-alarm cost v1',
      'false-alarm cost v2',
      'net v1',
      'net v2',
    ]);
    expect(c.match(/class="point"/g)).toHaveLength(4 * 3);
    expect(c).toContain('break-even');
    const body = s.slice(s.indexOf('<tbody>'), s.indexOf('</tbody>'));
    expect(body.match(/<tr>/g)).toHaveLength(3);
    expect(body).toContain(
      '<td class="num">100.00</td><td class="num">600.00</td><td class="num">250.00</td><td class="num loss">-150.00</td>',
    );
    expect(s).toContain(
      '<th class="num">1700.00</th><th class="num">900.00</th><th class="num">320.00</th><th class="num">1380.00</th>',
    );
  });
});
