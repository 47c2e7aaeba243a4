import type { EventProducer } from './producer.js';
import type { OutboundMessage } from './records.js';

/** Typed sends to one topic: encode (which validates), key, produce. */
export interface Publisher<T> {
  readonly topic: string;
  /**
   * Encodes every value, then sends them in one request keyed per value; resolves once Kafka
   * acknowledged them (acks=all). A value that fails to encode throws before anything is sent.
   */
  publish(values: readonly T[]): Promise<void>;
  /** Runs the one-time preparation now (topic, schema), so a problem fails start-up, not the first send. */
  prepare(): Promise<void>;
}

export interface PublisherOptions<T> {
  readonly topic: string;
  /** The producer, or a function that creates it on first use. */
  readonly producer: EventProducer | (() => Promise<EventProducer>);
  readonly encode: (value: T) => Promise<Buffer> | Buffer;
  readonly key: (value: T) => string;
  /** Runs once, before the first send (e.g. ensure the topic exists, register the schema). */
  readonly prepare?: () => Promise<void>;
}

export function createPublisher<T>(options: PublisherOptions<T>): Publisher<T> {
  let prepared: Promise<void> | undefined;
  const prepare = () => {
    prepared ??= (options.prepare?.() ?? Promise.resolve()).catch((error: unknown) => {
      prepared = undefined; // a failed preparation (registry down) is retried on the next call
      throw error;
    });
    return prepared;
  };
  const producer =
    typeof options.producer === 'function' ? options.producer : async () => options.producer as EventProducer;
  return {
    topic: options.topic,
    prepare,
    async publish(values) {
      if (values.length === 0) return;
      await prepare();
      const messages: OutboundMessage[] = [];
      for (const value of values) messages.push({ key: options.key(value), value: await options.encode(value) });
      await (await producer()).send(options.topic, messages);
    },
  };
}
