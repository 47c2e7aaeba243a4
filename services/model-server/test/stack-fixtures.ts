// Helpers of the model-server's integration tests on the real stack: models.v1 events as the
// controller (or the trainer) publishes them, and what predictions.v1 holds.
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer, ensureTopics, topicOffsets } from '@driftline/kafka';
import { contracts, type ModelEvent, type PredictionEvent } from '@driftline/schemas';
import type { StackEndpoints } from '@driftline/stack';
import { eventually, kafkaFor, readTopic } from '@driftline/test-support';

/** The topics of one deployment (`prefix`), its artifacts in `dir` (`<dir>/<model>/<version>/model.json`). */
export function deploymentTopics(stack: StackEndpoints, prefix: string, dir: string) {
  const kafka = kafkaFor(stack.kafkaBrokers);
  const registry = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
  const predictions = registry.forTopic(contracts.prediction, `${prefix}predictions.v1`);

  /** Publishes one models.v1 event of `model`. */
  async function stage(
    model: string,
    kind: ModelEvent['kind'],
    version: string,
    extra: Partial<ModelEvent> = {},
  ): Promise<void> {
    const topic = `${prefix}models.v1`;
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    const codec = registry.forTopic(contracts.model, topic);
    const producer = await createProducer(kafka);
    const event: ModelEvent = {
      model,
      version,
      kind,
      event_time: Date.now(),
      request_id: null,
      metrics: {},
      artifact_uri: `file://${join(dir, model, version, 'model.json')}`,
      reference_uri: null,
      decided_by: 'operator:test',
      ...extra,
    };
    await producer.send(topic, [{ key: model, value: await codec.encode(event) }]);
    await producer.disconnect();
  }

  /** Every record predictions.v1 holds now, decoded. */
  async function predictionLog(): Promise<PredictionEvent[]> {
    const topic = `${prefix}predictions.v1`;
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    const events: PredictionEvent[] = [];
    for (const r of await readTopic(kafka, topic, total, 30_000)) events.push(await predictions.decode(r.value!));
    return events;
  }

  /** The records whose prediction id starts with one of `ids`, once there are at least `n`. */
  function logged(ids: readonly string[], n: number): Promise<PredictionEvent[]> {
    return eventually(
      async () => {
        const events = (await predictionLog()).filter((e) => ids.some((id) => e.prediction_id.startsWith(id)));
        return events.length >= n ? events : undefined;
      },
      30_000,
      200,
    );
  }

  return { stage, logged, predictionLog };
}
