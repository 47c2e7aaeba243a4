import { randomUUID } from 'node:crypto';
import { type RegistryConfig, SchemaRegistryCodec, type TopicCodec } from '@driftline/codec';
import { DriftlineError, type Logger, silentLogger } from '@driftline/core';
import {
  createKafkaClient,
  createProducer,
  type EventProducer,
  type KafkaClient,
  type KafkaConfig,
  type OutboundMessage,
} from '@driftline/kafka';
import { type Contract, contracts, type FeatureEvent, type LabelEvent, type PredictionEvent } from '@driftline/schemas';

/** A feature event as producers write it: the event id and time default to a UUID and now. */
export type FeatureEventInput = Omit<FeatureEvent, 'event_id' | 'event_time'> &
  Partial<Pick<FeatureEvent, 'event_id' | 'event_time'>>;
export type PredictionEventInput = Omit<PredictionEvent, 'event_time' | 'predicted_class'> &
  Partial<Pick<PredictionEvent, 'event_time' | 'predicted_class'>>;
export type LabelEventInput = Omit<LabelEvent, 'event_time'> & Partial<Pick<LabelEvent, 'event_time'>>;

/**
 * Where the SDK connects: the same Kafka settings the services read (brokers, client id, TLS, SASL;
 * see `connectionFromEnv`), or an existing client of @driftline/kafka to share.
 */
export type KafkaConnection =
  | { readonly kafka: KafkaConfig; readonly client?: never }
  | { readonly client: KafkaClient; readonly kafka?: never };

export type DriftlineProducerOptions = KafkaConnection & {
  /** Schema Registry (Confluent-compatible API; Apicurio: `.../apis/ccompat/v7`), as the services configure it. */
  readonly registry: RegistryConfig;
  /** Prepended to the contract topics (`features.v1` → `<prefix>features.v1`). */
  readonly topicPrefix?: string;
  /** Messages per Kafka request (default 1,000). */
  readonly batchSize?: number;
  /** How long a partial batch waits for company before it is sent (default 5 ms). */
  readonly lingerMs?: number;
  /** Messages buffered or in flight before publish calls wait (backpressure; default 20,000). */
  readonly maxBuffered?: number;
  readonly logger?: Logger;
};

export interface DriftlineProducer {
  /**
   * Validates, encodes and buffers events. Resolves once they are buffered (it waits while the
   * buffer is full); a VALIDATION_FAILED DriftlineError naming the field is thrown before anything
   * of the call is buffered. `flush()` tells when they are in Kafka.
   */
  publishFeatures(events: FeatureEventInput | readonly FeatureEventInput[]): Promise<void>;
  publishPrediction(events: PredictionEventInput | readonly PredictionEventInput[]): Promise<void>;
  publishLabel(events: LabelEventInput | readonly LabelEventInput[]): Promise<void>;
  /** Resolves when everything published before the call is acknowledged by Kafka (acks=all). */
  flush(): Promise<void>;
  /** Flushes, then disconnects. */
  close(): Promise<void>;
  /** Messages buffered or in flight. */
  readonly pending: number;
}

interface Pending {
  readonly topic: string;
  readonly message: OutboundMessage;
}

/**
 * The producer SDK: typed publish calls per contract, Avro over the Schema Registry (validated
 * before anything is sent), keys per contract (features by entity id, predictions and labels by
 * prediction id), batching with a bounded buffer, an idempotent acks=all producer underneath.
 * A failed send keeps its messages buffered and fails `flush()`; the next flush retries them.
 */
export async function createDriftlineProducer(options: DriftlineProducerOptions): Promise<DriftlineProducer> {
  const logger = options.logger ?? silentLogger;
  const client = options.client ?? (options.kafka === undefined ? undefined : createKafkaClient(options.kafka, logger));
  if (client === undefined || client.brokers.length === 0) {
    throw new DriftlineError(
      'CONFIG_INVALID',
      'createDriftlineProducer needs `kafka` (a KafkaConfig with brokers) or `client`',
    );
  }
  const codec = new SchemaRegistryCodec(options.registry);
  const prefix = options.topicPrefix ?? '';
  const batchSize = options.batchSize ?? 1_000;
  const lingerMs = options.lingerMs ?? 5;
  const maxBuffered = Math.max(options.maxBuffered ?? 20_000, batchSize);
  const producer: EventProducer = await createProducer(client);

  const topicCodecs = new Map<string, TopicCodec<unknown>>();
  const codecFor = <T>(contract: Contract<T>): TopicCodec<T> => {
    const topic = `${prefix}${contract.defaultTopic}`;
    let c = topicCodecs.get(topic);
    if (c === undefined) {
      c = codec.forTopic(contract, topic) as TopicCodec<unknown>;
      topicCodecs.set(topic, c);
    }
    return c as TopicCodec<T>;
  };

  let queue: Pending[] = [];
  let inFlight = 0;
  let sending: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let lastError: unknown;
  let closed = false;
  const spaceWaiters: Array<() => void> = [];

  const buffered = () => queue.length + inFlight;
  const wakeWriters = () => {
    while (spaceWaiters.length > 0 && buffered() < maxBuffered) spaceWaiters.shift()!();
  };

  /** Sends everything queued now, in order, one Kafka request per topic run of up to batchSize. */
  async function sendQueued(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, batchSize);
      const topic = batch[0]!.topic;
      let n = 1;
      while (n < batch.length && batch[n]!.topic === topic) n++;
      const taken = queue.splice(0, n);
      inFlight += n;
      try {
        await producer.send(
          topic,
          taken.map((p) => p.message),
        );
      } catch (error) {
        queue = [...taken, ...queue]; // keep order; a later flush retries
        lastError = error;
        throw error;
      } finally {
        inFlight -= n;
        wakeWriters();
      }
    }
  }

  function drain(): Promise<void> {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    sending ??= sendQueued().finally(() => {
      sending = undefined;
    });
    return sending;
  }

  /** Sends in the background; a failure keeps the messages and retries after a pause. */
  function background(): void {
    drain().catch((error: unknown) => {
      logger.warn({ err: (error as Error).message }, 'driftline SDK: send failed; retrying');
      if (!closed) setTimeout(schedule, 500).unref();
    });
  }

  function schedule(): void {
    if (queue.length >= batchSize) {
      background();
      return;
    }
    timer ??= setTimeout(() => {
      timer = undefined;
      background();
    }, lingerMs);
  }

  async function publish<T>(contract: Contract<T>, values: readonly T[]): Promise<void> {
    if (closed) throw new DriftlineError('INTERNAL', 'driftline producer is closed');
    const c = codecFor(contract);
    // Encode (which validates) the whole call first: an invalid event means nothing is buffered.
    const messages: Pending[] = [];
    for (const [i, value] of values.entries()) {
      let encoded: Buffer;
      try {
        encoded = await c.encode(value);
      } catch (error) {
        if (error instanceof DriftlineError && error.code === 'VALIDATION_FAILED' && values.length > 1) {
          throw new DriftlineError('VALIDATION_FAILED', `event [${i}]: ${error.message}`, {
            cause: error,
            details: error.details,
          });
        }
        throw error;
      }
      messages.push({ topic: c.topic, message: { key: contract.key(value), value: encoded } });
    }
    for (const m of messages) {
      while (buffered() >= maxBuffered) {
        schedule();
        await new Promise<void>((resolve) => spaceWaiters.push(resolve));
      }
      queue.push(m);
    }
    schedule();
  }

  const list = <T>(v: T | readonly T[]): readonly T[] => (Array.isArray(v) ? (v as readonly T[]) : [v as T]);

  const api: DriftlineProducer = {
    publishFeatures: (events) =>
      publish(
        contracts.feature,
        list(events).map((e) => ({
          ...e,
          event_id: e.event_id ?? randomUUID(),
          event_time: e.event_time ?? Date.now(),
        })),
      ),
    publishPrediction: (events) =>
      publish(
        contracts.prediction,
        list(events).map((e) => ({
          ...e,
          event_time: e.event_time ?? Date.now(),
          predicted_class: e.predicted_class ?? null,
        })),
      ),
    publishLabel: (events) =>
      publish(
        contracts.label,
        list(events).map((e) => ({ ...e, event_time: e.event_time ?? Date.now() })),
      ),
    async flush() {
      lastError = undefined;
      while (buffered() > 0) {
        if (sending !== undefined) await sending.catch(() => {});
        if (lastError !== undefined) break;
        if (queue.length > 0) await drain().catch(() => {});
        if (lastError !== undefined) break;
      }
      if (lastError !== undefined) {
        const error = lastError;
        throw new DriftlineError(
          'SINK_UNAVAILABLE',
          `driftline SDK: ${buffered()} messages not delivered: ${(error as Error).message}`,
          { cause: error, retriable: true },
        );
      }
    },
    async close() {
      if (closed) return;
      await api.flush();
      closed = true;
      await producer.disconnect();
    },
    get pending() {
      return buffered();
    },
  };
  return api;
}
