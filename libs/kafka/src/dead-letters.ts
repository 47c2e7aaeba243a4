import { DriftlineError, type ErrorCode } from '@driftline/core';
import { type EventProducer, isTooLarge, refusalOf } from './producer.js';
import {
  BATCH_OVERHEAD,
  boundedRuns,
  DEFAULT_MAX_REASON_BYTES,
  type DeadLetter,
  type DeadLetterBounds,
  deadLetterMessage,
  messageSize,
  type OutboundMessage,
} from './records.js';

/** Bounds of the dead-letter path (`DRIFTLINE_KAFKA_DLQ_MAX_BATCH_BYTES`, `_MAX_BATCH_RECORDS`). */
export interface DeadLetterLimits {
  /**
   * Bytes of one dead-letter produce request, and so the largest dead letter: a larger record
   * lands in the DLQ truncated. Well under the broker's default `message.max.bytes` (1 MiB).
   */
  readonly maxBatchBytes: number;
  /** Records of one dead-letter produce request. */
  readonly maxBatchRecords: number;
  /** Cap of the `driftline.dlq.reason` header, in UTF-8 bytes. */
  readonly maxReasonBytes: number;
}

export const defaultDeadLetterLimits: DeadLetterLimits = {
  maxBatchBytes: 512 * 1024,
  maxBatchRecords: 1_000,
  maxReasonBytes: DEFAULT_MAX_REASON_BYTES,
};

/** The smallest record budget tried when the DLQ topic refuses even a truncated dead letter. */
const MIN_RECORD_BYTES = 4 * 1024;

/**
 * Sends dead letters in bounded produce requests. A request the broker refuses as too large
 * (`MESSAGE_TOO_LARGE`, `RECORD_LIST_TOO_LARGE`: never retried as such) is split in halves; a
 * single dead letter still refused is rebuilt with a smaller budget (truncated further) down to
 * 4 KiB. A DLQ that refuses the letters otherwise (INVALID_RECORD from a compacted DLQ and a
 * letter without a key) is a retriable SINK_UNAVAILABLE naming the refusal: the letters are held,
 * never dropped. Any other failure (the DLQ is unavailable) is rethrown: the caller retries the batch and
 * commits nothing. Resolves once every dead letter is acknowledged.
 */
export async function sendDeadLetters(
  letters: readonly DeadLetter[],
  build: (letter: DeadLetter, bounds: DeadLetterBounds) => OutboundMessage,
  send: (messages: readonly OutboundMessage[]) => Promise<void>,
  limits: DeadLetterLimits,
): Promise<void> {
  const maxRecordBytes = Math.max(MIN_RECORD_BYTES, limits.maxBatchBytes - BATCH_OVERHEAD);
  const bounds = (maxRecordBytes: number): DeadLetterBounds => ({
    maxRecordBytes,
    maxReasonBytes: limits.maxReasonBytes,
  });
  const messages = letters.map((letter) => build(letter, bounds(maxRecordBytes)));
  const runs = boundedRuns(messages.map(messageSize), limits.maxBatchRecords, limits.maxBatchBytes - BATCH_OVERHEAD);

  async function deliver(from: number, to: number, budget: number, batch: readonly OutboundMessage[]): Promise<void> {
    try {
      await send(batch);
    } catch (error) {
      if (!isTooLarge(error)) {
        const refusal = refusalOf(error);
        // A DLQ that refuses the letters (a compacted one refuses a letter without a key as
        // INVALID_RECORD) holds them: never dropped, retried until its config is fixed. It was
        // reported as an outage of the DLQ, the cause nowhere in the line.
        if (refusal !== undefined && error instanceof DriftlineError && !error.retriable)
          throw new DriftlineError(
            'SINK_UNAVAILABLE',
            `the dead-letter topic refuses: ${refusal} (check its config): ${error.message}`,
            {
              cause: error,
              retriable: true,
              details: { kafkaError: refusal },
            },
          );
        throw error;
      }
      if (to - from > 1) {
        const middle = from + Math.ceil((to - from) / 2);
        await deliver(from, middle, budget, batch.slice(0, middle - from));
        await deliver(middle, to, budget, batch.slice(middle - from));
        return;
      }
      const smaller = Math.floor(Math.min(budget, messageSize(batch[0]!)) / 4);
      if (smaller < MIN_RECORD_BYTES) {
        throw new DriftlineError(
          'SINK_UNAVAILABLE',
          `the dead-letter topic refuses even a ${budget}-byte record (raise its max.message.bytes): ${(error as Error).message}`,
          { cause: error, retriable: true },
        );
      }
      await deliver(from, to, smaller, [build(letters[from]!, bounds(smaller))]);
    }
  }

  for (const [from, to] of runs) await deliver(from, to, maxRecordBytes, messages.slice(from, to));
}

/** A record a producer could not write, as its own code and the producer's error see it. */
export interface UnsentRecord {
  readonly key: string;
  /** The record's bytes as far as they exist (a value that failed to encode: its JSON). */
  readonly value: Buffer;
  readonly code: ErrorCode;
  readonly reason: string;
}

/**
 * Sends records a producer could not write (refused by the broker, or failed to encode) to
 * `<topic>.dlq`, with the same headers as a consumer's dead letters: source partition and offset
 * `-1` (never written), `driftline.dlq.consumer.group` naming who produced them. A failure of the
 * DLQ itself is rethrown (retriable): the caller keeps the records and tries again.
 */
export async function deadLetterUnsent(
  producer: Pick<EventProducer, 'send'>,
  topic: string,
  records: readonly UnsentRecord[],
  producedBy: string,
  limits: DeadLetterLimits = defaultDeadLetterLimits,
): Promise<void> {
  const now = Date.now();
  const letters: DeadLetter[] = records.map((r) => ({
    record: {
      topic,
      partition: -1,
      offset: '-1',
      key: Buffer.from(r.key),
      value: r.value,
      headers: {},
      timestamp: now,
    },
    code: r.code,
    reason: r.reason,
  }));
  await sendDeadLetters(
    letters,
    (letter, bounds) => deadLetterMessage(letter, producedBy, now, bounds),
    (messages) => producer.send(`${topic}.dlq`, messages),
    limits,
  );
}
