import { atFloatWidth, type NarrowFloatBits } from '@driftline/stats';
import type { Column } from './columns.js';

/**
 * Column pairs of two tables compared as the same numbers whatever spelling of float32 data each
 * holds. The same float32 data reaches a table in several spellings: the Arrow and Parquet readers
 * keep a float32 (float16) column's stored values, widened exactly, and mark its width
 * (`Column.float`); pandas' CSV of it holds its shortest digits (`0.1`); a float64 column of it
 * (`astype(float)`, a concat with float64) and that column's CSV hold the widened values
 * (`0.10000000149011612`); a float64 pipeline holds the double of the decimal (`0.1`). Any one
 * spelling made identical data drift against another (widened against the CSV: PSI 5.5; shortest
 * digits against the float64 upcast: PSI 4.8, KS p 1.5e-39). So:
 * - in a numeric pair where one side is marked, both sides are rounded to the narrower marked width,
 *   as `astype(np.float32)` would round them, and read at their shortest digits — the numbers pandas'
 *   CSV of the float32 column holds. Data finer than float32 is compared at float32's precision
 *   (6e-8 relative: what the narrower side holds); a finite value beyond the width's range is kept
 *   as it is (not made infinite);
 * - in any other numeric column (`widenedAsDigits`) a value that is a float32 value widened — not an
 *   integer, exactly a float32 value, and not its own shortest digits at that width
 *   (0.10000000149011612) — is read at those digits (0.1), as in a concat of a float32 frame with
 *   float64 rows (a double of other data is a float32 value about once in 2^29).
 * Time columns and integer text are left alone; a marked column with no numeric partner is read at
 * its own width. The columns returned carry no `float` mark, and a second call changes nothing.
 */
export function floatColumnsAtWidth(
  reference: readonly Column[],
  current: readonly Column[],
): [reference: Column[], current: Column[]] {
  const referenceByName = new Map(reference.map((c) => [c.name, c]));
  // Each pair once: the current side's column of each, by name.
  const pairs = new Map<string, [Column, Column]>();
  for (const c of current) {
    const r = referenceByName.get(c.name);
    if (r !== undefined && !pairs.has(c.name)) pairs.set(c.name, floatPairAtWidth(r, c));
  }
  return [
    reference.map((c) => pairs.get(c.name)?.[0] ?? atOwnWidth(c)),
    current.map((c) => pairs.get(c.name)?.[1] ?? atOwnWidth(c)),
  ];
}

/** One pair of `floatColumnsAtWidth` (what `columnDrift` does too). */
export function floatPairAtWidth(reference: Column, current: Column): [reference: Column, current: Column] {
  const a = markedWidth(reference);
  const b = markedWidth(current);
  if (a === undefined && b === undefined) return [widenedAsDigits(reference), widenedAsDigits(current)];
  if (!plainNumeric(reference) || !plainNumeric(current)) return [atOwnWidth(reference), atOwnWidth(current)];
  const bits: NarrowFloatBits = a === 16 || b === 16 ? 16 : 32;
  return [atWidth(reference, bits), atWidth(current, bits)];
}

/**
 * A column of one table as `floatColumnsAtWidth` reads it without a partner: a float32 (float16)
 * column at its shortest digits, the numbers pandas' CSV of it holds, and widened float32 values of
 * any other numeric column at theirs (`driftline reference`: one profile for every spelling).
 */
export function atOwnWidth(column: Column): Column {
  const bits = markedWidth(column);
  return bits === undefined ? widenedAsDigits(column) : atWidth(column, bits);
}

/**
 * A column marked float32/16 at its width's shortest digits; any other column as it is (a float64
 * column's values are what the file holds, widened float32 values or not).
 */
export function atMarkedWidth(column: Column): Column {
  const bits = markedWidth(column);
  return bits === undefined ? column : atWidth(column, bits);
}

/** The float width a numeric column is marked with (float32/16 data), if any. */
export function markedWidth(column: Column): NarrowFloatBits | undefined {
  return plainNumeric(column) ? column.float : undefined;
}

/**
 * An unmarked numeric column whose values that are float32 values widened (not integers, exactly
 * float32 values, not their own shortest float32 digits: 0.10000000149011612) are read at those
 * digits (0.1). Integers are left as they are (2^30 in a float64 column is 1073741824, though
 * float32's digits write it 1.0737418e9), and float16's digits are never guessed: 1/64 is a float16
 * value whose digits are 0.01562. The same column when nothing changes.
 */
function widenedAsDigits(column: Column): Column {
  if (!plainNumeric(column) || column.integerText === true) return column;
  let values: Float64Array | undefined;
  for (let r = 0; r < column.values.length; r++) {
    const x = column.values[r]!;
    if (Number.isInteger(x) || Math.fround(x) !== x) continue; // NaN and ±Infinity too
    const v = atFloatWidth(x, 32);
    if (v === x) continue;
    values ??= Float64Array.from(column.values);
    values[r] = v;
  }
  return values === undefined ? column : { ...column, values };
}

/** Numbers that are not instants or times of day (those are never stored as floats). */
function plainNumeric(column: Column): column is Extract<Column, { kind: 'numeric' }> {
  return column.kind === 'numeric' && column.time === undefined;
}

/** `column`'s values rounded to `bits` and read at their shortest digits, without its `float` mark. */
function atWidth(column: Column, bits: NarrowFloatBits): Column {
  if (!plainNumeric(column)) return column;
  const values = new Float64Array(column.values.length);
  for (let r = 0; r < values.length; r++) {
    values[r] = atFloatWidth(column.values[r]!, bits);
  }
  return {
    name: column.name,
    kind: 'numeric',
    values,
    ...(column.integerText === undefined ? {} : { integerText: column.integerText }),
  };
}
