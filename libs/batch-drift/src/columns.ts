import { cutText, DriftlineError } from '@driftline/core';
import { booleanCategory } from '@driftline/drift';
import { floatText, integerText } from '@driftline/stats';

/** What a numeric column of a time type holds (`Column.time`). */
export type TimeKind = 'timestamp' | 'date' | 'time';

/** A typed column of a table: numbers (NaN = missing) or categories (null = missing). */
export type Column =
  | {
      readonly name: string;
      readonly kind: 'numeric';
      readonly values: Float64Array;
      /**
       * Every present cell was written as an integer (no decimal point, no exponent) or stored as an
       * integer type: what makes pandas read int64 rather than float64, and so what Evidently's
       * column typing sees (`--stattest evidently`). Undefined when the source does not say.
       */
      readonly integerText?: boolean;
      /**
       * The column holds instants or times of an Arrow/Parquet time type, as epoch milliseconds
       * (`timestamp`, `date`) or milliseconds since midnight (`time`). A CSV holds them as ISO-8601
       * text: `timeColumnsAsNumbers` reads that text as the same numbers.
       */
      readonly time?: TimeKind;
      /**
       * The column is an Arrow/Parquet float32 (32) or float16 (16) column: its values are the stored
       * ones, widened exactly (float32 0.1 is 0.10000000149011612). `floatColumnsAtWidth` compares a
       * pair holding one at that width, each value at its shortest digits (0.1), whatever the other
       * side's spelling of the same value; `profilesFromColumns` profiles it at its shortest digits.
       */
      readonly float?: 16 | 32;
    }
  | { readonly name: string; readonly kind: 'categorical'; readonly values: ReadonlyArray<string | null> };

/** Which columns of a table to read, and types forced on some of them (names of the header). */
export interface TableOptions {
  /** Only these columns (every name must be in the table). */
  readonly columns?: readonly string[];
  /** Leave these columns out (names not in the table are ignored). */
  readonly ignore?: readonly string[];
  /** Read these columns as categories even when every value is a number (codes, zip codes). */
  readonly categorical?: readonly string[];
  /** These columns must be numbers: a present value that is not one is an error naming its line. */
  readonly numeric?: readonly string[];
  /** Most rows a text column may have (default `MAX_TEXT_ROWS`; a lower one for tests). */
  readonly maxTextRows?: number;
}

/**
 * Most rows a text (categorical) column may have: its cells are one JavaScript array, and V8 ends
 * the process ("Fatal JavaScript invalid size error", exit 133) on one of about 134 million
 * entries; a CSV column of 140 million `a`/`b` cells did. Numeric columns are typed arrays (no
 * such bound).
 */
export const MAX_TEXT_ROWS = 100_000_000;

/** Refuses a text column of more than `limit` rows (`MAX_TEXT_ROWS`): one line naming it. */
export function checkTextRows(source: string, name: string, rows: number, limit = MAX_TEXT_ROWS): void {
  if (rows > limit) throw tooManyTextRows(source, name, limit);
}

/** The error of `checkTextRows`. */
export function tooManyTextRows(source: string, name: string, limit = MAX_TEXT_ROWS): DriftlineError {
  return new DriftlineError(
    'BAD_REQUEST',
    `${source}: more than ${limit.toLocaleString('en-US')} rows in text column ${quotedName(name)} — sample it`,
  );
}

/** Characters of a column name an error line shows: a 200,000-character header made a 200 KB line. */
const NAME_CHARS = 80;

/** A column name as error lines show it: cut to `NAME_CHARS` (with …) when longer. */
export function shortName(name: string): string {
  return name.length > NAME_CHARS ? `${cutText(name, NAME_CHARS)}…` : name;
}

/** A column name quoted for an error line (`"name"`), cut as `shortName` cuts it. */
export function quotedName(name: string): string {
  return JSON.stringify(shortName(name));
}

const BLANK = /\s/;

/**
 * The names of a list option's value (`--ignore a,b`): split at commas, each name trimmed of
 * blanks. A backslash before a comma, a backslash or a blank makes that character part of the
 * name (`a\,b` is the one name `a,b`; `x\ ` ends with its blank); any other backslash is itself.
 * `listItem` writes a name this way.
 */
export function parseNameList(value: string): string[] {
  const names: string[] = [];
  let name = '';
  // The length of the name without its trailing blanks (an escaped blank is kept).
  let kept = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    const next = value[i + 1];
    if (c === '\\' && next !== undefined && (next === ',' || next === '\\' || BLANK.test(next))) {
      name += next;
      kept = name.length;
      i++;
    } else if (c === ',') {
      names.push(name.slice(0, kept));
      name = '';
      kept = 0;
    } else if (!(BLANK.test(c) && name === '')) {
      name += c;
      if (!BLANK.test(c)) kept = name.length;
    }
  }
  names.push(name.slice(0, kept));
  return names;
}

/**
 * A column name as a list option takes it back (`parseNameList`): its commas, its blanks at
 * either end, and a backslash that would escape the next character are escaped.
 */
export function listItem(name: string): string {
  let first = 0;
  while (first < name.length && BLANK.test(name[first]!)) first++;
  let last = name.length - 1;
  while (last >= 0 && BLANK.test(name[last]!)) last--;
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    const next = name[i + 1];
    if (c === ',') out += '\\,';
    else if (c === '\\' && (next === undefined || next === ',' || next === '\\' || BLANK.test(next))) out += '\\\\';
    else if (BLANK.test(c) && (i < first || i > last)) out += `\\${c}`;
    else out += c;
  }
  return out;
}

/** A word as a POSIX shell reads it back: as it is when plain, else single-quoted. */
export function shellWord(word: string): string {
  return /^[\w.@%+:/-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The option and column name an error line suggests (`--ignore 'a\,b'`), written so that a shell
 * and the list option read back exactly that name; a name longer than an error line shows
 * (`shortName`) cannot be copied from it, so the line says to give its full name instead.
 */
export function suggestedOption(option: string, name: string): string {
  if (name.length > NAME_CHARS) return `${option} and the column's full name`;
  // An error line shows a control character escaped (`\u001b`, `printable` of @driftline/core):
  // copied from it, a quoted word would be another name.
  if (hasControl(name)) return `${option} and the column's name (it holds control characters)`;
  return `${option} ${shellWord(listItem(name))}`;
}

/** Whether `text` holds a character `printable` (@driftline/core) escapes: C0, DEL, C1, bidi controls. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (
      c < 0x20 ||
      (c >= 0x7f && c <= 0x9f) ||
      c === 0x200e ||
      c === 0x200f ||
      (c >= 0x202a && c <= 0x202e) ||
      (c >= 0x2066 && c <= 0x2069)
    )
      return true;
  }
  return false;
}

/** pandas' default `na_values` (read_csv's STR_NA_VALUES, pandas 2.3), exactly as written. */
const MISSING = new Set([
  '',
  '#N/A',
  '#N/A N/A',
  '#NA',
  '-1.#IND',
  '-1.#QNAN',
  '-NaN',
  '-nan',
  '1.#IND',
  '1.#QNAN',
  '<NA>',
  'N/A',
  'NA',
  'NULL',
  'NaN',
  'None',
  'n/a',
  'nan',
  'null',
]);

/** Empty, blank (Number(' ') is 0, not missing) or one of pandas' NA spellings. */
export function isMissingCell(cell: string): boolean {
  return MISSING.has(cell) || cell.trim() === '';
}

/** pandas' spellings of infinity, any case, no blanks: `inf`, `-Infinity`, `+INF` (to_csv writes `inf`). */
const INFINITY_TEXT = /^[+-]?inf(inity)?$/i;

/**
 * A number that is neither finite nor missing: what `parseNumber*` return for a non-number — and
 * for a spelling of −infinity, whose value it is; `isNegativeInfinityText` tells the two apart.
 */
export const NOT_A_NUMBER = Number.NEGATIVE_INFINITY;

/** A cell pandas reads as −infinity (`-inf`, `-Infinity`, any case). */
export function isNegativeInfinityText(cell: string): boolean {
  return cell.charCodeAt(0) === 0x2d && INFINITY_TEXT.test(cell);
}

/**
 * A decimal number as pandas' C parser reads one: ASCII blanks around it, a sign, digits with at
 * most one point (`5.`, `.5`), an exponent with digits. `Number` reads more — `0x1F`, `0b101`,
 * `0o17`, and blanks such as U+00A0 or a BOM around digits — which pandas keeps as text.
 */
const DECIMAL_TEXT = /^[ \t\n\v\f\r]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[ \t\n\v\f\r]*$/;

/**
 * A text cell as a number: finite value, ±Infinity for pandas' infinity spellings, NaN when missing
 * (`isMissingCell`), `NOT_A_NUMBER` when it is text (or −infinity: see `isNegativeInfinityText`).
 * A cell is a number when it is a decimal (`DECIMAL_TEXT`: ` 5 `, `1e3`, `.5`; not `0x1f`) whose
 * value is finite (`1e400` is text, as in pandas), or an infinity spelling.
 */
export function parseNumberText(cell: string): number {
  if (DECIMAL_TEXT.test(cell)) {
    const n = Number(cell);
    return Number.isFinite(n) ? n : NOT_A_NUMBER;
  }
  if (isMissingCell(cell)) return Number.NaN;
  return INFINITY_TEXT.test(cell) && cell.charCodeAt(0) !== 0x2d ? Number.POSITIVE_INFINITY : NOT_A_NUMBER;
}

/** True when `parseNumberText(cell)` (or `parseNumberCell`) returned `x` for text, not for a number. */
export function isTextNumber(x: number, cell: string): boolean {
  return x === NOT_A_NUMBER && !isNegativeInfinityText(cell);
}

// Exact powers of ten: a decimal with at most 15 significant digits times or over one of these is
// a single correctly rounded operation (Clinger's fast path), so it equals what Number() returns.
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);

/**
 * `parseNumberText` of the UTF-8 cell `bytes[start, end)`, without making a string for plain
 * decimals (`-12.5`, `3e-4`): the hot path of reading a CSV. Anything else goes through `Number`.
 */
export function parseNumberCell(bytes: Uint8Array, start: number, end: number): number {
  if (start === end) return Number.NaN;
  let i = start;
  let c = bytes[i]!;
  const negative = c === 0x2d;
  if (negative || c === 0x2b) i++;
  let mantissa = 0;
  let significant = 0;
  let digits = 0;
  let scale = 0;
  for (; i < end; i++) {
    c = bytes[i]!;
    if (c < 0x30 || c > 0x39) break;
    if (mantissa !== 0 || c !== 0x30) {
      mantissa = mantissa * 10 + (c - 0x30);
      significant++;
    }
    digits++;
  }
  if (i < end && bytes[i] === 0x2e) {
    i++;
    for (; i < end; i++) {
      c = bytes[i]!;
      if (c < 0x30 || c > 0x39) break;
      mantissa = mantissa * 10 + (c - 0x30);
      if (mantissa !== 0) significant++;
      scale--;
      digits++;
    }
  }
  if (i < end && (bytes[i] === 0x65 || bytes[i] === 0x45) && digits > 0) {
    i++;
    let expNegative = false;
    if (bytes[i] === 0x2d || bytes[i] === 0x2b) expNegative = bytes[i++] === 0x2d;
    let exp = 0;
    let expDigits = 0;
    for (; i < end && expDigits < 5; i++) {
      c = bytes[i]!;
      if (c < 0x30 || c > 0x39) break;
      exp = exp * 10 + (c - 0x30);
      expDigits++;
    }
    if (expDigits === 0) i = -1; // `1e`: let Number decide
    scale += expNegative ? -exp : exp;
  }
  if (i === end && digits > 0 && significant <= 15) {
    if (mantissa === 0) return negative ? -0 : 0;
    let x: number | undefined;
    if (scale >= 0 && scale <= 22) x = mantissa * POW10[scale]!;
    else if (scale < 0 && scale >= -22) x = mantissa / POW10[-scale]!;
    if (x !== undefined && Number.isFinite(x)) return negative ? -x : x;
  }
  return parseNumberText(decodeCell(bytes, start, end));
}

// ignoreBOM: a U+FEFF that starts a cell is part of it (the decoder dropped it: `\uFEFF12` read as 12).
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** The UTF-8 cell `bytes[start, end)` as a string. */
export function decodeCell(bytes: Uint8Array, start: number, end: number): string {
  const len = end - start;
  if (len === 0) return '';
  // Short ASCII cells (nearly all) are faster through fromCharCode than through TextDecoder.
  if (len <= 32) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (bytes[i]! > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  return utf8.decode(bytes.subarray(start, end));
}

/** Header names must be present and unique; `source` names the file in errors. */
export function checkHeader(header: readonly string[], source: string, where = ''): void {
  const seen = new Map<string, number>();
  header.forEach((name, i) => {
    if (name.trim() === '') {
      throw new DriftlineError(
        'BAD_REQUEST',
        `${source}${where}: column ${i + 1} of the header has no name — name every column in the header row`,
      );
    }
    const first = seen.get(name);
    if (first !== undefined) {
      throw new DriftlineError(
        'BAD_REQUEST',
        `${source}${where}: duplicate column name ${quotedName(name)} (columns ${first + 1} and ${i + 1}) — rename one of them`,
      );
    }
    seen.set(name, i);
  });
}

function list(names: readonly string[]): string {
  const shown = names.slice(0, 12).map(quotedName);
  return names.length > 12 ? `${shown.join(', ')} and ${names.length - 12} more` : shown.join(', ');
}

/**
 * The positions of the header to read, in header order, after `columns` and `ignore`. A name given
 * to `columns`, `categorical` or `numeric` that the header lacks is an error naming the file.
 */
export function resolveSelection(header: readonly string[], options: TableOptions, source: string): number[] {
  const names = new Set(header);
  for (const option of ['columns', 'categorical', 'numeric'] as const) {
    for (const name of options[option] ?? []) {
      if (!names.has(name) && !(option !== 'columns' && options.ignore?.includes(name))) {
        throw new DriftlineError(
          'BAD_REQUEST',
          `${source}: no column ${quotedName(name)} (given to --${option}) — the columns are ${list(header)}`,
        );
      }
    }
  }
  const both = (options.categorical ?? []).find((n) => options.numeric?.includes(n));
  if (both !== undefined) {
    throw new DriftlineError(
      'BAD_REQUEST',
      `column ${quotedName(both)} is given to both --categorical and --numeric — give it to one`,
    );
  }
  const only = options.columns === undefined ? undefined : new Set(options.columns);
  const ignore = new Set(options.ignore ?? []);
  const out: number[] = [];
  header.forEach((name, i) => {
    if ((only === undefined || only.has(name)) && !ignore.has(name)) out.push(i);
  });
  return out;
}

/**
 * Applies `TableOptions` to columns read by a typed reader (Arrow, Parquet): selection, then the
 * forced types — numbers become the text pandas writes for them in a CSV (`integerText` for an
 * integer column, else `floatText`), text stays as it is, and text becomes numbers (a non-number is
 * an error naming its row, counted from 1). A reader holding the stored values (int64 beyond 2^53,
 * float32) makes their text itself, before this.
 */
export function applyTableOptions(columns: readonly Column[], options: TableOptions, source: string): Column[] {
  const header = columns.map((c) => c.name);
  checkHeader(header, source);
  return resolveSelection(header, options, source).map((i) => {
    const column = columns[i]!;
    if (column.kind === 'numeric' && options.categorical?.includes(column.name)) {
      checkTextRows(source, column.name, column.values.length, options.maxTextRows);
      const text = (x: number) => (Number.isNaN(x) ? null : column.integerText ? integerText(x) : floatText(x));
      return { name: column.name, kind: 'categorical', values: Array.from(column.values, text) };
    }
    if (column.kind === 'categorical' && options.numeric?.includes(column.name)) {
      const values = new Float64Array(column.values.length);
      column.values.forEach((cell, r) => {
        const x = cell === null ? Number.NaN : parseNumberText(cell);
        if (cell !== null && isTextNumber(x, cell)) {
          throw new DriftlineError(
            'BAD_REQUEST',
            `${source}: row ${r + 1}: column ${quotedName(column.name)} is forced numeric but holds ${JSON.stringify(String(cell).slice(0, 40))} — fix the value or drop the column from --numeric`,
          );
        }
        values[r] = x;
      });
      return { name: column.name, kind: 'numeric', values };
    }
    return column;
  });
}

/**
 * Types raw text cells column by column, as pandas' read_csv does: a column is numeric when every
 * present cell is a number (finite, or an infinity spelling), categorical otherwise. Empty and blank
 * cells and pandas' NA spellings are missing.
 */
export function typeColumns(header: readonly string[], rows: ReadonlyArray<readonly string[]>): Column[] {
  return header.map((name, c) => numericColumn(name, rows, c) ?? categoricalColumn(name, rows, c));
}

// One pass that converts as it types: a column stays numeric until a present cell is not a number.
function numericColumn(name: string, rows: ReadonlyArray<readonly string[]>, c: number): Column | undefined {
  const values = new Float64Array(rows.length);
  let integerText = true;
  for (let r = 0; r < rows.length; r++) {
    const cell = rows[r]![c] ?? '';
    const x = parseNumberText(cell);
    if (isTextNumber(x, cell)) return undefined;
    values[r] = x;
    if (integerText && !Number.isNaN(x) && !isIntegerText(cell)) integerText = false;
  }
  return { name, kind: 'numeric', values, integerText };
}

const INTEGER_TEXT = /^[ \t\n\v\f\r]*[+-]?\d+[ \t\n\v\f\r]*$/;

/** A number cell written as an integer, as pandas would read it into an int64 column. */
export function isIntegerText(cell: string): boolean {
  return INTEGER_TEXT.test(cell);
}

function categoricalColumn(name: string, rows: ReadonlyArray<readonly string[]>, c: number): Column {
  return {
    name,
    kind: 'categorical',
    values: booleanCells(rows.map((row) => (isMissingCell(row[c] ?? '') ? null : (row[c] as string)))),
  };
}

/** pandas' default true_values / false_values: a column of only these (and missing) is bool. */
const BOOLEAN_TEXT = new Map<string, boolean>([
  ['True', true],
  ['TRUE', true],
  ['true', true],
  ['False', false],
  ['FALSE', false],
  ['false', false],
]);

/**
 * Text cells of a CSV column as pandas types them: when every present cell spells a boolean the
 * column is bool, keyed `true` / `false` (`booleanCategory`, as live events, the trainer,
 * Arrow/Parquet bools and stored profiles are), else the cells as written. A column forced
 * categorical keeps its cells as written (the caller does not call this).
 */
export function booleanCells(values: Array<string | null>): Array<string | null> {
  let any = false;
  for (const v of values) {
    if (v === null) continue;
    if (!BOOLEAN_TEXT.has(v)) return values;
    any = true;
  }
  if (!any) return values;
  return values.map((v) => (v === null ? null : booleanCategory(BOOLEAN_TEXT.get(v)!)));
}
