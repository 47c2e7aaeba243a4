import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it, vi } from 'vitest';
import { producerStateLost } from '../src/producer.js';
import {
  awaitAnswer,
  isBrokerUnreachable,
  ProducerHealth,
  producerRetries,
  producerRetryTiming,
  SendUnanswered,
} from '../src/producer-health.js';

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

  it('after an outage, the same producer once more before a broker accepting connections gets it replaced', () => {
    const h = new ProducerHealth(policy);
    h.failed(1_000, true);
    expect(h.shouldReplace(31_000)).toBe('replace-if-reachable');
    expect(h.brokerAccepts(false)).toBe(false); // still down: kept
    h.failed(32_000, true);
    expect(h.shouldReplace(61_000)).toBe('replace-if-reachable');
    // Kafka just back: before, replaced here, before the old producer's resend (written twice).
    expect(h.brokerAccepts(true)).toBe(false);
    h.succeeded(); // the resend went through (the broker dropped the copy)
    expect(h.shouldReplace(200_000)).toBe('keep');
  });

  it('replaced at once when the kept producer still cannot reach Kafka while a broker accepts connections', () => {
    const h = new ProducerHealth(policy);
    h.failed(1_000, true);
    expect(h.shouldReplace(31_000)).toBe('replace-if-reachable');
    expect(h.brokerAccepts(true)).toBe(false);
    h.failed(31_500, true); // stuck on its own connections
    expect(h.shouldReplace(31_600)).toBe('replace-if-reachable');
    expect(h.brokerAccepts(true)).toBe(true);
    // A broker down again at that check: kept, and the next acceptance is a first one again.
    h.failed(32_000, true);
    expect(h.shouldReplace(62_000)).toBe('replace-if-reachable');
    expect(h.brokerAccepts(false)).toBe(false);
    h.failed(63_000, true);
    expect(h.shouldReplace(63_100)).toBe('keep');
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

describe('producerRetryTiming', () => {
  it('states every timing, and fits two of the cluster retries (a send to a refusing broker) in half the deadline', () => {
    for (const deadline of [2_000, 10_000, 60_000]) {
      const { send, cluster } = producerRetryTiming(deadline);
      // Stated, so NODE_ENV=test (kafkajs: 1.5x, at most 1 s apart) runs what production runs.
      for (const t of [send, cluster]) {
        expect(t).toMatchObject({ initialRetryTime: 100, multiplier: 2, factor: 0.2, maxRetryTime: 30_000 });
      }
      expect(send.retries).toBe(producerRetries(deadline));
      const worst = (k: number) => 100 * (2 ** k - 1) * 1.2;
      expect(2 * worst(cluster.retries)).toBeLessThanOrEqual(deadline / 2);
    }
    // The model server's 10 s: was the client's 8 cluster retries (~25 s) inside every send.
    expect(producerRetryTiming(10_000).cluster.retries).toBe(4); // at most 1.8 s of waits
  });
});

describe('awaitAnswer', () => {
  const DEADLINE = 60;
  const never = () => new Promise<never>(() => {});
  const later = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

  it("is the send's outcome when it settles before the deadline", async () => {
    await expect(awaitAnswer(later(5, 'ok'), DEADLINE, async () => true)).resolves.toBe('ok');
    const refused = new Error('refused');
    await expect(awaitAnswer(Promise.reject(refused), DEADLINE, async () => true)).rejects.toBe(refused);
  });

  it('gives up at the deadline while a broker accepts connections (a hung broker)', async () => {
    // Fake timers: "at the deadline, not a second one later" by the clock, not by a loaded run's wall time.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let error: unknown;
      const outcome = awaitAnswer(never(), DEADLINE, async () => true).catch((e: unknown) => {
        error = e;
      });
      await vi.advanceTimersByTimeAsync(DEADLINE - 1);
      expect(error).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1);
      await outcome;
      expect(error).toBeInstanceOf(SendUnanswered);
      expect((error as SendUnanswered).waitedMs).toBe(DEADLINE);
    } finally {
      vi.useRealTimers();
    }
  });

  it('waits one more deadline while no broker accepts connections: the send is not abandoned to land later', async () => {
    // Before: failed at the deadline, the producer replaced, and the send left running inside it.
    await expect(awaitAnswer(later(DEADLINE * 1.5, 'ok'), DEADLINE, async () => false)).resolves.toBe('ok');
    const refused = new Error('ECONNREFUSED');
    const failsLate = later(DEADLINE * 1.5, undefined).then(() => Promise.reject(refused));
    await expect(awaitAnswer(failsLate, DEADLINE, async () => false)).rejects.toBe(refused);
    const error = await awaitAnswer(never(), DEADLINE, async () => false).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SendUnanswered);
    expect((error as SendUnanswered).waitedMs).toBe(2 * DEADLINE);
  });
});
