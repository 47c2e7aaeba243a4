import { describe, expect, it } from 'vitest';
import {
  chartedColumns,
  MAX_REPORT_FEATURES,
  MAX_TABLE_COLUMNS,
  renderTableReport,
  type TableColumnDistribution,
  type TableColumnDrift,
} from '../src/index.js';

const column = (i: number): TableColumnDrift => ({
  column: `c${i}`,
  kind: 'numeric',
  psi: (i % 1000) / 1000,
  ks_p_value: 0.5,
  jensen_shannon: 0.01,
  missing_rate_reference: 0,
  missing_rate_current: 0,
  // Every 7th column drifted, whatever its PSI: drifted ones rank first.
  drifted: i % 7 === 0,
  drifted_by: i % 7 === 0 ? ['ks'] : [],
});

const distribution = (c: TableColumnDrift): TableColumnDistribution => ({
  column: c.column,
  kind: 'numeric',
  bins: Array.from({ length: 10 }, (_, j) => ({ label: `(${j}, ${j + 1}]`, reference: 0.1, current: 0.1 })),
  referenceCount: 1000,
  currentCount: 1000,
});

describe('renderTableReport of a wide table (found by a review)', () => {
  it('renders 100,000 columns: the most drifted listed and charted, the rest counted, not a RangeError', () => {
    // A chart per column made `drift --html` fail with "RangeError: Invalid string length".
    const columns = Array.from({ length: 100_000 }, (_, i) => column(i));
    const html = renderTableReport({
      reference: { name: 'ref.csv', rows: 1000 },
      current: { name: 'cur.csv', rows: 1000 },
      generatedAt: Date.UTC(2025, 0, 1),
      rule: 'drift when PSI ≥ 0.2 or p < 0.05',
      columns,
      distributions: columns.map(distribution),
    });
    expect(html.match(/<figure class="chart"/g)).toHaveLength(MAX_REPORT_FEATURES);
    expect(html.match(/<tr><td>/g)).toHaveLength(MAX_TABLE_COLUMNS);
    expect(html).toContain(`the ${MAX_TABLE_COLUMNS} of 100000 columns that drifted most are listed; 90000 left out`);
    expect(html).toContain(
      `the ${MAX_REPORT_FEATURES} of 100000 columns that drifted most are charted; 99500 left out`,
    );
    // The summary counts every column.
    expect(html).toContain('<b>14286 / 100000</b>');
    // Drifted first, then the largest PSI: the first chart is the drifted column with the largest PSI.
    const first = /data-chart="dist-(c\d+)"/.exec(html)![1]!;
    const top = Math.max(...columns.filter((c) => c.drifted).map((c) => c.psi));
    expect(columns.find((c) => c.column === first)).toMatchObject({ drifted: true, psi: top });
    expect(chartedColumns(columns)[0]).toBe(first);
  });
});

describe('renderTableReport: a column too small for PSI', () => {
  it('is marked in the table as the terminal marks it, the others not', () => {
    const small: TableColumnDrift = { ...column(1), column: 'few', small_sample: true };
    const html = renderTableReport({
      reference: { name: 'ref.csv', rows: 1000 },
      current: { name: 'cur.csv', rows: 20 },
      generatedAt: Date.UTC(2025, 0, 1),
      rule: 'drift when PSI ≥ 0.2 or p < 0.05',
      columns: [small, { ...column(2), column: 'many', small_sample: false }],
      distributions: [],
    });
    const rowOf = (name: string) =>
      html.split('<tr>').find((r) => r.startsWith(`<td><bdi>${name}`) || r.includes(`>${name}<`));
    expect(rowOf('few')).toContain('small sample');
    expect(rowOf('many')).not.toContain('small sample');
  });
});

describe('renderTableReport: names with bidi controls (found by a review)', () => {
  it('isolates column and file names in chart captions and the title, as the report does', () => {
    const c = { ...column(0), column: 'amount\u202E' };
    const html = renderTableReport({
      reference: { name: 'ref\u202E.csv', rows: 1000 },
      current: { name: 'cur.csv', rows: 1000 },
      generatedAt: Date.UTC(2025, 0, 1),
      rule: 'drift when PSI ≥ 0.2 or p < 0.05',
      columns: [c],
      distributions: [distribution(c)],
    });
    expect(html).toContain('<title>driftline drift · \u2068ref\u202E.csv\u2069 → \u2068cur.csv\u2069</title>');
    expect(html).toContain(
      '<figcaption>\u2068amount\u202E\u2069 (numeric; reference n=1000, current n=1000) · drift</figcaption>',
    );
  });
});
