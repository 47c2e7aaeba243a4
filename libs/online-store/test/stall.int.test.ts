import { SinkUnavailableError } from '@driftline/core';
import { stallableProxy } from '@driftline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisOnlineStore, STALLED_AFTER_TIMEOUTS, waitReady } from '../src/redis/index.js';
import { contractViews } from './contract.js';
import { privateRedisWithTooling } from './support.js';

async function until(condition: () => boolean, timeoutMs: number, pollMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

describe('a stalled Redis connection (real redis-server behind a proxy that stops forwarding)', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function stalledSetup() {
    const { server } = await privateRedisWithTooling(['--save', ''], cleanup);
    const proxy = await stallableProxy(server.port);
    cleanup.push(() => proxy.close());
    const store = createRedisOnlineStore(
      { url: `redis://127.0.0.1:${proxy.port}`, tls: false },
      { use: 'online-read', keyPrefix: 'stall', policy: { commandTimeoutMs: 200, connectTimeoutMs: 200 } },
    );
    cleanup.push(() => store.close());
    await waitReady(store.client, 10_000);
    return { proxy, store };
  }

  const profile = contractViews.get('profile')!;
  const readError = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (e: unknown) => e,
    );

  it(`reports not ready from the first timed-out read, reconnects after ${STALLED_AFTER_TIMEOUTS}, and is ready again once Redis answers`, async () => {
    const { proxy, store } = await stalledSetup();
    expect(await store.read(profile, 'e')).toBeUndefined();
    expect(store.ready()).toBe(true);
    expect(proxy.connections()).toBe(1);

    proxy.stall();
    expect(await readError(store.read(profile, 'e'))).toBeInstanceOf(SinkUnavailableError);
    // Still `ready` for ioredis: health used to stay green while every read timed out.
    expect(store.client.status).toBe('ready');
    expect(store.ready()).toBe(false);
    for (let i = 1; i < STALLED_AFTER_TIMEOUTS; i++) {
      expect(await readError(store.readBatch([{ view: profile, entities: ['a', 'b'] }]))).toBeInstanceOf(
        SinkUnavailableError,
      );
    }
    // The stalled connection was dropped and another one opened (it was kept for ever).
    await until(() => proxy.connections() >= 2, 2_000);
    expect(store.ready()).toBe(false);
    expect(await readError(store.read(profile, 'e'))).toBeInstanceOf(SinkUnavailableError);
    expect(store.ready()).toBe(false);

    proxy.resume();
    await until(() => store.ready(), 5_000);
    expect(await store.read(profile, 'e')).toBeUndefined();
  });

  it('with no reads coming (a reader taken out of service), health checks alone drive the reconnect and the recovery', async () => {
    const { proxy, store } = await stalledSetup();
    proxy.stall();
    expect(await readError(store.read(profile, 'e'))).toBeInstanceOf(SinkUnavailableError);
    // Only ready() from now on, as a readiness probe would call it.
    await until(() => !store.ready() && proxy.connections() >= 2, 3_000);
    proxy.resume();
    await until(() => store.ready(), 5_000);
    expect(await store.read(profile, 'e')).toBeUndefined();
  });
});
