import { setTimeout as sleep } from 'node:timers/promises';
import { DriftlineError, type Logger, silentLogger } from '@driftline/core';
import { createMetricsRegistry, type Registry } from '@driftline/observability';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import type { Consumer } from 'kafkajs';
import { describe, expect, inject } from 'vitest';
import { adminKafkajs } from '../src/admin.js';
import { kafkajsOf } from '../src/client.js';
import { consumerKafkajs } from '../src/consumer.js';
import {
  committedOffsets,
  createProducer,
  deleteTopics,
  type EventProducer,
  ensureTopics,
  listTopics,
  setGroupOffsets,
  startConsumer,
} from '../src/index.js';
import { growTopic } from '../src/testing.js';
import { type Cleanup, it } from './per-test-cleanup.js';

const stack = inject('stack');
/**
 * Every wait below, in ms: a bound for a hung broker or consumer, not a speed check. A loaded run
 * starves both (a recreated topic once took over 30 s to be creatable in such a run, elsewhere in
 * the suite); the tests' own limits are 90 s.
 */
const GUARD = 60_000;

/**
 * Where kafkajs moves a fetch position on its own — a topic deleted and created again, records
 * removed by retention, a reset backwards, a topic gone for good — the loop must never skip or
 * stop committing silently (found by a review on the real stack).
 */
// The tests run at once: each has a topic, a group, a client and a metrics registry of its own (a
// kafkajs log line or a deleted topic reaches the listeners of its own client only).
describe.concurrent('fetch positions kafkajs moves on its own (real Kafka)', () => {
  async function setUp(
    cleanup: Cleanup,
    prefix: string,
    options: {
      stallTimeoutMs?: number;
      logger?: Logger;
      metadataMaxAgeMs?: number;
      ephemeral?: boolean;
      /** A stateful processor's commit held back at this offset (stage one's oldest open window). */
      holdCommitAt?: string;
    } = {},
    /** While true, the sink refuses (retriable) every batch holding a record it names. */
    sinkDown: (value: string) => boolean = () => false,
    partitions = 1,
  ) {
    const kafka = kafkaFor(stack.kafkaBrokers);
    // A hold on the kafkajs consumers the loop creates (to move a position as kafkajs would).
    const consumers = consumerKafkajs(kafka);
    const made: Consumer[] = [];
    const create = consumers.consumer.bind(consumers);
    consumers.consumer = (config) => {
      const c = create(config);
      made.push(c);
      return c;
    };
    const topic = uniqueName(prefix);
    const groupId = uniqueName(`${prefix}-group`);
    /** The group's commits read through an admin client (the loop's reads, and this test's own). */
    let commitReads = 0;
    const admins = adminKafkajs(kafka);
    const createAdmin = admins.admin.bind(admins);
    admins.admin = (config) => {
      const admin = createAdmin(config);
      const fetchOffsets = admin.fetchOffsets.bind(admin);
      admin.fetchOffsets = (request) => {
        if (request.groupId === groupId) commitReads++;
        return fetchOffsets(request);
      };
      return admin;
    };
    await ensureTopics(kafka, [{ topic, partitions }, { topic: `${topic}.dlq` }]);
    const producer: EventProducer = await createProducer(kafka);
    const registry: Registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const seen: string[] = [];
    /** Every record handed to the processor, with its partition, in order. */
    const handed: Array<{ partition: number; value: string }> = [];
    /** The processor's `logRestarted` calls, each with how many records had been handed before it. */
    const restarted: Array<{ topic: string; partition: number; handedBefore: number }> = [];
    const send = (generation: string, n: number) =>
      producer.send(
        topic,
        Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`${generation}-${i}`) })),
      );
    const start = async () => {
      const handle = await startConsumer<string>({
        kafka,
        groupId,
        topics: [topic],
        producer,
        logger: silentLogger,
        registry,
        ...(options.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: options.stallTimeoutMs }),
        ...(options.logger === undefined ? {} : { logger: options.logger }),
        ...(options.metadataMaxAgeMs === undefined ? {} : { metadataMaxAgeMs: options.metadataMaxAgeMs }),
        ...(options.ephemeral === undefined ? {} : { ephemeral: options.ephemeral }),
        processor: {
          decode: (r) => r.value!.toString(),
          async process(items) {
            if (items.some((i) => sinkDown(i.value)))
              throw new DriftlineError('SINK_UNAVAILABLE', 'sink down (test)', { retriable: true });
            for (const i of items) {
              seen.push(i.value);
              handed.push({ partition: i.record.partition, value: i.value });
            }
            return options.holdCommitAt === undefined ? undefined : { commitOffset: options.holdCommitAt };
          },
          logRestarted: (topic, partition) => restarted.push({ topic, partition, handedBefore: handed.length }),
        },
      });
      cleanup.push(async () => {
        await handle.stop();
      });
      return handle;
    };
    cleanup.push(async () => {
      await producer.disconnect();
      const existing = new Set(await listTopics(kafka));
      await deleteTopics(
        kafka,
        [topic, `${topic}.dlq`].filter((name) => existing.has(name)),
      );
    });
    const committed = async () => (await committedOffsets(kafka, groupId, topic)).get(0);
    /**
     * Deletes the topic and creates it again a moment later (the reviewer's 0.3 s: kafkajs sees it
     * gone for a moment only and does not rejoin the group).
     */
    const recreate = async () => {
      await deleteTopics(kafka, [topic]);
      // Gone from the metadata first: a topic still listed while its deletion completes can be taken
      // for created, and the deletion then takes what is written next (a loaded run, tests at once).
      await eventually(async () => ((await listTopics(kafka)).includes(topic) ? undefined : true), GUARD, 50);
      await sleep(300);
      await ensureTopics(kafka, [{ topic, partitions }]);
    };
    /** Records below `offset` removed, as retention does. */
    const removeBefore = async (offset: number) => {
      const admin = kafkajsOf(kafka).admin();
      await admin.connect();
      try {
        await admin.fetchTopicMetadata({ topics: [topic] }); // deleteTopicRecords needs it loaded
        await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: String(offset) }] });
      } finally {
        await admin.disconnect();
      }
    };
    const skippedCount = async () =>
      (await registry.getSingleMetric('driftline_consumer_records_skipped_total')?.get())?.values.find(
        (v) => v.labels.topic === topic,
      );
    return {
      kafka,
      topic,
      groupId,
      registry,
      seen,
      handed,
      restarted,
      send,
      start,
      committed,
      recreate,
      made,
      removeBefore,
      skippedCount,
      commitReads: () => commitReads,
    };
  }

  /** A "does not host this topic-partition" answer, as kafkajs logs it (for any topic: another one deleted, say). */
  const answerUnknown = (t: { kafka: Parameters<typeof kafkajsOf>[0] }) =>
    kafkajsOf(t.kafka).logger().error('Response Fetch', { error: 'This server does not host this topic-partition' });

  /** A logger that keeps the error lines' messages and fields. */
  function errorLines() {
    const lines: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
    const logger: Logger = {
      ...silentLogger,
      error: (obj, msg) => lines.push({ obj: obj as Record<string, unknown>, msg }),
      child: () => logger,
    };
    return { lines, logger };
  }

  // The longest first: five run at once, the rest as these end.
  it('an input topic deleted and created again: healthy once the group is joined, with nothing to read', async ({
    cleanup,
  }) => {
    const t = await setUp(cleanup, 'gone-back', { stallTimeoutMs: 3_000 });
    const handle = await t.start();
    await t.send('gen1', 1);
    await eventually(async () => (t.seen.length === 1 ? true : undefined), GUARD);
    await deleteTopics(t.kafka, [t.topic]);
    await eventually(async () => (handle.healthy() ? undefined : true), GUARD);
    await ensureTopics(t.kafka, [{ topic: t.topic }]); // left idle: no batch will say it recovered
    // Before: unhealthy until two minutes without a crash.
    await eventually(async () => (handle.healthy() && handle.ready() ? true : undefined), GUARD);
  }, 90_000);

  it('an input topic deleted for good: restarts back off and the consumer turns unhealthy', async ({
    cleanup,
    expect,
  }) => {
    const t = await setUp(cleanup, 'gone', { stallTimeoutMs: 3_000 });
    const handle = await t.start();
    await t.send('gen1', 1);
    await eventually(async () => (t.seen.length === 1 ? true : undefined), GUARD);
    await deleteTopics(t.kafka, [t.topic]);
    // Before: ~10 restarts a second, healthy() true throughout.
    await eventually(async () => (handle.healthy() ? undefined : true), GUARD);
    await sleep(2_000);
    const restarts = (await t.registry.getSingleMetric('driftline_consumer_restarts_total')?.get())?.values[0]?.value;
    expect(restarts).toBeGreaterThan(0);
    expect(restarts).toBeLessThan(8);
  }, 90_000);

  it('a topic deleted and created again a moment later is read from its start, not from the old position', async ({
    cleanup,
    expect,
  }) => {
    const t = await setUp(cleanup, 'recreated');
    await t.start();
    await t.send('gen1', 100);
    await eventually(async () => ((await t.committed()) === 100n ? true : undefined), GUARD);
    await t.recreate();
    await t.send('gen2', 150);
    const gen2 = () => new Set(t.seen.filter((v) => v.startsWith('gen2-')));
    // Before: kafkajs went on at offset 100 of the new log, gen2-0 … gen2-99 were never processed.
    await eventually(async () => (gen2().size === 150 && (await t.committed()) === 150n ? true : undefined), GUARD);
    expect(gen2().size).toBe(150);
  }, 90_000);

  /** Each restarted partition told once, and before any record of its new log (`gen2-`) was handed over. */
  function expectToldOncePerPartition(t: Awaited<ReturnType<typeof setUp>>, partitions: number[]): void {
    expect(t.restarted.map((r) => r.partition).sort()).toEqual(partitions);
    for (const r of t.restarted) {
      expect(r.topic).toBe(t.topic);
      const firstNew = t.handed.findIndex((h) => h.partition === r.partition && h.value.startsWith('gen2-'));
      expect(firstNew).toBeGreaterThanOrEqual(r.handedBefore);
    }
  }

  it("a recreated topic calls the processor's logRestarted once per partition, before the new log's records", async ({
    cleanup,
  }) => {
    const t = await setUp(cleanup, 'recreated-hook', {}, undefined, 2);
    await t.start();
    await t.send('gen1', 100);
    const committedTotal = async () =>
      [...(await committedOffsets(t.kafka, t.groupId, t.topic)).values()].reduce((a, b) => a + b, 0n);
    await eventually(async () => ((await committedTotal()) === 100n ? true : undefined), GUARD);
    await t.recreate();
    await t.send('gen2', 150);
    const gen2 = () => new Set(t.seen.filter((v) => v.startsWith('gen2-')));
    await eventually(async () => (gen2().size === 150 && (await committedTotal()) === 150n ? true : undefined), GUARD);
    // Before: the loop sought to the start of the new log but never said so (no call): a processor
    // guarding against replays by offset dropped the new log's records up to the old offsets.
    expectToldOncePerPartition(t, [0, 1]);
  }, 90_000);

  it('an ephemeral follower (no commits) is told when its log restarted shorter than its position', async ({
    cleanup,
    expect,
  }) => {
    const t = await setUp(cleanup, 'recreated-eph', { ephemeral: true });
    await t.start();
    await t.send('gen1', 50);
    await eventually(async () => (t.seen.length === 50 ? true : undefined), GUARD);
    await t.recreate();
    await t.send('gen2', 10); // below the old position 50
    await eventually(async () => (t.seen.filter((v) => v.startsWith('gen2-')).length >= 10 ? true : undefined), GUARD);
    await t.send('gen3', 60);
    await eventually(async () => (t.seen.filter((v) => v.startsWith('gen3-')).length === 60 ? true : undefined), GUARD);
    // Before: no commit to lose, nothing said: kafkajs reset the position to the start and the
    // records came, but a follower skipping offsets it applied dropped 0 … 49 of the new log.
    expectToldOncePerPartition(t, [0]);
    expect(new Set(t.seen.filter((v) => v.startsWith('gen2-'))).size).toBe(10);
  }, 90_000);

  it('an ephemeral follower whose position kafkajs reset as out of range on the empty new log is told, also after a burst', async ({
    cleanup,
  }) => {
    const t = await setUp(cleanup, 'recreated-eph-reset', { ephemeral: true });
    await t.start();
    await t.send('gen1', 10);
    await eventually(async () => (t.seen.length === 10 ? true : undefined), GUARD);
    await t.recreate();
    await sleep(3_000); // kafkajs meets "out of range" on the empty log and resets to its start
    await t.send('gen2', 25); // at once: the first batch after the reset reaches past the old position
    const gen2 = () => new Set(t.seen.filter((v) => v.startsWith('gen2-')));
    await eventually(async () => (gen2().size === 25 ? true : undefined), GUARD);
    // Before (with the commit-based rule alone): an ephemeral consumer has no commit, the reset
    // below what it read was not a restart, and a follower skipping applied offsets dropped 0 … 9.
    expectToldOncePerPartition(t, [0]);
  }, 90_000);

  it.for([
    // Before: a commit of 0 read as "no commit": nothing said, gen2-0 … gen2-9 silently skipped.
    ['written at once', 0],
    // Before: a reset was a restart only below the group's commit, 0 here: not told, and a processor
    // skipping offsets it applied dropped gen2-0 … gen2-9 (found by the model check).
    ['reset as out of range on the empty new log, then written past the old position', 3_000],
  ] as const)(
    "a commit held at 0 (a fresh topic's first window) still names a recreated topic read past it: %s",
    { timeout: 90_000 },
    async ([, pauseMs], { cleanup, expect }) => {
      const t = await setUp(cleanup, `recreated-hold0-${pauseMs}`, { holdCommitAt: '0' });
      await t.start();
      await t.send('gen1', 10);
      await eventually(async () => (t.seen.length === 10 && (await t.committed()) === 0n ? true : undefined), GUARD);
      await t.recreate();
      // kafkajs meets "out of range" at 10 on the empty log and resets to its start.
      if (pauseMs > 0) await sleep(pauseMs);
      await t.send('gen2', 25); // at once: the first batch reaches past the old position
      const gen2 = () => new Set(t.seen.filter((v) => v.startsWith('gen2-')));
      await eventually(async () => (gen2().size === 25 ? true : undefined), GUARD).catch(() => undefined);
      expect(gen2().size).toBe(25);
      expectToldOncePerPartition(t, [0]);
    },
  );

  it('an ephemeral follower reads a recreated topic from its start also when the new log passed its position at once', async ({
    cleanup,
    expect,
  }) => {
    const t = await setUp(cleanup, 'recreated-eph-long', { ephemeral: true });
    await t.start();
    await t.send('gen1', 50);
    await eventually(async () => (t.seen.length === 50 ? true : undefined), GUARD);
    await t.recreate();
    await t.send('gen2', 60); // at once: longer than the old position before the consumer looks
    const gen2 = () => new Set(t.seen.filter((v) => v.startsWith('gen2-')));
    // Before: kafkajs went on at offset 50 of the new log, gen2-0 … gen2-49 were never delivered.
    await eventually(async () => (gen2().size === 60 ? true : undefined), GUARD).catch(() => undefined);
    expect(gen2().size).toBe(60);
    expectToldOncePerPartition(t, [0]);
    // The old log's records are not handed over again by the check (it re-reads one, and skips it).
    expect(t.seen.filter((v) => v.startsWith('gen1-'))).toHaveLength(50);
  }, 90_000);

  it('an ephemeral follower whose topic was not recreated: the check after an unknown-partition answer changes nothing', async ({
    cleanup,
    expect,
  }) => {
    const t = await setUp(cleanup, 'eph-not-recreated', { ephemeral: true });
    await t.start();
    await t.send('gen1', 50);
    await eventually(async () => (t.seen.length === 50 ? true : undefined), GUARD);
    answerUnknown(t);
    await sleep(1_000);
    await t.send('gen2', 20);
    await eventually(async () => (t.seen.length >= 70 ? true : undefined), GUARD);
    await sleep(500);
    expect(t.restarted).toEqual([]);
    expect(t.seen).toHaveLength(70); // the last record re-read for the check is not handed over again
    expect(new Set(t.seen).size).toBe(70);
  }, 90_000);

  it('an ephemeral follower goes on from its last record after a rebalance: nothing handed over again', async ({
    cleanup,
    expect,
  }) => {
    const t = await setUp(cleanup, 'eph-rebalance', { ephemeral: true, metadataMaxAgeMs: 2_000 });
    const handle = await t.start();
    await t.send('gen1', 20);
    await eventually(async () => (t.seen.length === 20 ? true : undefined), GUARD);
    // A rebalance: kafkajs fetches from the group's commit after a join, and an ephemeral group has none.
    await growTopic(t.kafka, t.topic, 2);
    await eventually(async () => ((await handle.positions()).length === 2 ? true : undefined), GUARD);
    await t.send('gen2', 10);
    await eventually(async () => (t.seen.filter((v) => v.startsWith('gen2-')).length >= 10 ? true : undefined), GUARD);
    await sleep(500);
    // Before: kafkajs read partition 0 again from its start (gen1-0 … gen1-19 handed twice), and a
    // topic recreated and written past the old position by then was taken for the old one (found by
    // the model check, test/log-position.test.ts).
    expect(t.seen.filter((v) => v.startsWith('gen1-'))).toHaveLength(20);
    expect(t.seen.filter((v) => v.startsWith('gen2-'))).toHaveLength(10);
    expect(t.restarted).toEqual([]);
  }, 90_000);

  it.for([
    ['a rebalance', 'rebalance'],
    ['an unknown-partition answer', 'answer'],
  ] as const)(
    'an ephemeral follower whose last record retention removed, then %s: no reset, nothing committed into its group',
    { timeout: 90_000 },
    async ([, signal], { cleanup, expect }) => {
      const { lines, logger } = errorLines();
      const t = await setUp(cleanup, `eph-retained-${signal}`, { ephemeral: true, logger, metadataMaxAgeMs: 2_000 });
      const handle = await t.start();
      await t.send('gen1', 10);
      await eventually(async () => (t.seen.length === 10 ? true : undefined), GUARD);
      await t.removeBefore(10); // its last record (9) removed, as retention does
      if (signal === 'rebalance') {
        await growTopic(t.kafka, t.topic, 2);
        await eventually(async () => ((await handle.positions()).length === 2 ? true : undefined), GUARD);
      } else answerUnknown(t);
      await sleep(2_000);
      await t.send('gen2', 6);
      await eventually(
        async () => (t.seen.filter((v) => v.startsWith('gen2-')).length === 6 ? true : undefined),
        GUARD,
      );
      await sleep(500);
      // Before: sought back to record 9 at the signal, below the log's start: "offset out of range" (an
      // error line, 0 skipped), and kafkajs committed -2 into the group, which the broker then kept
      // for 7 days after a SIGKILL.
      expect(lines.filter((l) => l.msg?.startsWith('offset out of range'))).toEqual([]);
      expect(await t.committed()).toBe(-1n); // none
      expect(t.restarted).toEqual([]);
      expect(t.seen).toHaveLength(16);
      expect(new Set(t.seen).size).toBe(16);
    },
  );

  it('while a reset waits for its batch, a burst of unknown-partition answers reads the commits a few times', async ({
    cleanup,
    expect,
  }) => {
    const t = await setUp(cleanup, 'reset-waits');
    await t.send('gen1', 10);
    await setGroupOffsets(t.kafka, t.groupId, t.topic, new Map([[0, 5n]]));
    await t.removeBefore(10); // the commit (5) below the log's start, and nothing after it to fetch
    await t.start();
    await eventually(async () => ((await t.committed()) === -2n ? true : undefined), GUARD); // kafkajs reset
    await sleep(1_000);
    const before = t.commitReads();
    // kafkajs retrying requests about a deleted topic: an answer every 100 ms for 4 s.
    for (let i = 0; i < 40; i++) {
      answerUnknown(t);
      await sleep(100);
    }
    await sleep(500);
    const reads = t.commitReads() - before;
    // Before: one read per answer (40). Now the first at once, then 250 ms, 500 ms, 1 s, 2 s apart.
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(reads).toBeLessThanOrEqual(6);
    expect(await t.committed()).toBe(-2n); // the reset still stands: nothing changed but the reads
  }, 90_000);

  it('a position reset backwards commits again from the new position', async ({ cleanup, expect }) => {
    const t = await setUp(cleanup, 'backwards');
    await t.start();
    await t.send('gen1', 100);
    await eventually(async () => ((await t.committed()) === 100n ? true : undefined), GUARD);
    await t.recreate();
    await t.send('gen2', 30);
    // Before: every record processed, nothing committed until the offsets passed the old 100.
    await eventually(async () => ((await t.committed()) === 30n ? true : undefined), GUARD);
    expect(new Set(t.seen.filter((v) => v.startsWith('gen2-'))).size).toBe(30);
  }, 90_000);

  it('a position moved below the last commit is named once and committed from', async ({ cleanup, expect }) => {
    const warnings: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (obj, msg) => warnings.push({ obj: obj as Record<string, unknown>, msg }),
      child: () => logger,
    };
    const t = await setUp(cleanup, 'moved-back', { logger });
    await t.start();
    await t.send('gen1', 100);
    await eventually(async () => ((await t.committed()) === 100n ? true : undefined), GUARD);
    // As kafkajs' own reset to the earliest offset does: the loop's position, moved behind its commit.
    t.made[0]!.seek({ topic: t.topic, partition: 0, offset: '0' });
    await eventually(async () => (t.seen.length >= 200 ? true : undefined), GUARD);
    await t.send('gen2', 5);
    await eventually(async () => ((await t.committed()) === 105n ? true : undefined), GUARD);
    const moved = warnings.filter((w) => w.msg?.startsWith('offsets moved backwards'));
    expect(moved).toHaveLength(1);
    expect(moved[0]?.obj).toMatchObject({ topic: t.topic, partition: 0, lastCommitted: '100', firstOffset: '0' });
  }, 90_000);

  it('records removed before they were read are counted as skipped, with both offsets', async ({ cleanup, expect }) => {
    const t = await setUp(cleanup, 'out-of-range');
    await t.send('gen1', 100);
    await setGroupOffsets(t.kafka, t.groupId, t.topic, new Map([[0, 10n]]));
    const admin = kafkajsOf(t.kafka).admin();
    await admin.connect();
    try {
      await admin.fetchTopicMetadata({ topics: [t.topic] }); // deleteTopicRecords needs it loaded
      await admin.deleteTopicRecords({ topic: t.topic, partitions: [{ partition: 0, offset: '60' }] });
    } finally {
      await admin.disconnect();
    }
    await t.start();
    await eventually(async () => ((await t.committed()) === 100n ? true : undefined), GUARD);
    const skipped = (await t.registry.getSingleMetric('driftline_consumer_records_skipped_total')?.get())?.values.find(
      (v) => v.labels.topic === t.topic,
    );
    // Offsets 10 … 59 were gone when the group came to read them: 50 records never processed.
    expect(skipped?.value).toBe(50);
    expect(skipped?.labels).toMatchObject({ partition: '0', reason: 'offset_out_of_range', group: t.groupId });
    expect(t.seen).toHaveLength(40);
  }, 90_000);

  it('a running consumer of a new group that falls behind retention counts the skip, never a recreated topic', async ({
    cleanup,
    expect,
  }) => {
    const { lines, logger } = errorLines();
    let down = false;
    const t = await setUp(cleanup, 'behind-retention', { logger }, (v) => down && v.startsWith('gen2-'));
    await t.start();
    await t.send('gen1', 100);
    await eventually(async () => ((await t.committed()) === 100n ? true : undefined), GUARD);
    down = true;
    await t.send('gen2', 100);
    await sleep(1_000); // the sink refuses the batch from 100 and backs off
    await t.send('gen3', 100);
    await t.removeBefore(250); // gen3's first 50, and whatever of gen2 kafkajs had not fetched yet
    down = false;
    await eventually(async () => ((await t.committed()) === 300n ? true : undefined), GUARD);
    // Before: the commits read at the join (-1: the group was new then) read as a deleted commit,
    // "topic deleted and created again", and the skipped records were counted nowhere.
    expect(lines.filter((l) => l.msg?.includes('created again'))).toHaveLength(0);
    const outOfRange = lines.filter((l) => l.msg?.startsWith('offset out of range'));
    expect(outOfRange).toHaveLength(1);
    const { from, to, skipped } = outOfRange[0]!.obj as { from: string; to: string; skipped: string };
    expect(to).toBe('250');
    expect(Number(skipped)).toBe(250 - Number(from));
    expect(Number(skipped)).toBeGreaterThan(0);
    const counted = await t.skippedCount();
    expect(counted?.value).toBe(Number(skipped));
    expect(counted?.labels).toMatchObject({ partition: '0', reason: 'offset_out_of_range' });
    // Every offset of gen2 and gen3 either processed or counted as skipped.
    const later = new Set(t.seen.filter((v) => !v.startsWith('gen1-')));
    expect(later.size + Number(skipped)).toBe(200);
  }, 90_000);

  it('retention past a held-back commit, then a rejoin: a forward reset, never a restarted log', async ({
    cleanup,
    expect,
  }) => {
    const { lines, logger } = errorLines();
    const t = await setUp(cleanup, 'held-back', { logger, metadataMaxAgeMs: 2_000, holdCommitAt: '2' });
    await t.start();
    await t.send('gen1', 10);
    await eventually(async () => (t.handed.length === 10 && (await t.committed()) === 2n ? true : undefined), GUARD);
    await t.removeBefore(5);
    // An ordinary rebalance: kafkajs fetches again from the commit (2), now below the log's start.
    await growTopic(t.kafka, t.topic, 2);
    await eventually(
      async () => (lines.some((l) => l.msg?.startsWith('offset out of range')) ? true : undefined),
      GUARD,
    );
    // Before: the reset to 5, below the 10 read here, was taken for a recreated topic: the
    // processor's replay guard was dropped and 5–9 counted twice (found by a review).
    expect(t.restarted).toEqual([]);
    expect(lines.filter((l) => l.msg?.includes('created again'))).toHaveLength(0);
  }, 90_000);

  it('a topic recreated under a restarted member that never committed itself is read from its start', async ({
    cleanup,
    expect,
  }) => {
    const t = await setUp(cleanup, 'recreated-idle');
    const first = await t.start();
    await t.send('gen1', 100);
    await eventually(async () => ((await t.committed()) === 100n ? true : undefined), GUARD);
    await first.stop();
    const second = await t.start(); // caught up: it has nothing to commit
    await eventually(async () => ((await second.positions()).length > 0 ? true : undefined), GUARD);
    await sleep(1_000);
    await t.recreate();
    await t.send('gen2', 150);
    const gen2 = () => new Set(t.seen.filter((v) => v.startsWith('gen2-')));
    // Before: only partitions this process had committed were checked: gen2-0 … gen2-99 skipped.
    await eventually(async () => (gen2().size === 150 && (await t.committed()) === 150n ? true : undefined), GUARD);
    expect(gen2().size).toBe(150);
  }, 90_000);

  it('partitions added at run time are read after the metadata age, not 5 minutes later', async ({
    cleanup,
    expect,
  }) => {
    const t = await setUp(cleanup, 'grown', { metadataMaxAgeMs: 2_000 });
    const handle = await t.start();
    await t.send('gen1', 5);
    await eventually(async () => (t.seen.length === 5 ? true : undefined), GUARD);
    const admin = kafkajsOf(t.kafka).admin();
    await admin.connect();
    try {
      await admin.createPartitions({ topicPartitions: [{ topic: t.topic, count: 2 }] });
    } finally {
      await admin.disconnect();
    }
    const producer = await createProducer(t.kafka);
    try {
      await producer.send(t.topic, [{ key: 'x', value: Buffer.from('p1-0'), partition: 1 }]);
    } finally {
      await producer.disconnect();
    }
    // Before: kafkajs' 5-minute metadata age; positions() listed partition 0 only, caught up.
    await eventually(async () => (t.seen.includes('p1-0') ? true : undefined), GUARD);
    expect((await handle.positions()).map((p) => p.partition).sort()).toEqual([0, 1]);
  }, 90_000);
});
