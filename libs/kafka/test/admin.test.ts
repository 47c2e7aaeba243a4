import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { isTransient } from '../src/admin.js';

describe('isTransient (admin calls)', () => {
  it('a broker that refuses connections is an outage, not a configuration error (found by make chaos)', () => {
    // kafkajs gives up connecting with KafkaJSNumberOfRetriesExceeded (not retriable itself) around
    // the connection error: a service started during a broker restart exited 78 "configuration error".
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    expect(isTransient(refused)).toBe(true);
    expect(isTransient(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 3_000 }))).toBe(true);
  });

  it('a TypeError from inside kafkajs during a broker restart is an outage too (found by make chaos)', () => {
    const tripped = new TypeError("Cannot read properties of null (reading 'topicMetadata')");
    expect(isTransient(tripped)).toBe(true);
    expect(isTransient(new KafkaJSNumberOfRetriesExceeded(tripped, { retryCount: 5, retryTime: 3_000 }))).toBe(true);
    expect(isTransient(new Error('INVALID_REPLICATION_FACTOR'))).toBe(false);
  });

  it('a refusal by the broker stays permanent', () => {
    const denied = new KafkaJSProtocolError({
      message: 'denied',
      type: 'TOPIC_AUTHORIZATION_FAILED',
      code: 29,
      retriable: false,
    } as never);
    expect(isTransient(denied)).toBe(false);
    expect(isTransient(new KafkaJSNumberOfRetriesExceeded(denied, { retryCount: 5, retryTime: 3_000 }))).toBe(false);
  });
});
