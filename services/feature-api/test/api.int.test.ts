import { silentLogger } from '@driftline/core';
import { parseFeatureViews, rowKey } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { uniqueName } from '@driftline/test-support';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createReaderRedis, type FeatureApiServer, startFeatureApi } from '../src/index.js';

const stack = inject('stack');
const views = parseFeatureViews({
  views: [{ name: 'profile', entity: 'user_id', features: { age: 'double', country: 'string', premium: 'boolean' } }],
});

describe('feature API against a real Redis', () => {
  const keyPrefix = uniqueName('api');
  let redis: Redis;
  let reader: Redis;
  let server: FeatureApiServer;
  let base: string;
  beforeAll(async () => {
    redis = new Redis(stack.redisUrl);
    reader = createReaderRedis({ url: stack.redisUrl, tls: false });
    await new Promise((r) => reader.once('ready', r));
    server = await startFeatureApi({
      redis: reader,
      views,
      keyPrefix,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      logger: silentLogger,
      maxBatchEntities: 3,
      maxBodyBytes: 2_048,
      now: () => 10_000,
    });
    base = `http://127.0.0.1:${server.port}`;
    // The row layout the materializer writes: meta fields and one field per feature.
    await redis.hset(rowKey(keyPrefix, 'profile', 'a:b{c} é'), {
      _t: '9000',
      _id: 'e1',
      age: '41.5',
      premium: 'false',
    });
  });
  afterAll(async () => {
    await server.close();
    reader.disconnect();
    redis.disconnect();
  });

  const call = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('reads an entity whose id needs escaping, with typed values, nulls, event time and age', async () => {
    expect(await call(`/v1/features/profile/${encodeURIComponent('a:b{c} é')}`)).toEqual({
      status: 200,
      body: {
        view: 'profile',
        entity: 'a:b{c} é',
        found: true,
        event_time: 9000,
        age_ms: 1000,
        features: { age: 41.5, country: null, premium: false },
      },
    });
    expect(
      (await call(`/v1/features/profile/${encodeURIComponent('a:b{c} é')}?features=premium`)).body.features,
    ).toEqual({
      premium: false,
    });
  });

  it('answers malformed requests with 400/404/405/413 and a message', async () => {
    const batch = (body: string) => call('/v1/features:batch', { method: 'POST', body });
    expect((await call('/v1/features/profile/x?colour=red')).body).toEqual({
      error: { code: 'BAD_REQUEST', message: 'unknown query parameter "colour"' },
    });
    expect((await batch('{"requests":[{"view":"profile","entities":["a","b","c","d"]}]}')).body).toEqual({
      error: { code: 'BAD_REQUEST', message: 'requests: at most 3 entities per batch, got 4' },
    });
    expect((await batch('{"requests":[{"view":"profile","entities":["a"],"extra":1}]}')).status).toBe(400);
    expect((await batch('{"requests":[]}')).body).toMatchObject({
      error: { message: 'requests: must hold at least one request' },
    });
    expect(
      (await batch(JSON.stringify({ requests: [{ view: 'profile', entities: ['x'.repeat(3_000)] }] }))).status,
    ).toBe(413);
    expect((await call('/v1/features/profile/x', { method: 'DELETE' })).status).toBe(405);
    expect((await call('/v2/other')).status).toBe(404);
  });

  it('answers 503 while Redis is unreachable, and reports it on /healthz', async () => {
    const down = createReaderRedis({ url: 'redis://127.0.0.1:1', tls: false });
    down.on('error', () => {});
    const api = await startFeatureApi({
      redis: down,
      views,
      keyPrefix,
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
      down.disconnect();
    }
  });
});
