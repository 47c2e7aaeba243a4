import { joinKey } from '@driftline/join';
import { createMetricsRegistry } from '@driftline/observability';
import { uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createRedisClient, RedisJoinStore, watchStateMarker } from '../src/redis/index.js';
import { joinContractConfig, joinStoreContract } from './join-contract.js';
import { recordingLogger } from './support.js';

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

describe('RedisJoinStore.holdsState: the state marker adopts what older releases left, and only that', () => {
  const model = 'm';
  const tombstoneMs = 86_400_000;

  /** The marker's start-up verdict over this prefix, the consumer group having committed offsets. */
  async function verdict(store: RedisJoinStore) {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const marker = await watchStateMarker(redis, {
      key: `${store.prefix}state-marker:join`,
      store: 'join',
      consumedBefore: async () => true,
      stateExists: () => store.holdsState(),
      recovery: 'replay it',
      logger: recordingLogger('error', []),
      registry,
    });
    marker.stop();
    const lost = (await registry.getSingleMetric('driftline_redis_state_lost_total')?.get())?.values[0]?.value ?? 0;
    return { atStart: marker.atStart, lost };
  }

  async function withPrefix(run: (store: RedisJoinStore, prefix: string) => Promise<void>) {
    const prefix = `${uniqueName('jh')}:`;
    try {
      await run(new RedisJoinStore(redis, prefix, joinContractConfig), prefix);
    } finally {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
    }
  }

  // Keys as each release without the marker leaves them once nothing is pending (README, "Join
  // store key layout"): schedule and pending counts are deleted when empty, dirty marks cleared.
  const releases: Array<[string, (prefix: string) => Promise<unknown>]> = [
    [
      'v2 with one watermark (be546f0): predictions joined and expired, all acknowledged',
      async (prefix) => {
        await redis.set(`${prefix}v2:s:${joinKey({ model, id: 'p1' })}`, 'J', 'PX', tombstoneMs);
        await redis.set(`${prefix}v2:s:${joinKey({ model, id: 'p2' })}`, 'X', 'PX', tombstoneMs);
        await redis.set(`${prefix}watermark`, String(Date.now() - 300_000));
      },
    ],
    [
      'v2 with one watermark: a window still dirty, an expired row not yet in the sink',
      async (prefix) => {
        const window = JSON.stringify([model, 'v1', 1_700_000_000_000]);
        await redis.set(`${prefix}watermark`, String(Date.now() - 300_000));
        await redis.zadd(`${prefix}dirty`, Date.now(), window);
        await redis.set(
          `${prefix}v2:s:${joinKey({ model, id: 'p3' })}`,
          `E1\n${window}\nprediction`,
          'PX',
          tombstoneMs,
        );
        await redis.zadd(`${prefix}v2:outbox`, Date.now(), joinKey({ model, id: 'p3' }));
      },
    ],
    [
      'per-partition watermarks, before dirty-mark numbers reached it: labels only, none waiting',
      async (prefix) => {
        await redis.set(`${prefix}wm:labels.v1/0`, String(Date.now() - 300_000));
        await redis.hset(`${prefix}sources`, 'labels.v1/0', `${Date.now()},${Date.now()}`, 'predictions.v1/0', '1,');
      },
    ],
  ];

  for (const [release, leave] of releases) {
    it(`adopts the state of ${release}`, async () => {
      await withPrefix(async (store, prefix) => {
        await leave(prefix);
        expect(await store.holdsState()).toBe(true);
        expect(await verdict(store)).toEqual({ atStart: 'adopted', lost: 0 });
      });
    });
  }

  it('a Redis empty of the prefix, or holding only the reported sources, lost the state', async () => {
    await withPrefix(async (store) => {
      expect(await store.holdsState()).toBe(false);
      expect(await verdict(store)).toEqual({ atStart: 'lost', lost: 1 });
    });
    // Every expiry pass reports its partitions, even on an empty state: they name keys, not state.
    await withPrefix(async (store, prefix) => {
      await redis.hset(`${prefix}sources`, 'labels.v1/0', `${Date.now()},${Date.now()}`);
      expect(await store.holdsState()).toBe(false);
      expect(await verdict(store)).toEqual({ atStart: 'lost', lost: 1 });
    });
  });
});
