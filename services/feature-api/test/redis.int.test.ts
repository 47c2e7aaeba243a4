import { silentLogger } from '@driftline/core';
import { parseFeatureViews, planWrites, validateFeatureEvent } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FeatureApiServer, startFeatureApi } from '../src/api.js';

const stack = inject('stack');
const views = parseFeatureViews({
  views: [{ name: 'profile', entity: 'user_id', features: { age: 'double', country: 'string', premium: 'boolean' } }],
});

describe('feature API against a real Redis', () => {
  const keyPrefix = uniqueName('api');
  let writer: RedisOnlineStore;
  let reader: RedisOnlineStore;
  let server: FeatureApiServer;
  let base: string;
  beforeAll(async () => {
    const config = { url: stack.redisUrl, tls: false };
    writer = createRedisOnlineStore(config, { use: 'online-write', keyPrefix });
    reader = createRedisOnlineStore(config, { use: 'online-read', keyPrefix });
    await Promise.all([waitReady(writer.client), waitReady(reader.client)]);
    server = await startFeatureApi({
      store: reader,
      views,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      logger: silentLogger,
      now: () => 10_000,
    });
    base = `http://127.0.0.1:${server.port}`;
    await writer.write(
      planWrites([
        validateFeatureEvent(views, {
          event_id: 'e1',
          view: 'profile',
          entity_id: 'a:b{c} é',
          event_time: 9_000,
          features: { age: 41.5, premium: false },
        }),
      ]),
    );
  });
  afterAll(async () => {
    await server.close();
    const keys = await writer.client.keys(`${keyPrefix}:*`);
    if (keys.length > 0) await writer.client.unlink(...keys);
    await reader.close();
    await writer.close();
  });

  it('reads single and batch rows written by the Redis write script', async () => {
    const res = await fetch(`${base}/v1/features/profile/${encodeURIComponent('a:b{c} é')}`);
    expect(await res.json()).toEqual({
      view: 'profile',
      entity: 'a:b{c} é',
      found: true,
      event_time: 9000,
      age_ms: 1000,
      features: { age: 41.5, country: null, premium: false },
    });
    const batch = await fetch(`${base}/v1/features:batch`, {
      method: 'POST',
      body: JSON.stringify({ requests: [{ view: 'profile', entities: ['nobody', 'a:b{c} é'], features: ['age'] }] }),
    });
    expect(await batch.json()).toEqual({
      results: [
        {
          view: 'profile',
          rows: [
            { entity: 'nobody', found: false },
            { entity: 'a:b{c} é', found: true, event_time: 9000, age_ms: 1000, features: { age: 41.5 } },
          ],
        },
      ],
    });
  });

  it('answers 503 at once while Redis is unreachable, and reports it on /healthz', async () => {
    const down = createRedisOnlineStore({ url: 'redis://127.0.0.1:1', tls: false }, { use: 'online-read', keyPrefix });
    const api = await startFeatureApi({
      store: down,
      views,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      logger: silentLogger,
    });
    try {
      const res = await fetch(`http://127.0.0.1:${api.port}/v1/features/profile/x`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('SINK_UNAVAILABLE');
      expect((await fetch(`http://127.0.0.1:${api.port}/healthz`)).status).toBe(503);
    } finally {
      await api.close();
      await down.close();
    }
  });
});
