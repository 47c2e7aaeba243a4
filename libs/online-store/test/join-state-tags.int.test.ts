// The Redis read of join-state tags the label-joiner does before it looks labels up in ClickHouse
// (RedisJoinStore.stateTags): every tag the scripts write reads back as the in-memory store reads it, and a
// key driftline did not write reads as absent.
import { InMemoryJoinStore, type JoinRef } from '@driftline/join';
import { uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createRedisClient, RedisJoinStore } from '../src/redis/index.js';

const stack = inject('stack');
const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'lj-state-tags' });
const prefixes: string[] = [];
afterAll(async () => {
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.unlink(...keys);
  }
  redis.disconnect();
});

describe('RedisJoinStore.stateTags: the join states of labels to look up, read from Redis', () => {
  it('reads P, L, K, J, E and X as the in-memory store does; absent and foreign keys as none', async () => {
    const prefix = `${uniqueName('ljtags')}:`;
    prefixes.push(prefix);
    const config = { maxDelayMs: 60_000, graceMs: 0, tombstoneMs: 600_000 };
    const redisStore = new RedisJoinStore(redis, prefix, config);
    const memory = new InMemoryJoinStore<Buffer, Buffer>(config);
    const ref = (id: string): JoinRef => ({ model: 'm', id });
    // p is due later than the others, which expire (or join) first.
    const predictionOf = (id: string) => ({
      ...ref(id),
      eventTime: id === 'p' ? 100_000 : 1_000,
      windowKey: 'w',
      payload: Buffer.from(id),
    });
    const labelOf = (id: string) => ({ ...ref(id), eventTime: 2_000, payload: Buffer.from(`label ${id}`) });
    for (const store of [redisStore, memory]) {
      // p pending, l waiting, k joined unacknowledged, j joined, e expiring, x expired.
      await store.applyPredictions(['p', 'k', 'j', 'e', 'x'].map(predictionOf), 10, 's');
      await store.applyLabels(['l', 'k', 'j'].map(labelOf), 11, 's');
      await store.ackJoined([ref('j')], 12);
      await store.expireDue(61_000, 13, 10);
      await store.ackExpired([ref('x')], 14);
    }
    // A key of the state's name another tool wrote (another type): no tag, the join step reports it.
    await redis.hset(redisStore.keys.state(ref('foreign')), 'f', '1');
    await redis.set(redisStore.keys.state(ref('text')), 'hello');
    const refs = ['p', 'l', 'k', 'j', 'e', 'x', 'none', 'foreign', 'text'].map(ref);
    const tags = await redisStore.stateTags(refs);
    expect(tags).toEqual(['P', 'L', 'K', 'J', 'E', 'X', undefined, undefined, undefined]);
    expect(tags.slice(0, 7)).toEqual(await memory.stateTags(refs.slice(0, 7), 15));
    expect(await redisStore.stateTags([])).toEqual([]);
  });
});
