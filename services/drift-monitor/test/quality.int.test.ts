import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { profilesFromCsv } from '@driftline/batch-drift';
import { SchemaRegistryCodec } from '@driftline/codec';
import { referenceSet } from '@driftline/drift';
import { createProducer } from '@driftline/kafka';
import { contracts, type DriftAlert, type FeatureValue, type PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { describe, expect, inject, it } from 'vitest';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'quality-'));
const T0 = 1_700_000_000_000;
const PER_WINDOW = 200;
const PARTITIONS = 2;
const r = seededUniform(7);
const colors = ['a', 'b', 'c'];

const viewsPath = join(dir, 'views.yaml');
writeFileSync(
  viewsPath,
  `views:
  - name: shop
    entity: user_id
    features:
      x:
        type: double
        expect: { max_null_rate: 0.05, range: { min: -5, max: 5, max_share_outside: 0.01 } }
      color:
        type: string
        expect: { categories: { allowed: [a, b, c] }, max_cardinality: 3 }
`,
);

const referenceCsv = [
  'x,color,prediction',
  ...Array.from({ length: 2000 }, () => `${r() * 4 - 2},${colors[Math.floor(r() * 3)]},${r()}`),
].join('\n');

// Window 0 clean; window 1: 20% of x null; window 2: 10% of x at 100 (out of range) and 10% of colors "z".
const stream: PredictionEvent[] = [];
for (let w = 0; w < 3; w++) {
  for (let j = 0; j < PER_WINDOW; j++) {
    let x: FeatureValue = r() * 4 - 2;
    let color: FeatureValue = colors[j % 3]!;
    if (w === 1 && j % 5 === 0) x = null;
    if (w === 2 && j % 10 === 0) x = 100;
    if (w === 2 && j % 10 === 1) color = 'z';
    stream.push({
      prediction_id: `p-${w}-${j}`,
      model: 'shop',
      model_version: 'v1',
      entity_id: `e${j}`,
      event_time: T0 + w * 1000 + Math.floor((j * 1000) / PER_WINDOW),
      features: { x, color },
      prediction: r(),
      predicted_class: null,
    });
  }
}

/** The expected shares, counted directly on the stream (not through the sketch or the partials). */
function expectedShares(w: number) {
  const events = stream.filter((e) => e.event_time >= T0 + w * 1000 && e.event_time < T0 + (w + 1) * 1000);
  const xs = events.map((e) => e.features.x);
  const present = xs.filter((v): v is number => typeof v === 'number');
  const colorsSeen = events.map((e) => e.features.color as string);
  return {
    null_rate: (xs.length - present.length) / xs.length,
    range: present.filter((v) => v < -5 || v > 5).length / present.length,
    categories: colorsSeen.filter((c) => !colors.includes(c)).length / colorsSeen.length,
    cardinality: new Set(colorsSeen).size,
  };
}

interface QualityRow {
  feature: string;
  expectation: string;
  ws: number;
  observed: number;
  bound: number;
  passed: number;
  events: number;
}

describe('data-quality expectations in the drift-monitor (real Kafka, registry, embedded ClickHouse)', () => {
  const monitors = driftMonitors();

  it('writes one row per (window, feature, expectation) and a DATA_QUALITY alert per failing window', async () => {
    const prefix = `${uniqueName('quality')}.`;
    const database = uniqueName('q').replace('-', '_');
    const ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'ch'), database });
    await migrate(ch, migrations);
    await warehouseOn(ch).references.save(referenceSet('shop', 'v1', profilesFromCsv(referenceCsv)));
    await monitors.start(
      driftEnv(
        stack,
        { prefix, partitions: PARTITIONS, database, path: join(dir, 'ch') },
        { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '2', DRIFTLINE_FEATURE_VIEWS: viewsPath },
      ),
    );

    const topic = `${prefix}predictions.v1`;
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    const flush = (p: number): PredictionEvent => ({ ...stream[0]!, prediction_id: `f${p}`, event_time: T0 + 60_000 });
    const messages = [];
    for (const e of stream) {
      messages.push({
        key: e.prediction_id,
        value: await codec.encode(e),
        partition: Number(e.entity_id.slice(1)) % 2,
      });
    }
    for (let p = 0; p < PARTITIONS; p++)
      messages.push({ key: `f${p}`, value: await codec.encode(flush(p)), partition: p });
    await producer.send(topic, messages);
    await producer.disconnect();

    const rows = await eventually(
      async () => {
        const got = await ch.select<QualityRow>(
          `SELECT feature, expectation, toUnixTimestamp64Milli(window_start) AS ws, observed, bound, passed, events
           FROM ${ch.table('data_quality_windows')} FINAL WHERE model = 'shop' ORDER BY ws, feature, expectation`,
        );
        return got.length >= 3 * 7 ? got.map((x) => ({ ...x, ws: Number(x.ws) - T0 })) : undefined;
      },
      60_000,
      250,
    );
    // x: type, null_rate, range; color: type, categories, cardinality, and the built-in missing_share
    // (x declares a max_null_rate, which decides for it instead).
    expect(rows).toHaveLength(21);
    for (let w = 0; w < 3; w++) {
      const got = (feature: string, expectation: string) =>
        rows.find((x) => x.ws === w * 1000 && x.feature === feature && x.expectation === expectation)!;
      const want = expectedShares(w);
      expect(got('x', 'null_rate').observed).toBeCloseTo(want.null_rate, 12);
      expect(got('x', 'range').observed).toBeCloseTo(want.range, 12);
      expect(got('color', 'categories').observed).toBeCloseTo(want.categories, 12);
      expect(got('color', 'cardinality').observed).toBe(want.cardinality); // linear counting: exact at 3–4 values
      expect(got('x', 'type')).toMatchObject({ observed: 0, passed: 1 });
      expect(got('x', 'null_rate').events).toBe(PER_WINDOW);
      expect(got('color', 'missing_share')).toMatchObject({ observed: 0, passed: 1, events: PER_WINDOW });
      expect(got('x', 'missing_share')).toBeUndefined();
    }
    const failed = rows.filter((x) => x.passed === 0).map((x) => [x.ws, x.feature, x.expectation]);
    expect(failed).toEqual([
      [1000, 'x', 'null_rate'],
      [2000, 'color', 'cardinality'],
      [2000, 'color', 'categories'],
      [2000, 'x', 'range'],
    ]);

    const alertCodec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.alert,
      `${prefix}alerts.v1`,
    );
    const kafka = kafkaFor(stack.kafkaBrokers);
    // Drift alerts share the topic (x and color also drift in window 2): read until no more arrive.
    let all: DriftAlert[] = [];
    for (let n = 2; n <= 12; n++) {
      const got = await readTopic(kafka, `${prefix}alerts.v1`, n, n === 2 ? 30_000 : 3_000).catch(() => undefined);
      if (got === undefined) break;
      all = await Promise.all(got.map((m) => alertCodec.decode(m.value)));
    }
    const quality = all.filter((a) => a.kind === 'DATA_QUALITY').sort((a, b) => a.window_start - b.window_start);
    expect(quality.map((a) => [a.window_start - T0, a.feature, a.method])).toEqual([
      [1000, 'x', 'null_rate'],
      [2000, null, 'categories'],
    ]);
    expect(JSON.parse(quality[1]!.evidence).failed.map((f: { feature: string }) => f.feature)).toEqual([
      'color',
      'color',
      'x',
    ]);
    expect(new Set(quality.map((a) => a.alert_id)).size).toBe(2);
    await ch.close();
  });
});
