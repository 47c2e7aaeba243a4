/**
 * Text of typed numbers (Arrow, Parquet) forced to `--categorical`: the text pandas writes for the
 * same value in a CSV (`DataFrame.to_csv`), so a category read from such a CSV (kept as written) and
 * the same value in an Arrow or Parquet file are one category.
 */

/** Width of a stored float: pandas writes each at its own shortest digits (float32 0.1 as `0.1`). */
export type FloatBits = 16 | 32 | 64;

/** An integer as its decimal digits (a bigint for int64/uint64, exact beyond 2^53). */
export function integerText(value: bigint | number): string {
  return typeof value === 'bigint' ? value.toString() : BigInt(value).toString();
}

/**
 * A float as pandas writes it: float64 as Python's `repr` — the shortest digits that read back to the
 * same value, positional with at least one fractional digit (`1.0`, `0.0001`) when the decimal
 * exponent is in [-4, 16), else `d.ddde+XX` / `d.ddde-XX` (`1e+16`, `1e-05`); float32 and float16
 * as numpy's `str`: their own shortest digits (float32 0.1 is `0.1`), positional from 1e-4 up to
 * 1e6 (float32) or 1e3 (float16) only. `-0.0` for negative zero, `inf`/`-inf`, null (missing) for NaN.
 */
export function floatText(x: number, bits: FloatBits = 64): string | null {
  if (Number.isNaN(x)) return null;
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const abs = Math.abs(x);
  const [digits, exponent] = bits === 64 ? splitExponential(abs.toExponential()) : shortestNarrowDigits(abs, bits);
  const positional = bits === 64 ? exponent >= -4 && exponent < 16 : abs >= 1e-4 && abs < (bits === 32 ? 1e6 : 1e3);
  const sign = x < 0 ? '-' : '';
  if (positional) {
    if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
    if (exponent >= digits.length - 1) return `${sign}${digits}${'0'.repeat(exponent - digits.length + 1)}.0`;
    return `${sign}${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
  }
  const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const exp = String(Math.abs(exponent)).padStart(2, '0');
  return `${sign}${mantissa}e${exponent < 0 ? '-' : '+'}${exp}`;
}

/**
 * Digits (no trailing zeros) and decimal exponent of the shortest decimal that reads back to `x`
 * (> 0, a float32 or float16 value) as numpy's Dragon4 picks it: of the fewest digits that read
 * back, the nearest to `x`, a tie going to the even last digit. (`toExponential()` gives this for
 * float64; for a narrower float, its correctly rounded digits at each precision, or a neighbour —
 * the round-trip interval is lopsided at a power of two — are tried.)
 */
function shortestNarrowDigits(x: number, bits: 16 | 32): [string, number] {
  const [m, k] = binaryParts(x);
  for (let precision = 1; precision <= 9; precision++) {
    const [nearestDigits, exponent] = splitExponential(x.toExponential(precision - 1), false);
    const q = exponent - precision + 1; // candidate = c × 10^q
    // |c × 10^q − m × 2^k| scaled to integers: |c × a − m × b|.
    const a = 10n ** BigInt(Math.max(q, 0)) * 2n ** BigInt(-k);
    const b = 10n ** BigInt(Math.max(-q, 0));
    const nearest = BigInt(nearestDigits);
    let best: { c: bigint; distance: bigint } | undefined;
    for (const c of [nearest - 1n, nearest, nearest + 1n]) {
      if (c <= 0n || roundTo(bits, Number(`${c}e${q}`)) !== x) continue;
      const d = c * a - m * b;
      const distance = d < 0n ? -d : d;
      if (best === undefined || distance < best.distance || (distance === best.distance && c % 2n === 0n)) {
        best = { c, distance };
      }
    }
    if (best !== undefined) return splitExponential(Number(`${best.c}e${q}`).toExponential());
  }
  return splitExponential(x.toExponential());
}

/** `x` (> 0, finite) as m × 2^k with m an integer and k ≤ 0. */
function binaryParts(x: number): [bigint, number] {
  let m = x;
  let k = 0;
  while (!Number.isInteger(m)) {
    m *= 2;
    k--;
  }
  return [BigInt(m), k];
}

/** The value of a stored float of `bits` nearest to `x` (round half to even). */
function roundTo(bits: 16 | 32, x: number): number {
  return bits === 32 ? Math.fround(x) : f16round(x);
}

/** `d.ddde±N` as digits (trailing zeros dropped unless `trim` is false) and exponent N. */
function splitExponential(text: string, trim = true): [string, number] {
  const [mantissa = '', exp = '0'] = text.split('e');
  const digits = mantissa.replace('.', '');
  return [trim ? digits.replace(/0+$/, '') || '0' : digits, Number(exp)];
}

/** `x` rounded to the nearest IEEE half-precision value (Node 20 has no Math.f16round). */
export function f16round(x: number): number {
  const a = Math.abs(x);
  if (!Number.isFinite(a) || a === 0) return x;
  if (a >= 65520) return Math.sign(x) * Number.POSITIVE_INFINITY;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const quantum = 2 ** (Math.max(e, -14) - 10);
  const scaled = a / quantum;
  let whole = Math.floor(scaled);
  const rest = scaled - whole;
  if (rest > 0.5 || (rest === 0.5 && whole % 2 === 1)) whole++;
  return Math.sign(x) * whole * quantum;
}
