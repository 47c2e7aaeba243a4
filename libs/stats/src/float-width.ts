import { f16round, floatText } from './number-text.js';

/**
 * Floats stored narrower than a double (float32, float16) read as the numbers a CSV of them holds:
 * each value at its width's shortest digits (float32 0.1 is the double 0.1, not its exact value
 * 0.100000001490116…). The batch CLI compares every spelling of float32 data as one number with
 * these, and the streaming summaries read live values against a float32 reference at them.
 */

/** Width of a narrow stored float: float16 or float32. */
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
  const rounded = roundToFloatWidth(x, bits);
  // A finite number the width cannot hold is kept as it is (not made infinite).
  const v = Number.isFinite(rounded) ? narrowFloatValue(rounded, bits) : x;
  rememberedKeys[slot] = x;
  rememberedBits[slot] = bits;
  rememberedValues[slot] = v;
  return v;
}

/** An integer every float of `bits` holds exactly and writes as its digits: its own shortest digits. */
function smallInteger(x: number, bits: NarrowFloatBits): boolean {
  return Number.isInteger(x) && Math.abs(x) <= (bits === 32 ? 2 ** 24 : 2 ** 11);
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

/**
 * `x` as a float of `bits` holds it, at that width's shortest digits: rounded to the width (as
 * `astype(np.float32)` rounds) and read back from its shortest decimal. Non-finite values, and
 * finite ones beyond the width's range, are kept as they are (never made infinite); integers the
 * width holds exactly are their own digits. Repeated values are a table look-up.
 */
export function atFloatWidth(x: number, bits: NarrowFloatBits): number {
  if (!Number.isFinite(x) || smallInteger(x, bits)) return x;
  return narrowedThroughTable(x, bits);
}

/** `x` rounded to the nearest value of a float of `bits` (±Infinity beyond its range). */
export function roundToFloatWidth(x: number, bits: NarrowFloatBits): number {
  return bits === 32 ? Math.fround(x) : f16round(x);
}
