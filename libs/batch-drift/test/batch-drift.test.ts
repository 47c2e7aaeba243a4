import { ks2samp, psiNumeric } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import {
  applyTableOptions,
  type Column,
  columnDistribution,
  columnDrift,
  tableDrift,
  typeColumns,
} from '../src/index.js';

const error = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};

describe('typeColumns', () => {
  it('types numeric and categorical columns and reads NA spellings as missing', () => {
    const cols = typeColumns(
      ['x', 'c', 'mixed'],
      [
        ['1.5', 'a', '1'],
        ['', 'NA', 'b'],
        ['NaN', 'b', '2'],
      ],
    );
    expect(cols[0]?.kind).toBe('numeric');
    expect(Array.from(cols[0]!.values as Float64Array)).toEqual([1.5, Number.NaN, Number.NaN]);
    expect(cols[1]).toEqual({ name: 'c', kind: 'categorical', values: ['a', null, 'b'] });
    expect(cols[2]?.kind).toBe('categorical');
  });
});

describe('columnDrift on infinities (Arrow and Parquet keep them)', () => {
  it('counts ±Infinity as missing: shown in the missing rate, and a column without a finite value drifts (found by a review)', () => {
    const numeric = (values: number[]) => ({ name: 'x', kind: 'numeric' as const, values: Float64Array.from(values) });
    const reference = numeric(Array.from({ length: 100 }, (_, i) => i));
    const mostlyInf = numeric(Array.from({ length: 100 }, (_, i) => (i < 90 ? Infinity : i)));
    expect(columnDrift(reference, mostlyInf)).toMatchObject({ missing_rate_current: 0.9, current_size: 10 });
    expect(columnDrift(reference, numeric(Array(50).fill(-Infinity)))).toMatchObject({
      missing_rate_current: 1,
      drifted: true,
      drifted_by: ['missing'],
    });
    expect(() => columnDrift(numeric([Infinity, Number.NaN]), reference)).toThrow(
      /every cell of the reference is missing/,
    );
  });
});

describe('columnDrift on values a statistic refuses', () => {
  it('names the column when Evidently binning meets values more than the largest double apart (was a RangeError)', () => {
    const rows = [...Array.from({ length: 30 }, (_, i) => [String(i)]), ['-1.7e308'], ['1.7e308']];
    const [ref] = typeColumns(['amount'], rows);
    const [cur] = typeColumns(['amount'], [['1'], ['2'], ['3']]);
    expect(() => columnDrift(ref!, cur!, { binning: 'evidently' })).toThrow(
      /^column "amount": psi \(evidently binning\): the values span more than the largest double/,
    );
    expect(columnDrift(ref!, cur!).column).toBe('amount');
  });
});

describe('columnDrift on a column typed differently on each side', () => {
  it('refuses numbers against text, naming the column and the way out (was: false drift)', () => {
    const [ref] = typeColumns(['k'], [['1.0'], ['2.0'], ['3.0']]);
    const [cur] = typeColumns(['k'], [['1.0'], ['2.0'], ['unknown']]);
    expect(() => columnDrift(ref!, cur!)).toThrow(
      'column "k": numbers in the reference but text in the current (such as "unknown") — compare it as categories with --categorical k, or make those values numbers',
    );
    // The suggested fix works: forced categorical on both sides, the column compares (found by a review:
    // the message offered --numeric, which only moved the error to the text cell).
    const header = ['k'];
    const forced = (rows: string[][]) => applyTableOptions(typeColumns(header, rows), { categorical: ['k'] }, 't')[0]!;
    expect(columnDrift(forced([['1.0'], ['2.0'], ['3.0']]), forced([['1.0'], ['2.0'], ['unknown']])).column).toBe('k');
    expect(() => applyTableOptions(typeColumns(header, [['1.0'], ['unknown']]), { numeric: ['k'] }, 't')).toThrow(
      /forced numeric/,
    );
    // A name that needs quoting in a shell is quoted.
    const [odd] = typeColumns(["it's a k"], [['1.0']]);
    const [oddText] = typeColumns(["it's a k"], [['x']]);
    expect(() => columnDrift(odd!, oddText!)).toThrow(`--categorical 'it'\\''s a k'`);
    // A current side with no value at all still compares (as missing categories); a reference
    // without one is refused, naming the column (it was "psi: reference has no usable values").
    const [empty] = typeColumns(['k'], [[''], ['']]);
    expect(columnDrift(cur!, empty!)).toMatchObject({
      kind: 'categorical',
      chi2_p_value: Number.NaN,
      drifted: true,
      drifted_by: ['missing'],
    });
    // A numeric feature that stopped arriving is drifted, not "KS p = 1, no drift".
    expect(columnDrift(ref!, empty!)).toMatchObject({
      kind: 'numeric',
      ks_p_value: Number.NaN,
      missing_rate_current: 1,
      drifted: true,
      drifted_by: ['missing'],
    });
    expect(() => columnDrift(empty!, cur!)).toThrow(
      'column "k": every cell of the reference is missing — nothing to compare against; leave it out with --ignore k',
    );
  });

  it('booleans against 0/1 says so and does not offer --categorical (it gave PSI 17.7 on identical data; a review)', () => {
    const [bools] = typeColumns(['b'], [['True'], ['false'], [''], ['TRUE']]);
    const [bits] = typeColumns(['b'], [['1'], ['0'], [''], ['1']]);
    expect(() => columnDrift(bools!, bits!)).toThrow(
      'column "b": true/false in the reference but 1/0 in the current — convert one side (the booleans to 1/0, or the 1/0 to true/false), or leave the column out with --ignore b',
    );
    expect(() => columnDrift(bits!, bools!)).toThrow(
      /^column "b": true\/false in the current but 1\/0 in the reference — /,
    );
    // Other numbers against booleans are still numbers against text.
    const [counts] = typeColumns(['b'], [['1'], ['2']]);
    expect(() => columnDrift(counts!, bools!)).toThrow(/numbers in the reference but text in the current/);
  });

  it('a current column all null as text (Arrow Null or Utf8 all None) against numbers is drifted by missing', () => {
    const reference: Column = { name: 'x', kind: 'numeric', values: Float64Array.from([1, 2, 3, 4]) };
    const allNull: Column = { name: 'x', kind: 'categorical', values: [null, null, null] };
    expect(columnDrift(reference, allNull)).toMatchObject({
      kind: 'numeric',
      current_size: 0,
      missing_rate_current: 1,
      drifted: true,
      drifted_by: ['missing'],
    });
    expect(columnDistribution(reference, allNull)).toMatchObject({ kind: 'numeric', currentCount: 0 });
    // One present value is a type: numbers against text is still refused.
    expect(() => columnDrift(reference, { ...allNull, values: [null, 'a', null] })).toThrow(/numbers in the reference/);
  });

  it('an error line cuts a long column name (a 200,000-character header made a 200 KB line)', () => {
    const name = 'n'.repeat(200_000);
    const message = error(() =>
      columnDrift(
        { name, kind: 'numeric', values: Float64Array.from([Number.NaN]) },
        { name, kind: 'numeric', values: Float64Array.from([1]) },
      ),
    );
    expect(message.length).toBeLessThan(400);
    expect(message).toContain(`"${'n'.repeat(80)}…"`);
  });
});

describe('columnDrift', () => {
  const ref = {
    name: 'x',
    kind: 'numeric' as const,
    values: Float64Array.from({ length: 400 }, (_, i) => (i % 40) / 4),
  };
  const same = {
    name: 'x',
    kind: 'numeric' as const,
    values: Float64Array.from({ length: 300 }, (_, i) => (i % 40) / 4),
  };
  const shifted = {
    name: 'x',
    kind: 'numeric' as const,
    values: Float64Array.from({ length: 300 }, (_, i) => (i % 40) / 4 + 5),
  };

  it('reports the statistics of libs/stats for a numeric column and no drift for the same distribution', () => {
    const r = columnDrift(ref, same);
    expect(r.psi).toBeCloseTo(psiNumeric(ref.values, same.values).value, 12);
    expect(r.ks_statistic).toBe(ks2samp(ref.values, same.values).statistic);
    expect(r.drifted).toBe(false);
    expect(r.out_of_range_share).toBe(0);
  });

  it('calls drift on a shifted column, by PSI and KS, with the out-of-range share', () => {
    const r = columnDrift(ref, shifted);
    expect(r.drifted_by).toEqual(['psi', 'ks']);
    expect(r.out_of_range_share).toBeCloseTo(140 / 300, 12); // i % 40 >= 20 in 7 full cycles of 40;
  });

  it('compares categories with PSI and chi-square, counting new categories as other', () => {
    const a = { name: 'c', kind: 'categorical' as const, values: [...'aabbccaabbcc'] };
    const b = { name: 'c', kind: 'categorical' as const, values: [...'ddddddddaabb'] };
    // 12 rows a side: PSI decides only with --min-rows lowered (drift-rules.test.ts).
    const r = columnDrift(a, b, { minRows: 0 });
    expect(r.kind).toBe('categorical');
    expect(r.drifted_by).toContain('psi');
    expect(r.chi2_p_value).toBeLessThan(0.05);
  });

  it('refuses tables with no shared column', () => {
    expect(() => tableDrift([ref], [{ ...same, name: 'y' }])).toThrow(/share no column/);
  });
});
