import { createRequire } from 'node:module';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';

// patches/kafkajs@2.2.4.patch rewrites kafkajs's varint writers (in place instead of a Buffer per
// value), its CRC-32C (slicing-by-8), the produce request's uncompressed record batch (one pass
// into one buffer) and sizes the produce request's and every request frame's buffers exactly. These checks hold each to an independent reference and to kafkajs's own
// unpatched code: its decoder, and its Record and RecordBatch encoders.
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

/** CRC-32C bit by bit (reflected polynomial 0x82f63b78), the definition the tables come from. */
function crc32cReference(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('kafkajs patch: CRC-32C by slicing-by-8', () => {
  const crc32C = require('kafkajs/src/protocol/recordBatch/crc32C') as (b: Buffer) => number;

  it('gives the standard check value', () => {
    expect(crc32C(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('agrees with the bitwise definition for every length and offset', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(7), (bytes, skip) => {
        const view = Buffer.from(bytes).subarray(Math.min(skip, bytes.length)); // unaligned views too
        expect(crc32C(view)).toBe(crc32cReference(view));
      }),
      { numRuns: 3_000 },
    );
  });
});

type Message = {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  timestamp?: string;
  headers?: Record<string, Buffer | string | (Buffer | string)[]>;
};
type Encodable = { buffer: Buffer; size(): number };
const produceV3 = require('kafkajs/src/protocol/requests/produce/v3/request') as (args: object) => {
  encode(): Promise<Encodable>;
};
const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (args: object) => Encodable;
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as {
  RecordBatch(args: object): Promise<Encodable>;
};
const decodeRecordBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (d: object) => Promise<{
  records: { key: Buffer | null; value: Buffer | null; timestamp: string; offset: string; headers: object }[];
}>;
const Long = require('kafkajs/src/utils/long') as { fromInt(v: number): object; fromValue(v: number): object };
type FullEncoder = Encoder & {
  writeString(v: string | null): FullEncoder;
  writeInt16(v: number): FullEncoder;
  writeInt32(v: number): FullEncoder;
  writeArray(v: object[]): FullEncoder;
  writeEncoder(v: object): FullEncoder;
};
const FullEncoderClass = Encoder as unknown as new () => FullEncoder;

/** A produce v3 request as unpatched kafkajs encodes it: a Record per message, then RecordBatch. */
async function originalRequest(args: {
  transactionalId: string | null;
  producerId: object;
  producerEpoch: number;
  partitions: { partition: number; firstSequence: number; messages: Message[] }[];
  now: number;
}): Promise<Buffer> {
  const parts: FullEncoder[] = [];
  for (const { partition, firstSequence, messages } of args.partitions) {
    const stamps = messages
      .map((m) => m.timestamp)
      .filter((t) => t != null)
      .sort();
    const first = stamps.length === 0 ? args.now : stamps[0]!;
    const max = stamps.length === 0 ? args.now : stamps.at(-1)!;
    const records = messages.map((m, i) =>
      Record({ ...m, offsetDelta: i, timestampDelta: Number(m.timestamp || args.now) - Number(first) }),
    );
    const batch = await RecordBatch({
      compression: 0,
      records,
      firstTimestamp: first,
      maxTimestamp: max,
      producerId: args.producerId,
      producerEpoch: args.producerEpoch,
      firstSequence,
      transactional: args.transactionalId !== null,
      lastOffsetDelta: records.length - 1,
    });
    parts.push(new FullEncoderClass().writeInt32(partition).writeInt32(batch.size()).writeEncoder(batch));
  }
  const topic = new FullEncoderClass().writeString('t').writeArray(parts);
  return new FullEncoderClass().writeString(args.transactionalId).writeInt16(-1).writeInt32(30_000).writeArray([topic])
    .buffer;
}

const bytesOrString = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
const message: fc.Arbitrary<Message> = fc.record(
  {
    key: fc.oneof(bytesOrString, fc.constant(null)),
    value: fc.oneof(
      fc.uint8Array({ maxLength: 2_000 }).map((b) => Buffer.from(b)),
      fc.string(),
      fc.constant(null),
    ),
    // kafkajs takes timestamps as strings of ms; some far from the first (deltas beyond int32)
    timestamp: fc.oneof(fc.integer({ min: 1e12, max: 2e12 }), fc.integer({ min: 1e12, max: 1e12 + 5e9 })).map(String),
    headers: fc.dictionary(
      fc.string({ minLength: 1, maxLength: 8 }),
      fc.oneof(bytesOrString, fc.array(bytesOrString, { maxLength: 3 })),
      { maxKeys: 3 },
    ),
  },
  { requiredKeys: ['value'] },
);

describe('kafkajs patch: uncompressed record batch in one pass', () => {
  afterEach(() => vi.restoreAllMocks());
  const NOW = 1_764_000_000_000;

  it('encodes the bytes unpatched Record + RecordBatch encode, for any messages, headers and timestamps', async () => {
    vi.spyOn(Date, 'now').mockReturnValue(NOW); // messages without a timestamp take the request's time
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            partition: fc.nat(50),
            firstSequence: fc.nat(1e6),
            messages: fc.array(message, { maxLength: 40 }),
          }),
          { minLength: 1, maxLength: 3 },
        ),
        fc.oneof(fc.constant(null), fc.constant('tx-1')),
        fc.integer({ min: -1, max: 1e9 }),
        async (partitions, transactionalId, producerId) => {
          const args = {
            transactionalId,
            producerId: Long.fromValue(producerId),
            producerEpoch: 3,
            partitions,
            now: NOW,
          };
          const patched = await produceV3({
            acks: -1,
            timeout: 30_000,
            compression: 0,
            transactionalId,
            producerId: args.producerId,
            producerEpoch: 3,
            topicData: [{ topic: 't', partitions }],
          }).encode();
          const expected = await originalRequest(args);
          expect(patched.buffer.equals(expected)).toBe(true);
          // Sized exactly: no buffer grown by doubling (the garbage of a 256 KiB request was ~4 MiB).
          expect((patched as Encodable & { buf: Buffer }).buf.length).toBe(patched.size());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('frames a request as unpatched kafkajs does, in buffers of the exact size', async () => {
    const frame = require('kafkajs/src/protocol/request') as (args: object) => Promise<Encodable & { buf: Buffer }>;
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 70_000 }).map((b) => Buffer.from(b)),
        fc.oneof(fc.constant(null), fc.string({ maxLength: 30 })),
        fc.nat(2 ** 31 - 1),
        async (body, clientId, correlationId) => {
          const payload = new FullEncoderClass().writeInt32(body.length).writeEncoder({ buf: body, buffer: body });
          const framed = await frame({
            correlationId,
            clientId,
            request: { apiKey: 0, apiVersion: 3, encode: async () => payload },
          });
          const inner = new FullEncoderClass()
            .writeInt16(0)
            .writeInt16(3)
            .writeInt32(correlationId)
            .writeString(clientId)
            .writeEncoder(payload);
          const expected = new FullEncoderClass().writeInt32(inner.buffer.length).writeEncoder(inner).buffer;
          expect(framed.buffer.equals(expected)).toBe(true);
          expect(framed.buf.length).toBe(framed.size());
        },
      ),
      { numRuns: 100 },
    );
  });

  it('writes a CRC the bitwise definition agrees with, over records kafkajs decodes back', async () => {
    const messages = Array.from({ length: 1_000 }, (_, i) => ({
      key: `k${i}`,
      value: Buffer.alloc(i % 300, i),
      headers: i % 7 === 0 ? { h: `v${i}` } : undefined,
    }));
    const request = await produceV3({
      acks: -1,
      timeout: 30_000,
      compression: 0,
      producerId: Long.fromInt(-1),
      producerEpoch: 0,
      topicData: [{ topic: 't', partitions: [{ partition: 4, firstSequence: 0, messages }] }],
    }).encode();
    const bytes = request.buffer;
    // request: transactionalId (2, null), acks (2), timeout (4), topics (4), 't' (2 + 1), partitions (4)
    const at = 2 + 2 + 4 + 4 + 3 + 4;
    expect(bytes.readInt32BE(at)).toBe(4);
    const batchAt = at + 8; // partition, record set size
    const length = bytes.readInt32BE(batchAt + 8);
    const crcAt = batchAt + 8 + 4 + 4 + 1;
    expect(bytes.readUInt32BE(crcAt)).toBe(crc32cReference(bytes.subarray(crcAt + 4, batchAt + 12 + length)));
    const DecoderWithSlice = Decoder as unknown as new (b: Buffer) => object;
    const { records } = await decodeRecordBatch(new DecoderWithSlice(bytes.subarray(batchAt)));
    expect(records).toHaveLength(1_000);
    records.forEach((r, i) => {
      expect(r.key?.toString()).toBe(`k${i}`);
      expect(r.value?.equals(messages[i]!.value)).toBe(true);
      expect(r.offset).toBe(String(i));
      if (i % 7 === 0) expect(r.headers).toEqual({ h: Buffer.from(`v${i}`) });
    });
  });
});

describe('kafkajs patch: record headers decoded in one pass', () => {
  const decodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder') as (
    d: object,
    context: object,
  ) => { headers: Record<string, Buffer | Buffer[]> };
  const DecoderWithBytes = Decoder as unknown as new (b: Buffer) => { readVarIntBytes(): Buffer };
  const decoded = (headers: object) => {
    const encoded = Record({ key: Buffer.from('k'), value: Buffer.from('v'), headers }).buffer;
    const body = new DecoderWithBytes(encoded).readVarIntBytes(); // as the batch decoder hands it over
    return decodeRecord(new DecoderWithBytes(body), { firstOffset: '0', firstTimestamp: '0' }).headers;
  };

  it('keeps single values, collects a repeated key in order, and keeps a __proto__ key as an own header', () => {
    const headers = decoded({ a: 'x', b: ['1', '2', '3'], ['__proto__']: 'p' });
    expect(Object.keys(headers)).toEqual(['a', 'b', '__proto__']);
    expect(headers.a).toEqual(Buffer.from('x'));
    expect(headers.b).toEqual([Buffer.from('1'), Buffer.from('2'), Buffer.from('3')]);
    expect(Object.getOwnPropertyDescriptor(headers, '__proto__')?.value).toEqual(Buffer.from('p'));
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype);
  });

  // Unpatched, decoding copied the whole header object per header: 12,000 headers blocked the
  // event loop for 29 s, 16,000 for 48 s; this many would run for minutes (past the test timeout).
  it('decodes 50,000 headers of one record, distinct and repeated', () => {
    const many = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`h${i}`, 'x']));
    expect(Object.keys(decoded(many))).toHaveLength(50_000);
    const repeated = decoded({ r: Array.from({ length: 50_000 }, () => 'y') });
    expect(repeated.r).toHaveLength(50_000);
  });
});
