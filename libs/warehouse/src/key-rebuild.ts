import { randomUUID } from 'node:crypto';
import { SinkUnavailableError } from '@driftline/core';
import type { ClickHouse } from './client.js';

/**
 * A table rebuilt under another sorting key, rows kept: a MergeTree's ORDER BY takes by ALTER only
 * a column added in the same ALTER, appended, so a column the table already has goes into its key,
 * or its key's columns into another order, by a copy (0710: `window_end` in skew_windows' key; 0730:
 * in drift_windows' and the other window tables'; 0740: drift_windows sorted by time within a model
 * and method).
 */
export interface KeyRebuild {
  /** The table. */
  readonly name: string;
  /** The migration rebuilding it, e.g. `0710`: in its copy's comment and in its errors. */
  readonly migration: string;
  /**
   * The new sorting key, its columns as `system.tables.sorting_key` lists them: a table sorted by
   * exactly this key is rebuilt already, one sorted by any other is rebuilt.
   */
  readonly key: readonly string[];
  /** The table's DDL under the new key and another name (`{db}` for the database): a CREATE, then ALTERs. */
  readonly ddl: (name: string) => readonly string[];
  /** Every column of the table, `written_at` (the retention clock) with them: what the copy copies. */
  readonly columns: string;
  /**
   * When a row was written, a DateTime (`written_at` when absent): rows the previous release wrote
   * during the copy are copied again from it.
   */
  readonly writtenAt?: string;
  /** Columns naming one row version (the new key and the version column): a row already copied is not copied again. */
  readonly identity: string;
  /** A hash of key columns other than `window_start`: splits one window start's rows when they alone are more than a call copies. */
  readonly bucketHash: string;
}

/**
 * The rebuild of `name` under its new `key` (columns) by `migration`: a row version is the key and
 * `version` (the ReplacingMergeTree's version column), the hash buckets are of the key but
 * `window_start`.
 */
export function keyRebuild(
  migration: string,
  name: string,
  key: readonly string[],
  version: string,
  table: Pick<KeyRebuild, 'ddl' | 'columns' | 'writtenAt'>,
): KeyRebuild {
  return {
    ...table,
    name,
    migration,
    key,
    identity: [...key, version].join(', '),
    bucketHash: `cityHash64(${key.filter((c) => c !== 'window_start').join(', ')})`,
  };
}

/** Tables a rebuild of `name` copies into and out of: `<name>_rebuild_*` (never matched by the dashboards' `merge()`). */
const rebuildPrefix = (name: string) => `${name}_rebuild_`;
/** The rebuild's copy, one fixed name: a run cut short (a timeout, a crash) is resumed into it, never started over. */
const rebuildCopy = (name: string) => `${rebuildPrefix(name)}copy`;
/** The copy's table comment: when its copy began (unix seconds, the server's clock), kept by RENAME and EXCHANGE. */
const began = (t: KeyRebuild) => `driftline ${t.migration} rebuild, copy began at `;

/** Most rows a call of a rebuild's copy reads from both tables (about a second on the embedded engine). */
export const REBUILD_CHUNK_ROWS = 1_000_000;
const DAY_MS = 86_400_000;

/** The table's sorting key as its columns (undefined: no such table). */
async function sortingKey(ch: ClickHouse, name: string): Promise<string[] | undefined> {
  const [row] = await ch.select<{ sorting_key: string }>(
    'SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = {name:String}',
    { db: ch.database, name },
  );
  return row?.sorting_key.split(',').map((c) => c.trim());
}

/** Whether a table's sorting key (undefined: no such table) is `t`'s new key. */
const keyedBy = (key: readonly string[] | undefined, t: KeyRebuild) =>
  key !== undefined && key.length === t.key.length && key.every((c, i) => c === t.key[i]);

/** Whether `t` has its new key (false: no such table, or another key). */
const rekeyed = async (ch: ClickHouse, t: KeyRebuild) => keyedBy(await sortingKey(ch, t.name), t);

/** The `<name>_rebuild_*` tables, the largest first: their sorting keys, and whether that is `t`'s new key. */
async function rebuildTables(
  ch: ClickHouse,
  t: KeyRebuild,
): Promise<Array<{ name: string; key: string[]; newKey: boolean }>> {
  const rows = await ch.select<{ name: string; key: string }>(
    `SELECT name, sorting_key AS key FROM system.tables
     WHERE database = {db:String} AND startsWith(name, {prefix:String}) ORDER BY total_rows DESC, name`,
    { db: ch.database, prefix: rebuildPrefix(t.name) },
  );
  return rows.map((r) => {
    const key = r.key.split(',').map((c) => c.trim());
    return { name: r.name, key, newKey: keyedBy(key, t) };
  });
}

/**
 * Whether a rebuild of `t.name` under `t.key` was begun and not finished, and none under `next.key`
 * (a later rebuild of the same table, which then owns every `<name>_rebuild_*` table): such a table
 * is left, and it or the table has `t.key` (its copy before the exchange, the table after), neither
 * `next.key`.
 */
export async function rebuildBegun(ch: ClickHouse, t: KeyRebuild, next: KeyRebuild): Promise<boolean> {
  const left = await rebuildTables(ch, t);
  const keys = [await sortingKey(ch, t.name), ...left.map((r) => r.key)];
  return left.length > 0 && !keys.some((k) => keyedBy(k, next)) && keys.some((k) => keyedBy(k, t));
}

/** When the copy now in `name` began (its comment, unix seconds; undefined: not recorded). */
async function copyBegan(ch: ClickHouse, name: string, began: string): Promise<number | undefined> {
  const [row] = await ch.select<{ comment: string }>(
    'SELECT comment FROM system.tables WHERE database = {db:String} AND name = {name:String}',
    { db: ch.database, name },
  );
  const at = row?.comment.startsWith(began) === true ? Number(row.comment.slice(began.length)) : Number.NaN;
  return Number.isFinite(at) ? at : undefined;
}

/** Rows of a range (or of one hash bucket of it): `rows` in the table copied from, `weight` in both. */
interface CopyUnit {
  readonly start: number;
  readonly rows: number;
  readonly weight: number;
  readonly bucket?: readonly [number, number];
}
/** One call's rows: window_start in [from, to) (a side absent: unbounded), of one hash bucket or all. */
interface CopySpan {
  readonly from: number | undefined;
  readonly to: number | undefined;
  readonly rows: number;
  readonly bucket: readonly [number, number] | undefined;
}

/**
 * Calls covering every window_start, each reading at most `maxRows` rows of both tables (`weight`):
 * consecutive units packed, a unit of one hash bucket alone. Spans are contiguous, the first
 * unbounded below and the last above, so a row written meanwhile at any time is in one.
 */
function copySpans(units: readonly CopyUnit[], maxRows: number): CopySpan[] {
  const packed: Array<{ start: number; rows: number; weight: number; bucket?: readonly [number, number] }> = [];
  for (const u of units) {
    const last = packed.at(-1);
    if (
      last !== undefined &&
      last.bucket === undefined &&
      u.bucket === undefined &&
      last.weight + u.weight <= maxRows
    ) {
      last.rows += u.rows;
      last.weight += u.weight;
    } else packed.push({ ...u });
  }
  const first = packed[0]?.start;
  return packed.map((p) => ({
    from: p.start === first ? undefined : p.start,
    to: packed.find((q) => q.start > p.start)?.start,
    rows: p.rows,
    bucket: p.bucket,
  }));
}

/** The conditions of a span of `table` (and of `since`: rows written from then, unix seconds). */
function spanWhere(span: CopySpan, since: number | undefined, table?: KeyRebuild): string {
  const ms = (t: number) => `fromUnixTimestamp64Milli(toInt64(${t}), 'UTC')`;
  const written = table?.writtenAt ?? 'written_at';
  return (
    [
      ...(since === undefined ? [] : [`${written} >= toDateTime(${Math.floor(since)}, 'UTC')`]),
      ...(span.from === undefined ? [] : [`window_start >= ${ms(span.from)}`]),
      ...(span.to === undefined ? [] : [`window_start < ${ms(span.to)}`]),
      ...(span.bucket === undefined ? [] : [`${table?.bucketHash} % ${span.bucket[1]} = ${span.bucket[0]}`]),
    ].join(' AND ') || '1'
  );
}

/**
 * The copy's units: rows per day of `window_start`; a day of more than `maxRows` (both tables)
 * per window start; a window start of more, in hash buckets of about half `maxRows`.
 */
async function copyUnits(
  ch: ClickHouse,
  t: KeyRebuild,
  from: string,
  to: string,
  where: string,
  maxRows: number,
): Promise<CopyUnit[]> {
  const counts = async (grain: string, cond: string) => {
    const rows = await ch.select<{ g: number | string; f: number | string; t: number | string }>(
      `SELECT g, sum(fc) AS f, sum(tc) AS t FROM (
         SELECT ${grain} AS g, count() AS fc, toUInt64(0) AS tc FROM ${ch.table(from)} WHERE ${cond} GROUP BY g
         UNION ALL
         SELECT ${grain} AS g, toUInt64(0) AS fc, count() AS tc FROM ${ch.table(to)} WHERE ${cond} GROUP BY g)
       GROUP BY g ORDER BY g`,
    );
    return rows.map((r) => ({ g: Number(r.g), rows: Number(r.f), weight: Number(r.f) + Number(r.t) }));
  };
  const units: CopyUnit[] = [];
  for (const day of await counts('toRelativeDayNum(window_start)', where)) {
    if (day.weight <= maxRows) {
      units.push({ start: day.g * DAY_MS, rows: day.rows, weight: day.weight });
      continue;
    }
    const inDay = spanWhere({ from: day.g * DAY_MS, to: (day.g + 1) * DAY_MS, rows: 0, bucket: undefined }, undefined);
    for (const ws of await counts('toUnixTimestamp64Milli(window_start)', `${where} AND ${inDay}`)) {
      if (ws.weight <= maxRows) {
        units.push({ start: ws.g, rows: ws.rows, weight: ws.weight });
        continue;
      }
      const n = Math.ceil((2 * ws.weight) / maxRows);
      const at = spanWhere({ from: ws.g, to: ws.g + 1, rows: 0, bucket: undefined }, undefined);
      const buckets = new Map((await counts(`${t.bucketHash} % ${n}`, `${where} AND ${at}`)).map((b) => [b.g, b]));
      for (let i = 0; i < n; i++)
        units.push({
          start: ws.g,
          rows: buckets.get(i)?.rows ?? 0,
          weight: buckets.get(i)?.weight ?? 0,
          bucket: [i, n],
        });
    }
  }
  return units;
}

/**
 * Every row of `from` into `to`, `written_at` kept, in calls reading at most `chunkRows` rows of
 * the two tables (by days of `window_start`, a large day by window starts, a large window start by
 * hash buckets: a day of 3 M rows in one call outlived the call timeout, DRIFTLINE_CLICKHOUSE_TIMEOUT,
 * at every start; a review). A call copies only the rows `to` lacks (by {@link KeyRebuild.identity}), so a
 * span copied before, wholly or partly, is not copied twice. `resume`: `to` holds nothing but rows
 * of `from` (the rebuild's copy), so a span of which `to` holds as many distinct rows as `from` had
 * is skipped without reading it. Spans go in a random order: processes migrating at once share the
 * work instead of each copying everything. `since` (unix seconds): only rows written from then.
 */
async function copyRows(
  ch: ClickHouse,
  t: KeyRebuild,
  from: string,
  to: string,
  chunkRows: number,
  options: { readonly since?: number; readonly resume: boolean; readonly abandon?: () => Promise<boolean> },
): Promise<void> {
  const { columns, identity } = t;
  const where = spanWhere({ from: undefined, to: undefined, rows: 0, bucket: undefined }, options.since, t);
  const spans = copySpans(await copyUnits(ch, t, from, to, where, chunkRows), chunkRows).filter((s) => s.rows > 0);
  for (let i = spans.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [spans[i], spans[j]] = [spans[j] as CopySpan, spans[i] as CopySpan];
  }
  for (const span of spans) {
    const w = spanWhere(span, options.since, t);
    if (options.resume) {
      const [copied] = await ch.select<{ n: number | string }>(
        `SELECT uniqExact(${identity}) AS n FROM ${ch.table(to)} WHERE ${w}`,
      );
      if (Number(copied?.n ?? 0) >= span.rows) continue;
    }
    if ((await options.abandon?.()) === true) return;
    await ch.command(
      `INSERT INTO ${ch.table(to)} (${columns}) SETTINGS insert_allow_materialized_columns = 1
       SELECT ${columns} FROM ${ch.table(from)}
       WHERE ${w} AND (${identity}) NOT IN (SELECT ${identity} FROM ${ch.table(to)} WHERE ${w})`,
    );
  }
}

/** Polls until `t` has its new key, for at most `ms`. */
async function rekeyedWithin(ch: ClickHouse, t: KeyRebuild, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await rekeyed(ch, t)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Rebuilds `t.name` under `t.key`, resumable and in bounded calls (nothing to do when the table is
 * absent or has that key already):
 * 1. The copy `<name>_rebuild_copy` (the current DDL, its comment saying when the copy began; a
 *    `<name>_rebuild_*` table with the new key left by a run cut short within step 2 is taken as it)
 *    gets every row (not FINAL: rows the old key had not merged yet all live on, those the new key
 *    tells apart as their own rows) by {@link copyRows}: a run cut short — a call past
 *    DRIFTLINE_CLICKHOUSE_TIMEOUT fails the migration, and every service migrates at its start —
 *    leaves the copy, and the next run goes on from what it holds (it made a new full copy at
 *    every start before; a review).
 * 2. Only while the key is still the old one: the copy is renamed `<name>_rebuild_<run>` (one
 *    process wins; a second EXCHANGE of one fixed name would swap the tables back), then exchanged
 *    with the table. A process that lost waits for the key to change (at most the call timeout),
 *    else fails: the migration is recorded only once the table has the key.
 * 3. Every `<name>_rebuild_*` table is copied into the table and dropped: the old table only its
 *    rows written since the copy began (a previous release writing meanwhile; by its comment, a
 *    minute early; all rows when unknown), a copy (another run's) all its rows the table lacks.
 *    A table is dropped only once all its rows are in the table.
 * A step failing because another run dropped its table (the key changed, that table copied) is
 * done; a copy stops when another run has exchanged. At most one `<name>_rebuild_*` table holds
 * rows at a time; a second may exist for a moment (a run creating its copy just after another's
 * exchange: it abandons it before any row, and step 3 drops it), or when a process stopped between
 * 2 and 3. An insert racing the exchange itself may land in the old table after step 3 read it: lost.
 */
export async function rebuildUnderKey(ch: ClickHouse, t: KeyRebuild, chunkRows = REBUILD_CHUNK_ROWS): Promise<void> {
  const { name } = t;
  const key = await sortingKey(ch, name);
  if (key === undefined) return;
  // A step on `table` that failed because another run, the key changed, dropped it (after copying it whole).
  const settled = async (table: string, step: () => Promise<void>) => {
    try {
      await step();
    } catch (error) {
      if (!(await rekeyed(ch, t)) || (await sortingKey(ch, table)) !== undefined) throw error;
    }
  };
  const copy = rebuildCopy(name);
  if (!keyedBy(key, t)) {
    if ((await sortingKey(ch, copy)) === undefined) {
      const left = (await rebuildTables(ch, t)).find((r) => r.newKey);
      if (left !== undefined)
        await ch.command(`RENAME TABLE ${ch.table(left.name)} TO ${ch.table(copy)}`).catch(() => {});
      // Exchanged by another run meanwhile (its old table is a leftover): no copy to make.
      if (await rekeyed(ch, t)) return rebuildUnderKey(ch, t, chunkRows);
      const [clock] = await ch.select<{ now: number | string }>('SELECT toUnixTimestamp(now()) AS now');
      const [create, ...alter] = t.ddl(copy);
      await ch
        .command(`${create?.replaceAll('{db}', ch.database)} COMMENT '${began(t)}${Number(clock?.now)}'`)
        .catch(async (error: unknown) => {
          if ((await sortingKey(ch, copy)) === undefined) throw error;
        });
      // The copy taken meanwhile by another run (renamed to claim it): that run alters it too.
      for (const statement of alter)
        await ch.command(statement.replaceAll('{db}', ch.database)).catch(async (error: unknown) => {
          if ((await sortingKey(ch, copy)) !== undefined) throw error;
        });
    }
    // Another run exchanged meanwhile: the copy is one of the leftovers (step 3), not to be filled from the new table.
    const abandon = () => rekeyed(ch, t);
    try {
      await copyRows(ch, t, name, copy, chunkRows, { resume: true, abandon });
    } catch (error) {
      // The copy gone: another run took it to exchange (or, the key changed, dropped it). The key decides below.
      if ((await sortingKey(ch, copy)) !== undefined) throw error;
    }
    if (!(await rekeyed(ch, t))) {
      const claimed = `${rebuildPrefix(name)}${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      const won = await ch.command(`RENAME TABLE ${ch.table(copy)} TO ${ch.table(claimed)}`).then(
        () => true,
        () => false,
      );
      if (won && keyedBy(await sortingKey(ch, claimed), t) && !(await rekeyed(ch, t)))
        // Failing (another run took the copy back, or a timeout after the engine exchanged): the key decides below.
        await ch.command(`EXCHANGE TABLES ${ch.table(name)} AND ${ch.table(claimed)}`).catch(() => {});
    }
    if (!(await rekeyedWithin(ch, t, ch.timeoutMs)))
      throw new SinkUnavailableError(
        `${t.migration}: ${name} is not rebuilt yet (another process holds its copy, or stopped before the exchange): migrate again`,
      );
  }
  const since = await copyBegan(ch, name, began(t));
  for (const left of await rebuildTables(ch, t)) {
    const from = !left.newKey && since !== undefined ? since - 60 : undefined;
    await settled(left.name, () =>
      copyRows(ch, t, left.name, name, chunkRows, { resume: false, ...(from === undefined ? {} : { since: from }) }),
    );
    await ch.command(`DROP TABLE IF EXISTS ${ch.table(left.name)} SYNC`);
  }
}
