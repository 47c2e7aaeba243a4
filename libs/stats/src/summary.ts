import { DriftlineError, PoisonRecordError } from '@driftline/core';
import { type CountEncoding, chooseEncoding, pack, unpack } from './codec.js';
import { EXACT_SUM_LIMBS, ExactSum } from './exact-sum.js';
import type { MaybeNumber } from './numeric.js';
import type { CategoricalReferenceProfile, NumericReferenceProfile, ReferenceProfile } from './profile.js';
import { type ProfileGrid, profileGrid } from './profile-grid.js';
import type { MaybeCategory } from './psi.js';
import { type TailSketch, tailSketchHas } from './tail-sketch.js';

/**
 * Mergeable partial summaries of one (model, version, feature, window) against a reference
 * profile. Numeric: counts on the profile's slot grid plus count, missing, infinite, below/above
 * the reference range, min, max and an exact sum. Categorical: counts per reference category plus
 * "other", and count/missing. merge() only adds counts, takes min/max and adds exact sums, so it is
 * associative and commutative bit for bit, and a summary's size depends on the grid, not on the
 * number of events.
 */

export const SUMMARY_FORMAT = 'driftline.summary/1' as const;

export interface SummaryJson {
  readonly format: typeof SUMMARY_FORMAT;
  readonly kind: 'numeric' | 'categorical';
  readonly profileId: string;
  readonly encoding: CountEncoding;
  /** base64 of the fixed binary layout (see codec.ts). */
  readonly data: string;
}

const categoryCache = new WeakMap<CategoricalReferenceProfile, Map<string, number>>();

/** Bins of a categorical summary: the categories, "other", and "new" when the profile has a tail sketch. */
export function categoricalBins(profile: CategoricalReferenceProfile): number {
  return profile.categories.length + (profile.tail ? 2 : 1);
}

function categoryIndexOf(profile: CategoricalReferenceProfile): Map<string, number> {
  let index = categoryCache.get(profile);
  if (!index) {
    index = new Map(profile.categories.map((c, i) => [c, i] as const));
    categoryCache.set(profile, index);
  }
  return index;
}

const NUMERIC_SCALARS = 7;

export class NumericSummary {
  readonly kind = 'numeric' as const;
  readonly profileId: string;
  /** Counts per slot of the profile grid. */
  readonly counts: Float64Array;
  /** Finite values counted in `counts`. */
  count = 0;
  /** null, undefined or NaN. */
  missing = 0;
  /** ±Infinity: kept out of the histogram, counted as out of range. */
  infinite = 0;
  belowMin = 0;
  aboveMax = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  readonly sum: ExactSum;
  private readonly grid: ProfileGrid;
  private readonly refMin: number;
  private readonly refMax: number;

  constructor(profile: NumericReferenceProfile, counts?: Float64Array, sum?: ExactSum) {
    this.profileId = profile.id;
    this.grid = profileGrid(profile);
    this.refMin = profile.min;
    this.refMax = profile.max;
    this.counts = counts ?? new Float64Array(2 * profile.cuts.length + 1);
    this.sum = sum ?? new ExactSum();
  }

  /**
   * Counts x; returns its slot on the profile grid (-1 when missing or infinite), so a caller that
   * also bins the value (the sequential detector) needs no second search.
   */
  add(x: MaybeNumber): number {
    if (x === null || x === undefined || Number.isNaN(x)) {
      this.missing++;
      return -1;
    }
    if (x === Number.POSITIVE_INFINITY || x === Number.NEGATIVE_INFINITY) {
      this.infinite++;
      return -1;
    }
    const plain = this.grid.plain;
    if (plain !== undefined) {
      const slot = plain.slot(x);
      this.counts[slot]! += 1;
      this.count++;
      if (x < this.min) this.min = x;
      if (x > this.max) this.max = x;
      if (x < this.refMin) this.belowMin++;
      else if (x > this.refMax) this.aboveMax++;
      this.sum.add(x);
      return slot;
    }
    // Read at the reference's float width (ProfileGrid): compared by key, min and max at its
    // shortest digits, the sum of the width's values (one number whatever the value's spelling).
    const grid = this.grid;
    const slot = grid.slot(x);
    this.counts[slot]! += 1;
    this.count++;
    const key = grid.key(x);
    if (key < grid.key(this.min)) this.min = grid.value(x);
    if (key > grid.key(this.max)) this.max = grid.value(x);
    if (key < grid.minKey) this.belowMin++;
    else if (key > grid.maxKey) this.aboveMax++;
    this.sum.add(key);
    return slot;
  }

  addAll(values: ArrayLike<MaybeNumber>): this {
    for (let i = 0; i < values.length; i++) this.add(values[i]);
    return this;
  }

  /** Mean of the finite values (exact sum, rounded once); NaN when empty. */
  mean(): number {
    return this.count === 0 ? Number.NaN : this.sum.value() / this.count;
  }

  toJSON(): SummaryJson {
    this.sum.normalise();
    const scalars = [this.count, this.missing, this.infinite, this.belowMin, this.aboveMax, this.min, this.max];
    const encoding = chooseEncoding(this.counts);
    // Limbs ride with the scalars (always float64); counts use the compact encoding.
    const data = pack([...scalars, ...this.sum.limbs], this.counts, encoding);
    return { format: SUMMARY_FORMAT, kind: 'numeric', profileId: this.profileId, encoding, data };
  }
}

const CATEGORICAL_SCALARS = 2;

export class CategoricalSummary {
  readonly kind = 'categorical' as const;
  readonly profileId: string;
  /**
   * Counts per reference category, then "other" (categories the profile does not list); when the
   * profile has a tail sketch, "other" is the reference's tail and a last count holds categories
   * the reference never had (`categoricalBins`).
   */
  readonly counts: Float64Array;
  count = 0;
  missing = 0;
  private readonly index: Map<string, number>;
  private readonly tail: TailSketch | undefined;

  constructor(profile: CategoricalReferenceProfile, counts?: Float64Array) {
    this.profileId = profile.id;
    this.index = categoryIndexOf(profile);
    this.tail = profile.tail;
    this.counts = counts ?? new Float64Array(categoricalBins(profile));
  }

  add(value: MaybeCategory): void {
    if (typeof value !== 'string') {
      this.missing++;
      return;
    }
    let i = this.index.get(value);
    if (i === undefined) {
      const last = this.counts.length - 1;
      i = this.tail !== undefined && tailSketchHas(this.tail, value) ? last - 1 : last;
    }
    this.counts[i]! += 1;
    this.count++;
  }

  addAll(values: ArrayLike<MaybeCategory>): this {
    for (let i = 0; i < values.length; i++) this.add(values[i]);
    return this;
  }

  toJSON(): SummaryJson {
    const encoding = chooseEncoding(this.counts);
    const data = pack([this.count, this.missing], this.counts, encoding);
    return { format: SUMMARY_FORMAT, kind: 'categorical', profileId: this.profileId, encoding, data };
  }
}

export type Summary = NumericSummary | CategoricalSummary;

export function createSummary(profile: NumericReferenceProfile): NumericSummary;
export function createSummary(profile: CategoricalReferenceProfile): CategoricalSummary;
export function createSummary(profile: ReferenceProfile): Summary;
export function createSummary(profile: ReferenceProfile): Summary {
  return profile.kind === 'numeric' ? new NumericSummary(profile) : new CategoricalSummary(profile);
}

function mismatch(message: string, details: Record<string, unknown>): DriftlineError {
  return new DriftlineError('VALIDATION_FAILED', `summary merge: ${message}`, { details });
}

/**
 * Merges two summaries built against the same profile into a new one (inputs keep their values).
 * Associative and commutative exactly: counts add (exact integers in float64 up to 2^53),
 * min/max are order-free, sums are exact.
 */
export function mergeSummaries<S extends Summary>(a: S, b: S, profile: ReferenceProfile): S {
  if (a.kind !== b.kind || a.kind !== profile.kind) {
    throw mismatch('kinds differ', { a: a.kind, b: b.kind, profile: profile.kind });
  }
  if (a.profileId !== profile.id || b.profileId !== profile.id) {
    throw mismatch('summaries were built against different profiles', {
      a: a.profileId,
      b: b.profileId,
      profile: profile.id,
    });
  }
  if (a.counts.length !== b.counts.length) throw mismatch('grid sizes differ', {});
  const counts = Float64Array.from(a.counts);
  for (let i = 0; i < counts.length; i++) counts[i]! += b.counts[i]!;
  if (a instanceof NumericSummary && b instanceof NumericSummary && profile.kind === 'numeric') {
    const sum = a.sum.clone();
    sum.addSum(b.sum);
    const out = new NumericSummary(profile, counts, sum);
    out.count = a.count + b.count;
    out.missing = a.missing + b.missing;
    out.infinite = a.infinite + b.infinite;
    out.belowMin = a.belowMin + b.belowMin;
    out.aboveMax = a.aboveMax + b.aboveMax;
    out.min = Math.min(a.min, b.min);
    out.max = Math.max(a.max, b.max);
    return out as S;
  }
  if (a instanceof CategoricalSummary && b instanceof CategoricalSummary && profile.kind === 'categorical') {
    const out = new CategoricalSummary(profile, counts);
    out.count = a.count + b.count;
    out.missing = a.missing + b.missing;
    return out as S;
  }
  throw mismatch('unsupported summary', {});
}

/** Merges any number of summaries (e.g. one per partition); undefined when the list is empty. */
export function mergeAll<S extends Summary>(summaries: readonly S[], profile: ReferenceProfile): S | undefined {
  let acc: S | undefined;
  for (const s of summaries) acc = acc === undefined ? s : mergeSummaries(acc, s, profile);
  return acc;
}

function bad(message: string): PoisonRecordError {
  return new PoisonRecordError('DECODE_FAILED', `summary: ${message}`);
}

/**
 * Rebuilds a summary from its JSON form against the profile it was built with. A malformed or
 * foreign summary is a poison record (it will never decode), not a retriable failure.
 */
export function summaryFromJSON(json: unknown, profile: ReferenceProfile): Summary {
  if (typeof json !== 'object' || json === null) throw bad('expected an object');
  const o = json as Record<string, unknown>;
  if (o.format !== SUMMARY_FORMAT) throw bad(`format must be "${SUMMARY_FORMAT}"`);
  if (o.kind !== profile.kind) throw bad(`kind "${String(o.kind)}" does not match the profile`);
  if (o.profileId !== profile.id) throw bad(`profileId ${String(o.profileId)} does not match profile ${profile.id}`);
  if (o.encoding !== 'u32' && o.encoding !== 'f64') throw bad('encoding must be "u32" or "f64"');
  if (typeof o.data !== 'string') throw bad('data must be a base64 string');
  if (profile.kind === 'numeric') {
    const unpacked = unpack(o.data, NUMERIC_SCALARS + EXACT_SUM_LIMBS, o.encoding);
    if (!unpacked || unpacked.counts.length !== 2 * profile.cuts.length + 1) throw bad('data has the wrong length');
    const { scalars, counts } = unpacked;
    const limbs = scalars.subarray(NUMERIC_SCALARS);
    for (const limb of limbs) if (!Number.isSafeInteger(limb)) throw bad('sum limbs must be integers');
    const sum = new ExactSum(Float64Array.from(limbs));
    const s = new NumericSummary(profile, counts, sum);
    [s.count, s.missing, s.infinite, s.belowMin, s.aboveMax, s.min, s.max] = Array.from(
      scalars.subarray(0, NUMERIC_SCALARS),
    ) as [number, number, number, number, number, number, number];
    checkCounters(
      { count: s.count, missing: s.missing, infinite: s.infinite, belowMin: s.belowMin, aboveMax: s.aboveMax },
      counts,
    );
    if (Number.isNaN(s.min) || Number.isNaN(s.max)) throw bad('min and max must be numbers');
    return s;
  }
  const unpacked = unpack(o.data, CATEGORICAL_SCALARS, o.encoding);
  if (!unpacked || unpacked.counts.length !== categoricalBins(profile)) throw bad('data has the wrong length');
  const s = new CategoricalSummary(profile, unpacked.counts);
  [s.count, s.missing] = [unpacked.scalars[0]!, unpacked.scalars[1]!];
  checkCounters({ count: s.count, missing: s.missing }, unpacked.counts);
  return s;
}

/**
 * What any summary holds: scalar counters and slot counts that are non-negative integers, the slot
 * counts adding up to `count`. A corrupt one would otherwise make a feature's statistics NaN (its
 * rows dropped: the feature silently unmonitored) or absurd (a KS distance above 1).
 */
function checkCounters(
  scalars: Readonly<Record<string, number>> & { readonly count: number },
  counts: Float64Array,
): void {
  for (const [name, v] of Object.entries(scalars)) {
    if (!Number.isSafeInteger(v) || v < 0) throw bad(`${name} must be a non-negative integer`);
  }
  let total = 0;
  for (const c of counts) {
    if (!Number.isSafeInteger(c) || c < 0) throw bad('counts must be non-negative integers');
    total += c;
  }
  if (total !== scalars.count) throw bad(`counts add up to ${total}, not the count ${scalars.count}`);
}
