import { describe, expect, it } from 'vitest';
import { type QualityPoint, type ReportData, renderReport } from '../src/index.js';

const H = 3_600_000;
const t0 = Date.UTC(2025, 0, 1);

function data(quality?: QualityPoint[]): ReportData {
  return {
    model: 'm',
    from: t0,
    to: t0 + 3 * H,
    generatedAt: t0 + 4 * H,
    drift: [],
    distributions: [],
    performance: [],
    retrain: [],
    ...(quality === undefined ? {} : { quality }),
  };
}

const point = (feature: string, expectation: string, k: number, observed: number, bound: number): QualityPoint => ({
  feature,
  expectation,
  version: 'v1',
  windowStart: t0 + k * H,
  observed,
  bound,
  passed: observed <= bound,
});

describe('the data-quality section of the report', () => {
  it('is absent without quality rows', () => {
    expect(renderReport(data())).not.toContain('id="quality"');
    expect(renderReport(data([]))).not.toContain('id="quality"');
  });

  it('charts the shares and lists every expectation, failed ones first', () => {
    const html = renderReport(
      data([
        point('age', 'null_rate', 0, 0.01, 0.05),
        point('age', 'null_rate', 1, 0.3, 0.05),
        point('age', 'null_rate', 2, 0.4, 0.05),
        point('<b>', 'categories', 0, 0, 0),
        point('country', 'cardinality', 0, 412, 300),
      ]),
    );
    const section = html.slice(html.indexOf('<section id="quality">'));
    expect(section).toContain('Data quality: share of events breaking each expectation');
    expect(section).toContain('\u2068age\u2069 · \u2068null_rate\u2069');
    const table = section.slice(section.indexOf('<table class="quality">'), section.indexOf('</table>'));
    const cells = [
      ...table.matchAll(/<tr><td><bdi>([^<]*)<\/bdi><\/td><td>([^<]*)<\/td>(?:<td class="num">([^<]*)<\/td>){0,1}/g),
    ];
    expect(cells.map((m) => [m[1], m[2]])).toEqual([
      ['age', 'null_rate'],
      ['country', 'cardinality'],
      ['&lt;b&gt;', 'categories'],
    ]);
    expect(table).toContain(
      '<td class="num">3</td><td class="num">2</td><td class="num">0.4000</td><td class="num">0.0500</td>',
    );
    expect(table).toContain('<td class="num">412</td><td class="num">300</td>');
    // Cardinality is not a share: not charted.
    expect(section).not.toContain('\u2068country\u2069 · \u2068cardinality\u2069');
  });
});
