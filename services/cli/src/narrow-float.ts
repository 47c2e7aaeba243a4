import { floatText } from '@driftline/batch-drift';

/**
 * A stored float32 (or float16) value as the number a CSV of the same table reads back: the double
 * nearest to its shortest decimal (`Number(floatText(x, bits))`; float32 19.99 is 19.99, not its
 * exact value 19.9899997711181640625). pandas writes a float32 column at its own shortest digits,
 * so the exact widened values drifted from the CSV of the same table (`price` 19.99: PSI 5.5).
 *
 * float32: `floatText` takes about 12 µs a value (its tie-breaks in bigint); this takes the
 * correctly rounded digits at the fewest that read back, which is `floatText`'s answer but at a
 * power of two (the round-trip interval is lopsided) or a possible tie (one more digit is a 5):
 * those go through `floatText`. float16 has 65,536 values: each is computed once.
 */
export function narrowFloatValue(x: number, bits: 16 | 32): number {
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
const known = { 16: new Map<number, number>(), 32: new Map<number, number>() };

function cached(x: number, bits: 16 | 32): number {
  let v = known[bits].get(x);
  if (v === undefined) {
    v = Number(floatText(x, bits));
    known[bits].set(x, v);
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
