import type { PredictionEvent } from '@driftline/schemas';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packPredictions, transferred, unpackPredictions } from '../src/packed-predictions.js';

/**
 * A record for the comparison: an optional field holding undefined as absent (what it becomes on
 * the way), its dictionaries as entry lists. Compared as objects, a `constructor` key holding NaN
 * would make two equal dictionaries differ (the matcher compares `.constructor` with ===).
 */
const comparable = (e: PredictionEvent) => {
  const present = Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined));
  return {
    ...present,
    features: Object.entries(e.features),
    scores: e.scores == null ? e.scores : Object.entries(e.scores),
    ...(e.unscored === undefined ? {} : { unscored: e.unscored === null ? null : Object.entries(e.unscored) }),
  };
};

const name = fc.oneof(
  fc.constantFrom('f0', 'f1', 'f2', '0', '10', '__proto__', 'constructor', ''),
  fc.string({ maxLength: 6 }),
);
const double = fc.oneof(
  fc.double(),
  fc.constantFrom(0, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.MIN_VALUE, 1_764_000_000_000_123),
);
/** Dictionaries as JSON.parse builds them: `__proto__` an own key, as a request's features can be. */
const dict = <T>(value: fc.Arbitrary<T>) =>
  fc.array(fc.tuple(name, value), { maxLength: 8 }).map((entries) => Object.fromEntries(entries));
/** Text fields: ASCII, any well-formed Unicode (multi-byte UTF-8, astral), or one of a few shared values. */
const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('m', 'é', '日本', '😀'));
const event: fc.Arbitrary<PredictionEvent> = fc.record(
  {
    prediction_id: text,
    model: text,
    model_version: text,
    entity_id: text,
    event_time: double,
    features: dict(fc.oneof(double, fc.constant(null), fc.string({ maxLength: 5 }), fc.boolean())),
    prediction: double,
    predicted_class: fc.oneof(fc.constant(null), fc.constant(undefined), text),
    role: fc.oneof(fc.constant(undefined), fc.constantFrom('production', 'canary', 'shadow', ''), text),
    scores: fc.oneof(fc.constant(null), fc.constant(undefined), dict(double)),
    unscored: fc.oneof(fc.constant(null), fc.constant(undefined), dict(text)),
  },
  { requiredKeys: ['prediction_id', 'model', 'model_version', 'entity_id', 'event_time', 'features', 'prediction'] },
  // Optional fields holding undefined too: the type forbids them, code that builds records may not.
) as fc.Arbitrary<PredictionEvent>;
/** Batches as requests make them: often one shape for every record. */
const batch = fc.oneof(
  fc.array(event, { maxLength: 30 }),
  fc
    .tuple(event, fc.array(fc.tuple(fc.string(), double), { maxLength: 30 }))
    .map(([e, rows]) => rows.map(([id, x]) => ({ ...e, prediction_id: id, prediction: x }))),
);

describe('packed prediction hand-off', () => {
  it('unpacks every record as it was packed, through a structured clone', () => {
    fc.assert(
      fc.property(batch, (events) => {
        const packed = packPredictions(events);
        expect(packed).toBeDefined();
        const back = unpackPredictions(structuredClone(packed!, { transfer: transferred(packed!) }));
        expect(back).toHaveLength(events.length);
        // Values compared with Object.is (NaN and -0 included), dictionaries in their key order.
        for (const [i, e] of back.entries()) expect(comparable(e)).toStrictEqual(comparable(events[i]!));
      }),
      { numRuns: 2_000 },
    );
  });

  it('sends each distinct list of names once', () => {
    const e = (i: number): PredictionEvent => ({
      prediction_id: `p${i}`,
      model: 'm',
      model_version: 'v1',
      entity_id: `u${i}`,
      event_time: i,
      features: { a: i, b: null },
      prediction: 0.5,
      role: 'production',
      scores: { v1: 0.5 },
    });
    const packed = packPredictions([...Array.from({ length: 100 }, (_, i) => e(i)), { ...e(100), features: { c: 1 } }]);
    expect(packed?.names).toEqual([['a', 'b'], ['v1'], ['c']]);
    expect(packed?.others).toHaveLength(100 * 3); // b: null, by position
  });

  it('leaves a record the codec must refuse unpacked, so the codec sees its value', () => {
    const good: PredictionEvent = {
      prediction_id: 'p',
      model: 'm',
      model_version: 'v',
      entity_id: 'u',
      event_time: 1,
      features: { a: 1 },
      prediction: 0.5,
    };
    const bad = [
      { ...good, features: { a: undefined } },
      { ...good, features: { a: {} } },
      { ...good, event_time: '1' },
      { ...good, prediction: null },
      { ...good, scores: { v: '0.5' } },
      { ...good, entity_id: 7 },
      { ...good, role: null },
      { ...good, predicted_class: 1 },
      { ...good, unscored: { v: 1 } },
      { ...good, unscored: ['v'] },
    ] as unknown as PredictionEvent[];
    for (const b of bad) expect(packPredictions([good, b])).toBeUndefined();
    expect(packPredictions([good])).toBeDefined();
  });

  it('carries text as UTF-8 bytes: a field equal to the record before shares its bytes; a lone surrogate arrives as U+FFFD', () => {
    const at = (i: number, entity: string): PredictionEvent => ({
      prediction_id: `p${i}`,
      model: 'modèle',
      model_version: 'v1',
      entity_id: entity,
      event_time: i,
      features: {},
      prediction: 0.5,
      role: 'shadow',
    });
    const events = [at(0, '日本'), at(1, 'a\uD800b'), at(2, '\uDC00'), at(3, '😀')];
    const packed = packPredictions(events)!;
    // Written once: the ids, the entities, and the model, version and role of the first record.
    const expected = ['p0', 'modèle', 'v1', '日本', 'shadow', 'p1', 'a\uFFFDb', 'p2', '\uFFFD', 'p3', '😀'];
    expect(packed.textBytes.byteLength).toBe(expected.reduce((n, s) => n + Buffer.byteLength(s), 0));
    const back = unpackPredictions(structuredClone(packed, { transfer: transferred(packed) }));
    expect(back.map((e) => e.entity_id)).toEqual(['日本', 'a\uFFFDb', '\uFFFD', '😀']);
    expect(back.map((e) => [e.model, e.model_version, e.role])).toEqual(events.map(() => ['modèle', 'v1', 'shadow']));
  });
});
