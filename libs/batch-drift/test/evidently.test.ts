// `stattest: 'evidently'` against Evidently itself: fixtures/evidently/generate.py wrote the CSV pairs
// and what Evidently 0.7's DataDriftPreset chose and decided for every column (expected.json).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { csvColumns, datasetDrift, tableDrift } from '../src/index.js';

interface Expected {
  readonly evidently: string;
  readonly cases: Record<
    string,
    {
      readonly dataset_drift: boolean;
      readonly columns: Record<
        string,
        { readonly stattest: string; readonly score: number; readonly threshold: number; readonly drifted: boolean }
      >;
    }
  >;
}

const dir = join(import.meta.dirname, 'fixtures', 'evidently');
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
const read = (file: string) => csvColumns(readFileSync(join(dir, file)), file);

describe(`--stattest evidently matches Evidently ${expected.evidently} (fixtures made by Evidently)`, () => {
  for (const [name, want] of Object.entries(expected.cases)) {
    describe(name, () => {
      const rows = tableDrift(read(`${name}-ref.csv`), read(`${name}-cur.csv`), { stattest: 'evidently' });
      it('compares the same columns', () => {
        expect(rows.map((r) => r.column).sort()).toEqual(Object.keys(want.columns).sort());
      });
      for (const row of rows) {
        it(`${row.column}: same test, threshold and verdict; score within 1e-9`, () => {
          const w = want.columns[row.column]!;
          expect({ stattest: row.stattest, threshold: row.stattest_threshold, drifted: row.drifted }).toEqual({
            stattest: w.stattest,
            threshold: w.threshold,
            drifted: w.drifted,
          });
          expect(Math.abs(row.drift_score! - w.score)).toBeLessThan(1e-9);
          expect(row.drifted_by).toEqual(w.drifted ? [w.stattest] : []);
        });
      }
      it('dataset verdict (drift share ≥ 0.5)', () => {
        expect(datasetDrift(rows).datasetDrift).toBe(want.dataset_drift);
      });
    });
  }

  it('covers every test of the default selection', () => {
    const tests = new Set(
      Object.values(expected.cases).flatMap((c) => Object.values(c.columns).map((col) => col.stattest)),
    );
    expect([...tests].sort()).toEqual(['chisquare', 'jensenshannon', 'ks', 'wasserstein', 'z']);
  });
});

describe('default mode is unchanged by the option', () => {
  it('drifted follows driftline tests without stattest, and the Evidently fields are absent', () => {
    const rows = tableDrift(read('small-ref.csv'), read('small-cur.csv'));
    for (const r of rows) {
      expect(r.stattest).toBeUndefined();
      expect(r.drifted).toBe(r.drifted_by.length > 0);
      expect(r.drifted_by.every((t) => t === 'psi' || t === 'ks' || t === 'chi2')).toBe(true);
    }
  });
});
