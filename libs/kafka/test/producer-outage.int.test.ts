// The producer through Kafka outages, on the shared broker: the producer's connections go through
// a proxy (test-support's brokerProxy) that refuses connections (a broker down: killed,
// restarting) or goes silent (a hung broker), so the shared stack itself is never touched.
import { setTimeout as sleep } from 'node:timers/promises';
import { createMetricsRegistry, type Registry } from '@driftline/observability';
import { type BrokerProxy, brokerProxy, uniqueName } from '@driftline/test-support';
import { describe, expect, inject } from 'vitest';
import { createKafkaClient, createProducer, ensureTopics, type KafkaClient, topicOffsets } from '../src/index.js';
import { readTopic } from '../src/testing.js';
import { type Cleanup, it } from './per-test-cleanup.js';
import { type LogLine, recordingLogger } from './recording-logger.js';

const stack = inject('stack');

/**
 * The model server's prediction log sends with a deadline of 10 s (and replaces after 10 s of
 * failures); the same shape, shorter. Below kafkajs's ~4 s of connect retries under NODE_ENV=test,
 * so the old producer failed here too (with production timing it took ~25 s).
 */
const DEADLINE_MS = 3_000;
const BATCH = 20;

/** A line written at info or above, as the test's logger received it. */

async function replacements(registry: Registry): Promise<number> {
  const text = await registry.getSingleMetricAsString('driftline_producer_replaced_total');
  return Number(/^driftline_producer_replaced_total(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1] ?? 0);
}

// The tests run at once: each has a proxy, a client, a topic and a metrics registry of its own.
describe.concurrent('a producer through a Kafka outage (a proxy in front of the shared broker)', () => {
  async function setUp(cleanup: Cleanup): Promise<{
    proxy: BrokerProxy;
    kafka: KafkaClient;
    topic: string;
    lines: string[];
    entries: LogLine[];
  }> {
    const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
    cleanup.push(() => proxy.close());
    const lines: string[] = [];
    const entries: LogLine[] = [];
    const kafka = createKafkaClient(
      { brokers: [proxy.broker], clientId: uniqueName('outage'), ssl: false },
      recordingLogger(lines, entries),
    );
    const topic = uniqueName('outage');
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    return { proxy, kafka, topic, lines, entries };
  }

  /**
   * Sends batches one at a time as the prediction log does: a failed batch is sent again exactly
   * as it was (the same records, nothing added) until it is acknowledged, then the next one.
   */
  function sendLoop(producer: Awaited<ReturnType<typeof createProducer>>, topic: string, retryPauseMs = 100) {
    let next = 0;
    let acknowledged = 0;
    let running = true;
    const failures: Array<{ ms: number; message: string }> = [];
    const done = (async () => {
      let batch: number[] = [];
      while (running || batch.length > 0) {
        if (batch.length === 0) batch = Array.from({ length: BATCH }, () => next++);
        const began = Date.now();
        try {
          await producer.send(
            topic,
            batch.map((i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) })),
          );
          acknowledged += batch.length;
          batch = [];
          await sleep(5);
        } catch (error) {
          failures.push({ ms: Date.now() - began, message: (error as Error).message });
          await sleep(retryPauseMs);
        }
      }
    })();
    return {
      acknowledged: () => acknowledged,
      failures,
      async stop() {
        running = false;
        await done;
      },
    };
  }

  /** Sends through Kafka refusing connections for 1.6 send deadlines: every record once, no producer replaced. */
  async function throughOutage(cleanup: Cleanup, replaceAfterMs: number) {
    const { proxy, kafka, topic, lines } = await setUp(cleanup);
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const producer = await createProducer(kafka, {
      registry,
      health: { replaceAfterMs, sendDeadlineMs: DEADLINE_MS },
    });
    cleanup.push(() => producer.disconnect());
    const load = sendLoop(producer, topic);
    try {
      await sleep(1_000);
      expect(load.failures).toEqual([]);
      // A batch lands unanswered, then Kafka is gone for longer than the send deadline.
      await proxy.refuse();
      await sleep(DEADLINE_MS * 1.6);
      await proxy.restore();
      const after = load.acknowledged();
      for (const until = Date.now() + 60_000; load.acknowledged() < after + 10 * BATCH && Date.now() < until; )
        await sleep(100);
    } finally {
      await load.stop();
    }
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    const keys = (await readTopic(kafka, topic, total, 30_000)).map((r) => r.key?.toString());
    const distinct = new Set(keys).size;
    const context = [
      `failed sends (ms, message): ${JSON.stringify(load.failures.map((f) => [f.ms, f.message.slice(0, 80)]))}`,
      ...lines.filter((l) => l.includes('producer') || l.includes('no answer')).slice(-20),
    ].join('\n');
    expect(load.failures.length, context).toBeGreaterThan(0);
    expect(distinct, context).toBe(load.acknowledged());
    expect(total - distinct, context).toBe(0);
    expect(await replacements(registry), context).toBe(0);
    // Every failed send failed on its own, before its deadline: none was abandoned unanswered.
    expect(Math.max(...load.failures.map((f) => f.ms)), context).toBeLessThan(DEADLINE_MS);
  }

  it('an outage longer than the send deadline writes no record twice and keeps the producer (found by a review)', async ({
    cleanup,
  }) => {
    // The send in flight at the outage outlasted its deadline (kafkajs's connect retries inside
    // it), the producer was replaced, and its batch written again under a new producer id.
    await throughOutage(cleanup, DEADLINE_MS);
  }, 90_000);

  it('sends failing while Kafka is down do not get the producer replaced the moment Kafka is back', async ({
    cleanup,
  }) => {
    // The replacement check due at every attempt: the first attempt after Kafka is back is one. The
    // producer was replaced as soon as a broker accepted connections, before its own resend.
    await throughOutage(cleanup, 200);
  }, 90_000);

  it("kafkajs's failed connections during a refusal are logged at most once per 10 s, again at once after Kafka answered (found by a review)", async ({
    cleanup,
  }) => {
    // The review's shape: the prediction log's 10 s deadline, a failed batch sent again after 50 ms.
    // Each send retries the connect inside it, two kafkajs lines per refused connect: 384 warning
    // lines a minute from one producer, every one passed through.
    const { proxy, kafka, topic, entries } = await setUp(cleanup);
    const producer = await createProducer(kafka, { health: { replaceAfterMs: 10_000, sendDeadlineMs: 10_000 } });
    cleanup.push(() => producer.disconnect());
    const load = sendLoop(producer, topic, 50);
    /** Warning (and error) lines written while `during` runs, and how long it ran. */
    const warningsDuring = async (during: () => Promise<void>) => {
      const from = entries.length;
      const began = Date.now();
      await during();
      return {
        lines: entries.slice(from).filter((e) => e.level === 'warn' || e.level === 'error'),
        ms: Date.now() - began,
      };
    };
    const backAfter = async () => {
      const after = load.acknowledged();
      for (const until = Date.now() + 60_000; load.acknowledged() < after + 10 * BATCH && Date.now() < until; )
        await sleep(100);
      expect(load.acknowledged()).toBeGreaterThanOrEqual(after + 10 * BATCH);
    };
    const refusing = (ms: number) => async () => {
      await proxy.refuse();
      await sleep(ms);
      await proxy.restore();
    };
    try {
      await sleep(1_000);
      const first = await warningsDuring(refusing(20_000));
      await backAfter();
      const second = await warningsDuring(refusing(3_000));
      await backAfter();
      const perMinute = Math.round((first.lines.length * 60_000) / first.ms);
      console.log(
        `[producer-outage] 20 s refusal: ${first.lines.length} warning lines (${perMinute}/min), ${load.failures.length} failed sends`,
      );
      const context = first.lines.map((l) => `${l.msg} ${JSON.stringify(l.obj).slice(0, 120)}`).join('\n');
      expect(load.failures.length, context).toBeGreaterThan(5);
      expect(perMinute, context).toBeLessThan(30);
      // The first connection failure after a broker answered again is written, with nothing left out
      // before it: the outage before it is over (else its left-out lines would be counted here).
      const failure = second.lines.find((l) =>
        /^(?:Connection error|Connection timeout|Failed to connect)/.test(l.msg),
      );
      expect(failure?.obj.linesLeftOut, second.lines.map((l) => l.msg).join('\n')).toBe(0);
    } finally {
      await load.stop();
    }
  }, 120_000);

  /**
   * a0 written, then a1's send fails as `lose` makes it fail; then `after` (each value sent until
   * acknowledged). The log's values, the failed sends, and the producers replaced.
   */
  async function afterFailedSend(cleanup: Cleanup, lose: (proxy: BrokerProxy) => Promise<void>, after: string[]) {
    const { proxy, kafka, topic } = await setUp(cleanup);
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const producer = await createProducer(kafka, {
      registry,
      health: { replaceAfterMs: 60_000, sendDeadlineMs: DEADLINE_MS },
    });
    cleanup.push(() => producer.disconnect());
    const message = (v: string) => ({ key: 'k', value: Buffer.from(v) });
    await producer.send(topic, [message('a0')]);
    const a1 = producer.send(topic, [message('a1')]).then(
      () => 'acknowledged',
      (error: Error) => error.message,
    );
    await lose(proxy);
    expect(await a1).not.toBe('acknowledged');
    await proxy.restore();
    const failures: string[] = [];
    for (const value of after) {
      for (const until = Date.now() + 30_000; ; ) {
        try {
          await producer.send(topic, [message(value)]);
          break;
        } catch (error) {
          failures.push(`${value}: ${(error as Error).message}`);
          if (Date.now() > until) throw error;
          await sleep(100);
        }
      }
    }
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    const values = (await readTopic(kafka, topic, total, 30_000)).map((r) => r.value?.toString());
    const replaced = await replacements(registry);
    return {
      values,
      failures,
      replaced,
      context: `log: ${JSON.stringify(values)}; failed sends: ${JSON.stringify(failures)}`,
    };
  }

  it('a send after one of unknown outcome is written, not taken by the broker for a resend of it (found hunting a lost drift window)', async ({
    cleanup,
  }) => {
    // kafkajs handed a failed request's sequence numbers back even when the broker had written it;
    // the next, different batch to the partition got them, and the broker answered it as a
    // duplicate of the written one: acknowledged, never written.
    // a1 reaches the broker, its answer is dropped, then connections are refused: a failed send.
    const { values, replaced, context } = await afterFailedSend(cleanup, (proxy) => proxy.refuse(800), ['b']);
    // a1 landed (its answer alone was lost), and b, acknowledged, is written after it.
    expect(values, context).toEqual(['a0', 'a1', 'b']);
    expect(replaced, context).toBe(0);
  }, 60_000);

  it('a send after one that never reached the broker is written too: the gap it leaves gets a fresh producer', async ({
    cleanup,
  }) => {
    // The other half: a failed request's numbers stay spent, so when it never landed the next batch
    // leaves a gap the broker refuses (OUT_OF_ORDER_SEQUENCE_NUMBER). That send fails, retriable,
    // and the next goes through a fresh producer: nothing lost, no send stuck.
    const { values, failures, replaced, context } = await afterFailedSend(
      cleanup,
      async (proxy) => {
        // a1's request is held by the proxy and dropped with its connection: it never lands.
        proxy.stall();
        await sleep(300);
        await proxy.refuse(0);
        proxy.resume();
      },
      ['b', 'a1'], // then the caller's resend of the failed batch
    );
    expect(values, context).toEqual(['a0', 'b', 'a1']);
    expect(
      failures.some((f) => f.startsWith('b: ') && f.includes('out of order sequence number')),
      context,
    ).toBe(true);
    expect(replaced, context).toBe(1);
  }, 60_000);

  it('a broker that accepts connections and never answers still gets the producer replaced, and sends go on', async ({
    cleanup,
  }) => {
    const { proxy, kafka, topic } = await setUp(cleanup);
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const producer = await createProducer(kafka, {
      registry,
      health: { replaceAfterMs: 60_000, sendDeadlineMs: 2_000 },
    });
    cleanup.push(() => producer.disconnect());
    const message = (i: number) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) });
    await producer.send(topic, [message(0)]);
    proxy.stall();
    try {
      await expect(producer.send(topic, [message(1)])).rejects.toMatchObject({
        code: 'SINK_UNAVAILABLE',
        retriable: true,
        message: expect.stringContaining('no answer from Kafka within 2000 ms'),
      });
      // Still silent: the fresh producer's connect fails at the deadline as well.
      await expect(producer.send(topic, [message(1)])).rejects.toMatchObject({ code: 'SINK_UNAVAILABLE' });
    } finally {
      proxy.resume();
    }
    await producer.send(topic, [message(1), message(2)]); // through a fresh producer
    expect(await replacements(registry)).toBeGreaterThanOrEqual(1);
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    const values = (await readTopic(kafka, topic, total, 30_000)).map((r) => r.value?.toString());
    expect(new Set(values)).toEqual(new Set(['v0', 'v1', 'v2']));
  }, 60_000);
});
