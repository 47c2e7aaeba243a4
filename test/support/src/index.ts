import { randomUUID } from 'node:crypto';
import { silentLogger } from '@driftline/core';
import { createKafka, type Kafka } from '@driftline/kafka';
import type { KafkaMessage } from 'kafkajs';

/** A name no other test uses: topics, groups, key prefixes and tables are isolated per test. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export function kafkaFor(brokers: readonly string[], clientId = uniqueName('test')): Kafka {
  return createKafka({ brokers, clientId, ssl: false }, silentLogger);
}

export interface ReadMessage {
  readonly partition: number;
  readonly offset: string;
  readonly message: KafkaMessage;
}

/** Reads a topic from the beginning until `count` messages arrived (or the timeout passes). */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  count: number,
  timeoutMs = 30_000,
): Promise<ReadMessage[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), allowAutoTopicCreation: false });
  const out: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`read ${out.length}/${count} messages of ${topic} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          out.push({ partition, offset: message.offset, message });
          if (out.length >= count) {
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

/** Polls `check` until it returns a defined value or the timeout passes. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`condition not met in ${timeoutMs} ms${lastError === undefined ? '' : `: ${String(lastError)}`}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
