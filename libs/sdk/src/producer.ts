import { randomUUID } from 'node:crypto';
import { type RegistryConfig, SchemaRegistryCodec, type TopicCodec } from '@driftline/codec';
import {
  ConfigError,
  DEFAULT_EVENT_TIME_BOUNDS,
  DriftlineError,
  type EventTimeBounds,
  eventTimeProblem,
  type Logger,
  silentLogger,
} from '@driftline/core';
import {
  createKafkaClient,
  createProducer,
  type EventProducer,
  type KafkaClient,
  type KafkaConfig,
  kafkaCredentialsError,
  saslConnectionOf,
} from '@driftline/kafka';
import { type Contract, contracts, type FeatureEvent, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import {
  eventsOf,
  eventTimeTypeProblem,
  featureEventProblem,
  labelEventProblem,
  predictionEventProblem,
} from './checks.js';
import {
  type DefaultSources,
  type FeatureEventInput,
  featuresWithDefaults,
  type LabelEventInput,
  labelsWithDefaults,
  type PredictionEventInput,
  predictionsWithDefaults,
} from './defaults.js';
import type { FullBound } from './lanes.js';
import { checkedTopicPrefix } from './prefix.js';
import { RoomWaiters } from './room.js';
import { type Outgoing, TopicSender } from './sender.js';
import { withUnsent } from './unsent.js';

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
  /**
   * Prepended to the contract topics (`features.v1` → `<prefix>features.v1`): letters, digits, dot,
   * dash, underscore, as the services' DRIFTLINE_TOPIC_PREFIX (which `connectionFromEnv` reads).
   */
  readonly topicPrefix?: string;
  /** Messages per Kafka request (default 1,000). */
  readonly batchSize?: number;
  /** How long a partial batch waits for company before it is sent (default 5 ms). */
  readonly lingerMs?: number;
  /** Messages buffered or in flight before publish calls wait (backpressure; default 20,000). */
  readonly maxBuffered?: number;
  /**
   * Encoded bytes buffered or in flight before publish calls wait (backpressure; default 128 MiB).
   * With Kafka unreachable the buffer fills up to here, not to `maxBuffered` events of up to
   * `maxEventBytes` each (20,000 × 1 MB, an out-of-memory kill that lost everything buffered).
   * An event larger than this is refused by its publish call at once.
   */
  readonly maxBufferedBytes?: number;
  /**
   * How long a publish call waits for room in a full buffer, per event, before it rejects with a
   * retriable SINK_UNAVAILABLE naming the bound that is full (default 60,000 ms, the Kafka
   * send deadline; 0 rejects at once when the buffer is full). Room frees as Kafka acknowledges
   * sends: a full buffer that stays full means Kafka is unreachable or refusing the sends.
   */
  readonly bufferWaitMs?: number;
  /**
   * Largest encoded event accepted (default 1,000,000 bytes, under the broker's default
   * `message.max.bytes` of 1 MiB): a bigger one is refused by the publish call.
   */
  readonly maxEventBytes?: number;
  /**
   * The services' event-time bounds (DRIFTLINE_EVENT_TIME_MAX_FUTURE / _MIN, which
   * `connectionFromEnv` reads; default 1 h ahead, not before 2000): an event outside them is
   * refused by the publish call, as the services would dead-letter it (a µs or ns timestamp, say).
   */
  readonly eventTime?: EventTimeBounds;
  readonly logger?: Logger;
};

export interface DriftlineProducer {
  /**
   * Validates, encodes and buffers events. Resolves once they are buffered (it waits while the
   * buffer is full); a VALIDATION_FAILED DriftlineError naming the field is thrown before anything
   * of the call is buffered. `flush()` tells when they are in Kafka. An event that finds no room
   * within `bufferWaitMs` rejects the call with a retriable SINK_UNAVAILABLE; the call's events
   * before it (`details.buffered` of `details.events`) stay buffered and are delivered.
   *
   * Resolves to the events as the call published them, with the defaults it assigned (`event_id`,
   * `event_time`, `predicted_class`). A call that fails keeps its error's class and carries
   * `details.unsent`: the events with their defaults that the call did not buffer (all of them,
   * but for a SINK_UNAVAILABLE the ones after the first `details.buffered`, which are delivered).
   * Publishing `unsent` again, not the caller's input, is the retry: it repeats nothing already
   * buffered, and keeps the ids and times. Not enumerable, so a logged error carries no events.
   */
  publishFeatures(events: FeatureEventInput | readonly FeatureEventInput[]): Promise<readonly FeatureEvent[]>;
  publishPrediction(
    events: PredictionEventInput | readonly PredictionEventInput[],
  ): Promise<readonly PredictionEvent[]>;
  publishLabel(events: LabelEventInput | readonly LabelEventInput[]): Promise<readonly LabelEvent[]>;
  /**
   * Resolves when everything published before the call is acknowledged by Kafka (acks=all) or
   * dead-lettered; events published meanwhile do not hold it up.
   */
  flush(): Promise<void>;
  /** Refuses new publish calls, waits for those under way, flushes everything, then disconnects. */
  close(): Promise<void>;
  /** Messages buffered or in flight. */
  readonly pending: number;
  /** Encoded bytes of the messages buffered or in flight (bounded by `maxBufferedBytes`). */
  readonly pendingBytes: number;
  /**
   * Events Kafka refused as they are (e.g. a topic's smaller `max.message.bytes`) written to
   * `<topic>.dlq`; those whose dead-letter write is failing are still in `pending`.
   */
  readonly deadLettered: number;
}

/** Most encoded bytes per Kafka request: half the broker's default record-batch limit (1 MiB). */
const MAX_SEND_BYTES = 512 * 1024;

/**
 * How long a publish call waits for room by default: the send deadline of @driftline/kafka's
 * producer (60 s), after which a send unanswered fails too while a broker accepts connections
 * (with none accepting, it may take up to 120 s).
 */
const DEFAULT_BUFFER_WAIT_MS = 60_000;

/** Encoded bytes buffered by default: room for ~130 events of the largest size, a small part of a heap. */
const DEFAULT_MAX_BUFFERED_BYTES = 128 * 1024 * 1024;

/** Pause before a topic whose send failed is tried again in the background. */
const RETRY_AFTER_MS = 500;

/** Who the SDK's dead letters name as their producer (`driftline.dlq.consumer.group`). */
const PRODUCED_BY = 'driftline-sdk';

/** An option that must be a whole number within bounds (or absent: its default). */
function wholeOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * The SDK's Kafka producer, connected; credentials Kafka refuses are a ConfigError naming
 * DRIFTLINE_KAFKA_SASL_* (not retriable); another failure is a retriable SINK_UNAVAILABLE naming the
 * brokers (it was kafkajs' own error, KafkaJSNumberOfRetriesExceeded with no code, while the API
 * promises no kafkajs type).
 */
async function connectProducer(client: KafkaClient): Promise<EventProducer> {
  try {
    return await createProducer(client);
  } catch (error) {
    // Credentials refused: a configuration error naming DRIFTLINE_KAFKA_SASL_* (kafka.sasl), not
    // retriable (it was a retriable SINK_UNAVAILABLE "cannot connect", retried for ever by a caller).
    const refused = kafkaCredentialsError(error, saslConnectionOf(client));
    if (refused !== undefined) throw refused;
    if (error instanceof DriftlineError) throw error;
    throw new DriftlineError(
      'SINK_UNAVAILABLE',
      `driftline SDK: cannot connect to Kafka (${client.brokers.join(', ')}): ${(error as Error).message}`,
      { retriable: true, cause: error, details: { brokers: client.brokers } },
    );
  }
}

/**
 * The producer SDK: typed publish calls per contract, Avro over the Schema Registry (validated
 * before anything is sent), keys per contract (features by entity id, predictions and labels by
 * prediction id), batching with a bounded buffer, an idempotent acks=all producer underneath.
 * Each topic is sent on its own (one request in flight per topic, in order): a send that fails
 * retriably (Kafka unreachable, a topic missing) keeps that topic's messages buffered and fails
 * `flush()` naming the topic; they are retried in the background and by the next flush, and the
 * other topics go on. Events Kafka refuses as they are are isolated by halving the send and go to
 * `<topic>.dlq` with the reason, through a lane of its own (TopicSender): one bad event never holds
 * up the others, nor does a dead-letter topic that is missing or refuses the writes.
 */
export async function createDriftlineProducer(options: DriftlineProducerOptions): Promise<DriftlineProducer> {
  const logger = options.logger ?? silentLogger;
  // Checked first: a bad prefix was accepted, and its sends retried as "invalid topic" for ever.
  const prefix = checkedTopicPrefix('topicPrefix', options.topicPrefix);
  const client = options.client ?? (options.kafka === undefined ? undefined : createKafkaClient(options.kafka, logger));
  if (client === undefined || client.brokers.length === 0) {
    throw new DriftlineError(
      'CONFIG_INVALID',
      'createDriftlineProducer needs `kafka` (a KafkaConfig with brokers) or `client`',
    );
  }
  const codec = new SchemaRegistryCodec(options.registry, { logger });
  const batchSize = wholeOption('batchSize', options.batchSize, 1_000, 1, 100_000);
  const lingerMs = wholeOption('lingerMs', options.lingerMs, 5, 0, 60_000);
  const maxBuffered = Math.max(wholeOption('maxBuffered', options.maxBuffered, 20_000, 1, 10_000_000), batchSize);
  const maxEventBytes = wholeOption('maxEventBytes', options.maxEventBytes, 1_000_000, 1, 64 * 1024 * 1024);
  const maxBufferedBytes = wholeOption(
    'maxBufferedBytes',
    options.maxBufferedBytes,
    DEFAULT_MAX_BUFFERED_BYTES,
    1,
    4 * 1024 * 1024 * 1024,
  );
  const bufferWaitMs = wholeOption('bufferWaitMs', options.bufferWaitMs, DEFAULT_BUFFER_WAIT_MS, 0, 86_400_000);
  const eventTime = options.eventTime ?? DEFAULT_EVENT_TIME_BOUNDS;
  const producer: EventProducer = await connectProducer(client);

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

  /** Set by close(): publish calls are refused from then on. */
  let closing = false;
  let closed = false;
  /** Publish calls between their first check and the moment their messages are queued. */
  let publishing = 0;
  let publishesDone: (() => void) | undefined;
  const roomWaiters = new RoomWaiters();
  const sender: TopicSender = new TopicSender({
    producer,
    producedBy: PRODUCED_BY,
    batchSize,
    maxSendBytes: MAX_SEND_BYTES,
    lingerMs,
    retryAfterMs: RETRY_AFTER_MS,
    // Woken waiters look again with their own size; one that still does not fit waits on.
    onSent: () => roomWaiters.wake(() => lanes.pending < maxBuffered && lanes.pendingBytes < maxBufferedBytes),
    logger,
  });
  const lanes = sender.lanes;

  /** The bound an event of `bytes` for `topic` finds full now, or undefined when it fits. */
  const fullBound = (topic: string, bytes: number): FullBound | undefined =>
    lanes.fullBound(topic, bytes, maxBuffered, maxBufferedBytes);

  /** The problem the services would dead-letter an event for, when the SDK can tell without the views. */
  function problemOf<T>(contract: Contract<T>, value: T, now: number): string | undefined {
    const time = (value as { event_time: unknown }).event_time;
    const timeProblem = eventTimeTypeProblem(time) ?? eventTimeProblem(time, now, eventTime);
    if (timeProblem !== undefined) return timeProblem;
    if (contract === (contracts.feature as Contract<unknown>)) return featureEventProblem(value as FeatureEvent);
    if (contract === (contracts.prediction as Contract<unknown>))
      return predictionEventProblem(value as PredictionEvent);
    if (contract === (contracts.label as Contract<unknown>)) return labelEventProblem(value as LabelEvent);
    return undefined;
  }

  /**
   * Why a publish call gives up waiting for room: the bound that is full, the buffer, what of the
   * call is buffered.
   */
  function noRoom(topic: string, queued: number, events: number, eventBytes: number): DriftlineError {
    const bound = fullBound(topic, eventBytes) ?? 'maxBuffered';
    const cause = bound === 'topicShare' ? lanes.failureOf(topic) : lanes.lastFailure;
    // A topic whose sends were delivered holds its half only while its send in flight is slow.
    const slowMs = bound === 'topicShare' ? lanes.slowFor(topic) : undefined;
    const why =
      cause !== undefined
        ? `; last send failure: ${(cause as Error).message}`
        : slowMs !== undefined
          ? `; its send in flight to ${topic} unanswered for ${slowMs} ms`
          : bound === 'topicShare'
            ? `; no send to ${topic} answered yet`
            : '';
    const part = events > 1 ? ` (${queued} of the call's ${events} events were buffered and will be sent)` : '';
    const held = lanes.held(topic);
    const buffer =
      bound === 'maxBuffered'
        ? `the buffer of ${maxBuffered} messages (maxBuffered)`
        : bound === 'maxBufferedBytes'
          ? `the buffer of ${maxBufferedBytes} bytes (maxBufferedBytes; ${lanes.pendingBytes} held) for an event of ${eventBytes} bytes`
          : `the half of the buffer ${topic} may hold ${slowMs === undefined ? 'until a send to it is delivered' : 'while its send is slow and other topics hold messages'} (${held.messages} of ${maxBuffered} messages, ${held.bytes} of ${maxBufferedBytes} bytes held) for an event of ${eventBytes} bytes`;
    return new DriftlineError(
      'SINK_UNAVAILABLE',
      `driftline SDK: no room in ${buffer} within ${bufferWaitMs} ms (bufferWaitMs): Kafka is not taking the sends${why}${part}`,
      {
        retriable: true,
        ...(cause === undefined ? {} : { cause }),
        details: {
          bound,
          topic,
          maxBuffered,
          maxBufferedBytes,
          bufferWaitMs,
          buffered: queued,
          events,
          ...(slowMs === undefined ? {} : { slowSendMs: slowMs }),
        },
      },
    );
  }

  /**
   * Publishes `values` (their defaults assigned) and returns them; a failure carries those not
   * buffered in `details.unsent`, so the caller retries exactly what was not sent.
   */
  async function publish<T>(contract: Contract<T>, values: readonly T[]): Promise<readonly T[]> {
    const progress = { buffered: 0 };
    try {
      await publishOnce(contract, values, progress);
      return values;
    } catch (error) {
      // Events are buffered in call order, so the unsent ones are those after the buffered ones.
      throw withUnsent(error, values.slice(progress.buffered));
    }
  }

  async function publishOnce<T>(
    contract: Contract<T>,
    values: readonly T[],
    progress: { buffered: number },
  ): Promise<void> {
    if (closing) throw new DriftlineError('INTERNAL', 'driftline producer is closed');
    publishing++;
    try {
      const c = codecFor(contract);
      const now = Date.now();
      const refuse = (i: number, message: string, cause?: DriftlineError): never => {
        const text = values.length > 1 ? `event [${i}]: ${message}` : message;
        throw new DriftlineError(
          'VALIDATION_FAILED',
          text,
          cause === undefined ? {} : { cause, ...(cause.details === undefined ? {} : { details: cause.details }) },
        );
      };
      // Check and encode (which validates) the whole call first: an invalid event means nothing is buffered.
      const messages: Outgoing[] = [];
      for (const [i, value] of values.entries()) {
        let problem: string | undefined;
        try {
          problem = problemOf(contract, value, now);
        } catch {
          // A value of another shape than the type says (untyped JavaScript, parsed JSON): these
          // checks assume the shape, the encoder below checks it and names the field.
          problem = undefined;
        }
        if (problem !== undefined) refuse(i, problem);
        let encoded: Buffer;
        try {
          encoded = await c.encode(value);
        } catch (error) {
          if (error instanceof DriftlineError && error.code === 'VALIDATION_FAILED') refuse(i, error.message, error);
          throw error;
        }
        if (encoded.length > maxEventBytes) {
          refuse(i, `the event is ${encoded.length} bytes encoded, more than maxEventBytes (${maxEventBytes})`);
        }
        if (encoded.length > maxBufferedBytes) {
          // It would wait for room that never comes, even in an empty buffer.
          refuse(
            i,
            `the event is ${encoded.length} bytes encoded, more than the whole buffer of maxBufferedBytes (${maxBufferedBytes})`,
          );
        }
        messages.push({ key: contract.key(value), value: encoded });
      }
      for (const [i, m] of messages.entries()) {
        const bytes = m.value.length;
        // Bounded: with Kafka unreachable no room ever frees, and the call had waited for ever.
        const deadline = Date.now() + bufferWaitMs;
        while (fullBound(c.topic, bytes) !== undefined) {
          lanes.sendNow();
          await roomWaiters.wait(deadline, () => noRoom(c.topic, i, messages.length, bytes));
        }
        lanes.push(c.topic, m);
        progress.buffered++;
      }
    } finally {
      publishing--;
      if (publishing === 0) publishesDone?.();
    }
  }

  const defaults: DefaultSources = { now: Date.now, newId: randomUUID };
  // async: a refusal of the input itself (null, not an object) rejects the call's promise too.
  const api: DriftlineProducer = {
    publishFeatures: async (events) => publish(contracts.feature, featuresWithDefaults(eventsOf(events), defaults)),
    publishPrediction: async (events) =>
      publish(contracts.prediction, predictionsWithDefaults(eventsOf(events), defaults)),
    publishLabel: async (events) => publish(contracts.label, labelsWithDefaults(eventsOf(events), defaults)),
    flush: () => sender.flush(),
    async close() {
      if (closed) return;
      closing = true;
      // A publish call under way (encoding, or waiting for room) still queues its messages.
      while (publishing > 0) {
        const done = new Promise<void>((resolve) => {
          publishesDone = resolve;
        });
        // Sending frees room for calls waiting for it; a send that fails fails the close.
        await Promise.race([done, sender.flush().then(() => done)]);
      }
      await sender.flush();
      closed = true;
      lanes.stop();
      await producer.disconnect();
    },
    get pending() {
      return lanes.pending;
    },
    get pendingBytes() {
      return lanes.pendingBytes;
    },
    get deadLettered() {
      return sender.deadLettered;
    },
  };
  return api;
}
