import { DriftlineError } from '@driftline/core';
import { planWrites, validateFeatureEvent } from '@driftline/features';
import type { PredictionInput } from '@driftline/join';
import { throttledProxy, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { rowKey } from '../src/index.js';
import {
  createRedisClient,
  createRedisJoinStore,
  createRedisOnlineStore,
  RedisJoinStore,
  waitReady,
} from '../src/redis/index.js';
import { contractViews } from './contract.js';
import { joinContractConfig } from './join-contract.js';

// A slow (not down) Redis: the stack's Redis behind a proxy carrying 50 KB/s each way, commands
// timing out after 1 s. A batch needing about 4 s of the link (several timeouts' worth) was sent
// as one pipeline: every command timed out on every attempt, and the consumer's retries of the
// unchanged batch never finished it (a review: 20 KB/s, 10 s, rows stuck, lag for good).
const BYTES_PER_SECOND = 50_000;
const TIMEOUT_MS = 1_000;
const ATTEMPTS = 15;

const stack = inject('stack');
const { hostname, port } = new URL(stack.redisUrl);

/**
 * Calls `attempt` until it succeeds, as the consumer loop retries a batch: unchanged, after a
 * pause, on a retriable error only. Returns how many attempts it took and how long the last one ran.
 */
async function retried(attempt: () => Promise<unknown>): Promise<{ attempts: number; lastMs: number }> {
  for (let attempts = 1; ; attempts++) {
    const started = Date.now();
    try {
      await attempt();
      return { attempts, lastMs: Date.now() - started };
    } catch (error) {
      if (!(error instanceof DriftlineError) || !error.retriable || attempts >= ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

describe('a slow Redis (a proxy capped at 50 KB/s, 1 s command timeout)', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function slowLink() {
    const proxy = await throttledProxy(Number(port), BYTES_PER_SECOND, hostname);
    cleanup.push(() => proxy.close());
    const direct = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'slow-redis-test' });
    cleanup.push(() => direct.disconnect());
    return { url: `redis://127.0.0.1:${proxy.port}`, direct };
  }

  it('the materializer: a batch needing several timeouts of Redis time completes on a retry, every row written', async () => {
    const { url, direct } = await slowLink();
    const keyPrefix = uniqueName('slowfs');
    const store = createRedisOnlineStore(
      { url, tls: false },
      { use: 'online-write', keyPrefix, policy: { commandTimeoutMs: TIMEOUT_MS } },
    );
    cleanup.push(async () => {
      await store.close();
      const keys = await direct.keys(`${keyPrefix}:*`);
      if (keys.length > 0) await direct.unlink(...keys);
    });
    await waitReady(store.client);
    // 400 entities of ~500 bytes on the wire: about 200 KB, 4 s at 50 KB/s.
    const t = Date.now() - 60_000;
    const entities = Array.from({ length: 400 }, (_, i) => `user-${i}`);
    const writes = planWrites(
      entities.map((entity, i) =>
        validateFeatureEvent(contractViews, {
          event_id: `ev-${i}`,
          view: 'profile',
          entity_id: entity,
          event_time: t + i,
          features: { age: i, country: `c${i}-${'x'.repeat(400)}`, premium: i % 2 === 0, score: i / 7 },
        }),
      ),
    );

    const { attempts, lastMs } = await retried(() => store.write(writes));
    // The first attempt timed out; the one that passed ran longer than a command may take.
    expect(attempts).toBeGreaterThan(1);
    expect(lastMs).toBeGreaterThan(2 * TIMEOUT_MS);
    const stored = await direct.mget(entities.map((e) => rowKey(keyPrefix, 'profile', e)));
    expect(stored.map((s) => (s === null ? null : (JSON.parse(s) as { _id: string })._id))).toEqual(
      entities.map((_, i) => `ev-${i}`),
    );
  }, 30_000);

  it('the label-joiner: a batch of 600 predictions (two 500-record script calls) completes on a retry, counted once', async () => {
    const { url, direct } = await slowLink();
    const prefix = `${uniqueName('slowjs')}:`;
    const store = createRedisJoinStore(
      { url, tls: false },
      { prefix, join: joinContractConfig, policy: { commandTimeoutMs: TIMEOUT_MS } },
    );
    cleanup.push(async () => {
      await store.close();
      const keys = await direct.keys(`${prefix}*`);
      if (keys.length > 0) await direct.unlink(...keys);
    });
    await waitReady(store.redis);
    // 600 records of ~400 bytes: about 240 KB, 5 s at 50 KB/s.
    const now = Date.now();
    const window = '["m","v",0]';
    const inputs: Array<PredictionInput<Buffer>> = Array.from({ length: 600 }, (_, i) => ({
      model: 'm',
      id: `p${i}`,
      eventTime: now - 10_000 + i,
      appendTime: now - 5_000 + i,
      offset: i,
      windowKey: window,
      payload: Buffer.from(`prediction ${i} ${'y'.repeat(340)}`),
    }));
    const span = { first: 0, last: inputs.length - 1, maxAppendTime: now - 5_000 + inputs.length - 1 };

    const { attempts, lastMs } = await retried(() => store.applyPredictions(inputs, now, 'predictions/0', span));
    expect(attempts).toBeGreaterThan(1);
    expect(lastMs).toBeGreaterThan(2 * TIMEOUT_MS);
    // Every prediction pending once: records a timed-out attempt applied replayed as duplicates.
    const check = new RedisJoinStore(direct, prefix, joinContractConfig);
    expect(await check.scheduledCount()).toBe(inputs.length);
    expect(await check.pendingCount(window)).toBe(inputs.length);
    expect(await direct.get(check.keys.applied('predictions/0'))).toMatch(new RegExp(`^0,${inputs.length - 1},`));
  }, 30_000);
});
