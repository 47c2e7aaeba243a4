import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { profilesFromCsv } from '@driftline/batch-drift';
import { SchemaRegistryCodec } from '@driftline/codec';
import { referenceSet } from '@driftline/drift';
import { createProducer, deleteTopics, ensureTopics } from '@driftline/kafka';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { describe, expect, inject, it } from 'vitest';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
const T0 = 1_700_000_000_000;
const PER_WINDOW = 400;
const PARTITIONS = 2;

const r = seededUniform(7);
const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
const csv = ['x,prediction', ...Array.from({ length: 2000 }, () => `${normal()},${r()}`)].join('\n');

/** `PER_WINDOW` events in each 1 s window from `from` to `to` (excluded), then `opener` events of window `to`. */
function events(tag: string, from: number, to: number, opener: number): PredictionEvent[] {
  const out: PredictionEvent[] = [];
  for (let w = from; w <= to; w++)
    for (let j = 0; j < (w < to ? PER_WINDOW : opener); j++)
      out.push({
        prediction_id: `${tag}-${w}-${j}`,
        model: 'fraud',
        model_version: 'v1',
        entity_id: `e${j}`,
        event_time: T0 + w * 1000 + Math.floor((j * 1000) / PER_WINDOW),
        features: { x: normal() },
        prediction: r(),
        predicted_class: null,
      });
  return out;
}

/**
 * The predictions topic deleted and created again under a running drift-monitor (found by a
 * review): the consumer reads the new log from its start, and stage one must not take its records
 * for replays of the old log's offsets (windows of the new log were never written, or short).
 */
describe('drift-monitor stage one over a source topic recreated under it (real Kafka, embedded ClickHouse)', () => {
  const monitors = driftMonitors();

  it("writes the new log's windows complete", async () => {
    const prefix = `${uniqueName('drift-recreated')}.`;
    const topic = `${prefix}predictions.v1`;
    const database = uniqueName('drec').replaceAll('-', '_');
    const path = mkdtempSync(join(tmpdir(), 'drift-rec-'));
    const ch = await createClickHouse({ mode: 'embedded', path, database });
    await migrate(ch, migrations);
    await warehouseOn(ch).references.save(referenceSet('fraud', 'v1', profilesFromCsv(csv)));
    const produce = async (list: readonly PredictionEvent[]) => {
      const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
      const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
      const messages = [];
      for (const e of list)
        messages.push({
          key: e.prediction_id,
          value: await codec.encode(e),
          partition: Number(e.entity_id.slice(1)) % PARTITIONS,
        });
      for (let i = 0; i < messages.length; i += 500) await producer.send(topic, messages.slice(i, i + 500));
      await producer.disconnect();
    };
    /** Window (seconds from T0) → events of the `x` PSI row. */
    const windows = async () =>
      new Map(
        (
          await ch.select<{ ws: number; events: number }>(
            `SELECT toUnixTimestamp64Milli(window_start) AS ws, events FROM ${ch.table('drift_windows')} FINAL
             WHERE feature = 'x' AND method = 'psi'`,
          )
        ).map((row) => [(Number(row.ws) - T0) / 1000, Number(row.events)]),
      );
    await monitors.start(
      driftEnv(stack, { prefix, partitions: PARTITIONS, database, path }, { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '2' }),
    );
    // The old log: windows 0 … 2 written, window 3 open (its events hold the group's commit).
    await produce(events('old', 0, 3, 4));
    await eventually(async () => ((await windows()).size >= 3 ? true : undefined), 20_000, 250);

    const kafka = kafkaFor(stack.kafkaBrokers);
    await deleteTopics(kafka, [topic]);
    await sleep(300);
    await ensureTopics(kafka, [{ topic, partitions: PARTITIONS }]);
    // The new log, from offset 0 again: windows 10 … 13 complete, window 14 opened to close them.
    await produce(events('new', 10, 14, 4));
    const written = await eventually(
      async () => {
        const got = await windows();
        return [10, 11, 12, 13].every((w) => got.has(w)) ? got : undefined;
      },
      20_000,
      250,
    ).catch(() => windows());
    // Before: windows 10 … 12 never written (their offsets at or below the old log's last one,
    // skipped as replays), window 13 short.
    expect([10, 11, 12, 13].map((w) => written.get(w))).toEqual([PER_WINDOW, PER_WINDOW, PER_WINDOW, PER_WINDOW]);
  }, 60_000);
});
