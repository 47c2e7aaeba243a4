import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { kafkajsOf } from '../src/client.js';
import {
  committedOffsets,
  createProducer,
  ensureTopics,
  partitionCount,
  startConsumer,
  topicOffsets,
} from '../src/index.js';
import { readTopic } from '../src/testing.js';

const stack = inject('stack');
const PARTITIONS = 6;
const TOPICS = 20;

// A fresh topic's metadata reaches the broker's metadata cache a moment after CreateTopics answers:
// meanwhile the broker answers UNKNOWN_TOPIC_OR_PARTITION ("This server does not host this
// topic-partition") or LEADER_NOT_AVAILABLE. Services start right after another process (or they
// themselves) created their topics, so every first use of a topic goes through this window.
describe('fresh topics are usable at once through the facade', () => {
  it(`ensures ${TOPICS} topics of ${PARTITIONS} partitions and at once produces to each partition, subscribes and commits`, async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = await createProducer(kafka);
    try {
      const topics = Array.from({ length: TOPICS }, () => uniqueName('fresh'));
      // In parallel, four at a time: the controller and the metadata cache are busy as on a fresh stack.
      for (let i = 0; i < topics.length; i += 4) {
        await Promise.all(
          topics.slice(i, i + 4).map(async (topic) => {
            await ensureTopics(kafka, [{ topic, partitions: PARTITIONS }, { topic: `${topic}.dlq` }]);
            await producer.send(
              topic,
              Array.from({ length: PARTITIONS }, (_, p) => ({
                key: `k${p}`,
                value: Buffer.from(`v${p}`),
                partition: p,
              })),
            );
            expect(await partitionCount(kafka, topic)).toBe(PARTITIONS);
          }),
        );
      }
      // A consumer of all of them, subscribed right away, consumes and commits every partition.
      const groupId = uniqueName('fresh-group');
      let seen = 0;
      const handle = await startConsumer<string>({
        kafka,
        groupId,
        topics,
        producer,
        logger: silentLogger,
        registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
        processor: {
          decode: (record) => record.value?.toString() ?? '',
          process: async (items) => {
            seen += items.length;
          },
        },
      });
      try {
        await eventually(async () => (seen >= TOPICS * PARTITIONS ? true : undefined), 60_000, 200);
      } finally {
        await handle.stop();
      }
      for (const topic of topics.slice(0, 3)) {
        expect([...(await committedOffsets(kafka, groupId, topic)).values()]).toEqual(Array(PARTITIONS).fill(1n));
      }
    } finally {
      await producer.disconnect();
    }
  });

  it('produces to explicit partitions of topics another process has just created (no wait for metadata)', async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const other = kafkajsOf(kafkaFor(stack.kafkaBrokers)).admin();
    await other.connect();
    try {
      for (let round = 0; round < 10; round++) {
        const topic = uniqueName('raced');
        // The other process: creation answered by the controller, nothing waited for.
        await other.createTopics({
          waitForLeaders: false,
          topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
        });
        const producer = await createProducer(kafka);
        try {
          await producer.send(
            topic,
            Array.from({ length: PARTITIONS }, (_, p) => ({ key: `k${p}`, value: Buffer.from(`v${p}`), partition: p })),
          );
        } finally {
          await producer.disconnect();
        }
        const offsets = await topicOffsets(kafka, topic);
        expect(offsets.map((o) => o.high)).toEqual(Array(PARTITIONS).fill(1n));
      }
    } finally {
      await other.disconnect();
    }
  });

  it("never drops messages silently for a partition missing from the producer's metadata", async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('grown');
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    const producer = await createProducer(kafka);
    const other = kafkajsOf(kafkaFor(stack.kafkaBrokers)).admin();
    await other.connect();
    try {
      await producer.send(topic, [{ key: 'a', value: Buffer.from('a'), partition: 0 }]); // metadata cached: 2 partitions
      // Another process grows the topic; this producer's metadata is now stale (kafkajs keeps it 5 minutes).
      await other.createPartitions({ topicPartitions: [{ topic, count: PARTITIONS }] });
      await producer.send(
        topic,
        Array.from({ length: PARTITIONS }, (_, p) => ({ key: `k${p}`, value: Buffer.from(`v${p}`), partition: p })),
      );
      const offsets = (await topicOffsets(kafka, topic)).sort((x, y) => x.partition - y.partition);
      expect(offsets.map((o) => o.high)).toEqual([2n, ...Array(PARTITIONS - 1).fill(1n)]);
      // A partition that does not exist at all is a typed, non-retriable refusal, not a silent success.
      await expect(
        producer.send(topic, [{ key: 'x', value: Buffer.from('x'), partition: PARTITIONS + 3 }]),
      ).rejects.toMatchObject({ code: 'SINK_REJECTED', retriable: false });
    } finally {
      await other.disconnect();
      await producer.disconnect();
    }
  });

  it('reads (subscribes to) a topic that another process creates only a moment later', async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('late');
    // As a test reading alerts a service's publisher creates on its first send.
    const read = readTopic(kafka, topic, PARTITIONS, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    await ensureTopics(kafka, [{ topic, partitions: PARTITIONS }]);
    const producer = await createProducer(kafka);
    try {
      await producer.send(
        topic,
        Array.from({ length: PARTITIONS }, (_, p) => ({ key: `k${p}`, value: Buffer.from(`v${p}`), partition: p })),
      );
    } finally {
      await producer.disconnect();
    }
    expect((await read).map((r) => r.partition).sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
