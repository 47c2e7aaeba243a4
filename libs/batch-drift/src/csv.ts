import { isUtf8 } from 'node:buffer';
import { ConfigError, DriftlineError } from '@driftline/core';
import {
  booleanCells,
  type Column,
  checkHeader,
  decodeCell,
  isMissingCell,
  isNegativeInfinityText,
  MAX_TEXT_ROWS,
  NOT_A_NUMBER,
  parseNumberCell,
  quotedName,
  resolveSelection,
  type TableOptions,
  tooManyTextRows,
} from './columns.js';

/** How `csvColumns` reads a CSV file. */
export interface CsvOptions extends TableOptions {
  /** One ASCII character that separates fields (default `,`); `\t` or `tab` for tab. */
  readonly delimiter?: string;
}

// Module-local copies: calls through an import binding cost a getter per cell under some loaders.
const notANumber = NOT_A_NUMBER;
const parseNumber = parseNumberCell;
const decode = decodeCell;
// Exact powers of ten (see parseNumberCell): a decimal of at most 15 digits over one is exact-rounded.
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const encoder = new TextEncoder();

/** The delimiter option as one byte: a single ASCII character other than a quote or a line break. */
export function delimiterByte(delimiter: string | undefined): number {
  if (delimiter === undefined) return 0x2c;
  const d = delimiter === 'tab' || delimiter === '\\t' ? '\t' : delimiter;
  const code = d.charCodeAt(0);
  if (d.length !== 1 || code > 0x7f || code === QUOTE || code === LF || code === CR) {
    throw new ConfigError(
      '--delimiter',
      `must be one ASCII character other than a quote or a line break (got ${JSON.stringify(delimiter)}) — e.g. --delimiter ';' or --delimiter tab`,
    );
  }
  return code;
}

/**
 * Reads a CSV table (RFC 4180: a header row, fields quoted with `"` may hold the delimiter, line
 * breaks and doubled quotes; LF, CRLF or CR line ends; a UTF-8 BOM is skipped; blank lines are
 * skipped) and types its columns as `typeColumns` does: numeric when every present cell is a finite
 * number, categorical otherwise (see `TableOptions` to select columns and force a type).
 *
 * One pass over the bytes that types cells as it goes: numbers go straight into a Float64Array
 * (a fast exact decimal parser, `Number` for the rest), so a file is never split into millions of
 * strings. Text is accepted for compatibility; bytes are faster. `source` names the file in errors.
 * The one CSV reader of driftline: `driftline drift` and `driftline reference` both read through it.
 */
export function csvColumns(input: string | Uint8Array, source: string, options: CsvOptions = {}): Column[] {
  const bytes = typeof input === 'string' ? encoder.encode(input) : input;
  checkUtf8(bytes, source);
  return new CsvReader(bytes, source, delimiterByte(options.delimiter)).read(options);
}

/**
 * Refuses bytes that are not UTF-8, naming the line: decoded leniently, every invalid byte became
 * U+FFFD, so `café` and `cafè` in Latin-1 were one category (drift hidden) and a Latin-1 file
 * against a UTF-8 one drifted on every accented value. One native pass; the line is found only
 * on failure.
 */
function checkUtf8(bytes: Uint8Array, source: string): void {
  if (isUtf8(bytes)) return;
  const utf16 = (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff);
  if (utf16) {
    throw new DriftlineError(
      'BAD_REQUEST',
      `${source}: a UTF-16 file — convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)`,
    );
  }
  const at = firstInvalidUtf8(bytes);
  let line = 1;
  for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) line++;
  throw new DriftlineError(
    'BAD_REQUEST',
    `${source}: line ${line}: bytes that are not UTF-8 (byte ${at}) — convert the file, e.g. iconv -f latin1 -t UTF-8`,
  );
}

/** Offset of the first byte that breaks UTF-8 (the file is known to hold one). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    const n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (n === 0 || i + n > bytes.length || !isUtf8(bytes.subarray(i, i + n))) return i;
    i += n;
  }
  return bytes.length;
}

/** Distinct short categories kept for reuse; beyond it (ids, free text) cells are decoded one by one. */
const INTERN_LIMIT = 1 << 15;

class CsvReader {
  private pos = 0;
  private line = 1;
  /** Byte range of the last field read; `escaped` when it held doubled quotes (text is in `text`). */
  private start = 0;
  private end = 0;
  private escaped = false;
  /** Whether the field `numericField` read ended its record. */
  private atEnd = false;
  private text = '';
  /** Line of the record being read, for errors. */
  private recordLine = 1;
  // The interned categories: an open-addressing table (entry + 1, 0 = empty) over byte ranges.
  private readonly internSlots = new Int32Array(INTERN_LIMIT * 2);
  /** Whether the last number cell read was written as an integer (see `integralBytes`). */
  private integral = true;
  private readonly internStarts = new Float64Array(INTERN_LIMIT);
  private readonly internEnds = new Float64Array(INTERN_LIMIT);
  private readonly internValues: Array<string | null> = [];
  private internCount = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly source: string,
    private readonly delimiter: number,
  ) {
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) this.pos = 3;
  }

  read(options: TableOptions): Column[] {
    this.skipBlankLines();
    if (this.pos >= this.bytes.length) {
      throw new DriftlineError('BAD_REQUEST', `${this.source}: empty file — expected a header row and data rows`);
    }
    const header = this.readHeader();
    const selection = resolveSelection(header, options, this.source);
    const width = header.length;
    // For each field position, its output slot or -1; kept columns in header order.
    const slotOf = new Int32Array(width).fill(-1);
    selection.forEach((c, slot) => {
      slotOf[c] = slot;
    });
    // A row takes at least one byte per field (its delimiter): no more rows than that can come. A
    // fixed 1,024 rows per column made a 2.9 MB file of 300,000 columns and one row take 5.6 GB.
    let capacity = Math.max(1, Math.min(1024, Math.ceil((this.bytes.length - this.pos) / Math.max(1, width))));
    // Per output slot, in parallel arrays (monomorphic in the hot loop): numbers while the column
    // is numeric, text once it is categorical (from the row `flippedAt` on; earlier rows re-read).
    const numeric = selection.map((c) => !options.categorical?.includes(header[c]!));
    const forced = selection.map((c) => options.numeric?.includes(header[c]!) ?? false);
    const numbers = selection.map(() => new Float64Array(capacity));
    const texts: Array<Array<string | null>> = selection.map(() => []);
    const flippedAt = selection.map(() => 0);
    // A cell written with a decimal point or an exponent: pandas would read the column as float64.
    const fractional = selection.map(() => false);
    // Where each record starts, to re-read the cells of a column that turns out not to be numeric.
    let rowStarts = new Float64Array(capacity);
    let rows = 0;
    const dataStart = this.pos;
    // A text column holds one JS array entry per row: refused past this, before V8 aborts (~134M).
    const maxTextRows = options.maxTextRows ?? MAX_TEXT_ROWS;
    const bytes = this.bytes;
    const n = bytes.length;
    const delimiter = this.delimiter;
    // With one column a blank line between rows is a row whose cell is empty (missing); the blank
    // lines at the end of the file (and the line break ending the last row) are not rows.
    let contentEnd = n;
    while (contentEnd > this.pos && (bytes[contentEnd - 1] === LF || bytes[contentEnd - 1] === CR)) contentEnd--;
    for (;;) {
      if (width > 1) this.skipBlankLines();
      if (this.pos >= contentEnd) break;
      if (rows === capacity) {
        // Grow to the row count the bytes read so far predict, so a large file grows once or twice.
        const predicted = Math.ceil(((n - dataStart) / Math.max(1, this.pos - dataStart)) * rows * 1.05) + 16;
        capacity = Math.max(predicted, capacity + 1024);
        rowStarts = grow(rowStarts, capacity);
        for (let k = 0; k < numbers.length; k++) if (numeric[k]) numbers[k] = grow(numbers[k]!, capacity);
      }
      rowStarts[rows] = this.pos;
      this.recordLine = this.line;
      let field = 0;
      for (;;) {
        const slot = field < width ? slotOf[field]! : -1;
        let atEnd: boolean;
        if (slot >= 0 && numeric[slot]) {
          // The hot path: scan and parse a number in one pass over its bytes.
          let x: number;
          if (bytes[this.pos] === QUOTE) {
            atEnd = this.readField();
            x = this.escaped ? notANumber : parseNumber(bytes, this.start, this.end);
            this.integral = integralBytes(bytes, this.start, this.end);
          } else {
            x = this.numericField();
            atEnd = this.atEnd;
          }
          const cell = x === notANumber ? this.cell() : '';
          if (x === notANumber && !isNegativeInfinityText(cell)) {
            if (forced[slot]) {
              throw new DriftlineError(
                'BAD_REQUEST',
                `${this.source}: line ${this.recordLine}: column ${quotedName(header[selection[slot]!]!)} is forced numeric but holds ${JSON.stringify(cell.slice(0, 40))} — fix the value or drop the column from --numeric`,
              );
            }
            if (rows >= maxTextRows) throw tooManyTextRows(this.source, header[selection[slot]!]!, maxTextRows);
            const values = new Array<string | null>(rows);
            values[rows] = cell;
            texts[slot] = values;
            numeric[slot] = false;
            flippedAt[slot] = rows;
          } else {
            numbers[slot]![rows] = x;
            if (!this.integral) fractional[slot] = true;
          }
        } else {
          atEnd = this.readField();
          if (slot >= 0 && rows >= maxTextRows)
            throw tooManyTextRows(this.source, header[selection[slot]!]!, maxTextRows);
          if (slot >= 0) texts[slot]!.push(this.escaped ? this.missingOrText(this.text) : this.interned());
        }
        field++;
        if (atEnd) break;
      }
      if (field !== width) {
        throw new DriftlineError(
          'BAD_REQUEST',
          `${this.source}: line ${this.recordLine} has ${field} field${field === 1 ? '' : 's'}, the header has ${width} — every row needs one field per column; quote fields that contain ${JSON.stringify(String.fromCharCode(delimiter))} or pass --delimiter`,
        );
      }
      rows++;
    }
    return selection.map((c, slot): Column => {
      const name = header[c]!;
      if (numeric[slot]) {
        const all = numbers[slot]!;
        const values = all.length - rows > 4096 ? all.slice(0, rows) : all.subarray(0, rows);
        return { name, kind: 'numeric', values, integerText: !fractional[slot] };
      }
      if (flippedAt[slot]! > 0) this.reread(texts[slot]!, c, rowStarts, flippedAt[slot]!);
      // Categories are the cells exactly as written (`1.10` and `1.1` are two categories), but for
      // booleans, which pandas reads as bool whatever their spelling (`booleanCells`).
      const values = options.categorical?.includes(name) ? texts[slot]! : booleanCells(texts[slot]!);
      return { name, kind: 'categorical', values };
    });
  }

  /** Fills the first `count` cells of column `c` as text (the column was read as numbers until then). */
  private reread(out: Array<string | null>, c: number, rowStarts: Float64Array, count: number): void {
    for (let r = 0; r < count; r++) {
      this.pos = rowStarts[r]!;
      for (let f = 0; f < c; f++) this.readField();
      this.readField();
      out[r] = this.escaped ? this.missingOrText(this.text) : this.interned();
    }
  }

  private missingOrText(cell: string): string | null {
    return isMissingCell(cell) ? null : cell;
  }

  /**
   * The last (unescaped) field as a category: one string per distinct byte sequence, found by a
   * hash of the bytes, so the usual column of a few categories allocates nothing per cell.
   */
  private interned(): string | null {
    const bytes = this.bytes;
    const start = this.start;
    const end = this.end;
    const len = end - start;
    if (len > 64 || this.internCount >= INTERN_LIMIT) return this.missingOrText(decode(bytes, start, end));
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
    const mask = this.internSlots.length - 1;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const entry = this.internSlots[slot]!;
      if (entry === 0) break;
      const e = entry - 1;
      const s = this.internStarts[e]!;
      if (this.internEnds[e]! - s !== len) continue;
      let same = true;
      for (let i = 0; i < len; i++) {
        if (bytes[s + i] !== bytes[start + i]) {
          same = false;
          break;
        }
      }
      if (same) return this.internValues[e]!;
    }
    const value = this.missingOrText(decode(bytes, start, end));
    const e = this.internCount++;
    this.internStarts[e] = start;
    this.internEnds[e] = end;
    this.internValues[e] = value;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      if (this.internSlots[slot] === 0) {
        this.internSlots[slot] = e + 1;
        break;
      }
    }
    return value;
  }

  private readHeader(): string[] {
    const header: string[] = [];
    this.recordLine = this.line;
    for (;;) {
      const atEnd = this.readField();
      header.push(this.cell());
      if (atEnd) break;
    }
    checkHeader(header, this.source, `: line ${this.recordLine}`);
    return header;
  }

  private skipBlankLines(): void {
    const bytes = this.bytes;
    for (;;) {
      const b = bytes[this.pos];
      if (b === LF) {
        this.pos++;
        this.line++;
      } else if (b === CR) {
        this.pos += bytes[this.pos + 1] === LF ? 2 : 1;
        this.line++;
      } else return;
    }
  }

  /**
   * Reads one unquoted field from \`pos\` as \`readField\` does and returns it as \`parseNumberCell\`
   * would, parsing plain decimals while it looks for the field's end (\`atEnd\`: it ended its record).
   */
  private numericField(): number {
    const bytes = this.bytes;
    const n = bytes.length;
    const delimiter = this.delimiter;
    const start = this.pos;
    let i = start;
    let c = i < n ? bytes[i]! : -1;
    const negative = c === 0x2d;
    if (negative || c === 0x2b) c = ++i < n ? bytes[i]! : -1;
    let mantissa = 0;
    let significant = 0;
    let digits = 0;
    let scale = 0;
    while (c >= 0x30 && c <= 0x39) {
      if (mantissa !== 0 || c !== 0x30) {
        mantissa = mantissa * 10 + (c - 0x30);
        significant++;
      }
      digits++;
      c = ++i < n ? bytes[i]! : -1;
    }
    const dot = c === 0x2e;
    if (dot) {
      c = ++i < n ? bytes[i]! : -1;
      while (c >= 0x30 && c <= 0x39) {
        mantissa = mantissa * 10 + (c - 0x30);
        if (mantissa !== 0) significant++;
        scale--;
        digits++;
        c = ++i < n ? bytes[i]! : -1;
      }
    }
    let simple = digits > 0 && significant <= 15 && i > start;
    this.integral = !dot;
    if (c !== delimiter && c !== LF && c !== CR && c !== -1) {
      // An exponent, a space, text: find the end, then parse the cell the general way.
      simple = false;
      while (i < n) {
        const b = bytes[i]!;
        if (b === delimiter || b === LF || b === CR) break;
        i++;
      }
    }
    if (!simple && !dot) this.integral = integralBytes(bytes, start, i);
    this.start = start;
    this.end = i;
    this.escaped = false;
    if (i < n && bytes[i] === delimiter) {
      this.pos = i + 1;
      this.atEnd = false;
    } else {
      this.pos = this.lineEnd(i);
      this.atEnd = true;
    }
    if (i === start) return Number.NaN;
    if (simple && scale >= -22) {
      if (mantissa === 0) return negative ? -0 : 0;
      const x = scale === 0 ? mantissa : mantissa / POW10[-scale]!;
      return negative ? -x : x;
    }
    return parseNumber(bytes, start, i);
  }

  /** The last field as text. */
  private cell(): string {
    if (this.escaped) return this.text;
    return decode(this.bytes, this.start, this.end);
  }

  /**
   * Reads one field from `pos`; sets its range (or `text` when it held doubled quotes) and returns
   * true when it ended its record (line end or end of input).
   */
  private readField(): boolean {
    const bytes = this.bytes;
    const n = bytes.length;
    const delimiter = this.delimiter;
    let i = this.pos;
    this.escaped = false;
    if (bytes[i] !== QUOTE) {
      this.start = i;
      while (i < n) {
        const b = bytes[i]!;
        if (b === delimiter) {
          this.end = i;
          this.pos = i + 1;
          return false;
        }
        if (b === LF || b === CR) break;
        i++;
      }
      this.end = i;
      this.pos = this.lineEnd(i);
      return true;
    }
    // Quoted: up to the closing quote; a doubled quote is one quote character.
    const openedAt = this.line;
    this.start = ++i;
    let parts: string[] | undefined;
    let from = i;
    for (;;) {
      if (i >= n) {
        throw new DriftlineError(
          'BAD_REQUEST',
          `${this.source}: line ${openedAt}: a quoted field is never closed — close it with '"' and write a quote inside a field as '""'`,
        );
      }
      const b = bytes[i]!;
      if (b === QUOTE) {
        if (bytes[i + 1] === QUOTE) {
          if (parts === undefined) parts = [];
          parts.push(decode(bytes, from, i + 1));
          i += 2;
          from = i;
          continue;
        }
        break;
      }
      if (b === LF) this.line++;
      else if (b === CR && bytes[i + 1] !== LF) this.line++;
      i++;
    }
    this.end = i;
    if (parts !== undefined) {
      parts.push(decode(bytes, from, i));
      this.text = parts.join('');
      this.escaped = true;
    }
    i++; // the closing quote
    const after = bytes[i];
    if (after === delimiter) {
      this.pos = i + 1;
      return false;
    }
    if (i >= n || after === LF || after === CR) {
      this.pos = this.lineEnd(i);
      return true;
    }
    throw new DriftlineError(
      'BAD_REQUEST',
      `${this.source}: line ${this.line}: unexpected ${JSON.stringify(String.fromCharCode(after!))} after a closing quote — a quoted field must end at a delimiter or a line end; write a quote inside a field as '""'`,
    );
  }

  /** Position after the line end at `i` (LF, CRLF or CR), or `i` at the end of input. */
  private lineEnd(i: number): number {
    const b = this.bytes[i];
    if (b === LF) {
      this.line++;
      return i + 1;
    }
    if (b === CR) {
      this.line++;
      return this.bytes[i + 1] === LF ? i + 2 : i + 1;
    }
    return i;
  }
}

/** An ASCII blank, as pandas' parser skips around a number: space, tab, LF, VT, FF, CR. */
const isBlankByte = (b: number | undefined) => b === 0x20 || (b !== undefined && b >= 0x09 && b <= 0x0d);

/** Bytes of a cell that pandas reads as an integer: optional blanks and sign, then only digits. */
function integralBytes(bytes: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end && isBlankByte(bytes[i])) i++;
  if (i < end && (bytes[i] === 0x2b || bytes[i] === 0x2d)) i++;
  let digits = 0;
  while (i < end && bytes[i]! >= 0x30 && bytes[i]! <= 0x39) {
    i++;
    digits++;
  }
  while (i < end && isBlankByte(bytes[i])) i++;
  return digits > 0 && i === end;
}

function grow(a: Float64Array, capacity: number): Float64Array<ArrayBuffer> {
  const out = new Float64Array(capacity);
  out.set(a);
  return out;
}
