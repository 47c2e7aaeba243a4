// Expiry follows the slowest partition of either topic (real Kafka, registry, Redis, embedded
// ClickHouse). One label partition backs off (its batches fail, as after an outage of what it
// writes to) while the prediction partition and the other label partition run far ahead: its
// labels must still join when it recovers. With one clock for all partitions (the largest event
// time seen anywhere), the predictions they belong to expired first and the labels were dropped
// as late.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { SinkUnavailableError, silentLogger } from '@driftline/core';
import {
  type ConsumerHandle,
  createProducer,
  type EventProducer,
  ensureTopics,
  partitionKey,
  startConsumer,
} from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { createRedisClient, createRedisJoinStore } from '@driftline/online-store/redis';
import { contracts, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, removeTree, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { JoinEngine, type JoinerRecord, type PayloadDecoder } from '../src/engine.js';
import { ExpiryScanner } from '../src/loops.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'lj-clock-'));
const MINUTE = 60_000;
const JOIN = { maxDelayMs: 10 * MINUTE, graceMs: 1_000, tombstoneMs: 60 * MINUTE };

describe('label-joiner expiry clock: a label partition with a backlog holds expiry back', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => {});
    await removeTree(dir);
  });

  it('labels read late after their partition recovers still join; only then do the unlabeled expire', async () => {
    const prefix = `${uniqueName('ljclock')}:`;
    const pt = uniqueName('predictions');
    const lt = uniqueName('labels');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [
      { topic: pt, partitions: 1 },
      { topic: lt, partitions: 2 },
    ]);
    const ch: ClickHouse = await createClickHouse({
      mode: 'embedded',
      path: join(dir, 'ch'),
      database: uniqueName('ljclock').replaceAll('-', '_'),
    });
    cleanup.push(() => ch.close());
    await migrate(ch, migrations);
    const warehouse = warehouseOn(ch);
    const store = createRedisJoinStore({ url: stack.redisUrl, tls: false }, { prefix, join: JOIN });
    const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'lj-clock-test' });
    cleanup.push(async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
      redis.disconnect();
      await store.close();
    });
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const pc = codec.forTopic(contracts.prediction, pt);
    const lc = codec.forTopic(contracts.label, lt);
    const decoder: PayloadDecoder = { prediction: (b) => pc.decode(b), label: (b) => lc.decode(b) };

    // a and b were predicted 20 minutes ago (due to expire 10 minutes ago); z a second ago.
    const now = Date.now();
    const model = 'clock-model';
    const prediction = (id: string, at: number): PredictionEvent => ({
      prediction_id: id,
      model,
      model_version: 'v1',
      entity_id: `e-${id}`,
      event_time: at,
      features: {},
      prediction: 0.6,
      predicted_class: null,
    });
    const label = (id: string, at: number): LabelEvent => ({ prediction_id: id, model, event_time: at, label: 1 });
    const producer: EventProducer = await createProducer(kafka);
    cleanup.push(() => producer.disconnect());
    await producer.send(
      pt,
      await Promise.all(
        [prediction('a', now - 20 * MINUTE), prediction('b', now - 20 * MINUTE), prediction('z', now - 1_000)].map(
          async (p) => ({ key: p.prediction_id, value: (await pc.encode(p)) as Buffer, partition: 0 }),
        ),
      ),
    );
    // z's label on partition 0; a's label (in time: 19 minutes ago) waits on partition 1.
    await producer.send(lt, [
      { key: 'z', value: (await lc.encode(label('z', now - 500))) as Buffer, partition: 0 },
      { key: 'a', value: (await lc.encode(label('a', now - 19 * MINUTE))) as Buffer, partition: 1 },
    ]);

    const registry = createMetricsRegistry({ service: 'lj-clock-test', defaultMetrics: false });
    const engine = new JoinEngine(store, decoder, warehouse.predictions, 60 * MINUTE, registry);
    let labelsOneDown = true;
    let failedBatches = 0;
    const consumer: ConsumerHandle = await startConsumer<JoinerRecord>({
      kafka,
      producer,
      logger: silentLogger,
      registry,
      groupId: uniqueName('ljclock-group'),
      topics: [pt, lt],
      partitionsConsumedConcurrently: 3,
      backoff: { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 },
      processor: {
        async decode(record): Promise<JoinerRecord> {
          return record.topic === pt
            ? { kind: 'prediction', event: await pc.decode(record.value), raw: record.value! }
            : { kind: 'label', event: await lc.decode(record.value), raw: record.value! };
        },
        async process(items, context) {
          if (context.topic === lt && context.partition === 1 && labelsOneDown) {
            failedBatches++;
            throw new SinkUnavailableError('the sink of labels partition 1 is down');
          }
          await engine.process(
            items.map((i) => i.value),
            Date.now(),
            partitionKey(context.topic, context.partition),
          );
        },
      },
    });
    cleanup.push(() => consumer.stop());
    const scanner = new ExpiryScanner(
      store,
      decoder,
      warehouse.predictions,
      {
        maxDelayMs: JOIN.maxDelayMs,
        graceMs: JOIN.graceMs,
        positions: async () =>
          (await consumer.positions()).map((p) => ({
            source: partitionKey(p.topic, p.partition),
            caughtUp: p.caughtUp,
          })),
        counts: (source) => source.startsWith(`${pt}/`) || source.startsWith(`${lt}/`),
        deadLetter: async () => {
          throw new Error('nothing here may be dead-lettered');
        },
      },
      registry,
    );
    const ids = async (table: string) =>
      (
        await ch.select<{ prediction_id: string }>(
          `SELECT prediction_id FROM ${ch.table(table)} FINAL WHERE model = {model:String} ORDER BY prediction_id`,
          { model },
        )
      ).map((r) => r.prediction_id);

    // z joins on the healthy partitions; partition 1 keeps failing.
    await eventually(async () => ((await ids('labeled_predictions')).includes('z') ? true : undefined));
    await eventually(async () => (failedBatches >= 3 ? true : undefined));
    for (let pass = 0; pass < 3; pass++) expect(await scanner.pass()).toBe(0);
    expect(await ids('unlabeled_predictions')).toEqual([]);
    const behind = (await registry.getSingleMetric('driftline_joiner_expiry_clock_behind_seconds')?.get())?.values[0];
    expect(behind?.value ?? 0).toBeGreaterThan(60); // held: nothing applied from labels/1 yet

    // Partition 1 recovers: a's label joins, then b (never labeled) expires, once.
    labelsOneDown = false;
    await eventually(async () => ((await ids('labeled_predictions')).includes('a') ? true : undefined));
    let expired = 0;
    await eventually(async () => {
      expired += await scanner.pass();
      return expired >= 1 ? true : undefined;
    });
    expect(expired).toBe(1);
    expect(await ids('labeled_predictions')).toEqual(['a', 'z']);
    expect(await ids('unlabeled_predictions')).toEqual(['b']);
  });
});
