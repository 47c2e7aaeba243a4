import { setOwn } from '@driftline/core';
import type { PredictionEvent } from '@driftline/schemas';

/**
 * Prediction records as the serving thread hands them to the log's thread. A structured clone of
 * the records themselves copies every feature name of every record, about 2.7 µs per record here;
 * packed, the numbers travel in one transferred Float64Array and each distinct list of feature (or
 * score) names once, about a third of that.
 *
 * Exact for every record whose `event_time`, `prediction` and scores are numbers: feature values
 * that are not numbers (null, strings, booleans) travel beside, by position. An optional field
 * holding `undefined` arrives absent (Avro encodes both alike). Records outside that (a value of
 * another type: the codec must see it to refuse it) are not packed ({@link packPredictions}
 * answers undefined) and are handed over as they are.
 */
export interface PackedPredictions {
  readonly count: number;
  /** Per record: prediction_id, model, model_version, entity_id, role, predicted_class ('' when absent or null). */
  readonly text: string[];
  /** Per record: which optional fields are present, and which are null (HAS_* and *_NULL bits). */
  readonly flags: Uint8Array;
  /** Per record: event_time, prediction, its feature values in its names' order, then its scores. */
  readonly numbers: Float64Array<ArrayBuffer>;
  /** Per record: index in `names` of its feature names, and of its score names (when it has scores). */
  readonly featureNames: Uint32Array;
  readonly scoreNames: Uint32Array;
  readonly names: string[][];
  /** Feature values that are not numbers: (record, position in its names, value), flattened, in order. */
  readonly others: Array<number | string | boolean | null>;
}

/** Strings per record in `text`, and the bits of `flags` (exported for the direct Avro writer). */
export const TEXT = 6;
export const HAS_ROLE = 1;
export const HAS_CLASS = 2;
const CLASS_NULL = 4;
export const HAS_SCORES = 8;
const SCORES_NULL = 16;

/** Index of `keys` in `names`, added when new; `last` first (every record of a batch usually shares it). */
function namesIndex(keys: string[], names: string[][], byJoined: Map<string, number>, last: number): number {
  const known = names[last];
  if (known !== undefined && known.length === keys.length && known.every((k, i) => k === keys[i])) return last;
  const joined = JSON.stringify(keys); // unambiguous, unlike a join ([] and [''] would both be '')
  let index = byJoined.get(joined);
  if (index === undefined) {
    index = names.length;
    names.push(keys);
    byJoined.set(joined, index);
  }
  return index;
}

/** Packs `events` for the hand-off; undefined when one of them cannot be packed exactly. */
export function packPredictions(events: readonly PredictionEvent[]): PackedPredictions | undefined {
  const count = events.length;
  const text = new Array<string>(count * TEXT);
  const flags = new Uint8Array(count);
  const featureNames = new Uint32Array(count);
  const scoreNames = new Uint32Array(count);
  const names: string[][] = [];
  const byJoined = new Map<string, number>();
  const others: Array<number | string | boolean | null> = [];
  const numbers: number[] = [];
  let lastFeatures = 0;
  let lastScores = 0;
  for (let r = 0; r < count; r++) {
    const e = events[r]!;
    if (typeof e.event_time !== 'number' || typeof e.prediction !== 'number') return undefined;
    let flag = 0;
    const t = r * TEXT;
    text[t] = e.prediction_id;
    text[t + 1] = e.model;
    text[t + 2] = e.model_version;
    text[t + 3] = e.entity_id;
    text[t + 4] = e.role ?? '';
    if (e.role !== undefined) flag |= HAS_ROLE;
    if (e.predicted_class === null) flag |= CLASS_NULL;
    else if (e.predicted_class !== undefined) flag |= HAS_CLASS;
    text[t + 5] = e.predicted_class ?? '';
    numbers.push(e.event_time, e.prediction);
    const keys = Object.keys(e.features);
    lastFeatures = namesIndex(keys, names, byJoined, lastFeatures);
    featureNames[r] = lastFeatures;
    for (let i = 0; i < keys.length; i++) {
      const v = e.features[keys[i]!];
      if (typeof v === 'number') numbers.push(v);
      else if (v === null || typeof v === 'string' || typeof v === 'boolean') {
        numbers.push(0);
        others.push(r, i, v);
      } else return undefined; // not a feature value: the codec names it, on the record itself
    }
    if (e.scores === null) flag |= SCORES_NULL;
    else if (e.scores !== undefined) {
      flag |= HAS_SCORES;
      const versions = Object.keys(e.scores);
      lastScores = namesIndex(versions, names, byJoined, lastScores);
      scoreNames[r] = lastScores;
      for (const v of versions) {
        const s = e.scores[v];
        if (typeof s !== 'number') return undefined;
        numbers.push(s);
      }
    }
    flags[r] = flag;
  }
  return { count, text, flags, numbers: Float64Array.from(numbers), featureNames, scoreNames, names, others };
}

/** The records {@link packPredictions} packed, in order. */
export function unpackPredictions(p: PackedPredictions): PredictionEvent[] {
  const out = new Array<PredictionEvent>(p.count);
  let at = 0;
  let other = 0;
  for (let r = 0; r < p.count; r++) {
    const t = r * TEXT;
    const flag = p.flags[r]!;
    const event_time = p.numbers[at++]!;
    const prediction = p.numbers[at++]!;
    const features: Record<string, null | number | string | boolean> = {};
    const keys = p.names[p.featureNames[r]!]!;
    for (let i = 0; i < keys.length; i++) {
      let value: null | number | string | boolean = p.numbers[at++]!;
      if (p.others[other] === r && p.others[other + 1] === i) {
        value = p.others[other + 2]!;
        other += 3;
      }
      setOwn(features, keys[i]!, value);
    }
    const e: PredictionEvent = {
      prediction_id: p.text[t]!,
      model: p.text[t + 1]!,
      model_version: p.text[t + 2]!,
      entity_id: p.text[t + 3]!,
      event_time,
      features,
      prediction,
    };
    if (flag & HAS_CLASS) e.predicted_class = p.text[t + 5]!;
    else if (flag & CLASS_NULL) e.predicted_class = null;
    if (flag & HAS_ROLE) e.role = p.text[t + 4]!;
    if (flag & SCORES_NULL) e.scores = null;
    else if (flag & HAS_SCORES) {
      const scores: Record<string, number> = {};
      for (const v of p.names[p.scoreNames[r]!]!) setOwn(scores, v, p.numbers[at++]!);
      e.scores = scores;
    }
    out[r] = e;
  }
  return out;
}
