import { type ErrorCode, setOwn } from '@driftline/core';

/** A record as the consumer loop hands it to a processor: bytes as they came, nothing decoded. */
export interface InboundRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** A header given more than once holds its values in order. */
  readonly headers: Readonly<Record<string, HeaderValue | undefined>>;
  /** Kafka timestamp (arrival), epoch ms. Event time lives inside the value. */
  readonly timestamp: number;
}

/**
 * A header's bytes, or null (Kafka's null header value, which Java producers can send); a header
 * repeated in one record keeps each value, in order.
 */
export type HeaderValue = Buffer | null | readonly (Buffer | null)[];

// null stays null: String(null) had made it the 4 bytes "null" on its way to processors and the DLQ.
const asBuffer = (value: unknown): Buffer | null =>
  value === null ? null : Buffer.isBuffer(value) ? value : Buffer.from(String(value));

/**
 * Header values as the client hands them over (string, bytes or repeated), as bytes: the bytes
 * unchanged and a repeated header as its list (it was joined with commas, and non-UTF-8 bytes
 * rewritten, on its way to a dead letter). A header named `__proto__` stays an own header.
 */
export function toBufferHeaders(
  raw: Readonly<Record<string, unknown>> | undefined,
): Record<string, HeaderValue | undefined> {
  const headers: Record<string, HeaderValue | undefined> = {};
  for (const [name, value] of Object.entries(raw ?? {})) {
    const bytes = value === undefined ? undefined : Array.isArray(value) ? value.map(asBuffer) : asBuffer(value);
    setOwn(headers, name, bytes);
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
  readonly headers?: Readonly<Record<string, Buffer | string | null | readonly (Buffer | null)[]>>;
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
  /** Present only when the record was too large for the DLQ: the original value's size in bytes. */
  truncated: 'driftline.dlq.truncated',
  /** With `truncated`, when the key had to be cut too: the original key's size in bytes. */
  truncatedKey: 'driftline.dlq.truncated.key',
  /** With `truncated`, when the original headers had to be dropped: how many there were. */
  droppedHeaders: 'driftline.dlq.truncated.headers',
} as const;

/** Default cap of the `driftline.dlq.reason` header, in UTF-8 bytes. */
export const DEFAULT_MAX_REASON_BYTES = 1_024;

// Upper bounds of Kafka's record format v2 framing: a record's varints (length, timestamp and
// offset deltas, key and value lengths, header count) and each header's two length varints.
const RECORD_OVERHEAD = 36;
const HEADER_OVERHEAD = 10;
/** Size of a record batch header (format v2): 61 bytes, rounded up. */
export const BATCH_OVERHEAD = 64;

function byteLength(value: Buffer | string | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'string' ? Buffer.byteLength(value) : value.length;
}

function headersSize(headers: NonNullable<OutboundMessage['headers']>): number {
  let size = 0;
  for (const [name, value] of Object.entries(headers)) {
    for (const one of Array.isArray(value) ? value : [value])
      size += HEADER_OVERHEAD + byteLength(name) + byteLength(one);
  }
  return size;
}

/** An upper bound of a message's size inside a record batch (uncompressed), in bytes. */
export function messageSize(message: OutboundMessage): number {
  return (
    RECORD_OVERHEAD +
    byteLength(message.key) +
    byteLength(message.value) +
    (message.headers === undefined ? 0 : headersSize(message.headers))
  );
}

/** Cuts bytes at a UTF-8 character boundary at or before `maxBytes`. */
function utf8Prefix(bytes: Buffer, maxBytes: number): string {
  let end = Math.max(0, Math.min(maxBytes, bytes.length));
  while (end > 0 && end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/**
 * Caps a text at `maxBytes` UTF-8 bytes (never splitting a character); a capped text ends with
 * `…(truncated, N bytes)` naming the original size.
 */
export function capText(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  const suffix = `…(truncated, ${bytes.length} bytes)`;
  return utf8Prefix(bytes, maxBytes - Buffer.byteLength(suffix)) + suffix;
}

export interface DeadLetterBounds {
  /** Largest dead-letter record, in bytes (framing included); a larger record is truncated. */
  readonly maxRecordBytes: number;
  /** Cap of the reason header, in UTF-8 bytes. */
  readonly maxReasonBytes: number;
}

const unbounded: DeadLetterBounds = {
  maxRecordBytes: Number.MAX_SAFE_INTEGER,
  maxReasonBytes: DEFAULT_MAX_REASON_BYTES,
};

/** The names of driftline's dead-letter headers (DLQ_HEADERS) all begin with this. */
const DLQ_HEADER_PREFIX = 'driftline.dlq.';

/**
 * Builds the dead-letter message for a record: original bytes plus the reason in headers. The
 * record's headers are kept but for those named `driftline.dlq.*` (left out: read as the letter's own).
 * A record larger than `maxRecordBytes` is truncated so it still fits in the DLQ: its value is
 * cut to its first bytes and `driftline.dlq.truncated` holds the original value size; when the
 * key and headers alone do not fit either, the original headers are dropped and the key is cut
 * (`driftline.dlq.truncated.headers`, `.key`). The driftline headers are always kept.
 */
export function deadLetterMessage(
  letter: DeadLetter,
  group: string,
  now: number,
  bounds: DeadLetterBounds = unbounded,
): OutboundMessage {
  const { record } = letter;
  const own: Record<string, string> = {
    [DLQ_HEADERS.reason]: capText(letter.reason, bounds.maxReasonBytes),
    [DLQ_HEADERS.code]: letter.code,
    [DLQ_HEADERS.topic]: record.topic,
    [DLQ_HEADERS.partition]: String(record.partition),
    [DLQ_HEADERS.offset]: record.offset,
    [DLQ_HEADERS.group]: group,
    [DLQ_HEADERS.failedAt]: new Date(now).toISOString(),
  };
  const original: Record<string, HeaderValue> = {};
  for (const [name, value] of Object.entries(record.headers)) {
    // A record's own `driftline.dlq.*` headers (a record read from a DLQ, or a producer's) are left
    // out: the letter's readers took them for its own (a `driftline.dlq.truncated` one had the
    // replay skip a whole record as truncated). A replay leaves them out anyway.
    if (value !== undefined && !name.startsWith(DLQ_HEADER_PREFIX)) setOwn(original, name, value);
  }
  const whole: OutboundMessage = { key: record.key, value: record.value, headers: { ...original, ...own } };
  if (messageSize(whole) <= bounds.maxRecordBytes) return whole;

  const valueBytes = byteLength(record.value);
  // Room for the flag headers this truncation adds (names and decimal sizes).
  const flags = 3 * (HEADER_OVERHEAD + 40);
  const withoutValue = messageSize({ ...whole, value: null }) + flags;
  if (withoutValue <= bounds.maxRecordBytes) {
    return {
      key: record.key,
      value: record.value === null ? null : record.value.subarray(0, bounds.maxRecordBytes - withoutValue),
      headers: { ...original, ...own, [DLQ_HEADERS.truncated]: String(valueBytes) },
    };
  }
  // The key and headers alone are too large: keep only driftline's headers, cut the key, then the value.
  const headers: Record<string, string> = { ...own, [DLQ_HEADERS.truncated]: String(valueBytes) };
  const droppedHeaders = Object.keys(original).length;
  if (droppedHeaders > 0) headers[DLQ_HEADERS.droppedHeaders] = String(droppedHeaders);
  const keyBytes = byteLength(record.key);
  let room = Math.max(0, bounds.maxRecordBytes - RECORD_OVERHEAD - headersSize(headers) - flags);
  let key = record.key;
  if (key !== null && keyBytes > room) {
    key = key.subarray(0, room);
    headers[DLQ_HEADERS.truncatedKey] = String(keyBytes);
  }
  room -= byteLength(key);
  return { key, value: record.value === null ? null : record.value.subarray(0, room), headers };
}

/**
 * Splits items of the given sizes into consecutive runs of at most `maxCount` items and
 * `maxBytes` bytes (an item larger than `maxBytes` alone is a run of its own). Returns [start, end).
 */
export function boundedRuns(
  sizes: readonly number[],
  maxCount: number,
  maxBytes: number,
): Array<readonly [number, number]> {
  const runs: Array<readonly [number, number]> = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < sizes.length; i++) {
    const size = sizes[i]!;
    if (i > start && (i - start >= maxCount || bytes + size > maxBytes)) {
      runs.push([start, i]);
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (sizes.length > start) runs.push([start, sizes.length]);
  return runs;
}
