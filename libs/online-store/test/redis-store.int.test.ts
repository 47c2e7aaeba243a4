import { createServer, type Server } from 'node:net';
import { type DriftlineError, PoisonRecordError, SinkUnavailableError } from '@driftline/core';
import { planWrites, validateFeatureEvent } from '@driftline/features';
import { uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ROW_EVENT_ID, ROW_TIME, rowKey, windowKey } from '../src/index.js';
import {
  classifyRedisError,
  createRedisClient,
  createRedisOnlineStore,
  RedisOnlineStore,
  waitReady,
} from '../src/redis/index.js';
import { contractViews, onlineStoreContract } from './contract.js';

const stack = inject('stack');
const config = { url: stack.redisUrl, tls: false };
const tooling = createRedisClient(config, 'tooling', { name: 'online-store-test' });
afterAll(() => tooling.disconnect());

async function dropPrefix(prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await tooling.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
    cursor = next;
    if (keys.length > 0) await tooling.unlink(...keys);
  } while (cursor !== '0');
}

// Writes on an online-write client, like the materializer; entitiesPerCall 7 so batches span
// several script calls.
onlineStoreContract('Redis', async () => {
  const keyPrefix = uniqueName('os');
  const store = createRedisOnlineStore(config, { use: 'online-write', keyPrefix, entitiesPerCall: 7 });
  await waitReady(store.client);
  return { store, cleanup: () => dropPrefix(keyPrefix) };
});

const spendEvent = (id: string, t: number, amount: number) =>
  validateFeatureEvent(contractViews, {
    event_id: id,
    view: 'spend',
    entity_id: 'e',
    event_time: t,
    features: { amount, fee: 1 },
  });

describe('Redis adapter specifics', () => {
  it("bounds a hot entity's window set at the view's max_events (5 here)", async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      const t = Date.now() - 60_000;
      for (let b = 0; b < 20; b++) {
        const batch = Array.from({ length: 10 }, (_, i) =>
          validateFeatureEvent(contractViews, {
            event_id: `e${b * 10 + i}`,
            view: 'hot',
            entity_id: 'e',
            event_time: t + (b * 10 + i) * 10,
            features: { v: b * 10 + i },
          }),
        );
        await store.write(planWrites(batch));
      }
      expect(await tooling.zcard(windowKey(rowKey(keyPrefix, 'hot', 'e')))).toBe(5);
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('writes key layout v1: a row hash with named meta fields, a window set, both with the view TTL', async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      const at = Date.now();
      await store.write(planWrites([spendEvent('b', at, 1), spendEvent('a', at - 1_000, 2)]));
      const key = rowKey(keyPrefix, 'spend', 'e');
      expect(key).toBe(`${keyPrefix}:v1:{spend:e}`);
      const hash = await tooling.hgetall(key);
      expect(hash).toMatchObject({ [ROW_TIME]: String(at), [ROW_EVENT_ID]: 'b', amount: '1', amount_count_10m: '2' });
      expect(await tooling.zcard(windowKey(key))).toBe(2);
      for (const k of [key, windowKey(key)]) {
        const ttl = await tooling.pttl(k);
        expect(ttl).toBeGreaterThan(86_400_000);
        expect(ttl).toBeLessThanOrEqual(2 * 86_400_000);
      }
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('repairs a row frozen by a µs event time written before the bounds: the next write wins', async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      const at = Date.now();
      const key = rowKey(keyPrefix, 'spend', 'e');
      // What an unbounded writer left behind: event_time in µs (year ~58,000 read as ms), in the row and its window.
      const micros = at * 1000;
      await tooling.hset(key, ROW_TIME, String(micros), ROW_EVENT_ID, 'old', 'amount', '999', 'fee', '9');
      await tooling.zadd(windowKey(key), micros, 'old\u00009999');
      const stats = await store.write(planWrites([spendEvent('new', at, 5)]));
      expect(stats).toEqual({ entities: 1, rowsApplied: 1, aggregatesUpdated: 1, rowsRepaired: 1 });
      const hash = await tooling.hgetall(key);
      expect(hash).toMatchObject({ [ROW_TIME]: String(at), [ROW_EVENT_ID]: 'new', amount: '5', amount_count_10m: '1' });
      expect(await tooling.zcard(windowKey(key))).toBe(1);
      // A repaired row is an ordinary row again: an older event does not win, a newer one does.
      expect((await store.write(planWrites([spendEvent('older', at - 1, 6)]))).rowsApplied).toBe(0);
      expect(await store.write(planWrites([spendEvent('newer', at + 1, 7)]))).toMatchObject({
        rowsApplied: 1,
        rowsRepaired: 0,
      });
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('a key of another type at a row name is a poison record, not an outage', async () => {
    const keyPrefix = uniqueName('os');
    const store = new RedisOnlineStore(tooling, { keyPrefix });
    try {
      await tooling.set(rowKey(keyPrefix, 'spend', 'e'), 'not a hash');
      const error = await store.write(planWrites([spendEvent('a', Date.now(), 1)])).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PoisonRecordError);
      expect((error as PoisonRecordError).retriable).toBe(false);
      const read = await store.read(contractViews.get('spend')!, 'e').catch((e: unknown) => e);
      expect((read as DriftlineError).retriable).toBe(false);
    } finally {
      await dropPrefix(keyPrefix);
    }
  });

  it('fails fast and retriably while Redis is unreachable (no offline queue)', async () => {
    const store = createRedisOnlineStore(
      { url: 'redis://127.0.0.1:1', tls: false },
      { use: 'online-read', keyPrefix: 'x' },
    );
    try {
      const started = performance.now();
      const error = await store.read(contractViews.get('profile')!, 'e').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SinkUnavailableError);
      expect((error as SinkUnavailableError).retriable).toBe(true);
      expect(performance.now() - started).toBeLessThan(500);
      expect(store.ready()).toBe(false);
    } finally {
      await store.close();
    }
  });

  it('bounds every command: a server that accepts but never answers times out as a retriable error', async () => {
    // A TCP server that completes the handshake and then says nothing (a hung Redis).
    const sockets: Array<{ destroy(): void }> = [];
    const server: Server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const client = createRedisClient({ url: `redis://127.0.0.1:${port}`, tls: false }, 'tooling', {
      policy: { commandTimeoutMs: 200, connectTimeoutMs: 200 },
    });
    client.on('error', () => {});
    try {
      const started = performance.now();
      const error = await client.get('k').catch((e: unknown) => classifyRedisError(e, 'read'));
      expect(error).toBeInstanceOf(SinkUnavailableError);
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      client.disconnect();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('classifies a script error as non-retriable and connection errors as retriable', async () => {
    const error = await tooling.eval('return redis.call("NOSUCHCOMMAND")', 0).catch((e: unknown) => e);
    const classified = classifyRedisError(error, 'write');
    expect(classified.retriable).toBe(false);
    expect(classified.code).toBe('INTERNAL');
    expect(classifyRedisError(new Error('Connection is closed.'), 'write').retriable).toBe(true);
    expect(classifyRedisError(new Error('Command timed out'), 'write').retriable).toBe(true);
  });
});
