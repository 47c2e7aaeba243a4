/** A typed column of a table: numbers (NaN = missing) or categories (null = missing). */
export type Column =
  | { readonly name: string; readonly kind: 'numeric'; readonly values: Float64Array }
  | { readonly name: string; readonly kind: 'categorical'; readonly values: ReadonlyArray<string | null> };

const MISSING = new Set(['', 'NA', 'NaN', 'nan', 'null', 'NULL', 'None']);

/**
 * Types raw text cells column by column: a column is numeric when every present cell parses as a
 * finite number, categorical otherwise. Empty cells and the usual NA spellings are missing.
 */
export function typeColumns(header: readonly string[], rows: ReadonlyArray<readonly string[]>): Column[] {
  return header.map((name, c) => {
    let numeric = true;
    for (const row of rows) {
      const cell = row[c] ?? '';
      if (MISSING.has(cell)) continue;
      if (!Number.isFinite(Number(cell))) {
        numeric = false;
        break;
      }
    }
    if (numeric) {
      const values = new Float64Array(rows.length);
      rows.forEach((row, r) => {
        const cell = row[c] ?? '';
        values[r] = MISSING.has(cell) ? Number.NaN : Number(cell);
      });
      return { name, kind: 'numeric', values };
    }
    return {
      name,
      kind: 'categorical',
      values: rows.map((row) => (MISSING.has(row[c] ?? '') ? null : (row[c] as string))),
    };
  });
}
