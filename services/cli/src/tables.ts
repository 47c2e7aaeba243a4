import { readFileSync } from 'node:fs';
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

/** The bytes of a file, gunzipped when it starts with gzip's magic bytes (whatever its name). */
export function readBytes(path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const what =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'EACCES'
            ? 'permission denied'
            : `cannot read (${(error as Error).message})`;
    throw badInput(path, what, 'check the path', error);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return gunzipSync(bytes);
    } catch (error) {
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
  const { tableFromIPC } = await import('apache-arrow');
  let table: ReturnType<typeof tableFromIPC>;
  try {
    table = tableFromIPC(bytes);
  } catch (error) {
    throw badInput(
      path,
      `not a readable Arrow IPC file (${(error as Error).message})`,
      "write it uncompressed (pyarrow: feather.write_feather(t, path, compression='uncompressed')) or as Parquet",
      error,
    );
  }
  return table.schema.fields.map((field, i) => {
    const vector = table.getChildAt(i)!;
    const typeId = String(field.type);
    if (/^(Float|Int|Uint)/.test(typeId)) {
      const values = vector.toArray() as ArrayLike<unknown>;
      const out = new Float64Array(vector.length);
      for (let r = 0; r < vector.length; r++) out[r] = vector.isValid(r) ? Number(values[r]) : Number.NaN;
      return { name: field.name, kind: 'numeric' as const, values: out, integerText: /^U?[Ii]nt/.test(typeId) };
    }
    const out: Array<string | null> = [];
    for (let r = 0; r < vector.length; r++) out.push(text(vector.get(r)));
    return { name: field.name, kind: 'categorical' as const, values: out };
  });
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
    const elements = parquetSchema(metadata).children.map((c) => c.element);
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
