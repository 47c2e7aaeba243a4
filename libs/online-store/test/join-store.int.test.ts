import { uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createRedisClient, RedisJoinStore } from '../src/redis/index.js';
import { joinContractConfig, joinStoreContract } from './join-contract.js';

const stack = inject('stack');
const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'join-contract' });
afterAll(() => redis.disconnect());

joinStoreContract('Redis', () => {
  const prefix = `${uniqueName('jt')}:`;
  const store = new RedisJoinStore(redis, prefix, joinContractConfig);
  return {
    store,
    async forget(ref) {
      await redis.del(store.keys.state(ref));
    },
    async cleanup() {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
    },
  };
});

describe('RedisJoinStore v1 → v2 key migration', () => {
  it('moves v1 states (keyed by prediction id alone) to (model, prediction id) keys, with schedule and outbox', async () => {
    const prefix = `${uniqueName('jm')}:`;
    const store = new RedisJoinStore(redis, prefix, joinContractConfig);
    try {
      // A v1 layout as the previous version left it: a pending prediction of model a, a waiting
      // label of model b, an expired row of model a in the outbox, a tombstone.
      await redis.set(`${prefix}s:p1`, 'P1000\n["a","v",0]\nprediction a');
      await redis.zadd(`${prefix}schedule`, 1000, 'p1');
      await redis.hset(`${prefix}pending`, '["a","v",0]', 1);
      await redis.set(`${prefix}s:p2`, 'L50\nlabel b');
      await redis.zadd(`${prefix}schedule`, 1050, 'p2');
      await redis.set(`${prefix}s:p3`, 'E77\n["a","v",0]\nprediction a', 'PX', 60_000);
      await redis.zadd(`${prefix}outbox`, 77, 'p3');
      await redis.set(`${prefix}s:p4`, 'J', 'PX', 60_000);
      const modelOf = async (_side: 'prediction' | 'label', bytes: Buffer) => bytes.toString().split(' ')[1] as string;
      expect(await store.migrateV1(modelOf)).toBe(3);
      expect(await store.migrateV1(modelOf)).toBe(0); // idempotent
      expect(await redis.exists(`${prefix}s:p1`, `${prefix}s:p2`, `${prefix}s:p3`)).toBe(0);
      expect(await redis.zcard(`${prefix}schedule`)).toBe(0);
      expect(await redis.pttl(store.keys.state({ model: 'a', id: 'p3' }))).toBeGreaterThan(0);
      expect(await store.scheduledCount()).toBe(2);
      // The moved states join in v2, each with its own model only.
      const [other] = await store.applyLabels(
        [{ model: 'b', id: 'p1', eventTime: 10, payload: Buffer.from('label b') }],
        5,
        'labels/0',
      );
      expect(other?.outcome).toBe('waiting');
      const [joined] = await store.applyLabels(
        [{ model: 'a', id: 'p1', eventTime: 10, payload: Buffer.from('label a') }],
        5,
        'labels/0',
      );
      expect(joined?.emit?.prediction.toString()).toBe('prediction a');
      expect(await store.pendingCount('["a","v",0]')).toBe(0);
      const [fromLabel] = await store.applyPredictions(
        [{ model: 'b', id: 'p2', eventTime: 0, windowKey: '["b","v",0]', payload: Buffer.from('prediction b') }],
        6,
        'predictions/0',
      );
      expect(fromLabel?.emit?.label.toString()).toBe('label b');
      expect((await store.unackedExpired(10)).map((r) => [r.model, r.id])).toEqual([['a', 'p3']]);
    } finally {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
    }
  });
});

describe('RedisJoinStore expired rows', () => {
  it('reads the outbox up to maxBytes of stored predictions, at least one row, oldest first', async () => {
    const prefix = `${uniqueName('jx')}:`;
    const store = new RedisJoinStore(redis, prefix, joinContractConfig);
    try {
      const payload = (id: string) => Buffer.alloc(100_000, id);
      await store.applyPredictions(
        ['a', 'b', 'c'].map((id, n) => ({ model: 'm', id, eventTime: n, windowKey: 'w', payload: payload(id) })),
        10,
        'predictions/0',
      );
      const summary = await store.expireDue(1_000_000, 20, 100);
      expect(summary.counts.expiring).toBe(3);
      const ids = async (maxBytes?: number) => (await store.unackedExpired(10, maxBytes)).map((r) => r.id);
      expect(await ids()).toEqual(['a', 'b', 'c']);
      expect(await ids(250_000)).toEqual(['a', 'b']);
      expect(await ids(1_000)).toEqual(['a']); // one row larger than the bound still comes alone
      const [first] = await store.unackedExpired(1, 1_000);
      expect(first?.prediction.equals(payload('a'))).toBe(true);
    } finally {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
    }
  });
});
