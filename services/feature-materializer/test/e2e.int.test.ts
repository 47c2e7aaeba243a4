import { silentLogger } from '@driftline/core';
import { featureApi } from '@driftline/feature-api';
import { DLQ_HEADERS } from '@driftline/kafka';
import { createDriftlineProducer, type DriftlineProducer } from '@driftline/sdk';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { featureMaterializer } from '../src/index.js';
import {
  differences,
  eventLog,
  freePort,
  offlineState,
  onlineState,
  shuffledWithDuplicates,
  writeViewsFile,
} from './helpers.js';

const stack = inject('stack');

describe('SDK → Kafka → feature-materializer → Redis → feature API', () => {
  // One runner (both services) for the file; each test uses its own entities.
  const cleanup: Array<() => Promise<void>> = [];
  let env: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    env = await start();
  });
  afterAll(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  async function start(): Promise<{
    runner: Runner;
    sdk: DriftlineProducer;
    api: string;
    prefix: string;
    keyPrefix: string;
  }> {
    const prefix = `${uniqueName('e2e')}.`;
    const keyPrefix = uniqueName('fk');
    const apiPort = await freePort();
    const runner = await startRunner({
      services: [featureMaterializer, featureApi] as never,
      logger: silentLogger,
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_TOPIC_PARTITIONS: '3',
        DRIFTLINE_FEATURE_VIEWS: writeViewsFile(),
        DRIFTLINE_REDIS_URL: stack.redisUrl,
        DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
        DRIFTLINE_MATERIALIZER_GROUP: uniqueName('materializer'),
        DRIFTLINE_FEATURE_API_PORT: String(apiPort),
      },
    });
    cleanup.push(() => runner.stop());
    const sdk = await createDriftlineProducer({
      brokers: stack.kafkaBrokers,
      registryUrl: stack.schemaRegistryUrl,
      topicPrefix: prefix,
      lingerMs: 2,
    });
    cleanup.push(() => sdk.close());
    return { runner, sdk, api: `http://127.0.0.1:${apiPort}`, prefix, keyPrefix };
  }

  it('serves published features and window aggregates; bad events go to the DLQ with the reason', async () => {
    const { runner, sdk, api, prefix } = env;
    const t = Date.now() - 1_000;
    await sdk.publishFeatures([
      {
        view: 'profile',
        entity_id: 'alice',
        event_time: t,
        features: { age: 31, country: 'fr', premium: true, score: 0.5 },
      },
      {
        view: 'profile',
        entity_id: 'alice',
        event_time: t - 5_000,
        features: { age: 30, country: 'de', premium: false },
      },
      { view: 'spend', entity_id: 'alice', event_time: t - 60_000, features: { amount: 10.5, fee: 1 } },
      { view: 'spend', entity_id: 'alice', event_time: t, features: { amount: 20, fee: 2 } },
      { view: 'spend', entity_id: 'alice', event_time: t - 20 * 60_000, features: { amount: 100, fee: 0.5 } },
    ]);
    // Invalid for the schema: refused before anything is sent.
    await expect(
      sdk.publishFeatures({ view: 'profile', entity_id: 'x', features: { age: [1] as unknown as number } }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/features/) });
    // Valid Avro, invalid for the views: dead-lettered by the materializer.
    await sdk.publishFeatures([
      { view: 'nope', entity_id: 'bob', features: {} },
      { view: 'profile', entity_id: 'bob', features: { age: 'old' } },
      { view: 'profile', entity_id: '', features: { age: 1 } },
    ]);
    await sdk.flush();

    const alice = await eventually(async () => {
      const res = await fetch(`${api}/v1/features/profile/alice`);
      const body = (await res.json()) as { found: boolean };
      return body.found ? body : undefined;
    });
    expect(alice).toMatchObject({
      view: 'profile',
      entity: 'alice',
      found: true,
      event_time: t,
      features: { age: 31, country: 'fr', premium: true, score: 0.5 },
    });
    expect((alice as unknown as { age_ms: number }).age_ms).toBeGreaterThanOrEqual(1_000);

    const batch = await eventually(async () => {
      const res = await fetch(`${api}/v1/features:batch`, {
        method: 'POST',
        body: JSON.stringify({
          requests: [
            { view: 'spend', entities: ['alice', 'nobody'] },
            { view: 'profile', entities: ['alice'], features: ['age'] },
          ],
        }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { results: Array<{ rows: Array<{ features?: Record<string, unknown> }> }> };
      return body.results[0]?.rows[0]?.features?.amount_count_10m === 2 ? body : undefined;
    });
    expect(batch.results[0]).toEqual({
      view: 'spend',
      rows: [
        {
          entity: 'alice',
          found: true,
          event_time: t,
          age_ms: expect.any(Number),
          features: {
            amount: 20,
            fee: 2,
            amount_count_10m: 2,
            amount_sum_10m: 30.5,
            amount_mean_1h: (10.5 + 20 + 100) / 3,
            fee_min_1h: 0.5,
            fee_max_1d: 2,
          },
        },
        { entity: 'nobody', found: false },
      ],
    });
    expect(batch.results[1]?.rows[0]?.features).toEqual({ age: 31 });

    const dead = await readTopic(kafkaFor(stack.kafkaBrokers), `${prefix}features.v1.dlq`, 3);
    const reasons = dead.map((d) => d.message.headers?.[DLQ_HEADERS.reason]?.toString()).sort();
    expect(reasons).toEqual([
      'feature "age" of view "profile" must be double, got string',
      'missing entity_id (user_id) for view "profile"',
      'unknown feature view "nope"',
    ]);

    // Input errors.
    const status = async (path: string, init?: RequestInit) => {
      const res = await fetch(`${api}${path}`, init);
      return { status: res.status, body: (await res.json()) as { error?: { message: string } } };
    };
    expect(await status('/v1/features/unknown/alice')).toMatchObject({
      status: 404,
      body: { error: { message: 'unknown feature view "unknown"' } },
    });
    expect((await status('/v1/features/profile/alice?features=age,height')).status).toBe(400);
    expect((await status('/v1/features/profile/%E0%A4%A')).status).toBe(400);
    expect(
      await status('/v1/features:batch', {
        method: 'POST',
        body: '{"requests": [{"view": "profile", "entities": ["a", 3]}]}',
      }),
    ).toMatchObject({
      status: 400,
      body: { error: { message: 'requests[0].entities[1]: must be a string' } },
    });
    expect((await status('/v1/features:batch', { method: 'POST', body: 'not json' })).status).toBe(400);
    expect(
      (await status('/v1/features:batch', { method: 'POST', body: '{"requests":[{"view":"nope","entities":["a"]}]}' }))
        .status,
    ).toBe(404);

    const metrics = await runner.context.registry.metrics();
    expect(metrics).toMatch(/driftline_feature_api_rows_total\{[^}]*view="spend"[^}]*result="miss"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/driftline_feature_api_rows_total\{[^}]*view="profile"[^}]*result="hit"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/driftline_feature_api_request_seconds_bucket\{[^}]*route="single"/);
  });

  it('a shuffled, duplicated delivery of an event log ends in the offline last-write-wins state', async () => {
    const { sdk, keyPrefix } = env;
    const log = eventLog(2_000, 30, 42);
    await sdk.publishFeatures(shuffledWithDuplicates(log, 43));
    await sdk.flush();
    const expected = offlineState(log);
    const redis = new Redis(stack.redisUrl);
    cleanup.push(async () => redis.disconnect());
    await eventually(async () =>
      (await onlineState(redis, keyPrefix, expected)).get([...expected.keys()].at(-1)!) ? true : undefined,
    );
    const diff = await eventually(
      async () => {
        const d = differences(expected, await onlineState(redis, keyPrefix, expected));
        return d.length === 0 ? d : undefined;
      },
      30_000,
      250,
    ).catch(async () => differences(expected, await onlineState(redis, keyPrefix, expected)));
    expect(diff.slice(0, 3)).toEqual([]);
  });
});
