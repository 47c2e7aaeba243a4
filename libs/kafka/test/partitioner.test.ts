import fc from 'fast-check';
import { type PartitionerArgs, Partitioners, type PartitionMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { keyHashPartitioner, murmur2 } from '../src/partitioner.js';

const metadata = (n: number, down: readonly number[] = []): PartitionMetadata[] =>
  Array.from({ length: n }, (_, p) => ({
    partitionErrorCode: 0,
    partitionId: p,
    leader: down.includes(p) ? -1 : 0,
    replicas: [0],
    isr: [0],
  }));

const args = (key: string | Buffer | null, n: number, partition?: number): PartitionerArgs => ({
  topic: 't',
  partitionMetadata: metadata(n),
  message: { key, value: null, ...(partition === undefined ? {} : { partition }) },
});

describe('murmur2', () => {
  it("matches the Java client's Utils.murmur2 test vectors", () => {
    // From Apache Kafka's UtilsTest.testMurmur2 (clients/src/test/java/.../utils/UtilsTest.java).
    expect(murmur2('21')).toBe(-973932308);
    expect(murmur2('foobar')).toBe(-790332482);
    expect(murmur2('a-little-bit-long-string')).toBe(-985981536);
    expect(murmur2('a-little-bit-longer-string')).toBe(-1486304829);
    expect(murmur2('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8')).toBe(-58897971);
    expect(murmur2(Buffer.from('abc'))).toBe(479470107);
  });

  it('hashes a string as the Buffer of its UTF-8 bytes (non-ASCII and lone surrogates too)', () => {
    for (const s of ['', 'é', 'ent-42', '日本語のキー', '\u{1F600}x', '\ud800', 'a\udc00bc']) {
      expect(murmur2(s)).toBe(murmur2(Buffer.from(s)));
    }
  });
});

describe('keyHashPartitioner', () => {
  it("chooses kafkajs's DefaultPartitioner's partition for every key (strings of any Unicode, Buffers)", () => {
    const ours = keyHashPartitioner();
    const theirs = Partitioners.DefaultPartitioner();
    const key = fc.oneof(
      fc.string({ maxLength: 64 }),
      fc.string({ unit: 'binary', maxLength: 64 }),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(key, fc.integer({ min: 1, max: 64 }), (k, n) => {
        expect(ours(args(k, n))).toBe(theirs(args(k, n)));
      }),
      { numRuns: 5_000 },
    );
  });

  it('keeps an explicit partition and spreads keyless messages over available partitions', () => {
    const ours = keyHashPartitioner();
    expect(ours(args('ent-1', 8, 5))).toBe(5);
    const keyless = { topic: 't', partitionMetadata: metadata(4, [1, 3]), message: { key: null, value: null } };
    const chosen = new Set(Array.from({ length: 20 }, () => ours(keyless)));
    expect(chosen).toEqual(new Set([0, 2]));
  });
});
