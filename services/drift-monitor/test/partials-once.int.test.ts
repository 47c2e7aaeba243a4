import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { decodePartials, referenceSet } from '@driftline/drift';
import { createProducer, topicOffsets } from '@driftline/kafka';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { describe, expect, inject, it } from 'vitest';
import { PARTIALS_TOPIC } from '../src/service.js';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'drift-once-'));
const W0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
const RETRIES = 4;

describe('drift-monitor stage one during a ClickHouse outage (real Kafka, embedded ClickHouse)', () => {
  const monitors = driftMonitors();

  it('emits each window to the partials topic once, however often the batch is retried', async () => {
    const prefix = `${uniqueName('drifto')}.`;
    const ch = await createClickHouse({ mode: 'embedded', path: chPath, database: uniqueName('do').replace('-', '_') });
    await migrate(ch, migrations);
    const profile = buildNumericProfile(Array.from({ length: 200 }, (_, i) => i % 100));
    await warehouseOn(ch).references.save(referenceSet('qa', 'v1', new Map([['x', profile]])));
    const runner = await monitors.start(
      driftEnv(
        stack,
        { prefix, partitions: 1, database: ch.database, path: chPath },
        { DRIFTLINE_LOG_LEVEL: process.env.DRIFT_TEST_LOG_LEVEL ?? 'fatal' },
      ),
    );

    const predictions = `${prefix}predictions.v1`;
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, predictions);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = await createProducer(kafka);
    const send = async (offsets: number[]) => {
      const events: PredictionEvent[] = offsets.map((t, i) => ({
        prediction_id: `p-${t}`,
        model: 'qa',
        model_version: 'v1',
        entity_id: 'e',
        event_time: W0 + t,
        features: { x: i * 17 },
        prediction: 0,
        predicted_class: null,
      }));
      // Encoded one by one: concurrent first encodes race on registering the subject (HTTP 409).
      const messages = [];
      for (const e of events) messages.push({ key: e.prediction_id, value: await codec.encode(e), partition: 0 });
      await producer.send(predictions, messages);
    };
    const stage1Position = async () => {
      const [row] = await ch.select<{ p: string }>(
        `SELECT max(position) AS p FROM ${ch.table('drift_progress')} WHERE stage = 'stage1'`,
      );
      return Number(row?.p ?? 0) - W0;
    };

    // W0 closes and is recorded; then drift_progress disappears (a real, retriable ClickHouse error:
    // UNKNOWN_TABLE) while W0+1000 and W0+2000 close.
    await send([100, 1100]);
    await eventually(async () => ((await stage1Position()) === 1000 ? true : undefined), 20_000, 100);
    await ch.command(`DROP TABLE ${ch.table('drift_progress')}`);
    const failed = async () => {
      const metric = await runner.context.registry.getSingleMetric('driftline_records_failed_total')?.get();
      return (metric?.values ?? []).filter((v) => v.labels.topic === predictions).reduce((n, v) => n + v.value, 0);
    };
    await send([2100, 3100]);
    // The batch (2 records) fails on every attempt until the table is back.
    await eventually(async () => ((await failed()) >= 2 * RETRIES ? true : undefined), 30_000, 50);
    await ch.command(`DELETE FROM ${ch.table('schema_migrations')} WHERE id = '0102_drift_progress'`);
    await migrate(ch, migrations); // the table is back
    await eventually(async () => ((await stage1Position()) === 3000 ? true : undefined), 30_000, 100);
    await producer.disconnect();

    const partials = `${prefix}${PARTIALS_TOPIC}`;
    const count = (await topicOffsets(kafka, partials)).reduce((n, p) => n + Number(p.high - p.low), 0);
    const messages = (await readTopic(kafka, partials, count, 10_000)).map((m) => decodePartials(m.value!));
    // One partial and one closed marker per window (one model, one merge partition): never repeated.
    expect(messages.map((m) => `${m.type}@${m.windowStart - W0}`).sort()).toEqual([
      'closed@0',
      'closed@1000',
      'closed@2000',
      'partial@0',
      'partial@1000',
      'partial@2000',
    ]);
    expect(await failed()).toBeGreaterThanOrEqual(2 * RETRIES);
  });
});
