// What an integration test sets up around a drift monitor (see runner.ts for the monitor itself):
// its embedded ClickHouse database with reference profiles, the predictions it reads, its counters.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import type { ReferenceSet } from '@driftline/drift';
import { createProducer } from '@driftline/kafka';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import type { Runner } from '@driftline/service';
import { kafkaFor, type StackAddresses, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';

let dataPath: string | undefined;

/**
 * A new migrated database (named from `name`) of the embedded ClickHouse, holding `references`.
 * The engine binds one data directory per process, so every database of a test file is in one
 * (`path`, for the monitor's `DRIFTLINE_CLICKHOUSE_PATH`).
 */
export async function driftDatabase(
  name: string,
  references: readonly ReferenceSet[],
): Promise<{ readonly ch: ClickHouse; readonly database: string; readonly path: string }> {
  dataPath ??= mkdtempSync(join(tmpdir(), 'drift-ch-'));
  const database = uniqueName(name).replaceAll('-', '_');
  const ch = await createClickHouse({ mode: 'embedded', path: dataPath, database });
  await migrate(ch, migrations);
  for (const set of references) await warehouseOn(ch).references.save(set);
  return { ch, database, path: dataPath };
}

/** A prediction and the partition of the predictions topic it is sent to. */
export interface PlacedPrediction {
  readonly event: PredictionEvent;
  readonly partition: number;
}

/**
 * Sends `predictions` to `topic` in their order (keyed by prediction_id, each to its partition;
 * 500 a request). Encoded one by one: concurrent first encodes race on registering the subject.
 */
export async function sendPredictions(
  stack: Pick<StackAddresses, 'kafkaBrokers' | 'schemaRegistryUrl'>,
  topic: string,
  predictions: readonly PlacedPrediction[],
): Promise<void> {
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
  const messages = [];
  for (const { event, partition } of predictions)
    messages.push({ key: event.prediction_id, value: await codec.encode(event), partition });
  const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
  try {
    for (let i = 0; i < messages.length; i += 500) await producer.send(topic, messages.slice(i, i + 500));
  } finally {
    await producer.disconnect();
  }
}

/** A running monitor's `driftline_drift_events_total` by outcome (an outcome never counted is absent). */
export async function driftOutcomes(runner: Runner): Promise<Record<string, number>> {
  const metric = await runner.context.registry.getSingleMetric('driftline_drift_events_total')?.get();
  const out: Record<string, number> = {};
  for (const v of metric?.values ?? []) {
    const outcome = String(v.labels.outcome);
    out[outcome] = (out[outcome] ?? 0) + v.value;
  }
  return out;
}
