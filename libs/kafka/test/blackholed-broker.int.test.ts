// A broker that stops answering (a blackholed path, a hung broker): connections stay open and
// nothing comes back. Both tests route the consumer's Kafka connections through a proxy that can
// go silent, so the shared stack itself is never touched.
import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { type BrokerProxy, brokerProxy, eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, inject } from 'vitest';
import { STOP_DEADLINE_MS, startConsumer } from '../src/consumer.js';
import { committedOffsets, createProducer, ensureTopics } from '../src/index.js';
import { type Cleanup, it } from './per-test-cleanup.js';

const stack = inject('stack');

// The tests run at once: each has a topic, a proxy and a consumer of its own.
describe.concurrent('a consumer whose broker stops answering', () => {
  /** A topic with one record (written directly), and a proxy in front of the broker for the consumer. */
  async function blackholable(cleanup: Cleanup): Promise<{
    topic: string;
    proxy: BrokerProxy;
    producer: Awaited<ReturnType<typeof createProducer>>;
  }> {
    const topic = uniqueName('blackholed');
    const direct = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(direct, [{ topic, partitions: 1 }]);
    const producer = await createProducer(direct);
    cleanup.push(() => producer.disconnect());
    await producer.send(topic, [{ key: 'k', value: Buffer.from('v') }]);
    const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
    cleanup.push(() => proxy.close());
    return { topic, proxy, producer };
  }

  async function consume(
    topic: string,
    proxy: BrokerProxy,
    producer: Awaited<ReturnType<typeof createProducer>>,
    stallTimeoutMs?: number,
  ) {
    let processed = 0;
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const groupId = uniqueName('group');
    const handle = await startConsumer<string>({
      kafka: kafkaFor([proxy.broker]),
      groupId,
      topics: [topic],
      producer,
      logger: silentLogger,
      registry,
      ...(stallTimeoutMs === undefined ? {} : { stallTimeoutMs }),
      processor: {
        decode: (r) => r.value!.toString(),
        async process(items) {
          processed += items.length;
        },
      },
    });
    await eventually(async () => (processed === 1 && handle.ready() ? true : undefined), 20_000);
    return { handle, registry, groupId };
  }

  it('stop() returns within its deadline (a SIGTERM took 87 s to 3.5 minutes: found by a review)', async ({
    cleanup,
    expect,
  }) => {
    const { topic, proxy, producer } = await blackholable(cleanup);
    const { handle } = await consume(topic, proxy, producer);
    expect(proxy.connections()).toBeGreaterThan(0); // the consumer's sockets do go through the proxy

    proxy.stall(); // nothing answers any more, nothing is refused
    const started = Date.now();
    const stopped = await Promise.race([
      handle.stop().then(() => Date.now() - started),
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), STOP_DEADLINE_MS + 10_000).unref()),
    ]);
    expect(stopped).not.toBe('hung');
    expect(stopped).toBeLessThanOrEqual(STOP_DEADLINE_MS + 5_000); // the deadline, slack for a loaded run
  }, 60_000);

  it('shows how long the lag has not been known, and turns unready (never unhealthy) past the stall timeout', async ({
    cleanup,
    expect,
  }) => {
    const { topic, proxy, producer } = await blackholable(cleanup);
    // The least that counts (a quiet topic is read every 5 to 10 s), and under kafkajs' 30 s request
    // timeout, after which it leaves the group (not ready, before too).
    const stallTimeoutMs = 20_000;
    const { handle, registry, groupId } = await consume(topic, proxy, producer, stallTimeoutMs);
    // Caught up and committed before the broker goes silent: a commit still on its way then leaves a
    // lag of 1 and no commit for the stall timeout, a stall (unhealthy), which a loaded run showed.
    const direct = kafkaFor(stack.kafkaBrokers);
    await eventually(async () => ((await committedOffsets(direct, groupId, topic)).get(0) === 1n ? true : undefined));
    cleanup.push(async () => {
      proxy.resume();
      await handle.stop();
    });
    const lagAge = async () => {
      const line = (await registry.metrics()).match(/^driftline_consumer_lag_age_seconds\{[^}]*\} (\S+)$/m);
      return line === null ? undefined : Number(line[1]);
    };
    expect(await eventually(lagAge)).toBeLessThan(stallTimeoutMs / 1000);

    // Before: the lag gauge stayed 0, /readyz and /healthz 200, while nothing was consumed.
    proxy.stall();
    const stalledAt = Date.now();
    await eventually(async () => (handle.ready() ? undefined : true), 25_000, 250);
    expect(Date.now() - stalledAt).toBeGreaterThanOrEqual(stallTimeoutMs - 10_000);
    expect(await lagAge()).toBeGreaterThanOrEqual(stallTimeoutMs / 1000 - 5);
    expect(handle.healthy()).toBe(true); // liveness would restart every service through a Kafka outage
  }, 60_000);
});
