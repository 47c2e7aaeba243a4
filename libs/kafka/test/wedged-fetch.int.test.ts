import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@driftline/core';
import { createMetricsRegistry, type Registry } from '@driftline/observability';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import type { Consumer } from 'kafkajs';
import { describe, inject } from 'vitest';
import type { KafkaClient } from '../src/client.js';
import { consumerKafkajs } from '../src/consumer.js';
import { type BatchProcessor, type ConsumerHandle, createProducer, ensureTopics, startConsumer } from '../src/index.js';
import { type Cleanup, it } from './per-test-cleanup.js';

const stack = inject('stack');
const STALL_MS = 4_000;

/**
 * A fetch that wedges once caught up: kafkajs hands over no batch again while producers keep
 * writing. Simulated with kafkajs' own `pause()` on the loop's consumer (its fetches then skip the
 * partition, and a response that still carries its records is dropped), so the loop sees exactly
 * that: no batch and no attempt in flight. Before, the lag gauge stayed at 0 and `healthy()` true.
 */
describe.concurrent('a fetch that delivers nothing more while records are written (real Kafka)', () => {
  /** Starts the loop on a fresh topic, keeping a hold on the kafkajs consumer it creates (each test its own). */
  async function start(cleanup: Cleanup, processor: BatchProcessor<string>) {
    const topic = uniqueName('wedged');
    const kafka: KafkaClient = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    const kafkajs = consumerKafkajs(kafka);
    const made: Consumer[] = [];
    const create = kafkajs.consumer.bind(kafkajs);
    kafkajs.consumer = (config) => {
      const c = create(config);
      made.push(c);
      return c;
    };
    const registry: Registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const handle: ConsumerHandle = await startConsumer<string>({
      kafka,
      groupId: uniqueName('group'),
      topics: [topic],
      producer,
      logger: silentLogger,
      registry,
      stallTimeoutMs: STALL_MS,
      processor,
    });
    cleanup.push(async () => {
      await handle.stop();
      await producer.disconnect();
    });
    const send = (from: number, n: number) =>
      producer.send(
        topic,
        Array.from({ length: n }, (_, k) => ({
          key: `k${from + k}`,
          value: Buffer.from(`v${from + k}`),
          partition: 0,
        })),
      );
    const lag = async () =>
      (await registry.getSingleMetric('driftline_consumer_lag')?.get())?.values.find((v) => v.labels.topic === topic)
        ?.value;
    const wedge = () => made[0]!.pause([{ topic, partitions: [0] }]);
    const unwedge = () => made[0]!.resume([{ topic, partitions: [0] }]);
    return { handle, send, lag, wedge, unwedge };
  }

  it('records written but never fetched show as lag, and the partition stalls: healthy() false', async ({
    cleanup,
    expect,
  }) => {
    const seen = new Set<string>();
    const { handle, send, lag, wedge, unwedge } = await start(cleanup, {
      decode: (r) => r.value!.toString(),
      async process(items) {
        for (const i of items) seen.add(i.value);
      },
    });
    await send(0, 10);
    await eventually(async () => (seen.size === 10 ? true : undefined));
    await eventually(async () => ((await lag()) === 0 ? true : undefined));
    expect(handle.healthy()).toBe(true);
    wedge();
    await send(10, 5);
    await eventually(async () => ((await lag()) === 5 ? true : undefined), 20_000);
    await eventually(async () => (handle.healthy() ? undefined : true), 20_000);
    expect(handle.stalls()).toEqual([
      expect.objectContaining({ topic: expect.stringContaining('wedged'), partition: 0, lag: 5 }),
    ]);
    expect(seen.size).toBe(10);
    // The fetch delivers again: processed, committed, healthy.
    unwedge();
    await eventually(async () => (seen.size === 15 ? true : undefined));
    await eventually(async () => (handle.healthy() ? true : undefined));
    // The gauge follows the commit, read a moment after it (a fresh clone at load 17 read 5).
    await eventually(async () => ((await lag()) === 0 ? true : undefined), 20_000);
  });

  it('a processor holding its commit for an open window stays healthy while quiet, and stalls once records wait unfetched', async ({
    cleanup,
    expect,
  }) => {
    const seen = new Set<string>();
    const { handle, send, lag, wedge } = await start(cleanup, {
      decode: (r) => r.value!.toString(),
      async process(items) {
        for (const i of items) seen.add(i.value);
        return { commitOffset: '0' }; // every record held in an open window: nothing committed
      },
    });
    await send(0, 10);
    await eventually(async () => (seen.size === 10 ? true : undefined));
    await eventually(async () => ((await lag()) === 10 ? true : undefined));
    // Quiet: lag 10 held on purpose, nothing new. More than the stall timeout and two refreshes.
    const quietUntil = Date.now() + 2 * STALL_MS + 6_000;
    while (Date.now() < quietUntil) {
      expect(handle.healthy()).toBe(true);
      await sleep(500);
    }
    wedge();
    await send(10, 3);
    await eventually(async () => ((await lag()) === 13 ? true : undefined), 20_000);
    await eventually(async () => (handle.healthy() ? undefined : true), 20_000);
    expect(handle.stalls()).toEqual([expect.objectContaining({ partition: 0, lag: 13 })]);
    expect(seen.size).toBe(10);
  });
});
