import { PoisonRecordError } from '@driftline/core';
import { contracts } from '@driftline/schemas';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { SchemaRegistryCodec, type SchemaSource } from '../src/index.js';

/**
 * Writers a producer may register under the same subject while the consumers still run the
 * current reader: each the registry accepts at BACKWARD (checked by a review against Apicurio).
 */
type Schema = { name: string; namespace?: string; fields: Array<Record<string, unknown>> };
const prediction = contracts.prediction.schema as unknown as Schema;
const alert = contracts.alert.schema as unknown as Schema;

const withTraceId: Schema = {
  ...prediction,
  fields: [...prediction.fields, { name: 'trace_id', type: ['null', 'long'], default: null }],
};
const inOtherNamespace: Schema = { ...prediction, namespace: 'com.acme.ml' };
const inMicros: Schema = {
  ...prediction,
  fields: prediction.fields.map((f) =>
    f.name === 'event_time' ? { ...f, type: { type: 'long', logicalType: 'timestamp-micros' } } : f,
  ),
};
const withNewAlertKind: Schema = {
  ...alert,
  fields: alert.fields.map((f) => {
    if (f.name !== 'kind') return f;
    const kind = f.type as { symbols: string[] };
    return { ...f, type: { ...kind, symbols: [...kind.symbols, 'CONCEPT_DRIFT'] } };
  }),
};
const withoutEntity: Schema = { ...prediction, fields: prediction.fields.filter((f) => f.name !== 'entity_id') };
/** The prediction with `type` for field `name`. */
const withField = (name: string, type: unknown, extra: Record<string, unknown> = {}): Schema => ({
  ...prediction,
  fields: prediction.fields.map((f) => (f.name === name ? { ...f, type, ...extra } : f)),
});
// Unions that gained a branch (each accepted by the registry at BACKWARD, found by a review).
const classAsLong = withField('predicted_class', ['null', 'string', 'long']);
const featureArrays = withField('features', {
  type: 'map',
  values: ['null', 'double', 'string', 'boolean', { type: 'array', items: 'double' }],
});
const nullablePrediction = withField('prediction', ['null', 'double'], { default: null });
const localTime = (unit: string) => withField('event_time', { type: 'long', logicalType: unit });

/** A reader with a record inside a union, and a writer whose record there gained a 64-bit field. */
const metaReader = {
  type: 'record',
  name: 'Holder',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'meta', type: ['null', { type: 'record', name: 'Meta', fields: [{ name: 'note', type: 'string' }] }] },
  ],
};
const metaWriter = {
  ...metaReader,
  fields: [
    metaReader.fields[0],
    {
      name: 'meta',
      type: [
        'null',
        {
          type: 'record',
          name: 'Meta',
          fields: [
            { name: 'note', type: 'string' },
            { name: 'trace_id', type: 'long', default: 0 },
          ],
        },
      ],
    },
  ],
};

const writers = new Map<number, Schema>([
  [7, metaWriter as unknown as Schema],
  [1, prediction],
  [2, withTraceId],
  [3, inOtherNamespace],
  [4, inMicros],
  [5, withNewAlertKind],
  [6, withoutEntity],
  [8, classAsLong],
  [9, featureArrays],
  [10, nullablePrediction],
  [11, localTime('local-timestamp-millis')],
  [12, localTime('local-timestamp-micros')],
]);
const lookups: number[] = [];
const source: SchemaSource = {
  schemaById: async (id) => {
    lookups.push(id);
    const schema = writers.get(id);
    if (schema === undefined)
      throw new PoisonRecordError('DECODE_FAILED', `schema id ${id} is unknown to the registry`);
    return JSON.stringify(schema);
  },
  register: async () => {
    throw new Error('not used');
  },
  lookup: async () => {
    throw new Error('not used');
  },
};
const codec = new SchemaRegistryCodec(source);
const predictions = codec.forTopic(contracts.prediction);
const alerts = codec.forTopic(contracts.alert);

function framed(id: number, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(id, 1);
  return Buffer.concat([header, body]);
}

const predictionValue = {
  prediction_id: 'p1',
  model: 'fraud',
  model_version: 'v1',
  entity_id: 'u1',
  event_time: 1_733_140_000_000,
  features: { amount: 12.5 },
  prediction: 0.75,
  predicted_class: null,
  role: 'production',
  scores: null,
};
const alertValue = {
  alert_id: 'a1',
  kind: 'FEATURE_DRIFT',
  model: 'fraud',
  model_version: 'v1',
  feature: 'amount',
  window_start: 1_733_140_000_000,
  window_end: 1_733_143_600_000,
  event_time: 1_733_143_600_000,
};

/** An alert as writer 5 writes it, every field the schema has filled with a valid value. */
function alertBody(kind: string): Buffer {
  const type = avro.Type.forSchema(withNewAlertKind as unknown as avro.Schema);
  const base = type.random() as unknown as Record<string, unknown>;
  return type.toBuffer({ ...base, ...alertValue, kind });
}

describe('decoding writers a producer registered after this reader', () => {
  it('skips a 64-bit value in a field the reader does not read (every record was dead-lettered)', async () => {
    const type = avro.Type.forSchema(withTraceId as unknown as avro.Schema);
    // trace_id = 2^62: union branch 1 (zigzag 0x02), then the long's 10-byte varint (zigzag 2^63).
    const small = type.toBuffer({ ...predictionValue, trace_id: 1 });
    const body = Buffer.concat([
      small.subarray(0, -1),
      Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
    ]);
    expect(await predictions.decode(framed(2, body))).toMatchObject(predictionValue);
  });

  it('still refuses a long beyond ±2^53 in a field the reader reads, naming it', async () => {
    const body = avro.Type.forSchema(prediction as unknown as avro.Schema).toBuffer(predictionValue);
    const at = body.indexOf(Buffer.from('u1')) + 2; // event_time follows entity_id
    const end = at + avro.Type.forSchema('long').toBuffer(predictionValue.event_time).length;
    const huge = Buffer.concat([
      body.subarray(0, at),
      Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
      body.subarray(end),
    ]);
    await expect(predictions.decode(framed(1, huge))).rejects.toThrow(/at event_time .*beyond ±2\^53/);
  });

  it('skips a 64-bit value in a field of a record inside a union that the reader does not read', async () => {
    const holders = codec.forSchema<{ id: string; meta: { note: string } | null }>(metaReader, 'holders.v1');
    const type = avro.Type.forSchema(metaWriter as avro.Schema);
    const small = type.toBuffer({ id: 'h', meta: { note: 'n', trace_id: 1 } });
    // trace_id is the last field: its varint (zigzag 2) replaced by a 10-byte one (2^62).
    const body = Buffer.concat([
      small.subarray(0, -1),
      Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
    ]);
    expect(await holders.decode(framed(7, body))).toMatchObject({ id: 'h', meta: { note: 'n' } });
  });

  it('reads a record of another namespace as Avro Java does (by unqualified name)', async () => {
    const body = avro.Type.forSchema(inOtherNamespace as unknown as avro.Schema).toBuffer(predictionValue);
    expect(await predictions.decode(framed(3, body))).toMatchObject(predictionValue);
  });

  it('reads a timestamp-micros writer as milliseconds (it read as a time 1000x in the future)', async () => {
    const body = avro.Type.forSchema(inMicros as unknown as avro.Schema).toBuffer({
      ...predictionValue,
      event_time: predictionValue.event_time * 1_000 + 999,
    });
    expect((await predictions.decode(framed(4, body))).event_time).toBe(predictionValue.event_time);
  });

  it('a newer enum symbol makes only the records that carry it poison, not the whole writer', async () => {
    expect(await alerts.decode(framed(5, alertBody('PREDICTION_DRIFT')))).toMatchObject({ kind: 'PREDICTION_DRIFT' });
    const refused = alerts.decode(framed(5, alertBody('CONCEPT_DRIFT')));
    await expect(refused).rejects.toBeInstanceOf(PoisonRecordError);
    await expect(refused).rejects.toThrow(/schema 5 writes a symbol or union branch this reader does not know at kind/);
  });

  it('a union that gained a branch makes only the records written in that branch poison (every record of the writer was)', async () => {
    const encode = (schema: Schema, value: Record<string, unknown>) =>
      avro.Type.forSchema(schema as unknown as avro.Schema, { wrapUnions: true }).toBuffer({
        ...predictionValue,
        features: { amount: { double: 12.5 } },
        predicted_class: null,
        role: 'production',
        scores: null,
        unscored: null,
        ...value,
      });
    const newBranch = /writes a symbol or union branch this reader does not know at (\S+)/;
    // predicted_class gained a long branch.
    expect(
      await predictions.decode(framed(8, encode(classAsLong, { predicted_class: { string: 'yes' } }))),
    ).toMatchObject({ ...predictionValue, predicted_class: 'yes' });
    expect(await predictions.decode(framed(8, encode(classAsLong, {})))).toMatchObject(predictionValue);
    await expect(predictions.decode(framed(8, encode(classAsLong, { predicted_class: { long: 1 } })))).rejects.toThrow(
      newBranch,
    );
    // A feature value's union gained an array branch.
    const features = { amount: { double: 12.5 }, country: { string: 'fr' }, missing: null };
    expect(await predictions.decode(framed(9, encode(featureArrays, { features })))).toMatchObject({
      ...predictionValue,
      features: { amount: 12.5, country: 'fr', missing: null },
    });
    const withArray = predictions.decode(framed(9, encode(featureArrays, { features: { v: { array: [1, 2] } } })));
    await expect(withArray).rejects.toBeInstanceOf(PoisonRecordError);
    await expect(withArray).rejects.toThrow(/at features\.v/);
    // prediction became nullable: the non-null ones decode.
    expect(
      await predictions.decode(framed(10, encode(nullablePrediction, { prediction: { double: 0.75 } }))),
    ).toMatchObject(predictionValue);
    await expect(predictions.decode(framed(10, encode(nullablePrediction, { prediction: null })))).rejects.toThrow(
      /at prediction/,
    );
  });

  it('a writer declaring a local timestamp on event_time is poison, not read as an instant shifted by its UTC offset', async () => {
    for (const [id, unit] of [
      [11, 'local-timestamp-millis'],
      [12, 'local-timestamp-micros'],
    ] as const) {
      const body = avro.Type.forSchema(localTime(unit) as unknown as avro.Schema).toBuffer({
        ...predictionValue,
        event_time: predictionValue.event_time + 2 * 3_600_000, // a producer at UTC+2: its wall clock
      });
      const refused = predictions.decode(framed(id, body));
      await expect(refused).rejects.toBeInstanceOf(PoisonRecordError);
      await expect(refused).rejects.toThrow(
        new RegExp(`predictions\\.v1: writer schema ${id} declares ${unit} on event_time, not an instant`),
      );
    }
  });

  it('an unknown schema id names the topic, like every other reason', async () => {
    await expect(predictions.decode(framed(5_000, Buffer.alloc(4)))).rejects.toThrow(
      /^predictions\.v1: schema id 5000 is unknown to the registry$/,
    );
  });

  it("a writer the reader cannot resolve is poison with avsc's reason", async () => {
    const body = avro.Type.forSchema(withoutEntity as unknown as avro.Schema).toBuffer(predictionValue);
    await expect(predictions.decode(framed(6, body))).rejects.toThrow(
      /writer schema 6 cannot be read as predictions\.v1-value: .*entity_id/,
    );
  });

  it('a schema id beyond a Java int is poison without a registry look-up (a bare 404 read as an outage)', async () => {
    lookups.length = 0;
    await expect(predictions.decode(framed(0x80000000, Buffer.alloc(4)))).rejects.toThrow(
      /schema id 2147483648 is beyond any registry's ids/,
    );
    expect(lookups).toEqual([]);
  });
});
