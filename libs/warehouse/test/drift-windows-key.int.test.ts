// drift_windows sorted by time within a model and method (0740), on a real ClickHouse (the embedded
// engine). Under 0730's key, (model, version, reference_id, feature, method, window_start, window_end),
// the time came last, so the primary index could not narrow a time range within a model: a 6-hour
// panel of one model read every row of the model in the month's partition (0.89 M rows to return
// 21,600 in a review at production scale). 0740 rebuilds the table under (model, method, window_start,
// window_end, version, reference_id, feature); 0730 leaves drift_windows to it (one copy, not two).
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClickHouse,
  chTime,
  createClickHouse,
  type DriftWindowRow,
  type Migration,
  migrate,
  migrations,
  type QueryParams,
  type TypedResult,
  warehouseOn,
} from '../src/index.js';
import { rebuildUnderKey } from '../src/key-rebuild.js';
import { DRIFT_WINDOWS_REBUILD } from '../src/tables/drift-windows.js';
import { testClickHouse } from './fixtures/clickhouse.js';
import { previousRelease } from './fixtures/previous-release.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-drift-key-'));
const M = 60_000;
const D = 86_400_000;
// Inside the table's retention (its TTL counts from the write, but a test never waits on it).
const T = Date.UTC(2026, 10, 2, 10, 0);
const W = '2026-01-02 03:04:05';
/** The sorting keys, as system.tables lists them. */
const KEY = 'model, method, window_start, window_end, version, reference_id, feature';
const KEY_0730 = 'model, version, reference_id, feature, method, window_start, window_end';
const KEY_0101 = 'model, version, reference_id, feature, method, window_start';
const GRANULE = 8192;
const ID_0740 = '0740_drift_windows_time_key';

/** drift_windows as 0101 made it, sorted by `key` (the DDL before 0740: 0730's key; before 0730: without window_end). */
const ddlSortedBy = (key: string) => `CREATE TABLE IF NOT EXISTS {db}.drift_windows (
    model LowCardinality(String), version LowCardinality(String), reference_id String,
    feature LowCardinality(String), window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'),
    method LowCardinality(String), statistic Float64, p_value Nullable(Float64), threshold Float64,
    drifted UInt8, reference_size UInt64, current_size UInt64, events UInt64, late_events UInt64,
    error_bound Nullable(Float64), source_partitions UInt32, idle_partitions UInt32,
    computed_at DateTime64(3, 'UTC')
  ) ENGINE = ReplacingMergeTree(computed_at)
  PARTITION BY toYYYYMM(window_start)
  ORDER BY (${key})`;

/** A database migrated by the release before 0740 (drift_windows under 0730's key). */
const before0740 = () => previousRelease(path, '0740', { '0101_drift_windows': ddlSortedBy(KEY_0730) });
/** A database migrated by the release before 0730 (drift_windows keyed by its start only). */
const before0730 = () => previousRelease(path, '0730', { '0101_drift_windows': ddlSortedBy(KEY_0101) });

const COLUMNS = `model, version, reference_id, feature, window_start, window_end, method, statistic, p_value,
  threshold, drifted, reference_size, current_size, events, late_events, error_bound, source_partitions,
  idle_partitions, computed_at, written_at`;

/** A drift_windows row as a previous release wrote it, `written_at` (the retention clock) set to `written`. */
async function insertPrevious(
  db: ClickHouse,
  table: string,
  row: { start: number; lengthMs?: number; events: number; feature?: string; method?: string; written?: string },
) {
  const t = (ms: number) => `fromUnixTimestamp64Milli(toInt64(${ms}), 'UTC')`;
  const end = row.start + (row.lengthMs ?? 5 * M);
  await db.command(
    `INSERT INTO ${db.table(table)} (${COLUMNS}) SETTINGS insert_allow_materialized_columns = 1
     VALUES ('m', 'v1', 'r1', '${row.feature ?? 'x'}', ${t(row.start)}, ${t(end)}, '${row.method ?? 'psi'}', 0.5,
       NULL, 0.2, 1, 100, ${row.events}, ${row.events}, 0, NULL, 1, 0, ${t(end)}, '${row.written ?? W}')`,
  );
}

/** (minutes from T, window length in minutes, feature, method, events, written_at) of every current row. */
async function driftRows(db: ClickHouse) {
  const list = await db.select<{
    ws: number | string;
    len: number;
    feature: string;
    method: string;
    events: number | string;
    written: string;
  }>(
    `SELECT toUnixTimestamp64Milli(window_start) AS ws,
       intDiv(toUnixTimestamp64Milli(window_end) - toUnixTimestamp64Milli(window_start), 60000) AS len,
       feature, method, events, toString(written_at) AS written
     FROM ${db.table('drift_windows')} FINAL ORDER BY ws, len, feature, method`,
  );
  return list.map((r) => [(Number(r.ws) - T) / M, Number(r.len), r.feature, r.method, Number(r.events), r.written]);
}

/** drift_windows and its rebuild's tables: (name, sorting key). */
async function tablesOf(db: ClickHouse) {
  const list = await db.select<{ name: string; key: string }>(
    `SELECT name, sorting_key AS key FROM system.tables
     WHERE database = {db:String} AND (name = 'drift_windows' OR startsWith(name, 'drift_windows_rebuild_'))
     ORDER BY name`,
    { db: db.database },
  );
  return list.map((t) => [t.name, t.key]);
}

/** `db`, counting the INSERT calls into the rebuild's copy and the rows each adds; the `failAt`th fails (a call timeout). */
function countingCopies(db: ClickHouse, failAt = 0): { engine: ClickHouse; inserts: number[] } {
  const inserts: number[] = [];
  const rowsOf = async (table: string) =>
    Number((await db.select<{ n: number | string }>(`SELECT count() AS n FROM ${db.table(table)}`))[0]?.n);
  let calls = 0;
  const engine: ClickHouse = {
    ...db,
    table: (name) => db.table(name),
    select: (sql, params) => db.select(sql, params),
    command: async (sql) => {
      const into = /^INSERT INTO \S+\.(drift_windows_rebuild_copy) /.exec(sql)?.[1];
      if (into !== undefined && ++calls === failAt) throw new Error('timeout (the test)');
      const before = into === undefined ? 0 : await rowsOf(into);
      await db.command(sql);
      if (into !== undefined) inserts.push((await rowsOf(into)) - before);
    },
  };
  return { engine, inserts };
}

const driftRow = (start: number, values: Partial<DriftWindowRow> = {}): DriftWindowRow => ({
  model: 'm',
  version: 'v1',
  reference_id: 'r2',
  feature: 'x',
  window_start: chTime(start),
  window_end: chTime(start + 5 * M),
  method: 'psi',
  statistic: 0.1,
  p_value: null,
  threshold: 0.2,
  drifted: 0,
  reference_size: 100,
  current_size: 7,
  events: 7,
  late_events: 0,
  error_bound: null,
  source_partitions: 1,
  idle_partitions: 0,
  computed_at: chTime(start + 6 * M),
  ...values,
});

describe('drift_windows reads of a time range read that range (0740)', () => {
  let ch: ClickHouse;
  /** Rows read by each select of drift_windows through `counting` since the last call. */
  let reads: number[] = [];
  let counting: ClickHouse;
  // Two models of 50 features, PSI and KS, over 10 days of 5-minute windows: 576,000 rows, 288,000 a model.
  const WINDOWS = 10 * 288;
  const FROM = T + 9 * D;
  const TO = FROM + 6 * 60 * M;

  beforeAll(async () => {
    ch = await createClickHouse(testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    await migrate(ch, migrations);
    await ch.command(
      `INSERT INTO ${ch.table('drift_windows')} (${COLUMNS.replace(', written_at', '')})
       SELECT concat('m', toString(n % 2)), 'v1', 'r1', concat('f', toString(intDiv(n, 2) % 50)),
         fromUnixTimestamp64Milli(toInt64(${T} + w * 300000), 'UTC'), fromUnixTimestamp64Milli(toInt64(${T} + w * 300000 + 300000), 'UTC'),
         ['psi', 'ks'][intDiv(n, 100) % 2 + 1], (n % 97) / 100, NULL, 0.2, 0, 1000, 500, 500, 0, NULL, 1, 0,
         fromUnixTimestamp64Milli(toInt64(${T} + w * 300000 + 301000), 'UTC')
       FROM (SELECT number % 200 AS n, intDiv(number, 200) AS w FROM numbers(${WINDOWS * 200}))`,
    );
    await ch.command(`OPTIMIZE TABLE ${ch.table('drift_windows')} FINAL`);
    counting = {
      ...ch,
      select: async <T>(sql: string, params: QueryParams = {}) => {
        const result: TypedResult & { statistics?: { rows_read?: number } } = await ch.selectTyped(sql, params);
        if (sql.includes('drift_windows')) reads.push(Number(result.statistics?.rows_read ?? Number.NaN));
        return result.data as unknown as T[];
      },
    };
  });
  afterAll(async () => {
    await ch.close();
  });

  it('a new database has the key sorted by time within a model and method', async () => {
    expect(await tablesOf(ch)).toEqual([['drift_windows', KEY]]);
  });

  it("a 6-hour PSI read of one model (the dashboard's per-feature panel) reads 2 granules, not the model", async () => {
    reads = [];
    const rows = await counting.select<{ feature: string }>(
      `SELECT feature, max(statistic) AS psi FROM ${ch.table('drift_windows')} FINAL
       WHERE window_start >= toDateTime(${FROM / 1000}) AND window_start <= toDateTime(${TO / 1000})
         AND model = 'm0' AND method = 'psi'
       GROUP BY feature`,
    );
    expect(rows).toHaveLength(50);
    expect(reads[0]).toBeLessThanOrEqual(2 * GRANULE);
  });

  it("the report's drift reads of 6 hours of one model read a few granules each, not the model", async () => {
    reads = [];
    const data = await warehouseOn(counting).report({ model: 'm0', from: FROM, to: TO });
    expect(data.driftTotals?.windows).toBe(72);
    expect(reads.length).toBeGreaterThanOrEqual(6);
    // Two methods, each a range of 7,200 rows or less (the latest window's read also reads its subquery's).
    for (const n of reads) expect(n, String(reads)).toBeLessThanOrEqual(6 * GRANULE);
  });

  it("the merge's writtenReferences reads a granule or two per method, not the model's rows", async () => {
    reads = [];
    expect(await warehouseOn(counting).driftWindows.writtenReferences('m1', 'v1', FROM, FROM + 5 * M)).toEqual(['r1']);
    expect(reads[0]).toBeLessThanOrEqual(4 * GRANULE);
  });
});

describe('0740 on a database made by the release before it', () => {
  it('rebuilds drift_windows under the new key, every row and written_at kept, and records the migration', async () => {
    const db = await before0740();
    // Written apart (parts the old key had not merged yet), two window lengths at one start among them.
    await insertPrevious(db, 'drift_windows', { start: T, events: 5 });
    await insertPrevious(db, 'drift_windows', { start: T, lengthMs: 60 * M, events: 60 });
    await insertPrevious(db, 'drift_windows', { start: T, events: 4, method: 'ks' });
    await insertPrevious(db, 'drift_windows', { start: T + 5 * M, events: 3, feature: 'y' });
    expect(await tablesOf(db)).toEqual([['drift_windows', KEY_0730]]);

    expect(await migrate(db, migrations)).toEqual([ID_0740]);
    expect(await tablesOf(db)).toEqual([['drift_windows', KEY]]);
    expect(await driftRows(db)).toEqual([
      [0, 5, 'x', 'ks', 4, W],
      [0, 5, 'x', 'psi', 5, W],
      [0, 60, 'x', 'psi', 60, W],
      [5, 5, 'y', 'psi', 3, W],
    ]);
    // The copy keeps the retention: TTL and the materialized written_at of new rows.
    const [ddl] = await db.select<{ q: string }>(
      `SELECT create_table_query AS q FROM system.tables WHERE database = {db:String} AND name = 'drift_windows'`,
      { db: db.database },
    );
    expect(ddl?.q).toMatch(/`written_at` DateTime MATERIALIZED now\(\)/);
    expect(ddl?.q).toMatch(/TTL written_at \+ toIntervalDay\(400\)/);
    // Applied once; the store writes on under the new key: a replay replaces its row, references by window.
    expect(await migrate(db, migrations)).toEqual([]);
    const store = warehouseOn(db).driftWindows;
    await store.insert([driftRow(T), driftRow(T, { reference_id: 'r1', events: 9, computed_at: chTime(T + 7 * M) })]);
    expect(await store.writtenReferences('m', 'v1', T, T + 5 * M)).toEqual(['r1', 'r2']);
    expect(await store.writtenReferences('m', 'v1', T, T + 60 * M)).toEqual(['r1']);
    expect((await driftRows(db)).filter((r) => r[1] === 5 && r[3] === 'psi' && r[0] === 0).map((r) => r[4])).toEqual([
      9, 7,
    ]);
    await db.close();
  });

  it('a database from before 0730: 0730 leaves drift_windows to 0740, which copies it once', async () => {
    const db = await before0730();
    await insertPrevious(db, 'drift_windows', { start: T, events: 5 });
    await insertPrevious(db, 'drift_windows', { start: T + D, events: 6 });
    const { engine, inserts } = countingCopies(db);
    expect(await migrate(engine, migrations)).toEqual(migrations.filter((m) => m.id >= '0730').map((m) => m.id));
    expect(await tablesOf(db)).toEqual([['drift_windows', KEY]]);
    // One call (both days fit one), into one copy: 0730 made none of drift_windows.
    expect(inserts).toEqual([2]);
    expect(await driftRows(db)).toEqual([
      [0, 5, 'x', 'psi', 5, W],
      [24 * 60, 5, 'x', 'psi', 6, W],
    ]);
    await db.close();
  });

  it('finishes a rebuild cut short, before or after the exchange', async () => {
    const db = await before0740();
    await insertPrevious(db, 'drift_windows', { start: T, events: 5 });
    await insertPrevious(db, 'drift_windows', { start: T, lengthMs: 60 * M, events: 60 });
    const migration = migrations.find((m) => m.id === ID_0740);
    // Cut short before the exchange: a partial copy under the new key is left (one of the two rows).
    for (const statement of DRIFT_WINDOWS_REBUILD.ddl('drift_windows_rebuild_crashed'))
      await db.command(statement.replaceAll('{db}', db.database));
    await insertPrevious(db, 'drift_windows_rebuild_crashed', { start: T, lengthMs: 60 * M, events: 60 });
    await migration?.apply?.(db);
    expect(await tablesOf(db)).toEqual([['drift_windows', KEY]]);
    expect(await driftRows(db)).toEqual([
      [0, 5, 'x', 'psi', 5, W],
      [0, 60, 'x', 'psi', 60, W],
    ]);
    // Cut short after the exchange: the old table, with a row written to it during the copy, is left.
    await db.command(ddlSortedBy(KEY_0730).replace('{db}.drift_windows', db.table('drift_windows_rebuild_old')));
    await db.command(
      `ALTER TABLE ${db.table('drift_windows_rebuild_old')} ADD COLUMN written_at DateTime MATERIALIZED now()`,
    );
    await insertPrevious(db, 'drift_windows_rebuild_old', { start: T + 5 * M, events: 9 });
    await migration?.apply?.(db);
    await migration?.apply?.(db);
    expect(await tablesOf(db)).toEqual([['drift_windows', KEY]]);
    expect(await driftRows(db)).toEqual([
      [0, 5, 'x', 'psi', 5, W],
      [0, 60, 'x', 'psi', 60, W],
      [5, 5, 'x', 'psi', 9, W],
    ]);
    await db.close();
  });

  it('a start stopped in the middle of its copy goes on from what it copied: every row once, no table left', async () => {
    const db = await before0740();
    // Ten days of two windows each: ten calls of at most 2 rows.
    for (let day = 0; day < 10; day++)
      for (const [lengthMs, feature] of [
        [5 * M, 'x'],
        [60 * M, 'y'],
      ] as const)
        await insertPrevious(db, 'drift_windows', { start: T + day * D, lengthMs, events: day + 1, feature });
    const first = countingCopies(db, 5);
    const stopped = await rebuildUnderKey(first.engine, DRIFT_WINDOWS_REBUILD, 2).then(
      () => 'finished',
      (error: Error) => error.message,
    );
    expect(stopped).toBe('timeout (the test)');
    expect(first.inserts).toEqual([2, 2, 2, 2]);
    expect(await tablesOf(db)).toEqual([
      ['drift_windows', KEY_0730],
      ['drift_windows_rebuild_copy', KEY],
    ]);
    // The next start (a migration run) copies the other six days only, then exchanges.
    const next = countingCopies(db);
    const bounded: Migration[] = migrations.map((m) =>
      m.id === ID_0740 ? { ...m, apply: (c) => rebuildUnderKey(c, DRIFT_WINDOWS_REBUILD, 2) } : m,
    );
    expect(await migrate(next.engine, bounded)).toEqual([ID_0740]);
    expect(next.inserts).toEqual([2, 2, 2, 2, 2, 2]);
    expect(await tablesOf(db)).toEqual([['drift_windows', KEY]]);
    const rows = await driftRows(db);
    expect(rows.length).toBe(20);
    expect(rows.map((r) => r[4])).toEqual(Array.from({ length: 10 }, (_, day) => [day + 1, day + 1]).flat());
    await db.close();
  });

  it("0730 finishes a rebuild under 0730's key that a build before 0740 left, then 0740 rebuilds", async () => {
    // Before the exchange: the earlier build's copy under 0730's key, holding one of the two rows.
    const db = await before0730();
    await insertPrevious(db, 'drift_windows', { start: T, events: 5 });
    await insertPrevious(db, 'drift_windows', { start: T + 5 * M, events: 6 });
    await db.command(
      `${ddlSortedBy(KEY_0730).replace('{db}.drift_windows', db.table('drift_windows_rebuild_copy'))}
       COMMENT 'driftline 0730 rebuild, copy began at ${Math.floor(Date.now() / 1000)}'`,
    );
    await db.command(
      `ALTER TABLE ${db.table('drift_windows_rebuild_copy')} ADD COLUMN written_at DateTime MATERIALIZED now()`,
    );
    await insertPrevious(db, 'drift_windows_rebuild_copy', { start: T, events: 5 });
    expect(await migrate(db, migrations)).toEqual(migrations.filter((m) => m.id >= '0730').map((m) => m.id));
    expect(await tablesOf(db)).toEqual([['drift_windows', KEY]]);
    expect(await driftRows(db)).toEqual([
      [0, 5, 'x', 'psi', 5, W],
      [5, 5, 'x', 'psi', 6, W],
    ]);
    await db.close();

    // After the exchange, 0730 unrecorded: the table under 0730's key (its copy began an hour ago) and
    // the old table, holding a row the previous release wrote to it during that copy.
    const after = await previousRelease(path, '0730', {
      '0101_drift_windows': `${ddlSortedBy(KEY_0730)} COMMENT 'driftline 0730 rebuild, copy began at ${Math.floor(Date.now() / 1000) - 3600}'`,
    });
    await insertPrevious(after, 'drift_windows', { start: T, events: 5 });
    await after.command(ddlSortedBy(KEY_0101).replace('{db}.drift_windows', after.table('drift_windows_rebuild_old')));
    await after.command(
      `ALTER TABLE ${after.table('drift_windows_rebuild_old')} ADD COLUMN written_at DateTime MATERIALIZED now()`,
    );
    const during = new Date(Date.now() - 1800_000).toISOString().slice(0, 19).replace('T', ' ');
    await insertPrevious(after, 'drift_windows_rebuild_old', { start: T + 5 * M, events: 8, written: during });
    expect(await migrate(after, migrations)).toEqual(migrations.filter((m) => m.id >= '0730').map((m) => m.id));
    expect(await tablesOf(after)).toEqual([['drift_windows', KEY]]);
    expect(await driftRows(after)).toEqual([
      [0, 5, 'x', 'psi', 5, W],
      [5, 5, 'x', 'psi', 8, during],
    ]);
    await after.close();
  });

  it('0730 leaves alone a rebuild 0740 began (another process migrating got there first)', async () => {
    // Before 0740's exchange: the table under 0730's key (0730 unrecorded), 0740's copy filling.
    const db = await previousRelease(path, '0730', { '0101_drift_windows': ddlSortedBy(KEY_0730) });
    await insertPrevious(db, 'drift_windows', { start: T, events: 5 });
    await insertPrevious(db, 'drift_windows', { start: T + 5 * M, events: 6 });
    for (const statement of DRIFT_WINDOWS_REBUILD.ddl('drift_windows_rebuild_copy'))
      await db.command(statement.replaceAll('{db}', db.database));
    await insertPrevious(db, 'drift_windows_rebuild_copy', { start: T, events: 5 });
    const apply = (id: string) => migrations.find((m) => m.id === id)?.apply?.(db);
    await apply('0730_window_end_keys');
    expect(await tablesOf(db)).toEqual([
      ['drift_windows', KEY_0730],
      ['drift_windows_rebuild_copy', KEY],
    ]);
    expect(await migrate(db, migrations)).toEqual(migrations.filter((m) => m.id >= '0730').map((m) => m.id));
    expect(await tablesOf(db)).toEqual([['drift_windows', KEY]]);
    expect((await driftRows(db)).map((r) => r[4])).toEqual([5, 6]);
    await db.close();

    // After 0740's exchange (its copy began an hour ago): the old table under 0730's key, made by
    // 0730's rebuild a day ago, with a row written to it during 0740's copy.
    const now = Math.floor(Date.now() / 1000);
    const after = await previousRelease(path, '0730', {
      '0101_drift_windows': `${ddlSortedBy(KEY)} COMMENT 'driftline 0740 rebuild, copy began at ${now - 3600}'`,
    });
    await insertPrevious(after, 'drift_windows', { start: T, events: 5 });
    await after.command(
      `${ddlSortedBy(KEY_0730).replace('{db}.drift_windows', after.table('drift_windows_rebuild_old'))}
       COMMENT 'driftline 0730 rebuild, copy began at ${now - 86_400}'`,
    );
    await after.command(
      `ALTER TABLE ${after.table('drift_windows_rebuild_old')} ADD COLUMN written_at DateTime MATERIALIZED now()`,
    );
    const during = new Date((now - 1800) * 1000).toISOString().slice(0, 19).replace('T', ' ');
    await insertPrevious(after, 'drift_windows_rebuild_old', { start: T + 5 * M, events: 8, written: during });
    await migrations.find((m) => m.id === '0730_window_end_keys')?.apply?.(after);
    expect(await tablesOf(after)).toEqual([
      ['drift_windows', KEY],
      ['drift_windows_rebuild_old', KEY_0730],
    ]);
    await migrations.find((m) => m.id === ID_0740)?.apply?.(after);
    expect(await tablesOf(after)).toEqual([['drift_windows', KEY]]);
    expect(await driftRows(after)).toEqual([
      [0, 5, 'x', 'psi', 5, W],
      [5, 5, 'x', 'psi', 8, during],
    ]);
    await after.close();
  });
});
