import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DriftlineError } from '@driftline/core';
import { booleanSpellingOf, categoricalValue } from '@driftline/drift';
import type { CategoricalReferenceProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import {
  applyTableOptions,
  type Column,
  csvColumns,
  MAX_TEXT_ROWS,
  profilesFromColumns,
  profilesFromCsv,
  typeColumns,
} from '../src/index.js';

const numbers = (c: Column | undefined) => Array.from(c!.values as Float64Array);
const error = (fn: () => unknown): DriftlineError => {
  try {
    fn();
  } catch (e) {
    return e as DriftlineError;
  }
  throw new Error('expected an error');
};

describe('csvColumns', () => {
  it('reads quoted cells, doubled quotes and CRLF', () => {
    const cols = csvColumns('a,b\r\n"x, y","say ""hi"""\r\nz,\r\n', 't.csv');
    expect(cols).toEqual([
      { name: 'a', kind: 'categorical', values: ['x, y', 'z'] },
      { name: 'b', kind: 'categorical', values: ['say "hi"', null] },
    ]);
  });

  it('in a one-column file a blank line is a missing cell (the last line break is not a row)', () => {
    const [x] = csvColumns('x\n1\n\n2\n\n3\n', 'one.csv');
    expect(numbers(x)).toEqual([1, Number.NaN, 2, Number.NaN, 3]);
    expect(numbers(csvColumns('x\r\n1\r\n\r\n2', 'one.csv')[0])).toEqual([1, Number.NaN, 2]);
    expect(csvColumns('city\nParis\n\nRome\n', 'one.csv')[0]!.values).toEqual(['Paris', null, 'Rome']);
    // A quoted empty cell is a row too, even the last.
    expect(numbers(csvColumns('x\n1\n""\n', 'one.csv')[0])).toEqual([1, Number.NaN]);
    // With two columns or more a blank line is still skipped.
    expect(numbers(csvColumns('x,y\n1,2\n\n3,4\n', 'two.csv')[0])).toEqual([1, 3]);
  });

  it('in a one-column file the blank lines at the end are not rows (LF or CRLF, any number)', () => {
    expect(numbers(csvColumns('a\n1\n2\n\n\n', 'one.csv')[0])).toEqual([1, 2]);
    expect(numbers(csvColumns('a\r\n1\r\n2\r\n\r\n', 'one.csv')[0])).toEqual([1, 2]);
    expect(numbers(csvColumns('a\n1\n\n2\n\r\n\n', 'one.csv')[0])).toEqual([1, Number.NaN, 2]);
    expect(csvColumns('city\nParis\n\n\n', 'one.csv')[0]!.values).toEqual(['Paris']);
    // A header and blank lines only: no data rows (the empty-table error), not a column of missing cells.
    for (const text of ['a\n\n', 'a\r\n\r\n\r\n', 'a\n\n\n\n']) {
      expect(csvColumns(text, 'one.csv')[0]!.values).toHaveLength(0);
    }
  });

  it('reads a one-column file (no delimiter anywhere)', () => {
    expect(csvColumns('x\n1\n2.5\n-3\n', 'one.csv')).toEqual([
      { name: 'x', kind: 'numeric', values: Float64Array.from([1, 2.5, -3]), integerText: false },
    ]);
    expect(csvColumns('city\nParis\nRome', 'one.csv')).toEqual([
      { name: 'city', kind: 'categorical', values: ['Paris', 'Rome'] },
    ]);
  });

  it('keeps line breaks and delimiters inside quoted fields, and counts lines across them', () => {
    const cols = csvColumns('note,n\n"two\nlines",1\n"a,b\r\nc",2\n', 't.csv');
    expect(cols[0]!.values).toEqual(['two\nlines', 'a,b\r\nc']);
    expect(numbers(cols[1])).toEqual([1, 2]);
    // The ragged row is on line 6: the quoted fields above span two lines each.
    expect(() => csvColumns('note,n\n"two\nlines",1\n"a,b\r\nc",2\n3\n', 't.csv')).toThrow(
      /^t\.csv: line 6 has 1 field/,
    );
  });

  it('skips a UTF-8 BOM and reads UTF-8 text', () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('name,x\ngrün,1\n東京,2\n')]);
    const cols = csvColumns(bytes, 'bom.csv');
    expect(cols.map((c) => c.name)).toEqual(['name', 'x']);
    expect(cols[0]!.values).toEqual(['grün', '東京']);
  });

  it('takes a delimiter: tab, semicolon (decimal commas then stay text)', () => {
    expect(csvColumns('a\tb\n1\t"x\ty"\n', 't.tsv', { delimiter: '\t' })[1]!.values).toEqual(['x\ty']);
    expect(numbers(csvColumns('a\tb\n1\t2\n', 't.tsv', { delimiter: 'tab' })[1])).toEqual([2]);
    const cols = csvColumns('a;b\n1,5;x\n2,5;y\n', 't.csv', { delimiter: ';' });
    expect(cols[0]).toEqual({ name: 'a', kind: 'categorical', values: ['1,5', '2,5'] });
  });

  it('refuses a delimiter that is not one ASCII character, naming the option', () => {
    for (const d of ['', ';;', '"', '\n', '→']) {
      const e = error(() => csvColumns('a\n1\n', 't.csv', { delimiter: d }));
      expect(e).toBeInstanceOf(ConfigError);
      expect(e.message).toMatch(/^--delimiter: must be one ASCII character .* — e\.g\. --delimiter ';'/);
    }
  });

  it('types a column numeric when every present cell is a number; NA spellings and blanks are missing', () => {
    const cols = csvColumns(['x,c,n', '1.5,red,1', 'NA,null,None', ' ,  ,', '-2e3,blue,x'].join('\n'), 't.csv');
    expect(cols.map((c) => c.kind)).toEqual(['numeric', 'categorical', 'categorical']);
    expect(numbers(cols[0])).toEqual([1.5, Number.NaN, Number.NaN, -2000]);
    expect(cols[1]!.values).toEqual(['red', null, null, 'blue']);
    expect(cols[2]!.values).toEqual(['1', null, null, 'x']);
  });

  it('parses decimal numbers exactly as Number() does (fast path and fallback); 0x1f is text, as in pandas', () => {
    const cells = [
      '0',
      '-0',
      '+7',
      '.5',
      '5.',
      '1e3',
      '1E-3',
      '-2.5e+2',
      '0.1',
      '123456789012345',
      '1234567890123456789',
      '0.30000000000000004',
      '1e-400',
      '4.9e-324',
      '1.7976931348623157e308',
      ' 42 ',
      '007',
      '00.25',
    ];
    const [x] = csvColumns(`x\n${cells.join('\n')}\n`, 't.csv');
    expect(x!.kind).toBe('numeric');
    expect(numbers(x)).toEqual(cells.map(Number));
    expect(Object.is(numbers(x)[1], -0)).toBe(true);
    expect(csvColumns(`x\n${cells.join('\n')}\n0x1f\n`, 't.csv')[0]!.kind).toBe('categorical');
  });

  it('a zero is a number, a blank cell is not; Infinity is a number, as pandas reads it', () => {
    const [x] = csvColumns('x\n0\n \n0.0\n', 't.csv');
    expect(numbers(x)).toEqual([0, Number.NaN, 0]);
    expect(numbers(csvColumns('x\n1\nInfinity\n', 't.csv')[0])).toEqual([1, Number.POSITIVE_INFINITY]);
  });

  describe('NA and infinity spellings, as pandas read_csv reads them (fixtures/make-na-values.py; found by a review)', () => {
    const fixture = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'na-values.json'), 'utf8')) as {
      cases: { cell: string; numeric: boolean; value: string }[];
    };
    const expected = (v: string) =>
      v === 'nan' ? Number.NaN : v === 'inf' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    for (const c of fixture.cases) {
      it(`${JSON.stringify(c.cell)}: ${c.numeric ? c.value : 'text'}`, () => {
        const quoted = c.cell.trim() === c.cell ? c.cell : `"${c.cell}"`;
        // Late in a long column (the fast path's flip) and alone after a number (the general path).
        for (const text of [`x\n${'1.5\n'.repeat(2000)}${quoted}\n`, `x\n1.5\n${quoted}\n`]) {
          const [x] = csvColumns(text, 't.csv');
          expect(x!.kind).toBe(c.numeric ? 'numeric' : 'categorical');
          if (c.numeric) expect(numbers(x).at(-1)).toBe(expected(c.value));
          else expect((x!.values as ReadonlyArray<string | null>).at(-1)).toBe(c.value);
        }
        // Typed readers' text forced numeric reads them the same way.
        const forced = applyTableOptions(
          [{ name: 'x', kind: 'categorical', values: ['1.5', c.cell] }],
          { numeric: c.numeric ? ['x'] : [] },
          't',
        );
        if (c.numeric) expect(numbers(forced[0]).at(-1)).toBe(expected(c.value));
      });
    }
  });

  it('a column that turns out to be text late keeps every earlier cell as written', () => {
    const rows = Array.from({ length: 3000 }, (_, i) => `${i % 7 === 0 ? '' : `0${i}.50`},"${i}"`);
    const cols = csvColumns(`code,q\n${rows.join('\n')}\nA1,"x"\n`, 't.csv');
    expect(cols[0]!.kind).toBe('categorical');
    const values = cols[0]!.values as ReadonlyArray<string | null>;
    expect(values.slice(0, 3)).toEqual([null, '01.50', '02.50']);
    expect(values.at(-1)).toBe('A1');
    expect(values).toHaveLength(3001);
    expect(cols[1]!.kind).toBe('categorical');
    expect(cols[1]!.values.slice(0, 2)).toEqual(['0', '1']);
  });

  it('empty lines are skipped; a quoted empty field is a missing cell', () => {
    const cols = csvColumns('a,b\n1,2\n\n\r\n3,""\n', 't.csv');
    expect(numbers(cols[0])).toEqual([1, 3]);
    expect(numbers(cols[1])).toEqual([2, Number.NaN]);
  });

  it('old Mac line ends (CR) end rows too', () => {
    expect(numbers(csvColumns('a,b\r1,2\r3,4\r', 't.csv')[1])).toEqual([2, 4]);
  });

  it('says whether every number was written as an integer (what makes pandas read int64)', () => {
    const [ints, floats, quoted, big, exp] = csvColumns(
      'i,f,q,b,e\n1,1.0,"2",12345678901234567890,1e3\n-2,2.0,"3",1,2\n+3,3.5," 4 ",2,3\n',
      't.csv',
    );
    expect([ints, floats, quoted, big, exp].map((c) => c?.kind === 'numeric' && c.integerText)).toEqual([
      true,
      false,
      true,
      true,
      false,
    ]);
  });

  it('a header with no data rows gives empty columns', () => {
    expect(csvColumns('a,b\n', 't.csv')).toEqual([
      { name: 'a', kind: 'numeric', values: new Float64Array(0), integerText: true },
      { name: 'b', kind: 'numeric', values: new Float64Array(0), integerText: true },
    ]);
  });

  describe('errors name the file and the line or the column', () => {
    it('an empty file', () => {
      for (const text of ['', '\n\n', '\ufeff']) {
        expect(() => csvColumns(text, 'data/empty.csv')).toThrow(
          new DriftlineError('BAD_REQUEST', 'data/empty.csv: empty file — expected a header row and data rows'),
        );
      }
    });

    it('a ragged row, short or long', () => {
      expect(error(() => csvColumns('a,b\n1,2\n3\n', 'r.csv')).message).toBe(
        'r.csv: line 3 has 1 field, the header has 2 — every row needs one field per column; quote fields that contain "," or pass --delimiter',
      );
      expect(error(() => csvColumns('a,b\n1,2,3\n', 'r.csv')).message).toMatch(
        /^r\.csv: line 2 has 3 fields, the header has 2 — /,
      );
    });

    it('an empty header name', () => {
      expect(error(() => csvColumns('a,,c\n1,2,3\n', 'h.csv')).message).toBe(
        'h.csv: line 1: column 2 of the header has no name — name every column in the header row',
      );
    });

    it('a duplicate header name', () => {
      expect(error(() => csvColumns('a,b,a\n1,2,3\n', 'h.csv')).message).toBe(
        'h.csv: line 1: duplicate column name "a" (columns 1 and 3) — rename one of them',
      );
    });

    it('a quoted field never closed', () => {
      expect(error(() => csvColumns('a,b\n1,2\n"x,1\n', 'q.csv')).message).toBe(
        `q.csv: line 3: a quoted field is never closed — close it with '"' and write a quote inside a field as '""'`,
      );
    });

    it('text after a closing quote', () => {
      expect(error(() => csvColumns('a\n"x"y\n', 'q.csv')).message).toMatch(
        /^q\.csv: line 2: unexpected "y" after a closing quote — /,
      );
    });

    it('every error is a BAD_REQUEST', () => {
      expect(error(() => csvColumns('a,b\n1\n', 'r.csv')).code).toBe('BAD_REQUEST');
    });
  });

  describe('options', () => {
    const text = 'id,x,zip,score\n1,0.5,02139,0.9\n2,1.5,10001,NA\n3,2.5,94103,0.1\n';

    it('--columns keeps only the named columns, in file order', () => {
      expect(csvColumns(text, 't.csv', { columns: ['score', 'x'] }).map((c) => c.name)).toEqual(['x', 'score']);
    });

    it('--ignore leaves columns out (unknown names are fine: the other table may have them)', () => {
      expect(csvColumns(text, 't.csv', { ignore: ['id', 'other'] }).map((c) => c.name)).toEqual(['x', 'zip', 'score']);
    });

    it('--categorical: every cell is a category exactly as written, numbers too', () => {
      const cells = ['1.1', '1.10', '2', '2.0', '0x1F', '31', '0b101', '5', '1e3', '1000', ' 7 ', '007'];
      const big = ['12345678901234567890', '12345678901234567891'];
      const [column] = csvColumns(`v\n${[...cells, ...big].join('\n')}\n`, 'c.csv', { categorical: ['v'] });
      expect(column!.values).toEqual([...cells, ...big]);
    });

    it('--categorical on typed numbers: the text pandas writes to a CSV for them', () => {
      const [floats, ints] = applyTableOptions(
        [
          { name: 'f', kind: 'numeric', values: Float64Array.from([1, 2.5, 1e16, 1e-5, -0, Number.NaN]) },
          { name: 'i', kind: 'numeric', values: Float64Array.from([1, 1e21, Number.NaN]), integerText: true },
        ],
        { categorical: ['f', 'i'] },
        'c.arrow',
      );
      expect(floats!.values).toEqual(['1.0', '2.5', '1e+16', '1e-05', '-0.0', null]);
      expect(ints!.values).toEqual(['1', '1000000000000000000000', null]);
      // Text of a typed reader is kept as it is, as a CSV's cells are.
      const [text] = applyTableOptions(
        [{ name: 's', kind: 'categorical', values: ['1.0', null, '007', '0x1F'] }],
        { categorical: ['s'] },
        'c.parquet',
      );
      expect(text!.values).toEqual(['1.0', null, '007', '0x1F']);
    });

    it('an error line cuts a long header name', () => {
      const long = 'h'.repeat(200_000);
      const message = error(() => csvColumns(`${long},${long}\n1,2\n`, 'd.csv')).message;
      expect(message.length).toBeLessThan(300);
      expect(message).toBe(
        `d.csv: line 1: duplicate column name "${'h'.repeat(80)}…" (columns 1 and 2) — rename one of them`,
      );
    });

    it('--categorical keeps numbers as written', () => {
      const zip = csvColumns(text, 't.csv', { categorical: ['zip'] })[2]!;
      expect(zip).toEqual({ name: 'zip', kind: 'categorical', values: ['02139', '10001', '94103'] });
    });

    it('--numeric: missing spellings are fine; text is an error naming the first bad line', () => {
      expect(numbers(csvColumns(text, 't.csv', { numeric: ['score'] })[3])).toEqual([0.9, Number.NaN, 0.1]);
      expect(error(() => csvColumns('a,b\n1,x\n2,oops\n', 'n.csv', { numeric: ['b'] })).message).toBe(
        'n.csv: line 2: column "b" is forced numeric but holds "x" — fix the value or drop the column from --numeric',
      );
    });

    it('a name the file lacks is an error naming the file and the option', () => {
      expect(error(() => csvColumns(text, 't.csv', { columns: ['x', 'nope'] })).message).toBe(
        't.csv: no column "nope" (given to --columns) — the columns are "id", "x", "zip", "score"',
      );
      expect(error(() => csvColumns(text, 't.csv', { numeric: ['nope'] })).message).toMatch(/given to --numeric/);
    });

    it('a column both categorical and numeric is an error', () => {
      expect(error(() => csvColumns(text, 't.csv', { categorical: ['x'], numeric: ['x'] })).message).toMatch(
        /^column "x" is given to both --categorical and --numeric/,
      );
    });
  });
});

describe('a text column of more rows than MAX_TEXT_ROWS (found by a review)', () => {
  // 140M rows of `a`/`b` killed Node (V8: "Fatal JavaScript invalid size error", exit 133). The bound
  // is 100,000,000 (MAX_TEXT_ROWS); a lower one here, so the file is small.
  const rows = (n: number, cell: (r: number) => string) => Array.from({ length: n }, (_, r) => cell(r)).join('\n');

  it('refuses it in one line naming the file and column, one row over the bound', () => {
    const text = `x,c\n${rows(4, (r) => `${r},${r % 2 === 0 ? 'a' : 'b'}`)}\n`;
    expect(csvColumns(text, 'f.csv', { maxTextRows: 4 }).map((c) => c.kind)).toEqual(['numeric', 'categorical']);
    const e = error(() => csvColumns(text, 'f.csv', { maxTextRows: 3 }));
    expect(e).toBeInstanceOf(DriftlineError);
    expect(e.code).toBe('BAD_REQUEST');
    expect(e.message).toBe('f.csv: more than 3 rows in text column "c" — sample it');
    // Numbers have no such bound; a column that turns to text past the bound, or forced categorical, has.
    expect(csvColumns(text, 'f.csv', { maxTextRows: 3, columns: ['x'] })[0]!.values).toHaveLength(4);
    expect(error(() => csvColumns(text, 'f.csv', { maxTextRows: 3, categorical: ['x'] })).message).toBe(
      'f.csv: more than 3 rows in text column "x" — sample it',
    );
    const late = `x\n${rows(4, (r) => (r === 3 ? 'z' : String(r)))}\n`;
    expect(error(() => csvColumns(late, 'f.csv', { maxTextRows: 3 })).message).toBe(
      'f.csv: more than 3 rows in text column "x" — sample it',
    );
    expect(csvColumns(late, 'f.csv', { maxTextRows: 4 })[0]!.kind).toBe('categorical');
  });

  it('applyTableOptions refuses a long number column forced categorical', () => {
    const columns: Column[] = [{ name: 't', kind: 'numeric', values: new Float64Array(4) }];
    expect(error(() => applyTableOptions(columns, { categorical: ['t'], maxTextRows: 3 }, 'f.parquet')).message).toBe(
      'f.parquet: more than 3 rows in text column "t" — sample it',
    );
  });

  it('the default bound is 100,000,000', () => {
    expect(MAX_TEXT_ROWS).toBe(100_000_000);
  });
});

describe('csvColumns refuses bytes that are not UTF-8 (they merged or split categories silently)', () => {
  it('names the line of the first bad byte, and a UTF-16 file as such', () => {
    const latin1 = Buffer.concat([Buffer.from('city\nparis\ncaf'), Buffer.from([0xe9]), Buffer.from('\n')]);
    expect(() => csvColumns(latin1, 'm1.csv')).toThrow(
      new DriftlineError(
        'BAD_REQUEST',
        'm1.csv: line 3: bytes that are not UTF-8 (byte 14) — convert the file, e.g. iconv -f latin1 -t UTF-8',
      ),
    );
    const utf16 = Buffer.from('\ufeffa\n1\n', 'utf16le');
    expect(() => csvColumns(utf16, 'u.csv')).toThrow(/u\.csv: a UTF-16 file — convert it to UTF-8/);
    // Valid multi-byte text is read as it is.
    const [city] = csvColumns(Buffer.from('city\ncafé\ncafè\n'), 'ok.csv');
    expect(city).toMatchObject({ kind: 'categorical', values: ['café', 'cafè'] });
  });
});

describe('applyTableOptions (Arrow and Parquet columns)', () => {
  const columns: Column[] = [
    { name: 'n', kind: 'numeric', values: Float64Array.from([1, Number.NaN, 3]), integerText: true },
    { name: 's', kind: 'categorical', values: ['1.5', null, 'x'] },
    { name: 't', kind: 'categorical', values: ['2', 'NA', '4'] },
  ];

  it('selects, and forces types both ways', () => {
    expect(applyTableOptions(columns, { ignore: ['s'], categorical: ['n'], numeric: ['t'] }, 'f.parquet')).toEqual([
      { name: 'n', kind: 'categorical', values: ['1', null, '3'] },
      { name: 't', kind: 'numeric', values: Float64Array.from([2, Number.NaN, 4]) },
    ]);
  });

  it('a forced-numeric text value is an error naming its row', () => {
    expect(error(() => applyTableOptions(columns, { numeric: ['s'] }, 'f.parquet')).message).toBe(
      'f.parquet: row 3: column "s" is forced numeric but holds "x" — fix the value or drop the column from --numeric',
    );
  });

  it('duplicate names are an error', () => {
    expect(error(() => applyTableOptions([columns[0]!, columns[0]!], {}, 'f.arrow')).message).toMatch(
      /^f\.arrow: duplicate column name "n"/,
    );
  });
});

describe('boolean columns (found by a regression review of da5dfd1)', () => {
  const csv = 'flag,n\nTrue,1\nFALSE,2\ntrue,3\n,4\nfalse,5\n';
  // Profiles stored before da5dfd1 (trainer, Arrow/Parquet, live-built) hold String(v): one key for all.
  const stored = (v: boolean | null) => (v === null ? null : String(v));
  const live = (v: boolean | null) => (v === null ? null : categoricalValue(v));

  it('a column of pandas bool spellings reads as the keys live events, the trainer and stored profiles use', () => {
    expect([live(true), live(false)]).toEqual([stored(true), stored(false)]);
    const [flag] = csvColumns(csv, 'b.csv');
    expect(flag).toEqual({ name: 'flag', kind: 'categorical', values: [true, false, true, null, false].map(stored) });
    expect(typeColumns(['flag'], [['True'], ['FALSE'], ['true'], [''], ['false']])[0]!.values).toEqual(
      [true, false, true, null, false].map(live),
    );
    const profile = profilesFromCsv(csv).get('flag');
    expect(profile?.kind === 'categorical' && [...profile.categories].sort()).toEqual([live(false), live(true)].sort());
  });

  it('a column forced --categorical keeps its cells as written; live booleans follow the profile spelling', () => {
    const pandas = 'flag\nTrue\nFalse\nTrue\n';
    const [flag] = csvColumns(pandas, 'b.csv', { categorical: ['flag'] });
    expect(flag!.values).toEqual(['True', 'False', 'True']);
    const profile = profilesFromColumns([flag!]).get('flag') as CategoricalReferenceProfile;
    const booleans = booleanSpellingOf(profile);
    expect([categoricalValue(true, booleans), categoricalValue(false, booleans)]).toEqual(['True', 'False']);
  });
});
