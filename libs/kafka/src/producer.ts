import { setTimeout as sleep } from 'node:timers/promises';
import { DriftlineError } from '@driftline/core';
import { counter, type Registry } from '@driftline/observability';
import { CompressionTypes, type Message, type Producer, type RecordMetadata } from 'kafkajs';
import { adminBackoff, partitionCount } from './admin.js';
import { backoffDelay } from './backoff.js';
import { type KafkaClient, kafkajsRetrying } from './client.js';
import { SASL_REFUSED, saslRefusalIn, saslRefusalLine } from './credentials.js';
import { keyHashPartitioner } from './partitioner.js';
import {
  awaitAnswer,
  isBrokerUnreachable,
  ProducerHealth,
  type ProducerHealthPolicy,
  producerRetryTiming,
  SendUnanswered,
} from './producer-health.js';
import { anyBrokerAccepts } from './reachability.js';
import { BATCH_OVERHEAD, boundedRuns, messageSize, type OutboundMessage } from './records.js';

export interface EventProducer {
  /**
   * Sends and resolves once every replica in sync has the messages (acks=all). A broker or
   * network failure is a retriable `SINK_UNAVAILABLE`; messages the broker refuses as they are
   * (`MESSAGE_TOO_LARGE`, `RECORD_LIST_TOO_LARGE`, `INVALID_RECORD`, `INVALID_TIMESTAMP`) are a
   * non-retriable `SINK_REJECTED`; the other REFUSAL_TYPES (rights, the topic's or broker's setup)
   * a retriable `SINK_UNAVAILABLE` naming the refusal (`details.kafkaError`).
   */
  send(topic: string, messages: readonly OutboundMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

/** Default most bytes per produce request: the broker's default `message.max.bytes` (1 MiB). */
export const MAX_SEND_BYTES = 1_048_576;

const TOO_LARGE_TYPES = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/**
 * kafkajs' answers (protocol error types) that refuse a write for good: a try before a fix is
 * refused again. Only these: kafkajs marks many passing states non-retriable too
 * (BROKER_NOT_AVAILABLE, UNKNOWN — an unknown server error —, INVALID_PRODUCER_ID_MAPPING and the
 * idempotent producer's sequence answers, which a fresh producer mends), and CORRUPT_MESSAGE is not
 * here: a CRC mismatch on the way is retriable (kafkajs and the Java client alike). Shared with the
 * CLI (a replay that meets one exits 1, not 69).
 */
export const REFUSAL_TYPES: ReadonlySet<string> = new Set([
  // the rights of this Kafka user
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
  // the record as it is: too large for the topic, or one the topic refuses (a compacted topic's
  // record without a key; a timestamp outside message.timestamp.difference.max.ms)
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'INVALID_TIMESTAMP',
  // a topic no record may be written to
  'INVALID_TOPIC_EXCEPTION',
  // what this broker or topic cannot take from this client, whatever the record: a topic on a
  // pre-0.11 message format refuses the replay's headers; a compression, an acks setting or an API
  // version it does not support (a broker too old for kafkajs)
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  'UNSUPPORTED_COMPRESSION_TYPE',
  'INVALID_REQUIRED_ACKS',
  'UNSUPPORTED_VERSION',
  // a delegation token refused or expired: new credentials, not a retry
  'DELEGATION_TOKEN_AUTHORIZATION_FAILED',
  'DELEGATION_TOKEN_EXPIRED',
]);

/**
 * The refusals of REFUSAL_TYPES that are the records' own (the same records are refused again, other
 * records may pass): a non-retriable SINK_REJECTED, so a consumer dead-letters the input whose output
 * was refused. The others refuse every write of this client or to this topic (rights, credentials, the
 * topic's or broker's setup): retriable, named in the message — the consumer holds its input until
 * they are fixed (an ACL can be) instead of draining the topic into its DLQ.
 */
const RECORD_REFUSAL_TYPES: ReadonlySet<string> = new Set([...TOO_LARGE_TYPES, 'INVALID_RECORD', 'INVALID_TIMESTAMP']);

/** The first kafkajs error type of `types` in an error or its causes. */
function kafkaErrorTypeIn(error: unknown, types: ReadonlySet<string>, depth = 0): string | undefined {
  if (error === null || typeof error !== 'object' || depth > 4) return undefined;
  const e = error as { type?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown };
  if (typeof e.type === 'string' && types.has(e.type)) return e.type;
  for (const inner of [e.cause, e.originalError, ...(Array.isArray(e.errors) ? e.errors : [])]) {
    const found = kafkaErrorTypeIn(inner, types, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Broker answers that the idempotent producer's id or sequence numbers are out of step with the
 * broker (kafkajs marks them non-retriable): every resend through the same producer gets the same
 * answer, so it was retried for the 30 s of `replaceAfterMs` before a fresh producer got through.
 */
const PRODUCER_STATE_TYPES = new Set([
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'DUPLICATE_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
]);

/** True when a send failed because the producer's idempotence state is lost: replace it at once. */
export function producerStateLost(error: unknown): boolean {
  return kafkaErrorTypeIn(error, PRODUCER_STATE_TYPES) !== undefined;
}

/** The broker's refusal (one of REFUSAL_TYPES) a failed send was classified as, if any. */
export function refusalOf(error: unknown): string | undefined {
  if (!(error instanceof DriftlineError)) return undefined;
  const type = (error.details as { kafkaError?: unknown } | undefined)?.kafkaError;
  return typeof type === 'string' && REFUSAL_TYPES.has(type) ? type : undefined;
}

/** True when a send failed because the broker refused the messages as too large (not retriable as they are). */
export function isTooLarge(error: unknown): boolean {
  return (
    error instanceof DriftlineError &&
    !error.retriable &&
    TOO_LARGE_TYPES.has(String((error.details as { kafkaError?: unknown }).kafkaError))
  );
}

/**
 * An idempotent producer (acks=all, broker-side deduplication of retries). Compression is
 * off by default: on loopback and small events it costs more CPU than it saves.
 */
export async function createProducer(
  client: KafkaClient,
  options: {
    registry?: Registry;
    compression?: 'none' | 'gzip';
    health?: ProducerHealthPolicy;
    /** Most bytes per produce request (default MAX_SEND_BYTES); a larger message goes alone. */
    maxSendBytes?: number;
  } = {},
): Promise<EventProducer> {
  // Keys hashed with murmur2 like the Java client (kafkajs's DefaultPartitioner, in integer
  // arithmetic), so keys land on the same partitions whoever produces them (co-partitioning of
  // predictions and labels depends on it).
  const health = new ProducerHealth(options.health);
  const retry = producerRetryTiming(health.policy.sendDeadlineMs);
  // Its own kafkajs instance: the cluster's retries run inside every send, and must fit its deadline.
  const kafkajs = kafkajsRetrying(client, retry.cluster);
  const newProducer = (): Producer =>
    kafkajs.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: keyHashPartitioner,
      retry: retry.send,
    });
  const replaced =
    options.registry === undefined
      ? undefined
      : counter(
          options.registry,
          'driftline_producer_replaced_total',
          'Kafka producers replaced by a fresh one after failing sends or an unanswered send',
          [],
        );
  const replace = (why: string) => {
    const old = producer;
    void old.disconnect().catch(() => {});
    producer = newProducer();
    connected = false;
    replaced?.inc();
    kafkajs.logger().warn(`producer replaced by a fresh one: ${why}`, {});
  };
  /** The send, or a retriable failure (and a replacement at once) when it is left unanswered (awaitAnswer). */
  const withDeadline = async <T>(send: Promise<T>): Promise<T> => {
    try {
      return await awaitAnswer(send, health.policy.sendDeadlineMs, () => anyBrokerAccepts(client.brokers));
    } catch (error) {
      if (!(error instanceof SendUnanswered)) throw error;
      health.timedOut(Date.now());
      throw new DriftlineError('SINK_UNAVAILABLE', `no answer from Kafka within ${error.waitedMs} ms`, {
        retriable: true,
      });
    }
  };
  // The producer sends go through; replaced by a fresh one when it stops recovering (ProducerHealth).
  // Every connect is under the send deadline too: a broker that accepts connections but never
  // answers (paused, half-open) would hold kafkajs's connect for its request timeout per attempt.
  let producer = newProducer();
  try {
    await withDeadline(producer.connect());
  } catch (error) {
    await producer.disconnect().catch(() => {});
    throw error;
  }
  let connected = true;
  const produced =
    options.registry === undefined
      ? undefined
      : counter(options.registry, 'driftline_records_produced_total', 'Records produced, by topic', ['topic']);
  const compression = options.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  const maxSendBytes = options.maxSendBytes ?? MAX_SEND_BYTES;
  return {
    async send(topic, messages) {
      // kafkajs puts everything a send holds for one partition into one record batch, which the
      // broker refuses whole above the topic's max.message.bytes (MESSAGE_TOO_LARGE): one send of
      // many small records, each acceptable, was refused for good. Sent in bounded runs, in order.
      for (const [from, to] of boundedRuns(
        messages.map(messageSize),
        Number.POSITIVE_INFINITY,
        maxSendBytes - BATCH_OVERHEAD,
      )) {
        await sendRun(topic, from === 0 && to === messages.length ? messages : messages.slice(from, to));
      }
    },
    disconnect: () => producer.disconnect(),
  };

  async function sendRun(topic: string, messages: readonly OutboundMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const outgoing: Message[] = messages.map((m) => ({
      key: m.key,
      value: m.value,
      ...(m.headers === undefined ? {} : { headers: clientHeaders(m.headers) }),
      ...(m.timestamp === undefined ? {} : { timestamp: m.timestamp }),
      ...(m.partition === undefined ? {} : { partition: m.partition }),
    }));
    const sendWith = (p: Producer, batch: Message[]) => p.send({ topic, acks: -1, compression, messages: batch });
    try {
      const replacement = health.shouldReplace(Date.now());
      if (replacement === 'replace') replace('sends kept failing with Kafka reachable, or one went unanswered');
      else if (replacement === 'replace-if-reachable' && health.brokerAccepts(await anyBrokerAccepts(client.brokers)))
        replace('sends kept failing to connect while a broker accepts connections');
      if (!connected) {
        await withDeadline(producer.connect());
        connected = true;
      }
      let unsent = unanswered(topic, outgoing, await withDeadline(sendWith(producer, outgoing)));
      // kafkajs silently skips messages for an explicit partition its cached metadata does not have
      // (a topic grown or created a moment ago; the cache lives 5 minutes): send those again through
      // a producer with fresh metadata, a bounded number of times.
      for (let attempt = 0; unsent.length > 0 && attempt < STALE_METADATA_ATTEMPTS; attempt++) {
        if (attempt > 0) await sleep(backoffDelay(adminBackoff, attempt - 1));
        const fresh = newProducer();
        try {
          await withDeadline(fresh.connect());
          unsent = unanswered(topic, unsent, await withDeadline(sendWith(fresh, unsent)));
        } finally {
          await fresh.disconnect().catch(() => {});
        }
      }
      if (unsent.length > 0) {
        // Only now: right after another process grows a topic, a broker's metadata may still
        // show the old count, and a refusal read from it would send good records to a DLQ.
        await refuseMissingPartitions(client, topic, unsent);
        throw new DriftlineError(
          'SINK_UNAVAILABLE',
          `producing to ${topic} failed: partition ${partitionsOf(unsent).join(', ')} not yet in the cluster metadata`,
          { retriable: true, details: { partitions: partitionsOf(unsent) } },
        );
      }
    } catch (error) {
      const classified = classifySendError(topic, error);
      // Only an unavailable Kafka counts against the producer: refused messages are the messages' fault.
      if (producerStateLost(error)) health.stateLost(Date.now());
      else if (classified.retriable) health.failed(Date.now(), isBrokerUnreachable(error));
      throw classified;
    }
    health.succeeded();
    produced?.inc({ topic }, messages.length);
  }
}

const STALE_METADATA_ATTEMPTS = 5;

/** Headers as the client takes them: a repeated header's values as a list of its own (own keys, `__proto__` too). */
function clientHeaders(headers: NonNullable<OutboundMessage['headers']>): NonNullable<Message['headers']> {
  // kafkajs writes a null value as Kafka's null header (its type leaves null out).
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => [
      name,
      value === null || typeof value === 'string' || Buffer.isBuffer(value) ? value : [...value],
    ]),
  ) as NonNullable<Message['headers']>;
}

/**
 * A failed send as a DriftlineError: refused for what the records are (too large, invalid for the
 * topic: not retriable as they are, `details.kafkaError` names the refusal), refused for who sends or
 * where (retriable, the refusal named: a fix of the ACL or the topic lets it through), or Kafka unavailable.
 */
function classifySendError(topic: string, error: unknown): DriftlineError {
  if (error instanceof DriftlineError) return error;
  const message = (error as Error).message;
  const refused = saslRefusalIn(error);
  if (refused !== undefined) {
    // kafkajs' KafkaJSSASLAuthenticationError has no protocol type: it was "producing to … failed",
    // the refusal named nowhere. Every write of this client is refused: held, never dead-lettered.
    return new DriftlineError(
      'SINK_UNAVAILABLE',
      `producing to ${topic} refused: ${saslRefusalLine(refused)}; retried meanwhile: ${message}`,
      { cause: error, retriable: true, details: { kafkaError: SASL_REFUSED } },
    );
  }
  const type = kafkaErrorTypeIn(error, REFUSAL_TYPES);
  if (type !== undefined && RECORD_REFUSAL_TYPES.has(type)) {
    return new DriftlineError('SINK_REJECTED', `producing to ${topic} refused (${type}): ${message}`, {
      cause: error,
      retriable: false,
      details: { kafkaError: type },
    });
  }
  if (type !== undefined) {
    return new DriftlineError(
      'SINK_UNAVAILABLE',
      `producing to ${topic} refused (${type}: fix the client's rights or the topic; retried meanwhile): ${message}`,
      { cause: error, retriable: true, details: { kafkaError: type } },
    );
  }
  return new DriftlineError('SINK_UNAVAILABLE', `producing to ${topic} failed: ${message}`, {
    cause: error,
    retriable: true,
  });
}

/** The messages for explicit partitions the broker did not answer for (never sent by the client). */
function unanswered(topic: string, sent: readonly Message[], answers: readonly RecordMetadata[]): Message[] {
  const answered = new Set(answers.filter((a) => a.topicName === topic).map((a) => a.partition));
  return sent.filter((m) => m.partition !== undefined && !answered.has(m.partition));
}

function partitionsOf(messages: readonly Message[]): number[] {
  return [...new Set(messages.flatMap((m) => (m.partition === undefined ? [] : [m.partition])))].sort((a, b) => a - b);
}

/** A partition beyond the topic's partition count can never be written: a non-retriable SINK_REJECTED. */
async function refuseMissingPartitions(client: KafkaClient, topic: string, unsent: readonly Message[]): Promise<void> {
  const count = await partitionCount(client, topic).catch(() => undefined);
  const beyond = partitionsOf(unsent).filter((p) => count !== undefined && p >= count);
  if (beyond.length > 0) {
    throw new DriftlineError(
      'SINK_REJECTED',
      `producing to ${topic} refused: partition ${beyond.join(', ')} does not exist (the topic has ${count} partitions)`,
      { retriable: false, details: { partitions: beyond } },
    );
  }
}
