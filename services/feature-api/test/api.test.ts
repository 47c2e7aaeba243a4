import { connect, type Socket } from 'node:net';
import { silentLogger } from '@driftline/core';
import { parseFeatureViews, planWrites, validateFeatureEvent } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { InMemoryOnlineStore } from '@driftline/online-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FeatureApiServer, startFeatureApi } from '../src/api.js';

const views = parseFeatureViews({
  views: [
    { name: 'profile', entity: 'user_id', features: { age: 'double', country: 'string', premium: 'boolean' } },
    {
      name: 'spend',
      entity: 'user_id',
      features: { amount: 'double' },
      aggregates: [{ feature: 'amount', function: 'sum', window: '1h' }],
    },
  ],
});

describe('feature API over the in-memory online store', () => {
  const store = new InMemoryOnlineStore();
  const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
  let server: FeatureApiServer;
  let base: string;
  beforeAll(async () => {
    server = await startFeatureApi({
      store,
      views,
      registry,
      logger: silentLogger,
      maxBatchEntities: 3,
      maxBodyBytes: 2_048,
      now: () => 10_000,
    });
    base = `http://127.0.0.1:${server.port}`;
    const event = (view: string, entity: string, t: number, features: Record<string, number | string | boolean>) =>
      validateFeatureEvent(views, { event_id: `${view}-${t}`, view, entity_id: entity, event_time: t, features });
    await store.write(
      planWrites([
        event('profile', 'a:b{c} é', 9_000, { age: 41.5, premium: false }),
        event('spend', 'u1', 8_000, { amount: 2.5 }),
        event('spend', 'u1', 7_000, { amount: 1 }),
      ]),
    );
  });
  afterAll(async () => {
    await server.close();
    await store.close();
  });

  const call = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const batch = (body: unknown) =>
    call('/v1/features:batch', { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });

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
    ).toEqual({ premium: false });
    expect((await call('/v1/features/profile/nobody')).body).toEqual({
      view: 'profile',
      entity: 'nobody',
      found: false,
    });
  });

  it('reads a batch across views, with aggregates and absent entities in request order', async () => {
    const res = await batch({
      requests: [
        { view: 'spend', entities: ['u1', 'nobody'] },
        { view: 'profile', entities: ['a:b{c} é'], features: ['age'] },
      ],
    });
    expect(res).toEqual({
      status: 200,
      body: {
        results: [
          {
            view: 'spend',
            rows: [
              {
                entity: 'u1',
                found: true,
                event_time: 8000,
                age_ms: 2000,
                features: { amount: 2.5, amount_sum_1h: 3.5 },
              },
              { entity: 'nobody', found: false },
            ],
          },
          {
            view: 'profile',
            rows: [{ entity: 'a:b{c} é', found: true, event_time: 9000, age_ms: 1000, features: { age: 41.5 } }],
          },
        ],
      },
    });
    const rows = await registry.getSingleMetric('driftline_feature_api_rows_total')!.get();
    expect(rows.values.find((v) => v.labels.view === 'spend' && v.labels.result === 'miss')?.value).toBe(1);
  });

  it('answers malformed requests with 400/404/405/413 and a message naming the problem', async () => {
    expect((await call('/v1/features/profile/x?colour=red')).body).toEqual({
      error: { code: 'BAD_REQUEST', message: 'unknown query parameter "colour"' },
    });
    expect((await call('/v1/features/profile/x?features=nope')).body).toEqual({
      error: { code: 'BAD_REQUEST', message: 'features[0]: view "profile" has no feature or aggregate "nope"' },
    });
    expect((await call('/v1/features/profile/%E0%A4%A')).status).toBe(400);
    expect((await call('/v1/features/profile/%ED%A0%80')).status).toBe(400); // invalid UTF-8
    expect((await batch('{"requests":[{"view":"profile","entities":["a","b","c","d"]}]}')).body).toEqual({
      error: { code: 'BAD_REQUEST', message: 'requests: at most 3 entities per batch, got 4' },
    });
    expect((await batch('{"requests":[{"view":"profile","entities":["a"],"extra":1}]}')).status).toBe(400);
    expect((await batch('{"requests":[{"view":"profile","entities":[""]}]}')).body).toEqual({
      error: { code: 'BAD_REQUEST', message: 'requests[0].entities[0]: must be a non-empty string' },
    });
    expect((await batch('not json')).status).toBe(400);
    expect((await batch('{"requests":[]}')).body).toMatchObject({
      error: { message: 'requests: must hold at least one request' },
    });
    expect((await batch({ requests: [{ view: 'profile', entities: ['x'.repeat(3_000)] }] })).status).toBe(413);
    expect((await batch({ requests: [{ view: 'other', entities: ['x'] }] })).body).toEqual({
      error: { code: 'NOT_FOUND', message: 'unknown feature view "other"' },
    });
    const wrongMethods = [
      await fetch(`${base}/v1/features/profile/x`, { method: 'DELETE' }),
      await fetch(`${base}/v1/features:batch`),
    ];
    expect(wrongMethods.map((r) => [r.status, r.headers.get('allow')])).toEqual([
      [405, 'GET'],
      [405, 'POST'],
    ]);
    expect((await call('/v2/other')).status).toBe(404);
  });

  it('reports the store on /healthz', async () => {
    expect(await call('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    // HEAD answers like GET, without a body (the README said GET only); other methods 405.
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect([head.status, await head.text()]).toEqual([200, '']);
    const wrong = await fetch(`${base}/healthz`, { method: 'POST' });
    expect([wrong.status, wrong.headers.get('allow')]).toEqual([405, 'GET']);
    const closed = new InMemoryOnlineStore();
    await closed.close();
    const api = await startFeatureApi({
      store: closed,
      views,
      registry: createMetricsRegistry({ service: 't', defaultMetrics: false }),
      logger: silentLogger,
    });
    try {
      expect((await fetch(`http://127.0.0.1:${api.port}/healthz`)).status).toBe(503);
    } finally {
      await api.close();
    }
  });

  it('a 503 (here: the store is down on /healthz) has a Retry-After', async () => {
    const closed = new InMemoryOnlineStore();
    await closed.close();
    const api = await startFeatureApi({
      store: closed,
      views,
      registry: createMetricsRegistry({ service: 't', defaultMetrics: false }),
      logger: silentLogger,
    });
    try {
      const res = await fetch(`http://127.0.0.1:${api.port}/healthz`);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
    } finally {
      await api.close();
    }
  });

  it('at maxConnections a new client closes the longest-idle connection, counted as the feature-api listener', async () => {
    const capped = createMetricsRegistry({ service: 't', defaultMetrics: false });
    const api = await startFeatureApi({ store, views, registry: capped, logger: silentLogger, maxConnections: 2 });
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const socket = connect(api.port, '127.0.0.1');
        socket.on('error', () => {});
        idle.push(socket);
        await new Promise<void>((resolve) => {
          socket.once('data', () => resolve());
          socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        });
      }
      const first = new Promise<void>((resolve) => idle[0]!.once('close', () => resolve()));
      expect((await fetch(`http://127.0.0.1:${api.port}/healthz`)).status).toBe(200);
      await first;
      expect(await capped.metrics()).toContain(
        'driftline_http_connections_shed_total{listener="feature-api",reason="evicted_idle",service="t"} 1',
      );
    } finally {
      for (const s of idle) s.destroy();
      await api.close();
    }
  });
});
