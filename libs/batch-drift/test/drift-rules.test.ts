// The default rule on small samples (PSI does not decide below minRows) and on missing shares
// (a significant rise is drift by `missing`); both found by a review of `driftline drift`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { type Column, columnDrift, type DriftOptions, tableDrift } from '../src/index.js';

const normals = (rng: SeededRandom, rows: number, shift = 0) =>
  Float64Array.from({ length: rows }, () => rng.normal() + shift);

const numericTable = (rng: SeededRandom, rows: number, columns: number, shift = 0): Column[] =>
  Array.from({ length: columns }, (_, c) => ({
    name: `c${c}`,
    kind: 'numeric' as const,
    values: normals(rng, rows, shift),
  }));

const categoricalTable = (rng: SeededRandom, rows: number, columns: number): Column[] =>
  Array.from({ length: columns }, (_, c) => ({
    name: `k${c}`,
    kind: 'categorical' as const,
    values: Array.from({ length: rows }, () => {
      const u = rng.uniform();
      return u < 0.4 ? 'a' : u < 0.7 ? 'b' : u < 0.9 ? 'c' : 'd';
    }),
  }));

const drifted = (reference: Column[], current: Column[], options: DriftOptions = {}) =>
  tableDrift(reference, current, options).filter((r) => r.drifted).length;

describe('small samples: PSI does not decide below minRows (default 100)', () => {
  // The review's setup (fp.py): 2,000 reference rows, 200 columns, all N(0,1) on both sides. Before,
  // the default drifted 185 of 200 columns at n = 20 (200 at n = 1 and 5, 97 at n = 50): PSI under no
  // drift grows like (bins − 1)(1/n + 1/m).
  const rng = new SeededRandom(28);
  const reference = numericTable(rng, 2000, 200);

  it.each([1, 5, 20, 50])(
    'n = %i from the same distribution: at most about 10 percent drift (KS alone: about 5)',
    (n) => {
      const current = numericTable(rng, n, 200);
      const rows = tableDrift(reference, current);
      expect(rows.filter((r) => r.drifted).length).toBeLessThanOrEqual(20);
      expect(rows.every((r) => r.small_sample && !r.drifted_by.includes('psi'))).toBe(true);
      // minRows 0 is the old rule: PSI decides on any sample.
      if (n <= 20) expect(drifted(reference, current, { minRows: 0 })).toBeGreaterThan(150);
    },
  );

  it('a real shift at n = 20 (mean +2 sd) still drifts, by KS', () => {
    const current = numericTable(rng, 20, 50, 2);
    const rows = tableDrift(reference.slice(0, 50), current);
    expect(rows.filter((r) => r.drifted_by.includes('ks')).length).toBe(50);
  });

  it('categorical columns: chi-square decides alone below minRows, at most ~10% on no drift', () => {
    const ref = categoricalTable(rng, 2000, 100);
    const cur = categoricalTable(rng, 20, 100);
    const rows = tableDrift(ref, cur);
    expect(rows.every((r) => r.small_sample && !r.drifted_by.includes('psi'))).toBe(true);
    expect(rows.filter((r) => r.drifted).length).toBeLessThanOrEqual(10);
  });

  it('counts present values: 150 rows with 60 missing is a small sample; minRows sets the bound', () => {
    const ref = numericTable(new SeededRandom(1), 2000, 1)[0]!;
    const values = normals(new SeededRandom(2), 150, 3).map((v, i) => (i < 60 ? Number.NaN : v));
    const cur: Column = { name: 'c0', kind: 'numeric', values };
    expect(columnDrift(ref, cur, { missingThreshold: 1 })).toMatchObject({ small_sample: true, drifted_by: ['ks'] });
    expect(columnDrift(ref, cur, { minRows: 90, missingThreshold: 1 })).toMatchObject({
      small_sample: false,
      drifted_by: ['psi', 'ks'],
    });
  });

  it("--stattest evidently keeps Evidently's verdict exactly, and says small_sample", () => {
    const current = numericTable(rng, 20, 200);
    const small = tableDrift(reference, current, { stattest: 'evidently' });
    const unbounded = tableDrift(reference, current, { stattest: 'evidently', minRows: 0 });
    expect(small.map((r) => [r.drifted, r.drifted_by, r.drift_score])).toEqual(
      unbounded.map((r) => [r.drifted, r.drifted_by, r.drift_score]),
    );
    expect(small.every((r) => r.small_sample)).toBe(true);
    expect(unbounded.some((r) => r.small_sample)).toBe(false);
  });
});

describe('missing shares: a significant rise is drift by `missing` (default: by 0.1 or more)', () => {
  const fixture = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'missing-shares.json'), 'utf8')) as {
    cases: { reference: [number, number]; current: [number, number]; statistic: number; p_value: number }[];
  };
  /** A numeric and a categorical column of `rows` cells, the first `missing` of them missing. */
  const columns = (rows: number, missing: number): [Column, Column] => [
    {
      name: 'x',
      kind: 'numeric',
      values: Float64Array.from({ length: rows }, (_, i) => (i < missing ? Number.NaN : i % 10)),
    },
    {
      name: 'x',
      kind: 'categorical',
      values: Array.from({ length: rows }, (_, i) => (i < missing ? null : 'abc'[i % 3]!)),
    },
  ];

  for (const c of fixture.cases) {
    it(`reference ${c.reference[1]}/${c.reference[0]} missing, current ${c.current[1]}/${c.current[0]}: scipy's p = ${c.p_value.toPrecision(4)}`, () => {
      const refs = columns(...c.reference);
      const curs = columns(...c.current);
      const rise = c.current[1] / c.current[0] - c.reference[1] / c.reference[0];
      for (const k of [0, 1]) {
        const r = columnDrift(refs[k]!, curs[k]!);
        if (c.p_value < 1e-300) expect(r.missing_p_value).toBeLessThan(1e-300);
        else expect(Math.abs(r.missing_p_value - c.p_value)).toBeLessThanOrEqual(1e-9 * c.p_value + 1e-15);
        const allMissing = c.current[1] === c.current[0];
        expect(r.drifted_by.includes('missing')).toBe(allMissing || (rise >= 0.1 - 1e-12 && c.p_value < 0.05));
      }
    });
  }

  it('a current column 90% missing (the rest N(0,1)) against a complete reference drifts by missing', () => {
    const rng = new SeededRandom(7);
    const [reference] = numericTable(rng, 2000, 1);
    const values = normals(rng, 1000).map((v, i) => (i % 10 === 0 ? v : Number.NaN));
    const r = columnDrift(reference!, { name: 'c0', kind: 'numeric', values });
    expect(r).toMatchObject({ missing_rate_reference: 0, missing_rate_current: 0.9, drifted: true });
    expect(r.drifted_by).toEqual(['missing']);
    // Evidently's rule drops missing values and is kept as it is.
    expect(
      columnDrift(reference!, { name: 'c0', kind: 'numeric', values }, { stattest: 'evidently' }).drifted_by,
    ).not.toContain('missing');
  });

  it('the threshold: a significant rise of 5 points drifts only below it; 1 leaves only an empty current column', () => {
    const [ref] = columns(2000, 0);
    const [cur] = columns(1000, 50);
    expect(columnDrift(ref, cur).drifted_by).toEqual([]);
    expect(columnDrift(ref, cur, { missingThreshold: 0.05 }).drifted_by).toEqual(['missing']);
    const [mostly] = columns(1000, 999);
    expect(columnDrift(ref, mostly, { missingThreshold: 1 }).drifted_by).not.toContain('missing');
    const [empty] = columns(1000, 1000);
    expect(columnDrift(ref, empty, { missingThreshold: 1 }).drifted_by).toEqual(['missing']);
  });

  it('a fall of the missing share is no drift', () => {
    const [ref] = columns(1000, 300);
    const [cur] = columns(1000, 0);
    const r = columnDrift(ref, cur);
    expect(r.missing_p_value).toBeLessThan(1e-10);
    expect(r.drifted_by).not.toContain('missing');
  });
});
