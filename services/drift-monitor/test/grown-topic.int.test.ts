import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { profilesFromCsv } from '@driftline/batch-drift';
import { SchemaRegistryCodec } from '@driftline/codec';
import { referenceSet } from '@driftline/drift';
import { createProducer } from '@driftline/kafka';
import { growTopic } from '@driftline/kafka/testing';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { describe, expect, inject, it } from 'vitest';
// Services never grow a topic (operators do), so the facade has no call for it: the test reaches
// the client inside libs/kafka for this one admin request.
import { SOURCE_COUNT_MAX_AGE_MS } from '../src/stage-one.js';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'drift-grown-ch-'));
const T0 = 1_700_000_000_000;
const PER_WINDOW = 300;
const WINDOWS = 3;

const r = seededUniform(21);
const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
const referenceCsv = ['x,prediction', ...Array.from({ length: 2000 }, () => `${normal()},${r()}`)].join('\n');

describe('drift-monitor: partitions added to predictions.v1 while it runs', () => {
  const monitors = driftMonitors();

  it('windows closed before the group rebalanced wait for the new partition: every event merged', async () => {
    const prefix = `${uniqueName('drift-grown')}.`;
    const topic = `${prefix}predictions.v1`;
    const ch = await createClickHouse({
      mode: 'embedded',
      path: chPath,
      database: uniqueName('grown').replace('-', '_'),
    });
    await migrate(ch, migrations);
    await warehouseOn(ch).references.save(referenceSet('fraud', 'v1', profilesFromCsv(referenceCsv)));
    const runner = await monitors.start(
      driftEnv(
        stack,
        { prefix, partitions: 2, database: ch.database, path: chPath },
        {
          // Longer than the test: a window completes only when every source partition reported it.
          DRIFTLINE_DRIFT_IDLE_TIMEOUT: '5m',
          DRIFTLINE_DRIFT_SOURCE_IDLE: '0',
          DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '1',
        },
      ),
    );
    const kafka = kafkaFor(stack.kafkaBrokers);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
    const event = (id: string, eventTime: number): PredictionEvent => ({
      prediction_id: id,
      model: 'fraud',
      model_version: 'v1',
      entity_id: 'e',
      event_time: eventTime,
      features: { x: normal() },
      prediction: r(),
      predicted_class: null,
    });
    const send = async (messages: Array<{ key: string; value: Buffer; partition: number }>) => {
      const producer = await createProducer(kafka);
      try {
        await producer.send(topic, messages);
      } finally {
        await producer.disconnect();
      }
    };
    // Stage one joins with the topic's 2 partitions (kafkajs keeps that view up to 30 s) and
    // processes a batch of each: the recount a join triggers is behind it when the topic grows.
    const warmUp = [0, 1].map(async (p) => ({
      key: `w${p}`,
      value: await codec.encode(event(`w${p}`, T0 - 1000)),
      partition: p,
    }));
    await send(await Promise.all(warmUp));
    await eventually(async () => {
      const metric = await runner.context.registry.getSingleMetricAsString('driftline_drift_events_total');
      return /outcome="added"[^}]*\} 2$/m.test(metric) ? true : undefined;
    }, 20_000);
    await growTopic(kafka, topic, 3);
    // Past the age a count read before the growth (the warm-up's) may be reused at (as in the
    // review's script: windows produced 1 s after the growth).
    await sleep(SOURCE_COUNT_MAX_AGE_MS);

    // A producer that sees the new partition at once: windows 0–2 over 3 partitions, then an
    // event per partition a minute later that closes them.
    const messages = [];
    for (let w = 0; w < WINDOWS; w++) {
      for (let j = 0; j < PER_WINDOW; j++) {
        const e = event(`p-${w}-${j}`, T0 + w * 1000 + Math.floor((j * 1000) / PER_WINDOW));
        messages.push({ key: e.prediction_id, value: await codec.encode(e), partition: j % 3 });
      }
    }
    for (let p = 0; p < 3; p++) {
      messages.push({ key: `flush-${p}`, value: await codec.encode(event(`flush-${p}`, T0 + 60_000)), partition: p });
    }
    await send(messages);

    // Before: partitions 0 and 1 closed the windows naming 2 partitions (kafkajs had not rejoined),
    // the merge completed them with 200 of 300 events and excluded partition 2's partials. The
    // warm-up window, closed by the same batches, has partition 2's frontier past it: not held.
    const psiX = async () =>
      (
        await ch.select<{ ws: number; events: number }>(
          `SELECT toUnixTimestamp64Milli(window_start) AS ws, events FROM ${ch.table('drift_windows')} FINAL
           WHERE feature = 'x' AND method = 'psi' ORDER BY ws`,
        )
      ).map((row) => [(Number(row.ws) - T0) / 1000, Number(row.events)]);
    const rows = await eventually(
      async () => {
        const got = await psiX();
        return got.length >= WINDOWS + 1 ? got : undefined;
      },
      50_000,
      250,
    );
    expect(rows).toEqual([
      [-1, 2],
      [0, PER_WINDOW],
      [1, PER_WINDOW],
      [2, PER_WINDOW],
    ]);
    await ch.close();
  }, 90_000);
});
