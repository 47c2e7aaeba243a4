import { randomUUID } from 'node:crypto';
import { type KafkaClient, kafkajsOf } from './client.js';
import { subscribe } from './consumer.js';
import { type InboundRecord, toBufferHeaders } from './records.js';

/**
 * Test helper: reads a topic from the beginning, in a fresh consumer group, until `count` records
 * arrived or, given a predicate, until it holds for the records so far (rejects when the timeout
 * passes first, naming how many it got).
 */
export async function readTopic(
  client: KafkaClient,
  topic: string,
  count: number | ((records: readonly InboundRecord[]) => boolean | Promise<boolean>),
  timeoutMs = 30_000,
): Promise<InboundRecord[]> {
  const consumer = kafkajsOf(client).consumer({
    groupId: `reader-${randomUUID().slice(0, 8)}`,
    allowAutoTopicCreation: false,
  });
  const out: InboundRecord[] = [];
  const done = typeof count === 'number' ? async (r: readonly InboundRecord[]) => r.length >= count : count;
  const goal = typeof count === 'number' ? String(count) : 'predicate';
  await consumer.connect();
  try {
    // A topic created a moment ago (e.g. by a publisher's first send) may not be in the metadata yet.
    await subscribe(consumer, topic, true);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`read ${out.length}/${goal} messages of ${topic} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      void consumer.run({
        eachMessage: async ({ topic: t, partition, message }) => {
          out.push({
            topic: t,
            partition,
            offset: message.offset,
            key: message.key,
            value: message.value,
            headers: toBufferHeaders(message.headers),
            timestamp: Number(message.timestamp),
          });
          if (await done(out)) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
      if (count === 0) {
        clearTimeout(timer);
        resolve();
      }
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/** Test helper: grows a topic to `count` partitions (an operator's `kafka-topics --alter --partitions`). */
export async function growTopic(client: KafkaClient, topic: string, count: number): Promise<void> {
  const admin = kafkajsOf(client).admin();
  await admin.connect();
  try {
    await admin.createPartitions({ topicPartitions: [{ topic, count }] });
  } finally {
    await admin.disconnect();
  }
}
