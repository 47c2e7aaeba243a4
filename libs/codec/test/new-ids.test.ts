import { PoisonRecordError } from '@driftline/core';
import avro from 'avsc';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  NEW_ID_GRACE_GAP_MS,
  NEW_ID_GRACE_MS,
  NEW_ID_SPAN,
  SchemaRegistryCodec,
  type SchemaSource,
} from '../src/index.js';

const schema = { type: 'record', name: 'Blob', fields: [{ name: 'text', type: 'string' }] };
const type = avro.Type.forSchema(schema as avro.Schema);
const wire = (id: number) => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  return Buffer.concat([head, type.toBuffer({ text: 'x' })]);
};

/** A registry node that knows ids up to `newest` (a follower that has not read later ones yet). */
function lagging(newest: number): SchemaSource & { newest: number } {
  const source = {
    newest,
    schemaById: async (id: number) => {
      if (id > source.newest)
        throw new PoisonRecordError('DECODE_FAILED', `schema id ${id} is unknown to the registry`);
      return JSON.stringify(schema);
    },
    register: async () => source.newest,
    lookup: async () => source.newest,
  };
  return source;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('a schema id the registry does not know yet', () => {
  it('just above the newest known id: retried (not dead-lettered) while the registry catches up', async () => {
    const source = lagging(41);
    const codec = new SchemaRegistryCodec(source).forSchema<{ text: string }>(schema, 'blobs');
    await codec.register(); // 41 is known
    // A producer registered 42 on the leader; this node has not read it yet.
    await expect(codec.decode(wire(42))).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: true });
    source.newest = 42;
    expect(await codec.decode(wire(42))).toEqual({ text: 'x' });
  });

  it('is poison once unknown for the grace period, and at once when far above, at or below the newest known, or with nothing known', async () => {
    vi.useFakeTimers({ now: 1_000_000, toFake: ['Date'] });
    const source = lagging(41);
    const codec = new SchemaRegistryCodec(source).forSchema<{ text: string }>(schema, 'blobs');
    await codec.decode(wire(41)); // 41 read: known
    await expect(codec.decode(wire(43))).rejects.toMatchObject({ retriable: true });
    vi.setSystemTime(1_000_000 + NEW_ID_GRACE_MS - 1);
    await expect(codec.decode(wire(43))).rejects.toMatchObject({ retriable: true });
    vi.setSystemTime(1_000_000 + NEW_ID_GRACE_MS);
    await expect(codec.decode(wire(43))).rejects.toMatchObject({ code: 'DECODE_FAILED', retriable: false });
    // A random id (garbage in the frame) is far above: poison at once.
    await expect(codec.decode(wire(41 + NEW_ID_SPAN + 1))).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    // Below the newest known: deleted or never existed.
    source.newest = 30;
    await expect(codec.decode(wire(35))).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    // A codec that knows no id yet cannot tell new from garbage.
    const fresh = new SchemaRegistryCodec(lagging(41)).forSchema<{ text: string }>(schema, 'blobs');
    await expect(fresh.decode(wire(42))).rejects.toMatchObject({ code: 'DECODE_FAILED' });
  });

  it('one grace window for all such ids, then none until a newer id is known or a long gap passed (found by a review)', async () => {
    let now = 1_000_000;
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const at = (t: number) => {
      now = t;
      vi.setSystemTime(t);
    };
    const source = lagging(41);
    const codec = new SchemaRegistryCodec(source).forSchema<{ text: string }>(schema, 'blobs');
    await codec.decode(wire(41));
    // Distinct ids reached one at a time (a consumer retrying a batch) share the window: 20 of
    // them had waited 30 s each, the partition held for as long.
    for (let k = 0; k < 20; k++) {
      at(1_000_000 + k * 1_000);
      await expect(codec.decode(wire(42 + k))).rejects.toMatchObject({ retriable: true });
    }
    at(1_000_000 + NEW_ID_GRACE_MS);
    for (const id of [42, 61, 62])
      await expect(codec.decode(wire(id))).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    // Still poison once the unknown ids are forgotten (60 s), until the gap has passed.
    at(now + NEW_ID_GRACE_GAP_MS - 1);
    await expect(codec.decode(wire(63))).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    at(1_000_000 + 2 * NEW_ID_GRACE_MS + NEW_ID_GRACE_GAP_MS);
    await expect(codec.decode(wire(64))).rejects.toMatchObject({ retriable: true });
    // A newer id known (a schema registered since) opens a window at once after this one ends.
    at(now + NEW_ID_GRACE_MS);
    await expect(codec.decode(wire(65))).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    source.newest = 66;
    await codec.decode(wire(66));
    await expect(codec.decode(wire(67))).rejects.toMatchObject({ retriable: true });
  });
});
