import { describe, expect, it } from 'vitest';
import { type ReportData, renderReport, type SkewPoint } from '../src/index.js';

const H = 3_600_000;
const t0 = Date.UTC(2025, 0, 1);

function data(skew?: SkewPoint[]): ReportData {
  return {
    model: 'm',
    from: t0,
    to: t0 + 3 * H,
    generatedAt: t0 + 4 * H,
    drift: [],
    distributions: [],
    performance: [],
    retrain: [],
    ...(skew === undefined ? {} : { skew }),
  };
}

const point = (feature: string, k: number, version: string, compared: number, mismatched: number): SkewPoint => ({
  feature,
  version,
  windowStart: t0 + k * H,
  sampled: compared + 1,
  compared,
  mismatched,
  numericCompared: feature === 'amount' ? compared : 0,
  absDiffSum: feature === 'amount' ? mismatched * 10 * compared : null,
  missingInStore: 1,
  missingInPrediction: 0,
  newerRow: 2,
  expired: k + 3,
});

describe('the skew section of the report', () => {
  it('is absent without skew data', () => {
    expect(renderReport(data())).not.toContain('id="skew"');
    expect(renderReport(data([]))).not.toContain('id="skew"');
  });

  it('charts the share per feature and sums versions and windows in the table, worst first', () => {
    const html = renderReport(
      data([
        point('amount', 0, 'v1', 40, 0),
        point('amount', 1, 'v1', 30, 30),
        point('amount', 1, 'v2', 10, 10),
        point('<age>', 0, 'v1', 50, 1),
      ]),
    );
    expect(html).toContain('<section id="skew"><h2>Training-serving skew</h2>');
    expect(html).toContain('&lt;age&gt;');
    expect(html).not.toContain('<age>');
    const rows = [...html.matchAll(/<table class="skew">.*?<tbody>(.*?)<\/tbody>/gs)][0]![1]!.split('</tr>');
    // amount: 40 mismatched of 80 compared; mean |diff| = Σ|diff| / Σ numeric: (0·40 + 300·30 + 100·10) / 80.
    expect(rows[0]).toContain(
      '<td><bdi>amount</bdi></td><td class="num">83</td><td class="num">80</td><td class="num">0.5000</td><td class="num">125.0</td>',
    );
    expect(rows[1]).toContain(
      '<td><bdi>&lt;age&gt;</bdi></td><td class="num">51</td><td class="num">50</td><td class="num">0.0200</td><td class="num"></td>',
    );
    // Missing in store, missing in prediction, newer row, expired: summed (amount: 3 + 4 + 4 expired).
    expect(rows[0]).toMatch(
      /<td class="num">3<\/td><td class="num">0<\/td><td class="num">6<\/td><td class="num">11<\/td>$/,
    );
    expect(html).toContain(
      '<th title="no row read while the prediction was older than the view\'s TTL">expired (past the TTL)</th>',
    );
  });

  it('pools mean |served − stored| over the numeric comparisons, as the dashboard does (found by a review)', () => {
    // Windows (100 compared, 10 numeric, Σ|diff| 10) and (10, 10, 100): pooled 110 / 20 = 5.5; the
    // windows' means weighted by all comparisons read (1·100 + 10·10) / 110 = 1.818.
    const window = (k: number, compared: number, numericCompared: number, absDiffSum: number): SkewPoint => ({
      feature: 'amount',
      version: 'v1',
      windowStart: t0 + k * H,
      sampled: compared,
      compared,
      mismatched: numericCompared,
      numericCompared,
      absDiffSum,
      missingInStore: 0,
      missingInPrediction: 0,
      newerRow: 0,
      expired: 0,
    });
    const html = renderReport(data([window(0, 100, 10, 10), window(1, 10, 10, 100)]));
    expect(html).toContain('<td class="num">0.1818</td><td class="num">5.500</td>');
  });
});
