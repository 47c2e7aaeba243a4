import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@driftline/core';
import { createProducer, deleteTopics, ensureTopics, listTopics, startConsumer } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import type { ModelEvent } from '@driftline/schemas';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { modelsFollower } from '../src/models-follower.js';

const stack = inject('stack');

const event = (version: string): ModelEvent => ({
  model: 'fraud',
  version,
  kind: 'SHADOW',
  event_time: 1_700_000_000_000,
  request_id: null,
  metrics: {},
  artifact_uri: '',
  reference_uri: null,
  decided_by: 'operator:test',
});

/**
 * The follower's consumer as the model server runs it (ephemeral: no commits) with the follower's
 * `logRestarted` wired, over a models.v1 deleted and created again under it (found by a review).
 */
describe('models.v1 follower: a models.v1 deleted and created again under a running server (real Kafka)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it("applies the new log's events from its start", async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${uniqueName('recreated')}.models.v1`;
    await ensureTopics(kafka, [
      { topic, partitions: 1 },
      { topic: `${topic}.dlq`, partitions: 1 },
    ]);
    const producer = await createProducer(kafka);
    cleanup.push(async () => {
      await producer.disconnect();
      const existing = new Set(await listTopics(kafka));
      await deleteTopics(
        kafka,
        [topic, `${topic}.dlq`].filter((t) => existing.has(t)),
      );
    });
    const send = (generation: string, n: number) =>
      producer.send(
        topic,
        Array.from({ length: n }, (_, i) => ({
          key: 'fraud',
          value: Buffer.from(JSON.stringify(event(`${generation}-${i}`))),
        })),
      );
    const applied: string[] = [];
    let replayed = 0;
    const follower = modelsFollower(async (_model, events, replay) => {
      replayed += replay?.events ?? 0; // the start-up replay comes folded
      for (const e of events) applied.push(e.version);
    });
    const handle = await startConsumer<ModelEvent>({
      kafka,
      groupId: uniqueName('recreated-follower'),
      topics: [topic],
      producer,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      fromBeginning: true,
      ephemeral: true,
      processor: {
        decode: (r) => JSON.parse(r.value!.toString()) as ModelEvent,
        process: (items, context) => follower.process(items, context),
        logRestarted: (_topic, partition) => follower.logRestarted(partition),
      },
    });
    cleanup.push(() => handle.stop());
    await send('old', 50);
    await eventually(async () => ((await handle.positions()).every((p) => p.caughtUp) ? true : undefined), 60_000);
    await follower.finishReplay();
    expect([replayed, applied.length]).toEqual([50, 0]);

    await deleteTopics(kafka, [topic]);
    await sleep(300);
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await send('new', 10); // a new log shorter than the old position (50)
    await sleep(2_000);
    await send('newer', 40);
    const fresh = () => applied.filter((v) => !v.startsWith('old-'));
    // Before: nothing told the follower, which skipped the new log's offsets 0 … 49 as re-reads.
    await eventually(async () => (fresh().length >= 50 ? true : undefined), 60_000).catch(() => undefined);
    expect(fresh()).toEqual([
      ...Array.from({ length: 10 }, (_, i) => `new-${i}`),
      ...Array.from({ length: 40 }, (_, i) => `newer-${i}`),
    ]);
  }, 150_000);
});
