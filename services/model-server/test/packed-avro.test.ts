import { contracts, type PredictionEvent } from '@driftline/schemas';
import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { directEncodingApplies, encodePacked, setSchemaId } from '../src/packed-avro.js';
import { packPredictions } from '../src/packed-predictions.js';

const type = avro.Type.forSchema(contracts.prediction.schema as avro.Schema);

/** avsc's Confluent frame of a record: what the codec writes. */
function avscFrame(e: PredictionEvent, id: number): Buffer {
  const body = type.toBuffer(e);
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(id, 1);
  body.copy(frame, 5);
  return frame;
}

/** Strings without lone surrogates (avsc writes those as non-UTF-8 bytes; see packed-avro.ts). */
const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('', '__proto__', 'é', '日本'));
const number = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(0, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_VALUE, Number.MIN_VALUE),
);
const featureValue = fc.oneof(number, number, fc.constant(null), text, fc.boolean());
/** An object of own properties (`__proto__` included) in the order of `names`. */
function objectOf<V>(names: readonly string[], values: readonly V[]): Record<string, V> {
  const out: Record<string, V> = {};
  for (let i = 0; i < names.length; i++) {
    Object.defineProperty(out, names[i]!, { value: values[i], enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Shared name lists, as requests of one model have (the packer keeps each distinct list once). */
const names = fc.uniqueArray(text, { maxLength: 12 });
const record = (featureNames: string[], versions: string[]) =>
  fc.record(
    {
      prediction_id: text,
      model: text,
      model_version: text,
      entity_id: text,
      event_time: fc.oneof(
        fc.integer({ min: -1_000, max: 1_000 }),
        fc.integer({ min: -(2 ** 53 - 2), max: 2 ** 53 - 2 }), // avsc's longs (the others: below)
        fc.constantFrom(2 ** 53 - 2, -(2 ** 53 - 2)),
        fc.constantFrom(1_764_700_000_000, 2 ** 30, -(2 ** 30), 2 ** 30 - 1, -(2 ** 30) - 1),
      ),
      features: fc.tuple(...featureNames.map(() => featureValue)).map((values) => objectOf(featureNames, values)),
      prediction: number,
      predicted_class: fc.oneof(text, fc.constant(null)),
      role: text,
      scores: fc.oneof(
        fc.constant(null),
        fc.tuple(...versions.map(() => number)).map((values) => objectOf(versions, values)),
      ),
      unscored: fc.oneof(
        fc.constant(null),
        fc.tuple(...versions.map(() => text)).map((roles) => objectOf(versions, roles)),
      ),
    },
    { requiredKeys: ['prediction_id', 'model', 'model_version', 'entity_id', 'event_time', 'features', 'prediction'] },
  );
const batch = fc
  .tuple(names, names, names, fc.uniqueArray(text, { maxLength: 4 }))
  .chain(([a, b, c, versions]) =>
    fc.array(fc.oneof(record(a, versions), record(b, versions), record(c, [])), { minLength: 1, maxLength: 30 }),
  );

describe('predictions.v1 values written from the packed hand-off', () => {
  it('writes the contract this encoder was written for', () => {
    expect(directEncodingApplies()).toBe(true);
    const changed = structuredClone(contracts.prediction.schema) as unknown as { fields: Array<{ name: string }> };
    changed.fields[1]!.name = 'model_name';
    expect(directEncodingApplies(changed)).toBe(false);
    expect(directEncodingApplies({ ...changed, fields: changed.fields.slice(0, 10) })).toBe(false);
    const otherDefault = structuredClone(contracts.prediction.schema) as unknown as {
      fields: Array<{ default?: unknown }>;
    };
    otherDefault.fields[8]!.default = 'shadow';
    expect(directEncodingApplies(otherDefault)).toBe(false);
  });

  it("writes avsc's bytes for every record, whatever its values", () => {
    fc.assert(
      fc.property(batch, fc.integer({ min: 1, max: 2 ** 31 - 1 }), (events, id) => {
        const packed = packPredictions(events);
        expect(packed).toBeDefined();
        const { values } = encodePacked(packed!);
        expect(values).toHaveLength(events.length);
        values.forEach((value, r) => {
          setSchemaId(value!, id);
          expect(value!.equals(avscFrame(events[r]!, id))).toBe(true);
        });
      }),
      { numRuns: 400 },
    );
  });

  it('leaves a record whose event_time is not a long to the codec, and writes the others', () => {
    const at = (event_time: number, i: number): PredictionEvent => ({
      prediction_id: `p${i}`,
      model: 'm',
      model_version: 'v1',
      entity_id: `e${i}`,
      event_time,
      features: { a: 1, b: 'x', c: null },
      prediction: 0.5,
    });
    const limit = 2 ** 53 - 2; // avsc's largest long
    const events = [at(1, 0), at(1.5, 1), at(2 ** 53 - 1, 2), at(Number.NaN, 3), at(-limit, 4), at(-limit - 1, 5)];
    const { values } = encodePacked(packPredictions(events)!);
    expect(values.map((v) => v !== undefined)).toEqual([true, false, false, false, true, false]);
    expect(events.map((e) => type.isValid(e))).toEqual([true, false, false, false, true, false]);
    for (const r of [0, 4]) {
      setSchemaId(values[r]!, 3);
      expect(values[r]!.equals(avscFrame(events[r]!, 3))).toBe(true);
    }
  });

  it('writes a lone surrogate as U+FFFD, as Buffer does', () => {
    const e: PredictionEvent = {
      prediction_id: 'a\uD800b',
      model: 'm',
      model_version: 'v',
      entity_id: '\uDC00',
      event_time: 0,
      features: { 'k\uD83D': 'v\uDE00' },
      prediction: 1,
    };
    const value = encodePacked(packPredictions([e])!).values[0]!;
    const decoded = type.fromBuffer(value.subarray(5)) as PredictionEvent;
    expect(decoded.prediction_id).toBe('a\uFFFDb');
    expect(decoded.entity_id).toBe('\uFFFD');
    expect(decoded.features).toEqual({ 'k\uFFFD': 'v\uFFFD' });
  });
});
