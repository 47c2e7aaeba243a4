import { SchemaRegistryCodec } from '@driftline/codec';
import { ensureTopics } from '@driftline/kafka';
import { contracts, type FeatureEvent, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import { kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { createDriftlineProducer } from '../src/index.js';

const stack = inject('stack');

describe('producer SDK against real Kafka and Schema Registry', () => {
  it('publishes typed events keyed per contract, through a small bounded buffer, and flushes them all', async () => {
    const prefix = `${uniqueName('sdk')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(
      kafka,
      (['feature', 'prediction', 'label'] as const).map((c) => ({
        topic: `${prefix}${contracts[c].defaultTopic}`,
        partitions: 2,
      })),
    );
    // maxBuffered 100 with 1,000 events: publish must wait for room (backpressure), never drop.
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      batchSize: 50,
      maxBuffered: 100,
      lingerMs: 1,
    });
    let maxPending = 0;
    const features = Array.from({ length: 1_000 }, (_, i) => ({
      view: 'profile',
      entity_id: `user-${i % 10}`,
      features: { age: i, country: 'fr' },
    }));
    for (let i = 0; i < features.length; i += 10) {
      await sdk.publishFeatures(features.slice(i, i + 10));
      maxPending = Math.max(maxPending, sdk.pending);
    }
    expect(maxPending).toBeLessThanOrEqual(110);
    await sdk.publishPrediction({
      prediction_id: 'p1',
      model: 'churn',
      model_version: '3',
      entity_id: 'user-1',
      features: { age: 3 },
      prediction: 0.7,
    });
    await sdk.publishLabel({ prediction_id: 'p1', model: 'churn', label: 1 });

    // A schema violation is refused before anything of the call is buffered.
    const before = sdk.pending;
    await expect(
      sdk.publishFeatures([
        { view: 'profile', entity_id: 'ok', features: { age: 1 } },
        { view: 'profile', entity_id: 42 as unknown as string, features: {} },
      ]),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/^event \[1\]: .*entity_id/) });
    expect(sdk.pending).toBe(before);
    await sdk.close();
    expect(sdk.pending).toBe(0);

    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const featureTopic = `${prefix}features.v1`;
    const read = await readTopic(kafka, featureTopic, 1_000);
    const decoded = await Promise.all(
      read.map(async (r) => ({
        key: r.key?.toString(),
        partition: r.partition,
        value: await codec.forTopic<FeatureEvent>(contracts.feature, featureTopic).decode(r.value),
      })),
    );
    expect(decoded).toHaveLength(1_000);
    expect(new Set(decoded.map((d) => d.value.event_id)).size).toBe(1_000); // ids assigned, none lost or doubled
    for (const d of decoded) expect(d.key).toBe(d.value.entity_id);
    expect(decoded.every((d) => d.value.event_time > 0)).toBe(true);
    const [prediction] = await readTopic(kafka, `${prefix}predictions.v1`, 1);
    const [label] = await readTopic(kafka, `${prefix}labels.v1`, 1);
    expect(prediction?.key?.toString()).toBe('p1');
    expect(label?.key?.toString()).toBe('p1');
    // Co-partitioned: the label of a prediction lands in the prediction's partition.
    expect(label?.partition).toBe(prediction?.partition);
    const p = await codec
      .forTopic<PredictionEvent>(contracts.prediction, `${prefix}predictions.v1`)
      .decode(prediction!.value);
    const l = await codec.forTopic<LabelEvent>(contracts.label, `${prefix}labels.v1`).decode(label!.value);
    expect(p).toMatchObject({ model: 'churn', prediction: 0.7, predicted_class: null });
    expect(l).toMatchObject({ model: 'churn', label: 1 });
  });
});
