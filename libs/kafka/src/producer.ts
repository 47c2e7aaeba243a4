import { DriftlineError } from '@driftline/core';
import { counter, type Registry } from '@driftline/observability';
import { CompressionTypes, Partitioners, type Producer } from 'kafkajs';
import { type KafkaClient, kafkajsOf } from './client.js';
import type { OutboundMessage } from './records.js';

export interface EventProducer {
  /** Sends and resolves once every replica in sync has the messages (acks=all). */
  send(topic: string, messages: readonly OutboundMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

/**
 * An idempotent producer (acks=all, broker-side deduplication of retries). Compression is
 * off by default: on loopback and small events it costs more CPU than it saves.
 */
export async function createProducer(
  client: KafkaClient,
  options: { registry?: Registry; compression?: 'none' | 'gzip' } = {},
): Promise<EventProducer> {
  // The default partitioner hashes keys with murmur2 like the Java client, so keys land on the same
  // partitions whoever produces them (co-partitioning of predictions and labels depends on it).
  const producer: Producer = kafkajsOf(client).producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const produced =
    options.registry === undefined
      ? undefined
      : counter(options.registry, 'driftline_records_produced_total', 'Records produced, by topic', ['topic']);
  const compression = options.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  return {
    async send(topic, messages) {
      if (messages.length === 0) return;
      try {
        await producer.send({
          topic,
          acks: -1,
          compression,
          messages: messages.map((m) => ({
            key: m.key,
            value: m.value,
            ...(m.headers === undefined ? {} : { headers: { ...m.headers } }),
            ...(m.timestamp === undefined ? {} : { timestamp: m.timestamp }),
            ...(m.partition === undefined ? {} : { partition: m.partition }),
          })),
        });
      } catch (error) {
        throw new DriftlineError('SINK_UNAVAILABLE', `producing to ${topic} failed: ${(error as Error).message}`, {
          cause: error,
          retriable: true,
        });
      }
      produced?.inc({ topic }, messages.length);
    },
    disconnect: () => producer.disconnect(),
  };
}
