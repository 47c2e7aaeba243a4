import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer, REPLAYED_FROM_HEADER } from '@driftline/kafka';
import { createRedisClient } from '@driftline/online-store/redis';
import { windowStart } from '@driftline/performance';
import { contracts, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import type { Runner } from '@driftline/service';
import { eventually, kafkaFor, removeTree, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { consumedAll } from './fixtures/events.js';
import { startJoiner } from './fixtures/runner.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'lj-dlq-replay-'));
const HOUR = 3_600_000;

describe('label-joiner: dead letters replayed after the tombstones expired (real Kafka, registry, Redis, ClickHouse)', () => {
  const runners: Runner[] = [];
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'lj-dlq-replay' });
  let keyPrefix = '';
  afterAll(async () => {
    for (const runner of runners.splice(0).reverse()) await runner.stop().catch(() => {});
    if (keyPrefix !== '') {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1_000);
        cursor = next;
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== '0');
    }
    redis.disconnect();
    await removeTree(dir);
  });

  it('counts a replayed prediction or label once when its prediction was joined or expired: no pending, no second score, same rows', async () => {
    const prefix = `${uniqueName('ljdr')}.`;
    keyPrefix = `${prefix}:`;
    const group = `${prefix}joiner`;
    const database = uniqueName('ljdr').replaceAll('-', '_');
    const runner = await startJoiner(stack, prefix, database, dir, {
      DRIFTLINE_TOPIC_PARTITIONS: '1',
      DRIFTLINE_LOG_LEVEL: 'fatal',
      DRIFTLINE_JOINER_MAX_LABEL_DELAY: '1h',
      DRIFTLINE_JOINER_EXPIRY_GRACE: '1',
      DRIFTLINE_JOINER_EXPIRY_INTERVAL: '100ms',
      DRIFTLINE_JOINER_RECOMPUTE_INTERVAL: '200ms',
      // Tombstones gone at once: what an hour leaves of them by default.
      DRIFTLINE_JOINER_TOMBSTONE_TTL: '1',
    });
    runners.push(runner);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const predictionTopic = `${prefix}${contracts.prediction.defaultTopic}`;
    const labelTopic = `${prefix}${contracts.label.defaultTopic}`;
    const pc = codec.forTopic(contracts.prediction, predictionTopic);
    const lc = codec.forTopic(contracts.label, labelTopic);
    const now = Date.now();
    // p-0 and p-1 are labeled; p-2, two hours old, expires unlabeled at the first expiry pass.
    const times: Record<string, number> = { 'p-0': now - 60_000, 'p-1': now - 60_000, 'p-2': now - 2 * HOUR };
    const prediction = (id: string): PredictionEvent => ({
      prediction_id: id,
      model: 'fraud',
      model_version: 'v1',
      entity_id: `e-${id}`,
      event_time: times[id]!,
      features: {},
      prediction: 0.7,
      predicted_class: null,
    });
    const label = (id: string): LabelEvent => ({
      prediction_id: id,
      model: 'fraud',
      event_time: now - 30_000,
      label: 1,
    });
    const warehouse = await runner.context.warehouse();
    const windows = [...new Set(Object.values(times).map((t) => windowStart(t, HOUR)))].map((start) => ({
      model: 'fraud',
      modelVersion: 'v1',
      windowStart: start,
    }));
    const rows = async () => {
      let labeled = 0;
      let expired = 0;
      let scored = 0;
      for (const ref of windows) {
        const w = await warehouse.predictions.readWindow(ref, HOUR, []);
        labeled += w.labeledCount;
        expired += w.expiredCount;
        scored += (await warehouse.estimates.histogram(ref, 0.5))?.counts.reduce((a, b) => a + b, 0) ?? 0;
      }
      return { labeled, expired, scored };
    };
    const pendingTotal = async () =>
      Object.values(await redis.hgetall(`${keyPrefix}pending`)).reduce((sum, n) => sum + Number(n), 0);
    const scheduled = () => redis.zcard(`${keyPrefix}v2:schedule`);

    const producer = await createProducer(kafka);
    try {
      const ids = ['p-0', 'p-1', 'p-2'];
      await producer.send(
        predictionTopic,
        await Promise.all(ids.map(async (id) => ({ key: id, value: await pc.encode(prediction(id)) }))),
      );
      await consumedAll(kafka, group, predictionTopic);
      await producer.send(
        labelTopic,
        await Promise.all(['p-0', 'p-1'].map(async (id) => ({ key: id, value: await lc.encode(label(id)) }))),
      );
      await consumedAll(kafka, group, labelTopic);
      const settled = { labeled: 2, expired: 1, scored: 3 };
      await eventually(
        async () => (JSON.stringify(await rows()) === JSON.stringify(settled) ? true : undefined),
        60_000,
      );
      expect(await pendingTotal()).toBe(0);
      // The tombstones (TTL 1 ms) are gone: only the warehouse remembers these predictions.
      await eventually(async () => ((await redis.keys(`${keyPrefix}v2:s:*`)).length === 0 ? true : undefined), 30_000);

      // `driftline dlq replay --group skew-monitor`: another group's dead letters of the same
      // records come back under new offsets, with the replay header; so does a label of p-2.
      const replayed = (n: number) => ({ [REPLAYED_FROM_HEADER]: `${predictionTopic}.dlq/0/${n}` });
      await producer.send(
        predictionTopic,
        await Promise.all(
          ids.map(async (id, n) => ({ key: id, value: await pc.encode(prediction(id)), headers: replayed(n) })),
        ),
      );
      await producer.send(
        labelTopic,
        await Promise.all(
          ['p-0', 'p-2'].map(async (id, n) => ({ key: id, value: await lc.encode(label(id)), headers: replayed(n) })),
        ),
      );
      await consumedAll(kafka, group, predictionTopic);
      await consumedAll(kafka, group, labelTopic);
      // Nothing pends, waits or is tallied again (recompute passes flush tallies every 200 ms).
      expect(await pendingTotal()).toBe(0);
      expect(await scheduled()).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(await rows()).toEqual(settled);
      const metrics = await runner.context.registry.getSingleMetricAsString('driftline_joiner_events_total');
      expect(metrics).toMatch(/kind="prediction",outcome="replay-duplicate"[^}]*} 3/);
      expect(metrics).toMatch(/kind="label",outcome="replay-duplicate"[^}]*} 2/);
    } finally {
      await producer.disconnect();
      for (const r of runners.splice(0).reverse()) await r.stop();
    }
  }, 180_000);
});
