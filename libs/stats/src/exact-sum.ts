/**
 * An exact, fixed-size accumulator for sums of doubles (a small Kulisch-style superaccumulator).
 * Floating-point addition is not associative, so a float `sum` field would make merge(merge(a,b),c)
 * and merge(a,merge(b,c)) differ in the last bits — and a replayed window could then write a
 * different row. Here every double is added exactly into 68 limbs of 32 bits (enough for any sum
 * of up to 2^53 finite doubles), merging is integer addition, and the canonical (carry-normalised)
 * limbs are what gets serialised, so the state — and the rounded value() — depend only on the
 * multiset of values added.
 */

export const EXACT_SUM_LIMBS = 68;
const LIMB = 2 ** 32;
// Limbs hold integers below 2^53 exactly; each add contributes < 2^33 per limb, so carrying
// every 2^18 additions keeps magnitudes below 2^51.
const NORMALISE_EVERY = 2 ** 18;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI = LITTLE_ENDIAN ? 1 : 0;
const LO = LITTLE_ENDIAN ? 0 : 1;

export class ExactSum {
  readonly limbs: Float64Array;
  private pending = 0;

  constructor(limbs?: Float64Array) {
    this.limbs = limbs ?? new Float64Array(EXACT_SUM_LIMBS);
  }

  /** Adds a finite double exactly (non-finite values must be filtered by the caller). */
  add(x: number): void {
    if (x === 0) return;
    f64[0] = x;
    const hi = u32[HI]!;
    const lo = u32[LO]!;
    const biased = (hi >>> 20) & 0x7ff;
    // x = ±M·2^(b−1074) with M = mh·2^32 + lo a 53-bit integer; b is the position of M's lowest
    // bit, so M lands in limbs i, i+1, i+2 shifted left by s. Integer ops only: this is hot.
    const mh = biased === 0 ? hi & 0xfffff : (hi & 0xfffff) | 0x100000;
    const b = biased === 0 ? 0 : biased - 1;
    const i = b >>> 5;
    const s = b & 31;
    const c0 = (lo << s) >>> 0;
    const c1 = ((mh << s) >>> 0) + (s === 0 ? 0 : lo >>> (32 - s));
    const c2 = s === 0 ? 0 : mh >>> (32 - s);
    const limbs = this.limbs;
    if (hi >>> 31) {
      limbs[i]! -= c0;
      limbs[i + 1]! -= c1;
      limbs[i + 2]! -= c2;
    } else {
      limbs[i]! += c0;
      limbs[i + 1]! += c1;
      limbs[i + 2]! += c2;
    }
    if (++this.pending >= NORMALISE_EVERY) this.normalise();
  }

  /** Carries so limbs 0..66 are in [0, 2^32) and the top limb holds the sign: a unique form. */
  normalise(): this {
    carry(this.limbs);
    this.pending = 0;
    return this;
  }

  /** Adds another accumulator's state (both are normalised first, so limbs stay small). */
  addSum(other: ExactSum): void {
    this.normalise();
    other.normalise();
    for (let i = 0; i < EXACT_SUM_LIMBS; i++) this.limbs[i]! += other.limbs[i]!;
    this.normalise();
  }

  /** The sum rounded to a double, from the canonical limbs (deterministic, within 1 ulp). */
  value(): number {
    this.normalise();
    // Negative totals are stored two's-complement style (top limb < 0); sum the magnitude instead
    // so the high all-ones limbs cannot overflow to ±Infinity.
    const negative = this.limbs[EXACT_SUM_LIMBS - 1]! < 0;
    const limbs = negative ? carry(this.limbs.map((l) => -l)) : this.limbs;
    let v = 0;
    for (let i = EXACT_SUM_LIMBS - 1; i >= 0; i--) {
      const limb = limbs[i]!;
      if (limb !== 0) v += limb * 2 ** (32 * i - 1074);
    }
    return negative ? -v : v;
  }

  clone(): ExactSum {
    this.normalise();
    return new ExactSum(Float64Array.from(this.limbs));
  }
}

function carry(limbs: Float64Array): Float64Array {
  for (let i = 0; i < EXACT_SUM_LIMBS - 1; i++) {
    const c = Math.floor(limbs[i]! / LIMB);
    if (c !== 0) {
      limbs[i]! -= c * LIMB;
      limbs[i + 1]! += c;
    }
  }
  return limbs;
}
