import { type Logger, silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, inject } from 'vitest';
import {
  type BatchProcessor,
  type ConsumerHandle,
  committedOffsets,
  createProducer,
  deleteTopics,
  ensureTopics,
  listTopics,
  startConsumer,
} from '../src/index.js';
import { type Cleanup, it } from './per-test-cleanup.js';

const stack = inject('stack');

/** Writes `values` to one partition (offsets from where its log ends). */
async function produceTo(topic: string, partition: number, values: readonly string[]): Promise<void> {
  const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
  await producer.send(
    topic,
    values.map((v) => ({ key: v, value: Buffer.from(v), partition })),
  );
  await producer.disconnect();
}

/** Warn and error lines of the loop (a redelivery from a deferred record is no reset, no restart). */
function loudLines() {
  const lines: string[] = [];
  const logger: Logger = {
    ...silentLogger,
    warn: (_obj, msg) => lines.push(`warn: ${msg}`),
    error: (_obj, msg) => lines.push(`error: ${msg}`),
    child: () => logger,
  };
  return { lines, logger };
}

/**
 * Waits until a deleted topic is no longer listed: one still listed while its deletion completes can
 * be taken for created by the ensureTopics that follows, and the deletion then takes what is written
 * next (a loaded run, tests at once).
 */
async function goneFromMetadata(kafka: ReturnType<typeof kafkaFor>, topic: string): Promise<void> {
  await eventually(async () => ((await listTopics(kafka)).includes(topic) ? undefined : true), 60_000, 50);
}

// The tests run at once: each has a topic, a group, clients and a metrics registry of its own.
describe.concurrent('a processor defers a partition (ProcessResult.defer): only that partition waits', () => {
  async function consumer(
    cleanup: Cleanup,
    groupId: string,
    topic: string,
    processor: BatchProcessor<string>,
    logger?: Logger,
    follower?: { readonly ephemeral: true; readonly fromBeginning: boolean },
  ) {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = await createProducer(kafka);
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const handle: ConsumerHandle = await startConsumer<string>({
      kafka,
      producer,
      logger: logger ?? silentLogger,
      registry,
      groupId,
      topics: [topic],
      processor,
      stallTimeoutMs: 1_000,
      ...follower,
    });
    const stop = async () => {
      await handle.stop();
      await producer.disconnect();
    };
    cleanup.push(stop);
    return { handle, registry, stop };
  }

  it('the other partition is processed meanwhile; the deferred one comes back from the deferred record after the delay, nothing committed past it', async ({
    cleanup,
    expect,
  }) => {
    // The other partition's produce and processing, the 1.5 s watch and the checks below must all
    // fit within the first deferral: 4 s left a loaded run ~2 s for Kafka's round trips.
    const DELAY_MS = 8_000;
    const topic = uniqueName('deferral');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    await produceTo(topic, 0, ['a0', 'a1', 'a2', 'a3', 'a4']);
    const group = uniqueName('group');
    const processed: string[] = [];
    /** Per delivery of partition 0: the first offset offered, and when. */
    const deliveries: Array<{ first: string; at: number }> = [];
    const deferredAt: number[] = [];
    let p1DoneAt: number | undefined;
    const { lines, logger } = loudLines();
    const { handle, registry } = await consumer(
      cleanup,
      group,
      topic,
      {
        decode: (r) => r.value!.toString(),
        async process(items, { partition }) {
          if (partition === 0) deliveries.push({ first: items[0]!.record.offset, at: Date.now() });
          for (const item of items) {
            // Offset 2 of partition 0 is "not ready" twice (a retrain request whose labels lag).
            if (partition === 0 && item.record.offset === '2' && deferredAt.length < 2) {
              deferredAt.push(Date.now());
              return { defer: { offset: '2', delayMs: DELAY_MS, reason: 'not yet (test)' } };
            }
            processed.push(item.value);
          }
          if (partition === 1 && processed.filter((v) => v.startsWith('b')).length === 3) p1DoneAt = Date.now();
        },
      },
      logger,
    );
    await eventually(async () => (deferredAt.length === 1 ? true : undefined), 30_000, 20);
    // Written once partition 0 waits: it needs a fetch of its own (kafkajs fetched again only once
    // every batch of its last fetch was done, so a processor that slept in its batch held it).
    await produceTo(topic, 1, ['b0', 'b1', 'b2']);
    await eventually(async () => (p1DoneAt !== undefined ? true : undefined), DELAY_MS, 20);
    expect(p1DoneAt! - deferredAt[0]!).toBeLessThan(DELAY_MS);
    // Past the 1 s stall timeout with lag on the deferred partition: a known wait, not a stall.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(deferredAt).toHaveLength(1);
    expect((await committedOffsets(kafka, group, topic)).get(0)).toBe(2n);
    expect(handle.healthy()).toBe(true);
    expect(handle.stalls()).toEqual([]);
    const waiting = await registry.metrics();
    expect(waiting).toMatch(/^driftline_consumer_deferred\{[^}]*partition="0"[^}]*\} 1$/m);
    expect(waiting).toMatch(/^driftline_consumer_lag\{[^}]*partition="0"[^}]*\} 3$/m);
    // Redelivered from the deferred record, not before the delay; deferred once more, then processed.
    await eventually(async () => (processed.includes('a4') ? true : undefined), 4 * DELAY_MS, 50);
    expect(deliveries.map((d) => d.first)).toEqual(['0', '2', '2']);
    // (Timers may fire a millisecond early by Date.now's clock.)
    expect(deliveries[1]!.at - deferredAt[0]!).toBeGreaterThanOrEqual(DELAY_MS - 5);
    expect(deliveries[2]!.at - deferredAt[1]!).toBeGreaterThanOrEqual(DELAY_MS - 5);
    expect(processed.filter((v) => v.startsWith('a'))).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
    await eventually(async () => ((await committedOffsets(kafka, group, topic)).get(0) === 5n ? true : undefined));
    expect(await registry.metrics()).toMatch(/^driftline_consumer_deferred\{[^}]*partition="0"[^}]*\} 0$/m);
    // A redelivery from the deferred record is an ordinary replay: no reset, no restart, no backwards move.
    expect(lines).toEqual([]);
  }, 90_000);

  it('a rebalance ends the deferral: the partition is read again from the commit at the deferred record, never left paused', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('deferral-rebalance');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    await produceTo(topic, 0, ['a0', 'a1', 'a2', 'a3']);
    await produceTo(topic, 1, ['b0']);
    const group = uniqueName('group');
    let ready = false;
    const processed = new Set<string>();
    /** Deliveries of partition 0: which member, and the first offset offered. */
    const deliveries: Array<{ member: string; first: string }> = [];
    const processor = (member: string): BatchProcessor<string> => ({
      decode: (r) => r.value!.toString(),
      async process(items, { partition }) {
        if (partition === 0) deliveries.push({ member, first: items[0]!.record.offset });
        for (const item of items) {
          // Far longer than this test: only the rebalance can end this wait.
          if (partition === 0 && item.record.offset === '2' && !ready)
            return { defer: { offset: '2', delayMs: 600_000, reason: 'not yet (test)' } };
          processed.add(item.value);
        }
      },
    });
    const a = await consumer(cleanup, group, topic, processor('a'));
    await eventually(async () => (deliveries.length === 1 && processed.has('b0') ? true : undefined), 30_000, 20);
    await eventually(async () => ((await committedOffsets(kafka, group, topic)).get(0) === 2n ? true : undefined));
    const b = await consumer(cleanup, group, topic, processor('b'));
    // Whoever owns partition 0 after the join reads it from the commit, the deferred record, at once.
    await eventually(async () => (deliveries.length >= 2 ? true : undefined), 45_000, 50);
    expect(deliveries[1]!.first).toBe('2');
    expect((await committedOffsets(kafka, group, topic)).get(0)).toBe(2n);
    expect(processed.has('a2')).toBe(false);
    // b leaves: a owns both partitions again, and partition 0 is fetched (kafkajs keeps a paused
    // partition paused across joins: had a's pause outlived its deferral, it would wait for ever).
    ready = true;
    await b.stop();
    await eventually(async () => (processed.has('a3') ? true : undefined), 45_000, 50);
    expect([...processed].filter((v) => v.startsWith('a')).sort()).toEqual(['a0', 'a1', 'a2', 'a3']);
    await eventually(async () => ((await committedOffsets(kafka, group, topic)).get(0) === 4n ? true : undefined));
    expect(a.handle.healthy()).toBe(true);
  }, 120_000);

  it('a topic deleted and created again while its only partition is deferred: the redelivery finds the new log and reads it from its start (a paused partition gets no "does not host" answer)', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('deferral-recreate');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await produceTo(topic, 0, ['gen1-0', 'gen1-1', 'gen1-2', 'gen1-3', 'gen1-4']);
    const group = uniqueName('group');
    const seen: string[] = [];
    const restarted: number[] = [];
    let deferrals = 0;
    await consumer(cleanup, group, topic, {
      decode: (r) => r.value!.toString(),
      async process(items) {
        for (const item of items) {
          if (item.value === 'gen1-2' && deferrals === 0) {
            deferrals++;
            return { defer: { offset: item.record.offset, delayMs: 6_000, reason: 'not yet (test)' } };
          }
          seen.push(item.value);
        }
      },
      logRestarted: (_topic, partition) => restarted.push(partition),
    });
    await eventually(async () => ((await committedOffsets(kafka, group, topic)).get(0) === 2n ? true : undefined));
    await deleteTopics(kafka, [topic]);
    await goneFromMetadata(kafka, topic);
    await new Promise((r) => setTimeout(r, 300));
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await produceTo(
      topic,
      0,
      Array.from({ length: 8 }, (_, i) => `gen2-${i}`),
    );
    await eventually(async () => (seen.includes('gen2-7') ? true : undefined), 45_000, 50);
    // Before: resumed at its old position 2, the new log's gen2-0 and gen2-1 were skipped, unseen and unlogged.
    expect(seen.filter((v) => v.startsWith('gen2'))).toEqual(Array.from({ length: 8 }, (_, i) => `gen2-${i}`));
    expect(restarted).toEqual([0]);
  }, 90_000);

  it('an ephemeral follower deferred at its first record past 0, its topic recreated meanwhile and written past it: the new log read from its start', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('deferral-eph-recreate');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await produceTo(topic, 0, ['gen1-0', 'gen1-1', 'gen1-2']);
    const offered: string[] = [];
    const restarted: number[] = [];
    let deferredAt: number | undefined;
    await consumer(
      cleanup,
      uniqueName('group'),
      topic,
      {
        decode: (r) => r.value!.toString(),
        async process(items) {
          for (const item of items) {
            if (deferredAt === undefined) {
              deferredAt = Number(item.record.offset);
              return { defer: { offset: item.record.offset, delayMs: 4_000, reason: 'not yet (test)' } };
            }
            offered.push(item.value);
          }
        },
        logRestarted: (_topic, partition) => restarted.push(partition),
      },
      undefined,
      { ephemeral: true, fromBeginning: false },
    );
    // From the log's end, wherever kafkajs found it: written to until its first record comes (3 or past).
    for (let i = 3; deferredAt === undefined && i < 60; i++) {
      await produceTo(topic, 0, [`gen1-${i}`]);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(deferredAt).toBeGreaterThanOrEqual(3);
    await deleteTopics(kafka, [topic]);
    await goneFromMetadata(kafka, topic);
    await new Promise((r) => setTimeout(r, 300));
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    // Written past the deferred offset while the partition is paused.
    const gen2 = Array.from({ length: deferredAt! + 2 }, (_, i) => `gen2-${i}`);
    await produceTo(topic, 0, gen2);
    await eventually(async () => (offered.includes(gen2.at(-1)!) ? true : undefined), 45_000, 50);
    // Before: resumed at the deferred offset of the new log, taken for the old one: the new log's
    // records below it never offered nor counted, and no logRestarted.
    expect(offered).toEqual(gen2);
    expect(restarted).toEqual([0]);
  }, 90_000);
});
