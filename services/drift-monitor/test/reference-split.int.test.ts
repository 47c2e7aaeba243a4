import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_EVENT_TIME_BOUNDS } from '@driftline/core';
import { type OutboundPartials, type ReferenceSet, referenceSet } from '@driftline/drift';
import { expectationsOf, loadFeatureViews } from '@driftline/features';
import { createProducer, type DecodedRecord } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { createClickHouse, migrate, migrations, type ReferenceStore, warehouseOn } from '@driftline/warehouse';
import { describe, expect, inject, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { PARTIALS_TOPIC } from '../src/service.js';
import { stageOneProcessor } from '../src/stage-one.js';
import { driftEnv, driftMonitors } from './runner.js';
import { memoryProgress } from './support.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'reference-split-'));
const viewsPath = join(dir, 'views.yaml');
writeFileSync(
  viewsPath,
  `views:
  - name: shop
    entity: user_id
    features:
      x:
        type: double
        expect: { max_null_rate: 0.2 }
`,
);
const expectations = expectationsOf(loadFeatureViews(viewsPath));

// `driftline reference` re-stored the reference of (split, v1): R1 first, then R2 (the latest).
const r1 = referenceSet('split', 'v1', new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i))]]));
const r2 = referenceSet(
  'split',
  'v1',
  new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i + 0.5))]]),
);

/** A stage-one instance whose catalog still names `ref` (it refreshes on its own, every minute). */
const holding = (ref: ReferenceSet): ReferenceStore => ({
  save: async () => {},
  latest: async () => ref,
  byId: async (id) => [r1, r2].find((r) => r.referenceId === id),
  newest: async () => [ref],
  catalog: async () => [{ model: ref.model, version: ref.version, referenceId: ref.referenceId }],
});

/** What the real stage one of `partition` (of two) sends to the partials topic for one window on `ref`. */
async function partialsOf(
  topic: string,
  ref: ReferenceSet,
  partition: number,
  windowStart: number,
  xs: ReadonlyArray<number | null>,
): Promise<OutboundPartials[]> {
  const out: OutboundPartials[] = [];
  const stageOne = stageOneProcessor({
    spec: { sizeMs: 1000, latenessMs: 0 },
    references: new ReferenceCache(holding(ref)),
    progress: memoryProgress(),
    group: 'g',
    sourceTopic: topic,
    sourcePartitions: 2,
    mergePartitions: 2,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    expectations,
    decode: async () => {
      throw new Error('not used');
    },
    emit: async (messages) => {
      out.push(...messages);
    },
  });
  const times = [...xs.map((_, i) => windowStart + 100 + i), windowStart + 1100];
  const items: DecodedRecord<PredictionEvent>[] = times.map((t, i) => ({
    record: { topic, partition, offset: String(i), key: null, value: null, headers: {}, timestamp: Date.now() },
    value: {
      prediction_id: `p${partition}-${i}`,
      model: 'split',
      model_version: 'v1',
      entity_id: 'e',
      event_time: t,
      features: { x: i < xs.length ? xs[i]! : 1 },
      prediction: 0,
      predicted_class: null,
    },
  }));
  await stageOne.process(items, { topic, partition, highWatermark: '0' });
  return out;
}

describe('a reference re-stored while stage-one instances hold different ones (real Kafka, embedded ClickHouse)', () => {
  const monitors = driftMonitors();

  it('writes one drift answer per window on one reference and quality over all its events', async () => {
    const prefix = `${uniqueName('refsplit')}.`;
    const database = uniqueName('rs').replaceAll('-', '_');
    const ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'ch'), database });
    await migrate(ch, migrations);
    const references = warehouseOn(ch).references;
    await references.save(r1);
    await references.save(r2);
    const runner = await monitors.start(
      driftEnv(
        stack,
        { prefix, partitions: 2, database, path: join(dir, 'ch') },
        { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '2', DRIFTLINE_FEATURE_VIEWS: viewsPath },
      ),
    );

    // Partition 0's instance still on R1 (12 events, no null), partition 1's on R2 (8 events, 3 null).
    const sourceTopic = `${prefix}predictions.v1`;
    const windowStart = Math.floor((Date.now() - 60_000) / 1000) * 1000;
    const messages = [
      ...(await partialsOf(sourceTopic, r1, 0, windowStart, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])),
      ...(await partialsOf(sourceTopic, r2, 1, windowStart, [90, null, null, null, 95, 96, 97, 98])),
    ];
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    await producer.send(
      `${prefix}${PARTIALS_TOPIC}`,
      messages.map((m) => ({ key: m.key, value: m.value, partition: m.partition })),
    );
    await producer.disconnect();

    const ws = `toUnixTimestamp64Milli(window_start) = ${windowStart}`;
    const quality = await eventually(
      async () => {
        const got = await ch.select<{ observed: number; count: number; events: number }>(
          `SELECT observed, count, events FROM ${ch.table('data_quality_windows')} FINAL
           WHERE model = 'split' AND expectation = 'null_rate' AND ${ws}`,
        );
        return got.length > 0 ? got : undefined;
      },
      60_000,
      250,
    );
    expect(quality.map((q) => [q.observed, Number(q.count), Number(q.events)])).toEqual([[3 / 20, 20, 20]]);
    const psi = await ch.select<{ reference_id: string; events: number; drifted: number }>(
      `SELECT reference_id, events, drifted FROM ${ch.table('drift_windows')} FINAL
       WHERE model = 'split' AND feature = 'x' AND method = 'psi' AND ${ws}`,
    );
    // The part with the most events (R1), with its own events: one answer, not one per reference.
    expect(psi.map((r) => [r.reference_id, Number(r.events)])).toEqual([[r1.referenceId, 12]]);
    const splits = await runner.context.registry.getSingleMetricAsString('driftline_drift_reference_splits_total');
    expect(splits).toMatch(/driftline_drift_reference_splits_total(\{[^}]*\})? 1$/m);
    await ch.close();
  });
});
