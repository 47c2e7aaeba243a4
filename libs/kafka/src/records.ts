import type { ErrorCode } from '@driftline/core';

/** A record as the consumer loop hands it to a processor: bytes as they came, nothing decoded. */
export interface InboundRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, Buffer | undefined>>;
  /** Kafka timestamp (arrival), epoch ms. Event time lives inside the value. */
  readonly timestamp: number;
}

/** Header values as the client hands them over (string, bytes or repeated), as bytes. */
export function toBufferHeaders(
  raw: Readonly<Record<string, unknown>> | undefined,
): Record<string, Buffer | undefined> {
  const headers: Record<string, Buffer | undefined> = {};
  for (const [name, value] of Object.entries(raw ?? {})) {
    headers[name] = value === undefined ? undefined : Buffer.isBuffer(value) ? value : Buffer.from(String(value));
  }
  return headers;
}

export interface DecodedRecord<T> {
  readonly record: InboundRecord;
  readonly value: T;
}

export interface DeadLetter {
  readonly record: InboundRecord;
  readonly code: ErrorCode;
  readonly reason: string;
}

export interface OutboundMessage {
  readonly key: Buffer | string | null;
  readonly value: Buffer | null;
  readonly headers?: Readonly<Record<string, Buffer | string>>;
  readonly timestamp?: string;
  readonly partition?: number;
}

/** Header names of a dead-lettered record; the original key, value and headers are kept as they were. */
export const DLQ_HEADERS = {
  reason: 'driftline.dlq.reason',
  code: 'driftline.dlq.code',
  topic: 'driftline.dlq.source.topic',
  partition: 'driftline.dlq.source.partition',
  offset: 'driftline.dlq.source.offset',
  group: 'driftline.dlq.consumer.group',
  failedAt: 'driftline.dlq.failed.at',
} as const;

/** Builds the dead-letter message for a record: original bytes plus the reason in headers. */
export function deadLetterMessage(letter: DeadLetter, group: string, now: number): OutboundMessage {
  const { record } = letter;
  const headers: Record<string, Buffer | string> = {};
  for (const [name, value] of Object.entries(record.headers)) if (value !== undefined) headers[name] = value;
  headers[DLQ_HEADERS.reason] = letter.reason;
  headers[DLQ_HEADERS.code] = letter.code;
  headers[DLQ_HEADERS.topic] = record.topic;
  headers[DLQ_HEADERS.partition] = String(record.partition);
  headers[DLQ_HEADERS.offset] = record.offset;
  headers[DLQ_HEADERS.group] = group;
  headers[DLQ_HEADERS.failedAt] = new Date(now).toISOString();
  return { key: record.key, value: record.value, headers };
}
