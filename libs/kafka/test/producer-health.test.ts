import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { producerStateLost } from '../src/producer.js';
import { isBrokerUnreachable, ProducerHealth, producerRetries } from '../src/producer-health.js';

const policy = { replaceAfterMs: 30_000, sendDeadlineMs: 120_000 };

describe('producer health: when a fresh producer replaces the failing one', () => {
  it('never while sends succeed, or fail for less than replaceAfterMs', () => {
    const h = new ProducerHealth(policy);
    expect(h.shouldReplace(0)).toBe('keep');
    h.failed(1_000);
    h.failed(20_000);
    expect(h.shouldReplace(30_999)).toBe('keep');
    h.succeeded();
    h.failed(40_000);
    expect(h.shouldReplace(69_999)).toBe('keep'); // the run restarted at 40 s
  });

  it('once failures have lasted replaceAfterMs, then at most once per replaceAfterMs', () => {
    const h = new ProducerHealth(policy);
    h.failed(1_000);
    expect(h.shouldReplace(31_000)).toBe('replace');
    expect(h.shouldReplace(31_001)).toBe('keep');
    h.failed(45_000);
    expect(h.shouldReplace(60_999)).toBe('keep');
    expect(h.shouldReplace(61_000)).toBe('replace');
    h.succeeded();
    expect(h.shouldReplace(200_000)).toBe('keep');
  });

  it('only if a broker is reachable when the last failure was a broker that could not be reached', () => {
    const h = new ProducerHealth(policy);
    h.failed(1_000, false);
    h.failed(20_000, true); // the broker went down during the run
    expect(h.shouldReplace(31_000)).toBe('replace-if-reachable');
    h.failed(40_000, false); // it answers again, and still refuses the sends
    expect(h.shouldReplace(61_000)).toBe('replace');
  });

  it('at once after a send that went unanswered past its deadline', () => {
    const h = new ProducerHealth(policy);
    h.timedOut(5_000);
    expect(h.shouldReplace(5_000)).toBe('replace');
    expect(h.shouldReplace(5_001)).toBe('keep');
  });

  it('at once when the broker refuses the idempotent producer id or sequence (not after 30 s of the same refusal)', () => {
    const outOfOrder = new KafkaJSProtocolError({
      type: 'OUT_OF_ORDER_SEQUENCE_NUMBER',
      code: 45,
      retriable: false,
      message: 'The broker received an out of order sequence number',
    } as never);
    const wrapped = new KafkaJSNumberOfRetriesExceeded(outOfOrder, { retryCount: 0, retryTime: 100 });
    expect(producerStateLost(wrapped)).toBe(true);
    expect(producerStateLost(new KafkaJSProtocolError({ type: 'UNKNOWN_PRODUCER_ID', code: 59 } as never))).toBe(true);
    expect(producerStateLost(new KafkaJSProtocolError('There is no leader for this topic-partition'))).toBe(false);
    const h = new ProducerHealth(policy);
    h.stateLost(1_000);
    expect(h.shouldReplace(1_001)).toBe('replace');
  });
});

describe('isBrokerUnreachable', () => {
  it('is true for connection errors, also when kafkajs wraps them after its retries', () => {
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    expect(isBrokerUnreachable(refused)).toBe(true);
    expect(isBrokerUnreachable(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 3_000 }))).toBe(
      true,
    );
  });

  it('is false for answers of a broker, timeouts and anything else', () => {
    const protocol = new KafkaJSProtocolError('There is no leader for this topic-partition');
    expect(isBrokerUnreachable(new KafkaJSNumberOfRetriesExceeded(protocol, { retryCount: 5, retryTime: 3_000 }))).toBe(
      false,
    );
    expect(isBrokerUnreachable(new Error('ECONNREFUSED'))).toBe(false);
    expect(isBrokerUnreachable(undefined)).toBe(false);
  });
});

describe('producerRetries', () => {
  it("fits kafkajs's doubling retries from 100 ms, with its +20 % jitter, in half the send deadline", () => {
    for (const deadline of [1_000, 2_000, 10_000, 60_000, 120_000]) {
      const n = producerRetries(deadline);
      const worst = (k: number) => 100 * (2 ** k - 1) * 1.2;
      expect(worst(n)).toBeLessThanOrEqual(deadline / 2);
      expect(worst(n + 1)).toBeGreaterThan(deadline / 2);
    }
    expect(producerRetries(10_000)).toBe(5);
  });
});
