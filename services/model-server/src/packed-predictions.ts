import { hasKeysInOrder, setOwn } from '@driftline/core';
import type { PredictionEvent } from '@driftline/schemas';

/**
 * Prediction records as the serving thread hands them to the log's thread. A structured clone of
 * the records themselves copies every feature name of every record, about 2.7 µs per record here;
 * packed, the numbers travel in one transferred Float64Array and each distinct list of feature (or
 * score) names once, about a third of that.
 *
 * Exact for every record whose `event_time`, `prediction` and scores are numbers and whose text
 * fields are strings, but for one thing: text travels as UTF-8 bytes, so a lone UTF-16 surrogate
 * arrives as U+FFFD (as Buffer and the direct Avro writer write it; avsc would write bytes that are
 * not UTF-8). Feature values that are not numbers (null, strings, booleans) travel beside, by
 * position. An optional field holding `undefined` arrives absent (Avro encodes both alike).
 * Records outside that (a value of another type: the codec must see it to refuse it) are not
 * packed ({@link packPredictions} answers undefined) and are handed over as they are.
 *
 * Text as bytes, not strings: a structured clone of six strings per record cost the serving
 * thread more than the rest of the hand-off (about 0.17 ms per batch request of 100 in a CPU
 * profile under load); the bytes are transferred, and the log thread copies them into the Avro
 * values as they are.
 */
export interface PackedPredictions {
  readonly count: number;
  /**
   * UTF-8 bytes of every record's text fields: prediction_id, model, model_version, entity_id,
   * role, predicted_class ('' when absent or null).
   */
  readonly textBytes: Uint8Array<ArrayBuffer>;
  /**
   * Per record, per text field (TEXT per record, in the order above): its start and end in
   * `textBytes`. A field equal to the same field of the record before shares its bytes.
   */
  readonly textSpans: Uint32Array<ArrayBuffer>;
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
  /** The `unscored` maps of the records that have one (HAS_UNSCORED), in order: rare, cloned as they are. */
  readonly unscored: Array<Readonly<Record<string, string>>>;
}

/** Text fields per record (see `textSpans`), and the bits of `flags` (the HAS_* bits exported for the direct Avro writer). */
const TEXT = 6;
export const HAS_ROLE = 1;
export const HAS_CLASS = 2;
const CLASS_NULL = 4;
export const HAS_SCORES = 8;
const SCORES_NULL = 16;
export const HAS_UNSCORED = 32;
const UNSCORED_NULL = 64;

/** Index in `textSpans` of the start of text field `field` (0–5, the order of `textBytes`) of record `r`. */
export const textSpan = (r: number, field: number): number => (r * TEXT + field) * 2;

/** The hand-off's text bytes as a Buffer (a view, no copy). */
export const textBuffer = (p: PackedPredictions): Buffer =>
  Buffer.from(p.textBytes.buffer, p.textBytes.byteOffset, p.textBytes.byteLength);

const utf8 = new TextEncoder();

/** The text fields' bytes, written front to back; each field's span recorded in `spans`. */
class TextWriter {
  bytes: Uint8Array<ArrayBuffer>;
  pos = 0;

  constructor(
    readonly spans: Uint32Array<ArrayBuffer>,
    capacity: number,
  ) {
    this.bytes = new Uint8Array(capacity);
  }

  /** Writes a field whose span starts at `spans[at]`; shares the previous record's bytes when equal. */
  field(at: number, s: string, previous: string | undefined): void {
    const spans = this.spans;
    if (s === previous && at >= TEXT * 2) {
      spans[at] = spans[at - TEXT * 2]!;
      spans[at + 1] = spans[at - TEXT * 2 + 1]!;
      return;
    }
    const n = s.length;
    this.ensure(n * 3); // UTF-8 takes at most 3 bytes per UTF-16 unit
    const bytes = this.bytes;
    const start = this.pos;
    let pos = start;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        pos = start + utf8.encodeInto(s, bytes.subarray(start)).written;
        break;
      }
      bytes[pos++] = c;
    }
    spans[at] = start;
    spans[at + 1] = pos;
    this.pos = pos;
  }

  private ensure(more: number): void {
    if (this.pos + more <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.pos + more));
    grown.set(this.bytes.subarray(0, this.pos));
    this.bytes = grown;
  }
}

/** The record's numbers, written front to back into one growing Float64Array (the one transferred). */
class NumberWriter {
  values: Float64Array<ArrayBuffer>;
  pos = 0;

  constructor(capacity: number) {
    this.values = new Float64Array(Math.max(capacity, 16));
  }

  push(v: number): void {
    if (this.pos === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.pos++] = v;
  }
}

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
  const text = new TextWriter(new Uint32Array(count * TEXT * 2), count * 64);
  const flags = new Uint8Array(count);
  const featureNames = new Uint32Array(count);
  const scoreNames = new Uint32Array(count);
  const names: string[][] = [];
  const byJoined = new Map<string, number>();
  const others: Array<number | string | boolean | null> = [];
  const unscored: Array<Readonly<Record<string, string>>> = [];
  // Room for the usual record (as the first one): event_time, prediction, its features and scores.
  const first = events[0];
  const numbers = new NumberWriter(
    count *
      (2 + (first === undefined ? 0 : Object.keys(first.features).length + Object.keys(first.scores ?? {}).length)),
  );
  let lastFeatures = 0;
  let lastScores = 0;
  for (let r = 0; r < count; r++) {
    const e = events[r]!;
    if (typeof e.event_time !== 'number' || typeof e.prediction !== 'number') return undefined;
    if (!isText(e.prediction_id) || !isText(e.model) || !isText(e.model_version) || !isText(e.entity_id))
      return undefined;
    if (!(e.role === undefined || isText(e.role))) return undefined;
    if (!(e.predicted_class == null || isText(e.predicted_class))) return undefined;
    let flag = 0;
    const t = textSpan(r, 0);
    const before = r > 0 ? events[r - 1] : undefined;
    text.field(t, e.prediction_id, undefined);
    text.field(t + 2, e.model, before?.model);
    text.field(t + 4, e.model_version, before?.model_version);
    text.field(t + 6, e.entity_id, undefined);
    text.field(t + 8, e.role ?? '', before?.role ?? '');
    if (e.role !== undefined) flag |= HAS_ROLE;
    if (e.predicted_class === null) flag |= CLASS_NULL;
    else if (e.predicted_class !== undefined) flag |= HAS_CLASS;
    text.field(t + 10, e.predicted_class ?? '', before?.predicted_class ?? '');
    numbers.push(e.event_time);
    numbers.push(e.prediction);
    const known = names[lastFeatures];
    const keys = known !== undefined && hasKeysInOrder(e.features, known) ? known : Object.keys(e.features);
    if (keys !== known) lastFeatures = namesIndex(keys, names, byJoined, lastFeatures);
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
      // Any list of names equal to the keys is theirs (names are shared by content).
      const known = names[lastScores];
      const versions = known !== undefined && hasKeysInOrder(e.scores, known) ? known : Object.keys(e.scores);
      if (versions !== known) lastScores = namesIndex(versions, names, byJoined, lastScores);
      scoreNames[r] = lastScores;
      for (const v of versions) {
        const s = e.scores[v];
        if (typeof s !== 'number') return undefined;
        numbers.push(s);
      }
    }
    if (e.unscored === null) flag |= UNSCORED_NULL;
    else if (e.unscored !== undefined) {
      if (!hasTextValues(e.unscored)) return undefined;
      flag |= HAS_UNSCORED;
      unscored.push(e.unscored);
    }
    flags[r] = flag;
  }
  return {
    count,
    textBytes: text.bytes.subarray(0, text.pos),
    textSpans: text.spans,
    flags,
    numbers: numbers.values.subarray(0, numbers.pos),
    featureNames,
    scoreNames,
    names,
    others,
    unscored,
  };
}

const isText = (v: unknown): v is string => typeof v === 'string';

/** Whether a map's values are all strings (an Avro map of strings; the codec refuses any other). */
function hasTextValues(map: object): map is Readonly<Record<string, string>> {
  if (typeof map !== 'object' || Array.isArray(map)) return false;
  for (const value of Object.values(map)) if (!isText(value)) return false;
  return true;
}

/** The buffers a hand-off transfers (never copied: the serving thread no longer uses them). */
export const transferred = (p: PackedPredictions): ArrayBuffer[] => [
  p.numbers.buffer,
  p.textBytes.buffer,
  p.textSpans.buffer,
];

/** The records {@link packPredictions} packed, in order. */
export function unpackPredictions(p: PackedPredictions): PredictionEvent[] {
  const out = new Array<PredictionEvent>(p.count);
  const bytes = textBuffer(p);
  const spans = p.textSpans;
  const text = (r: number, f: number) => {
    const at = textSpan(r, f);
    return bytes.toString('utf8', spans[at], spans[at + 1]);
  };
  let at = 0;
  let other = 0;
  let unscored = 0;
  for (let r = 0; r < p.count; r++) {
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
      prediction_id: text(r, 0),
      model: text(r, 1),
      model_version: text(r, 2),
      entity_id: text(r, 3),
      event_time,
      features,
      prediction,
    };
    if (flag & HAS_CLASS) e.predicted_class = text(r, 5);
    else if (flag & CLASS_NULL) e.predicted_class = null;
    if (flag & HAS_ROLE) e.role = text(r, 4);
    if (flag & SCORES_NULL) e.scores = null;
    else if (flag & HAS_SCORES) {
      const scores: Record<string, number> = {};
      for (const v of p.names[p.scoreNames[r]!]!) setOwn(scores, v, p.numbers[at++]!);
      e.scores = scores;
    }
    if (flag & UNSCORED_NULL) e.unscored = null;
    else if (flag & HAS_UNSCORED) e.unscored = { ...p.unscored[unscored++]! };
    out[r] = e;
  }
  return out;
}
