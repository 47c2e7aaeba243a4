import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  applyTableOptions,
  type Column,
  checkTextRows,
  csvColumns,
  type FloatBits,
  floatText,
  integerText,
  MAX_TEXT_ROWS,
  quotedName,
  suggestedOption,
  type TimeKind,
} from '@driftline/batch-drift';
import { DriftlineError } from '@driftline/core';
import { booleanCategory } from '@driftline/drift';
import type { ReadOptions } from './table-options.js';

type Format = 'csv' | 'arrow' | 'parquet';

const ARROW_FILE_MAGIC = Buffer.from('ARROW1');
const PARQUET_MAGIC = Buffer.from('PAR1');

function badInput(path: string, what: string, hint: string, cause?: unknown): DriftlineError {
  return new DriftlineError('BAD_REQUEST', `${path}: ${what} — ${hint}`, cause === undefined ? {} : { cause });
}

/**
 * The format of a file, one rule: by its name when it has a table extension (`.csv`/`.tsv`,
 * `.parquet`, `.arrow`/`.feather`/`.ipc`/`.arrows`, each optionally `.gz`), else by its content
 * (Parquet's and Arrow's magic bytes), else CSV. A `.csv` whose header starts with `PAR1` is read as
 * CSV, not refused as broken Parquet. (Gzip is unwrapped by its magic bytes before, whatever the name.)
 */
export function detectFormat(path: string, bytes: Uint8Array): Format {
  const name = path.toLowerCase().replace(/\.gz$/, '');
  if (/\.(csv|tsv)$/.test(name)) return 'csv';
  if (name.endsWith('.parquet')) return 'parquet';
  if (/\.(arrow|feather|ipc|arrows)$/.test(name)) return 'arrow';
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 8));
  if (head.subarray(0, 4).equals(PARQUET_MAGIC)) return 'parquet';
  if (head.subarray(0, 6).equals(ARROW_FILE_MAGIC)) return 'arrow';
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
  if (path === '-') throw badInput(path, 'a table is read from a file, not from standard input', 'name a file');
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
  return (await readTableAndHeader(path, options)).columns;
}

/** A table read, and every column name of its file (before `--columns` and `--ignore`). */
export interface TableRead {
  readonly columns: Column[];
  readonly header: readonly string[];
}

/**
 * {@link readTable}, and the names of every column of the file: what an `--ignore` name is checked
 * against (`checkIgnoredNames`), since the columns read no longer hold the ones it left out.
 */
export async function readTableAndHeader(path: string, options: ReadOptions = {}): Promise<TableRead> {
  const bytes = readBytes(path);
  const format = detectFormat(path, bytes);
  if (format === 'csv') {
    const delimiter = options.delimiter ?? (/\.tsv(\.gz)?$/i.test(path) ? '\t' : undefined);
    const csvOptions = delimiter === undefined ? {} : { delimiter };
    const columns = csvTable(bytes, path, { ...options, ...csvOptions });
    // The header record alone, read by the same reader: the file has just been read whole, so it is valid.
    const header = csvColumns(bytes.subarray(0, csvHeaderEnd(bytes, delimiter)), path, csvOptions).map((c) => c.name);
    return { columns, header };
  }
  const header: string[] = [];
  const seen = new Set<string>();
  // Every top-level column of an Arrow or Parquet file is asked about (nested ones too; Parquet's first).
  const wanted = (name: string) => {
    if (!seen.has(name)) {
      seen.add(name);
      header.push(name);
    }
    return (options.columns === undefined || options.columns.includes(name)) && !(options.ignore ?? []).includes(name);
  };
  const asText = (name: string) => options.categorical?.includes(name) ?? false;
  const maxTextRows = options.maxTextRows ?? MAX_TEXT_ROWS;
  const columns =
    format === 'arrow'
      ? await arrowColumns(bytes, path, wanted, asText, maxTextRows)
      : await parquetColumns(bytes, path, wanted, asText, maxTextRows, options.maxPageValues ?? MAX_PAGE_VALUES);
  return { columns: applyTableOptions(columns, options, path), header };
}

/**
 * `csvColumns`, and when the file is not CSV but a Parquet or Arrow file under a CSV name (its magic
 * bytes at both ends), an error that says so: it was "line 1: bytes that are not UTF-8".
 */
function csvTable(bytes: Buffer, path: string, options: ReadOptions): Column[] {
  try {
    return csvColumns(bytes, path, options);
  } catch (error) {
    const ends = (magic: Buffer) =>
      bytes.length >= 2 * magic.length &&
      bytes.subarray(0, magic.length).equals(magic) &&
      bytes.subarray(bytes.length - magic.length).equals(magic);
    const format = ends(PARQUET_MAGIC) ? 'Parquet' : ends(ARROW_FILE_MAGIC) ? 'Arrow' : undefined;
    if (format === undefined) throw error;
    throw badInput(
      path,
      `a ${format} file (it starts and ends with ${format === 'Parquet' ? 'PAR1' : 'ARROW1'}), not CSV`,
      `name it ${format === 'Parquet' ? '.parquet' : '.arrow'} (the name decides the format)`,
      error,
    );
  }
}

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

/**
 * The offset just past a CSV's header record, as the reader finds it (libs/batch-drift csv.ts): a
 * UTF-8 BOM and blank lines skipped, then fields up to the first line end outside a field that
 * starts with a quote (a doubled quote inside one is a quote).
 */
function csvHeaderEnd(bytes: Uint8Array, delimiter: string | undefined): number {
  const d = delimiter === undefined ? ',' : delimiter === 'tab' || delimiter === '\\t' ? '\t' : delimiter;
  const separator = d.charCodeAt(0);
  const n = bytes.length;
  let i = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (i < n && (bytes[i] === LF || bytes[i] === CR)) i++;
  while (i < n) {
    if (bytes[i] === QUOTE) {
      for (i++; i < n; i++) {
        if (bytes[i] !== QUOTE) continue;
        if (bytes[i + 1] !== QUOTE) break;
        i++;
      }
      i++; // the closing quote
    }
    while (i < n && bytes[i] !== separator && bytes[i] !== LF && bytes[i] !== CR) i++;
    if (i >= n || bytes[i] !== separator) return i;
    i++;
  }
  return i;
}

/**
 * A nested column (struct, list, map) read: only flat columns are compared (as text, every struct
 * was one category "[object Object]" and never drifted), so one that is not left out is refused.
 */
function nestedColumn(path: string, name: string, type: string): DriftlineError {
  return badInput(
    path,
    `column ${quotedName(name)} is nested (${type}); only flat columns are compared`,
    `leave it out with ${suggestedOption('--ignore', name)}, or flatten it`,
  );
}

/**
 * Timestamps and dates as epoch milliseconds, a numeric column (microseconds kept as the fraction),
 * the same number from Arrow and Parquet: Parquet's were ISO text and Arrow's whole milliseconds as
 * text, so the same instants in the two formats drifted 100%.
 */
const MS_PER_DAY = 86_400_000;
const epochMsOf = {
  seconds: (v: bigint | number) => Number(v) * 1000,
  millis: (v: bigint | number) => Number(v),
  micros: (v: bigint | number) => Number(v) / 1000,
  nanos: (v: bigint | number) => Number(BigInt(v) / 1000n) / 1000,
  days: (v: bigint | number) => Number(v) * MS_PER_DAY,
};

/**
 * Which columns to read, and which are forced `--categorical`: an integer or float column of those is
 * read as the text pandas writes for its stored values (int64 digits beyond 2^53, float32's own
 * shortest digits), which its float64 numbers no longer hold.
 */
type Wanted = (name: string) => boolean;

async function arrowColumns(
  bytes: Buffer,
  path: string,
  wanted: Wanted,
  asText: Wanted,
  maxTextRows: number,
): Promise<Column[]> {
  // Loaded on demand: apache-arrow alone takes longer to load than a CSV of a few MB to read.
  const arrow = await import('apache-arrow');
  const table = arrowTable(arrow, bytes, path);
  if (table.schema.fields.length === 0) {
    // An empty file, or bytes that are no Arrow stream, read as a table of no columns.
    throw badInput(path, 'holds no Arrow table (empty, or not Arrow IPC)', 'check the file is a complete Arrow file');
  }
  checkCells(path, table.numRows, table.numCols);
  const { DataType } = arrow;
  const columns: Column[] = [];
  table.schema.fields.forEach((field, i) => {
    if (!wanted(field.name)) return;
    const type = field.type;
    if (
      DataType.isStruct(type) ||
      DataType.isList(type) ||
      DataType.isFixedSizeList(type) ||
      DataType.isMap(type) ||
      DataType.isUnion(type)
    ) {
      throw nestedColumn(path, field.name, String(arrow.Type[type.typeId]).toLowerCase());
    }
    columns.push(arrowColumn(arrow, path, field.name, type, table.getChildAt(i)!, asText(field.name), maxTextRows));
  });
  return columns;
}

/**
 * The batches of an Arrow IPC file or stream, read one by one (what `tableFromIPC` does, bounded).
 * apache-arrow's file reader reads its next batch until it gets one: a block whose message is not a
 * record batch (one byte changed in a 9 KB file) was read again forever, at 100% CPU. Here a file's
 * batches are read by index, each must be a record batch, and a file or stream may hold at most one
 * batch per 8 bytes.
 */
function arrowTable(arrow: Arrow, bytes: Buffer, path: string): InstanceType<Arrow['Table']> {
  const most = Math.max(1, Math.floor(bytes.length / 8));
  const batches: Array<InstanceType<Arrow['RecordBatch']>> = [];
  try {
    const reader = arrow.RecordBatchReader.from(bytes);
    reader.open();
    // Taken before the batches: a stream reader drops its schema once it has read its last one.
    const schema = reader.schema as InstanceType<Arrow['Schema']> | null | undefined;
    if (reader.isFile()) {
      const count = reader.numRecordBatches;
      if (count > most)
        throw new Error(`its footer lists ${count} record batches, more than its ${bytes.length} bytes can hold`);
      for (let i = 0; i < count; i++) {
        const batch = reader.readRecordBatch(i);
        if (batch === null) throw new Error(`record batch ${i + 1} of ${count} is missing or not a record batch`);
        batches.push(checkedBatch(arrow, batch, i));
      }
    } else {
      for (const batch of reader) {
        batches.push(checkedBatch(arrow, batch, batches.length));
        if (batches.length > most) throw new Error(`more record batches than its ${bytes.length} bytes can hold`);
      }
    }
    // As `tableFromIPC`: the batches' own schema (a footer's may differ in its metadata).
    if (batches.length > 0) return new arrow.Table(batches);
    return schema === null || schema === undefined ? new arrow.Table() : new arrow.Table(schema, []);
  } catch (error) {
    const message = (error as Error).message;
    // A type apache-arrow's reader does not know (RunEndEncoded, views) fails the schema itself: no
    // column is known yet, so neither its name nor --ignore can help; not the file's fault either.
    const unknownType = /Unrecognized type: "(\w+)"/.exec(message)?.[1];
    if (unknownType !== undefined) {
      throw badInput(
        path,
        `holds a column of Arrow type ${unknownType}, which the Arrow reader cannot read`,
        `write that column decoded to a plain type (pyarrow: ${unknownType === 'RunEndEncoded' ? 'pyarrow.compute.run_end_decode' : 'cast it'}), or write the table as Parquet`,
        error,
      );
    }
    // apache-arrow's JS reader has no lz4/zstd: only then is rewriting it uncompressed the answer.
    const compressed = /codec|compress/i.test(message);
    throw badInput(
      path,
      `not a readable Arrow IPC file (${message})`,
      compressed
        ? "write it uncompressed (pyarrow: feather.write_feather(t, path, compression='uncompressed')) or as Parquet"
        : `check ${basename(path)} is a complete, undamaged Arrow file (write it again)`,
      error,
    );
  }
}

/**
 * A batch whose columns hold as many values as it has rows. A batch's row count is one field of its
 * header: one byte changed made 6 rows 16 million, read from buffers holding 6 (garbage, a minute of
 * CPU). A Null column holds no buffer, and nested ones are refused later.
 */
function checkedBatch(
  arrow: Arrow,
  batch: InstanceType<Arrow['RecordBatch']>,
  index: number,
): InstanceType<Arrow['RecordBatch']> {
  for (const data of batch.data.children) {
    const rows = data.offset + data.length;
    const { values, valueOffsets } = data as { values?: { length: number }; valueOffsets?: { length: number } };
    const held =
      valueOffsets !== undefined && valueOffsets !== null
        ? valueOffsets.length - 1
        : values === undefined || values === null
          ? rows
          : arrow.DataType.isBool(data.type)
            ? values.length * 8
            : Math.floor(values.length / Math.max(1, data.stride));
    if (held < rows) throw new Error(`record batch ${index + 1} says ${rows} rows but a column holds ${held}`);
  }
  return batch;
}

function arrowColumn(
  arrow: Arrow,
  path: string,
  name: string,
  type: ArrowVector['type'],
  vector: ArrowVector,
  asText: boolean,
  maxTextRows: number,
): Column {
  const cell = numericCell(arrow, type, vector);
  const { DataType, Precision } = arrow;
  // A duration is an integer (Parquet keeps it as one), so forced categorical it is its digits.
  const integer = DataType.isInt(type) || DataType.isDuration(type);
  if (asText && cell !== undefined && (integer || DataType.isFloat(type))) {
    const bits: FloatBits | undefined = DataType.isFloat(type)
      ? type.precision === Precision.HALF
        ? 16
        : type.precision === Precision.SINGLE
          ? 32
          : 64
      : undefined;
    checkTextRows(path, name, vector.length, maxTextRows);
    const values: Array<string | null> = [];
    for (let r = 0; r < vector.length; r++) {
      if (!vector.isValid(r)) values.push(null);
      else values.push(bits === undefined ? integerText(vector.get(r) as bigint | number) : floatText(cell(r), bits));
    }
    return { name, kind: 'categorical', values };
  }
  if (cell !== undefined) {
    const values = new Float64Array(vector.length);
    for (let r = 0; r < vector.length; r++) values[r] = vector.isValid(r) ? cell(r) : Number.NaN;
    const integerText = integer || (DataType.isDecimal(type) && type.scale === 0);
    const time: TimeKind | undefined = DataType.isTimestamp(type)
      ? 'timestamp'
      : DataType.isDate(type)
        ? 'date'
        : DataType.isTime(type)
          ? 'time'
          : undefined;
    // float32/16: the width, so that a pair is compared at it whatever the other side's spelling.
    const float = DataType.isFloat(type) ? narrowWidth(arrow, type.precision) : undefined;
    return {
      name,
      kind: 'numeric',
      values,
      integerText,
      ...(time === undefined ? {} : { time }),
      ...(float === undefined ? {} : { float }),
    };
  }
  checkTextRows(path, name, vector.length, maxTextRows);
  const values: Array<string | null> = [];
  for (let r = 0; r < vector.length; r++) values.push(cellText(vector.get(r), path, name, r));
  return { name, kind: 'categorical', values };
}

/** 16 or 32 for an Arrow Float16 or Float32 column, undefined for Float64. */
function narrowWidth(arrow: Arrow, precision: number): 16 | 32 | undefined {
  return precision === arrow.Precision.HALF ? 16 : precision === arrow.Precision.SINGLE ? 32 : undefined;
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
  const { DataType, Precision, TimeUnit } = arrow;
  if (DataType.isDecimal(type)) return (r) => decimalValue(vector.get(r) as Uint32Array, type.bitWidth, type.scale);
  if (DataType.isTimestamp(type)) {
    // The stored integers in their unit: `get` rounds to whole milliseconds.
    const toMs = {
      [TimeUnit.SECOND]: epochMsOf.seconds,
      [TimeUnit.MILLISECOND]: epochMsOf.millis,
      [TimeUnit.MICROSECOND]: epochMsOf.micros,
      [TimeUnit.NANOSECOND]: epochMsOf.nanos,
    }[type.unit];
    const raw = storedValues(vector);
    return (r) => toMs(raw[r]!);
  }
  if (DataType.isDate(type)) {
    return (r) => {
      const v: unknown = vector.get(r);
      return v instanceof Date ? v.getTime() : Number(v);
    };
  }
  if (DataType.isTime(type) || DataType.isDuration(type)) {
    // `get` is the stored integer (number or bigint). A time of day is milliseconds since midnight
    // in every unit, as the Parquet reader makes it (Parquet stores time32[s] as milliseconds); a
    // duration stays in its own unit, which Parquet does not keep (pyarrow writes the integer).
    const toNumber = DataType.isDuration(type)
      ? (v: bigint | number) => Number(v)
      : {
          [TimeUnit.SECOND]: epochMsOf.seconds,
          [TimeUnit.MILLISECOND]: epochMsOf.millis,
          [TimeUnit.MICROSECOND]: epochMsOf.micros,
          [TimeUnit.NANOSECOND]: epochMsOf.nanos,
        }[type.unit];
    return (r) => toNumber(vector.get(r) as bigint | number);
  }
  // float16 and float32 widened exactly (the column is marked with its width: `Column.float`).
  if (DataType.isFloat(type) && type.precision === Precision.HALF) return (r) => Number(vector.get(r));
  if (DataType.isInt(type) || DataType.isFloat(type)) {
    const values = vector.toArray() as ArrayLike<unknown>;
    return (r) => Number(values[r]);
  }
  return undefined;
}

/** The stored values of every chunk of a 64-bit column, in row order (each chunk's are sliced to it). */
function storedValues(vector: ArrowVector): Array<bigint | number> {
  const out: Array<bigint | number> = [];
  for (const data of vector.data) {
    const values = data.values as ArrayLike<bigint | number>;
    for (let i = 0; i < data.length; i++) out.push(values[i]!);
  }
  return out;
}

/**
 * An Arrow decimal (its unscaled two's-complement integer, little-endian 32-bit words) as the number
 * nearest to its decimal text: apache-arrow's `bigNumToNumber` threw for an integer part beyond 2^53
 * (a decimal128(38, 0) id was an "internal error").
 */
function decimalValue(words: Uint32Array, bitWidth: number, scale: number): number {
  let unscaled = 0n;
  for (let i = words.length - 1; i >= 0; i--) unscaled = (unscaled << 32n) | BigInt(words[i]!);
  return decimalNumber(BigInt.asIntN(bitWidth, unscaled), scale);
}

/**
 * A Parquet decimal's stored unscaled integer (INT32, INT64, or big-endian two's-complement bytes)
 * as the number nearest to its decimal text, as `decimalValue` makes an Arrow one.
 */
function parquetDecimalValue(stored: unknown, scale: number): number {
  if (typeof stored === 'number' || typeof stored === 'bigint') return decimalNumber(BigInt(stored), scale);
  const bytes = stored as Uint8Array;
  if (bytes.length === 0) return 0;
  let unscaled = 0n;
  for (const b of bytes) unscaled = (unscaled << 8n) | BigInt(b);
  return decimalNumber(BigInt.asIntN(bytes.length * 8, unscaled), scale);
}

/**
 * `unscaled × 10^-scale` rounded once, to the double nearest the exact decimal (through its text):
 * `Number(unscaled) / 10 ** scale` rounds twice (hyparquet's way), off by one ulp for 41 of 300
 * decimal128(38, 30) values, which drifted against the same column read from Arrow.
 */
function decimalNumber(unscaled: bigint, scale: number): number {
  if (scale <= 0) return Number(`${unscaled}e${-scale}`);
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  return Number(`${negative ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Bytes that are not UTF-8, as the Parquet reader's string decoder hands them on (it decodes a
 * dictionary once, before rows are known): `cellText` refuses them naming the column and row.
 */
class NotUtf8 {
  constructor(readonly bytes: Uint8Array) {}
}

/** A Parquet string or byte array as strict UTF-8 (lenient decoding made every bad byte U+FFFD). */
function stringFromBytes(bytes: Uint8Array | undefined): string | NotUtf8 | undefined {
  if (bytes === undefined) return undefined;
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return new NotUtf8(bytes);
  }
}

/**
 * A cell of a text column as its category. Bytes (Arrow Binary, LargeBinary, FixedSizeBinary;
 * Parquet byte arrays) are read as UTF-8 text, strictly, as the CSV reader reads a file: String()
 * of a Uint8Array was its byte values (`b"a"` was the category "97").
 */
function cellText(v: unknown, path: string, name: string, row: number): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  // `true` / `false`: the one boolean key of live events, the trainer and CSV bool columns.
  if (typeof v === 'boolean') return booleanCategory(v);
  if (v instanceof Uint8Array || v instanceof NotUtf8) {
    const text = v instanceof NotUtf8 ? v : stringFromBytes(v);
    if (typeof text === 'string') return text;
    throw badInput(
      path,
      `row ${row + 1}: column ${quotedName(name)} holds bytes that are not UTF-8 text`,
      `write it as UTF-8 text, or leave it out with ${suggestedOption('--ignore', name)}`,
    );
  }
  return String(v);
}

/**
 * Most values one Parquet page may hold. hyparquet decodes a page into JS arrays of its length (the
 * definition levels of a nullable column, the dictionary indices), made by `new Array(n)`, which V8
 * makes a slow dictionary-mode array past 2^25 entries: a page of 33,554,432 values read in 6.3 s,
 * one of 40 M took 51 s and 4.3 GB, 130 M ended the process out of memory after 164 s, and 150 M was
 * "not a readable Parquet file (Invalid array length)" after 23 s. The column's rows are not the
 * bound: a numeric column of 140 M rows in pyarrow's pages (20,000 rows) reads (64 s, 4.4 GB).
 */
export const MAX_PAGE_VALUES = 2 ** 25;

type ParquetMetadata = ReturnType<typeof import('hyparquet').parquetMetadata>;

/**
 * Refuses a page of more than `maxValues` values in the columns to read, from the page headers alone
 * (before any page is decoded; a few bytes each): one line naming the column and its row group.
 */
async function checkPageValues(
  file: ArrayBuffer,
  metadata: ParquetMetadata,
  names: readonly string[],
  path: string,
  maxValues: number,
): Promise<void> {
  const { parquetHeader } = await import('hyparquet/src/column.js');
  const read = new Set(names);
  for (const [g, group] of metadata.row_groups.entries()) {
    for (const chunk of group.columns) {
      const meta = chunk.meta_data;
      if (meta === undefined || !read.has(meta.path_in_schema[0] ?? '')) continue;
      // Where hyparquet starts the chunk: its dictionary page when it has one.
      const start = Number(meta.dictionary_page_offset || meta.data_page_offset);
      const end = Math.min(start + Number(meta.total_compressed_size), file.byteLength);
      if (!(start >= 0 && start <= end)) continue; // hyparquet's own read says what is wrong
      const reader = { view: new DataView(file, start, end - start), offset: 0 };
      while (reader.offset < reader.view.byteLength) {
        const header = parquetHeader(reader);
        const values =
          header.data_page_header?.num_values ??
          header.data_page_header_v2?.num_values ??
          header.dictionary_page_header?.num_values ??
          0;
        if (values > maxValues) {
          throw badInput(
            path,
            `column ${quotedName(meta.path_in_schema[0] ?? '')} has a page of ${values.toLocaleString('en-US')} values (row group ${g + 1}), more than the ${maxValues.toLocaleString('en-US')} a page may hold`,
            'write the file with smaller pages (pyarrow: max_rows_per_page, 20,000 by default), or sample it',
          );
        }
        if (!(header.compressed_page_size >= 0)) break;
        reader.offset += header.compressed_page_size;
      }
    }
  }
}

async function parquetColumns(
  bytes: Buffer,
  path: string,
  wanted: Wanted,
  asText: Wanted,
  maxTextRows: number,
  maxPageValues: number,
): Promise<Column[]> {
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
    const top = parquetSchema(metadata).children;
    checkCells(path, rows, top.length);
    const nested = top.find((c) => c.children.length > 0 && wanted(c.element.name));
    if (nested !== undefined) {
      const kind = nested.element.converted_type ?? nested.element.logical_type?.type ?? 'struct';
      throw nestedColumn(path, nested.element.name, String(kind).toLowerCase());
    }
    const elements = top.filter((c) => c.children.length === 0 && wanted(c.element.name)).map((c) => c.element);
    const names = elements.map((e) => e.name);
    const isDecimal = (e: (typeof elements)[number]) =>
      e.converted_type === 'DECIMAL' || e.logical_type?.type === 'DECIMAL';
    // A text column of too many rows, refused from the metadata before a minute of reading (a 1.3 MB
    // file of 150M dictionary-encoded strings then failed as "not a readable Parquet file").
    for (const e of elements) {
      const number =
        ['INT32', 'INT64', 'INT96', 'FLOAT', 'DOUBLE'].includes(e.type ?? '') ||
        isDecimal(e) ||
        e.logical_type?.type === 'FLOAT16';
      if (!number || asText(e.name)) checkTextRows(path, e.name, rows, maxTextRows);
    }
    // A page too large for hyparquet's arrays (any column type), refused from the page headers.
    await checkPageValues(file, metadata, names, path, maxPageValues);
    // Decimals of more than 15 digits read as their stored unscaled integers and made numbers here
    // (`parquetDecimalValue`, rounded once, as the Arrow reader does): hyparquet's
    // `Number(unscaled) / 10 ** scale` rounds twice. Up to 15 digits (and scale 0 to 22) that is
    // exact-rounded already. Whatever the storage: INT32, INT64, FIXED_LEN_BYTE_ARRAY or BYTE_ARRAY.
    const rawDecimals = new Map<string, number>();
    for (const e of elements) {
      const scale = e.scale ?? 0;
      if (isDecimal(e) && ((e.precision ?? 38) > 15 || scale < 0 || scale > 22)) rawDecimals.set(e.name, scale);
    }
    const raw = new Set(elements.filter((e) => rawDecimals.has(e.name)));
    // A BYTE_ARRAY decimal read as plain bytes is decoded as UTF-8 text by hyparquet unless `utf8` is
    // off (while it stayed hyparquet's, 77 of 300 decimal128(38, 30) and 60 of 300 decimal256(50, 20)
    // were one ulp off). Off, the other plain byte-array columns come as bytes too, which `cellText`
    // decodes the same way (strict UTF-8).
    const utf8 = ![...raw].some((e) => e.type === 'BYTE_ARRAY');
    const readMetadata =
      raw.size === 0
        ? metadata
        : {
            ...metadata,
            schema: metadata.schema.map((e) => {
              if (!raw.has(e)) return e;
              const { converted_type: _converted, logical_type: _logical, ...plain } = e;
              return plain;
            }),
          };
    const isTime = (e: (typeof elements)[number]) =>
      e.type === 'INT96' ||
      ['TIMESTAMP', 'DATE', 'TIME'].includes(e.logical_type?.type ?? '') ||
      ['TIMESTAMP_MILLIS', 'TIMESTAMP_MICROS', 'DATE', 'TIME_MILLIS', 'TIME_MICROS'].includes(e.converted_type ?? '');
    // Which columns hold instants, dates or times of day (a CSV holds them as ISO-8601 text).
    const timeKinds = new Map<string, TimeKind>();
    for (const e of elements) {
      if (!isTime(e)) continue;
      const kind = e.logical_type?.type ?? e.converted_type ?? '';
      timeKinds.set(
        e.name,
        kind === 'DATE' ? 'date' : kind.startsWith('TIME') && !kind.startsWith('TIMESTAMP') ? 'time' : 'timestamp',
      );
    }
    // A time of day as milliseconds since midnight, as the Arrow reader makes it: hyparquet gives
    // the stored integer in the column's unit (milliseconds, microseconds or nanoseconds).
    const timeOfDay = new Map<string, (v: bigint | number) => number>();
    for (const e of elements) {
      const logical = e.logical_type;
      const unit =
        logical?.type === 'TIME'
          ? logical.unit
          : e.converted_type === 'TIME_MILLIS'
            ? 'MILLIS'
            : e.converted_type === 'TIME_MICROS'
              ? 'MICROS'
              : undefined;
      if (unit !== undefined)
        timeOfDay.set(
          e.name,
          unit === 'MILLIS' ? epochMsOf.millis : unit === 'MICROS' ? epochMsOf.micros : epochMsOf.nanos,
        );
    }
    // A decimal stored as INT32/INT64 holds its unscaled integer: an integer only with scale 0.
    const isFraction = (e: (typeof elements)[number]) => isDecimal(e) && (e.scale ?? 0) !== 0;
    const integerTyped = new Set(
      elements
        .filter((e) => (e.type === 'INT32' || e.type === 'INT64') && !isTime(e) && !isFraction(e))
        .map((e) => e.name),
    );
    const floatBits = new Map<string, FloatBits>();
    for (const e of elements) {
      if (e.type === 'DOUBLE') floatBits.set(e.name, 64);
      else if (e.type === 'FLOAT') floatBits.set(e.name, 32);
      else if (e.logical_type?.type === 'FLOAT16') floatBits.set(e.name, 16);
    }
    const chunks = new Map<string, Array<{ data: ArrayLike<unknown>; rowStart: number; rowEnd: number }>>();
    await parquetRead({
      file,
      metadata: readMetadata,
      compressors,
      columns: names,
      utf8,
      parsers: {
        timestampFromMilliseconds: epochMsOf.millis,
        timestampFromMicroseconds: epochMsOf.micros,
        timestampFromNanoseconds: epochMsOf.nanos,
        dateFromDays: epochMsOf.days,
        stringFromBytes,
      },
      onChunk: (chunk) => {
        const list = chunks.get(chunk.columnName) ?? [];
        const scale = rawDecimals.get(chunk.columnName);
        const stored = chunk.columnData as ArrayLike<unknown>;
        let data: ArrayLike<unknown> = stored;
        if (scale !== undefined) {
          const numbers = new Float64Array(stored.length);
          for (let i = 0; i < stored.length; i++) {
            const v = stored[i];
            numbers[i] = v === null || v === undefined ? Number.NaN : parquetDecimalValue(v, scale);
          }
          data = numbers;
        }
        list.push({ data, rowStart: chunk.rowStart, rowEnd: chunk.rowEnd });
        chunks.set(chunk.columnName, list);
      },
    });
    return names.map((name) => {
      // Each row's cell from its chunk, in row order; a row no chunk holds is missing. No array of
      // every cell first: a numeric column of more than ~134M rows was one (V8's bound on an array).
      const parts = (chunks.get(name) ?? []).sort((a, b) => a.rowStart - b.rowStart);
      const each = (visit: (v: unknown, r: number) => void) => {
        for (const c of parts) {
          for (let r = c.rowStart; r < Math.min(c.rowEnd, rows); r++) visit(c.data[r - c.rowStart], r);
        }
      };
      const numeric = parts.every((c) => {
        for (let i = 0; i < c.data.length; i++) {
          const v = c.data[i];
          if (!(v === null || v === undefined || typeof v === 'number' || typeof v === 'bigint')) return false;
        }
        return true;
      });
      const texts = (text: (v: unknown, r: number) => string | null) => {
        checkTextRows(path, name, rows, maxTextRows);
        // Grown in row order (rows no chunk holds are missing), not `new Array(rows)`: past 2^25
        // entries V8 makes that a slow dictionary array (40 M rows of "a"/"b": 72 s and 3.6 GB, now 22 s and 1.5 GB).
        const values: Array<string | null> = [];
        each((v, r) => {
          while (values.length < r) values.push(null);
          if (r < values.length)
            values[r] = text(v, r); // chunks overlapping (not seen; kept exact)
          else values.push(text(v, r));
        });
        while (values.length < rows) values.push(null);
        return values;
      };
      const bits = floatBits.get(name);
      if (numeric && asText(name) && (bits !== undefined || integerTyped.has(name))) {
        const text = (v: unknown) =>
          v === null || v === undefined
            ? null
            : bits === undefined
              ? integerText(v as bigint | number)
              : floatText(Number(v), bits);
        return { name, kind: 'categorical' as const, values: texts(text) };
      }
      if (numeric) {
        const toNumber = timeOfDay.get(name) ?? Number;
        const values = new Float64Array(rows).fill(Number.NaN);
        each((v, r) => {
          values[r] = v === null || v === undefined ? Number.NaN : toNumber(v as bigint | number);
        });
        const time = timeKinds.get(name);
        return {
          name,
          kind: 'numeric' as const,
          values,
          integerText: integerTyped.has(name),
          ...(time === undefined ? {} : { time }),
          // float32/16 widened exactly, marked with the width (as the Arrow reader).
          ...(bits === 16 || bits === 32 ? { float: bits } : {}),
        };
      }
      return { name, kind: 'categorical' as const, values: texts((v, r) => cellText(v, path, name, r)) };
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
