import { DriftlineError } from '@driftline/core';
import { fuzzParameters, timedCall } from '@driftline/test-support/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { csvColumns } from '../src/index.js';

const MISSING = new Set(['', 'NA', 'NaN', 'nan', 'null', 'NULL', 'None']);
const missing = (cell: string) => MISSING.has(cell) || cell.trim() === '';

/** A CSV writer with every freedom RFC 4180 leaves: delimiter, line end, BOM, which fields to quote. */
function writeCsv(
  rows: readonly (readonly string[])[],
  style: { delimiter: string; eol: string; bom: boolean; quoteAll: boolean; quoteExtra: readonly boolean[] },
): string {
  let k = 0;
  const field = (cell: string, alone: boolean) => {
    const needed = cell.includes(style.delimiter) || /["\r\n]/.test(cell) || (alone && cell === '');
    const extra = style.quoteExtra[k++ % style.quoteExtra.length] ?? false;
    return needed || style.quoteAll || extra ? `"${cell.replaceAll('"', '""')}"` : cell;
  };
  const body = rows
    .map((row) => row.map((cell) => field(cell, row.length === 1)).join(style.delimiter))
    .join(style.eol);
  return `${style.bom ? '\ufeff' : ''}${body}${style.eol}`;
}

const cellText = fc.oneof(
  fc.string({ unit: fc.constantFrom('a', 'b', ' ', ',', ';', '\t', '|', '"', '\n', '\r', '1', '.', 'é', '東') }),
  fc.constantFrom('', 'NA', 'null', ' ', '0', '-1.5', '""'),
  fc.string({ unit: 'grapheme' }),
);

const table = fc.integer({ min: 1, max: 6 }).chain((width) =>
  fc.record({
    header: fc.uniqueArray(
      fc.string({ minLength: 1, maxLength: 8 }).filter((s) => s.trim() !== ''),
      { minLength: width, maxLength: width },
    ),
    rows: fc.array(fc.array(cellText, { minLength: width, maxLength: width }), { maxLength: 30 }),
    delimiter: fc.constantFrom(',', ';', '\t', '|'),
    eol: fc.constantFrom('\n', '\r\n'),
    bom: fc.boolean(),
    quoteAll: fc.boolean(),
    quoteExtra: fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }),
  }),
);

describe('csvColumns (property tests)', () => {
  it('random tables, written with random quoting, delimiters, CRLF and BOM, read back exactly', () => {
    fc.assert(
      fc.property(table, (t) => {
        const text = writeCsv([t.header, ...t.rows], t);
        const cols = csvColumns(text, 'fuzz.csv', { delimiter: t.delimiter, categorical: t.header });
        expect(cols.map((c) => c.name)).toEqual(t.header);
        cols.forEach((c, i) => {
          // --categorical: every cell exactly as written, numbers too.
          expect(c.values).toEqual(t.rows.map((r) => (missing(r[i]!) ? null : r[i]!)));
        });
      }),
      fuzzParameters(300),
    );
  });

  it('random numbers read back as the same doubles, whatever the quoting', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer()), {
          minLength: 1,
          maxLength: 50,
        }),
        fc.boolean(),
        (xs, quote) => {
          const text = `x\n${xs.map((x) => (quote ? `"${x}"` : String(x))).join('\n')}\n`;
          const [x] = csvColumns(text, 'n.csv');
          expect(x!.kind).toBe('numeric');
          expect(Array.from(x!.values as Float64Array)).toEqual(xs);
        },
      ),
      fuzzParameters(300),
    );
  });

  it('random bytes never hang (< 100 ms each) and fail only with a typed error', () => {
    const csvish = fc.uint8Array({ maxLength: 2000 }).map((b) => {
      const alphabet = [0x2c, 0x22, 0x0a, 0x0d, 0x61, 0x31, 0x2e, 0x65, 0x2d, 0x20, 0xef, 0xbb, 0xbf, 0x3b];
      return b.map((x) => alphabet[x % alphabet.length]!);
    });
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 4000 }), csvish),
        fc.constantFrom(',', ';', '\t'),
        (bytes, delimiter) => {
          const outcome = timedCall(() => csvColumns(bytes, 'random.bin', { delimiter }));
          if (outcome.threw) {
            expect(outcome.error).toBeInstanceOf(DriftlineError);
            expect((outcome.error as DriftlineError).message).toMatch(/^random\.bin: /);
          }
        },
      ),
      fuzzParameters(500),
    );
  });
});
