// Labels a classification model cannot use go to the DLQ with the reason (found by a review: labels
// −1/+1 were joined, the −1 left out of the metrics silently, and the window showed accuracy 1).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer, DLQ_HEADERS } from '@driftline/kafka';
import { windowStart } from '@driftline/performance';
import { contracts, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import type { Runner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, removeTree, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { consumedAll } from './fixtures/events.js';
import { startJoiner } from './fixtures/runner.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'lj-invalid-labels-'));
const HOUR = 3_600_000;

describe('label-joiner: labels that are not a class of a classification model (real Kafka, registry, Redis, ClickHouse)', () => {
  const runners: Runner[] = [];
  afterAll(async () => {
    for (const runner of runners.splice(0)) await runner.stop().catch(() => {});
    await removeTree(dir);
  });

  it('dead-letters −1 of a classifier with the value and the task; joins +1, and −1 of a regression model', async () => {
    const prefix = `${uniqueName('ljil')}.`;
    const database = uniqueName('ljil').replaceAll('-', '_');
    const runner = await startJoiner(stack, prefix, database, dir, {
      DRIFTLINE_TOPIC_PARTITIONS: '1',
      DRIFTLINE_LOG_LEVEL: 'fatal',
      DRIFTLINE_JOINER_MODEL_TASKS: 'price:regression',
      DRIFTLINE_JOINER_RECOMPUTE_INTERVAL: '200ms',
    });
    runners.push(runner);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const predictionTopic = `${prefix}${contracts.prediction.defaultTopic}`;
    const labelTopic = `${prefix}${contracts.label.defaultTopic}`;
    const pc = codec.forTopic(contracts.prediction, predictionTopic);
    const lc = codec.forTopic(contracts.label, labelTopic);
    const now = Date.now();
    const cases: ReadonlyArray<[model: string, id: string, label: number]> = [
      ['fraud', 'f-0', -1],
      ['fraud', 'f-1', 1],
      ['price', 'p-0', -1],
    ];
    const prediction = ([model, id]: (typeof cases)[number]): PredictionEvent => ({
      prediction_id: id,
      model,
      model_version: 'v1',
      entity_id: `e-${id}`,
      event_time: now - 60_000,
      features: {},
      prediction: 0.55,
      predicted_class: null,
    });
    const label = ([model, id, value]: (typeof cases)[number]): LabelEvent => ({
      prediction_id: id,
      model,
      event_time: now - 30_000,
      label: value,
    });
    const producer = await createProducer(kafka);
    try {
      await producer.send(
        predictionTopic,
        await Promise.all(cases.map(async (c) => ({ key: c[1], value: await pc.encode(prediction(c)) }))),
      );
      await producer.send(
        labelTopic,
        await Promise.all(cases.map(async (c) => ({ key: c[1], value: await lc.encode(label(c)) }))),
      );
    } finally {
      await producer.disconnect();
    }
    await consumedAll(kafka, `${prefix}joiner`, labelTopic);
    const [letter, ...more] = await readTopic(kafka, `${labelTopic}.dlq`, 1);
    expect(more).toEqual([]);
    expect(letter?.key?.toString()).toBe('f-0');
    expect(letter?.headers[DLQ_HEADERS.code]?.toString()).toBe('VALIDATION_FAILED');
    expect(letter?.headers[DLQ_HEADERS.reason]?.toString()).toBe(
      'label of "f-0": label -1 is not a class (0 or 1): model "fraud" is a classification model (DRIFTLINE_JOINER_TASK, DRIFTLINE_JOINER_MODEL_TASKS)',
    );
    const warehouse = await runner.context.warehouse();
    const start = windowStart(now - 60_000, HOUR);
    await eventually(async () => {
      const fraud = await warehouse.predictions.readWindow(
        { model: 'fraud', modelVersion: 'v1', windowStart: start },
        HOUR,
        [],
      );
      const price = await warehouse.predictions.readWindow(
        { model: 'price', modelVersion: 'v1', windowStart: start },
        HOUR,
        [],
      );
      return fraud.labeledCount === 1 && price.labeledCount === 1 ? true : undefined;
    }, 30_000);
    const fraud = await warehouse.predictions.readWindow(
      { model: 'fraud', modelVersion: 'v1', windowStart: start },
      HOUR,
      [],
    );
    expect([...fraud.labels]).toEqual([1]);
    const price = await warehouse.predictions.readWindow(
      { model: 'price', modelVersion: 'v1', windowStart: start },
      HOUR,
      [],
    );
    expect([...price.labels]).toEqual([-1]);
  });
});
