import { createHash } from 'node:crypto';
import { ConfigError, DriftlineError } from '@driftline/core';
import type { NarrowFloatBits } from './float-width.js';
import { lowerBound, type MaybeNumber, sortedFinite } from './numeric.js';
import { DEFAULT_PSI_BINS, type MaybeCategory } from './psi.js';
import { nextDown, quantileEdges, quantileOfSorted } from './quantile.js';
import { buildTailSketch, parseTailSketch, type TailSketch } from './tail-sketch.js';

/**
 * Reference profiles: what the streaming drift monitor keeps about the training data of a model
 * version, per feature. Numeric profiles carry a fine grid of reference quantiles ("cuts") and the
 * exact reference counts on it; partial summaries of live data count on the same grid, which makes
 * coarse-bin PSI exact and KS computable with a proven error bound (see summary-drift.ts).
 *
 * Slot layout on M cuts c_0 < … < c_{M−1} (shared with summaries): slot 2i is the open interval
 * (c_{i−1}, c_i) (c_{−1} = −∞, c_M = +∞), slot 2i+1 is the point {c_i}; 2M+1 slots. Keeping the
 * cut points as slots of their own makes KS exact on discrete data whose atoms are cut points.
 */

export const PROFILE_FORMAT = 'driftline.profile/1' as const;
/**
 * Default fine-grid resolution: cuts at reference quantiles k/1000. The KS error bound is at most
 * the largest reference mass strictly between adjacent cuts, ≈ 1/1000 on continuous data — half
 * the 0.002 target — while a summary stays ~8 KB (2M+1 ≤ 2·1008+1 counters of 4 bytes).
 */
export const DEFAULT_FINE_BINS = 1000;
export const DEFAULT_MAX_CATEGORIES = 1000;

export interface NumericReferenceProfile {
  readonly format: typeof PROFILE_FORMAT;
  readonly kind: 'numeric';
  /** Fingerprint of the grid and counts; summaries carry it so mismatched merges are refused. */
  readonly id: string;
  /** Finite reference values (the sample the statistics are defined on). */
  readonly n: number;
  readonly missing: number;
  readonly infinite: number;
  readonly min: number;
  readonly max: number;
  /** Requested fine resolution G and coarse bin count B. */
  readonly fineBins: number;
  readonly bins: number;
  /** Fine cut points, strictly increasing: quantiles k/G and k/B, deduplicated. */
  readonly cuts: number[];
  /** Reference counts per slot (length 2·cuts.length + 1). */
  readonly slotCounts: number[];
  /** Interior coarse edges (quantiles k/B, deduplicated), a subset of cuts; bins right-closed. */
  readonly coarseEdges: number[];
  /** cuts[coarseCutIndex[j]] === coarseEdges[j]. */
  readonly coarseCutIndex: number[];
  /** Reference share of each coarse bin (no epsilon applied). */
  readonly referenceShares: number[];
  /** Largest reference share inside one open slot: the a-priori bound on the KS error. */
  readonly ksBound: number;
  /**
   * Set when the reference data was stored as float32 (float16) and profiled at that width's
   * shortest digits: live values are read at that width too (`ProfileGrid`), so a widened float32
   * (0.10000000149011612) counts as the 0.1 of the reference. Not in `id`: a reader before it keeps
   * the profile and reads live values as they are.
   */
  readonly floatBits?: NarrowFloatBits;
}

export interface CategoricalReferenceProfile {
  readonly format: typeof PROFILE_FORMAT;
  readonly kind: 'categorical';
  readonly id: string;
  readonly n: number;
  readonly missing: number;
  /** Reference categories, most frequent first (ties by name); at most maxCategories. */
  readonly categories: string[];
  /** Counts per category plus a final "other" count (reference categories beyond the cap). */
  readonly counts: number[];
  /** counts / n. */
  readonly shares: number[];
  /**
   * Membership sketch of the categories beyond the cap, present when there are any: summaries
   * then count "in the reference's tail" and "never in the reference" apart (tail-sketch.ts).
   * Profiles stored without it keep one "other" bin for both.
   */
  readonly tail?: TailSketch;
}

export type ReferenceProfile = NumericReferenceProfile | CategoricalReferenceProfile;

export interface NumericProfileOptions {
  readonly bins?: number;
  readonly fineBins?: number;
  /** The width the values were stored at; they must be at its shortest digits (`atFloatWidth`). */
  readonly floatBits?: NarrowFloatBits;
}

export interface CategoricalProfileOptions {
  readonly maxCategories?: number;
}

function fingerprint(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 16);
}

// Without a tail the fingerprint is what it always was, so stored profiles keep their ids.
function categoricalFingerprint(categories: string[], counts: number[], tail: TailSketch | undefined): string {
  return fingerprint(
    tail ? ['categorical', categories, counts, tail.bits, tail.hashes, tail.size] : ['categorical', categories, counts],
  );
}

function positiveInt(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new DriftlineError('VALIDATION_FAILED', `${field} must be a positive integer, got ${value}`);
  }
  return value;
}

/** Counts per slot of sorted values (one merge pass). */
function slotCountsSorted(sorted: Float64Array, cuts: Float64Array): number[] {
  const counts = new Array<number>(2 * cuts.length + 1).fill(0);
  let i = 0;
  for (let k = 0; k < sorted.length; k++) {
    const x = sorted[k]!;
    while (i < cuts.length && cuts[i]! < x) i++;
    const slot = i < cuts.length && cuts[i] === x ? 2 * i + 1 : 2 * i;
    counts[slot]! += 1;
  }
  return counts;
}

/** Sums slot counts into right-closed coarse bins whose edges are cuts[coarseCutIndex[j]]. */
export function coarseCounts(slotCounts: ArrayLike<number>, coarseCutIndex: readonly number[]): number[] {
  return countsToSlotEnds(
    slotCounts,
    coarseCutIndex.map((k) => 2 * k + 1),
  );
}

/** Sums slot counts into bins: bin j ends with slot ends[j], the last bin takes the rest. */
function countsToSlotEnds(slotCounts: ArrayLike<number>, ends: readonly number[]): number[] {
  const out = new Array<number>(ends.length + 1).fill(0);
  let bin = 0;
  for (let s = 0; s < slotCounts.length; s++) {
    while (bin < ends.length && s > ends[bin]!) bin++;
    out[bin]! += slotCounts[s]!;
  }
  return out;
}

/**
 * True for a profile stored before da5dfd1 with one coarse edge c (a constant reference, or one
 * value holding every coarse quantile): its bin (−∞, c] took the whole reference, so a shift below c
 * gave PSI 0. The builder now adds the edge nextDown(c); for such a profile the same bins come from
 * its stored grid: (−∞, nextDown(c)] is exactly the open slot below cut c. No cut is added, so its
 * summaries keep their length (mixed releases, saved state) and the profile its id.
 */
function splitsBelowSingleEdge(cuts: readonly number[], coarseCutIndex: readonly number[]): boolean {
  return coarseCutIndex.length === 1 && Number.isFinite(nextDown(cuts[coarseCutIndex[0]!]!));
}

/** The interior coarse edges of a profile's grid (with nextDown(c) for a stored single edge c). */
function coarseEdgesOf(cuts: readonly number[], coarseCutIndex: readonly number[]): number[] {
  const edges = coarseCutIndex.map((k) => cuts[k]!);
  return splitsBelowSingleEdge(cuts, coarseCutIndex) ? [nextDown(edges[0]!), edges[0]!] : edges;
}

/** Counts on a profile's coarse bins (`coarseEdges`): of its reference slots, or of a summary's. */
export function profileCoarseCounts(
  profile: Pick<NumericReferenceProfile, 'cuts' | 'coarseCutIndex'>,
  slotCounts: ArrayLike<number>,
): number[] {
  const { cuts, coarseCutIndex } = profile;
  if (!splitsBelowSingleEdge(cuts, coarseCutIndex)) return coarseCounts(slotCounts, coarseCutIndex);
  const k = coarseCutIndex[0]!;
  return countsToSlotEnds(slotCounts, [2 * k, 2 * k + 1]);
}

export function buildNumericProfile(
  values: ArrayLike<MaybeNumber>,
  options: NumericProfileOptions = {},
): NumericReferenceProfile {
  const bins = positiveInt(options.bins ?? DEFAULT_PSI_BINS, 'bins');
  const fineBins = positiveInt(options.fineBins ?? DEFAULT_FINE_BINS, 'fineBins');
  let missing = 0;
  let infinite = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || Number.isNaN(v)) missing++;
    else if (!Number.isFinite(v)) infinite++;
  }
  const sorted = sortedFinite(values);
  const n = sorted.length;
  if (n === 0) throw new DriftlineError('VALIDATION_FAILED', 'reference profile: no finite values');

  const coarse = quantileEdges(sorted, bins);
  const candidates: number[] = [];
  for (let k = 1; k < fineBins; k++) candidates.push(quantileOfSorted(sorted, k, fineBins));
  for (const e of coarse) candidates.push(e);
  candidates.sort((a, b) => a - b);
  const cutList: number[] = [];
  for (const c of candidates) if (cutList.length === 0 || c > cutList[cutList.length - 1]!) cutList.push(c);
  const cuts = Float64Array.from(cutList);

  // Same function, same levels: every coarse edge is bit-identical to one of the cuts.
  const coarseCutIndex = Array.from(coarse, (e) => lowerBound(cuts, e));
  const slotCounts = slotCountsSorted(sorted, cuts);
  const referenceShares = profileCoarseCounts({ cuts: cutList, coarseCutIndex }, slotCounts).map((c) => c / n);
  let ksBound = 0;
  for (let s = 0; s < slotCounts.length; s += 2) ksBound = Math.max(ksBound, slotCounts[s]! / n);

  const body = {
    format: PROFILE_FORMAT,
    kind: 'numeric' as const,
    n,
    missing,
    infinite,
    min: sorted[0]!,
    max: sorted[n - 1]!,
    fineBins,
    bins,
    cuts: cutList,
    slotCounts,
    coarseEdges: Array.from(coarse),
    coarseCutIndex,
    referenceShares,
    ksBound,
  };
  return {
    ...body,
    id: fingerprint(['numeric', cutList, slotCounts, coarseCutIndex]),
    ...(options.floatBits === undefined ? {} : { floatBits: options.floatBits }),
  };
}

export function buildCategoricalProfile(
  values: ArrayLike<MaybeCategory>,
  options: CategoricalProfileOptions = {},
): CategoricalReferenceProfile {
  const maxCategories = positiveInt(options.maxCategories ?? DEFAULT_MAX_CATEGORIES, 'maxCategories');
  const counts = new Map<string, number>();
  let missing = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'string') {
      missing++;
      continue;
    }
    n++;
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  if (n === 0) throw new DriftlineError('VALIDATION_FAILED', 'reference profile: no categorical values');
  const ordered = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const kept = ordered.slice(0, maxCategories);
  const rest = ordered.slice(maxCategories);
  let other = 0;
  for (const [, c] of rest) other += c;
  const categories = kept.map(([k]) => k);
  const countList = [...kept.map(([, c]) => c), other];
  const tail = rest.length > 0 ? buildTailSketch(rest.map(([k]) => k)) : undefined;
  return {
    format: PROFILE_FORMAT,
    kind: 'categorical',
    id: categoricalFingerprint(categories, countList, tail),
    n,
    missing,
    categories,
    counts: countList,
    shares: countList.map((c) => c / n),
    ...(tail ? { tail } : {}),
  };
}

/**
 * Builds a profile for a numeric column (numbers) or a categorical one (strings), judged by the
 * first present value.
 */
export function buildReferenceProfile(
  values: ArrayLike<MaybeNumber> | ArrayLike<MaybeCategory>,
  options: NumericProfileOptions & CategoricalProfileOptions = {},
): ReferenceProfile {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'string') return buildCategoricalProfile(values as ArrayLike<MaybeCategory>, options);
    if (typeof v === 'number' && !Number.isNaN(v))
      return buildNumericProfile(values as ArrayLike<MaybeNumber>, options);
  }
  throw new DriftlineError('VALIDATION_FAILED', 'reference profile: column has no present values');
}

// ---- validation of stored profiles (fail at start-up, naming the field) ----

type Json = Record<string, unknown>;

function field<T>(obj: Json, key: string, path: string, check: (v: unknown) => v is T, what: string): T {
  const v = obj[key];
  if (!check(v)) throw new ConfigError(`${path}.${key}`, `expected ${what}`);
  return v;
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isCount = (v: unknown): v is number => isFiniteNumber(v) && Number.isInteger(v) && v >= 0;
const isString = (v: unknown): v is string => typeof v === 'string';
const arrayOf =
  <T>(check: (v: unknown) => v is T) =>
  (v: unknown): v is T[] =>
    Array.isArray(v) && v.every(check);

/**
 * Validates a stored profile (e.g. parsed from ClickHouse JSON). Throws ConfigError naming the
 * offending field, e.g. `profile.cuts`.
 */
export function parseReferenceProfile(value: unknown, path = 'profile'): ReferenceProfile {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(path, 'expected an object');
  }
  const obj = value as Json;
  if (obj.format !== PROFILE_FORMAT) throw new ConfigError(`${path}.format`, `expected "${PROFILE_FORMAT}"`);
  const id = field(obj, 'id', path, isString, 'a string');
  const n = field(obj, 'n', path, isCount, 'a non-negative integer');
  if (n === 0) throw new ConfigError(`${path}.n`, 'expected at least one reference value');
  const missing = field(obj, 'missing', path, isCount, 'a non-negative integer');
  if (obj.kind === 'categorical') {
    const categories = field(obj, 'categories', path, arrayOf(isString), 'an array of strings');
    const counts = field(obj, 'counts', path, arrayOf(isCount), 'an array of counts');
    if (counts.length !== categories.length + 1) {
      throw new ConfigError(`${path}.counts`, 'expected one count per category plus "other"');
    }
    if (new Set(categories).size !== categories.length) {
      throw new ConfigError(`${path}.categories`, 'expected distinct categories');
    }
    const tail = obj.tail === undefined ? undefined : parseTailSketch(obj.tail, `${path}.tail`);
    if (tail && counts[categories.length] === 0) {
      throw new ConfigError(`${path}.tail`, 'expected no tail sketch when "other" is empty');
    }
    if (id !== categoricalFingerprint(categories, counts, tail)) {
      throw new ConfigError(`${path}.id`, 'does not match the profile content');
    }
    const shares = counts.map((c) => c / n);
    return {
      format: PROFILE_FORMAT,
      kind: 'categorical',
      id,
      n,
      missing,
      categories,
      counts,
      shares,
      ...(tail ? { tail } : {}),
    };
  }
  if (obj.kind !== 'numeric') throw new ConfigError(`${path}.kind`, 'expected "numeric" or "categorical"');
  const cuts = field(obj, 'cuts', path, arrayOf(isFiniteNumber), 'an array of finite numbers');
  for (let i = 1; i < cuts.length; i++) {
    if (!(cuts[i]! > cuts[i - 1]!)) throw new ConfigError(`${path}.cuts`, 'expected strictly increasing values');
  }
  const slotCounts = field(obj, 'slotCounts', path, arrayOf(isCount), 'an array of counts');
  if (slotCounts.length !== 2 * cuts.length + 1) {
    throw new ConfigError(`${path}.slotCounts`, 'expected 2·cuts.length + 1 entries');
  }
  if (slotCounts.reduce((a, b) => a + b, 0) !== n) throw new ConfigError(`${path}.slotCounts`, 'expected to sum to n');
  const coarseCutIndex = field(obj, 'coarseCutIndex', path, arrayOf(isCount), 'an array of indices');
  for (let j = 0; j < coarseCutIndex.length; j++) {
    const k = coarseCutIndex[j]!;
    if (k >= cuts.length || (j > 0 && !(k > coarseCutIndex[j - 1]!))) {
      throw new ConfigError(`${path}.coarseCutIndex`, 'expected increasing indices into cuts');
    }
  }
  if (id !== fingerprint(['numeric', cuts, slotCounts, coarseCutIndex])) {
    throw new ConfigError(`${path}.id`, 'does not match the profile content');
  }
  const coarseEdges = coarseEdgesOf(cuts, coarseCutIndex);
  const min = field(obj, 'min', path, isFiniteNumber, 'a finite number');
  const max = field(obj, 'max', path, isFiniteNumber, 'a finite number');
  const referenceShares = profileCoarseCounts({ cuts, coarseCutIndex }, slotCounts).map((c) => c / n);
  let ksBound = 0;
  for (let s = 0; s < slotCounts.length; s += 2) ksBound = Math.max(ksBound, slotCounts[s]! / n);
  const floatBits = obj.floatBits;
  if (floatBits !== undefined && floatBits !== 16 && floatBits !== 32) {
    throw new ConfigError(`${path}.floatBits`, 'expected 16 or 32 when present');
  }
  return {
    format: PROFILE_FORMAT,
    kind: 'numeric',
    id,
    n,
    missing,
    infinite: field(obj, 'infinite', path, isCount, 'a non-negative integer'),
    min,
    max,
    fineBins: field(obj, 'fineBins', path, isCount, 'a positive integer'),
    bins: field(obj, 'bins', path, isCount, 'a positive integer'),
    cuts,
    slotCounts,
    coarseEdges,
    coarseCutIndex,
    referenceShares,
    ksBound,
    ...(floatBits === undefined ? {} : { floatBits }),
  };
}
