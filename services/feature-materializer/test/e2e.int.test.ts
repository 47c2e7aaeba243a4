import { randomUUID } from 'node:crypto';
import { SchemaRegistryCodec } from '@driftline/codec';
import { silentLogger } from '@driftline/core';
import { createProducer, DLQ_HEADERS } from '@driftline/kafka';
import {
  createRedisOnlineStore,
  type RedisOnlineStore,
  viewDefinitionsKey,
  waitReady,
} from '@driftline/online-store/redis';
import { contracts, type FeatureEvent } from '@driftline/schemas';
import { createDriftlineProducer, type DriftlineProducer } from '@driftline/sdk';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { featureMaterializer } from '../src/index.js';
import {
  differences,
  eventLog,
  offlineState,
  onlineState,
  shuffledWithDuplicates,
  views,
  writeViewsFile,
} from './helpers.js';

const stack = inject('stack');

// The feature API over the same store is tested in services/feature-api (unit: in-memory store,
// integration: Redis); here the rows are read through the OnlineStore port it uses.
describe('SDK → Kafka → feature-materializer → Redis online store', () => {
  // One runner for the file; each test uses its own entities.
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
    store: RedisOnlineStore;
    prefix: string;
    keyPrefix: string;
  }> {
    const prefix = `${uniqueName('e2e')}.`;
    const keyPrefix = uniqueName('fk');
    const runner = await startRunner({
      services: [featureMaterializer] as never,
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
      },
    });
    cleanup.push(() => runner.stop());
    const sdk = await createDriftlineProducer({
      kafka: { brokers: stack.kafkaBrokers, clientId: 'test-sdk', ssl: false },
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      lingerMs: 2,
    });
    cleanup.push(() => sdk.close());
    const store = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-read', keyPrefix });
    cleanup.push(() => store.close());
    await waitReady(store.client);
    return { runner, sdk, store, prefix, keyPrefix };
  }

  /**
   * Events as a producer other than the SDK may write them, checked only against the Avro schema
   * (the SDK refuses what it can tell is bad before sending): the materializer is the guard.
   */
  async function publishUnchecked(prefix: string, events: ReadonlyArray<Omit<FeatureEvent, 'event_id'>>) {
    const topic = `${prefix}features.v1`;
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.feature, topic);
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    try {
      const messages = [];
      for (const e of events) {
        messages.push({ key: e.entity_id, value: await codec.encode({ ...e, event_id: randomUUID() }) });
      }
      await producer.send(topic, messages);
    } finally {
      await producer.disconnect();
    }
  }

  it('serves published features and window aggregates; bad events go to the DLQ with the reason', async () => {
    const { runner, sdk, store, prefix, keyPrefix } = env;
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
    // An empty entity id no view takes: the SDK refuses it at the call.
    await expect(sdk.publishFeatures({ view: 'profile', entity_id: '', features: { age: 1 } })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringMatching(/^entity_id must be/),
    });
    // Valid Avro, invalid for the views: dead-lettered by the materializer, from the SDK or another producer.
    await sdk.publishFeatures([
      { view: 'nope', entity_id: 'bob', features: {} },
      { view: 'profile', entity_id: 'bob', features: { age: 'old' } },
    ]);
    await sdk.flush();
    await publishUnchecked(prefix, [{ view: 'profile', entity_id: '', event_time: t, features: { age: 1 } }]);

    const profile = views.get('profile')!;
    const spend = views.get('spend')!;
    const alice = await eventually(async () => (await store.read(profile, 'alice')) ?? undefined);
    expect(alice).toEqual({
      eventTime: t,
      eventId: expect.any(String),
      features: { age: 31, country: 'fr', premium: true, score: 0.5 },
    });
    const batch = await eventually(async () => {
      const rows = await store.readBatch([
        { view: spend, entities: ['alice', 'nobody'] },
        { view: profile, entities: ['alice'], features: ['age'] },
      ]);
      return rows[0]?.[0]?.features.amount_count_10m === 2 ? rows : undefined;
    });
    expect(batch[0]).toEqual([
      {
        eventTime: t,
        eventId: expect.any(String),
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
      undefined,
    ]);
    expect(batch[1]?.[0]?.features).toEqual({ age: 31 });

    const dead = await readTopic(kafkaFor(stack.kafkaBrokers), `${prefix}features.v1.dlq`, 3);
    const reasons = dead.map((d) => d.headers[DLQ_HEADERS.reason]?.toString()).sort();
    expect(reasons).toEqual([
      'feature "age" of view "profile" must be double, got string',
      'missing entity_id (user_id) for view "profile"',
      'unknown feature view "nope"',
    ]);

    const metrics = await runner.context.registry.metrics();
    expect(metrics).toMatch(/driftline_feature_rows_total\{[^}]*outcome="applied"[^}]*\} [1-9]/);
    // The state marker that tells Redis losing the features (libs/online-store, watchStateMarker).
    expect(await store.client.exists(`${keyPrefix}:state-marker:features`)).toBe(1);
    // The views' aggregate definitions, which the next start compares (libs/online-store, checkViewDefinitions).
    expect(Object.keys(await store.client.hgetall(viewDefinitionsKey(keyPrefix))).sort()).toEqual(
      views.views.map((v) => v.name).sort(),
    );
  });

  it('event time out of bounds (µs, pre-2000, far future) goes to the DLQ with the reason and freezes no row', async () => {
    const { sdk, store, prefix } = await start(); // its own topics: the DLQ holds only this test's records
    const t = Date.now() - 1_000;
    // Same entity, same partition, in this order: before the bounds, the µs row won every later write.
    // The SDK refuses such times at the call; a producer that is not the SDK may still send them.
    await expect(
      sdk.publishFeatures({ view: 'profile', entity_id: 'carol', event_time: t * 1000, features: { age: 99 } }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/microseconds\?$/) });
    await publishUnchecked(prefix, [
      { view: 'profile', entity_id: 'carol', event_time: t * 1000, features: { age: 99 } },
      { view: 'profile', entity_id: 'carol', event_time: Date.UTC(1899, 0, 1), features: { age: 98 } },
      { view: 'profile', entity_id: 'carol', event_time: t + 2 * 86_400_000, features: { age: 97 } },
    ]);
    await sdk.publishFeatures([{ view: 'profile', entity_id: 'carol', event_time: t, features: { age: 40 } }]);
    await sdk.flush();
    const row = await eventually(async () => (await store.read(views.get('profile')!, 'carol')) ?? undefined);
    expect(row).toMatchObject({ eventTime: t, features: { age: 40 } });
    const dead = await readTopic(kafkaFor(stack.kafkaBrokers), `${prefix}features.v1.dlq`, 3);
    const reasons = dead.map((d) => d.headers[DLQ_HEADERS.reason]?.toString());
    expect(reasons).toEqual([
      expect.stringMatching(
        /^event_time \d+ is [\d,]+ years in the future \(at most 1 hour allowed\): microseconds\?$/,
      ),
      expect.stringMatching(/^event_time -\d+ \(1899-01-01T00:00:00.000Z\) is before the minimum 2000-01-01/),
      expect.stringMatching(/^event_time \d+ is 1.9 days in the future/),
    ]);
    expect(dead.map((d) => d.headers[DLQ_HEADERS.code]?.toString())).toEqual(Array(3).fill('VALIDATION_FAILED'));
  });

  it('an event older than its view TTL for an entity without a row counts as expired, not applied, and is never served (found by a review)', async () => {
    const { runner, sdk, store } = env;
    // profile's ttl is 1d: written, it would be deleted at once (it had been counted applied).
    await sdk.publishFeatures({
      view: 'profile',
      entity_id: 'dave',
      event_time: Date.now() - 2 * 86_400_000,
      features: { age: 50 },
    });
    await sdk.flush();
    await eventually(async () => {
      const metrics = await runner.context.registry.metrics();
      return /driftline_feature_rows_total\{[^}]*outcome="expired"[^}]*\} 1\b/.test(metrics) ? true : undefined;
    });
    expect(await store.read(views.get('profile')!, 'dave')).toBeUndefined();
  });

  it('a shuffled, duplicated delivery of an event log ends in the offline last-write-wins state', async () => {
    const { sdk, store } = env;
    const log = eventLog(2_000, 30, 42);
    await sdk.publishFeatures(shuffledWithDuplicates(log, 43));
    await sdk.flush();
    const expected = offlineState(log);
    await eventually(async () =>
      (await onlineState(store, expected)).get([...expected.keys()].at(-1)!) ? true : undefined,
    );
    const diff = await eventually(
      async () => {
        const d = differences(expected, await onlineState(store, expected));
        return d.length === 0 ? d : undefined;
      },
      30_000,
      250,
    ).catch(async () => differences(expected, await onlineState(store, expected)));
    expect(diff.slice(0, 3)).toEqual([]);
  });
});
