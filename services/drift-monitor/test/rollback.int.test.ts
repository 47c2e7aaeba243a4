import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { profilesFromCsv } from '@driftline/batch-drift';
import { SchemaRegistryCodec } from '@driftline/codec';
import { referenceSet } from '@driftline/drift';
import { createProducer, ensureTopics } from '@driftline/kafka';
import { contracts, type ModelEvent, type PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { describe, expect, inject, it } from 'vitest';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
const T0 = 1_700_000_000_000;
const WINDOWS = 6;
const PER_WINDOW = 100;
const PARTITIONS = 2;

const r = seededUniform(11);
const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
const csv = (shift: number) =>
  ['x,prediction', ...Array.from({ length: 1000 }, () => `${normal() + shift},${r()}`)].join('\n');

const modelEvent = (
  kind: ModelEvent['kind'],
  version: string,
  at: number,
  previous: string | null = null,
): ModelEvent => ({
  model: 'fraud',
  version,
  kind,
  event_time: T0 + at,
  request_id: null,
  metrics: {},
  artifact_uri: `file:///models/fraud/${version}`,
  reference_uri: null,
  previous_version: previous,
});

/**
 * models.v1 says v2 was rolled back to v1: a canary (no reference of its own) is measured on the
 * version serving at each window's start — v1, v2, then v1 again. Before, the drift monitor acted
 * on PROMOTED only and kept measuring on the rolled-back v2's reference, silently.
 */
describe('drift-monitor follows ROLLED_BACK on models.v1 (real Kafka, the registry, embedded ClickHouse)', () => {
  const monitors = driftMonitors();

  it('measures a canary on the version serving instead from the rollback on, the windows before unchanged', async () => {
    const prefix = `${uniqueName('drift-rollback')}.`;
    const database = uniqueName('drb').replaceAll('-', '_');
    const path = mkdtempSync(join(tmpdir(), 'drift-rb-'));
    const ch = await createClickHouse({ mode: 'embedded', path, database });
    await migrate(ch, migrations);
    const v1 = referenceSet('fraud', 'v1', profilesFromCsv(csv(0)));
    const v2 = referenceSet('fraud', 'v2', profilesFromCsv(csv(1)));
    await warehouseOn(ch).references.save(v1);
    await warehouseOn(ch).references.save(v2);

    const kafka = kafkaFor(stack.kafkaBrokers);
    const registry = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    await ensureTopics(kafka, [
      { topic: `${prefix}models.v1`, partitions: PARTITIONS },
      { topic: `${prefix}predictions.v1`, partitions: PARTITIONS },
    ]);
    const producer = await createProducer(kafka);
    // In the order the controller publishes them, then the promotion of v2 re-published (a second
    // controller's start): stale, dated before v2's rollback, as the model-server takes it.
    const models = [
      modelEvent('PROMOTED', 'v1', 0),
      modelEvent('PROMOTED', 'v2', 2000, 'v1'),
      modelEvent('ROLLED_BACK', 'v2', 4000, 'v1'),
      modelEvent('PROMOTED', 'v2', 2000, 'v1'),
    ];
    const modelCodec = registry.forTopic(contracts.model, `${prefix}models.v1`);
    await producer.send(
      `${prefix}models.v1`,
      await Promise.all(models.map(async (e) => ({ key: e.model, value: await modelCodec.encode(e) }))),
    );

    // Started after: stage one starts once the follower has read models.v1 whole.
    await monitors.start(
      driftEnv(stack, { prefix, partitions: PARTITIONS, database, path }, { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '2' }),
    );

    const predictions: PredictionEvent[] = [];
    for (let w = 0; w <= WINDOWS; w++)
      for (let j = 0; j < (w < WINDOWS ? PER_WINDOW : PARTITIONS); j++)
        predictions.push({
          prediction_id: `p-${w}-${j}`,
          model: 'fraud',
          model_version: 'canary',
          entity_id: `e${j}`,
          event_time: T0 + w * 1000 + Math.floor((j * 1000) / PER_WINDOW),
          features: { x: normal() },
          prediction: r(),
          predicted_class: null,
        });
    const predictionCodec = registry.forTopic(contracts.prediction, `${prefix}predictions.v1`);
    await producer.send(
      `${prefix}predictions.v1`,
      await Promise.all(
        predictions.map(async (e) => ({
          key: e.prediction_id,
          value: await predictionCodec.encode(e),
          partition: Number(e.entity_id.slice(1)) % PARTITIONS,
        })),
      ),
    );
    await producer.disconnect();

    const measured = await eventually(
      async () => {
        const got = await ch.select<{ ws: number; reference_id: string; events: number }>(
          `SELECT toUnixTimestamp64Milli(window_start) AS ws, reference_id, events FROM ${ch.table('drift_windows')} FINAL
           WHERE version = 'canary' AND feature = 'x' AND method = 'psi' ORDER BY ws`,
        );
        return got.length >= WINDOWS ? got : undefined;
      },
      30_000,
      250,
    );
    const name = (id: string) => (id === v1.referenceId ? 'v1' : id === v2.referenceId ? 'v2' : id);
    expect(measured.map((row) => [(Number(row.ws) - T0) / 1000, name(row.reference_id), Number(row.events)])).toEqual([
      [0, 'v1', PER_WINDOW],
      [1, 'v1', PER_WINDOW],
      [2, 'v2', PER_WINDOW],
      [3, 'v2', PER_WINDOW],
      [4, 'v1', PER_WINDOW],
      [5, 'v1', PER_WINDOW],
    ]);
  }, 60_000);
});
