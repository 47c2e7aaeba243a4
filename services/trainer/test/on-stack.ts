import { silentLogger } from '@driftline/core';
import { type KafkaClient, topicOffsets } from '@driftline/kafka';
import type { RetrainRequest } from '@driftline/schemas';
import { type Runner, type ServiceDefinition, startRunner } from '@driftline/service';
import { eventually, type StackAddresses } from '@driftline/test-support';
import { type ClickHouse, chTime } from '@driftline/warehouse';
import { trainerService } from '../src/service.js';

/** The retrain request of `model` v1 for the ten minutes up to `dataTo`, as the retrain trigger sends it. */
export const retrainRequestOf = (model: string, dataTo: number): RetrainRequest => ({
  request_id: `${model}-request`,
  model,
  model_version: 'v1',
  reason: 'test',
  evidence: '{}',
  data_from: dataTo - 10 * 60_000,
  data_to: dataTo,
  event_time: dataTo,
});

/**
 * `n` labeled predictions of `model` v1 spread over [from, to), as the label-joiner writes them;
 * `sample(i)` gives the i-th row's features and label.
 */
export async function insertLabeledRows(
  ch: ClickHouse,
  model: string,
  from: number,
  to: number,
  n: number,
  sample: (i: number) => { readonly features: Record<string, number>; readonly label: number },
): Promise<void> {
  const rows = Array.from({ length: n }, (_, i) => {
    const t = from + Math.floor(((to - from) * i) / n);
    const { features, label } = sample(i);
    return {
      model,
      model_version: 'v1',
      prediction_id: `${model}-p${i}`,
      entity_id: `e${i % 40}`,
      prediction_time: chTime(t),
      label_time: chTime(t + 1),
      features: JSON.stringify(features),
      prediction: 0.5,
      predicted_class: null,
      label,
      joined_at: chTime(t + 1),
    };
  });
  await ch.insert('labeled_predictions', rows);
}

/** Records on `topic`'s dead-letter topic (0 while it does not exist). */
export async function dlqRecordCount(kafka: KafkaClient, topic: string): Promise<number> {
  return (await topicOffsets(kafka, `${topic}.dlq`).catch(() => [])).reduce(
    (sum, o) => sum + Number(o.high - o.low),
    0,
  );
}

/**
 * The trainer alone on the stack, in this process, once it is ready (its group joined): topics
 * under `prefix`, tables in `database` at `chPath`, on the CPU; `vars` are its other settings.
 */
export async function startTrainerOnStack(
  stack: StackAddresses,
  where: {
    readonly prefix: string;
    readonly partitions: number;
    readonly database: string;
    readonly chPath: string;
    readonly artifactDir: string;
  },
  vars: Record<string, string>,
): Promise<Runner> {
  const runner = await startRunner({
    services: [trainerService as unknown as ServiceDefinition<never, unknown>],
    env: {
      DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
      DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
      DRIFTLINE_TOPIC_PREFIX: where.prefix,
      DRIFTLINE_TOPIC_PARTITIONS: String(where.partitions),
      DRIFTLINE_HTTP_PORT: '0',
      DRIFTLINE_CLICKHOUSE_DATABASE: where.database,
      DRIFTLINE_CLICKHOUSE_PATH: where.chPath,
      DRIFTLINE_TRAINER_ARTIFACT_DIR: where.artifactDir,
      DRIFTLINE_TRAINER_DEVICE: 'cpu',
      ...vars,
    },
    logger: silentLogger,
  });
  try {
    await eventually(async () => (runner.ready() ? true : undefined), 60_000, 100);
  } catch (error) {
    await runner.stop();
    throw error;
  }
  return runner;
}
