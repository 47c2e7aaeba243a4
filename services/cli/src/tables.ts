import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { applyTableOptions, type Column, csvColumns } from '@driftline/batch-drift';
import { DriftlineError } from '@driftline/core';
import type { ReadOptions } from './table-options.js';

type Format = 'csv' | 'arrow' | 'parquet';

const ARROW_FILE_MAGIC = Buffer.from('ARROW1');
const PARQUET_MAGIC = Buffer.from('PAR1');

function badInput(path: string, what: string, hint: string, cause?: unknown): DriftlineError {
  return new DriftlineError('BAD_REQUEST', `${path}: ${what} — ${hint}`, cause === undefined ? {} : { cause });
}

/**
 * The format of a file: by its content first (gzip, Parquet's and Arrow's magic bytes), then by its
 * name (`.parquet`, `.arrow`/`.feather`/`.ipc`, `.tsv`); anything else is CSV.
 */
export function detectFormat(path: string, bytes: Uint8Array): Format {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 8));
  if (head.subarray(0, 4).equals(PARQUET_MAGIC)) return 'parquet';
  if (head.subarray(0, 6).equals(ARROW_FILE_MAGIC)) return 'arrow';
  const name = path.toLowerCase().replace(/\.gz$/, '');
  if (name.endsWith('.parquet')) return 'parquet';
  if (/\.(arrow|feather|ipc|arrows)$/.test(name)) return 'arrow';
  return 'csv';
}

/**
 * The largest table the reader takes, in bytes: as a file, and unzipped when it is gzipped. It is
 * Node's own bound on one read (`readFileSync` refuses files over 2 GiB); without it on gunzip, a
 * few MB of gzip could unzip into many GB.
 */
export const MAX_TABLE_BYTES = 2 ** 31 - 1;

/**
 * Most cells (rows × columns) a table may hold: 2 GB as numbers. A Parquet or Arrow file can say
 * much more than its bytes hold (runs of nulls compress to nothing; a footer can lie), and the
 * columns were allocated at the size it says: a 535-byte file ended in a V8 out-of-memory abort.
 */
export const MAX_TABLE_CELLS = 250_000_000;

function checkCells(path: string, rows: number, columns: number): void {
  if (rows * columns > MAX_TABLE_CELLS) {
    throw badInput(
      path,
      `${rows.toLocaleString('en-US')} rows × ${columns} columns is more than ${MAX_TABLE_CELLS.toLocaleString('en-US')} cells`,
      'sample it, or split it by rows or columns',
    );
  }
}

/** `2 GiB` for the default limit, bytes for a smaller one (tests). */
function limitText(bytes: number): string {
  return bytes >= 2 ** 30 ? `${Math.round(bytes / 2 ** 30)} GiB` : `${bytes} bytes`;
}

function fileProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'EACCES') return 'permission denied';
  return `cannot read (${(error as Error).message})`;
}

/**
 * The bytes of a file, gunzipped when it starts with gzip's magic bytes (whatever its name). Only a
 * regular file is read (a device such as /dev/zero or a FIFO could be endless), of at most `maxBytes`
 * bytes, and at most `maxBytes` once unzipped.
 */
export function readBytes(path: string, maxBytes = MAX_TABLE_BYTES): Buffer {
  let bytes: Buffer;
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) throw badInput(path, 'is a directory', 'check the path');
    if (!stat.isFile()) throw badInput(path, 'is not a regular file (a device, pipe or socket)', 'name a file');
    if (stat.size > maxBytes) {
      throw badInput(
        path,
        `is ${stat.size} bytes, over the ${limitText(maxBytes)} a table may have`,
        'split it or sample it',
      );
    }
    bytes = readFileSync(path);
  } catch (error) {
    if (error instanceof DriftlineError) throw error;
    throw badInput(path, fileProblem(error), 'check the path', error);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return gunzipSync(bytes, { maxOutputLength: maxBytes });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw badInput(
          path,
          `unzips to more than the ${limitText(maxBytes)} a table may have`,
          'split it or sample it',
          error,
        );
      }
      throw badInput(
        path,
        `not a readable gzip file (${(error as Error).message})`,
        'check the file is complete',
        error,
      );
    }
  }
  return bytes;
}

/**
 * Reads a table into typed columns: CSV (RFC 4180, by `csvColumns`, as `driftline reference` reads
 * it), Arrow IPC (file or stream) or Parquet, each optionally gzipped. `options` selects columns and
 * forces types the same way for every format.
 */
export async function readTable(path: string, options: ReadOptions = {}): Promise<Column[]> {
  const bytes = readBytes(path);
  const format = detectFormat(path, bytes);
  if (format === 'csv') {
    const delimiter = options.delimiter ?? (/\.tsv(\.gz)?$/i.test(path) ? '\t' : undefined);
    return csvColumns(bytes, path, { ...options, ...(delimiter === undefined ? {} : { delimiter }) });
  }
  const columns = format === 'arrow' ? await arrowColumns(bytes, path) : await parquetColumns(bytes, path);
  return applyTableOptions(columns, options, path);
}

async function arrowColumns(bytes: Buffer, path: string): Promise<Column[]> {
  // Loaded on demand: apache-arrow alone takes longer to load than a CSV of a few MB to read.
  const arrow = await import('apache-arrow');
  let table: ReturnType<typeof arrow.tableFromIPC>;
  try {
    table = arrow.tableFromIPC(bytes);
  } catch (error) {
    throw badInput(
      path,
      `not a readable Arrow IPC file (${(error as Error).message})`,
      "write it uncompressed (pyarrow: feather.write_feather(t, path, compression='uncompressed')) or as Parquet",
      error,
    );
  }
  checkCells(path, table.numRows, table.numCols);
  return table.schema.fields.map((field, i) => {
    const vector = table.getChildAt(i)!;
    const cell = numericCell(arrow, field.type, vector);
    if (cell !== undefined) {
      const out = new Float64Array(vector.length);
      for (let r = 0; r < vector.length; r++) out[r] = vector.isValid(r) ? cell(r) : Number.NaN;
      const integerText =
        arrow.DataType.isInt(field.type) || (arrow.DataType.isDecimal(field.type) && field.type.scale === 0);
      return { name: field.name, kind: 'numeric' as const, values: out, integerText };
    }
    const out: Array<string | null> = [];
    for (let r = 0; r < vector.length; r++) out.push(text(vector.get(r)));
    return { name: field.name, kind: 'categorical' as const, values: out };
  });
}

type Arrow = typeof import('apache-arrow');
type ArrowVector = NonNullable<ReturnType<InstanceType<Arrow['Table']>['getChildAt']>>;

/**
 * How to read row r of a numeric Arrow column as a number; undefined for other types. Int and
 * Float32/64 read the typed array; Float16 (stored as its 16 raw bits) and Decimal (an unscaled
 * integer of 128 or 256 bits) are decoded: 0.5, not 14336; 0.25, not 25.
 */
function numericCell(
  arrow: Arrow,
  type: ArrowVector['type'],
  vector: ArrowVector,
): ((r: number) => number) | undefined {
  const { DataType, Precision, util } = arrow;
  if (DataType.isDecimal(type)) return (r) => Number(util.bigNumToNumber(vector.get(r), type.scale));
  if (DataType.isFloat(type) && type.precision === Precision.HALF) return (r) => Number(vector.get(r));
  if (DataType.isInt(type) || DataType.isFloat(type)) {
    const values = vector.toArray() as ArrayLike<unknown>;
    return (r) => Number(values[r]);
  }
  return undefined;
}

function text(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  return String(v);
}

async function parquetColumns(bytes: Buffer, path: string): Promise<Column[]> {
  const [{ parquetMetadata, parquetRead, parquetSchema }, { compressors }] = await Promise.all([
    import('hyparquet'),
    import('hyparquet-compressors'),
  ]);
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
  try {
    const metadata = parquetMetadata(file);
    const rows = Number(metadata.num_rows);
    const inGroups = metadata.row_groups.reduce((n, g) => n + Number(g.num_rows), 0);
    if (inGroups !== rows) {
      throw badInput(path, `its footer says ${rows} rows but its row groups hold ${inGroups}`, 'write it again');
    }
    const elements = parquetSchema(metadata).children.map((c) => c.element);
    checkCells(path, rows, elements.length);
    const names = elements.map((e) => e.name);
    const integerTyped = new Set(elements.filter((e) => e.type === 'INT32' || e.type === 'INT64').map((e) => e.name));
    const chunks = new Map<string, Array<{ data: ArrayLike<unknown>; rowStart: number; rowEnd: number }>>();
    await parquetRead({
      file,
      metadata,
      compressors,
      onChunk: (chunk) => {
        const list = chunks.get(chunk.columnName) ?? [];
        list.push({ data: chunk.columnData as ArrayLike<unknown>, rowStart: chunk.rowStart, rowEnd: chunk.rowEnd });
        chunks.set(chunk.columnName, list);
      },
    });
    return names.map((name) => {
      const cells: unknown[] = new Array(rows).fill(null);
      for (const c of chunks.get(name) ?? []) {
        for (let r = c.rowStart; r < Math.min(c.rowEnd, rows); r++) cells[r] = c.data[r - c.rowStart];
      }
      const numeric = cells.every(
        (v) => v === null || v === undefined || typeof v === 'number' || typeof v === 'bigint',
      );
      if (numeric) {
        const values = new Float64Array(rows);
        for (let r = 0; r < rows; r++)
          values[r] = cells[r] === null || cells[r] === undefined ? Number.NaN : Number(cells[r]);
        return { name, kind: 'numeric' as const, values, integerText: integerTyped.has(name) };
      }
      return { name, kind: 'categorical' as const, values: cells.map(text) };
    });
  } catch (error) {
    if (error instanceof DriftlineError) throw error;
    throw badInput(
      path,
      `not a readable Parquet file (${(error as Error).message})`,
      `check ${basename(path)} is a complete Parquet file (flat columns)`,
      error,
    );
  }
}
