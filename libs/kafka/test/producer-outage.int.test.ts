// The producer through Kafka outages, on the shared broker: every connection of this process goes
// through a proxy (test/outage-broker.ts) that refuses connections (a broker down: killed,
// restarting) or goes silent (a hung broker), so the shared stack itself is never touched.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@driftline/core';
import { createMetricsRegistry, type Registry } from '@driftline/observability';
import { uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createKafkaClient, createProducer, ensureTopics, type KafkaClient, topicOffsets } from '../src/index.js';
import { readTopic } from '../src/testing.js';
import { type OutageBroker, outageBroker } from './outage-broker.js';

const stack = inject('stack');

/**
 * The model server's prediction log sends with a deadline of 10 s (and replaces after 10 s of
 * failures); the same shape, shorter. Below kafkajs's ~4 s of connect retries under NODE_ENV=test,
 * so the old producer failed here too (with production timing it took ~25 s).
 */
const DEADLINE_MS = 3_000;
const BATCH = 20;

/** kafkajs's and the producer's warning lines, kept for the message of a failed expectation. */
function recordingLogger(lines: string[]): Logger {
  const line = (level: string) => (obj: object, msg?: string) =>
    lines.push(`${new Date().toISOString()} ${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  const logger: Logger = {
    debug: () => {},
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child: () => logger,
  };
  return logger;
}

async function replacements(registry: Registry): Promise<number> {
  const text = await registry.getSingleMetricAsString('driftline_producer_replaced_total');
  return Number(/^driftline_producer_replaced_total(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1] ?? 0);
}

describe('a producer through a Kafka outage (a proxy in front of the shared broker)', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await Promise.resolve(fn()).catch(() => {});
  });

  async function setUp(): Promise<{ proxy: OutageBroker; kafka: KafkaClient; topic: string; lines: string[] }> {
    const proxy = await outageBroker(stack.kafkaBrokers[0]!);
    cleanup.push(() => proxy.close());
    const lines: string[] = [];
    const kafka = createKafkaClient(
      { brokers: [proxy.broker], clientId: uniqueName('outage'), ssl: false },
      recordingLogger(lines),
    );
    const topic = uniqueName('outage');
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    return { proxy, kafka, topic, lines };
  }

  /**
   * Sends batches one at a time as the prediction log does: a failed batch is sent again exactly
   * as it was (the same records, nothing added) until it is acknowledged, then the next one.
   */
  function sendLoop(producer: Awaited<ReturnType<typeof createProducer>>, topic: string) {
    let next = 0;
    let acknowledged = 0;
    let running = true;
    const failures: Array<{ ms: number; message: string }> = [];
    const done = (async () => {
      let batch: number[] = [];
      while (running || batch.length > 0) {
        if (batch.length === 0) batch = Array.from({ length: BATCH }, () => next++);
        const began = Date.now();
        try {
          await producer.send(
            topic,
            batch.map((i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) })),
          );
          acknowledged += batch.length;
          batch = [];
          await sleep(5);
        } catch (error) {
          failures.push({ ms: Date.now() - began, message: (error as Error).message });
          await sleep(100);
        }
      }
    })();
    return {
      acknowledged: () => acknowledged,
      failures,
      async stop() {
        running = false;
        await done;
      },
    };
  }

  /** Sends through Kafka refusing connections for 1.6 send deadlines: every record once, no producer replaced. */
  async function throughOutage(replaceAfterMs: number) {
    const { proxy, kafka, topic, lines } = await setUp();
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const producer = await createProducer(kafka, {
      registry,
      health: { replaceAfterMs, sendDeadlineMs: DEADLINE_MS },
    });
    cleanup.push(() => producer.disconnect());
    const load = sendLoop(producer, topic);
    try {
      await sleep(1_000);
      expect(load.failures).toEqual([]);
      // A batch lands unanswered, then Kafka is gone for longer than the send deadline.
      await proxy.refuse();
      await sleep(DEADLINE_MS * 1.6);
      await proxy.restore();
      const after = load.acknowledged();
      for (const until = Date.now() + 60_000; load.acknowledged() < after + 10 * BATCH && Date.now() < until; )
        await sleep(100);
    } finally {
      await load.stop();
    }
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    const keys = (await readTopic(kafka, topic, total, 30_000)).map((r) => r.key?.toString());
    const distinct = new Set(keys).size;
    const context = [
      `failed sends (ms, message): ${JSON.stringify(load.failures.map((f) => [f.ms, f.message.slice(0, 80)]))}`,
      ...lines.filter((l) => l.includes('producer') || l.includes('no answer')).slice(-20),
    ].join('\n');
    expect(load.failures.length, context).toBeGreaterThan(0);
    expect(distinct, context).toBe(load.acknowledged());
    expect(total - distinct, context).toBe(0);
    expect(await replacements(registry), context).toBe(0);
    // Every failed send failed on its own, before its deadline: none was abandoned unanswered.
    expect(Math.max(...load.failures.map((f) => f.ms)), context).toBeLessThan(DEADLINE_MS);
  }

  it('an outage longer than the send deadline writes no record twice and keeps the producer (found by a review)', async () => {
    // The send in flight at the outage outlasted its deadline (kafkajs's connect retries inside
    // it), the producer was replaced, and its batch written again under a new producer id.
    await throughOutage(DEADLINE_MS);
  }, 90_000);

  it('sends failing while Kafka is down do not get the producer replaced the moment Kafka is back', async () => {
    // The replacement check due at every attempt: the first attempt after Kafka is back is one. The
    // producer was replaced as soon as a broker accepted connections, before its own resend.
    await throughOutage(200);
  }, 90_000);

  it('a broker that accepts connections and never answers still gets the producer replaced, and sends go on', async () => {
    const { proxy, kafka, topic } = await setUp();
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const producer = await createProducer(kafka, {
      registry,
      health: { replaceAfterMs: 60_000, sendDeadlineMs: 2_000 },
    });
    cleanup.push(() => producer.disconnect());
    const message = (i: number) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) });
    await producer.send(topic, [message(0)]);
    proxy.stall();
    try {
      await expect(producer.send(topic, [message(1)])).rejects.toMatchObject({
        code: 'SINK_UNAVAILABLE',
        retriable: true,
        message: expect.stringContaining('no answer from Kafka within 2000 ms'),
      });
      // Still silent: the fresh producer's connect fails at the deadline as well.
      await expect(producer.send(topic, [message(1)])).rejects.toMatchObject({ code: 'SINK_UNAVAILABLE' });
    } finally {
      proxy.resume();
    }
    await producer.send(topic, [message(1), message(2)]); // through a fresh producer
    expect(await replacements(registry)).toBeGreaterThanOrEqual(1);
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    const values = (await readTopic(kafka, topic, total, 30_000)).map((r) => r.value?.toString());
    expect(new Set(values)).toEqual(new Set(['v0', 'v1', 'v2']));
  }, 60_000);
});
