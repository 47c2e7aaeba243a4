import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

// patches/kafkajs@2.2.4.patch rewrites kafkajs's varint writers (in place instead of a Buffer per
// value). These checks hold the patched writers to an independent reference and to kafkajs's own
// (unpatched) decoder, for every value a record batch can carry.
const require = createRequire(import.meta.url);
type Encoder = {
  writeVarInt(v: number): Encoder;
  writeVarLong(v: number): Encoder;
  writeInt8(v: number): Encoder;
  buffer: Buffer;
};
const Encoder = require('kafkajs/src/protocol/encoder') as new () => Encoder;
const Decoder = require('kafkajs/src/protocol/decoder') as new (
  b: Buffer,
) => { readVarInt(): number; readVarLong(): { toString(): string } };

/** Zigzag then unsigned LEB128, over BigInt (the Kafka protocol's varint and varlong). */
function reference(value: bigint, bits: 32 | 64): number[] {
  const zigzag =
    bits === 32
      ? BigInt.asUintN(32, (value << 1n) ^ (value >> 31n))
      : BigInt.asUintN(64, (value << 1n) ^ (value >> 63n));
  const out: number[] = [];
  let v = zigzag;
  while (v >= 0x80n) {
    out.push(Number((v & 0x7fn) | 0x80n));
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

describe('kafkajs patch: varints written in place', () => {
  it('writes the reference bytes for every int32, and kafkajs decodes them back', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 50 }), (values) => {
        const e = new Encoder();
        e.writeInt8(7); // an offset that is not 0
        for (const v of values) e.writeVarInt(v);
        expect([...e.buffer]).toEqual([7, ...values.flatMap((v) => reference(BigInt(v), 32))]);
        const d = new Decoder(e.buffer.subarray(1));
        for (const v of values) expect(d.readVarInt()).toBe(v);
      }),
      { numRuns: 2_000 },
    );
  });

  it('writes the reference bytes for every safe integer as a varlong, and kafkajs decodes them back', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.maxSafeInteger().chain((m) => fc.constantFrom(m, -m)),
          { maxLength: 50 },
        ),
        (values) => {
          const e = new Encoder();
          for (const v of values) e.writeVarLong(v);
          expect([...e.buffer]).toEqual(values.flatMap((v) => reference(BigInt(v), 64)));
          const d = new Decoder(e.buffer);
          for (const v of values) expect(d.readVarLong().toString()).toBe(String(v));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('grows the buffer when a varint lands at its end', () => {
    const e = new Encoder();
    for (let i = 0; i < 5_000; i++) e.writeVarInt(-(2 ** 31) + i);
    expect(e.buffer.length).toBe(5_000 * 5);
    const d = new Decoder(e.buffer);
    for (let i = 0; i < 5_000; i++) expect(d.readVarInt()).toBe(-(2 ** 31) + i);
  });
});
