import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceSet } from '@driftline/drift';
import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { chTime, createClickHouse, migrate, migrations, RETENTION_DAYS, warehouseOn } from '../src/index.js';
import { ClickHouseReferenceStore } from '../src/tables/reference-profiles.js';
import { serverUrl, testClickHouse } from './fixtures/clickhouse.js';

// The embedded engine (chdb) is a real ClickHouse; one data directory per test process.
const path = mkdtempSync(join(tmpdir(), 'driftline-ch-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;

describe('the warehouse on the embedded engine', () => {
  it('creates the database, runs migrations once, and takes query parameters', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    const things = [
      {
        id: '0001_things',
        statements: [
          `CREATE TABLE IF NOT EXISTS {db}.things (id String, at DateTime64(3, 'UTC'), kind LowCardinality(String), v Float64)
           ENGINE = ReplacingMergeTree ORDER BY id`,
        ],
      },
    ];
    expect(await migrate(ch, things)).toEqual(['0001_things']);
    expect(await migrate(ch, things)).toEqual([]);
    await ch.insert('things', [
      { id: 'a', at: 1_700_000_000_000, kind: "it's", v: 1.5 },
      { id: 'a', at: 1_700_000_000_000, kind: "it's", v: 1.5 },
      { id: 'b', at: 1_700_000_000_001, kind: 'x', v: 2 },
    ]);
    const rows = await ch.select(
      `SELECT id, v, toUnixTimestamp64Milli(at) AS at FROM ${ch.table('things')} FINAL WHERE kind = {kind:String} ORDER BY id`,
      { kind: "it's" },
    );
    expect(rows).toEqual([{ id: 'a', v: 1.5, at: 1_700_000_000_000 }]);
    expect(() => ch.table('x; DROP TABLE y')).toThrow(/not a table identifier/);
    await ch.close();
  });

  it('applies the one migration list: every table of driftline, once', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    expect(await migrate(ch, migrations)).toEqual(migrations.map((m) => m.id).sort());
    // Every id recorded (in one insert), so a second run applies nothing.
    expect(await migrate(ch, migrations)).toEqual([]);
    const recorded = await ch.select<{ id: string }>(
      `SELECT id FROM ${ch.table('schema_migrations')} FINAL ORDER BY id`,
    );
    expect(recorded.map((r) => r.id)).toEqual(migrations.map((m) => m.id).sort());
    const tables = await ch.select<{ name: string }>('SELECT name FROM system.tables WHERE database = {db:String}', {
      db: ch.database,
    });
    expect(tables.map((t) => t.name).sort()).toEqual([
      'alert_deliveries',
      'alert_delivery_ids',
      'alert_delivery_ids_backfill',
      'alert_delivery_ids_view',
      'calibration_maps',
      'data_quality_windows',
      'drift_progress',
      'drift_quarantine',
      'drift_windows',
      'labeled_predictions',
      'model_transitions',
      'model_versions',
      'performance_windows',
      'reference_profiles',
      'retrain_decisions',
      'schema_migrations',
      'score_histograms',
      'score_histograms_v2',
      'sequential_detections',
      'skew_windows',
      'skew_windows_v2',
      'unlabeled_predictions',
    ]);
    const wh = warehouseOn(ch);
    await wh.progress.save('merge', 'g', 't', 0, { position: 5, offset: 7 });
    expect(await wh.progress.load('merge', 'g', 't', 0)).toEqual({ position: 5, offset: 7 });
    const quarantined = {
      model: 'm',
      version: 'v1',
      reference_id: 'r',
      window_start: chTime(Date.now() - 120_000),
      window_end: chTime(Date.now() - 60_000),
      events: 3,
      late_events: 0,
      source_partitions: 2,
      idle_partitions: 0,
      code: 'SINK_REJECTED',
      reason: 'refused',
      topic: 'drift.partials.v1',
      partition: 1,
    };
    // Quarantined twice (a replay): one row under FINAL, the newest. (Recent times: the table's TTL
    // is 365 days.)
    await wh.driftQuarantine.insert([{ ...quarantined, quarantined_at: chTime(Date.now() - 1000) }]);
    await wh.driftQuarantine.insert([{ ...quarantined, reason: 'again', quarantined_at: chTime(Date.now()) }]);
    expect(await ch.select<{ reason: string }>(`SELECT reason FROM ${ch.table('drift_quarantine')} FINAL`)).toEqual([
      { reason: 'again' },
    ]);
    expect(await wh.decisions.baseline('m', 'v-unknown')).toBeUndefined();
    expect(await wh.summary.counts()).toMatchObject({ driftRows: 0, modelVersions: 0 });
  });

  it('gives every table a TTL counted from the write, but the registries (RETENTION_DAYS)', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
    const tables = await ch.select<{ name: string; q: string }>(
      'SELECT name, create_table_query AS q FROM system.tables WHERE database = {db:String} ORDER BY name',
      { db: ch.database },
    );
    const ttlOf = (q: string) => /\sTTL\s(.*?)(\sSETTINGS\s|$)/s.exec(q)?.[1]?.trim();
    expect(tables.filter((t) => ttlOf(t.q) === undefined).map((t) => t.name)).toEqual([
      'alert_delivery_ids_view', // a materialized view: its rows are alert_delivery_ids' (TTL 90 days)
      'calibration_maps', // one per reference, like reference_profiles (see performance-estimates.ts)
      'model_transitions', // the model-controller's state: no TTL on purpose (see its migration)
      'model_versions',
      'reference_profiles',
      'schema_migrations',
    ]);
    for (const [table, days] of Object.entries(RETENTION_DAYS)) {
      const q = tables.find((t) => t.name === table)!.q;
      expect(ttlOf(q), table).toMatch(new RegExp(`^written_at \\+ (toIntervalDay\\(${days}\\)|INTERVAL ${days} DAY)$`));
    }
    // The retention clock is the write, not a time in the row: old history written now is kept.
    await ch.insert('drift_progress', [
      {
        stage: 'merge',
        group_id: 'g',
        topic: 't',
        partition: 0,
        position: 5,
        offset: 7,
        updated_at: chTime(Date.UTC(2020, 0, 1)),
      },
    ]);
    await ch.command(`OPTIMIZE TABLE ${ch.table('drift_progress')} FINAL`);
    expect(await warehouseOn(ch).progress.load('merge', 'g', 't', 0)).toEqual({ position: 5, offset: 7 });
    // And `written_at` is not part of SELECT *.
    const [row] = await ch.select<Record<string, unknown>>(`SELECT * FROM ${ch.table('drift_progress')}`);
    expect(Object.keys(row!)).not.toContain('written_at');
  });

  it('pages training rows newest first by (time, id), each page one bounded query', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const t0 = Date.now() - 3_600_000; // recent: inside the tables' retention
    const prediction = (i: number) => ({
      prediction_id: `p${String(i).padStart(3, '0')}`,
      model: i < 30 ? 'm' : 'other',
      model_version: 'v1',
      entity_id: 'e',
      event_time: t0 + Math.floor(i / 3) * 1000, // three rows per time: ties broken by id
      features: { x: i },
      prediction: 0.5,
      predicted_class: null,
    });
    await wh.predictions.insertJoined(
      Array.from({ length: 40 }, (_, i) => ({
        prediction: prediction(i),
        label: {
          prediction_id: prediction(i).prediction_id,
          model: prediction(i).model,
          event_time: t0 + 99_000,
          label: i % 2,
        },
        joinedAt: t0 + 100_000,
      })),
    );
    // A label that is not 0 or 1 (the label-joiner takes any number) is no training row.
    await wh.predictions.insertJoined([
      {
        prediction: { ...prediction(5), prediction_id: 'p-invalid' },
        label: { prediction_id: 'p-invalid', model: 'm', event_time: t0 + 99_000, label: 2 },
        joinedAt: t0 + 100_000,
      },
    ]);
    const seen: string[] = [];
    let before: { time: number; predictionId: string } | undefined;
    for (;;) {
      const page = await wh.predictions.trainingPage('m', t0 + 1000, t0 + 9000, 4, before);
      expect(page.length).toBeLessThanOrEqual(4);
      seen.push(...page.map((r) => r.predictionId));
      const last = page.at(-1);
      if (page.length < 4 || last === undefined) break;
      before = { time: last.time, predictionId: last.predictionId };
    }
    // Times t0+1s … t0+8s of model m: rows 3..26, newest first.
    expect(seen).toEqual(Array.from({ length: 24 }, (_, i) => `p${String(26 - i).padStart(3, '0')}`));
  });

  it('newest(limit): the latest reference of the pairs saved last, in one bounded query', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
    let now = 1_700_000_000_000;
    const store = new ClickHouseReferenceStore(ch, () => now);
    const profile = buildNumericProfile([1, 2, 3]);
    const save = async (model: string, version: string) => {
      now += 1_000;
      const set = referenceSet(model, version, new Map([[`x-${now}`, profile]]));
      await store.save(set);
      return set.referenceId;
    };
    await save('m', 'v1');
    await save('m', 'v2');
    await save('n', 'v1');
    const latest = await save('m', 'v1'); // saved again: now the newest pair
    expect((await store.newest(2)).map((s) => [s.model, s.version, s.referenceId === latest])).toEqual(
      expect.arrayContaining([
        ['m', 'v1', true],
        ['n', 'v1', false],
      ]),
    );
    expect(await store.newest(2)).toHaveLength(2);
    expect(await store.newest(10)).toHaveLength(3);
    // The catalog names each pair asked about that has a reference, once, with its latest reference
    // id (m/v1 was saved again); a pair without one is left out, and a pair not asked about too.
    const catalog = await store.catalog([
      { model: 'm', version: 'v1' },
      { model: 'n', version: 'v1' },
      { model: 'm', version: 'v1' },
      { model: 'n', version: 'v2' },
    ]);
    expect(catalog.map((c) => [c.model, c.version]).sort()).toEqual([
      ['m', 'v1'],
      ['n', 'v1'],
    ]);
    expect(catalog.find((c) => c.model === 'm')!.referenceId).toBe(latest);
    expect(await store.catalog([])).toEqual([]);
    await ch.close();
  });

  it('classifies a rejected row by its ClickHouse code', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
    const error = await ch
      .insert('drift_progress', [{ stage: 'merge', group_id: 'g', topic: 't', partition: -1, position: 0, offset: 0 }])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toMatchObject({ code: 'SINK_REJECTED', retriable: false });
    expect((error as Error).message).toMatch(/CANNOT_PARSE_NUMBER \(72\)/);
  });

  it.skipIf(serverUrl !== undefined)(
    'refuses a second data directory in the same process, naming the variable',
    async () => {
      await expect(createClickHouse({ mode: 'embedded', path: `${path}-other`, database: 'd' })).rejects.toThrow(
        /DRIFTLINE_CLICKHOUSE_PATH/,
      );
    },
  );
});
