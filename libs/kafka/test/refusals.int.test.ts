import { PoisonRecordError } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { eventually, kafkaFor, readTopic, recordingLogger, uniqueName } from '@driftline/test-support';
import { describe, expect, inject } from 'vitest';
import { committedOffsets, createProducer, DLQ_HEADERS, ensureTopics, startConsumer } from '../src/index.js';
import { type Cleanup, it } from './per-test-cleanup.js';

const stack = inject('stack');

/** A compacted topic refuses a record without a key: INVALID_RECORD, for good. */
const compacted = { 'cleanup.policy': 'compact' };

// Both were reported as an outage, a retriable SINK_UNAVAILABLE retried for ever, the refusal named
// nowhere: "producing to ….dlq failed: This record has failed the validation on broker" (found by a review).
describe.concurrent('a write the broker refuses for good', () => {
  async function consume(
    cleanup: Cleanup,
    topic: string,
    process: (items: readonly string[]) => Promise<void>,
    lines: Array<{ obj: object; msg?: string }>,
  ) {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = await createProducer(kafka);
    const groupId = uniqueName('g');
    const handle = await startConsumer<string>({
      kafka,
      producer,
      logger: recordingLogger('warn', lines),
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      groupId,
      topics: [topic],
      fromBeginning: true,
      backoff: { initialMs: 200, maxMs: 1_000, multiplier: 2, jitter: 0 },
      processor: {
        decode: (r) => {
          const value = r.value?.toString() ?? '';
          if (value === 'poison') throw new PoisonRecordError('DECODE_FAILED', 'poison');
          return value;
        },
        process: (items) => process(items.map((i) => i.value)),
      },
    });
    cleanup.push(async () => {
      await handle.stop();
      await producer.disconnect();
    });
    return { kafka, producer, handle, groupId };
  }

  it("a processor's output refused as it is (INVALID_RECORD): its input is dead-lettered as SINK_REJECTED and the rest goes on", async ({
    cleanup,
  }) => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('refused-output');
    const out = `${topic}.out`;
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq` }, { topic: out, config: compacted }]);
    const input = await createProducer(kafka);
    cleanup.push(() => input.disconnect());
    await input.send(topic, [
      { key: 'a', value: Buffer.from('keyed') },
      { key: 'b', value: Buffer.from('keyless') },
      { key: 'c', value: Buffer.from('keyed') },
    ]);
    const lines: Array<{ obj: object; msg?: string }> = [];
    let sink: Awaited<ReturnType<typeof createProducer>> | undefined;
    const { groupId } = await consume(
      cleanup,
      topic,
      async (items) => {
        sink ??= await createProducer(kafka);
        await sink.send(
          out,
          items.map((v) => ({ key: v === 'keyless' ? null : v, value: Buffer.from(v) })),
        );
      },
      lines,
    );
    cleanup.push(() => sink?.disconnect());
    const committed = await eventually(
      async () => ((await committedOffsets(kafka, groupId, topic)).get(0) === 3n ? true : undefined),
      60_000,
    );
    expect(committed).toBe(true);
    const [letter] = await readTopic(kafka, `${topic}.dlq`, 1);
    expect(letter?.key?.toString()).toBe('b');
    expect(letter?.headers?.[DLQ_HEADERS.code]?.toString()).toBe('SINK_REJECTED');
    expect(letter?.headers?.[DLQ_HEADERS.reason]?.toString()).toMatch(/refused \(INVALID_RECORD\)/);
    expect(lines.map((l) => l.msg)).not.toContain('batch failed; pausing the partition and retrying');
  });

  it('a dead-letter topic that refuses the letters holds them (nothing committed, nothing dropped) and says so', async ({
    cleanup,
  }) => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('refusing-dlq');
    await ensureTopics(kafka, [{ topic }, { topic: `${topic}.dlq`, config: compacted }]);
    const input = await createProducer(kafka);
    cleanup.push(() => input.disconnect());
    await input.send(topic, [
      { key: null, value: Buffer.from('poison') },
      { key: 'k', value: Buffer.from('ok') },
    ]);
    const lines: Array<{ obj: object; msg?: string }> = [];
    const { groupId, handle } = await consume(cleanup, topic, async () => {}, lines);
    const said = () =>
      lines.filter(
        (l) =>
          l.msg === 'batch failed; pausing the partition and retrying' &&
          /the dead-letter topic refuses: INVALID_RECORD \(check its config\)/.test(
            String((l.obj as { err?: unknown }).err),
          ),
      );
    await eventually(async () => (said().length >= 2 ? true : undefined), 60_000);
    expect(said()[0]?.obj).toMatchObject({ code: 'SINK_UNAVAILABLE' });
    expect((await committedOffsets(kafka, groupId, topic)).get(0)).toBe(-1n);
    expect(handle.healthy()).toBe(true);
  });
});
