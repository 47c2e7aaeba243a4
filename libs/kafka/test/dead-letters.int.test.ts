import { PoisonRecordError, silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { describe, inject } from 'vitest';
import {
  type ConsumerHandle,
  committedOffsets,
  createProducer,
  DLQ_HEADERS,
  ensureTopics,
  type InboundRecord,
  startConsumer,
  topicOffsets,
} from '../src/index.js';
import { type Cleanup, it } from './per-test-cleanup.js';

const stack = inject('stack');

/** Every record is poison: the consumer's whole job here is the dead-letter path. */
const rejectAll = (reason: (value: string) => string) => ({
  decode(record: { value: Buffer | null }): never {
    throw new PoisonRecordError('VALIDATION_FAILED', reason(record.value?.toString() ?? ''));
  },
  async process() {
    throw new Error('unreachable: nothing decodes');
  },
});

// The tests run at once: each has a topic, a group, clients and a metrics registry of its own.
describe.concurrent('dead letters against real Kafka', () => {
  async function start(
    cleanup: Cleanup,
    group: string,
    topic: string,
    processor: ReturnType<typeof rejectAll>,
    producerHealth?: NonNullable<Parameters<typeof createProducer>[1]>['health'],
  ) {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = await createProducer(kafka, producerHealth === undefined ? {} : { health: producerHealth });
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const handle: ConsumerHandle = await startConsumer<never>({
      kafka,
      groupId: group,
      topics: [topic],
      producer,
      logger: silentLogger,
      registry,
      backoff: { initialMs: 50, maxMs: 500, multiplier: 2, jitter: 0 },
      processor,
    });
    cleanup.push(async () => {
      await handle.stop();
      await producer.disconnect();
    });
    return { handle, registry };
  }

  it('a burst of 6,000 poison records in one batch all reach the DLQ and the offsets commit', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('burst');
    const kafka = kafkaFor(stack.kafkaBrokers);
    // The DLQ at the broker's defaults (message.max.bytes 1 MiB), as the runner creates it.
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const total = 6_000;
    const producer = await createProducer(kafka);
    const messages = Array.from({ length: total }, (_, i) => ({
      key: `entity-${i}`,
      value: Buffer.from(`{"view":"undeclared_view","entity":"entity-${i}","n":${i}}`),
    }));
    // One produce request, so the consumer gets them in one batch (~0.4 MB, under its fetch size).
    await producer.send(topic, messages);
    await producer.disconnect();

    const group = uniqueName('group');
    const { registry } = await start(
      cleanup,
      group,
      topic,
      rejectAll(() => 'feature view "undeclared_view" is not declared in DRIFTLINE_FEATURE_VIEWS'),
    );
    await eventually(
      async () => ((await committedOffsets(kafka, group, topic)).get(0) === BigInt(total) ? true : undefined),
      60_000,
      200,
    );
    const dead = await readTopic(kafka, `${topic}.dlq`, total, 60_000);
    expect(dead).toHaveLength(total);
    expect(new Set(dead.map((d) => d.headers[DLQ_HEADERS.offset]?.toString())).size).toBe(total);
    expect(dead.every((d) => d.headers[DLQ_HEADERS.truncated] === undefined)).toBe(true);
    // They came as one batch: one batch completed, none failed and retried.
    expect(await registry.getSingleMetricAsString('driftline_batch_duration_seconds')).toMatch(
      /driftline_batch_duration_seconds_count\{[^}]*\} 1$/m,
    );
    expect(await registry.getSingleMetricAsString('driftline_records_failed_total')).not.toMatch(/\} \d+$/m);
  });

  it('a DLQ that is unavailable pauses the partition and commits nothing until it is back', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('dlq-down');
    const kafka = kafkaFor(stack.kafkaBrokers);
    // No DLQ topic (and no auto-creation): every dead-letter send fails like an outage does.
    await ensureTopics(kafka, [{ topic }]);
    const producer = await createProducer(kafka);
    await producer.send(
      topic,
      Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) })),
    );
    await producer.disconnect();

    const group = uniqueName('group');
    // The prediction log's send deadline, not the default 60 s: a send to the missing DLQ fails after
    // kafkajs' retries fitted in half of it (3 s, not 13 s).
    const { handle, registry } = await start(
      cleanup,
      group,
      topic,
      rejectAll(() => 'refused'),
      { replaceAfterMs: 30_000, sendDeadlineMs: 10_000 },
    );
    await eventually(
      async () =>
        /\} [1-9]\d*$/m.test(await registry.getSingleMetricAsString('driftline_records_failed_total'))
          ? true
          : undefined,
      90_000,
      200,
    );
    expect(handle.ready()).toBe(false);
    expect((await committedOffsets(kafka, group, topic)).get(0)).toBe(-1n);

    await ensureTopics(kafka, [{ topic: `${topic}.dlq` }]);
    await eventually(
      async () => ((await committedOffsets(kafka, group, topic)).get(0) === 20n ? true : undefined),
      90_000,
      200,
    );
    expect(await readTopic(kafka, `${topic}.dlq`, 20)).toHaveLength(20);
  });

  it('a ~2 MiB poison record lands in a default-sized DLQ truncated, with its original size flagged', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('huge');
    const kafka = kafkaFor(stack.kafkaBrokers);
    // The source topic accepts 4 MiB records; its DLQ stays at the broker default (1 MiB).
    await ensureTopics(kafka, [
      { topic, config: { 'max.message.bytes': String(4 * 1024 * 1024) } },
      { topic: `${topic}.dlq` },
    ]);
    const huge = Buffer.alloc(2 * 1024 * 1024, 'x');
    const producer = await createProducer(kafka);
    await producer.send(topic, [
      { key: 'small-before', value: Buffer.from('tiny') },
      { key: 'huge', value: huge, headers: { trace: 'keep-me' } },
      { key: 'small-after', value: Buffer.from('tiny') },
    ]);
    await producer.disconnect();

    const group = uniqueName('group');
    // The consumer's own fetch size stays at its default (1 MiB): the 2 MiB record must still be fetched.
    await start(
      cleanup,
      group,
      topic,
      rejectAll((v) => `value of ${v.length} bytes refused`),
    );
    await eventually(
      async () => ((await committedOffsets(kafka, group, topic)).get(0) === 3n ? true : undefined),
      60_000,
      200,
    );
    const dead = await readTopic(kafka, `${topic}.dlq`, 3, 60_000);
    const byKey = new Map(dead.map((d) => [d.key?.toString(), d]));
    const letter = byKey.get('huge');
    expect(letter).toBeDefined();
    expect(letter?.headers[DLQ_HEADERS.truncated]?.toString()).toBe(String(huge.length));
    expect(letter?.headers[DLQ_HEADERS.reason]?.toString()).toBe(`value of ${huge.length} bytes refused`);
    expect(letter?.headers.trace?.toString()).toBe('keep-me');
    expect(letter?.value?.length).toBeGreaterThan(0);
    expect(letter?.value?.length).toBeLessThan(1024 * 1024);
    expect(letter?.value?.equals(huge.subarray(0, letter.value.length))).toBe(true);
    expect(byKey.get('small-before')?.headers[DLQ_HEADERS.truncated]).toBeUndefined();
    expect(byKey.get('small-after')?.value?.toString()).toBe('tiny');
  });

  it('caps a very long reason', async ({ cleanup, expect }) => {
    const topic = uniqueName('reason');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    await producer.send(topic, [{ key: 'a', value: Buffer.from('a') }]);
    await producer.disconnect();

    const group = uniqueName('group');
    await start(
      cleanup,
      group,
      topic,
      rejectAll(() => `bad: ${'é'.repeat(3 * 1024 * 1024)}`),
    );
    await eventually(
      async () => ((await committedOffsets(kafka, group, topic)).get(0) === 1n ? true : undefined),
      60_000,
      200,
    );
    const [letter] = await readTopic(kafka, `${topic}.dlq`, 1, 60_000);
    const reason = letter?.headers[DLQ_HEADERS.reason];
    expect(reason).toBeDefined();
    expect(reason!.length).toBeLessThanOrEqual(1024);
    expect(reason!.toString().startsWith('bad: éé')).toBe(true);
    expect(reason!.toString()).toMatch(/…\(truncated, \d+ bytes\)$/);
    expect(reason!.toString()).not.toContain('\uFFFD');
  });

  it('keeps the original header bytes in the DLQ: repeated headers each, non-UTF-8 bytes unchanged', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('headers');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    const repeated = [Buffer.from([0xff, 0x00]), Buffer.from([0xfe]), Buffer.from('ok')];
    await producer.send(topic, [
      { key: 'a', value: Buffer.from('a'), headers: { h: repeated, single: Buffer.from([0x80, 0x2c]) } },
    ]);
    await producer.disconnect();

    const group = uniqueName('group');
    await start(
      cleanup,
      group,
      topic,
      rejectAll(() => 'bad'),
    );
    const [letter] = await readTopic(kafka, `${topic}.dlq`, 1, 60_000);
    // They were joined with commas and decoded as UTF-8 (0xff became U+FFFD) on their way here.
    expect(letter?.headers.h).toEqual(repeated);
    expect(letter?.headers.single).toEqual(Buffer.from([0x80, 0x2c]));
    expect(letter?.headers[DLQ_HEADERS.reason]).toEqual(Buffer.from('bad'));
  });

  it('dead-letters the records a processor refuses while processing (ProcessResult.deadLetters), then commits', async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('refused');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    await producer.send(
      topic,
      Array.from({ length: 6 }, (_, i) => ({ key: 'k', value: Buffer.from(`v${i}`) })),
    );
    await producer.disconnect();
    const group = uniqueName('group');
    // Refuses odd values, as a state bound would: decided in process, not in decode.
    await start(cleanup, group, topic, {
      decode: (record: { value: Buffer | null }) => record.value?.toString() as never,
      async process(items: ReadonlyArray<{ record: InboundRecord; value: string }>) {
        const odd = items.filter((i) => Number(i.value.slice(1)) % 2 === 1);
        return {
          deadLetters: odd.map((i) => ({ record: i.record, code: 'VALIDATION_FAILED', reason: `odd ${i.value}` })),
        };
      },
    } as unknown as ReturnType<typeof rejectAll>);
    await eventually(
      async () => ((await committedOffsets(kafka, group, topic)).get(0) === 6n ? true : undefined),
      60_000,
      200,
    );
    const letters = await readTopic(kafka, `${topic}.dlq`, 3, 60_000);
    expect(letters.map((l) => l.value?.toString()).sort()).toEqual(['v1', 'v3', 'v5']);
    expect(letters.map((l) => l.headers[DLQ_HEADERS.reason]?.toString()).sort()).toEqual([
      'odd v1',
      'odd v3',
      'odd v5',
    ]);
  });

  it("an ephemeral follower dead-letters a record its start-up replay refuses, though an earlier start took it (a refusal can depend on the reader's configuration)", async ({
    cleanup,
    expect,
  }) => {
    const topic = uniqueName('eph-poison');
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }]);
    const producer = await createProducer(kafka);
    cleanup.push(() => producer.disconnect());
    const letters = async () => (await topicOffsets(kafka, `${topic}.dlq`)).reduce((n, o) => n + o.high, 0n);
    const seen: string[] = [];
    /** One follower process: a group of its own, no commits, the whole topic read on every start. */
    const follow = async (refuses: (value: string) => boolean) => {
      const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
      const handle = await startConsumer<string>({
        kafka,
        groupId: uniqueName('follower'),
        topics: [topic],
        producer,
        logger: silentLogger,
        registry,
        fromBeginning: true,
        ephemeral: true,
        processor: {
          decode(record) {
            const value = record.value?.toString() ?? '';
            if (refuses(value)) throw new PoisonRecordError('VALIDATION_FAILED', `refused ${value}`);
            return value;
          },
          async process(items) {
            for (const i of items) seen.push(i.value);
          },
        },
      });
      cleanup.push(() => handle.stop());
      return handle;
    };

    const first = await follow(() => false);
    await producer.send(
      topic,
      ['good-0', 'v2-event-1', 'good-2'].map((v) => ({ key: 'model', value: Buffer.from(v) })),
    );
    await eventually(async () => (seen.length === 3 ? true : undefined), 30_000);
    await first.stop();
    // A restart whose reader refuses what the first took (a raised DRIFTLINE_EVENT_TIME_MIN, a
    // schema the registry lost): its replay's refusal is a letter, never skipped (a version of
    // 105f456 skipped refusals below the start-up log end, taking them for letters already sent).
    await follow((v) => v.startsWith('v2-'));
    await eventually(async () => ((await letters()) === 1n && seen.length === 5 ? true : undefined), 30_000);
    expect(seen.slice(3)).toEqual(['good-0', 'good-2']);
  }, 90_000);
});
