import { parseEnv, SinkUnavailableError, toRedisConnectionConfig } from '@driftline/core';
import { planWrites, validateFeatureEvent } from '@driftline/features';
import { stallableProxy, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { onlineStoreEnvShape } from '../src/index.js';
import { createRedisOnlineStore, waitReady } from '../src/redis/index.js';
import { contractViews } from './contract.js';

// The stack's Redis behind a proxy that stops forwarding (a Redis that stopped answering without
// closing), with the timeouts set as an operator sets them: parsed from the environment.
const stack = inject('stack');
const { hostname, port } = new URL(stack.redisUrl);
const READ_TIMEOUT_MS = 300;
const COMMAND_TIMEOUT_MS = 700;

/** How long a call took to fail, and its error. */
async function failure(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  try {
    await call();
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
  throw new Error('the call succeeded through a stalled proxy');
}

describe('DRIFTLINE_REDIS_READ_TIMEOUT and _COMMAND_TIMEOUT against the real Redis', () => {
  const cleanup: Array<() => Promise<unknown> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function stalledStore(use: 'online-read' | 'online-write') {
    const proxy = await stallableProxy(Number(port), hostname);
    cleanup.push(() => proxy.close());
    const env = parseEnv(onlineStoreEnvShape, {
      DRIFTLINE_FEATURE_VIEWS: 'views.yaml',
      DRIFTLINE_REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      DRIFTLINE_REDIS_READ_TIMEOUT: `${READ_TIMEOUT_MS}ms`,
      DRIFTLINE_REDIS_COMMAND_TIMEOUT: `${COMMAND_TIMEOUT_MS}`,
    });
    const store = createRedisOnlineStore(toRedisConnectionConfig(env), { use, keyPrefix: uniqueName('rtimeout') });
    cleanup.push(() => store.close());
    await waitReady(store.client);
    return { proxy, store };
  }

  const profile = contractViews.get('profile')!;

  it('a feature read fails retriably after the configured 300 ms, not the default 2 s', async () => {
    const { proxy, store } = await stalledStore('online-read');
    expect(await store.read(profile, 'e')).toBeUndefined(); // answered through the proxy
    proxy.stall();
    const { error, ms } = await failure(() => store.read(profile, 'e'));
    expect(error).toBeInstanceOf(SinkUnavailableError);
    expect((error as Error).message).toMatch(/Command timed out/);
    expect(ms).toBeGreaterThanOrEqual(READ_TIMEOUT_MS - 10);
    expect(ms).toBeLessThan(1_900); // under the default 2 s it must not have waited: slack for a loaded run
  });

  it('a materializer write (its chunked pipeline) fails after the command timeout, 700 ms, not the read timeout nor 10 s', async () => {
    const { proxy, store } = await stalledStore('online-write');
    proxy.stall();
    const writes = planWrites([
      validateFeatureEvent(contractViews, {
        event_id: 'ev-1',
        view: 'profile',
        entity_id: 'e',
        event_time: Date.now() - 1_000,
        features: { age: 1, country: 'x', premium: true, score: 0.5 },
      }),
    ]);
    const { error, ms } = await failure(() => store.write(writes));
    expect(error).toBeInstanceOf(SinkUnavailableError);
    expect((error as Error).message).toMatch(/Command timed out/);
    expect(ms).toBeGreaterThanOrEqual(COMMAND_TIMEOUT_MS - 10);
    expect(ms).toBeLessThan(5_000);
  });
});
