import { describe, expect, it } from 'vitest';
import { type PerformancePoint, type ReportData, renderReport } from '../src/index.js';

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
  predictions: 100,
  labeled: Math.round((coverage ?? 0) * 100),
  labelCoverage: coverage,
  metrics: { roc_auc: realized, accuracy: realized === null ? null : realized - 0.1 },
  estimated: { roc_auc: estimated, accuracy: estimated === null ? null : estimated - 0.1 },
  scored: 100,
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
      ...s.matchAll(/<td class="num">100<\/td><td class="num">([^<]*)<\/td>.*?<span class="tag (\w+)">/g),
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
