import { DriftlineError } from '@driftline/core';
import { uniqueName } from '@driftline/test-support';
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
