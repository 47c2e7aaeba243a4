import { SchemaRegistryCodec } from '@driftline/codec';
import { silentLogger } from '@driftline/core';
import { DLQ_HEADERS, ensureTopics, topicOffsets } from '@driftline/kafka';
import { contracts, deadLetterTopic } from '@driftline/schemas';
import { kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { describe, inject, it } from 'vitest';
import { startThreadLog } from '../src/log-thread.js';
import { loggedPrediction as prediction } from './fixtures.js';

const stack = inject('stack');

async function openLog(maxBuffered: number, maxWaitMs = 0, maxBufferedBytes?: number) {
  const topic = `${uniqueName('logthread')}.predictions.v1`;
  await ensureTopics(kafkaFor(stack.kafkaBrokers), [
    { topic, partitions: 2 },
    { topic: deadLetterTopic(topic), partitions: 1 },
  ]);
  const backlogs: number[] = [];
  const rejected: number[] = [];
  const log = await startThreadLog(
    {
      kafka: { brokers: stack.kafkaBrokers, clientId: 'log-thread-test', ssl: false },
      registry: { url: stack.schemaRegistryUrl },
      topic,
    },
    {
      maxBuffered,
      ...(maxBufferedBytes === undefined ? {} : { maxBufferedBytes }),
      maxWaitMs,
      flushIntervalMs: 20,
      maxBatch: 500,
      onBacklog: (n) => backlogs.push(n),
      onRejected: (n) => rejected.push(n),
    },
    silentLogger,
  );
  return { log, topic, backlogs, rejected };
}

/** Every record in `topic`, decoded. */
async function sentPredictions(topic: string) {
  const kafka = kafkaFor(stack.kafkaBrokers);
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
  const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
  const records = await readTopic(kafka, topic, total, 30_000);
  return Promise.all(records.map(async (r) => codec.decode(r.value)));
}

// Each test has a log (its own thread and producer) and topics of its own: they run at once.
describe.concurrent('prediction log on its worker thread (real Kafka and registry)', () => {
  it('sends every appended record once, in append order per partition, and drains to zero', async ({ expect }) => {
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

  it('refuses (503) what would exceed its bound before Kafka acknowledged, and refuses after close', async ({
    expect,
  }) => {
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
    expect(log.alive()).toBe(false); // and liveness
    await expect(log.append([prediction(999)])).rejects.toThrow(/prediction log is not running/);
  });

  it('bounds bytes as well as records: long string features are refused past the byte bound, and admitted once acknowledged', async ({
    expect,
  }) => {
    const { log, topic } = await openLog(50_000, 0, 1_048_576);
    const long = (i: number) => ({ ...prediction(i), features: { f0: 1, text: 'z'.repeat(65_000) } });
    // 16 records of ~65 KB fit 1 MiB; a 17th in the same turn (nothing acknowledged) does not.
    await log.append(Array.from({ length: 16 }, (_, i) => long(i)));
    await expect(log.append([long(16)])).rejects.toThrow(
      /prediction log backlog full \(50000 records or 1048576 bytes/,
    );
    expect(await log.drain(30_000)).toBe(0);
    await log.append([long(17)]); // room again once acknowledged
    // A request larger than the whole bound is admitted alone once the log is empty.
    expect(await log.drain(30_000)).toBe(0);
    await log.append(Array.from({ length: 20 }, (_, i) => long(100 + i)));
    expect(await log.drain(30_000)).toBe(0);
    await log.close();
    const ids = new Set((await sentPredictions(topic)).map((e) => e.prediction_id));
    expect(ids.size).toBe(37);
    expect(ids.has('p-16')).toBe(false);
  });

  it('dead-letters records Kafka refuses as too large, sends the others of their batch, and goes on', async ({
    expect,
  }) => {
    const { log, topic, rejected } = await openLog(50_000);
    const huge = { ...prediction(5), features: { f0: 1, blob: 'x'.repeat(1_200_000) } }; // > the broker's 1 MiB
    const huge8 = { ...prediction(8), features: { blob: 'y'.repeat(1_100_000) } }; // two of one hand-off
    await log.append([...Array.from({ length: 5 }, (_, i) => prediction(i)), huge, prediction(6), huge8]);
    expect(await log.drain(30_000)).toBe(0); // the bound is free again: nothing is held forever
    await log.append([prediction(7)]);
    expect(await log.drain(30_000)).toBe(0);
    await log.close();
    expect(rejected).toEqual([2]);
    // Halving the refused batch sends its good halves again: at-least-once, so ids, not counts.
    const ids = (await sentPredictions(topic)).map((e) => e.prediction_id);
    expect(new Set(ids)).toEqual(new Set(['p-0', 'p-1', 'p-2', 'p-3', 'p-4', 'p-6', 'p-7']));
    const letters = await readTopic(kafkaFor(stack.kafkaBrokers), deadLetterTopic(topic), 2, 30_000);
    expect(new Set(letters.map((l) => l.key?.toString()))).toEqual(new Set(['p-5', 'p-8']));
    const letter = letters.find((l) => l.key?.toString() === 'p-5');
    expect(letter?.headers[DLQ_HEADERS.code]?.toString()).toBe('SINK_REJECTED');
    expect(letter?.headers[DLQ_HEADERS.reason]?.toString()).toMatch(/too large|TOO_LARGE/i);
    expect(letter?.headers[DLQ_HEADERS.truncated]?.toString()).toBe(String(Buffer.byteLength(JSON.stringify(huge))));
    expect(letter?.value?.toString().startsWith('{"prediction_id":"p-5"')).toBe(true); // its JSON, cut to fit
  });

  it('dead-letters a record the schema refuses (event_time not a long) by name, and sends the others of its batch', async ({
    expect,
  }) => {
    const { log, topic, rejected } = await openLog(50_000);
    const bad = { ...prediction(2), event_time: 1.5 };
    await log.append([prediction(0), prediction(1), bad, prediction(3)]);
    expect(await log.drain(30_000)).toBe(0);
    await log.close();
    expect(rejected).toEqual([1]);
    const events = await sentPredictions(topic);
    expect(new Set(events.map((e) => e.prediction_id))).toEqual(new Set(['p-0', 'p-1', 'p-3']));
    expect(events.find((e) => e.prediction_id === 'p-3')).toEqual(prediction(3));
    const [letter] = await readTopic(kafkaFor(stack.kafkaBrokers), deadLetterTopic(topic), 1, 30_000);
    expect(letter?.key?.toString()).toBe('p-2');
    expect(letter?.headers[DLQ_HEADERS.code]?.toString()).toBe('VALIDATION_FAILED');
    expect(letter?.headers[DLQ_HEADERS.reason]?.toString()).toMatch(/event_time=1\.5/);
    expect(JSON.parse(letter?.value?.toString() ?? '')).toEqual(bad);
  });

  it('under a backlog, appends wait for acknowledgements instead of failing (back-pressure)', async ({ expect }) => {
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
