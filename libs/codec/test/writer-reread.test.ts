import { DriftlineError, PoisonRecordError } from '@driftline/core';
import avro from 'avsc';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SchemaRegistryCodec, type SchemaSource, UNKNOWN_ID_TTL_MS } from '../src/index.js';

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

  it('a re-read that met an outage may run again a second later (found by a review: one refused request dead-lettered every record of a renumbered id for a minute)', async () => {
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const ids = new Map<number, object>([[1, click]]);
    const registry = resettableRegistry(ids);
    const scores = new SchemaRegistryCodec(registry).forSchema<Score>(score, 'scores');
    const clicks = new SchemaRegistryCodec(registry).forSchema<Click>(click, 'clicks');
    await clicks.decode(framed(1, click, { user: 'u1', clicks: 3 }));
    // The consumer of scores cached id 1 as Click (its own first read); the registry renumbers.
    await expect(scores.decode(framed(1, click, { user: 'u', clicks: 1 }))).rejects.toThrow();
    ids.set(1, score);
    passes(60_000);
    registry.down = true;
    const fresh = framed(1, score, { model: 'm', score: 0.5 });
    await expect(scores.decode(fresh)).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    registry.down = false;
    passes(999);
    await expect(scores.decode(fresh)).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    passes(1);
    expect(await scores.decode(fresh)).toEqual({ model: 'm', score: 0.5 });
  });

  it('an id the registry no longer knows now: a record that does not fit is poison with its own reason, and the cached schema stays', async () => {
    const ids = new Map<number, object>([[1, click]]);
    const registry = resettableRegistry(ids);
    const clicks = new SchemaRegistryCodec(registry).forSchema<Click>(click, 'clicks');
    const good = framed(1, click, { user: 'u1', clicks: 3 });
    const wrong = framed(1, score, { model: 'm', score: 1 });
    await clicks.decode(good);

    ids.delete(1);
    await expect(clicks.decode(wrong)).rejects.toMatchObject({
      code: 'DECODE_FAILED',
      message: expect.stringMatching(/^clicks: Avro body does not decode with schema 1/),
    });
    // Records written with the schema it had are still read with it (was: poison as unknown from then on).
    expect(await clicks.decode(good)).toEqual({ user: 'u1', clicks: 3 });
    expect(registry.reads).toEqual([1, 1]);
  });

  it('no registry is needed to dead-letter a bad record: refused at once, unanswered after 2 s, with its own reason; later ones do not wait (found by a review: retriable, the partition waited out the outage)', async () => {
    vi.useFakeTimers({ now, toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const registry = resettableRegistry(new Map([[1, click]]));
    const clicks = new SchemaRegistryCodec(registry).forSchema<Click>(click, 'clicks');
    const good = framed(1, click, { user: 'u1', clicks: 3 });
    const cut = good.subarray(0, good.length - 1);
    await clicks.decode(good);

    // A registry that refuses: poison at once, as before re-reads existed.
    registry.down = true;
    await expect(clicks.decode(cut)).rejects.toMatchObject({
      code: 'DECODE_FAILED',
      retriable: false,
      message: expect.stringMatching(/Avro body does not decode with schema 1/),
    });
    expect(await clicks.decode(good)).toEqual({ user: 'u1', clicks: 3 });

    // A registry that does not answer: the first bad record waits 2 s, no more.
    const hung = resettableRegistry(new Map([[1, click]]));
    const slow = new SchemaRegistryCodec(hung).forSchema<Click>(click, 'clicks');
    await slow.decode(good);
    hung.schemaById = () => new Promise<string>(() => {});
    let outcome: unknown;
    const first = slow.decode(cut).catch((error: unknown) => {
      outcome = error;
    });
    await vi.advanceTimersByTimeAsync(1_999);
    expect(outcome, 'waits for the registry up to 2 s').toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await first;
    expect(outcome).toMatchObject({
      code: 'DECODE_FAILED',
      message: expect.stringMatching(/does not decode with schema 1/),
    });
    // The reading is still unanswered: the next bad records do not wait for it.
    await expect(slow.decode(cut)).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    expect(await slow.decode(good)).toEqual({ user: 'u1', clicks: 3 });
  });

  it('after a reset, a bad record does not switch the id to the schema it names now: the old records behind it still decode (found by a review: they were dead-lettered, the reason naming the wrong cause)', async () => {
    const ids = new Map<number, object>([[1, click]]);
    const registry = resettableRegistry(ids);
    const clicks = new SchemaRegistryCodec(registry).forSchema<Click>(click, 'clicks');
    expect(await clicks.decode(framed(1, click, { user: 'a', clicks: 1 }))).toEqual({ user: 'a', clicks: 1 });

    // The registry lost its schemas; id 1 names another topic's schema now. This consumer still
    // reads records written before (id 1 = Click), one of them cut off.
    ids.set(1, score);
    ids.set(2, click);
    const cut = framed(1, click, { user: 'c', clicks: 3 });
    await expect(clicks.decode(cut.subarray(0, cut.length - 1))).rejects.toMatchObject({
      code: 'DECODE_FAILED',
      message: expect.stringMatching(/^clicks: Avro body does not decode with schema 1/),
    });
    expect(await clicks.decode(framed(1, click, { user: 'd', clicks: 4 }))).toEqual({ user: 'd', clicks: 4 });
    expect(await clicks.decode(framed(2, click, { user: 'e', clicks: 5 }))).toEqual({ user: 'e', clicks: 5 });
  });
});

describe('a registry answering an unusable schema once', () => {
  it('dead-letters the records of the id for a while, not until a restart: the id is read again after UNKNOWN_ID_TTL_MS (found by a review: the rejected reading stayed cached)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(now);
    const registry = resettableRegistry(new Map([[7, click]]));
    let garbage = 1;
    const source: SchemaSource = {
      ...registry,
      schemaById: async (id) => {
        if (garbage-- <= 0) return registry.schemaById(id);
        registry.reads.push(id);
        return '';
      },
    };
    const clicks = new SchemaRegistryCodec(source).forSchema<Click>(click, 'clicks');
    const record = framed(7, click, { user: 'u', clicks: 3 });
    await expect(clicks.decode(record)).rejects.toMatchObject({
      code: 'DECODE_FAILED',
      message: expect.stringMatching(/schema id 7 is not a usable Avro schema/),
    });
    // Within the while, the answer is remembered: no request a record.
    passes(UNKNOWN_ID_TTL_MS - 1_000);
    await expect(clicks.decode(record)).rejects.toMatchObject({ code: 'DECODE_FAILED' });
    expect(registry.reads).toEqual([7]);
    passes(2_000);
    expect(await clicks.decode(record)).toEqual({ user: 'u', clicks: 3 });
    expect(registry.reads).toEqual([7, 7]);
  });
});
