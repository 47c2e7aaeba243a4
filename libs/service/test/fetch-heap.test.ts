import { ConfigError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { checkFetchHeap, FETCH_MAX_BYTES, fetchBytes, HEAP_BYTES_PER_FETCHED_BYTE } from '../src/fetch-heap.js';

const MiB = 1_048_576;
const decodedFetch = FETCH_MAX_BYTES * HEAP_BYTES_PER_FETCHED_BYTE; // one consumer with kafkajs' defaults

/** A ConfigError naming `field`, its message matching `message`. */
const refusal = (field: string, message: RegExp | string = /./) =>
  expect.objectContaining({
    name: ConfigError.name,
    field,
    message: typeof message === 'string' ? expect.stringContaining(message) : expect.stringMatching(message),
  });

describe('checkFetchHeap: one full fetch of every consumer, decoded, against the JS heap limit', () => {
  it('a fetch is kafkajs 10 MiB per broker, or a partition bound above it (a record batch that large comes whole)', () => {
    expect(fetchBytes({ groupId: 'g' })).toBe(10 * MiB);
    expect(fetchBytes({ groupId: 'g', maxBytesPerPartition: 4 * MiB })).toBe(10 * MiB);
    expect(fetchBytes({ groupId: 'g', maxBytesPerPartition: 64 * MiB })).toBe(64 * MiB);
  });

  it('names the bound and the heap limit in one line; a warning past half the heap', () => {
    const roomy = checkFetchHeap({ groupId: 'joiner' }, [], 4 * decodedFetch);
    expect(roomy.tight).toBe(false);
    expect(roomy.fields).toEqual({
      group: 'joiner',
      fetchMiB: 10,
      decodedMiB: 60,
      consumersDecodedMiB: 60,
      heapLimitMiB: 240,
    });
    const tight = checkFetchHeap({ groupId: 'joiner' }, [{ groupId: 'drift' }], 3 * decodedFetch);
    expect(tight.tight).toBe(true);
    expect(tight.fields.consumersDecodedMiB).toBe(120);
    expect(tight.message).toContain('--max-old-space-size');
  });

  it("a heap that cannot hold one consumer's fetch: a ConfigError naming NODE_OPTIONS and the heap to ask for", () => {
    expect(() => checkFetchHeap({ groupId: 'joiner' }, [], decodedFetch - 1)).toThrow(
      refusal('NODE_OPTIONS', /heap limit \(60 MiB\).*consumer joiner.*~60 MiB.*--max-old-space-size=120/),
    );
  });

  it("the process's consumers add up to a warning, never a refusal: each fits alone (found by a review: every service in one process at 512 MiB was refused)", () => {
    const heap = 1.5 * decodedFetch;
    expect(checkFetchHeap({ groupId: 'a' }, [], heap).tight).toBe(true);
    const both = checkFetchHeap({ groupId: 'b' }, [{ groupId: 'a' }], heap);
    expect(both.tight).toBe(true);
    expect(both.message).toContain('(~120 MiB, per broker fetched from)');
    // An alert router with 18 receivers (one consumer each) at --max-old-space-size=1024.
    const receivers = Array.from({ length: 17 }, (_, i) => ({ groupId: `r${i}` }));
    expect(checkFetchHeap({ groupId: 'r17' }, receivers, 1_072 * MiB).tight).toBe(true);
  });

  it("names the service's variable when its partition bound is what does not fit", () => {
    const joiner = {
      groupId: 'joiner',
      maxBytesPerPartition: 512 * MiB,
      fetchBytesField: 'DRIFTLINE_JOINER_MAX_BATCH_BYTES',
    };
    expect(() => checkFetchHeap(joiner, [{ groupId: 'drift' }], 2_048 * MiB)).toThrow(
      refusal('DRIFTLINE_JOINER_MAX_BATCH_BYTES', `lower it (${512 * MiB} bytes), or raise --max-old-space-size`),
    );
    // At or below kafkajs' own bound the variable changes nothing: the heap is what to raise.
    const small = { ...joiner, maxBytesPerPartition: 8 * MiB };
    expect(() => checkFetchHeap(small, [], 50 * MiB)).toThrow(refusal('NODE_OPTIONS'));
  });
});
