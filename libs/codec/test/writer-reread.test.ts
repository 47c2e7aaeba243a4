import { DriftlineError, PoisonRecordError } from '@driftline/core';
import avro from 'avsc';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SchemaRegistryCodec, type SchemaSource } from '../src/index.js';

interface Click {
  user: string;
  clicks: number;
}
interface Score {
  model: string;
  score: number;
}
const click = {
  type: 'record',
  name: 'Click',
  fields: [
    { name: 'user', type: 'string' },
    { name: 'clicks', type: 'long' },
  ],
};
const score = {
  type: 'record',
  name: 'Score',
  fields: [
    { name: 'model', type: 'string' },
    { name: 'score', type: 'double' },
  ],
};

const framed = (id: number, schema: object, value: unknown) => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  return Buffer.concat([head, avro.Type.forSchema(schema as avro.Schema).toBuffer(value)]);
};

/** A registry whose ids the test renumbers (a registry that lost its schemas), or takes down. */
function resettableRegistry(ids: Map<number, object>): SchemaSource & { reads: number[]; down: boolean } {
  const source = {
    reads: [] as number[],
    down: false,
    schemaById: async (id: number) => {
      source.reads.push(id);
      if (source.down) throw new DriftlineError('SOURCE_UNAVAILABLE', 'registry down', { retriable: true });
      const schema = ids.get(id);
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
  return source;
}

let now = 1_000_000;
const passes = (ms: number) => {
  now += ms;
  vi.setSystemTime(now);
};

afterEach(() => {
  vi.useRealTimers();
});

describe('a consumer whose registry numbered its schemas anew', () => {
  it('reads the id again when a record does not fit the schema it cached, and decodes it (found by a review: every new record dead-lettered until a restart)', async () => {
    const ids = new Map<number, object>([
      [1, click],
      [2, score],
    ]);
    const registry = resettableRegistry(ids);
    const consumer = new SchemaRegistryCodec(registry);
    const clicks = consumer.forSchema<Click>(click, 'clicks');
    const scores = consumer.forSchema<Score>(score, 'scores');
    expect(await clicks.decode(framed(1, click, { user: 'u1', clicks: 3 }))).toEqual({ user: 'u1', clicks: 3 });
    expect(await scores.decode(framed(2, score, { model: 'm1', score: 0.5 }))).toEqual({ model: 'm1', score: 0.5 });

    // The registry restarts empty; the scores producer registers first and gets 1, clicks then 2.
    ids.set(1, score);
    ids.set(2, click);
    expect(await clicks.decode(framed(2, click, { user: 'u2', clicks: 4 }))).toEqual({ user: 'u2', clicks: 4 });
    expect(await scores.decode(framed(1, score, { model: 'm2', score: 0.25 }))).toEqual({ model: 'm2', score: 0.25 });
    expect(await clicks.decode(framed(2, click, { user: 'u3', clicks: 5 }))).toEqual({ user: 'u3', clicks: 5 });
    expect(registry.reads).toEqual([1, 2, 2, 1]);
  });

  it('reads an id again at most once a minute: a record at fault is poison, at the cost of one look-up a minute', async () => {
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const registry = resettableRegistry(new Map([[1, click]]));
    const clicks = new SchemaRegistryCodec(registry).forSchema<Click>(click, 'clicks');
    const good = framed(1, click, { user: 'u1', clicks: 3 });
    const cut = good.subarray(0, good.length - 1);
    await clicks.decode(good);
    expect(registry.reads).toEqual([1]);
    for (let i = 0; i < 100; i++) await expect(clicks.decode(cut)).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    expect(registry.reads).toEqual([1, 1]);
    passes(59_999);
    await expect(clicks.decode(cut)).rejects.toThrow(/Avro body does not decode with schema 1/);
    expect(registry.reads).toEqual([1, 1]);
    passes(1);
    await expect(clicks.decode(cut)).rejects.toThrow(/Avro body does not decode with schema 1/);
    expect(registry.reads).toEqual([1, 1, 1]);
    expect(await clicks.decode(good)).toEqual({ user: 'u1', clicks: 3 });
  });

  it('an id the registry no longer knows is poison as unknown; an outage while reading it again is retriable and keeps the cached schema', async () => {
    const ids = new Map<number, object>([[1, click]]);
    const registry = resettableRegistry(ids);
    const clicks = new SchemaRegistryCodec(registry).forSchema<Click>(click, 'clicks');
    const good = framed(1, click, { user: 'u1', clicks: 3 });
    const wrong = framed(1, score, { model: 'm', score: 1 });
    await clicks.decode(good);

    registry.down = true;
    await expect(clicks.decode(wrong)).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: true });
    expect(await clicks.decode(good)).toEqual({ user: 'u1', clicks: 3 });

    registry.down = false;
    ids.delete(1);
    await expect(clicks.decode(wrong)).rejects.toMatchObject({
      code: 'DECODE_FAILED',
      message: 'schema id 1 is unknown to the registry',
    });
    await expect(clicks.decode(good)).rejects.toThrow('schema id 1 is unknown to the registry');
  });
});
