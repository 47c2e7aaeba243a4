import { ownValue, PoisonRecordError } from '@driftline/core';
import type { FeatureValue } from '@driftline/schemas';
import type { ExpectationSet, FeatureExpectations } from './expectations.js';
import { DistinctSketch } from './sketch.js';

/**
 * Mergeable quality state of one feature in one (model, version, window): counts, plus a
 * HyperLogLog of the present values when a cardinality is expected. Merging adds counts and takes
 * the register-wise maximum, so it is associative and commutative exactly, and its size does not
 * grow with the events (≤ 7 counters + 1 KiB).
 */
export interface FeatureQuality {
  /** Events of the window (the feature's denominator for the null rate). */
  events: number;
  /** Null, NaN or absent. */
  nulls: number;
  /** Present, but not of the declared type. */
  mismatched: number;
  /** Doubles of the declared type (range denominator; ±Infinity included). */
  numbers: number;
  /** Of those, outside [min, max] (±Infinity always). */
  outside: number;
  /** Strings of the declared type (categories denominator). */
  strings: number;
  /** Of those, not in the allowed categories. */
  unseen: number;
  sketch: DistinctSketch | undefined;
}

/** Wire form of FeatureQuality (inside a drift partials message). */
export interface FeatureQualityJson {
  readonly events: number;
  readonly nulls: number;
  readonly mismatched: number;
  readonly numbers: number;
  readonly outside: number;
  readonly strings: number;
  readonly unseen: number;
  /** base64 of the sketch's registers, whenever a cardinality is expected (every release reads it). */
  readonly hll?: string;
  /** base64 of the distinct values' hashes, beside `hll` while within the exact limit; preferred when present. */
  readonly hashes?: string;
}

/** The quality section of one (model, version, window) partial: built against expectation set `id`. */
export interface QualityPartial {
  readonly id: string;
  readonly features: Readonly<Record<string, FeatureQualityJson>>;
}

export function emptyQuality(withSketch: boolean): FeatureQuality {
  return {
    events: 0,
    nulls: 0,
    mismatched: 0,
    numbers: 0,
    outside: 0,
    strings: 0,
    unseen: 0,
    sketch: withSketch ? new DistinctSketch() : undefined,
  };
}

const allowedCache = new WeakMap<readonly string[], ReadonlySet<string>>();
function allowedSet(list: readonly string[]): ReadonlySet<string> {
  let set = allowedCache.get(list);
  if (set === undefined) {
    set = new Set(list);
    allowedCache.set(list, set);
  }
  return set;
}

/** Counts one event's value of the feature. */
export function observe(q: FeatureQuality, e: FeatureExpectations, v: FeatureValue | undefined): void {
  q.events++;
  if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) {
    q.nulls++;
    return;
  }
  switch (e.type) {
    case 'double':
      if (typeof v !== 'number') {
        q.mismatched++;
        return;
      }
      q.numbers++;
      if (e.range !== undefined && !(v >= e.range.min && v <= e.range.max && Number.isFinite(v))) q.outside++;
      break;
    case 'string':
      if (typeof v !== 'string') {
        q.mismatched++;
        return;
      }
      q.strings++;
      if (e.categories !== undefined && !allowedSet(e.categories.allowed).has(v)) q.unseen++;
      break;
    case 'boolean':
      if (typeof v !== 'boolean') {
        q.mismatched++;
        return;
      }
      break;
  }
  if (q.sketch === undefined) return;
  if (typeof v === 'number') q.sketch.addNumber(v);
  else q.sketch.add(String(v));
}

export function mergeQuality(a: FeatureQuality, b: FeatureQuality): FeatureQuality {
  return {
    events: a.events + b.events,
    nulls: a.nulls + b.nulls,
    mismatched: a.mismatched + b.mismatched,
    numbers: a.numbers + b.numbers,
    outside: a.outside + b.outside,
    strings: a.strings + b.strings,
    unseen: a.unseen + b.unseen,
    // A side without a sketch (no cardinality expected when it was built) cannot be estimated.
    sketch: a.sketch !== undefined && b.sketch !== undefined ? a.sketch.merge(b.sketch) : undefined,
  };
}

export function qualityToJSON(q: FeatureQuality): FeatureQualityJson {
  const { events, nulls, mismatched, numbers, outside, strings, unseen } = q;
  return {
    events,
    nulls,
    mismatched,
    numbers,
    outside,
    strings,
    unseen,
    ...(q.sketch === undefined ? {} : q.sketch.toJSON()),
  };
}

const bad = (message: string) => new PoisonRecordError('DECODE_FAILED', `quality: ${message}`);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Rebuilds a feature's state from its wire form; poison unless every count is a non-negative integer
 * and the parts add up (nulls + mismatched + numbers + strings ≤ events, outside ≤ numbers,
 * unseen ≤ strings), so a corrupt partial cannot produce a share above 1.
 */
export function qualityFromJSON(json: unknown, field: string): FeatureQuality {
  if (!isObject(json)) throw bad(`${field} must be an object`);
  const keys = ['events', 'nulls', 'mismatched', 'numbers', 'outside', 'strings', 'unseen'] as const;
  for (const k of keys) if (!isCount(json[k])) throw bad(`${field}.${k} must be a count`);
  const q = emptyQuality(false);
  for (const k of keys) q[k] = json[k] as number;
  if (q.nulls + q.mismatched + q.numbers + q.strings > q.events || q.outside > q.numbers || q.unseen > q.strings) {
    throw bad(`${field}: counts do not add up`);
  }
  // Exact `hashes` win; `hll` alone is a sketch past the limit (or the previous release's writer).
  if (json.hll !== undefined || json.hashes !== undefined)
    q.sketch = DistinctSketch.fromJSON(json.hll, json.hashes, field);
  return q;
}

/**
 * Stage one's quality accumulator of one source partition: per (window, model, version) and feature
 * with expectations. Fed the same events the drift windows added (so it lives and closes with
 * them, and replays rebuild it exactly); `take` removes a closed window's section.
 */
/**
 * Values of an event another reader already took (drift-monitor's windows): `values[j]` is the
 * value of feature `inputs[j]` (undefined entries are not features of the event).
 */
export interface ReadValues {
  readonly inputs: readonly (string | undefined)[];
  readonly values: readonly (FeatureValue | undefined)[];
}

export class QualityWindows {
  private readonly open = new Map<string, FeatureQuality[]>();
  /** The section of the previous add: consecutive events of one window and model skip the key and look-up. */
  private last: { windowStart: number; model: string; version: string; states: FeatureQuality[] } | undefined;
  /** Per `inputs` list: for each expectation, the index of its feature there (-1: read from the event). */
  private readonly positions = new WeakMap<readonly (string | undefined)[], Int32Array>();

  constructor(readonly expectations: ExpectationSet) {}

  get enabled(): boolean {
    return this.expectations.features.length > 0;
  }

  /**
   * Counts one event. `read` (optional) supplies values already read: its `inputs` are the
   * features the model's reference profile lists, and an absent one is a null. A feature neither
   * read nor carried by the event (an own key, null included) is not counted for it: a model whose
   * predictions never carry a name is not measured on it (before, every other model's events
   * counted as nulls of it, a false null-rate alert every window).
   */
  add(
    windowStart: number,
    model: string,
    version: string,
    features: Readonly<Record<string, FeatureValue>>,
    read?: ReadValues,
  ): void {
    const list = this.expectations.features;
    if (list.length === 0) return;
    const states = this.section(windowStart, model, version);
    const at = read === undefined ? undefined : this.positionsIn(read.inputs);
    for (let i = 0; i < list.length; i++) {
      const j = at === undefined ? -1 : at[i]!;
      if (j >= 0) observe(states[i]!, list[i]!, read!.values[j]);
      else if (Object.hasOwn(features, list[i]!.feature))
        observe(states[i]!, list[i]!, ownValue(features, list[i]!.feature));
    }
  }

  private section(windowStart: number, model: string, version: string): FeatureQuality[] {
    const last = this.last;
    if (last !== undefined && last.windowStart === windowStart && last.model === model && last.version === version)
      return last.states;
    const key = `${windowStart}\u0000${model}\u0000${version}`;
    let states = this.open.get(key);
    if (states === undefined) {
      states = this.expectations.features.map((e) => emptyQuality(e.maxCardinality !== undefined));
      this.open.set(key, states);
    }
    this.last = { windowStart, model, version, states };
    return states;
  }

  private positionsIn(inputs: readonly (string | undefined)[]): Int32Array {
    let at = this.positions.get(inputs);
    if (at === undefined) {
      const index = new Map<string, number>();
      inputs.forEach((f, j) => {
        if (f !== undefined && !index.has(f)) index.set(f, j);
      });
      at = Int32Array.from(this.expectations.features, (e) => index.get(e.feature) ?? -1);
      this.positions.set(inputs, at);
    }
    return at;
  }

  /** The section of a closed window's partial, removed from memory (undefined when nothing was added). */
  take(windowStart: number, model: string, version: string): QualityPartial | undefined {
    const key = `${windowStart}\u0000${model}\u0000${version}`;
    const states = this.open.get(key);
    if (states === undefined) return undefined;
    this.open.delete(key);
    if (this.last?.states === states) this.last = undefined;
    const features: Record<string, FeatureQualityJson> = {};
    this.expectations.features.forEach((e, i) => {
      features[e.feature] = qualityToJSON(states[i]!);
    });
    return { id: this.expectations.id, features };
  }

  /** Forgets windows that closed without a partial (e.g. a partition revoked). */
  clear(): void {
    this.open.clear();
    this.last = undefined;
  }

  openSections(): number {
    return this.open.size;
  }
}
