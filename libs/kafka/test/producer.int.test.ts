import { kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { createProducer, ensureTopics, topicOffsets } from '../src/index.js';
import { deadLetterMessage } from '../src/records.js';
import { readDeadLetter, replayMessageOf } from '../src/replay.js';
import { readTopic } from '../src/testing.js';

const stack = inject('stack');

describe('producer against real Kafka', () => {
  it("one send of many small records to one partition, together far above the topic's max.message.bytes, is delivered", async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('runs');
    // Each record is far below the limit; kafkajs put all of a send's records for one partition in
    // one record batch, which the broker refused whole (MESSAGE_TOO_LARGE), for good.
    await ensureTopics(kafka, [{ topic, partitions: 1, config: { 'max.message.bytes': String(256 * 1024) } }]);
    const producer = await createProducer(kafka, { maxSendBytes: 200 * 1024 });
    try {
      const value = Buffer.alloc(1_000, 0x61);
      const messages = Array.from({ length: 1_500 }, (_, i) => ({ key: `k${i}`, value, partition: 0 }));
      await producer.send(topic, messages);
      const [offsets] = await topicOffsets(kafka, topic);
      expect(offsets?.high).toBe(1_500n);
    } finally {
      await producer.disconnect();
    }
  });

  it("a send refused for one partition's records does not lose the next send to a partition it wrote (found hunting a lost drift window)", async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('partly');
    await ensureTopics(kafka, [{ topic, partitions: 2, config: { 'max.message.bytes': String(10 * 1024) } }]);
    const producer = await createProducer(kafka);
    try {
      // One request: partition 0's batch is refused (too large), partition 1's is written. kafkajs
      // handed both partitions' sequence numbers back; the next batch to partition 1 got s1's, and
      // the broker answered it as s1's duplicate: acknowledged, never written.
      await expect(
        producer.send(topic, [
          { key: 'big', value: Buffer.alloc(20 * 1024, 0x61), partition: 0 },
          { key: 's1', value: Buffer.from('s1'), partition: 1 },
        ]),
      ).rejects.toMatchObject({ code: 'SINK_REJECTED', retriable: false });
      await producer.send(topic, [{ key: 's2', value: Buffer.from('s2'), partition: 1 }]);
      await producer.send(topic, [{ key: 's3', value: Buffer.from('s3'), partition: 0 }]);
      const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
      const records = await readTopic(kafka, topic, total, 30_000);
      const byPartition = (p: number) => records.filter((r) => r.partition === p).map((r) => r.key?.toString());
      expect(byPartition(0)).toEqual(['s3']);
      expect(byPartition(1)).toEqual(['s1', 's2']);
    } finally {
      await producer.disconnect();
    }
  });

  it('concurrent sends of one producer to one partition are each written (its sequence numbers are taken one request at a time)', async () => {
    // Stage one's partitions share one producer; another client's idempotent producer acknowledged
    // concurrent sends with one offset and wrote one of them (platformatic/kafka#326).
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('concurrent');
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    const producer = await createProducer(kafka);
    try {
      const values = Array.from({ length: 50 }, (_, i) => `c${i}`);
      await Promise.all(values.map((v) => producer.send(topic, [{ key: v, value: Buffer.from(v), partition: 0 }])));
      const records = await readTopic(kafka, topic, values.length, 30_000);
      expect(records.map((r) => r.value?.toString()).sort()).toEqual([...values].sort());
      const [offsets] = await topicOffsets(kafka, topic);
      expect(offsets?.high).toBe(50n);
    } finally {
      await producer.disconnect();
    }
  });

  it('a null header value stays null: read, dead-lettered and replayed (found by a review)', async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('null-header');
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    try {
      await producer.send(topic, [
        { key: 'k', value: Buffer.from('v'), headers: { n: null, r: [Buffer.from('a'), null] } },
      ]);
      const [read] = await readTopic(kafka, topic, 1);
      // Before: the 4 bytes "null".
      expect(read!.headers).toEqual({ n: null, r: [Buffer.from('a'), null] });
      await producer.send(`${topic}.dlq`, [
        deadLetterMessage({ record: read!, code: 'DECODE_FAILED', reason: 'x' }, 'g', 0),
      ]);
      const [letter] = await readTopic(kafka, `${topic}.dlq`, 1);
      expect(letter!.headers).toMatchObject({ n: null, r: [Buffer.from('a'), null] });
      const replay = replayMessageOf(readDeadLetter(letter!)!);
      expect(replay.headers).toMatchObject({ n: null, r: [Buffer.from('a'), null] });
    } finally {
      await producer.disconnect();
    }
  });
});
