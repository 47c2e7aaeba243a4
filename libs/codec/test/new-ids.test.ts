import { PoisonRecordError } from '@driftline/core';
import avro from 'avsc';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NEW_ID_GRACE_MS, NEW_ID_SPAN, SchemaRegistryCodec, type SchemaSource } from '../src/index.js';

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
});
