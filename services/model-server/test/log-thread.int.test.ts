import { SchemaRegistryCodec } from '@driftline/codec';
import { silentLogger } from '@driftline/core';
import { ensureTopics, topicOffsets } from '@driftline/kafka';
import { contracts } from '@driftline/schemas';
import { kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { startThreadLog } from '../src/log-thread.js';
import { loggedPrediction as prediction } from './fixtures.js';

const stack = inject('stack');

async function openLog(maxBuffered: number, maxWaitMs = 0) {
  const topic = `${uniqueName('logthread')}.predictions.v1`;
  await ensureTopics(kafkaFor(stack.kafkaBrokers), [{ topic, partitions: 2 }]);
  const backlogs: number[] = [];
  const log = await startThreadLog(
    {
      kafka: { brokers: stack.kafkaBrokers, clientId: 'log-thread-test', ssl: false },
      registry: { url: stack.schemaRegistryUrl },
      topic,
    },
    { maxBuffered, maxWaitMs, flushIntervalMs: 20, maxBatch: 500, onBacklog: (n) => backlogs.push(n) },
    silentLogger,
  );
  return { log, topic, backlogs };
}

describe('prediction log on its worker thread (real Kafka and registry)', () => {
  it('sends every appended record once, in append order per partition, and drains to zero', async () => {
    const { log, topic, backlogs } = await openLog(50_000);
    for (let q = 0; q < 30; q++) {
      await log.append(Array.from({ length: 100 }, (_, i) => prediction(q * 100 + i)));
      await new Promise((r) => setImmediate(r));
    }
    expect(await log.drain(30_000)).toBe(0);
    expect(log.backlog()).toBe(0);
    expect(Math.max(...backlogs)).toBeGreaterThan(0);
    expect(backlogs.at(-1)).toBe(0);
    await log.close();
    const kafka = kafkaFor(stack.kafkaBrokers);
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    expect(total).toBe(3_000);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
    const records = await readTopic(kafka, topic, total, 30_000);
    const read = await Promise.all(records.map(async (r) => ({ r, e: await codec.decode(r.value!) })));
    expect(new Set(read.map((x) => x.e.prediction_id)).size).toBe(3_000);
    // Within a partition, by offset, records are in the order they were appended (event_time rises with it).
    for (const p of [0, 1]) {
      const times = read
        .filter((x) => x.r.partition === p)
        .sort((a, b) => Number(a.r.offset) - Number(b.r.offset))
        .map((x) => x.e.event_time);
      expect(times.length).toBeGreaterThan(0);
      expect(times).toEqual([...times].sort((a, b) => a - b));
    }
    expect(read.find((x) => x.e.prediction_id === 'p-7')?.e).toEqual(prediction(7));
  });

  it('refuses (503) what would exceed its bound before Kafka acknowledged, and refuses after close', async () => {
    const { log } = await openLog(250);
    const first = log.append(Array.from({ length: 100 }, (_, i) => prediction(i)));
    const second = log.append(Array.from({ length: 100 }, (_, i) => prediction(100 + i)));
    // Same event-loop turn: nothing can have been acknowledged yet, and there is no wait.
    await expect(log.append(Array.from({ length: 100 }, (_, i) => prediction(200 + i)))).rejects.toThrow(
      /prediction log backlog full \(250 records/,
    );
    await Promise.all([first, second]);
    expect(await log.drain(30_000)).toBe(0);
    await log.append(Array.from({ length: 100 }, (_, i) => prediction(300 + i))); // room again once acknowledged
    expect(log.ready()).toBe(true);
    await log.close();
    expect(log.backlog()).toBe(0);
    expect(log.ready()).toBe(false); // its thread has ended: readiness fails
    await expect(log.append([prediction(999)])).rejects.toThrow(/prediction log is not running/);
  });

  it('under a backlog, appends wait for acknowledgements instead of failing (back-pressure)', async () => {
    const { log, topic } = await openLog(300, 5_000);
    // 5,000 records, 100 per append, as fast as admitted: far more than the bound holds at once.
    for (let q = 0; q < 50; q++) {
      await log.append(Array.from({ length: 100 }, (_, i) => prediction(q * 100 + i)));
      expect(log.backlog()).toBeLessThanOrEqual(300);
    }
    expect(await log.drain(30_000)).toBe(0);
    await log.close();
    const total = (await topicOffsets(kafkaFor(stack.kafkaBrokers), topic)).reduce((a, o) => a + Number(o.high), 0);
    expect(total).toBe(5_000);
  });
});
