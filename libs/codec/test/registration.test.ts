import { setTimeout as sleep } from 'node:timers/promises';
import { DriftlineError } from '@driftline/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SCHEMA_ID_RECHECK_MS, SchemaRegistryCodec, type SchemaSource } from '../src/index.js';

const schema = { type: 'record', name: 'Blob', fields: [{ name: 'text', type: 'string' }] };
const idOf = (frame: Buffer) => frame.readUInt32BE(1);

/** A registry whose registrations are counted and answered when the test says so. */
function heldRegistry(): SchemaSource & {
  calls: number;
  answer(result: number | Error): void;
} {
  let pending: Array<{ resolve: (id: number) => void; reject: (e: Error) => void }> = [];
  const source = {
    calls: 0,
    schemaById: async () => JSON.stringify(schema),
    register: () => {
      source.calls++;
      return new Promise<number>((resolve, reject) => pending.push({ resolve, reject }));
    },
    answer(result: number | Error) {
      for (const p of pending) {
        if (typeof result === 'number') p.resolve(result);
        else p.reject(result);
      }
      pending = [];
    },
  };
  return source;
}

/** Lets settled promise callbacks run. */
const settle = () => sleep(0);

afterEach(() => {
  vi.useRealTimers();
});

describe('the schema id a producer writes with', () => {
  it('is registered once for concurrent first encodes (found by a review: each registered on its own)', async () => {
    const registry = heldRegistry();
    const codec = new SchemaRegistryCodec(registry).forSchema<{ text: string }>(schema, 'blobs');
    const frames = Promise.all(Array.from({ length: 50 }, (_, i) => codec.encode({ text: `v${i}` })));
    const explicit = codec.register();
    await settle();
    expect(registry.calls).toBe(1);
    registry.answer(7);
    expect((await frames).map(idOf)).toEqual(Array(50).fill(7));
    expect(await explicit).toBe(7);
    expect(registry.calls).toBe(1);
  });

  it('a failed registration fails its waiting encodes, and the next encode registers again', async () => {
    const registry = heldRegistry();
    const codec = new SchemaRegistryCodec(registry).forSchema<{ text: string }>(schema, 'blobs');
    const first = Promise.all([codec.encode({ text: 'a' }), codec.encode({ text: 'b' })]);
    await settle();
    registry.answer(new DriftlineError('SOURCE_UNAVAILABLE', 'registry down', { retriable: true }));
    await expect(first).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
    expect(registry.calls).toBe(1);
    const again = codec.encode({ text: 'c' });
    await settle();
    expect(registry.calls).toBe(2);
    registry.answer(8);
    expect(idOf(await again)).toBe(8);
  });

  it('is confirmed in the background every SCHEMA_ID_RECHECK_MS, and replaced when the registry answers another (found by a review: cached for ever)', async () => {
    let now = 1_000_000;
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const registry = heldRegistry();
    const codec = new SchemaRegistryCodec(registry).forSchema<{ text: string }>(schema, 'blobs');
    const first = codec.encode({ text: 'a' });
    await settle();
    registry.answer(7);
    expect(idOf(await first)).toBe(7);

    // Within the interval: no registry call per value.
    now += SCHEMA_ID_RECHECK_MS - 1;
    vi.setSystemTime(now);
    for (let i = 0; i < 100; i++) expect(idOf(await codec.encode({ text: 'b' }))).toBe(7);
    expect(registry.calls).toBe(1);

    // The interval passed: one confirmation starts; encodes do not wait for it and keep the id meanwhile.
    now += 1;
    vi.setSystemTime(now);
    for (let i = 0; i < 100; i++) expect(idOf(await codec.encode({ text: 'c' }))).toBe(7);
    expect(registry.calls).toBe(2);
    // The subject was deleted (or the registry reset): registering again gives a new id, used from then on.
    registry.answer(12);
    await settle();
    expect(idOf(await codec.encode({ text: 'd' }))).toBe(12);
    expect(registry.calls).toBe(2);
  });

  it('a registry outage during a confirmation keeps the id, and is asked again only after another interval', async () => {
    let now = 1_000_000;
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const registry = heldRegistry();
    const codec = new SchemaRegistryCodec(registry).forSchema<{ text: string }>(schema, 'blobs');
    const first = codec.encode({ text: 'a' });
    await settle();
    registry.answer(7);
    await first;

    now += SCHEMA_ID_RECHECK_MS;
    vi.setSystemTime(now);
    expect(idOf(await codec.encode({ text: 'b' }))).toBe(7);
    registry.answer(new DriftlineError('TIMEOUT', 'no answer', { retriable: true }));
    await settle();
    for (let i = 0; i < 100; i++) expect(idOf(await codec.encode({ text: 'c' }))).toBe(7);
    expect(registry.calls).toBe(2);

    now += SCHEMA_ID_RECHECK_MS;
    vi.setSystemTime(now);
    expect(idOf(await codec.encode({ text: 'd' }))).toBe(7);
    expect(registry.calls).toBe(3);
    registry.answer(7);
    await settle();
    expect(idOf(await codec.encode({ text: 'e' }))).toBe(7);
  });
});
