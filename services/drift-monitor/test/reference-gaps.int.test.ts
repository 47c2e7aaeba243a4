import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { profilesFromCsv } from '@driftline/batch-drift';
import { SchemaRegistryCodec } from '@driftline/codec';
import type { Logger } from '@driftline/core';
import { referenceSet } from '@driftline/drift';
import { createProducer, ensureTopics } from '@driftline/kafka';
import { contracts, type ModelEvent, type PredictionEvent } from '@driftline/schemas';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { chTime, createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { driftMonitorService } from '../src/service.js';
import { driftEnv } from './runner.js';

const stack = inject('stack');
const T0 = 1_700_000_000_000;
const PARTITIONS = 2;
/** One embedded ClickHouse per process: the tests' databases share its path. */
const path = mkdtempSync(join(tmpdir(), 'drift-refs-'));

const r = seededUniform(23);
const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
const csv = () => ['x,prediction', ...Array.from({ length: 1000 }, () => `${normal()},${r()}`)].join('\n');

interface Line {
  readonly level: 'warn' | 'error';
  readonly obj: Record<string, unknown>;
  readonly msg: string;
}

/** A logger that keeps the warnings and errors of every child (the service logs through one). */
function keepingLogger(lines: Line[]): Logger {
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (obj, msg) => {
      lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg: msg ?? '' });
    },
    error: (obj, msg) => {
      lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg: msg ?? '' });
    },
    child: () => logger,
  };
  return logger;
}

const modelEvent = (kind: ModelEvent['kind'], version: string, at: number, previous: string | null): ModelEvent => ({
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

/** Predictions of (model, version) in windows `from`..`to` − 1 (1 s each), then two that close the last. */
function predictions(models: ReadonlyArray<readonly [string, string]>, from: number, to: number): PredictionEvent[] {
  const out: PredictionEvent[] = [];
  for (let w = from; w <= to; w++)
    for (let j = 0; j < (w < to ? 100 : PARTITIONS); j++) {
      const [model, version] = models[j % models.length]!;
      out.push({
        prediction_id: `p-${w}-${j}`,
        model,
        model_version: version,
        entity_id: `e${j}`,
        event_time: T0 + w * 1000 + j * 5,
        features: { x: normal() + 3 },
        prediction: r(),
        predicted_class: null,
      });
    }
  return out;
}

describe('drift-monitor: references missing or unreadable (real Kafka, the registry, embedded ClickHouse)', () => {
  const runners: Runner[] = [];
  afterEach(async () => {
    for (const runner of runners.splice(0).reverse()) await runner.stop().catch(() => {});
  });

  async function deployment(name: string) {
    const prefix = `${uniqueName(name)}.`;
    const database = uniqueName(name).replaceAll('-', '_');
    const ch = await createClickHouse({ mode: 'embedded', path, database });
    await migrate(ch, migrations);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const registry = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    await ensureTopics(kafka, [
      { topic: `${prefix}models.v1`, partitions: PARTITIONS },
      { topic: `${prefix}predictions.v1`, partitions: PARTITIONS },
    ]);
    const env = driftEnv(
      stack,
      { prefix, partitions: PARTITIONS, database, path },
      { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '2', DRIFTLINE_LOG_LEVEL: 'warn' },
    );
    const start = async (lines: Line[]) => {
      const runner = await startRunner({
        services: [driftMonitorService as never],
        env,
        logger: keepingLogger(lines),
      });
      runners.push(runner);
      return runner;
    };
    const send = async (events: readonly PredictionEvent[]) => {
      const codec = registry.forTopic(contracts.prediction, `${prefix}predictions.v1`);
      const producer = await createProducer(kafka);
      await producer.send(
        `${prefix}predictions.v1`,
        await Promise.all(
          events.map(async (e) => ({
            key: e.prediction_id,
            value: await codec.encode(e),
            partition: Number(e.entity_id.slice(1)) % PARTITIONS,
          })),
        ),
      );
      await producer.disconnect();
    };
    const promote = async (events: readonly ModelEvent[]) => {
      const codec = registry.forTopic(contracts.model, `${prefix}models.v1`);
      const producer = await createProducer(kafka);
      await producer.send(
        `${prefix}models.v1`,
        await Promise.all(events.map(async (e) => ({ key: e.model, value: await codec.encode(e) }))),
      );
      await producer.disconnect();
    };
    const windows = (where: string) =>
      ch.select<{ model: string; version: string; ws: number; events: number }>(
        `SELECT model, version, toUnixTimestamp64Milli(window_start) - ${T0} AS ws, max(events) AS events
         FROM ${ch.table('drift_windows')} FINAL WHERE ${where} GROUP BY model, version, ws ORDER BY model, version, ws`,
      );
    return { ch, start, send, promote, windows };
  }

  it('warns per (model, version) of predictions no reference measures: a version promoted without one, a model without any', async () => {
    const d = await deployment('drift-unref');
    await warehouseOn(d.ch).references.save(referenceSet('fraud', 'v1', profilesFromCsv(csv())));
    // v3 is promoted without a reference (the trainer's save failed): it never borrows v1's.
    await d.promote([modelEvent('PROMOTED', 'v1', 0, null), modelEvent('PROMOTED', 'v3', 2000, 'v1')]);
    const lines: Line[] = [];
    const runner = await d.start(lines);
    await d.send(
      predictions(
        [
          ['fraud', 'v3'],
          ['fraud', 'v3'],
          ['fraud', 'v3'],
          ['never', 'v9'], // a model that never had a reference
        ],
        2,
        6,
      ),
    );

    const unmonitored = (model: string, version: string) =>
      lines
        .filter((l) => l.level === 'warn' && l.obj.model === model && l.obj.version === version)
        .filter((l) => l.msg.includes('not monitored for drift'));
    // 400 predictions of windows 2..5 and the 2 that close them: 3 of 4 are v3's, 1 of 4 `never`'s.
    const unreferencedEvents = async () =>
      Number(
        (await runner.context.registry.metrics()).match(
          /driftline_drift_events_total\{outcome="unreferenced",service="drift-monitor"\} (\d+)/,
        )?.[1] ?? 0,
      );
    await eventually(async () => ((await unreferencedEvents()) >= 402 ? true : undefined), 30_000, 250);
    // One line each for the interval (5 minutes): the first batch's events; the rest are counted
    // into the next line.
    for (const [model, version, events] of [
      ['fraud', 'v3', 302],
      ['never', 'v9', 100],
    ] as const) {
      const written = unmonitored(model, version);
      expect(written, `${model}/${version}`).toHaveLength(1);
      expect(Number(written[0]!.obj.unmonitoredEvents)).toBeGreaterThan(0);
      expect(Number(written[0]!.obj.unmonitoredEvents)).toBeLessThanOrEqual(events);
      expect(String(written[0]!.obj.fix)).toContain(`driftline reference --model ${model} --version ${version}`);
    }
    const metrics = await runner.context.registry.metrics();
    expect(metrics).toMatch(/driftline_drift_events_total\{outcome="unreferenced",service="drift-monitor"\} 402/);
    // Still no rows for them: the warning says so, it does not measure on another version's reference.
    expect(await d.windows(`version IN ('v3', 'v9')`)).toEqual([]);
  }, 60_000);

  it('starts with one unreadable reference among good ones: that one left out, logged and counted, the others measured', async () => {
    const d = await deployment('drift-badref');
    const good = referenceSet('fraud', 'v1', profilesFromCsv(csv()));
    await warehouseOn(d.ch).references.save(good);
    // A profile of a format this release does not read (a trainer of another release), for model `other`.
    const profile = { ...JSON.parse(JSON.stringify(good.profiles[0])), format: 'driftline.profile/2' };
    await d.ch.insert('reference_profiles', [
      {
        model: 'other',
        version: 'v1',
        reference_id: 'bad-1',
        feature: 'x',
        kind: 'numeric',
        profile: JSON.stringify(profile),
        created_at: chTime(Date.now()),
      },
    ]);

    const lines: Line[] = [];
    const runner = await d.start(lines); // threw ConfigError for every model before
    const skipped = lines.filter((l) => l.level === 'error' && l.obj.model === 'other');
    expect(skipped.map((l) => [l.obj.version, l.obj.feature, l.obj.referenceId])).toEqual([['v1', 'x', 'bad-1']]);
    expect(String(skipped[0]!.obj.reason)).toContain('reference_profiles[other/v1/x].profile.format');
    const metrics = await runner.context.registry.metrics();
    expect(metrics).toMatch(/driftline_drift_references_invalid_total\{service="drift-monitor"\} 1/);

    // Traffic of both: fraud's windows are written; other's predictions go to the DLQ as a running
    // instance sends them (it loads the reference when they come, and cannot read it).
    await d.send(
      predictions(
        [
          ['fraud', 'v1'],
          ['fraud', 'v1'],
          ['fraud', 'v1'],
          ['other', 'v1'],
        ],
        0,
        3,
      ),
    );
    const fraud = await eventually(
      async () => {
        const rows = await d.windows(`model = 'fraud'`);
        return rows.length >= 3 ? rows : undefined;
      },
      30_000,
      250,
    );
    expect(fraud.map((w) => [w.version, Number(w.ws), Number(w.events)])).toEqual([
      ['v1', 0, 75],
      ['v1', 1000, 75],
      ['v1', 2000, 75],
    ]);
    const dlq = await eventually(
      async () => {
        const m = (await runner.context.registry.metrics()).match(
          /driftline_records_dlq_total\{topic="[^"]*predictions\.v1",code="CONFIG_INVALID",service="drift-monitor"\} (\d+)/,
        );
        return m !== null && Number(m[1]) >= 75 ? Number(m[1]) : undefined;
      },
      30_000,
      250,
    );
    expect(dlq).toBe(75);
    expect(await d.windows(`model = 'other'`)).toEqual([]);
  }, 60_000);
  it("an unreadable reference's predictions, alone in a batch or among another model's, are dead-lettered one by one: the partition is not held, the other model's windows come at once", async () => {
    const d = await deployment('drift-badref-held');
    const good = referenceSet('fraud', 'v1', profilesFromCsv(csv()));
    await warehouseOn(d.ch).references.save(good);
    const profile = JSON.stringify({ ...JSON.parse(JSON.stringify(good.profiles[0])), format: 'driftline.profile/2' });
    const badRow = (model: string, referenceId: string) => ({
      model,
      version: 'v1',
      reference_id: referenceId,
      feature: 'x',
      kind: 'numeric',
      profile,
      created_at: chTime(Date.now()),
    });
    // `other`'s is there at start-up (left out by preload); `third`'s is stored while it runs.
    await d.ch.insert('reference_profiles', [badRow('other', 'bad-1')]);
    const lines: Line[] = [];
    const runner = await d.start(lines);
    await d.ch.insert('reference_profiles', [badRow('third', 'bad-2')]);
    const dlq = async () =>
      Number(
        (await runner.context.registry.metrics()).match(
          /driftline_records_dlq_total\{topic="[^"]*predictions\.v1",code="CONFIG_INVALID",service="drift-monitor"\} (\d+)/,
        )?.[1] ?? 0,
      );
    const started = Date.now();
    // First the two bad models' predictions alone, on both partitions: every record of those
    // batches fails. They were held as a processor fault (60 s per record), and every model's
    // predictions behind them on those partitions with them.
    const bad: PredictionEvent[] = [];
    for (const model of ['other', 'third'])
      for (let j = 0; j < 10; j++)
        bad.push({
          prediction_id: `${model}-${j}`,
          model,
          model_version: 'v1',
          entity_id: `e${j}`,
          event_time: T0 + 100 + j,
          features: { x: normal() },
          prediction: r(),
          predicted_class: null,
        });
    await d.send(bad);
    expect(await eventually(async () => ((await dlq()) >= 20 ? dlq() : undefined), 45_000, 100)).toBe(20);
    // Then fraud's and more of theirs, mixed in the same batches (bisected before, a query per half).
    const mixed = predictions(
      [
        ['fraud', 'v1'],
        ['other', 'v1'],
        ['fraud', 'v1'],
        ['third', 'v1'],
      ],
      0,
      3,
    ).map((e) => ({ ...e, prediction_id: `m-${e.prediction_id}` }));
    await d.send(mixed);
    const fraud = await eventually(
      async () => {
        const rows = await d.windows(`model = 'fraud'`);
        return rows.length >= 3 ? rows : undefined;
      },
      45_000,
      100,
    );
    // Not held 60 s per record; slack for a loaded run's Kafka and engine.
    expect(Date.now() - started).toBeLessThan(45_000);
    expect(fraud.map((w) => [w.version, Number(w.ws), Number(w.events)])).toEqual([
      ['v1', 0, 50],
      ['v1', 1000, 50],
      ['v1', 2000, 50],
    ]);
    // Every bad prediction dead-lettered once, each with its own reason; none held as a fault.
    const badMixed = mixed.filter((e) => e.model !== 'fraud').length;
    expect(await eventually(async () => ((await dlq()) >= 20 + badMixed ? dlq() : undefined), 15_000, 100)).toBe(
      20 + badMixed,
    );
    expect(lines.filter((l) => l.msg.includes('processor fault'))).toEqual([]);
    expect(await d.windows(`model IN ('other', 'third')`)).toEqual([]);
  }, 120_000);
});
