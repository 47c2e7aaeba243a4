// drift_windows, data_quality_windows and sequential_detections after a change of the window length
// (DRIFTLINE_DRIFT_WINDOW), on a real ClickHouse (the embedded engine): window_end was no key column,
// so under FINAL and merges a window of the new length replaced the window of the old length starting
// at the same time (found by a review; 0710 had fixed the same in skew_windows). 0730 puts it in the key.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClickHouse,
  chTime,
  createClickHouse,
  type DataQualityRow,
  type DriftWindowRow,
  type Migration,
  migrate,
  migrations,
  warehouseOn,
} from '../src/index.js';
import { rebuildUnderKey } from '../src/key-rebuild.js';
import { DRIFT_WINDOWS_WINDOW_END_REBUILD } from '../src/tables/drift-windows.js';
import { testClickHouse } from './fixtures/clickhouse.js';
import { previousRelease as previousReleaseOf } from './fixtures/previous-release.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-window-end-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const M = 60_000;
// Inside the tables' retention (their TTL counts from the write, but a test never waits on it).
const T = Date.UTC(2026, 10, 2, 10, 0);
const W = '2026-01-02 03:04:05';
const TABLES = ['data_quality_windows', 'drift_quarantine', 'drift_windows', 'sequential_detections'];

const driftRow = (start: number, lengthMs: number, values: Partial<DriftWindowRow> = {}): DriftWindowRow => ({
  model: 'm',
  version: 'v1',
  reference_id: 'r1',
  feature: 'x',
  window_start: chTime(start),
  window_end: chTime(start + lengthMs),
  method: 'psi',
  statistic: lengthMs / M,
  p_value: null,
  threshold: 0.2,
  drifted: 1,
  reference_size: 100,
  current_size: lengthMs / M,
  events: lengthMs / M,
  late_events: 0,
  error_bound: null,
  source_partitions: 1,
  idle_partitions: 0,
  computed_at: chTime(start + lengthMs + 1_000),
  ...values,
});

/** A null-rate check of feature x in the window [T, T + lengthMs), passing up to 0.1. */
const qualityRow = (lengthMs: number, observed: number): DataQualityRow => ({
  model: 'm',
  version: 'v1',
  feature: 'x',
  expectation: 'null_rate',
  scope: '',
  window_start: chTime(T),
  window_end: chTime(T + lengthMs),
  observed,
  bound: 0.1,
  passed: observed <= 0.1 ? 1 : 0,
  count: 10,
  events: 10,
  detail: '{}',
  expectations_id: 'e',
  computed_at: chTime(T + lengthMs),
});

/** (window length in minutes, events) of every current drift_windows row, by start and length. */
async function driftRows(db: ClickHouse, table = 'drift_windows') {
  const list = await db.select<{ ws: number | string; len: number; events: number | string; written: string }>(
    `SELECT toUnixTimestamp64Milli(window_start) AS ws,
       intDiv(toUnixTimestamp64Milli(window_end) - toUnixTimestamp64Milli(window_start), 60000) AS len,
       events, toString(written_at) AS written
     FROM ${db.table(table)} FINAL ORDER BY ws, len, feature`,
  );
  return list.map((r) => [(Number(r.ws) - T) / M, Number(r.len), Number(r.events), r.written]);
}

/** The tables of 0730 and their leftovers: (name, window_end in the key). */
async function tablesOf(db: ClickHouse) {
  const list = await db.select<{ name: string; key: string }>(
    `SELECT name, sorting_key AS key FROM system.tables
     WHERE database = {db:String} AND (name IN {tables:Array(String)} OR position(name, '_rebuild_') > 0)
     ORDER BY name`,
    { db: db.database, tables: TABLES },
  );
  return list.map((t) => [
    t.name,
    t.key
      .split(',')
      .map((c) => c.trim())
      .includes('window_end'),
  ]);
}

const REKEYED = TABLES.map((name) => [name, true]);

describe('window tables keep windows of two lengths sharing a start (DRIFTLINE_DRIFT_WINDOW changed)', () => {
  let ch: ClickHouse;
  beforeAll(async () => {
    ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
  });
  afterAll(async () => {
    await ch.close();
  });

  it('drift_windows: a 1-hour row written after the 5-minute row of the same start keeps both, merged or not', async () => {
    const store = warehouseOn(ch).driftWindows;
    await store.insert([driftRow(T, 5 * M), driftRow(T + 5 * M, 5 * M)]);
    await store.insert([driftRow(T, 60 * M, { reference_id: 'r1' })]);
    await ch.command(`OPTIMIZE TABLE ${ch.table('drift_windows')} FINAL`);
    expect((await driftRows(ch)).map((r) => r.slice(0, 3))).toEqual([
      [0, 5, 5],
      [0, 60, 60],
      [5, 5, 5],
    ]);
    // A replay of a window still replaces its own row.
    await store.insert([driftRow(T, 5 * M, { events: 7, computed_at: chTime(T + 10 * M) })]);
    expect((await driftRows(ch)).map((r) => r.slice(0, 3))).toEqual([
      [0, 5, 7],
      [0, 60, 60],
      [5, 5, 5],
    ]);
  });

  it('drift_windows: the references written on a window are those of its own length', async () => {
    const store = warehouseOn(ch).driftWindows;
    const S = T + 24 * 60 * M;
    await store.insert([driftRow(S, 5 * M, { reference_id: 'old' })]);
    await store.insert([driftRow(S, 60 * M, { reference_id: 'new' })]);
    expect(await store.writtenReferences('m', 'v1', S, S + 5 * M)).toEqual(['old']);
    expect(await store.writtenReferences('m', 'v1', S, S + 60 * M)).toEqual(['new']);
    expect(await store.writtenReferences('m', 'v1', S, S + 10 * M)).toEqual([]);
  });

  it('drift_quarantine, data_quality_windows and sequential_detections: both lengths kept under FINAL', async () => {
    const w = warehouseOn(ch);
    const quarantined = (lengthMs: number) => ({
      model: 'm',
      version: 'v1',
      reference_id: 'r1',
      window_start: chTime(T),
      window_end: chTime(T + lengthMs),
      events: lengthMs / M,
      late_events: 0,
      source_partitions: 1,
      idle_partitions: 0,
      code: 'SINK_REJECTED',
      reason: 'r',
      topic: 'p',
      partition: 0,
      quarantined_at: chTime(T + lengthMs),
    });
    await w.driftQuarantine.insert([quarantined(5 * M)]);
    await w.driftQuarantine.insert([quarantined(60 * M)]);
    await w.dataQuality.insert([qualityRow(5 * M, 5)]);
    await w.dataQuality.insert([qualityRow(60 * M, 60)]);
    const detection = (lengthMs: number) => ({
      model: 'm',
      version: 'v1',
      reference_id: 'r1',
      feature: 'x',
      source_topic: 'predictions.v1',
      source_partition: 0,
      window_start: chTime(T),
      window_end: chTime(T + lengthMs),
      event_time: chTime(T + M),
      source_offset: lengthMs / M,
      statistic_kind: 'cvm',
      statistic: 1,
      threshold: 0.5,
      t: 300,
      run_length: 101,
      window_size: 200,
      check_every: 10,
      ert: 100_000,
      detected_at: chTime(T + lengthMs),
    });
    await w.sequentialDetections.insert([detection(5 * M)]);
    await w.sequentialDetections.insert([detection(60 * M)]);
    for (const table of ['drift_quarantine', 'data_quality_windows', 'sequential_detections'])
      await ch.command(`OPTIMIZE TABLE ${ch.table(table)} FINAL`);
    const [d] = await ch.select<{ events: Array<number | string> }>(
      `SELECT arraySort(groupArray(events)) AS events FROM ${ch.table('drift_quarantine')} FINAL`,
    );
    expect(d?.events.map(Number)).toEqual([5, 60]);
    const [q] = await ch.select<{ observed: number[] }>(
      `SELECT arraySort(groupArray(observed)) AS observed FROM ${ch.table('data_quality_windows')} FINAL`,
    );
    expect(q?.observed).toEqual([5, 60]);
    expect((await w.sequentialDetections.list('m')).map((d) => Number(d.source_offset)).sort((a, b) => a - b)).toEqual([
      5, 60,
    ]);
  });

  it('counts windows by start and end in the pipeline summary', async () => {
    const db = await createClickHouse(testClickHouse(path, database()));
    await migrate(db, migrations);
    const w = warehouseOn(db);
    await w.driftWindows.insert([driftRow(T, 5 * M), driftRow(T + 5 * M, 5 * M, { drifted: 0 })]);
    await w.driftWindows.insert([driftRow(T, 60 * M, { drifted: 0 })]);
    expect(await w.summary.counts()).toMatchObject({ driftRows: 3, windows: 3, driftedWindows: 1 });
    const verdicts = await w.summary.psiWindows('m');
    expect(verdicts.map((v) => [(v.windowStart - T) / M, (v.windowEnd - v.windowStart) / M, v.drifted])).toEqual([
      [0, 5, ['x']],
      [0, 60, []],
      [5, 5, []],
    ]);
    await db.close();
  });
  it('the report: each window of two lengths at one start its own answer, the latest the one ending last', async () => {
    const db = await createClickHouse(testClickHouse(path, database()));
    await migrate(db, migrations);
    const w = warehouseOn(db);
    // The previous 5-minute window first, the 1-hour one (x drifted) at the same start after it.
    await w.driftWindows.insert([
      driftRow(T, 5 * M, { feature: 'x', statistic: 0.01, drifted: 0 }),
      driftRow(T, 5 * M, { feature: 'y', statistic: 0.02, drifted: 0 }),
    ]);
    await w.driftWindows.insert([
      driftRow(T, 60 * M, { feature: 'x', statistic: 0.5, drifted: 1 }),
      driftRow(T, 60 * M, { feature: 'y', statistic: 0.03, drifted: 0 }),
    ]);
    await w.dataQuality.insert([qualityRow(5 * M, 0.05)]);
    await w.dataQuality.insert([qualityRow(60 * M, 0.3)]);
    const data = await w.report({ model: 'm', from: T, to: T + 2 * 60 * M });
    expect(data.driftTotals?.windows).toBe(2);
    expect(data.driftTotals?.latest).toEqual([{ version: 'v1', windowStart: T, features: 2, drifted: 1 }]);
    expect(
      data.drift
        .filter((d) => d.feature === 'x')
        .map((d) => [d.windowStart, d.statistic])
        .sort((a, b) => Number(a[1]) - Number(b[1])),
    ).toEqual([
      [T, 0.01],
      [T, 0.5],
    ]);
    expect((data.quality ?? []).map((q) => [q.windowStart, q.observed, q.passed]).sort()).toEqual([
      [T, 0.05, true],
      [T, 0.3, false],
    ]);
    await db.close();
  });
});

/** The tables as releases before 0730 made them (0101, 0103, 0600, 0640): window_end not in the key. */
const PREVIOUS_DDL: Record<string, string> = {
  '0103_drift_quarantine': `CREATE TABLE IF NOT EXISTS {db}.drift_quarantine (
      model LowCardinality(String), version LowCardinality(String), reference_id String,
      window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'), events UInt64, late_events UInt64,
      source_partitions UInt32, idle_partitions UInt32, code LowCardinality(String), reason String, topic String,
      partition UInt32, quarantined_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(quarantined_at)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (model, version, reference_id, window_start)
    TTL toDateTime(quarantined_at) + INTERVAL 365 DAY`,
  '0101_drift_windows': `CREATE TABLE IF NOT EXISTS {db}.drift_windows (
      model LowCardinality(String), version LowCardinality(String), reference_id String,
      feature LowCardinality(String), window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'),
      method LowCardinality(String), statistic Float64, p_value Nullable(Float64), threshold Float64,
      drifted UInt8, reference_size UInt64, current_size UInt64, events UInt64, late_events UInt64,
      error_bound Nullable(Float64), source_partitions UInt32, idle_partitions UInt32,
      computed_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(computed_at)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (model, version, reference_id, feature, method, window_start)`,
  '0600_data_quality_windows': `CREATE TABLE IF NOT EXISTS {db}.data_quality_windows (
      model LowCardinality(String), version LowCardinality(String), feature String,
      expectation LowCardinality(String), scope String, window_start DateTime64(3, 'UTC'),
      window_end DateTime64(3, 'UTC'), observed Float64, bound Float64, passed UInt8, count UInt64,
      events UInt64, detail String, expectations_id String, computed_at DateTime64(3, 'UTC'),
      written_at DateTime MATERIALIZED now()
    ) ENGINE = ReplacingMergeTree(computed_at)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (model, version, feature, expectation, scope, window_start)
    TTL written_at + INTERVAL 400 DAY`,
  '0640_sequential_detections': `CREATE TABLE IF NOT EXISTS {db}.sequential_detections (
      model LowCardinality(String), version LowCardinality(String), reference_id String,
      feature LowCardinality(String), source_topic LowCardinality(String), source_partition UInt32,
      window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'), event_time DateTime64(3, 'UTC'),
      source_offset UInt64, statistic_kind LowCardinality(String), statistic Float64, threshold Float64,
      t UInt64, run_length UInt64, window_size UInt32, check_every UInt32, ert Float64,
      detected_at DateTime64(3, 'UTC'), written_at DateTime MATERIALIZED now()
    ) ENGINE = ReplacingMergeTree(detected_at)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (model, version, feature, window_start, source_topic, source_partition)
    TTL written_at + INTERVAL 400 DAY`,
};

/** A database migrated by the release before 0730. */
const previousRelease = () => previousReleaseOf(path, '0730', PREVIOUS_DDL);

const DRIFT_COLUMNS = `model, version, reference_id, feature, window_start, window_end, method, statistic, p_value,
  threshold, drifted, reference_size, current_size, events, late_events, error_bound, source_partitions,
  idle_partitions, computed_at, written_at`;

/** A drift_windows row as the previous release wrote it, `written_at` (the retention clock) set to W. */
async function insertPrevious(
  db: ClickHouse,
  table: string,
  row: { start: number; lengthMs: number; events: number; feature?: string },
) {
  const t = (ms: number) => `fromUnixTimestamp64Milli(toInt64(${ms}), 'UTC')`;
  await db.command(
    `INSERT INTO ${db.table(table)} (${DRIFT_COLUMNS}) SETTINGS insert_allow_materialized_columns = 1
     VALUES ('m', 'v1', 'r1', '${row.feature ?? 'x'}', ${t(row.start)}, ${t(row.start + row.lengthMs)}, 'psi', 0.5,
       NULL, 0.2, 1, 100, ${row.events}, ${row.events}, 0, NULL, 1, 0, ${t(row.start + row.lengthMs)}, '${W}')`,
  );
}

describe('0730 on a database made by the previous release', () => {
  it('rebuilds the four tables with window_end in the key, every row kept, and records the migration', async () => {
    const db = await previousRelease();
    // Written apart (two parts): the old key had not merged the 1-hour row into the 5-minute one yet.
    await insertPrevious(db, 'drift_windows', { start: T, lengthMs: 5 * M, events: 5 });
    await insertPrevious(db, 'drift_windows', { start: T, lengthMs: 60 * M, events: 60 });
    await insertPrevious(db, 'drift_windows', { start: T + 5 * M, lengthMs: 5 * M, events: 3 });
    await db.command(
      `INSERT INTO ${db.table('data_quality_windows')} (model, version, feature, expectation, scope, window_start,
         window_end, observed, bound, passed, count, events, detail, expectations_id, computed_at, written_at)
       SETTINGS insert_allow_materialized_columns = 1
       VALUES ('m', 'v1', 'x', 'null_rate', '', '2026-11-02 10:00:00', '2026-11-02 10:05:00', 0.5, 0.1, 0, 10, 10,
         '{}', 'e', '2026-11-02 10:06:00', '${W}')`,
    );
    await db.command(
      `INSERT INTO ${db.table('sequential_detections')} (model, version, reference_id, feature, source_topic,
         source_partition, window_start, window_end, event_time, source_offset, statistic_kind, statistic,
         threshold, t, run_length, window_size, check_every, ert, detected_at, written_at)
       SETTINGS insert_allow_materialized_columns = 1
       VALUES ('m', 'v1', 'r1', 'x', 'p', 0, '2026-11-02 10:00:00', '2026-11-02 10:05:00', '2026-11-02 10:01:00',
         42, 'cvm', 1, 0.5, 300, 101, 200, 10, 100000, '2026-11-02 10:01:00', '${W}')`,
    );
    for (const [end, events] of [
      ['10:05', 5],
      ['11:00', 60],
    ] as const)
      await db.command(
        `INSERT INTO ${db.table('drift_quarantine')} (model, version, reference_id, window_start, window_end, events,
           late_events, source_partitions, idle_partitions, code, reason, topic, partition, quarantined_at)
         VALUES ('m', 'v1', 'r1', '2026-11-02 10:00:00', '2026-11-02 ${end}:00', ${events}, 0, 1, 0, 'SINK_REJECTED',
           'r', 'p', 0, '2026-11-02 ${end}:01')`,
      );
    expect(await tablesOf(db)).toEqual(TABLES.map((name) => [name, false]));

    // 0730 and the releases after it, every one recorded.
    expect(await migrate(db, migrations)).toEqual(migrations.filter((m) => m.id >= '0730').map((m) => m.id));
    expect(await tablesOf(db)).toEqual(REKEYED);
    expect(await driftRows(db)).toEqual([
      [0, 5, 5, W],
      [0, 60, 60, W],
      [5, 5, 3, W],
    ]);
    const [q] = await db.select<{ n: number | string; written: string; detail: string }>(
      `SELECT count() AS n, any(toString(written_at)) AS written, any(detail) AS detail
       FROM ${db.table('data_quality_windows')} FINAL`,
    );
    expect([Number(q?.n), q?.written, q?.detail]).toEqual([1, W, '{}']);
    const [s] = await db.select<{ n: number | string; written: string; offset: number | string }>(
      `SELECT count() AS n, any(toString(written_at)) AS written, any(source_offset) AS offset
       FROM ${db.table('sequential_detections')} FINAL`,
    );
    expect([Number(s?.n), s?.written, Number(s?.offset)]).toEqual([1, W, 42]);
    const quarantine = await db.select<{ events: number | string }>(
      `SELECT events FROM ${db.table('drift_quarantine')} FINAL ORDER BY window_end`,
    );
    expect(quarantine.map((r) => Number(r.events))).toEqual([5, 60]);
    // The copy keeps the retention: TTL and the materialized written_at of new rows.
    const [ddl] = await db.select<{ q: string }>(
      `SELECT create_table_query AS q FROM system.tables WHERE database = {db:String} AND name = 'drift_windows'`,
      { db: db.database },
    );
    expect(ddl?.q).toMatch(/`written_at` DateTime MATERIALIZED now\(\)/);
    expect(ddl?.q).toMatch(/TTL written_at \+ toIntervalDay\(400\)/);
    // Applied once: recorded; the store writes on under the new key and reads each length's references.
    expect(await migrate(db, migrations)).toEqual([]);
    const store = warehouseOn(db).driftWindows;
    await store.insert([driftRow(T, 60 * M, { reference_id: 'r2' })]);
    expect(await store.writtenReferences('m', 'v1', T, T + 5 * M)).toEqual(['r1']);
    expect(await store.writtenReferences('m', 'v1', T, T + 60 * M)).toEqual(['r1', 'r2']);
    await db.close();
  });

  // drift_windows: a rebuild a build before 0740 began under 0730's key (0730 leaves drift_windows to
  // 0740 otherwise: drift-windows-key.int.test.ts).
  it('finishes a rebuild cut short, before or after the exchange', async () => {
    const db = await previousRelease();
    await insertPrevious(db, 'drift_windows', { start: T, lengthMs: 5 * M, events: 5 });
    await insertPrevious(db, 'drift_windows', { start: T, lengthMs: 60 * M, events: 60 });
    const migration = migrations.find((m) => m.id === '0730_window_end_keys');
    // Cut short before the exchange: a partial copy under the new key is left (one of the two rows).
    for (const statement of DRIFT_WINDOWS_WINDOW_END_REBUILD.ddl('drift_windows_rebuild_crashed'))
      await db.command(statement.replaceAll('{db}', db.database));
    await insertPrevious(db, 'drift_windows_rebuild_crashed', { start: T, lengthMs: 60 * M, events: 60 });
    await migration?.apply?.(db);
    expect(await tablesOf(db)).toEqual(REKEYED);
    expect(await driftRows(db)).toEqual([
      [0, 5, 5, W],
      [0, 60, 60, W],
    ]);
    // Cut short after the exchange: the old table, with a row written to it during the copy, is left.
    await db.command(
      `CREATE TABLE ${db.table('drift_windows_rebuild_old')} AS ${db.table('drift_windows')}
       ENGINE = ReplacingMergeTree(computed_at) PARTITION BY toYYYYMM(window_start)
       ORDER BY (model, version, reference_id, feature, method, window_start)`,
    );
    await insertPrevious(db, 'drift_windows_rebuild_old', { start: T + 5 * M, lengthMs: 5 * M, events: 9 });
    await migration?.apply?.(db);
    await migration?.apply?.(db);
    expect(await tablesOf(db)).toEqual(REKEYED);
    expect(await driftRows(db)).toEqual([
      [0, 5, 5, W],
      [0, 60, 60, W],
      [5, 5, 9, W],
    ]);
    await db.close();
  });

  it('a start stopped in the middle of its copy goes on from what it copied: every row once, no table left', async () => {
    const db = await previousRelease();
    const D = 86_400_000;
    // Ten days of two windows each: ten calls of at most 2 rows.
    for (let day = 0; day < 10; day++)
      for (const [lengthMs, feature] of [
        [5 * M, 'x'],
        [60 * M, 'y'],
      ] as const)
        await insertPrevious(db, 'drift_windows', { start: T + day * D, lengthMs, events: day + 1, feature });
    const inserts: number[] = [];
    const rowsOf = async (table: string) =>
      Number((await db.select<{ n: number | string }>(`SELECT count() AS n FROM ${db.table(table)}`))[0]?.n);
    /** The engine, counting the rows each copy call adds, failing (a call timeout) at the `failAt`th call. */
    const engine = (failAt: number): ClickHouse => {
      let calls = 0;
      return {
        ...db,
        table: (name) => db.table(name),
        select: (sql, params) => db.select(sql, params),
        command: async (sql) => {
          const into = /^INSERT INTO \S+\.(\S+_rebuild_copy) /.exec(sql)?.[1];
          if (into !== undefined && ++calls === failAt) throw new Error('timeout (the test)');
          const before = into === undefined ? 0 : await rowsOf(into);
          await db.command(sql);
          if (into !== undefined) inserts.push((await rowsOf(into)) - before);
        },
      };
    };
    const stopped = await rebuildUnderKey(engine(5), DRIFT_WINDOWS_WINDOW_END_REBUILD, 2).then(
      () => 'finished',
      (error: Error) => error.message,
    );
    expect(stopped).toBe('timeout (the test)');
    expect(inserts).toEqual([2, 2, 2, 2]);
    expect(await tablesOf(db)).toEqual([
      ['data_quality_windows', false],
      ['drift_quarantine', false],
      ['drift_windows', false],
      ['drift_windows_rebuild_copy', true],
      ['sequential_detections', false],
    ]);
    // The next start (a migration run) copies the other six days only, then exchanges; then 0740
    // rebuilds the table under its key sorted by time (all 20 rows in one call of its own bound).
    inserts.length = 0;
    const next: Migration[] = migrations.map((m) =>
      m.id === '0730_window_end_keys'
        ? { ...m, apply: (c) => rebuildUnderKey(c, DRIFT_WINDOWS_WINDOW_END_REBUILD, 2) }
        : m,
    );
    expect(await migrate(engine(0), next)).toContain('0730_window_end_keys');
    expect(inserts).toEqual([2, 2, 2, 2, 2, 2, 20]);
    expect(await tablesOf(db)).toEqual([
      ['data_quality_windows', false],
      ['drift_quarantine', false],
      ['drift_windows', true],
      ['sequential_detections', false],
    ]);
    const rows = await driftRows(db);
    expect(rows.length).toBe(20);
    expect(rows.map((r) => r[2])).toEqual(Array.from({ length: 10 }, (_, day) => [day + 1, day + 1]).flat());
    await db.close();
  });
});
