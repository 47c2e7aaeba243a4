import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import {
  type Column,
  floatColumnsAtWidth,
  profilesFromColumns,
  tableDrift,
  timeColumnsAsNumbers,
} from '@driftline/batch-drift';
import { DriftlineError } from '@driftline/core';
import { categoricalValue } from '@driftline/drift';
import type { ReferenceProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { MAX_TABLE_BYTES, readBytes, readTable, readTableAndHeader } from '../src/tables.js';

// Fixtures written by pyarrow (fixtures/make-tables.py): one table as CSV, Parquet and Arrow IPC.
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'driftline-tables-'));
/** How every profile stored before da5dfd1 keyed a boolean. */
const storedKey = (v: boolean | null) => (v === null ? null : String(v));
const plain = (columns: Column[]) =>
  columns.map((c) => ({ name: c.name, kind: c.kind, values: Array.from(c.values as ArrayLike<unknown>) }));

describe('readTable', () => {
  const expected = plain([
    { name: 'x', kind: 'numeric', values: Float64Array.from([1.5, Number.NaN, -2, 4.25, 0, 7]) },
    { name: 'n', kind: 'numeric', values: Float64Array.from([1, 2, Number.NaN, 4, 5, 6]) },
    { name: 'small', kind: 'numeric', values: Float64Array.from([1, 2, 3, 1, 2, 3]) },
    { name: 'color', kind: 'categorical', values: ['red', 'blue', null, 'red', 'grün', 'blue'] },
    // pandas reads a CSV column of true/false as bool; bools have one key in every format: the
    // `true` / `false` of stored profiles (String(v)) and live events.
    { name: 'flag', kind: 'categorical', values: [true, false, true, null, false, true].map(storedKey) },
    { name: 'code', kind: 'categorical', values: ['01', '02', '03', '01', 'x', '02'] },
  ]);

  it.each([
    'table.csv',
    'table-snappy.parquet',
    'table-zstd.parquet',
    'table-gzip.parquet',
    'table-none.parquet',
    'table.arrow',
    'table.arrows',
  ])('%s gives the same columns as the CSV', async (name) => {
    expect(plain(await readTable(fixture(name)))).toEqual(expected);
  });

  it('bytes, times of day and durations: Arrow, Parquet and CSV read the same (kinds.*; found by a review)', async () => {
    // Arrow's bytes were their byte values (b"red" the category "114,101,100"), its times and
    // durations text; Parquet's times were integers in their unit (µs against ms).
    const csv = plain(await readTable(fixture('kinds.csv')));
    expect(csv.map((c) => [c.name, c.kind])).toEqual([
      ['blob', 'categorical'],
      ['large_blob', 'categorical'],
      ['pair', 'categorical'],
      ...['t_s', 't_ms', 't_us', 't_ns', 'wait_s', 'wait_ns'].map((n) => [n, 'numeric']),
    ]);
    expect(csv.find((c) => c.name === 't_us')!.values).toEqual([3723004.005, Number.NaN, 45296789.123, 0.001]);
    expect(plain(await readTable(fixture('kinds.arrow')))).toEqual(csv);
    expect(plain(await readTable(fixture('kinds.parquet')))).toEqual(csv);
    // Forced categorical: the same text from every format.
    const options = { columns: ['t_ns', 'wait_s', 'wait_ns'], categorical: ['t_ns', 'wait_s', 'wait_ns'] };
    const text = await readTable(fixture('kinds.csv'), options);
    expect(text.map((c) => c.values)).toEqual([
      ['3723004.005', null, '45296789.123', '0.001'],
      ['5', null, '-1', '86400'],
      ['5001002003', '7', null, '-1'],
    ]);
    expect(await readTable(fixture('kinds.arrow'), options)).toEqual(text);
    expect(await readTable(fixture('kinds.parquet'), options)).toEqual(text);
  });

  it('bytes that are not UTF-8 are refused alike from Arrow and Parquet, naming the row and column', async () => {
    for (const name of ['not-utf8.arrow', 'not-utf8.parquet']) {
      await expect(readTable(fixture(name))).rejects.toThrow(
        new DriftlineError(
          'BAD_REQUEST',
          `${fixture(name)}: row 2: column "blob" holds bytes that are not UTF-8 text — write it as UTF-8 text, or leave it out with --ignore blob`,
        ),
      );
      expect((await readTable(fixture(name), { ignore: ['blob'] })).map((c) => c.name)).toEqual(['x']);
    }
  });

  it('gunzips by magic bytes, with or without .gz', async () => {
    for (const name of ['t.csv.gz', 't.csv', 't.parquet.gz']) {
      const source = name.includes('parquet') ? 'table-snappy.parquet' : 'table.csv';
      const path = join(dir, name);
      writeFileSync(path, gzipSync(readFileSync(fixture(source))));
      expect(plain(await readTable(path))).toEqual(expected);
    }
  });

  it('a .tsv is tab-separated unless --delimiter says otherwise', async () => {
    const path = join(dir, 't.tsv');
    writeFileSync(path, 'a\tb\n1\t2\n');
    expect((await readTable(path)).map((c) => c.name)).toEqual(['a', 'b']);
  });

  it('selects and forces types on Parquet columns as on CSV ones', async () => {
    const options = { ignore: ['x', 'n', 'flag', 'color'], categorical: ['small'], numeric: ['code'] };
    await expect(readTable(fixture('table-snappy.parquet'), options)).rejects.toThrow(
      'table-snappy.parquet: row 5: column "code" is forced numeric but holds "x"',
    );
    const [small] = await readTable(fixture('table.arrow'), { columns: ['small'], categorical: ['small'] });
    expect(small).toEqual({ name: 'small', kind: 'categorical', values: ['1', '2', '3', '1', '2', '3'] });
  });

  it('a compressed Arrow file is a clear error that says how to write one', async () => {
    await expect(readTable(fixture('table-lz4.arrow'))).rejects.toThrow(
      /table-lz4\.arrow: not a readable Arrow IPC file \(.*\) — write it uncompressed/,
    );
  });

  it('file errors are BAD_REQUEST naming the path', async () => {
    await expect(readTable(join(dir, 'missing.csv'))).rejects.toThrow(
      new DriftlineError('BAD_REQUEST', `${join(dir, 'missing.csv')}: no such file — check the path`),
    );
    await expect(readTable(dir)).rejects.toThrow(`${dir}: is a directory — check the path`);
    const truncated = join(dir, 'cut.csv.gz');
    writeFileSync(truncated, gzipSync(Buffer.from('a,b\n1,2\n'.repeat(100))).subarray(0, 20));
    await expect(readTable(truncated)).rejects.toThrow(
      /cut\.csv\.gz: not a readable gzip file .* — check the file is complete/,
    );
  });
});

describe('readBytes bounds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-bounds-'));

  it('refuses what is not a regular file before reading it (/dev/zero never ends)', async () => {
    await expect(readTable('/dev/zero')).rejects.toThrow(
      new DriftlineError('BAD_REQUEST', '/dev/zero: is not a regular file (a device, pipe or socket) — name a file'),
    );
  });

  it('refuses a file, or a gzip file unzipped, over the limit (2 GiB, as readFileSync)', () => {
    expect(MAX_TABLE_BYTES).toBe(2 ** 31 - 1);
    const plainFile = join(dir, 'big.csv');
    writeFileSync(plainFile, 'a\n'.repeat(600));
    expect(() => readBytes(plainFile, 1000)).toThrow(
      `${plainFile}: is 1200 bytes, over the 1000 bytes a table may have — split it or sample it`,
    );
    const bomb = join(dir, 'bomb.csv.gz');
    writeFileSync(bomb, gzipSync(Buffer.alloc(1_000_000, 0x30)));
    expect(() => readBytes(bomb, 100_000)).toThrow(
      `${bomb}: unzips to more than the 100000 bytes a table may have — split it or sample it`,
    );
    expect(readBytes(bomb, 1_000_000)).toHaveLength(1_000_000);
    expect(readBytes(plainFile, 1200)).toHaveLength(1200);
  });
});

describe('Arrow numeric types that are not plain typed arrays', () => {
  it('decodes Float16 (not its raw bits) and Decimal (scaled, not the unscaled integer)', async () => {
    const A = await import('apache-arrow');
    // Float16 bits of 0.5, 1, -2 and a null; decimal(10, 2) of 0.25, -0.25, 123.45 and a null.
    const half = A.makeVector(
      A.makeData({
        type: new A.Float16(),
        length: 4,
        nullCount: 1,
        nullBitmap: Uint8Array.of(0b0111),
        data: Uint16Array.of(0x3800, 0x3c00, 0xc000, 0),
      }),
    );
    const words = (n: bigint) => {
      const x = BigInt.asUintN(128, n);
      return [0n, 32n, 64n, 96n].map((s) => Number((x >> s) & 0xffffffffn));
    };
    const decimal = A.makeVector(
      A.makeData({
        type: new A.Decimal(2, 10, 128),
        length: 4,
        nullCount: 1,
        nullBitmap: Uint8Array.of(0b0111),
        data: Uint32Array.from([25n, -25n, 12345n, 0n].flatMap(words)),
      }),
    );
    const whole = A.makeVector(
      A.makeData({
        type: new A.Decimal(0, 10, 128),
        length: 4,
        data: Uint32Array.from([7n, -3n, 0n, 1n].flatMap(words)),
      }),
    );
    const path = join(dir, 'half-decimal.arrow');
    writeFileSync(path, A.tableToIPC(new A.Table({ half, decimal, whole }), 'file'));
    expect(await readTable(path)).toEqual([
      {
        name: 'half',
        kind: 'numeric',
        values: Float64Array.of(0.5, 1, -2, Number.NaN),
        integerText: false,
        float: 16,
      },
      {
        name: 'decimal',
        kind: 'numeric',
        values: Float64Array.of(0.25, -0.25, 123.45, Number.NaN),
        integerText: false,
      },
      { name: 'whole', kind: 'numeric', values: Float64Array.of(7, -3, 0, 1), integerText: true },
    ]);
  });

  it('refuses a nested column (struct, list) naming it and the file, unless it is left out', async () => {
    for (const name of ['nested.parquet', 'nested.arrow']) {
      await expect(readTable(fixture(name))).rejects.toThrow(
        new RegExp(
          `${name.replace('.', '\\.')}: column "s" is nested \\(struct\\); only flat columns are compared — leave it out with --ignore s`,
        ),
      );
      expect((await readTable(fixture(name), { ignore: ['s', 'l'] })).map((c) => c.name)).toEqual(['x']);
      expect((await readTable(fixture(name), { columns: ['x'] })).map((c) => c.name)).toEqual(['x']);
    }
  });

  it('reads timestamps and dates of Parquet and Arrow as the same epoch milliseconds (microseconds kept)', async () => {
    const parquet = plain(await readTable(fixture('times.parquet')));
    const arrow = plain(await readTable(fixture('times.arrow')));
    expect(arrow).toEqual(parquet);
    expect(parquet.map((c) => c.kind)).toEqual(['numeric', 'numeric', 'numeric', 'numeric']);
    const [ms, us, ns, day] = parquet.map((c) => c.values as number[]);
    expect(us![0]).toBe(Date.UTC(2024, 11, 5, 6, 26, 40) + 0.123);
    expect(ns).toEqual(us);
    expect(ms).toEqual(us!.map((v) => (Number.isNaN(v) ? v : Math.floor(v))));
    expect(day![0]).toBe(Date.UTC(2024, 11, 4));
  });

  it('--categorical reads typed numbers as the text pandas writes to a CSV for them (int64, float32, float64)', async () => {
    // categories.csv is what pandas' to_csv wrote for the table of categories.arrow/.parquet.
    const options = { categorical: ['f64', 'f32', 'i64'] };
    const fromCsv = await readTable(fixture('categories.csv'), options);
    expect(fromCsv.map((c) => c.kind)).toEqual(['categorical', 'categorical', 'categorical']);
    expect(await readTable(fixture('categories.arrow'), options)).toEqual(fromCsv);
    expect(await readTable(fixture('categories.parquet'), options)).toEqual(fromCsv);
  });

  it('a bool column gives one key as CSV, Arrow and Parquet and from live events (found by reviews)', async () => {
    // booleans.* and booleans.json were written by fixtures/make-booleans.py (pandas to_csv, pyarrow).
    const want = JSON.parse(readFileSync(fixture('booleans.json'), 'utf8')) as { values: (string | null)[] };
    // pandas' str() of each bool (`True`), as the one key live events and stored profiles use.
    const values = want.values.map((v) => (v === null ? null : storedKey(v === 'True')));
    expect(values.filter((v) => v !== null).map((v) => v === categoricalValue(true))).toEqual(
      want.values.filter((v) => v !== null).map((v) => v === 'True'),
    );
    const expected = [{ name: 'flag', kind: 'categorical', values }];
    for (const name of ['booleans.csv', 'booleans.arrow', 'booleans.parquet']) {
      expect(plain(await readTable(fixture(name))), name).toEqual(expected);
    }
    // The reference profile of the Parquet table (`driftline reference`) has the categories live events get.
    const profile = profilesFromColumns(await readTable(fixture('booleans.parquet'))).get('flag')!;
    expect(profile.kind).toBe('categorical');
    if (profile.kind === 'categorical') {
      expect([...profile.categories].sort()).toEqual([categoricalValue(false), categoricalValue(true)].sort());
    }
  });

  it('a Parquet decimal stored as INT64 is a fraction, not an integer column (also under --categorical)', async () => {
    const [price] = await readTable(fixture('decimal-int.parquet'));
    expect(price).toEqual({
      name: 'price',
      kind: 'numeric',
      values: Float64Array.of(1.5, -0.25, Number.NaN),
      integerText: false,
    });
    const [asText] = await readTable(fixture('decimal-int.parquet'), { categorical: ['price'] });
    expect(asText).toEqual({ name: 'price', kind: 'categorical', values: ['1.5', '-0.25', null] });
  });

  it('--categorical keeps a CSV cell as written: 1.10 is not 1.1, 2.0 is not 2', async () => {
    const csv = join(dir, 'codes.csv');
    writeFileSync(csv, 'v\n1.10\n1.1\n2.0\n2\n0x1F\n1e3\n12345678901234567890\n12345678901234567891\n');
    const [column] = await readTable(csv, { categorical: ['v'] });
    expect(column).toEqual({
      name: 'v',
      kind: 'categorical',
      values: ['1.10', '1.1', '2.0', '2', '0x1F', '1e3', '12345678901234567890', '12345678901234567891'],
    });
  });

  it('an empty or non-Arrow .arrow file is refused naming it', async () => {
    for (const [name, bytes] of [
      ['empty.arrow', Buffer.alloc(0)],
      ['text.feather', Buffer.from('a,b\n1,2\n')],
    ] as const) {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      await expect(readTable(path)).rejects.toThrow(
        new RegExp(`^${path.replaceAll('.', '\\.')}: (holds no Arrow table|not a readable Arrow IPC file)`),
      );
    }
  });

  it('a .csv is CSV even when its header starts with PAR1 or ARROW1 (the name decides)', async () => {
    for (const head of ['PAR1', 'ARROW1']) {
      const path = join(dir, `${head}.csv`);
      writeFileSync(path, `${head},x\n1,2\n`);
      expect((await readTable(path)).map((c) => c.name)).toEqual([head, 'x']);
    }
    // Without a table extension the content decides.
    const parquet = join(dir, 'table-without-extension');
    writeFileSync(parquet, readFileSync(fixture('table-snappy.parquet')));
    expect(await readTable(parquet)).toEqual(await readTable(fixture('table-snappy.parquet')));
  });
});

/** Profiles without their float width (`floatBits`, not in the id): what a CSV of the same data gives. */
function withoutWidth(profiles: Map<string, ReferenceProfile>): Map<string, ReferenceProfile> {
  const out = new Map<string, ReferenceProfile>();
  for (const [name, p] of profiles) {
    if (p.kind !== 'numeric') out.set(name, p);
    else {
      const { floatBits: _, ...rest } = p;
      out.set(name, rest);
    }
  }
  return out;
}

/** Each numeric profile's float width, by feature. */
function widths(profiles: Map<string, ReferenceProfile>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, p] of profiles) if (p.kind === 'numeric' && p.floatBits !== undefined) out[name] = p.floatBits;
  return out;
}

describe('typed tables against their CSV, damaged Arrow files (found by a review)', () => {
  const noDrift = (rows: ReturnType<typeof tableDrift>) =>
    rows.map((r) => ({ column: r.column, kind: r.kind, psi: r.psi, ks: r.ks_statistic, drifted: r.drifted }));

  it('float32 in Parquet and Arrow reads as the numbers of its CSV (19.99, not 19.9899997…): no drift', async () => {
    // float32.csv is what pandas' to_csv writes for the table (numpy's shortest digits).
    const csv = await readTable(fixture('float32.csv'));
    expect(csv.map((c) => c.kind)).toEqual(['numeric', 'numeric']);
    expect(Array.from(csv[0]!.values as Float64Array).filter((v) => v === 19.99).length).toBeGreaterThan(0);
    for (const name of ['float32.parquet', 'float32.arrow']) {
      const typed = await readTable(fixture(name));
      // The pair as the drift command compares it (HTML page included): the same numbers.
      const [typedAsPair, csvAsPair] = floatColumnsAtWidth(typed, csv);
      expect(plain(typedAsPair), name).toEqual(plain(csv));
      expect(plain(csvAsPair), name).toEqual(plain(csv));
      expect(noDrift(tableDrift(typed, csv, {})), name).toEqual([
        { column: 'price', kind: 'numeric', psi: 0, ks: 0, drifted: false },
        { column: 'score', kind: 'numeric', psi: 0, ks: 0, drifted: false },
      ]);
      // `driftline reference` reads through the same reader: the same profiles from either file,
      // the typed file's with its width (live values are read at it; a CSV does not say).
      const profiles = profilesFromColumns(typed);
      expect(withoutWidth(profiles), name).toEqual(profilesFromColumns(csv));
      expect(widths(profiles), name).toEqual({ price: 32, score: 32 });
    }
  });

  it('timestamps, dates and times of day (Parquet, Arrow) against their ISO-8601 text (CSV): no drift', async () => {
    // when.csv holds the text pandas' to_csv writes for the table of when.parquet/.arrow.
    const csv = await readTable(fixture('when.csv'));
    expect(csv.map((c) => c.kind)).toEqual(['categorical', 'categorical', 'categorical', 'categorical', 'categorical']);
    const same = ['ts', 'ts_tz', 'ts_ns', 'day', 'clock'].map((column) => ({
      column,
      kind: 'numeric',
      psi: 0,
      ks: 0,
      drifted: false,
    }));
    for (const name of ['when.parquet', 'when.arrow']) {
      const typed = await readTable(fixture(name));
      expect(noDrift(tableDrift(typed, csv, {})), name).toEqual(same);
      expect(noDrift(tableDrift(csv, typed, {})), name).toEqual(same);
      // The text read as the reader's very numbers (the drift command's columns, HTML page included).
      const [, asNumbers] = timeColumnsAsNumbers(typed, csv);
      expect(
        asNumbers.map((c) => plain([c])[0]!.values),
        name,
      ).toEqual(typed.map((c) => plain([c])[0]!.values));
    }
  });

  it('float32 data in every spelling pandas leaves it: no pair drifts (the float64 upcast drifted, PSI 4.8)', async () => {
    // spellings-f32.* float32 as Parquet, Arrow and pandas' CSV (0.1); spellings-f64.* the frame
    // astype(float) and its CSV (0.10000000149011612); spellings-mixed.parquet half of each.
    const names = [
      'spellings-f32.parquet',
      'spellings-f32.arrow',
      'spellings-f32.csv',
      'spellings-f64.parquet',
      'spellings-f64.arrow',
      'spellings-f64.csv',
      'spellings-mixed.parquet',
    ];
    const tables = await Promise.all(names.map((name) => readTable(fixture(name))));
    const same = ['rate', 'price', 'score'].map((column) => ({
      column,
      kind: 'numeric',
      psi: 0,
      ks: 0,
      drifted: false,
    }));
    const csv = plain(tables[2]!);
    for (const [i, reference] of tables.entries()) {
      for (const [j, current] of tables.entries()) {
        const pair = `${names[i]} against ${names[j]}`;
        // The drift command's columns (its HTML page too), and columnDrift on the columns as read.
        const [a, b] = floatColumnsAtWidth(reference, current);
        expect(noDrift(tableDrift(a, b, {})), pair).toEqual(same);
        expect(noDrift(tableDrift(reference, current, {})), pair).toEqual(same);
        // Every spelling is the number of pandas' CSV of the float32 table: its shortest digits.
        expect(plain(a), pair).toEqual(csv);
        expect(plain(b), pair).toEqual(csv);
      }
    }
    // `driftline reference`: a float32 table profiles its shortest digits, whichever spelling it
    // is in; a float64 table the doubles it holds (read at float32 digits, a pandas upcast no
    // longer matched the same doubles sent live: PSI 6.04 on identical data; a review).
    const float32 = profilesFromColumns(tables[2]!);
    for (const i of [0, 1, 2]) expect(withoutWidth(profilesFromColumns(tables[i]!)), names[i]).toEqual(float32);
    // The typed files' profiles carry the width; the CSV's cannot.
    for (const i of [0, 1]) {
      expect(widths(profilesFromColumns(tables[i]!)), names[i]).toEqual({ rate: 32, price: 32, score: 32 });
    }
    expect(widths(float32)).toEqual({});
    const float64 = profilesFromColumns(tables[5]!);
    for (const i of [3, 4, 5]) expect(profilesFromColumns(tables[i]!), names[i]).toEqual(float64);
    expect(float64).not.toEqual(float32);
  });

  it('a float16 column against its CSV and its float64 upcast: no drift, as the CSV’s digits', async () => {
    const typed = await Promise.all(['half.parquet', 'half.arrow'].map((name) => readTable(fixture(name))));
    const others = await Promise.all(['half.csv', 'half-f64.parquet'].map((name) => readTable(fixture(name))));
    const csv = plain(others[0]!);
    expect(csv[0]!.values).toContain(0.3);
    for (const half of typed) {
      for (const other of [...typed, ...others]) {
        for (const [a, b] of [floatColumnsAtWidth(half, other), floatColumnsAtWidth(other, half)]) {
          expect(plain(a)).toEqual(csv);
          expect(plain(b)).toEqual(csv);
        }
        expect(noDrift(tableDrift(half, other, {}))).toEqual([
          { column: 'half', kind: 'numeric', psi: 0, ks: 0, drifted: false },
        ]);
      }
      expect(withoutWidth(profilesFromColumns(half))).toEqual(profilesFromColumns(others[0]!));
      expect(widths(profilesFromColumns(half))).toEqual({ half: 16 });
    }
  });

  it('float32 (float16) against other float64 data is compared at its width, as scipy compares it cast', async () => {
    const expected = JSON.parse(readFileSync(fixture('spellings-scipy.json'), 'utf8')) as {
      ks_2samp: Record<string, { ks_statistic: number; ks_p_value: number }>;
    };
    const rows = [];
    for (const [reference, current] of [
      ['spellings-f32.parquet', 'spellings-shifted.parquet'],
      ['half.parquet', 'half-shifted.parquet'],
    ] as const) {
      const ref = await readTable(fixture(reference));
      const cur = await readTable(fixture(current));
      const drift = tableDrift(...floatColumnsAtWidth(ref, cur), {});
      expect(tableDrift(ref, cur, {})).toEqual(drift);
      rows.push(...drift);
    }
    for (const row of rows) {
      const scipy = expected.ks_2samp[row.column]!;
      expect(row.ks_statistic, row.column).toBeCloseTo(scipy.ks_statistic, 12);
      expect(Math.abs(row.ks_p_value! / scipy.ks_p_value - 1), row.column).toBeLessThan(1e-6);
    }
    expect(rows.map((r) => [r.column, r.drifted])).toEqual([
      ['rate', true],
      ['price', false],
      ['score', false],
      ['half', true],
    ]);
  });

  it('pandas’ CSV of zones whose historic offsets hold seconds (+05:21:10, +00:19:32) reads as its Parquet', async () => {
    // zones.csv is pandas' to_csv of the tz-aware columns of zones.parquet/.arrow (Asia/Kolkata 1875).
    const csv = await readTable(fixture('zones.csv'));
    expect(readFileSync(fixture('zones.csv'), 'utf8')).toContain('1875-01-01 15:36:09.000001+05:21:10');
    expect(readFileSync(fixture('zones.csv'), 'utf8')).toContain('+00:19:32');
    for (const name of ['zones.parquet', 'zones.arrow']) {
      const typed = await readTable(fixture(name));
      const [, asNumbers] = timeColumnsAsNumbers(typed, csv);
      expect(plain(asNumbers), name).toEqual(plain(typed));
      expect(
        tableDrift(typed, csv, { minRows: 1 }).map((r) => [r.column, r.ks_statistic, r.drifted]),
        name,
      ).toEqual([
        ['kolkata', 0, false],
        ['amsterdam', 0, false],
        ['utc', 0, false],
      ]);
    }
  });

  it('a time column against text that is not ISO-8601 is refused suggesting --ignore, not --categorical', async () => {
    const csv = join(dir, 'when-bad.csv');
    const text = readFileSync(fixture('when.csv'), 'utf8').replace(/\n2025-02-01 16:42:10.514290,/, '\nyesterday,');
    writeFileSync(csv, text);
    const typed = await readTable(fixture('when.parquet'));
    const current = await readTable(csv);
    expect(() => tableDrift(typed, current, {})).toThrow(
      new DriftlineError(
        'BAD_REQUEST',
        'column "ts": timestamps in the reference but text in the current that is not ISO-8601 (such as "yesterday") — write those values as ISO-8601 (2025-01-31 12:00:00, as pandas writes them), or leave the column out with --ignore ts',
      ),
    );
  });

  it('an Arrow decimal128(38, 0) beyond 2^53 is its nearest number (it was an internal error)', async () => {
    const A = await import('apache-arrow');
    const values = [12345678901234567890n, -(10n ** 37n) - 3n, 7n];
    const words = values.flatMap((n) => {
      const x = BigInt.asUintN(128, n);
      return [0n, 32n, 64n, 96n].map((s) => Number((x >> s) & 0xffffffffn));
    });
    const id = A.makeVector(A.makeData({ type: new A.Decimal(0, 38, 128), length: 3, data: Uint32Array.from(words) }));
    const path = join(dir, 'decimal38.arrow');
    writeFileSync(path, A.tableToIPC(new A.Table({ id }), 'file'));
    expect(await readTable(path)).toEqual([
      {
        name: 'id',
        kind: 'numeric',
        values: Float64Array.of(Number(12345678901234567890n), -1e37, 7),
        integerText: true,
      },
    ]);
  });

  /** table.arrow with one flatbuffer field of its record batch's message cleared: its type reads NONE. */
  function batchWithoutType(): Buffer {
    const bytes = Buffer.from(readFileSync(fixture('table.arrow')));
    // "ARROW1\0\0", then the schema message (0xFFFFFFFF, its length, its flatbuffer), then the batch's.
    const batch = 16 + bytes.readInt32LE(12);
    expect(bytes.readUInt32LE(batch)).toBe(0xffffffff);
    const message = batch + 8;
    const table = message + bytes.readUInt32LE(message);
    const vtable = table - bytes.readInt32LE(table);
    bytes.writeUInt16LE(0, vtable + 6); // Message field 1, header_type: absent, so NONE
    return bytes;
  }

  it('a damaged Arrow file is one error line naming it, at once (apache-arrow spun at 100% CPU forever)', async () => {
    const path = join(dir, 'no-type.arrow');
    writeFileSync(path, batchWithoutType());
    // In a child process: a hang blocks its thread, so only a process can be given up on.
    const started = Date.now();
    const { code, stdout, stderr, signal } = await runCli(['drift', '--reference', path, '--current', path], 60_000);
    expect({ code, signal, stdout }).toEqual({ code: 3, signal: null, stdout: '' });
    expect(stderr).toBe(
      `driftline: ${path}: not a readable Arrow IPC file (Expected RecordBatch Message in stream, but was null or length 0.) — check no-type.arrow is a complete, undamaged Arrow file (write it again)\n`,
    );
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 90_000);

  it('a batch saying more rows than its columns hold is refused (one byte made 6 rows 16 million)', async () => {
    const bytes = Buffer.from(readFileSync(fixture('table.arrow')));
    const at = bytes.indexOf(Buffer.from([6, 0, 0, 0, 0, 0, 0, 0]), 16 + bytes.readInt32LE(12));
    bytes[at + 2] = 0xff;
    const path = join(dir, 'long-batch.arrow');
    writeFileSync(path, bytes);
    await expect(readTable(path)).rejects.toThrow(
      `${path}: not a readable Arrow IPC file (record batch 1 says 16711686 rows but a column holds 6) — check long-batch.arrow is a complete, undamaged Arrow file (write it again)`,
    );
  });

  it('says to write an Arrow file uncompressed only when compression is the cause', async () => {
    await expect(readTable(fixture('table-lz4.arrow'))).rejects.toThrow(
      /not a readable Arrow IPC file \(.*codec.*\) — write it uncompressed/,
    );
    const path = join(dir, 'cut.arrow');
    writeFileSync(path, readFileSync(fixture('table.arrow')).subarray(0, 700));
    const error = await readTable(path).then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(error).toMatch(/cut\.arrow: not a readable Arrow IPC file \(.*\) — check cut\.arrow is a complete/);
    expect(error).not.toMatch(/uncompressed/);
  });
});

describe('text columns of too many rows, Parquet decimals (found by a review)', () => {
  it.each(['table.csv', 'table-none.parquet', 'table.arrow'])(
    '%s: a text column over the row bound is one line naming it (V8 aborted past ~134M entries)',
    async (name) => {
      // The bound is MAX_TEXT_ROWS (100,000,000); 5 here, one row under the fixture's 6.
      await expect(readTable(fixture(name), { maxTextRows: 5 })).rejects.toThrow(
        new DriftlineError('BAD_REQUEST', `${fixture(name)}: more than 5 rows in text column "color" — sample it`),
      );
      // A number column forced categorical is text too; numeric columns have no such bound.
      await expect(readTable(fixture(name), { maxTextRows: 5, columns: ['n'], categorical: ['n'] })).rejects.toThrow(
        'more than 5 rows in text column "n"',
      );
      expect(await readTable(fixture(name), { maxTextRows: 5, columns: ['x', 'n'] })).toHaveLength(2);
      expect(await readTable(fixture(name), { maxTextRows: 6 })).toHaveLength(6);
    },
  );

  it('a Parquet page over the page bound is one line from its header, whatever the column (a numeric page of 150 M values was "not a readable Parquet file")', async () => {
    // The bound is MAX_PAGE_VALUES (2^25: past it V8 makes hyparquet's page arrays slow dictionaries); 5
    // here, one under table-none.parquet's one page of 6 rows a column.
    const path = fixture('table-none.parquet');
    await expect(readTable(path, { maxPageValues: 5, columns: ['x'] })).rejects.toThrow(
      new DriftlineError(
        'BAD_REQUEST',
        `${path}: column "x" has a page of 6 values (row group 1), more than the 5 a page may hold — write the file with smaller pages (pyarrow: max_rows_per_page, 20,000 by default), or sample it`,
      ),
    );
    await expect(readTable(path, { maxPageValues: 5, columns: ['color'] })).rejects.toThrow(
      /column "color" has a page/,
    );
    expect(await readTable(path, { maxPageValues: 6 })).toHaveLength(6);
    // fixtures/make-one-page.py: 165 bytes, one nullable float64 column of 150,000,000 rows in one page.
    const started = performance.now();
    await expect(readTable(fixture('one-page-150m.parquet'))).rejects.toThrow(
      'column "x" has a page of 150,000,000 values (row group 1), more than the 33,554,432 a page may hold',
    );
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('`-` (standard input) is refused in one line, and a Parquet or Arrow file named .csv is named as such', async () => {
    await expect(readTable('-')).rejects.toThrow(
      new DriftlineError('BAD_REQUEST', '-: a table is read from a file, not from standard input — name a file'),
    );
    for (const [from, format, magic, rename] of [
      ['table-none.parquet', 'Parquet', 'PAR1', '.parquet'],
      ['table.arrow', 'Arrow', 'ARROW1', '.arrow'],
    ] as const) {
      const path = join(dir, `${format}-named.csv`);
      writeFileSync(path, readFileSync(fixture(from)));
      await expect(readTable(path)).rejects.toThrow(
        new DriftlineError(
          'BAD_REQUEST',
          `${path}: a ${format} file (it starts and ends with ${magic}), not CSV — name it ${rename} (the name decides the format)`,
        ),
      );
    }
  });

  it('an Arrow column of a type the reader does not know is named by its type, not blamed on the file', async () => {
    // fixtures/make-run-end.py: a run-end encoded column (apache-arrow JS cannot decode its schema).
    await expect(readTable(fixture('run-end.arrow'))).rejects.toThrow(
      new DriftlineError(
        'BAD_REQUEST',
        `${fixture('run-end.arrow')}: holds a column of Arrow type RunEndEncoded, which the Arrow reader cannot read — write that column decoded to a plain type (pyarrow: pyarrow.compute.run_end_decode), or write the table as Parquet`,
      ),
    );
  });

  it('Parquet decimals read bit for bit as their Arrow twins, decimal128(38, 30) too (41 of 300 were one ulp off)', async () => {
    // fixtures/make-decimals.py: decimal128(38, 30) as FIXED_LEN_BYTE_ARRAY, (18, 4) as INT64, (9, 2) as INT32.
    const parquet = await readTable(fixture('decimals.parquet'));
    const arrow = await readTable(fixture('decimals.arrow'));
    expect(parquet.map((c) => c.name)).toEqual(['d38s30', 'd18s4', 'd9s2']);
    for (const [i, column] of parquet.entries()) {
      const other = arrow[i]!;
      expect(column.kind, column.name).toBe('numeric');
      const a = Array.from(column.values as Float64Array);
      const b = Array.from(other.values as Float64Array);
      expect(a.filter((x, r) => !Object.is(x, b[r])).length, column.name).toBe(0);
      expect(a.length).toBe(300);
    }
    // identical data: no drift, even compared as categories
    const [d38] = await readTable(fixture('decimals.parquet'), { columns: ['d38s30'], categorical: ['d38s30'] });
    const [a38] = await readTable(fixture('decimals.arrow'), { columns: ['d38s30'], categorical: ['d38s30'] });
    expect(tableDrift([a38!], [d38!])[0]!.drifted).toBe(false);
  });

  it('Parquet decimals stored as BYTE_ARRAY read bit for bit as their Arrow twins (77 and 60 of 300 were one ulp off)', async () => {
    // fixtures/make-byte-array-decimals.py: decimal128(38, 30) and decimal256(50, 20) as BYTE_ARRAY (each
    // value in its fewest bytes, as parquet-avro writes them), (12, 3) as BYTE_ARRAY, decimal256(50, 20) as
    // a 21-byte FIXED_LEN_BYTE_ARRAY, and plain bytes of UTF-8 text beside them.
    const parquet = await readTable(fixture('decimals-bytes.parquet'));
    const arrow = await readTable(fixture('decimals-bytes.arrow'));
    expect(parquet.map((c) => c.name)).toEqual(['b38s30', 'b50s20', 'b12s3', 'f50s20', 'tag']);
    const differences = parquet.slice(0, 4).map((column, i) => {
      const other = arrow[i]!;
      expect([column.kind, other.kind], column.name).toEqual(['numeric', 'numeric']);
      const a = Array.from(column.values as Float64Array);
      const b = Array.from(other.values as Float64Array);
      expect([a.length, a.filter(Number.isNaN).length], column.name).toEqual([300, 4]);
      return a.filter((x, r) => !Object.is(x, b[r])).length;
    });
    expect(differences).toEqual([0, 0, 0, 0]);
    // The plain bytes beside them are still their UTF-8 text.
    expect(plain([parquet[4]!])).toEqual(plain([arrow[4]!]));
    expect(parquet[4]!.values.slice(0, 4)).toEqual(['a', 'b', 'é', null]);
    // identical data: no drift, even compared as categories
    const columns = ['b38s30', 'b50s20'];
    const asText = { columns, categorical: columns };
    const drift = tableDrift(
      await readTable(fixture('decimals-bytes.arrow'), asText),
      await readTable(fixture('decimals-bytes.parquet'), asText),
    );
    expect(drift.map((d) => [d.column, d.drifted])).toEqual([
      ['b38s30', false],
      ['b50s20', false],
    ]);
  });
});

describe('readTableAndHeader: every column name of the file, the ones left out included', () => {
  const names = ['x', 'n', 'small', 'color', 'flag', 'code'];

  it.each(['table.csv', 'table-snappy.parquet', 'table.arrow', 'table.arrows'])('%s', async (name) => {
    const read = await readTableAndHeader(fixture(name), { ignore: ['x', 'color'] });
    expect(read.header).toEqual(names);
    expect(read.columns.map((c) => c.name)).toEqual(['n', 'small', 'flag', 'code']);
    const selected = await readTableAndHeader(fixture(name), { columns: ['n', 'small'], ignore: ['x'] });
    expect(selected.header).toEqual(names);
    expect(selected.columns.map((c) => c.name)).toEqual(['n', 'small']);
  });

  it.each([
    ['a BOM, blank lines and CRLF', '\ufeff\r\n\na,b,c\r\n1,2,3\r\n', {}, ['a', 'b', 'c']],
    [
      'quoted names holding the delimiter, a line break and a doubled quote',
      '"a,1","b\nx","it""s",d\n1,2,3,4\n',
      {},
      ['a,1', 'b\nx', 'it"s', 'd'],
    ],
    ['a header ending in a quoted name', 'a,"b"\n1,2\n', {}, ['a', 'b']],
    ['a tab-separated file (--delimiter tab)', 'a,1\tb\n1\t2\n', { delimiter: 'tab' }, ['a,1', 'b']],
    ['a header record without data rows', 'a;b', { delimiter: ';' }, ['a', 'b']],
  ] as const)('CSV: %s', async (_, text, options, header) => {
    const path = join(dir, `header-${header.length}-${text.length}.csv`);
    writeFileSync(path, text);
    const read = await readTableAndHeader(path, { ...options, ignore: [header[0]!] });
    expect(read.header).toEqual(header);
    expect(read.columns.map((c) => c.name)).toEqual(header.slice(1));
  });
});

/** The CLI from its sources in a child process, killed after `timeoutMs`. */
function runCli(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'services/cli/src/main.ts', ...args],
      { cwd: root, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const e = error as (Error & { code?: number; signal?: NodeJS.Signals }) | null;
        resolve({ code: e === null ? 0 : (e.code ?? null), signal: e?.signal ?? null, stdout, stderr });
      },
    );
  });
}
