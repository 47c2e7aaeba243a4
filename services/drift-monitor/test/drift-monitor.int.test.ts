import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { profilesFromCsv } from '@driftline/batch-drift';
import { SchemaRegistryCodec } from '@driftline/codec';
import { type ReferenceSet, referenceSet } from '@driftline/drift';
import { createProducer, listGroups } from '@driftline/kafka';
import { contracts, type DriftAlert, type ModelEvent, type PredictionEvent } from '@driftline/schemas';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { type ClickHouse, createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it, type TestContext } from 'vitest';
import { driftMonitorService } from '../src/service.js';
import { driftEnv } from './runner.js';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'drift-ch-'));
const T0 = 1_700_000_000_000;
const WINDOWS = 6;
const SHIFT_FROM = 3;
const PER_WINDOW = 400;
const PARTITIONS = 2;

const r = seededUniform(42);
const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
const colors = ['a', 'b', 'c'];

// The reference (training data) and the stream are generated once: every scenario replays the same events.
const referenceCsv = [
  'x,y,color,prediction',
  ...Array.from({ length: 4000 }, () => `${normal()},${normal()},${colors[Math.floor(r() * 3)]},${r()}`),
].join('\n');
const stream: PredictionEvent[] = [];
for (let w = 0; w < WINDOWS; w++) {
  for (let j = 0; j < PER_WINDOW; j++) {
    stream.push({
      prediction_id: `p-${w}-${j}`,
      model: 'fraud',
      model_version: 'v1',
      entity_id: `e${j}`,
      event_time: T0 + w * 1000 + Math.floor((j * 1000) / PER_WINDOW),
      features: { x: normal() + (w >= SHIFT_FROM ? 1.5 : 0), y: normal(), color: colors[Math.floor(r() * 3)]! },
      prediction: r(),
      predicted_class: null,
    });
  }
}
const flush = (p: number): PredictionEvent => ({ ...stream[0]!, prediction_id: `flush-${p}`, event_time: T0 + 60_000 });
const ROWS_PER_WINDOW = 5 + 5 + 4 + 5; // x, y, __prediction__: psi ks js missing out_of_range; color: psi chi2 js missing

function env(prefix: string, database: string): Record<string, string> {
  return driftEnv(
    stack,
    { prefix, partitions: PARTITIONS, database, path: chPath },
    { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '2' },
  );
}

/** Until the runner's models.v1 follower has processed the one record of the deployment's models.v1. */
async function promotionRead(runner: Runner, prefix: string): Promise<void> {
  const out = new RegExp(`topic="${prefix.replaceAll('.', '\\.')}models\\.v1"[^}]*\\} 1$`, 'm');
  await eventually(
    async () =>
      out.test(await runner.context.registry.getSingleMetricAsString('driftline_records_out_total')) ? true : undefined,
    40_000,
    100,
  );
}

/**
 * `start(env)` runs a drift monitor until the test ends; then every one it started is stopped, the
 * last started first (stopping one the test stopped already does nothing). Per test, where
 * `driftMonitors()` stops them after each test of the describe: the tests after the first run at once.
 */
function monitorsOf(onTestFinished: TestContext['onTestFinished']): (env: Record<string, string>) => Promise<Runner> {
  const runners: Runner[] = [];
  onTestFinished(async () => {
    for (const runner of runners.splice(0).reverse()) await runner.stop().catch(() => {});
  });
  return async (env) => {
    const runner = await startRunner({ services: [driftMonitorService as never], env });
    runners.push(runner);
    return runner;
  };
}

async function prepareDatabase(database: string): Promise<ClickHouse> {
  const ch = await createClickHouse({ mode: 'embedded', path: chPath, database });
  await migrate(ch, migrations);
  await storeReference(ch, 'v1', referenceCsv);
  return ch;
}

/** What `driftline reference` does, minus the file: profile the training CSV and store it. */
async function storeReference(ch: ClickHouse, version: string, csv: string): Promise<ReferenceSet> {
  const set = referenceSet('fraud', version, profilesFromCsv(csv));
  await warehouseOn(ch).references.save(set);
  return set;
}

async function produce(prefix: string, events: readonly PredictionEvent[]): Promise<void> {
  const topic = `${prefix}predictions.v1`;
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
  const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
  const messages = [];
  for (const e of events) {
    // Explicit partitions: every scenario puts the same events on the same partitions.
    const partition = e.prediction_id.startsWith('flush-')
      ? Number(e.prediction_id.slice(6))
      : Number(e.entity_id.slice(1)) % PARTITIONS;
    messages.push({ key: e.prediction_id, value: await codec.encode(e), partition });
  }
  for (let i = 0; i < messages.length; i += 500) await producer.send(topic, messages.slice(i, i + 500));
  await producer.disconnect();
}

interface Row {
  feature: string;
  ws: number;
  method: string;
  statistic: number;
  p_value: number | null;
  drifted: number;
  current_size: number;
  events: number;
  late_events: number;
  reference_id: string;
}

async function rows(ch: ClickHouse): Promise<Row[]> {
  const result = await ch.select<Row>(
    `SELECT feature, toUnixTimestamp64Milli(window_start) AS ws, method, statistic, p_value, drifted,
       current_size, events, late_events, reference_id, version, threshold, error_bound, reference_size
     FROM ${ch.table('drift_windows')} FINAL ORDER BY ws, feature, method`,
  );
  return result.map((row) => ({ ...row, ws: Number(row.ws) }));
}

async function allWindows(ch: ClickHouse): Promise<Row[]> {
  return eventually(
    async () => {
      const got = await rows(ch);
      return got.length >= WINDOWS * ROWS_PER_WINDOW ? got : undefined;
    },
    90_000, // a hang guard: five tests at once on a loaded machine
    250,
  );
}

// The first test makes the baseline the next three compare with; after it, the tests run at once
// (`it.concurrent`): each has its own topics, consumer groups and database, and most of their time
// is spent waiting on brokers, group joins and window closes. Assertions use the test's own `expect`.
describe('drift-monitor on real Kafka, the registry and embedded ClickHouse', () => {
  let baseline: Row[] = [];
  beforeAll(() => {
    expect(stream).toHaveLength(WINDOWS * PER_WINDOW);
  });
  afterAll(() => {});

  it('finds the shift: windows before are not drifted, after are, one alert per drifted window', async ({
    expect,
    onTestFinished,
  }) => {
    const start = monitorsOf(onTestFinished);
    const prefix = `${uniqueName('drift1')}.`;
    const ch = await prepareDatabase(uniqueName('d1').replace('-', '_'));
    await start(env(prefix, ch.database));
    await produce(prefix, [...stream, ...Array.from({ length: PARTITIONS }, (_, p) => flush(p))]);
    baseline = await allWindows(ch);
    expect(baseline).toHaveLength(WINDOWS * ROWS_PER_WINDOW);
    const psiX = baseline.filter((row) => row.feature === 'x' && row.method === 'psi');
    expect(psiX.map((row) => row.ws - T0)).toEqual([0, 1000, 2000, 3000, 4000, 5000]);
    expect(psiX.map((row) => row.drifted)).toEqual([0, 0, 0, 1, 1, 1]);
    expect(
      psiX.every((row) => row.events === PER_WINDOW && row.current_size === PER_WINDOW && row.late_events === 0),
    ).toBe(true);
    const stable = baseline.filter((row) => row.feature !== 'x' && row.method === 'psi');
    expect(stable.every((row) => row.drifted === 0)).toBe(true);

    const kafka = kafkaFor(stack.kafkaBrokers);
    const alertCodec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.alert,
      `${prefix}alerts.v1`,
    );
    const messages = await readTopic(kafka, `${prefix}alerts.v1`, 3, 20_000);
    const alerts: DriftAlert[] = await Promise.all(messages.map((m) => alertCodec.decode(m.value)));
    expect(alerts.map((a) => [a.kind, a.window_start - T0, a.feature]).sort()).toEqual([
      ['FEATURE_DRIFT', 3000, 'x'],
      ['FEATURE_DRIFT', 4000, 'x'],
      ['FEATURE_DRIFT', 5000, 'x'],
    ]);
    expect(new Set(alerts.map((a) => a.alert_id)).size).toBe(3);
    expect(JSON.parse(alerts[0]!.evidence).drifted[0].feature).toBe('x');
    // Once: nothing more arrives.
    await expect(readTopic(kafka, `${prefix}alerts.v1`, 4, 1500)).rejects.toThrow(/read 3\/4/);
  });

  it.concurrent('two instances in one group write the same drift_windows rows as one instance', async ({
    expect,
    onTestFinished,
  }) => {
    const start = monitorsOf(onTestFinished);
    expect(baseline.length).toBeGreaterThan(0);
    const prefix = `${uniqueName('drift2')}.`;
    const ch = await prepareDatabase(uniqueName('d2').replace('-', '_'));
    await start(env(prefix, ch.database));
    await start(env(prefix, ch.database));
    await produce(prefix, [...stream, ...Array.from({ length: PARTITIONS }, (_, p) => flush(p))]);
    expect(await allWindows(ch)).toEqual(baseline);
  });

  it.concurrent('closes the windows of a stream that goes silent, without a later event (source idleness)', async ({
    expect,
    onTestFinished,
  }) => {
    const start = monitorsOf(onTestFinished);
    expect(baseline.length).toBeGreaterThan(0);
    const prefix = `${uniqueName('drift-idle')}.`;
    const ch = await prepareDatabase(uniqueName('di').replace('-', '_'));
    await start({ ...env(prefix, ch.database), DRIFTLINE_DRIFT_SOURCE_IDLE: '2s' });
    // The same stream, live (event times of now: a stream an hour behind is a replay, moved by its
    // events only), and no flush events: only processing time can close its last windows.
    const base = Math.floor(Date.now() / 1000) * 1000 - 10_000;
    await produce(
      prefix,
      stream.map((e) => ({ ...e, event_time: e.event_time - T0 + base })),
    );
    const live = (await allWindows(ch)).map((row) => ({ ...row, ws: row.ws - base + T0 }));
    expect(live).toEqual(baseline);
  });

  it.concurrent('loses no window when an instance stops mid-stream and another takes over', async ({
    expect,
    onTestFinished,
  }) => {
    const start = monitorsOf(onTestFinished);
    expect(baseline.length).toBeGreaterThan(0);
    const prefix = `${uniqueName('drift3')}.`;
    const ch = await prepareDatabase(uniqueName('d3').replace('-', '_'));
    const first = await start(env(prefix, ch.database));
    const half = stream.filter((e) => e.event_time < T0 + 2500);
    await produce(prefix, half);
    // Windows 0 and 1 are written; window 2 is open, in memory only.
    await eventually(async () => ((await rows(ch)).length >= 2 * ROWS_PER_WINDOW ? true : undefined), 60_000, 250);
    await first.stop();
    await start(env(prefix, ch.database));
    await produce(prefix, [
      ...stream.filter((e) => e.event_time >= T0 + 2500),
      ...Array.from({ length: PARTITIONS }, (_, p) => flush(p)),
    ]);
    expect(await allWindows(ch)).toEqual(baseline);
  });

  it.concurrent('leaves no consumer group behind for its models.v1 follower, however often it restarts', async ({
    expect,
    onTestFinished,
  }) => {
    const start = monitorsOf(onTestFinished);
    const prefix = `${uniqueName('drift5')}.`;
    const ch = await createClickHouse({ mode: 'embedded', path: chPath, database: uniqueName('d5').replace('-', '_') });
    await migrate(ch, migrations);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const promoted: ModelEvent = {
      model: 'fraud',
      version: 'v1',
      kind: 'PROMOTED',
      event_time: T0,
      request_id: null,
      metrics: {},
      artifact_uri: 'file:///models/fraud/v1',
      reference_uri: null,
    };
    for (let i = 0; i < 3; i++) {
      const runner = await start(env(prefix, ch.database));
      if (i === 0) {
        const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
          contracts.model,
          `${prefix}models.v1`,
        );
        const producer = await createProducer(kafka);
        await producer.send(`${prefix}models.v1`, [{ key: 'fraud', value: await codec.encode(promoted) }]);
        await producer.disconnect();
      }
      // Every start reads the promotion again (nothing stored), then stops.
      await promotionRead(runner, prefix);
      await runner.stop();
    }
    const left = (await listGroups(kafka)).filter((g) => g.startsWith(`${prefix}drift-monitor-models-`));
    expect(left).toEqual([]);
  });

  it.concurrent('swaps the reference when a new version is promoted', async ({ expect, onTestFinished }) => {
    const start = monitorsOf(onTestFinished);
    const prefix = `${uniqueName('drift4')}.`;
    const ch = await prepareDatabase(uniqueName('d4').replace('-', '_'));
    // v2 was trained on the shifted data: measured against it, the shifted stream is not drifted.
    const shifted = [
      'x,y,color,prediction',
      ...Array.from({ length: 4000 }, () => `${normal() + 1.5},${normal()},${colors[Math.floor(r() * 3)]},${r()}`),
    ].join('\n');
    const v2 = await storeReference(ch, 'v2', shifted);
    const runner = await start(env(prefix, ch.database));
    const promoted: ModelEvent = {
      model: 'fraud',
      version: 'v2',
      kind: 'PROMOTED',
      event_time: T0 + 3000,
      request_id: null,
      metrics: {},
      artifact_uri: 'file:///models/fraud/v2',
      reference_uri: null,
    };
    const modelCodec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.model,
      `${prefix}models.v1`,
    );
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    await producer.send(`${prefix}models.v1`, [{ key: 'fraud', value: await modelCodec.encode(promoted) }]);
    await producer.disconnect();
    await promotionRead(runner, prefix);
    // A version without a profile of its own is measured against the promoted one's. (Streamed as
    // v2, which has its own, the windows matched whether or not the promotion was read at all.)
    const v3stream = stream.filter((e) => e.event_time >= T0 + 3000).map((e) => ({ ...e, model_version: 'v3' }));
    await produce(prefix, [...v3stream, ...Array.from({ length: PARTITIONS }, (_, p) => flush(p))]);
    const got = await eventually(
      async () => {
        const all = await rows(ch);
        return all.length >= 3 * ROWS_PER_WINDOW ? all : undefined;
      },
      60_000,
      250,
    );
    const psiX = got.filter((row) => row.feature === 'x' && row.method === 'psi');
    expect(psiX.map((row) => [row.ws - T0, row.drifted, row.reference_id])).toEqual([
      [3000, 0, v2.referenceId],
      [4000, 0, v2.referenceId],
      [5000, 0, v2.referenceId],
    ]);
  });
});
