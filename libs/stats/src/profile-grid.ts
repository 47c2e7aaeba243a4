import { atFloatWidth, type NarrowFloatBits, narrowFloatValue, roundToFloatWidth } from './float-width.js';
import { GridIndex } from './grid-index.js';
import type { NumericReferenceProfile } from './profile.js';

/**
 * A numeric profile's slot grid as live values are read against it. A profile of float32 (float16)
 * data (`floatBits`) holds its values at that width's shortest digits, so a live value is read as
 * that width holds it: 0.1 and the widened 0.10000000149011612 (numpy's `tolist()` of a float32)
 * are one number, as `driftline drift` compares them. Narrowing each value costs about 1 µs for a
 * value not seen lately; instead the grid is searched by *key*: the value rounded to the width.
 * Distinct values of a width have their shortest digits in the same order, so a key orders like
 * the narrowed value; only a value whose key is a cut's own key compares that cut with the key's
 * shortest digits (kept per cut) — a cut interpolated between two reference values need not be
 * one of the width's values. A finite value beyond the width's range is its own key (never
 * infinite), as the batch reader keeps it.
 */
export class ProfileGrid {
  /** The width live values are read at; undefined: as they are. */
  readonly bits: NarrowFloatBits | undefined;
  /** Without a width, the cut grid itself: the per-value hot path goes straight to it. */
  readonly plain: GridIndex | undefined;
  /** The reference's smallest and largest values, as keys. */
  readonly minKey: number;
  readonly maxKey: number;
  private readonly cuts: Float64Array;
  private readonly index: GridIndex;
  /** Per cut: its key, and the shortest digits of that key (width profiles only). */
  private readonly keys: Float64Array;
  private readonly keyDigits: Float64Array;

  constructor(profile: NumericReferenceProfile) {
    this.bits = profile.floatBits;
    this.cuts = Float64Array.from(profile.cuts);
    this.keys = this.bits === undefined ? this.cuts : this.cuts.map((c) => this.key(c));
    this.keyDigits = this.bits === undefined ? this.cuts : this.keys.map((k) => this.digitsOfKey(k));
    this.index = new GridIndex(this.keys);
    this.plain = this.bits === undefined ? this.index : undefined;
    this.minKey = this.key(profile.min);
    this.maxKey = this.key(profile.max);
  }

  /** The number order and equality are read on: the value, or its rounding to the width. */
  key(x: number): number {
    if (this.bits === undefined) return x;
    const r = roundToFloatWidth(x, this.bits);
    return Number.isFinite(r) || !Number.isFinite(x) ? r : x;
  }

  /** `x` as the profile reads it: at the width's shortest digits (what min and max report). */
  value(x: number): number {
    return this.bits === undefined ? x : atFloatWidth(x, this.bits);
  }

  /** Slot of a value that is not NaN: 2i for the open interval below cuts[i], 2i+1 for cuts[i] itself. */
  slot(x: number): number {
    if (this.bits === undefined) return this.index.slot(x);
    const r = this.key(x);
    const keys = this.keys;
    const m = keys.length;
    let i = this.index.lowerBound(r);
    if (i < m && keys[i] === r) {
      // Cuts sharing the value's key: those below its digits, then at most one equal to them.
      const digits = this.keyDigits[i]!;
      while (i < m && keys[i] === r && this.cuts[i]! < digits) i++;
      if (i < m && this.cuts[i] === digits) return 2 * i + 1;
    }
    return 2 * i;
  }

  private digitsOfKey(k: number): number {
    // A key beyond the width's range is the value itself; every other is one of the width's values.
    return Number.isFinite(roundToFloatWidth(k, this.bits!)) ? narrowFloatValue(k, this.bits!) : k;
  }
}

const grids = new WeakMap<NumericReferenceProfile, ProfileGrid>();

/** The profile's grid, built once per profile object. */
export function profileGrid(profile: NumericReferenceProfile): ProfileGrid {
  let grid = grids.get(profile);
  if (grid === undefined) {
    grid = new ProfileGrid(profile);
    grids.set(profile, grid);
  }
  return grid;
}
