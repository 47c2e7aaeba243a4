import { kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { createProducer, ensureTopics, topicOffsets } from '../src/index.js';

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
});
