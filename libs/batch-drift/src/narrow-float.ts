import type { Column } from './columns.js';
import { f16round, floatText } from './number-text.js';

/** Width of a narrow stored float (`Column.float`): float16 or float32. */
export type NarrowFloatBits = 16 | 32;

/**
 * The narrowed values last computed, in a direct-mapped table by the bits of the value: a discrete
 * column is read at a lookup a value (a Map of them cost more than narrowing a value).
 */
const SLOTS = 4096;
const rememberedKeys = new Float64Array(SLOTS).fill(Number.NaN);
const rememberedBits = new Uint8Array(SLOTS);
const rememberedValues = new Float64Array(SLOTS);
const bitsOf = new Float64Array(1);
const wordsOf = new Uint32Array(bitsOf.buffer);

/** `x`'s slot in the table. */
function slotOf(x: number, bits: NarrowFloatBits): number {
  bitsOf[0] = x;
  return (Math.imul(wordsOf[0]! ^ wordsOf[1]! ^ bits, 0x9e3779b1) >>> 20) & (SLOTS - 1);
}

/** `x` (finite) narrowed to `bits`' shortest digits, after rounding it to that width, through the table. */
function narrowedThroughTable(x: number, bits: NarrowFloatBits): number {
  const slot = slotOf(x, bits);
  if (rememberedKeys[slot] === x && rememberedBits[slot] === bits) return rememberedValues[slot]!;
  const rounded = bits === 32 ? Math.fround(x) : f16round(x);
  // A finite number the width cannot hold is kept as it is (not made infinite).
  const v = Number.isFinite(rounded) ? narrowFloatValue(rounded, bits) : x;
  rememberedKeys[slot] = x;
  rememberedBits[slot] = bits;
  rememberedValues[slot] = v;
  return v;
}

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
  const a = widthOf(reference);
  const b = widthOf(current);
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
  const bits = widthOf(column);
  return bits === undefined ? widenedAsDigits(column) : atWidth(column, bits);
}

/**
 * A column marked float32/16 at its width's shortest digits; any other column as it is (a float64
 * column's values are what the file holds, widened float32 values or not).
 */
export function atMarkedWidth(column: Column): Column {
  const bits = widthOf(column);
  return bits === undefined ? column : atWidth(column, bits);
}

function widthOf(column: Column): NarrowFloatBits | undefined {
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
    const v = narrowedThroughTable(x, 32);
    if (v === x) continue;
    values ??= Float64Array.from(column.values);
    values[r] = v;
  }
  return values === undefined ? column : { ...column, values };
}

/** An integer every float of `bits` holds exactly and writes as its digits: its own shortest digits. */
function smallInteger(x: number, bits: NarrowFloatBits): boolean {
  return Number.isInteger(x) && Math.abs(x) <= (bits === 32 ? 2 ** 24 : 2 ** 11);
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
    const x = column.values[r]!;
    if (!Number.isFinite(x) || smallInteger(x, bits)) {
      values[r] = x;
      continue;
    }
    values[r] = narrowedThroughTable(x, bits);
  }
  return {
    name: column.name,
    kind: 'numeric',
    values,
    ...(column.integerText === undefined ? {} : { integerText: column.integerText }),
  };
}

/**
 * A float32 (or float16) value as the number a CSV of the same table reads back: the double
 * nearest to its shortest decimal (`Number(floatText(x, bits))`; float32 19.99 is 19.99, not its
 * exact value 19.9899997711181640625). `x` must be a value of that width.
 *
 * float32: `floatText` takes about 12 µs a value (its tie-breaks in bigint); this takes the
 * correctly rounded digits at the fewest that read back, which is `floatText`'s answer but at a
 * power of two (the round-trip interval is lopsided) or a possible tie (one more digit is a 5):
 * those go through `floatText`. float16 has 65,536 values: each is computed once.
 */
export function narrowFloatValue(x: number, bits: NarrowFloatBits): number {
  if (!Number.isFinite(x) || x === 0) return x;
  if (bits === 16) return cached(x, 16);
  const abs = Math.abs(x);
  if (isPowerOfTwo(abs)) return cached(x, 32);
  // The fewest digits whose correctly rounded decimal reads back: more digits never read back worse
  // (the interval is symmetric here), so a binary search; 9 digits always read back.
  let low = 1;
  let high = 9;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (Math.fround(Number(abs.toExponential(mid - 1))) === abs) high = mid;
    else low = mid + 1;
  }
  const nearest = Number(abs.toExponential(low - 1));
  // That decimal is the one numpy picks unless x lies exactly halfway between two of those digits
  // (then the even one): only when x is the decimal of one more digit, ending in 5.
  const longer = abs.toExponential(low);
  if (longer.charCodeAt(low + 1) === 0x35 && Number(longer) === abs) return Number(floatText(x, 32));
  return x < 0 ? -nearest : nearest;
}

/** float16 values and float32 powers of two: a few thousand at most, each computed once. */
const shortest = { 16: new Map<number, number>(), 32: new Map<number, number>() };

function cached(x: number, bits: NarrowFloatBits): number {
  let v = shortest[bits].get(x);
  if (v === undefined) {
    v = Number(floatText(x, bits));
    shortest[bits].set(x, v);
  }
  return v;
}
const word = new Float32Array(1);
const wordBits = new Uint32Array(word.buffer);

/** `x` (> 0, a float32 value) has no mantissa bits: the interval of decimals that read back to it is lopsided. */
function isPowerOfTwo(x: number): boolean {
  word[0] = x;
  return (wordBits[0]! & 0x7fffff) === 0;
}
