// The CSV reader types number cells as pandas' read_csv does: fixtures/make-number-spellings.py
// wrote what pandas 2.3 makes of each spelling, beside a float and beside an integer (found by a
// review: `0x1F`, `0b101`, `0o17` were numbers here — Number() reads them — and text in pandas).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { csvColumns, typeColumns } from '../src/index.js';

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'number-spellings.json'), 'utf8')) as {
  cases: { field: string; cell: string; numeric: boolean; value: string; beside_integer: string }[];
};

/**
 * Where this reader differs from pandas on purpose (README, Types): a blank cell is missing here
 * (pandas keeps it as text, turning the column to text); an integer beyond uint64 beside integers is
 * an integer here (pandas falls back to text for the column, though beside a float it is a number).
 */
const DIFFERENCES: Record<string, { numeric?: boolean; value?: string; beside_integer?: string }> = {
  '"  "': { numeric: true, value: 'nan', beside_integer: 'f' },
  '123456789012345678901': { beside_integer: 'i' },
};

const expectedNumber = (v: string) =>
  v === 'nan'
    ? Number.NaN
    : v === 'inf'
      ? Number.POSITIVE_INFINITY
      : v === '-inf'
        ? Number.NEGATIVE_INFINITY
        : Number(v);

describe('number spellings, as pandas read_csv types them (fixtures/number-spellings.json)', () => {
  for (const c of fixture.cases) {
    const want = { ...c, ...DIFFERENCES[c.field] };
    it(`${JSON.stringify(c.field)}: ${want.numeric ? want.value : 'text'}, beside an integer ${want.beside_integer}`, () => {
      // Alone after a number (the general path) and late in a long column (the fast path's flip).
      for (const text of [`x\n1.5\n${c.field}\n`, `x\n${'1.5\n'.repeat(2000)}${c.field}\n`]) {
        const [x] = csvColumns(text, 't.csv');
        expect(x!.kind).toBe(want.numeric ? 'numeric' : 'categorical');
        if (want.numeric) expect(Object.is((x!.values as Float64Array).at(-1), expectedNumber(want.value))).toBe(true);
        else expect((x!.values as ReadonlyArray<string | null>).at(-1)).toBe(c.cell);
      }
      // The text reader (typeColumns, `profilesFromCsv`) types the cell the same way.
      expect(typeColumns(['x'], [['1.5'], [c.cell]])[0]!.kind).toBe(want.numeric ? 'numeric' : 'categorical');
      // Beside an integer: int64 (or uint64) in pandas is `integerText` here; float64 is not; text is text.
      const [y] = csvColumns(`y\n1\n${c.field}\n`, 't.csv');
      if (want.beside_integer === 'O') expect(y!.kind).toBe('categorical');
      else expect(y).toMatchObject({ kind: 'numeric', integerText: want.beside_integer !== 'f' });
    });
  }
});
