import { createHash } from 'node:crypto';

/** What a fingerprint reads of a fetched record (kafkajs' message shape). */
export interface FingerprintedRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly timestamp: string;
}

/**
 * Identifies a record by its timestamp, key and value (lengths included, so no two splits of the
 * same bytes agree; null apart from empty). The record at an offset with the same fingerprint as
 * the one processed there is that record, or one with the same content: the consumer loop's test
 * of whether a follower's log restarted under it (see `startConsumer`, ephemeral), and what names
 * a log epoch of the skew-monitor (the record the epoch began with).
 */
export function recordFingerprint(record: FingerprintedRecord): string {
  const hash = createHash('sha256');
  hash.update(`${record.timestamp}\u0000`);
  for (const part of [record.key, record.value]) {
    hash.update(part === null ? 'n' : `${part.length}:`);
    if (part !== null) hash.update(part);
  }
  return hash.digest('base64');
}
