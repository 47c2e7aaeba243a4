import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Column } from '@driftline/batch-drift';
import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { readTable } from '../src/tables.js';

// Fixtures written by pyarrow (fixtures/make-tables.py): one table as CSV, Parquet and Arrow IPC.
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'driftline-tables-'));
const plain = (columns: Column[]) =>
  columns.map((c) => ({ name: c.name, kind: c.kind, values: Array.from(c.values as ArrayLike<unknown>) }));

describe('readTable', () => {
  const expected = plain([
    { name: 'x', kind: 'numeric', values: Float64Array.from([1.5, Number.NaN, -2, 4.25, 0, 7]) },
    { name: 'n', kind: 'numeric', values: Float64Array.from([1, 2, Number.NaN, 4, 5, 6]) },
    { name: 'small', kind: 'numeric', values: Float64Array.from([1, 2, 3, 1, 2, 3]) },
    { name: 'color', kind: 'categorical', values: ['red', 'blue', null, 'red', 'grün', 'blue'] },
    { name: 'flag', kind: 'categorical', values: ['true', 'false', 'true', null, 'false', 'true'] },
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
