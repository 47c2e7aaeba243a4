import { performance } from 'node:perf_hooks';
import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { type ConsumerHandle, createProducer, ensureTopics, leasedPartitions, startConsumer } from '../src/index.js';

const stack = inject('stack');
const LEASE = 10_000;

/** The partitions a handle may act on now, as `topic/partition`. */
const leased = (h: ConsumerHandle) =>
  leasedPartitions(h.membership(), performance.now(), LEASE).map((p) => `${p.topic}/${p.partition}`);

describe('ConsumerHandle.membership on real Kafka: the group as a lease', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  async function member(topic: string, groupId: string): Promise<ConsumerHandle> {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = await createProducer(kafka);
    const handle = await startConsumer<null>({
      kafka,
      groupId,
      topics: [topic],
      fromBeginning: false,
      producer,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      processor: { decode: () => null, process: async () => {} },
    });
    cleanup.push(async () => {
      await handle.stop();
      await producer.disconnect();
    });
    return handle;
  }

  it('heartbeats keep the lease past its length; two members split the partitions, disjoint; one stopping holds nothing at once and the other takes all', async () => {
    const topic = uniqueName('lease');
    const group = uniqueName('lease-group');
    await ensureTopics(kafkaFor(stack.kafkaBrokers), [{ topic, partitions: 4 }]);
    const all = [0, 1, 2, 3].map((p) => `${topic}/${p}`);
    const a = await member(topic, group);
    expect(leased(a)).toEqual(all);
    // Past the lease: accepted heartbeats (by their send time) confirmed the membership meanwhile.
    await new Promise((resolve) => setTimeout(resolve, LEASE + 2_000));
    expect(leased(a)).toEqual(all);
    expect(performance.now() - a.membership().confirmedAt!).toBeLessThan(LEASE - 1_000);

    const b = await member(topic, group);
    const split = await eventually(async () => {
      const [ha, hb] = [leased(a), leased(b)];
      return ha.length > 0 && hb.length > 0 && ha.length + hb.length === 4 ? { ha, hb } : undefined;
    }, 20_000);
    expect([...split.ha, ...split.hb].sort()).toEqual(all);
    expect(a.membership().joins).toBeGreaterThanOrEqual(2);

    const stopping = b.stop();
    expect(leased(b)).toEqual([]); // before it has even left the group
    await stopping;
    await eventually(async () => (leased(a).length === 4 ? true : undefined), 30_000);
    expect(leased(a)).toEqual(all);
  });
});
