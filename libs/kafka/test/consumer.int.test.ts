import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DriftlineError, type Logger, PoisonRecordError, SinkUnavailableError, silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { createRedisClient } from '@driftline/online-store/redis';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { describe, inject } from 'vitest';
import {
  type ConsumerHandle,
  committedOffsets,
  createProducer,
  DLQ_HEADERS,
  describeGroup,
  type EventProducer,
  ensureTopics,
  startConsumer,
  topicOffsets,
} from '../src/index.js';
import { type Cleanup, it } from './per-test-cleanup.js';

const stack = inject('stack');
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

async function produceNumbered(topic: string, count: number, partitions: number, from = 0): Promise<void> {
  const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
  const messages = Array.from({ length: count }, (_, k) => ({
    key: `k${from + k}`,
    value: Buffer.from(`v${from + k}`),
    partition: (from + k) % partitions,
  }));
  for (let i = 0; i < messages.length; i += 500) await producer.send(topic, messages.slice(i, i + 500));
  await producer.disconnect();
}

// The tests run at once: each names its own topics, groups and Redis keys, with a metrics registry,
// producers and consumers of its own.
describe.concurrent('consumer loop against real Kafka', () => {
  async function consumer<T>(
    cleanup: Cleanup,
    options: Omit<Parameters<typeof startConsumer<T>>[0], 'kafka' | 'producer' | 'logger' | 'registry'> & {
      producer?: EventProducer;
      logger?: Logger;
    },
  ) {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = options.producer ?? (await createProducer(kafka));
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const handle: ConsumerHandle = await startConsumer<T>({
      ...options,
      kafka,
      producer,
      logger: options.logger ?? silentLogger,
      registry,
    });
    cleanup.push(async () => {
      await handle.stop();
      await producer.disconnect();
    });
    return { handle, registry, kafka };
  }

  // The longest first: five run at once, the rest as these end.
  it('a batch processed for longer than the session timeout keeps the membership: processed once, committed', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('long-batch');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await produceNumbered(topic, 10, 1);
    const group = uniqueName('group');
    const seen: string[] = [];
    let calls = 0;
    await consumer<string>(cleanup, {
      groupId: group,
      topics: [topic],
      sessionTimeoutMs: 6_000, // the broker's minimum
      processor: {
        decode: (r) => r.value!.toString(),
        async process(items) {
          // The first batch outlasts the session (a sink hanging to its deadline), heartbeating nothing itself.
          if (calls++ === 0) await new Promise((r) => setTimeout(r, 10_000));
          seen.push(...items.map((i) => i.value));
        },
      },
    });
    await eventually(
      async () => ((await committedOffsets(kafka, group, topic)).get(0) === 10n ? true : undefined),
      40_000,
    );
    // Evicted, the member's commit had failed and the batch came again: v0 twice.
    expect(seen.filter((v) => v === 'v0')).toEqual(['v0']);
  }, 60_000);

  it('a heartbeat a processor calls during a rebalance fails retriably: the batch is redelivered, nothing dead-lettered', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('heartbeat-rebalance');
    const kafka = kafkaFor(stack.kafkaBrokers);
    // The dead-letter topic exists, as services ensure it: a dead letter would land.
    await ensureTopics(kafka, [
      { topic, partitions: 2 },
      { topic: `${topic}.dlq`, partitions: 1 },
    ]);
    await produceNumbered(topic, 20, 2);
    const group = uniqueName('group');
    const sunk = new Set<string>();
    let bJoining = false;
    const processor = (beatUntilRebalanced: boolean) => ({
      decode: (r: { value: Buffer | null }) => r.value!.toString(),
      async process(items: ReadonlyArray<{ value: string }>, context: { heartbeat?(): Promise<void> }) {
        // A processor heartbeating through a long delivery (as the alert router does between retries).
        for (let i = 0; beatUntilRebalanced && i < 40; i++) {
          if (bJoining) await context.heartbeat?.();
          await new Promise((r) => setTimeout(r, 250));
        }
        for (const item of items) sunk.add(item.value);
      },
    });
    const a = await consumer<string>(cleanup, { groupId: group, topics: [topic], processor: processor(true) });
    await eventually(async () => (a.handle.ready() ? true : undefined));
    bJoining = true;
    await consumer<string>(cleanup, { groupId: group, topics: [topic], processor: processor(false) });
    await eventually(async () => (sunk.size === 20 ? true : undefined), 45_000);
    const metrics = await a.registry.metrics();
    // A's heartbeat failed in the rebalance (the batch counted failed) and nothing went to the DLQ.
    expect(metrics).toMatch(/^driftline_records_failed_total\{[^}]*\} [1-9]/m);
    expect(metrics).not.toMatch(/^driftline_records_dlq_total\{[^}]*\} [1-9]/m);
  }, 60_000);

  it('stop() during a batch lets it finish and commits it (kafkajs dropped that commit once stopping began)', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('stop-commits');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await produceNumbered(topic, 5, 1);
    const group = uniqueName('group');
    let inBatch = false;
    const sunk: string[] = [];
    const { handle } = await consumer<string>(cleanup, {
      groupId: group,
      topics: [topic],
      processor: {
        decode: (r) => r.value!.toString(),
        async process(items) {
          inBatch = true;
          await new Promise((r) => setTimeout(r, 3_000));
          sunk.push(...items.map((i) => i.value));
        },
      },
    });
    await eventually(async () => (inBatch ? true : undefined));
    await handle.stop(); // SIGTERM mid-batch
    expect(sunk).toHaveLength(5);
    expect((await committedOffsets(kafka, group, topic)).get(0)).toBe(5n); // it stayed uncommitted: redelivered on every start
  }, 30_000);

  it('a backoff longer than a short session keeps the membership: the attempts go on counting (found by a review)', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('long-backoff');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await produceNumbered(topic, 3, 1);
    const attempts: number[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (obj: object, msg?: string) => {
        if (msg?.startsWith('batch failed')) attempts.push((obj as { attempt: number }).attempt);
      },
      child: () => logger,
    };
    let down = true;
    const sunk: string[] = [];
    await consumer<string>(cleanup, {
      groupId: uniqueName('group'),
      topics: [topic],
      logger,
      sessionTimeoutMs: 6_000,
      backoff: { initialMs: 8_000, maxMs: 8_000, multiplier: 1, jitter: 0 }, // sleeps longer than the session
      processor: {
        decode: (r) => r.value!.toString(),
        async process(items) {
          if (down) throw new SinkUnavailableError('sink down');
          sunk.push(...items.map((i) => i.value));
        },
      },
    });
    await eventually(async () => (attempts.length >= 3 ? true : undefined), 40_000);
    down = false;
    await eventually(async () => (sunk.length === 3 ? true : undefined), 20_000);
    // Evicted during each sleep, the member rejoined and started over at attempt 0.
    expect(attempts.slice(0, 3)).toEqual([0, 1, 2]);
  }, 90_000);

  function spawnConsumer(env: Record<string, string>): {
    child: ChildProcess;
    ready: Promise<void>;
    exit: Promise<number | null>;
  } {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', 'libs/kafka/test/fixtures/redis-sink-consumer.ts'],
      { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`consumer exited early (${code})`)));
    });
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, ready, exit };
  }

  it('a consumer killed mid-batch and restarted processes every record at least once and commits nothing it did not finish', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('crash');
    const kafka = kafkaFor(stack.kafkaBrokers);
    const partitions = 3;
    const total = 3_000;
    await ensureTopics(kafka, [{ topic, partitions }]);
    await produceNumbered(topic, total, partitions);
    const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'consumer-test' });
    cleanup.push(async () => redis.disconnect());
    const key = uniqueName('crash');
    const group = uniqueName('group');
    const env = {
      BROKERS: stack.kafkaBrokers.join(','),
      REDIS_URL: stack.redisUrl,
      TOPIC: topic,
      GROUP: group,
      KEY: key,
      BATCH_DELAY_MS: '30',
    };

    const assertNothingCommittedAhead = async () => {
      const offsets = await committedOffsets(kafka, group, topic);
      for (let p = 0; p < partitions; p++) {
        const committed = Number(offsets.get(p) ?? -1n);
        if (committed <= 0) continue;
        const done = new Set(await redis.smembers(`${key}:${p}`));
        for (let o = 0; o < committed; o++)
          expect(done.has(String(o)), `partition ${p} offset ${o} committed but not processed`).toBe(true);
      }
      return offsets;
    };

    let kills = 0;
    for (let round = 0; round < 4; round++) {
      const run = spawnConsumer(env);
      await run.ready;
      // Let it get into the stream, then kill it while a batch is in flight.
      await eventually(
        async () => {
          const started = Number(await redis.get(`${key}:batches-started`));
          const done = Number(await redis.get(`${key}:batches-done`));
          return started > done && started > round * 3 ? true : undefined;
        },
        30_000,
        5,
      );
      run.child.kill('SIGKILL');
      await run.exit;
      kills++;
      await assertNothingCommittedAhead();
    }
    expect(kills).toBe(4);

    // Final run: let it finish, then stop it gracefully with SIGTERM.
    const last = spawnConsumer(env);
    await last.ready;
    await eventually(
      async () => {
        const offsets = await committedOffsets(kafka, group, topic);
        const sum = [...offsets.values()].reduce((a, b) => a + (b > 0n ? b : 0n), 0n);
        return sum === BigInt(total) ? true : undefined;
      },
      90_000,
      200,
    );
    last.child.kill('SIGTERM');
    expect(await last.exit).toBe(0);

    const offsets = await assertNothingCommittedAhead();
    for (let p = 0; p < partitions; p++) {
      expect(offsets.get(p)).toBe(BigInt(total / partitions));
      expect(await redis.scard(`${key}:${p}`)).toBe(total / partitions);
    }
    // SIGTERM left the group: no member remains.
    expect((await describeGroup(kafka, group)).members).toBe(0);
  });

  it('sends a poison record to <topic>.dlq with its original bytes and the reason, and goes on', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('poison');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    await producer.send(topic, [
      { key: 'a', value: Buffer.from('1') },
      { key: 'b', value: Buffer.from('not a number'), headers: { trace: 'xyz' } },
      { key: 'c', value: Buffer.from('3') },
      { key: 'd', value: Buffer.from('-4') },
    ]);
    await producer.disconnect();
    const sunk: number[] = [];
    const group = uniqueName('group');
    const { registry } = await consumer<number>(cleanup, {
      groupId: group,
      topics: [topic],
      processor: {
        decode(record) {
          const n = Number(record.value?.toString());
          if (Number.isNaN(n)) throw new PoisonRecordError('DECODE_FAILED', 'value is not a number');
          return n;
        },
        async process(items) {
          // The sink refuses negative numbers: a non-retriable, per-record failure.
          if (items.some((i) => i.value < 0))
            throw new PoisonRecordError('VALIDATION_FAILED', 'negative value refused by sink');
          sunk.push(...items.map((i) => i.value));
        },
      },
    });
    const dead = await readTopic(kafka, `${topic}.dlq`, 2);
    const byKey = new Map(dead.map((d) => [d.key?.toString(), d]));
    expect(byKey.get('b')?.value?.toString()).toBe('not a number');
    expect(byKey.get('b')?.headers?.[DLQ_HEADERS.reason]?.toString()).toBe('value is not a number');
    expect(byKey.get('b')?.headers?.[DLQ_HEADERS.code]?.toString()).toBe('DECODE_FAILED');
    expect(byKey.get('b')?.headers?.trace?.toString()).toBe('xyz');
    expect(byKey.get('b')?.headers?.[DLQ_HEADERS.offset]?.toString()).toBe('1');
    expect(byKey.get('d')?.headers?.[DLQ_HEADERS.reason]?.toString()).toBe('negative value refused by sink');
    await eventually(async () => ((await committedOffsets(kafka, group, topic)).get(0) === 4n ? true : undefined));
    expect(sunk.sort()).toEqual([1, 3]);
    const dlqMetric = await registry.getSingleMetricAsString('driftline_records_dlq_total');
    expect(dlqMetric).toMatch(/driftline_records_dlq_total\{[^}]*code="DECODE_FAILED"[^}]*\} 1$/m);
    expect(dlqMetric).toMatch(/driftline_records_dlq_total\{[^}]*code="VALIDATION_FAILED"[^}]*\} 1$/m);
  });

  it('a batch of poison only does not move a commit the processor holds back (found by make chaos)', async ({
    cleanup,
    expect,
  }) => {
    // A stateful processor (drift stage one) holds its commit at the oldest record still in memory
    // only. A later batch whose every record is poison never reaches the processor; committing
    // past it skipped the held records, and a crash then lost them.
    const topic = uniqueName('held');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    await producer.send(topic, [
      { key: 'a', value: Buffer.from('1') },
      { key: 'b', value: Buffer.from('2') },
    ]);
    const group = uniqueName('group');
    const seen: number[] = [];
    await consumer<number>(cleanup, {
      groupId: group,
      topics: [topic],
      processor: {
        decode(record) {
          const n = Number(record.value?.toString());
          if (Number.isNaN(n)) throw new PoisonRecordError('DECODE_FAILED', 'value is not a number');
          return n;
        },
        async process(items) {
          seen.push(...items.map((i) => i.value));
          return { commitOffset: '1' }; // record 1 onwards is held in memory only
        },
      },
    });
    await eventually(async () => ((await committedOffsets(kafka, group, topic)).get(0) === 1n ? true : undefined));
    await eventually(async () => (seen.length === 2 ? true : undefined));
    await producer.send(topic, [{ key: 'c', value: Buffer.from('not a number') }]);
    await producer.disconnect();
    await readTopic(kafka, `${topic}.dlq`, 1);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await committedOffsets(kafka, group, topic)).get(0)).toBe(1n);
  });

  describe('a processor that fails with unclassified errors', () => {
    const dlqCount = async (kafka: ReturnType<typeof kafkaFor>, topic: string) =>
      Number((await topicOffsets(kafka, `${topic}.dlq`))[0]?.high ?? 0n);
    const faultGauge = async (registry: Awaited<ReturnType<typeof consumer>>['registry']) =>
      (await registry.getSingleMetric('driftline_consumer_processor_fault')?.get())?.values[0]?.value;
    const quick = { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 };

    it('every record failing is held as a processor fault, not dead-lettered; once fixed, nothing is lost', async ({
      cleanup,
      expect,
    }) => {
      // A bad deploy (a TypeError on every record) used to bisect each batch and dead-letter it
      // whole: the topic drained into its DLQ while monitoring saw nothing.
      const topic = uniqueName('fault');
      const kafka = kafkaFor(stack.kafkaBrokers);
      await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
      await produceNumbered(topic, 20, 1);
      const group = uniqueName('group');
      let broken = true;
      let attempts = 0;
      const sunk = new Set<string>();
      const { handle, registry } = await consumer<string>(cleanup, {
        groupId: group,
        topics: [topic],
        backoff: quick,
        faultHoldMs: 60_000,
        processor: {
          decode: (r) => r.value!.toString(),
          async process(items) {
            attempts++;
            if (broken) (undefined as unknown as { field: number }).field;
            for (const i of items) sunk.add(i.value);
          },
        },
      });
      await eventually(async () => (attempts >= 40 ? true : undefined));
      expect(await faultGauge(registry)).toBe(1);
      expect(handle.ready()).toBe(false);
      expect(await dlqCount(kafka, topic)).toBe(0);
      expect((await committedOffsets(kafka, group, topic)).get(0)).toBe(-1n);
      broken = false;
      await eventually(async () => ((await committedOffsets(kafka, group, topic)).get(0) === 20n ? true : undefined));
      expect(sunk.size).toBe(20);
      expect(await dlqCount(kafka, topic)).toBe(0);
      expect(await faultGauge(registry)).toBe(0);
    });

    it('a decode that throws on every record is held too; an outage between held attempts restarts the hold', async ({
      cleanup,
      expect,
    }) => {
      const topic = uniqueName('fault-decode');
      const kafka = kafkaFor(stack.kafkaBrokers);
      await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
      await produceNumbered(topic, 5, 1);
      const group = uniqueName('group');
      let phase: 'bug' | 'outage' | 'fixed' = 'bug';
      let attempts = 0;
      const sunk: string[] = [];
      const { registry } = await consumer<string>(cleanup, {
        groupId: group,
        topics: [topic],
        backoff: quick,
        // Long beside the steps below that must fall within a hold (1.5 s in, a few attempts after
        // the outage): at 2.5 s a loaded run's stall of a second dead-lettered the record first.
        faultHoldMs: 6_000,
        processor: {
          decode: (r) => {
            attempts++;
            // A bug in decode (before the processor is offered anything): it dead-lettered at once.
            if (phase === 'bug') throw new TypeError("Cannot read properties of undefined (reading 'v')");
            return r.value!.toString();
          },
          async process(items) {
            if (phase === 'outage') throw new DriftlineError('SINK_UNAVAILABLE', 'sink down', { retriable: true });
            sunk.push(...items.map((i) => i.value));
          },
        },
      });
      await eventually(async () => ((await faultGauge(registry)) === 1 ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      // An outage longer than the hold: it is no time of the hold, and the gauge drops with it.
      phase = 'outage';
      await new Promise((resolve) => setTimeout(resolve, 7_000));
      expect(await faultGauge(registry)).toBe(0);
      phase = 'bug';
      const before = attempts;
      await eventually(async () => (attempts > before + 5 ? true : undefined));
      // The hold starts again: nothing dead-lettered at the first fault after the outage.
      expect(await dlqCount(kafka, topic)).toBe(0);
      phase = 'fixed';
      await eventually(async () => ((await committedOffsets(kafka, group, topic)).get(0) === 5n ? true : undefined));
      expect(sunk).toHaveLength(5);
      expect(await dlqCount(kafka, topic)).toBe(0);
    });

    it('held past the hold, the oldest record goes to the DLQ with the reason, one record per hold', async ({
      cleanup,
      expect,
    }) => {
      // A lone record the processor cannot take must not stall the partition for ever either.
      const topic = uniqueName('fault-hold');
      const kafka = kafkaFor(stack.kafkaBrokers);
      await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
      await produceNumbered(topic, 6, 1);
      const group = uniqueName('group');
      await consumer<string>(cleanup, {
        groupId: group,
        topics: [topic],
        backoff: quick,
        faultHoldMs: 2_000,
        processor: {
          decode: (r) => r.value!.toString(),
          async process() {
            throw new TypeError("Cannot read properties of undefined (reading 'field')");
          },
        },
      });
      // The first dead letter comes alone: the next record has a hold of its own.
      expect(
        await eventually(async () => ((await dlqCount(kafka, topic)) > 0 ? dlqCount(kafka, topic) : undefined)),
      ).toBe(1);
      const dead = await readTopic(kafka, `${topic}.dlq`, 2);
      expect(dead.map((d) => d.headers?.[DLQ_HEADERS.offset]?.toString())).toEqual(['0', '1']);
      expect(dead[0]?.headers?.[DLQ_HEADERS.code]?.toString()).toBe('INTERNAL');
      expect(dead[0]?.headers?.[DLQ_HEADERS.reason]?.toString()).toBe(
        "held 2s as a processor fault: Cannot read properties of undefined (reading 'field')",
      );
      await eventually(async () =>
        ((await committedOffsets(kafka, group, topic)).get(0) ?? -1n) >= 2n ? true : undefined,
      );
    });

    it('a record that fails among others that pass is dead-lettered at once, the hold notwithstanding', async ({
      cleanup,
      expect,
    }) => {
      const topic = uniqueName('fault-one');
      const kafka = kafkaFor(stack.kafkaBrokers);
      await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
      await produceNumbered(topic, 10, 1);
      const group = uniqueName('group');
      const sunk: string[] = [];
      await consumer<string>(cleanup, {
        groupId: group,
        topics: [topic],
        backoff: quick,
        faultHoldMs: 60_000,
        processor: {
          decode: (r) => r.value!.toString(),
          async process(items) {
            if (items.some((i) => i.value === 'v3')) throw new RangeError('Invalid time value');
            sunk.push(...items.map((i) => i.value));
          },
        },
      });
      const [dead] = await readTopic(kafka, `${topic}.dlq`, 1);
      expect(dead?.headers?.[DLQ_HEADERS.reason]?.toString()).toBe('Invalid time value');
      await eventually(
        async () => ((await committedOffsets(kafka, group, topic)).get(0) === 10n ? true : undefined),
        10_000,
      );
      expect(sunk).toHaveLength(9);
    });
  });

  it('backs off while the sink fails, commits nothing ahead of it, loses nothing, and its lag keeps growing', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('flaky');
    const other = uniqueName('flaky-other'); // a second topic, waiting behind the failing partition too
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [
      { topic, partitions: 2 },
      { topic: other, partitions: 1 },
    ]);
    await produceNumbered(topic, 200, 2);
    await produceNumbered(other, 40, 1, 1_000);
    const group = uniqueName('group');
    let sinkUp = false;
    let failures = 0;
    const sunk = new Set<string>();
    const { handle, registry } = await consumer<string>(cleanup, {
      groupId: group,
      topics: [topic, other],
      backoff: { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 },
      processor: {
        decode: (r) => r.value!.toString(),
        async process(items) {
          if (!sinkUp) {
            failures++;
            throw new DriftlineError('SINK_UNAVAILABLE', 'sink down', { retriable: true });
          }
          for (const i of items) sunk.add(i.value);
        },
      },
    });
    await eventually(async () => (failures >= 5 ? true : undefined));
    expect(handle.ready()).toBe(false);
    const whileDown = await committedOffsets(kafka, group, topic);
    expect([...whileDown.values()].every((o) => o === -1n)).toBe(true);
    // Producers go on during the outage: the partition fetches nothing, yet its lag gauge must grow
    // (it kept the retried batch's high watermark, 100, before).
    await produceNumbered(topic, 100, 2, 200);
    const lag = async () => {
      const metric = (await registry.getSingleMetric('driftline_consumer_lag')?.get())?.values ?? [];
      return metric
        .filter((v) => v.labels.topic === topic || v.labels.topic === other)
        .map((v) => [v.labels.topic === topic ? v.labels.partition : 'other', v.value])
        .sort();
    };
    await eventually(async () => {
      const now = await lag();
      // Every partition: the one whose batch is retried, and those waiting behind it unfetched, of
      // its topic and of the other (their gauges read from the group's offsets; they had none before).
      if (
        JSON.stringify(now) ===
        JSON.stringify([
          ['0', 150],
          ['1', 150],
          ['other', 40],
        ])
      )
        return true;
      throw new Error(`lag by partition ${JSON.stringify(now)}`);
    }, 20_000);
    sinkUp = true;
    await eventually(async () => (sunk.size === 340 ? true : undefined));
    await eventually(async () => {
      const offsets = await committedOffsets(kafka, group, topic);
      return offsets.get(0) === 150n && offsets.get(1) === 150n ? true : undefined;
    });
    await eventually(async () => (handle.ready() ? true : undefined));
  });

  it('positions: which owned partitions have processed everything, the idle and never-fetched included', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('positions');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 3 }]);
    // Partition 0 has records, 1 none at all, 2 records its sink refuses for now.
    const producer = await createProducer(kafka);
    cleanup.push(() => producer.disconnect());
    const send = (partition: number, n: number) =>
      producer.send(
        topic,
        Array.from({ length: n }, (_, k) => ({ key: `k${k}`, value: Buffer.from(`${partition}:${k}`), partition })),
      );
    await send(0, 20);
    await send(2, 5);
    let partition2Down = true;
    const sunk = new Set<string>();
    const { handle } = await consumer<string>(cleanup, {
      groupId: uniqueName('group'),
      topics: [topic],
      // Concurrently: with one at a time, the partition that backs off holds the others back.
      partitionsConsumedConcurrently: 3,
      backoff: { initialMs: 50, maxMs: 100, multiplier: 2, jitter: 0 },
      processor: {
        decode: (r) => r.value!.toString(),
        async process(items, context) {
          if (context.partition === 2 && partition2Down)
            throw new DriftlineError('SINK_UNAVAILABLE', 'sink down', { retriable: true });
          for (const i of items) sunk.add(i.value);
        },
      },
    });
    /** Waits until positions() says exactly this, per partition: caught up or not. */
    const positionsAre = (expected: boolean[]) =>
      eventually(async () => {
        const now = (await handle.positions()).map((p) => [p.topic === topic ? p.partition : -1, p.caughtUp]).sort();
        const want = expected.map((caughtUp, partition) => [partition, caughtUp]);
        if (JSON.stringify(now) === JSON.stringify(want)) return true;
        throw new Error(`positions ${JSON.stringify(now)}`);
      });
    await eventually(async () => (sunk.size === 20 ? true : undefined));
    // 1 never had a batch (nothing to read: caught up); 2 backs off on its batch.
    await positionsAre([true, true, false]);
    partition2Down = false;
    await eventually(async () => (sunk.size === 25 ? true : undefined));
    // The once idle partition gets records: caught up again once they are processed.
    await send(1, 3);
    await eventually(async () => (sunk.size === 28 ? true : undefined));
    await positionsAre([true, true, true]);
    await handle.stop();
    expect(await handle.positions()).toEqual([]);
  });

  it('a partition lost in a rebalance while backing off no longer holds readiness false (found by a review)', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('lost-backoff');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    await produceNumbered(topic, 40, 2);
    const group = uniqueName('group');
    let aDown = true;
    let aFailures = 0;
    // Both partitions' batches at once: both back off, so whichever the rebalance takes away was
    // backing off when it left.
    const a = await consumer<string>(cleanup, {
      groupId: group,
      topics: [topic],
      partitionsConsumedConcurrently: 2,
      backoff: { initialMs: 50, maxMs: 200, multiplier: 2, jitter: 0 },
      processor: {
        decode: (r) => r.value!.toString(),
        async process() {
          if (aDown) {
            aFailures++;
            throw new DriftlineError('SINK_UNAVAILABLE', 'sink down', { retriable: true });
          }
        },
      },
    });
    await eventually(async () => (aFailures >= 6 ? true : undefined));
    expect(a.handle.ready()).toBe(false);
    const sunkByB = new Set<string>();
    const b = await consumer<string>(cleanup, {
      groupId: group,
      topics: [topic],
      processor: {
        decode: (r) => r.value!.toString(),
        async process(items) {
          for (const i of items) sunkByB.add(i.value);
        },
      },
    });
    // B took one partition (20 records); then A's sink recovers for the one it kept.
    await eventually(async () => (sunkByB.size === 20 ? true : undefined), 30_000);
    aDown = false;
    await eventually(async () => (a.handle.ready() && b.handle.ready() ? true : undefined), 20_000);
  });
});
