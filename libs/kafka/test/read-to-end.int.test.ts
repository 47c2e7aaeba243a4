import { kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { createProducer, ensureTopics, readToEnd } from '../src/index.js';

const stack = inject('stack');

describe('readToEnd', () => {
  it('reads every record to the end it had at the call, in order per partition', async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = uniqueName('read-end');
    await ensureTopics(kafka, [{ topic, partitions: 2 }]);
    const producer = await createProducer(kafka);
    await producer.send(
      topic,
      Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`), partition: i % 2 })),
    );
    await producer.disconnect();
    const seen: string[] = [];
    const { unreached } = await readToEnd(kafka, topic, async (records) => {
      for (const r of records) seen.push(`${r.partition}:${r.value?.toString()}`);
    });
    expect(unreached).toEqual([]);
    expect(seen.filter((s) => s.startsWith('0:'))).toEqual(['0:v0', '0:v2', '0:v4', '0:v6', '0:v8']);
    expect(seen).toHaveLength(10);
  });
});
