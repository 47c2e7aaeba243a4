import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import {
  type ConsumerHandle,
  committedOffsets,
  createProducer,
  DLQ_HEADERS,
  ensureTopics,
  startConsumer,
  topicOffsets,
} from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { type ClickHouse, createClickHouse, type JoinedRow, migrate, migrations, warehouseOn } from '../src/index.js';
import { testClickHouse } from './fixtures/clickhouse.js';

// The "done when" of one ClickHouse owner: the real consumer loop (libs/kafka) on a real topic,
// writing through a real warehouse store. A row ClickHouse rejects is bisected into <topic>.dlq
// with its ClickHouse code; an unreachable ClickHouse is retried and nothing is committed.
const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'warehouse-dlq-'));
const T0 = 1_700_000_000_000;
// Year ~255,000: a valid JS date whose DateTime64 text ClickHouse refuses (CANNOT_PARSE_DATETIME).
const FAR_FUTURE = 8e15;

interface Event {
  readonly id: string;
  readonly labelTime: number;
}

function joined(e: Event): JoinedRow {
  const prediction: PredictionEvent = {
    prediction_id: e.id,
    model: 'm',
    model_version: 'v1',
    entity_id: `e-${e.id}`,
    event_time: T0,
    features: { x: 1 },
    prediction: 0.5,
    predicted_class: null,
  } as unknown as PredictionEvent;
  const label = { prediction_id: e.id, model: 'm', event_time: e.labelTime, label: 1 } as unknown as LabelEvent;
  return { prediction, label, joinedAt: T0 + 1_000 };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('ClickHouse errors through the consumer loop (real Kafka, real ClickHouse)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  async function run(topic: string, group: string, ch: ClickHouse, onAttempt?: () => void): Promise<ConsumerHandle> {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = await createProducer(kafka);
    const store = warehouseOn(ch).predictions;
    const handle = await startConsumer<Event>({
      kafka,
      groupId: group,
      topics: [topic],
      producer,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      fromBeginning: true,
      backoff: { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 },
      processor: {
        decode: (r) => JSON.parse(String(r.value)) as Event,
        async process(items) {
          onAttempt?.();
          await store.insertJoined(items.map((i) => joined(i.value)));
        },
      },
    });
    cleanup.push(async () => {
      await handle.stop();
      await producer.disconnect();
    });
    return handle;
  }

  async function produce(topic: string, events: readonly Event[]): Promise<void> {
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [
      { topic, partitions: 1 },
      { topic: `${topic}.dlq`, partitions: 1 },
    ]);
    const producer = await createProducer(kafka);
    await producer.send(
      topic,
      events.map((e) => ({ key: e.id, value: Buffer.from(JSON.stringify(e)), partition: 0 })),
    );
    await producer.disconnect();
  }

  it('dead-letters exactly the row ClickHouse rejects, with its code; the rest land and offsets commit', async () => {
    const topic = uniqueName('wh-reject');
    const group = uniqueName('group');
    const ch = await createClickHouse(testClickHouse(chPath, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    await migrate(ch, migrations);
    const events: Event[] = ['a', 'b', 'c', 'd', 'e'].map((id) => ({
      id,
      labelTime: id === 'c' ? FAR_FUTURE : T0 + 500,
    }));
    await produce(topic, events);
    await run(topic, group, ch);

    const kafka = kafkaFor(stack.kafkaBrokers);
    const [dead, ...more] = await readTopic(kafka, `${topic}.dlq`, 1);
    expect(more).toEqual([]);
    expect(JSON.parse(String(dead!.value))).toEqual({ id: 'c', labelTime: FAR_FUTURE });
    expect(String(dead!.headers[DLQ_HEADERS.code])).toBe('SINK_REJECTED');
    expect(String(dead!.headers[DLQ_HEADERS.reason])).toMatch(
      /^clickhouse insert into labeled_predictions: CANNOT_PARSE_DATETIME \(41\)/,
    );
    await eventually(async () => ((await committedOffsets(kafka, group, topic)).get(0) === 5n ? true : undefined));
    const rows = await ch.select<{ prediction_id: string }>(
      `SELECT prediction_id FROM ${ch.table('labeled_predictions')} FINAL ORDER BY prediction_id`,
    );
    expect(rows.map((r) => r.prediction_id)).toEqual(['a', 'b', 'd', 'e']);
    const dlq = await topicOffsets(kafka, `${topic}.dlq`);
    expect(dlq.reduce((n, o) => n + Number(o.high - o.low), 0)).toBe(1);
  });

  it('an unreachable ClickHouse is retried with backoff: nothing committed, nothing dead-lettered', async () => {
    const topic = uniqueName('wh-down');
    const group = uniqueName('group');
    const ch = await createClickHouse({
      mode: 'server',
      url: `http://127.0.0.1:${await closedPort()}`,
      database: 'driftline',
      timeoutMs: 2_000,
    });
    await produce(topic, [
      { id: 'a', labelTime: T0 },
      { id: 'b', labelTime: T0 },
      { id: 'c', labelTime: T0 },
    ]);
    let attempts = 0;
    const handle = await run(topic, group, ch, () => {
      attempts++;
    });
    await eventually(async () => (attempts >= 4 ? true : undefined), 30_000, 50);
    expect(handle.ready()).toBe(false);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const committed = await committedOffsets(kafka, group, topic);
    expect([...committed.values()].every((offset) => offset < 0n)).toBe(true);
    const dlq = await topicOffsets(kafka, `${topic}.dlq`);
    expect(dlq.reduce((n, o) => n + Number(o.high - o.low), 0)).toBe(0);
  });

  it('a load balancer answering 503 while ClickHouse is down is retried: nothing committed, nothing dead-lettered (found by a review)', async () => {
    // Envoy's answer while its upstream redeploys: no ClickHouse code in it. It was SINK_REJECTED,
    // so the whole batch was bisected into the DLQ and its offsets committed during the outage.
    const balancer = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(503, { 'content-type': 'text/plain' }).end('upstream request timeout'));
    });
    await new Promise<void>((resolve) => balancer.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => balancer.close(() => resolve())));
    const topic = uniqueName('wh-503');
    const group = uniqueName('group');
    const ch = await createClickHouse({
      mode: 'server',
      url: `http://127.0.0.1:${(balancer.address() as { port: number }).port}`,
      database: 'driftline',
      timeoutMs: 2_000,
    });
    await produce(topic, [
      { id: 'a', labelTime: T0 },
      { id: 'b', labelTime: T0 },
      { id: 'c', labelTime: T0 },
      { id: 'd', labelTime: T0 },
    ]);
    let attempts = 0;
    const handle = await run(topic, group, ch, () => {
      attempts++;
    });
    await eventually(async () => (attempts >= 6 ? true : undefined), 30_000, 50);
    expect(handle.ready()).toBe(false);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const committed = await committedOffsets(kafka, group, topic);
    expect([...committed.values()].every((offset) => offset < 0n)).toBe(true);
    const dlq = await topicOffsets(kafka, `${topic}.dlq`);
    expect(dlq.reduce((n, o) => n + Number(o.high - o.low), 0)).toBe(0);
  });
});
