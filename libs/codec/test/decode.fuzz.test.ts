import { PoisonRecordError } from '@driftline/core';
import { type Contract, contracts } from '@driftline/schemas';
import { fuzzParameters, timedCallAsync } from '@driftline/test-support/fuzz';
import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NEW_ID_SPAN, SchemaRegistryCodec, type SchemaSource } from '../src/index.js';

/**
 * Property tests of the whole decode path (Confluent header → writer schema by id → bounds walk →
 * avsc decode, resolved into the reader schema) on valid records of every contract, mutated,
 * truncated, extended and with a rewritten header. Whatever the bytes: a value the reader schema
 * accepts, or PoisonRecordError DECODE_FAILED, within 100 ms per call.
 */

const all = Object.values(contracts) as ReadonlyArray<Contract<unknown>>;

/** Each contract as written today, then evolved: trailing writer-only fields the reader must skip. */
function evolved(schema: object): object {
  const record = schema as { name: string; fields: object[] };
  return {
    ...record,
    fields: [
      ...record.fields,
      { name: 'fuzz_tags', type: ['null', { type: 'array', items: 'string' }], default: null },
      { name: 'fuzz_counts', type: { type: 'map', values: 'long' }, default: {} },
    ],
  };
}
const writerSchemas = new Map<number, object>();
all.forEach((c, i) => {
  writerSchemas.set(i + 1, c.schema as object);
  writerSchemas.set(i + 101, evolved(c.schema as object));
});
const writerTypes = new Map([...writerSchemas].map(([id, s]) => [id, avro.Type.forSchema(s as avro.Schema)]));
const writerIds = [...writerSchemas.keys()];
const maxWriterId = Math.max(...writerIds);

/** The registry's answers for a fixed set of ids: an unknown id is poison, as the registry's 404 40403 is. */
const source: SchemaSource = {
  schemaById: async (id) => {
    const schema = writerSchemas.get(id);
    if (schema === undefined)
      throw new PoisonRecordError('DECODE_FAILED', `schema id ${id} is unknown to the registry`);
    return JSON.stringify(schema);
  },
  register: async (_subject, schema) => {
    for (const [id, s] of writerSchemas) if (JSON.stringify(s) === schema) return id;
    throw new Error('unexpected registration');
  },
  lookup: async () => {
    throw new Error('unexpected look-up');
  },
};
const codec = new SchemaRegistryCodec(source);
const readers = all.map((c) => ({ type: avro.Type.forSchema(c.schema as avro.Schema), codec: codec.forTopic(c) }));

/** Values of an Avro type (avsc's unwrapped unions, longs as safe integers). */
function valuesOf(type: avro.Type): fc.Arbitrary<unknown> {
  const name = type.typeName;
  switch (name) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'int':
      return fc.integer();
    case 'long':
      return fc.oneof(
        fc.integer({ min: -(2 ** 52), max: 2 ** 52 }),
        fc.integer({ min: 946_684_800_000, max: 4_102_444_800_000 }),
      );
    case 'float':
      return fc.float();
    case 'double':
      return fc.double();
    case 'string':
      return fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 }));
    case 'enum':
      return fc.constantFrom(...(type as avro.types.EnumType).symbols);
    case 'array':
      return fc.array(valuesOf((type as avro.types.ArrayType).itemsType), { maxLength: 6 });
    case 'map':
      return fc.dictionary(
        fc.string({ maxLength: 8 }),
        valuesOf((type as avro.types.MapType).valuesType as avro.Type),
        {
          maxKeys: 6,
        },
      );
    case 'record': {
      const fields = (type as avro.types.RecordType).fields;
      return fc.record(Object.fromEntries(fields.map((f) => [f.name, valuesOf(f.type)])));
    }
    default:
      if (name.startsWith('union:')) return fc.oneof(...(type as avro.types.UnwrappedUnionType).types.map(valuesOf));
      if (name.startsWith('logical:')) return valuesOf((type as avro.types.LogicalType).underlyingType);
      throw new Error(`no arbitrary for Avro type ${name}`);
  }
}

function wire(id: number, body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(id >>> 0, 1);
  out.set(body, 5);
  return out;
}

/** A valid record of any writer schema, in the wire format. */
const validWire = fc.constantFrom(...writerIds).chain((id) => {
  const type = writerTypes.get(id)!;
  return valuesOf(type).map((value) => ({ id, bytes: wire(id, type.toBuffer(value)) }));
});

/** A zigzag varint as avsc writes it (any safe integer), or a raw run of continuation bytes. */
const hostileVarint = fc.oneof(
  fc.constant([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // the map count of issue 11
  fc.maxSafeInteger().map((v) => {
    let n = v >= 0 ? v * 2 : -v * 2 - 1;
    const out: number[] = [];
    while (n >= 0x80) {
      out.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    out.push(n);
    return out;
  }),
  fc.array(fc.integer({ min: 0x80, max: 0xff }), { minLength: 1, maxLength: 12 }),
);

type Mutation =
  | { readonly kind: 'set'; readonly at: number; readonly byte: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: readonly number[] }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'schema-id'; readonly id: number }
  | { readonly kind: 'magic'; readonly byte: number };

const at = fc.nat();
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('set' as const), at, byte: fc.integer({ min: 0, max: 255 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      at,
      bytes: fc.oneof(hostileVarint, fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 8 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('schema-id' as const),
      id: fc.oneof(fc.constantFrom(...writerIds), fc.integer({ min: 0, max: 0xffff_ffff })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('magic' as const), byte: fc.integer({ min: 1, max: 255 }) }) },
);

/** Mutations of the body keep the 5-byte header (its own mutations rewrite it), except a truncation. */
function mutate(bytes: Buffer, mutations: readonly Mutation[]): Buffer {
  let b = Buffer.from(bytes);
  for (const m of mutations) {
    const bodyAt = 'at' in m ? 5 + (m.at % Math.max(1, b.length - 4)) : 0;
    switch (m.kind) {
      case 'set':
        if (bodyAt < b.length) b[bodyAt] = m.byte;
        break;
      case 'truncate':
        b = b.subarray(0, m.at % (b.length + 1));
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, bodyAt), Buffer.from(m.bytes), b.subarray(bodyAt)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, bodyAt), b.subarray(bodyAt + m.length)]);
        break;
      case 'schema-id':
        if (b.length >= 5) b.writeUInt32BE(m.id, 1);
        break;
      case 'magic':
        if (b.length >= 1) b[0] = m.byte;
        break;
    }
  }
  return b;
}

/** Decodes with `reader`: a value the reader schema accepts, or a typed poison error; nothing else, never slow. */
async function decodesOrPoison(reader: (typeof readers)[number], bytes: Buffer): Promise<boolean> {
  const outcome = await timedCallAsync(() => reader.codec.decode(bytes));
  if (!outcome.threw) {
    expect(reader.type.isValid(outcome.value)).toBe(true);
    return true;
  }
  // An unknown id just above the newest one the codec has read may be a schema registered a
  // moment ago: retried for a while (NEW_ID_GRACE_MS), poison after.
  const id = bytes.length >= 5 && bytes[0] === 0 ? bytes.readUInt32BE(1) : 0;
  if (!writerSchemas.has(id) && id <= maxWriterId + NEW_ID_SPAN && !(outcome.error instanceof PoisonRecordError)) {
    expect(outcome.error).toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: true });
    return false;
  }
  expect(outcome.error).toBeInstanceOf(PoisonRecordError);
  expect(outcome.error).toMatchObject({ code: 'DECODE_FAILED', retriable: false });
  return false;
}

describe('Avro decode path under fuzzing (fast-check, seeded)', { timeout: 60_000 }, () => {
  it('round trip: every valid record of every contract decodes into its reader, evolved writers too', async () => {
    await fc.assert(
      fc.asyncProperty(validWire, async ({ id, bytes }) => {
        const index = (id > 100 ? id - 100 : id) - 1;
        const reader = readers[index]!;
        const outcome = await timedCallAsync(() => reader.codec.decode(bytes));
        if (outcome.threw) throw outcome.error;
        expect(reader.type.isValid(outcome.value)).toBe(true);
        if (id < 100) expect(reader.type.toBuffer(outcome.value).equals(bytes.subarray(5))).toBe(true);
      }),
      fuzzParameters(500),
    );
  });

  it('mutated, truncated and extended records, rewritten headers: decoded or DECODE_FAILED, each within 100 ms', async () => {
    let decoded = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(
        validWire,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.nat({ max: readers.length - 1 }),
        async ({ bytes }, mutations, r) => {
          if (await decodesOrPoison(readers[r]!, mutate(bytes, mutations))) decoded++;
          else refused++;
        },
      ),
      fuzzParameters(1_000),
    );
    // Both outcomes happen: the properties above are not vacuous.
    expect(decoded).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  it('random bodies behind a known schema id: decoded or DECODE_FAILED, each within 100 ms', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...writerIds),
        fc.uint8Array({ maxLength: 64 }),
        fc.nat({ max: readers.length - 1 }),
        async (id, body, r) => {
          await decodesOrPoison(readers[r]!, wire(id, body));
        },
      ),
      fuzzParameters(1_000),
    );
  });
});
