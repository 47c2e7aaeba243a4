import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { SchemaRegistryCodec, type SchemaSource } from '../src/index.js';

/** A record whose encoded size the test chooses (a string of `n` bytes). */
const schema = { type: 'record', name: 'Blob', fields: [{ name: 'text', type: 'string' }] };
const type = avro.Type.forSchema(schema as avro.Schema);
const source: SchemaSource = {
  schemaById: async () => JSON.stringify(schema),
  register: async () => 4242,
  lookup: async () => 4242,
};

describe('TopicCodec.encode', () => {
  it('refuses a BigInt, a circular or a huge value as VALIDATION_FAILED naming the field (was a bare TypeError)', async () => {
    const codec = new SchemaRegistryCodec(source).forSchema<{ text: unknown }>(schema, 'blobs');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    for (const [value, shown] of [
      [5n, 'text=5n'],
      [{ n: 5n }, 'text={"n":"5n"}'],
      [circular, 'text=[unserializable [object Object]]'],
      [[1, 'x'.repeat(10_000)], `text=[1,"${'x'.repeat(96)}…`],
    ] as const) {
      const error = await codec.encode({ text: value }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'VALIDATION_FAILED' });
      expect((error as Error).message).toBe(`blobs-value: value does not match schema at ${shown}`);
    }
  });

  it('frames every value on its own bytes, across slab boundaries and beyond a slab', async () => {
    const codec = new SchemaRegistryCodec(source).forSchema<{ text: string }>(schema, 'blobs');
    // Sizes around the 64 KiB slab: many small values fill one, then straddling and oversized ones.
    const sizes = [...Array.from({ length: 700 }, (_, i) => 50 + (i % 97)), 65_530, 3, 70_000, 65_536, 1, 200_000, 7];
    const values = sizes.map((n, i) => ({ text: String.fromCharCode(97 + (i % 26)).repeat(n) }));
    const encoded: Buffer[] = [];
    for (const v of values) encoded.push(await codec.encode(v));
    encoded.forEach((b, i) => {
      expect(b.readUInt8(0)).toBe(0);
      expect(b.readUInt32BE(1)).toBe(4242);
      expect(b.subarray(5).equals(type.toBuffer(values[i]))).toBe(true);
    });
    // Decoding every one after all were written: no later value overwrote an earlier one's bytes.
    for (const [i, b] of encoded.entries()) expect(await codec.decode(b)).toEqual(values[i]);
  });
});
