import { DriftlineError, silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject } from 'vitest';
import { committedOffsets, createProducer, ensureTopics, startConsumer, topicOffsets } from '../src/index.js';
import { it } from './per-test-cleanup.js';

const stack = inject('stack');

describe('a batch the sink refuses whole', () => {
  // Bisection of N refused records is 2N−1 processor calls before the batch commits. None of them
  // counted as progress: 10,000 records at 15 ms a call were taken for a stall at the default 5 min,
  // and a liveness probe restarted the service for ever with nothing committed (found by a review).
  it('is bisected to the end without looking stalled: every refusal is an answer', { timeout: 300_000 }, async ({
    cleanup,
  }) => {
    const count = 1_500;
    const stallTimeoutMs = 5_000; // 2,999 calls of at least 5 ms: three times this
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('bisect-stall');
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    cleanup.push(() => producer.disconnect());
    const values = Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) }));
    for (let i = 0; i < count; i += 1_000) await producer.send(topic, values.slice(i, i + 1_000));
    const groupId = uniqueName('g');
    let calls = 0;
    const handle = await startConsumer<string>({
      kafka,
      producer,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      groupId,
      topics: [topic],
      fromBeginning: true,
      stallTimeoutMs,
      processor: {
        decode: (r) => r.value?.toString() ?? '',
        async process(items) {
          calls++;
          await new Promise((r) => setTimeout(r, 5)); // one sink round trip
          throw new DriftlineError('VALIDATION_FAILED', `sink refuses ${items.length} item(s)`);
        },
      },
    });
    cleanup.push(() => handle.stop());

    const deadline = Date.now() + 240_000;
    const unhealthy: string[] = [];
    let committed: bigint | undefined;
    while (Date.now() < deadline) {
      if (!handle.healthy() || handle.stalls().length > 0)
        unhealthy.push(`after ${calls} calls: ${JSON.stringify(handle.stalls())}`);
      committed = (await committedOffsets(kafka, groupId, topic)).get(0);
      if (committed === BigInt(count)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(unhealthy.slice(0, 3)).toEqual([]);
    expect(committed).toBe(BigInt(count));
    expect(calls).toBeGreaterThanOrEqual(2 * count - 1);
    const dlq = await topicOffsets(kafka, `${topic}.dlq`);
    expect(dlq.reduce((sum, p) => sum + p.high, 0n)).toBe(BigInt(count));
  });
});
