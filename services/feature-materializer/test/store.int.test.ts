import { planWrites, rowKey, validateFeatureEvent, windowKey } from '@driftline/features';
import { uniqueName } from '@driftline/test-support';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RedisFeatureWriter } from '../src/index.js';
import { differences, eventLog, offlineState, onlineState, rng, shuffledWithDuplicates, views } from './helpers.js';

const stack = inject('stack');

describe('the Redis write script against a real Redis', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(stack.redisUrl);
  });
  afterAll(() => redis.disconnect());

  async function deliver(writer: RedisFeatureWriter, log: ReturnType<typeof eventLog>, seed: number): Promise<void> {
    const random = rng(seed);
    const events = log.map((e) => validateFeatureEvent(views, e));
    for (let i = 0; i < events.length; ) {
      const size = 1 + Math.floor(random() * 200);
      await writer.write(planWrites(events.slice(i, i + size)));
      i += size;
    }
  }

  it('any shuffled, duplicated, randomly batched delivery ends in the offline LWW state and exact windows', async () => {
    const log = eventLog(3_000, 40, 1);
    const expected = offlineState(log);
    for (const seed of [2, 3]) {
      const prefix = uniqueName('store');
      await deliver(new RedisFeatureWriter(redis, prefix), shuffledWithDuplicates(log, seed), seed);
      expect(differences(expected, await onlineState(redis, prefix, expected))).toEqual([]);
    }
  });

  it('a replayed or older event changes nothing, ties go to the greater event id, TTLs are set', async () => {
    const prefix = uniqueName('store');
    const writer = new RedisFeatureWriter(redis, prefix);
    const at = Date.now();
    const mk = (id: string, t: number, amount: number) =>
      validateFeatureEvent(views, {
        event_id: id,
        view: 'spend',
        entity_id: 'e',
        event_time: t,
        features: { amount, fee: 1 },
      });
    await writer.write(planWrites([mk('b', at, 1)]));
    const key = rowKey(prefix, 'spend', 'e');
    const before = await redis.hgetall(key);
    const zBefore = await redis.zrange(windowKey(key), 0, -1);
    expect((await writer.write(planWrites([mk('b', at, 1)]))).rowsApplied).toBe(0); // replay
    expect((await writer.write(planWrites([mk('a', at, 2)]))).rowsApplied).toBe(0); // tie, smaller id
    expect((await writer.write(planWrites([mk('z', at - 1, 3)]))).rowsApplied).toBe(0); // older
    expect(await redis.hget(key, 'amount')).toBe('1');
    const stats = await writer.write(planWrites([mk('c', at, 4)])); // tie, greater id wins
    expect(stats.rowsApplied).toBe(1);
    expect(await redis.hget(key, 'amount')).toBe('4');
    expect(await redis.hget(key, 'amount_count_10m')).toBe('4');
    expect(before.amount_count_10m).toBe('1');
    expect(zBefore).toHaveLength(1);
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(86_400_000);
    expect(ttl).toBeLessThanOrEqual(2 * 86_400_000);
    expect(await redis.pttl(windowKey(key))).toBeGreaterThan(86_400_000);
    // A pure replay of everything is a no-op, byte for byte.
    const snapshot = await redis.hgetall(key);
    await writer.write(planWrites([mk('b', at, 1), mk('a', at, 2), mk('z', at - 1, 3), mk('c', at, 4)]));
    expect(await redis.hgetall(key)).toEqual(snapshot);
  });
});
