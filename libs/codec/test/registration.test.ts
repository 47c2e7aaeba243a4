import { setTimeout as sleep } from 'node:timers/promises';
import { DriftlineError, type Logger } from '@driftline/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  SCHEMA_ID_RECHECK_MS,
  SCHEMA_ID_RECHECK_WAIT_MS,
  SchemaRegistryCodec,
  type SchemaSource,
} from '../src/index.js';

const schema = { type: 'record', name: 'Blob', fields: [{ name: 'text', type: 'string' }] };
const idOf = (frame: Buffer) => frame.readUInt32BE(1);

interface Held<R> {
  resolve: (result: R) => void;
  reject: (e: Error) => void;
}

/** A registry whose registrations and look-ups are counted and answered when the test says so. */
function heldRegistry(): SchemaSource & {
  registrations: number;
  lookups: number;
  /** The stop signal each registry call was given, in order. */
  signals: Array<AbortSignal | undefined>;
  answer(result: number | Error): void;
  answerLookup(result: number | undefined | Error): void;
} {
  let registrations: Array<Held<number>> = [];
  let lookups: Array<Held<number | undefined>> = [];
  const settleAll = <R>(pending: Array<Held<R>>, result: R | Error) => {
    for (const p of pending) {
      if (result instanceof Error) p.reject(result);
      else p.resolve(result);
    }
  };
  const source = {
    registrations: 0,
    lookups: 0,
    signals: [] as Array<AbortSignal | undefined>,
    schemaById: async () => JSON.stringify(schema),
    // `stop` is recorded to show that a registration is given none (it was cancelled at 2 s once).
    register: (_subject: string, _schema: string, _level: string, stop?: AbortSignal) => {
      source.registrations++;
      source.signals.push(stop);
      return new Promise<number>((resolve, reject) => registrations.push({ resolve, reject }));
    },
    lookup: (_subject: string, _schema: string, stop?: AbortSignal) => {
      source.lookups++;
      source.signals.push(stop);
      return new Promise<number | undefined>((resolve, reject) => lookups.push({ resolve, reject }));
    },
    answer(result: number | Error) {
      settleAll(registrations, result);
      registrations = [];
    },
    answerLookup(result: number | undefined | Error) {
      settleAll(lookups, result);
      lookups = [];
    },
  };
  return source;
}

/** A logger that keeps its warnings. */
function warnings(): Logger & { warned: Array<{ fields: Record<string, unknown>; message: string }> } {
  const warned: Array<{ fields: Record<string, unknown>; message: string }> = [];
  const logger = {
    warned,
    debug: () => {},
    info: () => {},
    warn: (fields: object, message?: string) =>
      warned.push({ fields: fields as Record<string, unknown>, message: message ?? '' }),
    error: () => {},
    child: () => logger,
  };
  return logger;
}

/** Lets settled promise callbacks run. */
const settle = () => sleep(0);

let now = 1_000_000;
/** Moves the faked clock on by `ms` (from where advancing the faked timers left it too). */
const passes = (ms: number) => {
  now = Date.now() + ms;
  vi.setSystemTime(now);
};

afterEach(() => {
  vi.useRealTimers();
});

/** A producer whose first encode registered id 7 at `now`. */
async function registeredProducer(options: { logger?: Logger } = {}) {
  const registry = heldRegistry();
  const codec = new SchemaRegistryCodec(registry, options).forSchema<{ text: string }>(schema, 'blobs');
  const first = codec.encode({ text: 'a' });
  await settle();
  registry.answer(7);
  expect(idOf(await first)).toBe(7);
  return { registry, codec };
}

describe('the schema id a producer writes with', () => {
  it('is registered once for concurrent first encodes (found by a review: each registered on its own)', async () => {
    const registry = heldRegistry();
    const codec = new SchemaRegistryCodec(registry).forSchema<{ text: string }>(schema, 'blobs');
    const frames = Promise.all(Array.from({ length: 50 }, (_, i) => codec.encode({ text: `v${i}` })));
    const explicit = codec.register();
    await settle();
    expect(registry.registrations).toBe(1);
    registry.answer(7);
    expect((await frames).map(idOf)).toEqual(Array(50).fill(7));
    expect(await explicit).toBe(7);
    expect(registry.registrations).toBe(1);
  });

  it('a failed registration fails its waiting encodes, and the next encode registers again', async () => {
    const registry = heldRegistry();
    const codec = new SchemaRegistryCodec(registry).forSchema<{ text: string }>(schema, 'blobs');
    const first = Promise.all([codec.encode({ text: 'a' }), codec.encode({ text: 'b' })]);
    await settle();
    registry.answer(new DriftlineError('SOURCE_UNAVAILABLE', 'registry down', { retriable: true }));
    await expect(first).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
    expect(registry.registrations).toBe(1);
    const again = codec.encode({ text: 'c' });
    await settle();
    expect(registry.registrations).toBe(2);
    registry.answer(8);
    expect(idOf(await again)).toBe(8);
  });

  it('is confirmed once per interval by a look-up that registers nothing (found by a review: re-registering put a subject at NONE back to BACKWARD)', async () => {
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const { registry, codec } = await registeredProducer();

    // Within the interval: no registry call per value.
    passes(SCHEMA_ID_RECHECK_MS - 1);
    for (let i = 0; i < 100; i++) expect(idOf(await codec.encode({ text: 'b' }))).toBe(7);
    expect(registry.lookups).toBe(0);

    // The interval passed: one look-up; the registry still has the schema, so nothing is registered.
    passes(1);
    const due = codec.encode({ text: 'c' });
    await settle();
    expect(registry.lookups).toBe(1);
    registry.answerLookup(7);
    expect(idOf(await due)).toBe(7);
    for (let i = 0; i < 100; i++) expect(idOf(await codec.encode({ text: 'd' }))).toBe(7);
    expect(registry.lookups).toBe(1);
    expect(registry.registrations).toBe(1);
  });

  it('a value written hours after its schema was lost is framed with the new id (found by a review: a rare topic wrote the dead id)', async () => {
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const { registry, codec } = await registeredProducer();

    // models.v1, retrain: the next value comes 5 hours later; the subject was deleted meanwhile.
    passes(5 * 3_600_000);
    const late = codec.encode({ text: 'PRODUCTION' });
    const meanwhile = codec.encode({ text: 'SHADOW' });
    await settle();
    registry.answerLookup(undefined);
    await settle();
    expect(registry.registrations).toBe(2);
    registry.answer(12);
    expect(idOf(await late)).toBe(12);
    expect(idOf(await meanwhile)).toBe(12);
    expect(idOf(await codec.encode({ text: 'next' }))).toBe(12);
    expect(registry.lookups).toBe(1);
  });

  it('waits at most SCHEMA_ID_RECHECK_WAIT_MS for the registry, then frames with the cached id and abandons the calls', async () => {
    vi.useFakeTimers({ now, toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const logger = warnings();
    const { registry, codec } = await registeredProducer({ logger });

    passes(SCHEMA_ID_RECHECK_MS);
    let framed: Buffer | undefined;
    const due = codec.encode({ text: 'b' }).then((frame) => {
      framed = frame;
    });
    await vi.advanceTimersByTimeAsync(SCHEMA_ID_RECHECK_WAIT_MS - 1);
    expect(framed, 'waits for the answer').toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await due;
    expect(idOf(framed!)).toBe(7);
    // The look-up still unanswered is cancelled: nothing holds the process (was: up to the registry timeout).
    const lookupStop = registry.signals.at(-1);
    expect(lookupStop?.aborted).toBe(true);
    expect(logger.warned).toHaveLength(1);
    expect(logger.warned[0]?.message).toMatch(
      /blobs-value: could not confirm schema id 7: no answer from the Schema Registry/,
    );
    // The next interval asks again.
    expect(idOf(await codec.encode({ text: 'c' }))).toBe(7);
    expect(registry.lookups).toBe(1);
  });

  it('an outage keeps the id, warns once per interval with its cause, and is asked again only after another interval', async () => {
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const logger = warnings();
    const { registry, codec } = await registeredProducer({ logger });

    passes(SCHEMA_ID_RECHECK_MS);
    const due = codec.encode({ text: 'b' });
    await settle();
    registry.answerLookup(
      new DriftlineError(
        'SOURCE_UNAVAILABLE',
        'looking up blobs-value: Schema Registry unreachable (connect ECONNREFUSED)',
        { retriable: true },
      ),
    );
    expect(idOf(await due)).toBe(7);
    for (let i = 0; i < 100; i++) expect(idOf(await codec.encode({ text: 'c' }))).toBe(7);
    expect(registry.lookups).toBe(1);
    expect(logger.warned).toHaveLength(1);
    expect(logger.warned[0]).toMatchObject({
      fields: { subject: 'blobs-value', schemaId: 7, code: 'SOURCE_UNAVAILABLE' },
      message: expect.stringMatching(
        /could not confirm schema id 7: no answer from the Schema Registry \(.*ECONNREFUSED/,
      ),
    });

    passes(SCHEMA_ID_RECHECK_MS);
    const next = codec.encode({ text: 'd' });
    await settle();
    expect(registry.lookups).toBe(2);
    registry.answerLookup(7);
    expect(idOf(await next)).toBe(7);
    expect(logger.warned).toHaveLength(1);
  });

  it('a refusal is warned about as one, once per interval per subject however many codecs write it', async () => {
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const logger = warnings();
    const registry = heldRegistry();
    const codec = new SchemaRegistryCodec(registry, { logger });
    const producers = [
      codec.forSchema<{ text: string }>(schema, 'blobs'),
      codec.forSchema<{ text: string }>(schema, 'blobs'),
    ];
    for (const producer of producers) {
      const first = producer.encode({ text: 'a' });
      await settle();
      registry.answer(7);
      await first;
    }

    passes(SCHEMA_ID_RECHECK_MS);
    const due = producers.map((p) => p.encode({ text: 'b' }));
    await settle();
    // Not registered any more; registering again is refused (a level made weaker since).
    registry.answerLookup(undefined);
    await settle();
    registry.answer(
      new DriftlineError('SCHEMA_INCOMPATIBLE', "registering blobs-value: the subject's compatibility is FORWARD"),
    );
    expect((await Promise.all(due)).map(idOf)).toEqual([7, 7]);
    expect(logger.warned).toHaveLength(1);
    expect(logger.warned[0]?.message).toMatch(
      /blobs-value: could not confirm schema id 7: the Schema Registry refused \(registering blobs-value: the subject's compatibility is FORWARD\)/,
    );

    passes(SCHEMA_ID_RECHECK_MS);
    const again = producers[0]!.encode({ text: 'c' });
    await settle();
    registry.answerLookup(
      new DriftlineError('SOURCE_UNAVAILABLE', 'HTTP 401', { retriable: true, details: { status: 401 } }),
    );
    expect(idOf(await again)).toBe(7);
    expect(logger.warned).toHaveLength(2);
    expect(logger.warned[1]?.message).toMatch(/the Schema Registry refused \(HTTP 401\)/);
  });

  it('on a busy topic no encode waits for the confirmation: it runs behind them and its id is taken once it lands (found by a review: a hung registry held the log 2 s a minute, requests got 503s)', async () => {
    vi.useFakeTimers({ now, toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const logger = warnings();
    const { registry, codec } = await registeredProducer({ logger });
    /** Encodes a value; its frame's id, or undefined while it waits. */
    const encodedAt = async (text: string) => {
      let id: number | undefined;
      void codec.encode({ text }).then((frame) => {
        id = idOf(frame);
      });
      await settle();
      return id;
    };

    // A value every 10 s: the interval passes while the topic is busy.
    for (let i = 0; i < 5; i++) {
      passes(10_000);
      expect(await encodedAt(`v${i}`)).toBe(7);
    }
    expect(registry.lookups).toBe(0);
    passes(10_000);
    expect(await encodedAt('due'), 'the encode that finds the check due').toBe(7);
    expect(registry.lookups).toBe(1);
    expect(await encodedAt('meanwhile')).toBe(7);
    // The subject was deleted: the look-up finds nothing, the registration gives 12.
    registry.answerLookup(undefined);
    await settle();
    registry.answer(12);
    await settle();
    expect(await encodedAt('after')).toBe(12);
    expect(logger.warned.map((w) => w.message)).toEqual([
      expect.stringMatching(/no longer has schema id 7.*framed with 12/),
    ]);

    // The registry stops answering: still no encode waits; the look-up is cancelled after 2 s.
    passes(SCHEMA_ID_RECHECK_MS - 1);
    expect(await encodedAt('busy')).toBe(12);
    passes(1);
    expect(await encodedAt('due again')).toBe(12);
    expect(registry.lookups).toBe(2);
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(SCHEMA_ID_RECHECK_WAIT_MS / 10);
      expect(await encodedAt(`hung ${i}`)).toBe(12);
    }
    expect(registry.signals.at(-1)?.aborted).toBe(true);
    expect(logger.warned[1]?.message).toMatch(/could not confirm schema id 12: no answer from the Schema Registry/);

    // Idle for an interval: the first encode after it waits for the look-up (a rarely written topic).
    passes(SCHEMA_ID_RECHECK_MS);
    expect(await encodedAt('after a quiet minute')).toBeUndefined();
    expect(registry.lookups).toBe(3);
    await vi.advanceTimersByTimeAsync(SCHEMA_ID_RECHECK_WAIT_MS - 1);
    const waiting = codec.encode({ text: 'waits' });
    registry.answerLookup(13);
    expect(idOf(await waiting)).toBe(13);
  });

  it('a registration under way when the wait ends is not cancelled: it finishes and its id is taken (found by a review: cut off, it left the subject at NONE)', async () => {
    vi.useFakeTimers({ now, toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const logger = warnings();
    const { registry, codec } = await registeredProducer({ logger });

    passes(SCHEMA_ID_RECHECK_MS);
    const due = codec.encode({ text: 'b' });
    await settle();
    registry.answerLookup(undefined); // deleted for good: registered again, slowly
    await settle();
    expect(registry.registrations).toBe(2);
    await vi.advanceTimersByTimeAsync(SCHEMA_ID_RECHECK_WAIT_MS);
    expect(idOf(await due)).toBe(7);
    const registrationStop = registry.signals.at(-1);
    expect(registrationStop?.aborted ?? false, 'the registration is not cancelled').toBe(false);
    expect(logger.warned[0]?.message).toMatch(/could not confirm schema id 7: no answer/);

    registry.answer(12);
    await settle();
    expect(idOf(await codec.encode({ text: 'c' }))).toBe(12);
    expect(logger.warned[1]?.message).toMatch(/no longer has schema id 7.*framed with 12/);
    expect(registry.registrations).toBe(2);
  });

  it('schemaIdToWrite gives the id encode frames with, confirmed the same way', async () => {
    vi.useFakeTimers({ now, toFake: ['Date'] });
    const registry = heldRegistry();
    const codec = new SchemaRegistryCodec(registry, { schemaIdRecheckMs: 1_000 }).forSchema<{ text: string }>(
      schema,
      'blobs',
    );
    const first = codec.schemaIdToWrite();
    await settle();
    registry.answer(7);
    expect(await first).toBe(7);
    expect(await codec.schemaIdToWrite()).toBe(7);
    expect(registry.lookups).toBe(0);
    passes(1_000);
    const due = codec.schemaIdToWrite();
    await settle();
    registry.answerLookup(undefined);
    await settle();
    registry.answer(9);
    expect(await due).toBe(9);
    expect(idOf(await codec.encode({ text: 'x' }))).toBe(9);
    expect(() => new SchemaRegistryCodec(registry, { schemaIdRecheckMs: 0 })).toThrow(/schemaIdRecheckMs/);
  });
});
