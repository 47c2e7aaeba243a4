/** A typed column of a table: numbers (NaN = missing) or categories (null = missing). */
export type Column =
  | { readonly name: string; readonly kind: 'numeric'; readonly values: Float64Array }
  | { readonly name: string; readonly kind: 'categorical'; readonly values: ReadonlyArray<string | null> };

const MISSING = new Set(['', 'NA', 'NaN', 'nan', 'null', 'NULL', 'None']);

/** Empty, blank (Number(' ') is 0, not missing) or one of the usual NA spellings. */
function isMissing(cell: string): boolean {
  return MISSING.has(cell) || cell.trim() === '';
}

/**
 * Types raw text cells column by column: a column is numeric when every present cell parses as a
 * finite number, categorical otherwise. Empty and blank cells and the usual NA spellings are missing.
 */
export function typeColumns(header: readonly string[], rows: ReadonlyArray<readonly string[]>): Column[] {
  return header.map((name, c) => numericColumn(name, rows, c) ?? categoricalColumn(name, rows, c));
}

// One pass that converts as it types: a column stays numeric until a present cell is not a number.
function numericColumn(name: string, rows: ReadonlyArray<readonly string[]>, c: number): Column | undefined {
  const values = new Float64Array(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const cell = rows[r]![c] ?? '';
    if (cell === '') {
      values[r] = Number.NaN;
      continue;
    }
    const n = Number(cell);
    // Only a zero can come from a blank cell; the check stays off the hot path of other numbers.
    if (Number.isFinite(n)) values[r] = n === 0 && cell.trim() === '' ? Number.NaN : n;
    else if (MISSING.has(cell)) values[r] = Number.NaN;
    else return undefined;
  }
  return { name, kind: 'numeric', values };
}

function categoricalColumn(name: string, rows: ReadonlyArray<readonly string[]>, c: number): Column {
  return {
    name,
    kind: 'categorical',
    values: rows.map((row) => (isMissing(row[c] ?? '') ? null : (row[c] as string))),
  };
}
