import { DriftlineError } from '@driftline/core';
import { planWrites, validateFeatureEvent } from '@driftline/features';
import { privateRedis, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ReadAbortedError, StoreOverloadedError } from '../src/index.js';
import { createRedisClient, createRedisOnlineStore, waitReady } from '../src/redis/index.js';
import { contractViews } from './contract.js';

const stack = inject('stack');
const config = { url: stack.redisUrl, tls: false };
const profile = contractViews.get('profile')!;
const entities = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}${i}`);

const outcome = (promise: Promise<unknown>) =>
  promise.then(
    () => 'read',
    (e: unknown) => e,
  );

// Found by a review: nothing bounded the reads in flight against the read connection's 2 s command
// timeout; past some concurrency every read timed out together and the connection was dropped.
describe('reads in flight (real Redis)', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  const store = async (options: { maxReadEntitiesInFlight: number; readWaitMs: number }) => {
    const s = createRedisOnlineStore(config, {
      use: 'online-read',
      keyPrefix: uniqueName('osgate'),
      readV1: false,
      ...options,
    });
    cleanup.push(() => s.close());
    await waitReady(s.client);
    return s;
  };

  it('reads past the bound wait their turn; those without room in time fail as retriable OVERLOADED, the connection kept', async () => {
    const s = await store({ maxReadEntitiesInFlight: 1_000, readWaitMs: 1 });
    const tooling = createRedisClient(config, 'tooling');
    cleanup.push(() => tooling.disconnect());
    const idOf = async () => String(await s.client.client('ID'));
    const before = await idOf();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        outcome(s.readBatch([{ view: profile, entities: entities(1_000, `b${i}-`) }])),
      ),
    );
    const refused = outcomes.filter((o) => o !== 'read');
    expect(outcomes[0]).toBe('read'); // the first found room
    expect(refused.length).toBeGreaterThan(0);
    for (const e of refused) {
      expect(e).toBeInstanceOf(StoreOverloadedError);
      expect(e).toMatchObject({ code: 'OVERLOADED', retriable: true });
    }
    expect(s.ready()).toBe(true);
    expect(await idOf()).toBe(before);

    // With a wait long enough, every one is read in turn.
    const patient = await store({ maxReadEntitiesInFlight: 1_000, readWaitMs: 60_000 });
    const all = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        outcome(patient.readBatch([{ view: profile, entities: entities(1_000, `p${i}-`) }])),
      ),
    );
    expect(all).toEqual(['read', 'read', 'read', 'read', 'read']);
  });

  it('a read whose signal aborts while it waits, or before, is skipped with a ReadAbortedError', async () => {
    const s = await store({ maxReadEntitiesInFlight: 1_000, readWaitMs: 60_000 });
    const first = s.readBatch([{ view: profile, entities: entities(1_000, 'f') }]);
    const gone = new AbortController();
    const waiting = outcome(s.readBatch([{ view: profile, entities: entities(10, 'w') }], { signal: gone.signal }));
    gone.abort();
    const aborted = await waiting;
    expect(aborted).toBeInstanceOf(ReadAbortedError);
    expect(aborted).toBeInstanceOf(DriftlineError);
    await first;
    expect(await outcome(s.readBatch([{ view: profile, entities: ['x'] }], { signal: gone.signal }))).toBeInstanceOf(
      ReadAbortedError,
    );
    // The room it did not take is free: the next read goes at once.
    expect(await s.readBatch([{ view: profile, entities: ['y'] }])).toEqual([[undefined]]);
  });
});

// Found by a review: a read's room was freed when the client timed its command out, while Redis
// still had the command to answer and its reply still had to cross the connection: new reads piled
// onto a connection already behind (rows of 8 KB, 128 clients: no read answered in 8 s, the
// connection dropped 7 times).
describe('reads in flight past a client-side timeout (private Redis)', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('a read that timed out keeps its room until Redis has answered what it sent', async () => {
    const redis = await privateRedis({ args: ['--enable-debug-command', 'yes'] });
    cleanup.push(() => redis.stop());
    const cfg = { url: redis.url, tls: false };
    const s = createRedisOnlineStore(cfg, {
      use: 'online-read',
      keyPrefix: uniqueName('oshold'),
      readV1: false,
      maxReadEntitiesInFlight: 10,
      readWaitMs: 300,
      policy: { commandTimeoutMs: 200 },
    });
    cleanup.push(() => s.close());
    await waitReady(s.client);
    await s.readBatch([{ view: profile, entities: entities(10, 'warm') }]); // the view weighed
    const blocker = createRedisClient(cfg, 'tooling');
    cleanup.push(() => blocker.disconnect());
    await waitReady(blocker);
    // Redis answers no one for 5 s: the two reads below take ~0.5 s of it (1.5 s left a loaded run little).
    const blocked = blocker.call('DEBUG', 'SLEEP', '5');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const first = await outcome(s.readBatch([{ view: profile, entities: entities(10, 'a') }]));
    expect(first).toMatchObject({ code: 'SINK_UNAVAILABLE' }); // timed out at 200 ms
    // Redis still owes the first read its reply: no room for another within 300 ms.
    const second = await outcome(s.readBatch([{ view: profile, entities: entities(10, 'b') }]));
    expect(second).toBeInstanceOf(StoreOverloadedError);
    await blocked;
    // Once Redis answered (the PING after it), the room is free again.
    const deadline = Date.now() + 10_000;
    let third = await outcome(s.readBatch([{ view: profile, entities: entities(10, 'c') }]));
    while (third !== 'read' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      third = await outcome(s.readBatch([{ view: profile, entities: entities(10, 'c') }]));
    }
    expect(third).toBe('read');
  }, 30_000);
});

// Found by a review: the bound counted entities whatever their rows weighed: 16 reads of 1,000 rows
// of 8 KB (128 MB) went onto the connection at once.
describe('reads in flight weighed by their bytes (real Redis)', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('two reads of 1,000 rows of 8 KB do not fit 8 MiB at once; two of small rows do', async () => {
    const keyPrefix = uniqueName('osbytes');
    const writer = createRedisOnlineStore(config, { use: 'online-write', keyPrefix });
    cleanup.push(() => writer.close());
    await waitReady(writer.client);
    const write = (tag: string, country: string) =>
      writer.write(
        planWrites(
          Array.from({ length: 1_000 }, (_, i) =>
            validateFeatureEvent(contractViews, {
              event_id: `${tag}${i}`,
              view: 'profile',
              entity_id: `${tag}${i}`,
              event_time: Date.now(),
              features: { age: i, country },
            }),
          ),
        ),
      );
    await write('big', 'x'.repeat(8_000));
    await write('small', 'fr');
    const pair = async (tag: string) => {
      const s = createRedisOnlineStore(config, { use: 'online-read', keyPrefix, readV1: false, readWaitMs: 1 });
      cleanup.push(() => s.close());
      await waitReady(s.client);
      const batch = [{ view: profile, entities: entities(1_000, tag) }];
      await s.readBatch(batch); // the view's rows weighed
      return Promise.all([outcome(s.readBatch(batch)), outcome(s.readBatch(batch))]);
    };
    // 2,000 entities fit the 16,384 of the entity bound either way; 16 MB do not fit 8 MiB.
    const [first, second] = await pair('big');
    expect(first).toBe('read');
    expect(second).toBeInstanceOf(StoreOverloadedError);
    expect(await pair('small')).toEqual(['read', 'read']);
  }, 30_000);
});
