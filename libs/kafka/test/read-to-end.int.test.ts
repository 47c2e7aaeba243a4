import { DriftlineError } from '@driftline/core';
import { type BrokerProxy, brokerProxy, kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it, type OnTestFinishedHandler } from 'vitest';
import { createProducer, ensureTopics, readToEnd } from '../src/index.js';

const stack = inject('stack');

/** readToEnd's default bound on Kafka's silence (DEFAULT_READ_ANSWER_TIMEOUT_MS), what the CLI reads with. */
const ANSWER_BOUND_MS = 15_000;
/**
 * The check's step (0.5 s), the leave and group deletion after Kafka stopped answering (1 s), and a
 * loaded machine's slack (measured: 15.0-16.4 s after the broker went silent; before, 90 s).
 */
const AFTER_BOUND_MS = 500 + 1_000 + 8_000;

describe('readToEnd', () => {
  it('reads every record to the end it had at the call, in order per partition', async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('read-end');
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    const producer = await createProducer(kafka);
    await producer.send(
      topic,
      Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`), partition: i % 2 })),
    );
    await producer.disconnect();
    const seen: string[] = [];
    const { unreached } = await readToEnd(kafka, topic, async (records) => {
      for (const r of records) seen.push(`${r.partition}:${r.value?.toString()}`);
    });
    expect(unreached).toEqual([]);
    expect(seen.filter((s) => s.startsWith('0:'))).toEqual(['0:v0', '0:v2', '0:v4', '0:v6', '0:v8']);
    expect(seen).toHaveLength(10);
  });
});

// Connections through a proxy in front of the shared broker (the stack itself is never touched).
// 50 records of 100 KB: kafkajs fetches 1 MiB per partition, so the first batch holds 10 and the
// others need fetches of their own — a broker going away there is in the middle of the read.
describe.concurrent('readToEnd through a broker that stops answering', () => {
  /** `onTestFinished` of the test's own context: the tests run at once, each closes its own proxy. */
  type Finally = (fn: OnTestFinishedHandler) => void;

  async function fiftyRecords(onTestFinished: Finally): Promise<{ topic: string; proxy: BrokerProxy }> {
    const topic = uniqueName('read-end-outage');
    const direct = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(direct, [{ topic, partitions: 1 }]);
    const producer = await createProducer(direct);
    try {
      await producer.send(
        topic,
        Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: Buffer.alloc(100_000, i) })),
      );
    } finally {
      await producer.disconnect();
    }
    const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
    onTestFinished(() => proxy.close());
    return { topic, proxy };
  }

  /** Reads through the proxy; `onFirstBatch` runs inside the handler of the first batch. */
  async function readThrough(topic: string, proxy: BrokerProxy, onFirstBatch: () => Promise<void> | void = () => {}) {
    let read = 0;
    const started = Date.now();
    const reading = readToEnd(kafkaFor([proxy.broker]), topic, async (records) => {
      if (read === 0) await onFirstBatch();
      read += records.length;
    });
    // Settles once, never rejects; a guard for a read that neither fails nor ends.
    const outcome = await Promise.race([
      reading.then(
        (value) => ({ kind: 'resolved' as const, unreached: value.unreached }),
        (error: unknown) => ({ kind: 'rejected' as const, error }),
      ),
      new Promise<{ kind: 'hung' }>((resolve) =>
        setTimeout(() => resolve({ kind: 'hung' }), ANSWER_BOUND_MS + AFTER_BOUND_MS + 10_000).unref(),
      ),
    ]);
    return { outcome, read: () => read, elapsedMs: Date.now() - started };
  }

  /** A failure of the read: retriable, typed, naming the topic; the message must match `why`. */
  function expectUnavailable(outcome: Awaited<ReturnType<typeof readThrough>>['outcome'], topic: string, why: RegExp) {
    expect(outcome.kind).toBe('rejected');
    const error = (outcome as { error: unknown }).error;
    expect(error).toBeInstanceOf(DriftlineError);
    expect(error).toMatchObject({ code: 'SOURCE_UNAVAILABLE', retriable: true });
    expect((error as Error).message.startsWith(`reading ${topic}: `)).toBe(true);
    expect((error as Error).message).toMatch(why);
  }

  // Before: resolved with the records read so far (0 or 10 of 50) and the partition "unreached"
  // after 90 s, which `dlq list` printed as the whole DLQ, exit 0.
  const unanswered = (outcome: Awaited<ReturnType<typeof readThrough>>['outcome'], topic: string) =>
    expectUnavailable(
      outcome,
      topic,
      /: no complete answer from Kafka for 15s \(a broker hung or unreachable, or one fetch slower than that\)/,
    );

  it('a broker gone silent ~50 ms into the read fails it within the bound, never a short success', async ({
    onTestFinished,
  }) => {
    const { topic, proxy } = await fiftyRecords(onTestFinished);
    setTimeout(() => proxy.stall(), 50);
    const { outcome, elapsedMs } = await readThrough(topic, proxy);
    unanswered(outcome, topic);
    expect(elapsedMs).toBeLessThan(ANSWER_BOUND_MS + AFTER_BOUND_MS);
  }, 60_000);

  it('a broker gone silent after the first batch fails the read within the bound, naming what was read', async ({
    onTestFinished,
  }) => {
    const { topic, proxy } = await fiftyRecords(onTestFinished);
    let stalledAt = 0;
    const { outcome, read } = await readThrough(topic, proxy, () => {
      proxy.stall();
      stalledAt = Date.now();
    });
    unanswered(outcome, topic);
    expect(read()).toBeGreaterThan(0);
    expect(read()).toBeLessThan(50);
    expect((outcome as { error: Error }).error.message).toContain(`${read()} record(s) read before`);
    expect(Date.now() - stalledAt).toBeLessThan(ANSWER_BOUND_MS + AFTER_BOUND_MS);
  }, 60_000);

  it('a broker refusing connections after the first batch fails the read within the bound', async ({
    onTestFinished,
  }) => {
    const { topic, proxy } = await fiftyRecords(onTestFinished);
    let refusedAt = 0;
    const { outcome, read } = await readThrough(topic, proxy, async () => {
      refusedAt = Date.now();
      await proxy.refuse(); // the answers in flight dropped, then every connection closed and refused
    });
    // kafkajs gives up on the refused connections first (its consumer crashes, about 5 s here) or
    // the bound ends it. Before: "the consumer crashed" after 50 s here, 214 s under the CLI.
    expectUnavailable(
      outcome,
      topic,
      /: (no complete answer from Kafka for 15s|.*ECONNREFUSED).*; \d+ record\(s\) read before, the read is incomplete$/,
    );
    expect(read()).toBeLessThan(50);
    expect(Date.now() - refusedAt).toBeLessThan(ANSWER_BOUND_MS + AFTER_BOUND_MS);
  }, 60_000);

  it('a slow broker that answers again (silent 1.5 s) still delivers every record', async ({ onTestFinished }) => {
    const { topic, proxy } = await fiftyRecords(onTestFinished);
    const { outcome, read } = await readThrough(topic, proxy, () => {
      proxy.stall();
      setTimeout(() => proxy.resume(), 1_500);
    });
    expect(outcome).toEqual({ kind: 'resolved', unreached: [] });
    expect(read()).toBe(50);
  }, 60_000);
});
