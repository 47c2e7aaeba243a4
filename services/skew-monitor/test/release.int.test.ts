import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { committedOffsets, createProducer, topicOffsets } from '@driftline/kafka';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type DriftAlert, type FeatureEvent, type PredictionEvent } from '@driftline/schemas';
import { type Runner, startRunner } from '@driftline/service';
import { releaseMarginMs } from '@driftline/skew';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { skewMonitorService } from '../src/service.js';

// An alert whose window ends beyond now + the event-time bound is held until its end comes within
// the bound (alert consumers refuse it before). It used to wait in memory for the next batch: lost
// with a restart, never raised on an idle topic. These run the real service on the real stack.
const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'skew-release-ch-'));
const dir = mkdtempSync(join(tmpdir(), 'skew-release-'));
const VIEWS_YAML = `
views:
  - name: spend
    entity: user_id
    features: { amount: double }
`;
const views = parseFeatureViewsText(VIEWS_YAML);
/**
 * A short event-time bound keeps the wait short: 40 s (release margin half of it, 20 s, a look every
 * 5 s). Until due, a test produces, waits for the commits and (one of them) stops the service: about
 * 1 s on a loaded machine (load average 23), against the 18–28 s the margin leaves.
 */
const BOUND_MS = 40_000;
const WINDOW_MS = 10_000;
const PREDICTIONS = 20;
/** Start-up, ~20 s until due, a release look (5 s), a restart: a hang guard, generous for a loaded machine. */
const RUN_TIMEOUT_MS = 240_000;

function env(prefix: string, database: string, keyPrefix: string): Record<string, string> {
  const viewsFile = join(dir, 'views.yaml');
  writeFileSync(viewsFile, VIEWS_YAML);
  return {
    DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
    DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
    DRIFTLINE_REDIS_URL: stack.redisUrl,
    DRIFTLINE_FEATURE_VIEWS: viewsFile,
    DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
    DRIFTLINE_TOPIC_PREFIX: prefix,
    DRIFTLINE_TOPIC_PARTITIONS: '2',
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_LOG_LEVEL: process.env.SKEW_TEST_LOG_LEVEL ?? 'error',
    DRIFTLINE_CLICKHOUSE_DATABASE: database,
    DRIFTLINE_CLICKHOUSE_PATH: chPath,
    DRIFTLINE_EVENT_TIME_MAX_FUTURE: `${BOUND_MS}ms`,
    DRIFTLINE_SKEW_SAMPLE_RATE: '1',
    DRIFTLINE_SKEW_WINDOW: '10s',
    DRIFTLINE_SKEW_MIN_COMPARED: '5',
    DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED: '0.05',
    DRIFTLINE_SKEW_GROUP: 'skew-monitor',
  };
}

/** One deployment's names: topics, group and database of its own. */
function deployment() {
  const prefix = `${uniqueName('skewrel')}.`;
  return {
    prefix,
    topic: `${prefix}predictions.v1`,
    alertsTopic: `${prefix}alerts.v1`,
    database: uniqueName('skewrel').replaceAll('-', '_'),
  };
}

/**
 * The deployment's scenario, from now: a window starting as late as its predictions (its first
 * 2 s) are still accepted, within the bound, but ending beyond the bound less the margin, so its
 * alert is held; `amount` in cents in every prediction; `due` is when its end comes within the
 * bound less the margin, about 20 s from now. Made once the service runs: its start-up does not
 * eat into those seconds.
 */
function scenario(names: ReturnType<typeof deployment>) {
  const { prefix } = names;
  const windowStart = Math.floor((Date.now() + BOUND_MS - 2_000) / WINDOW_MS) * WINDOW_MS;
  const windowEnd = windowStart + WINDOW_MS;
  const events: PredictionEvent[] = Array.from({ length: PREDICTIONS }, (_, i) => ({
    prediction_id: `${prefix}p${i}`,
    model: 'fraud',
    model_version: 'v1',
    entity_id: `u${i % 4}`,
    event_time: windowStart + i * 100,
    features: { amount: (12.5 + (i % 4)) * 100 },
    prediction: 0.5,
    predicted_class: null,
    role: 'production',
    scores: null,
  }));
  return {
    ...names,
    events,
    windowStart,
    windowEnd,
    due: windowEnd - BOUND_MS + releaseMarginMs(BOUND_MS),
  };
}

async function produce(topic: string, events: readonly PredictionEvent[]): Promise<void> {
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
  const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
  const messages = [];
  for (const [i, e] of events.entries())
    messages.push({ key: e.prediction_id, value: await codec.encode(e), partition: i % 2 });
  await producer.send(topic, messages);
  await producer.disconnect();
}

const kafka = kafkaFor(stack.kafkaBrokers);

async function alertCount(topic: string): Promise<number> {
  const offsets = await topicOffsets(kafka, topic).catch(() => []);
  return offsets.reduce((a, o) => a + Number(o.high), 0);
}

/** Every prediction processed and committed by the group. */
async function committed(s: ReturnType<typeof scenario>): Promise<void> {
  await eventually(async () => {
    const commits = await committedOffsets(kafka, `${s.prefix}skew-monitor`, s.topic);
    const offsets = await topicOffsets(kafka, s.topic);
    return offsets.every((o) => Number(o.high) > 0 && commits.get(o.partition) === o.high) ? true : undefined;
  }, 60_000);
}

/** The first alert of the scenario's alerts topic, with when Kafka received it. */
async function firstAlert(s: ReturnType<typeof scenario>): Promise<{ alert: DriftAlert; receivedAt: number }> {
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.alert, s.alertsTopic);
  const [record] = await readTopic(kafka, s.alertsTopic, 1, s.due - Date.now() + 90_000);
  return { alert: await codec.decode(record!.value!), receivedAt: record!.timestamp };
}

function expectReleased(s: ReturnType<typeof scenario>, got: { alert: DriftAlert; receivedAt: number }): void {
  expect(got.alert).toMatchObject({
    kind: 'TRAINING_SERVING_SKEW',
    model: 'fraud',
    feature: 'amount',
    window_start: s.windowStart,
    window_end: s.windowEnd,
    statistic: 1,
  });
  // Raised once it is due, and then within what alert consumers accept (the bound, at their clock).
  expect(got.receivedAt).toBeGreaterThanOrEqual(s.due - 1_000);
  expect(got.alert.window_end).toBeLessThanOrEqual(got.receivedAt + BOUND_MS);
  expect(got.alert.event_time).toBeLessThanOrEqual(got.receivedAt + BOUND_MS);
}

describe('skew-monitor releases held alerts (real Kafka, registry, Redis, embedded ClickHouse)', {
  timeout: RUN_TIMEOUT_MS,
}, () => {
  let writer: RedisOnlineStore;
  const keyPrefix = uniqueName('skewrel').replaceAll('-', '_');

  beforeAll(async () => {
    writer = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
    await waitReady(writer.client);
    const events: FeatureEvent[] = Array.from({ length: 4 }, (_, u) => ({
      event_id: `s${u}`,
      view: 'spend',
      entity_id: `u${u}`,
      event_time: Date.now() - 60_000,
      features: { amount: 12.5 + u },
    }));
    await writer.write(planWrites(events.map((e) => validateFeatureEvent(views, e))));
  });
  afterAll(async () => {
    await writer.close();
  });

  it.concurrent('raises a held alert after a restart, with no new prediction (found by a review)', async () => {
    const names = deployment();
    let runner: Runner | undefined = await startRunner({
      services: [skewMonitorService as never],
      env: env(names.prefix, names.database, keyPrefix),
    });
    try {
      const s = scenario(names);
      await produce(s.topic, s.events);
      await committed(s);
      // The process stops while holding it: its offsets are committed, nothing replays.
      await runner.stop();
      runner = undefined;
      // Held, not raised by the process that stopped: the restart is what has to raise it (asked of
      // Kafka, not raced against the wall clock, which a loaded machine's start-up used to lose).
      expect(await alertCount(s.alertsTopic)).toBe(0);
      runner = await startRunner({
        services: [skewMonitorService as never],
        env: env(s.prefix, s.database, keyPrefix),
      });
      expectReleased(s, await firstAlert(s));
    } finally {
      await runner?.stop().catch(() => {});
    }
  });

  it.concurrent('raises a held alert on an idle topic, once its window end is within the bound', async () => {
    const names = deployment();
    const runner = await startRunner({
      services: [skewMonitorService as never],
      env: env(names.prefix, names.database, keyPrefix),
    });
    try {
      const s = scenario(names);
      await produce(s.topic, s.events);
      await committed(s);
      expect(await alertCount(s.alertsTopic)).toBe(0);
      // No prediction arrives any more: no batch runs.
      expectReleased(s, await firstAlert(s));
    } finally {
      await runner.stop().catch(() => {});
    }
  });
});
