import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { profilesFromCsv } from '@driftline/batch-drift';
import { SchemaRegistryCodec } from '@driftline/codec';
import { referenceSet } from '@driftline/drift';
import { createProducer } from '@driftline/kafka';
import { contracts, type DriftAlert, type PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { describe, expect, inject, it } from 'vitest';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'drift-seq-ch-'));
const T0 = 1_700_000_000_000;
const EVENTS = 3000;
const SHIFT_AT = 1200; // events before the shift (≈ 600 values per partition and feature)
const PARTITIONS = 2;
const WINDOW_MS = 1000;
const PER_WINDOW = 300;

const r = seededUniform(7);
const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
const referenceCsv = ['x,y,prediction', ...Array.from({ length: 4000 }, () => `${normal()},${normal()},${r()}`)].join(
  '\n',
);
const stream: PredictionEvent[] = Array.from({ length: EVENTS }, (_, i) => ({
  prediction_id: `p-${i}`,
  model: 'fraud',
  model_version: 'v1',
  entity_id: `e${i}`,
  event_time: T0 + Math.floor((i * WINDOW_MS) / PER_WINDOW),
  features: { x: normal() + (i >= SHIFT_AT ? 1 : 0), y: normal() },
  prediction: r(),
  predicted_class: null,
}));
const shiftTime = stream[SHIFT_AT]!.event_time;
const flush = (p: number): PredictionEvent => ({ ...stream[0]!, prediction_id: `flush-${p}`, event_time: T0 + 60_000 });

describe('drift-monitor sequential detector on real Kafka, the registry and embedded ClickHouse', () => {
  const monitors = driftMonitors();

  it('a shifted prediction stream raises SEQUENTIAL_DRIFT on alerts.v1 and rows in sequential_detections', async () => {
    const prefix = `${uniqueName('seq')}.`;
    const ch = await createClickHouse({
      mode: 'embedded',
      path: chPath,
      database: uniqueName('seq').replace('-', '_'),
    });
    await migrate(ch, migrations);
    const warehouse = warehouseOn(ch);
    await warehouse.references.save(referenceSet('fraud', 'v1', profilesFromCsv(referenceCsv)));
    await monitors.start(
      driftEnv(
        stack,
        { prefix, partitions: PARTITIONS, database: ch.database, path: chPath },
        {
          // Only the sequential detector alerts here: the window tests' alerts are covered elsewhere.
          DRIFTLINE_DRIFT_PSI_THRESHOLD: '1000',
          DRIFTLINE_SEQUENTIAL: 'true',
          DRIFTLINE_SEQUENTIAL_WINDOW: '50',
          DRIFTLINE_SEQUENTIAL_EVERY: '5',
          DRIFTLINE_SEQUENTIAL_ERT: '50000',
          DRIFTLINE_SEQUENTIAL_BOOTSTRAPS: '2000',
        },
      ),
    );
    const topic = `${prefix}predictions.v1`;
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    const messages = [];
    for (const e of [...stream, ...Array.from({ length: PARTITIONS }, (_, p) => flush(p))]) {
      const partition = e.prediction_id.startsWith('flush-')
        ? Number(e.prediction_id.slice(6))
        : Number(e.entity_id.slice(1)) % PARTITIONS;
      messages.push({ key: e.prediction_id, value: await codec.encode(e), partition });
    }
    for (let i = 0; i < messages.length; i += 500) await producer.send(topic, messages.slice(i, i + 500));
    await producer.disconnect();

    // Every window merged: stage one has seen (and the detector has judged) every event.
    const windows = Math.ceil(EVENTS / PER_WINDOW);
    await eventually(
      async () => {
        const [row] = await ch.select<{ n: string }>(
          `SELECT uniqExact(window_start) AS n FROM ${ch.table('drift_windows')} FINAL`,
        );
        return Number(row?.n ?? 0) >= windows ? true : undefined;
      },
      60_000,
      250,
    );
    const detections = await warehouse.sequentialDetections.list('fraud');
    expect(detections.length).toBeGreaterThan(0);
    // Only the shifted feature, only after the shift, within a few windows of it.
    expect(new Set(detections.map((d) => d.feature))).toEqual(new Set(['x']));
    const eventTimes = detections.map((d) => Date.parse(`${d.event_time.replace(' ', 'T')}Z`));
    expect(Math.min(...eventTimes)).toBeGreaterThanOrEqual(shiftTime);
    expect(Math.min(...eventTimes) - shiftTime).toBeLessThan(2 * WINDOW_MS);
    for (const d of detections) {
      expect(d.statistic).toBeGreaterThan(d.threshold);
      expect(d).toMatchObject({ statistic_kind: 'cvm', window_size: 50, check_every: 5, ert: 50_000 });
    }

    // One alert message per kept alarm (a row), published after the row; same id per (feature, window).
    const kafka = kafkaFor(stack.kafkaBrokers);
    const alertCodec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.alert,
      `${prefix}alerts.v1`,
    );
    const read = await readTopic(kafka, `${prefix}alerts.v1`, detections.length, 20_000);
    const alerts: DriftAlert[] = await Promise.all(read.map((m) => alertCodec.decode(m.value)));
    expect(alerts.every((a) => a.kind === 'SEQUENTIAL_DRIFT' && a.feature === 'x')).toBe(true);
    expect(alerts.every((a) => a.method === 'sequential_cvm' && a.statistic > a.threshold)).toBe(true);
    const evidence = JSON.parse(alerts[0]!.evidence);
    expect(evidence).toMatchObject({ ert: 50_000, window: 50, every: 5 });
    expect(typeof evidence.t).toBe('number');
    expect(new Set(alerts.map((a) => a.alert_id)).size).toBe(new Set(alerts.map((a) => a.window_start)).size);
  });
});
