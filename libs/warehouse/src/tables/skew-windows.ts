import type { ClickHouse } from '../client.js';
import { type KeyRebuild, REBUILD_CHUNK_ROWS, rebuildUnderKey } from '../key-rebuild.js';
import { arrayElementUrlBytes, chunksByUrlBytes } from '../lookup-chunks.js';
import type { Migration } from '../migrate.js';
import { chTime } from '../time.js';

/** Where a partition's first log's rows live (0620), and its later logs' (0670). */
const SKEW_WINDOWS = 'skew_windows';
const SKEW_WINDOWS_V2 = 'skew_windows_v2';

/** The columns both tables have since 0670: what every read of {@link skewWindowRows} may use by default. */
const ROW_COLUMNS = `model, model_version, window_start, window_end, feature, source_topic, source_partition,
  through_offset, sampled, compared, mismatched, numeric_compared, abs_diff_sum, missing_in_store,
  missing_in_prediction, newer_row, staleness_hist, updated_at`;
/** {@link ROW_COLUMNS} and `expired` (0690): the skew-monitor's reads (it migrates its database). */
const ROW_COLUMNS_0690 = `${ROW_COLUMNS}, expired`;
/**
 * {@link ROW_COLUMNS} and `expired`, 0 on a table before 0690 (through the `COLUMNS` matcher, which
 * matches nothing there): for a reader of a database it does not migrate (the report).
 */
export const ROW_COLUMNS_ANY_RELEASE = `${ROW_COLUMNS}, coalesce(COLUMNS('^expired\\z'), 0) AS expired`;

/** The sorting key of `skew_windows` (`window_end` since 0710); `skew_windows_v2`'s ends with `log_epoch`. */
const KEY = ['model', 'model_version', 'window_start', 'window_end', 'feature', 'source_topic', 'source_partition'];
const KEY_V2 = [...KEY, 'log_epoch'];

/**
 * `skew_windows` (0620) and `skew_windows_v2` (0670): the same columns and TTL, v2 with `log_epoch`
 * in its key (`key`) and the epoch's first record (`logColumns`). `window_end` is in the key since 0710
 * (tables created before are rebuilt by {@link skewWindowsWindowEndMigration}).
 */
function skewWindowsTable(name: string, logColumns: string, key: readonly string[]): string {
  return `CREATE TABLE IF NOT EXISTS {db}.${name} (
      model LowCardinality(String),
      model_version LowCardinality(String),
      window_start DateTime64(3, 'UTC'),
      window_end DateTime64(3, 'UTC'),
      feature LowCardinality(String),
      source_topic LowCardinality(String),
      source_partition UInt32,
      ${logColumns}
      through_offset UInt64 COMMENT 'last source offset counted: the replacing version and the replay guard',
      sampled UInt64 COMMENT 'sampled predictions carrying the feature',
      compared UInt64 COMMENT 'of those, with a store row current at the prediction time',
      mismatched UInt64,
      numeric_compared UInt64,
      abs_diff_sum Float64 COMMENT 'sum of |served - stored| over numeric_compared',
      missing_in_store UInt64,
      missing_in_prediction UInt64,
      newer_row UInt64 COMMENT 'row written after the prediction: not comparable as of then',
      staleness_hist Array(UInt64) COMMENT 'prediction time - row time of the compared, buckets of STALENESS_BOUNDS_MS (@driftline/skew) plus overflow',
      updated_at DateTime64(3, 'UTC'),
      written_at DateTime MATERIALIZED now() COMMENT 'when the row was written (retention clock)'
    ) ENGINE = ReplacingMergeTree(through_offset)
    ORDER BY (${key.join(', ')})
    TTL written_at + INTERVAL 400 DAY`;
}

/**
 * `skew_windows` (training-serving skew, the skew-monitor): one row per (model, version, window —
 * its start and end —, feature, source topic, source partition) holding that partition's counts of the window SO FAR,
 * with `through_offset` = the last source offset they include. ReplacingMergeTree(through_offset):
 * a partition's newer row replaces its older one, a replayed batch writes the same row again, and
 * rows of different partitions never replace each other — a window's value is the SUM over
 * partitions of the FINAL rows (`totals`, the dashboards). The row is also the partition's state:
 * a new owner (restart, rebalance) reads it back and skips every offset ≤ `through_offset`, so a
 * replay never counts a prediction twice. Offsets name records of one log: a recreated source
 * topic's later logs have rows of their own in `skew_windows_v2` (0670, below).
 *
 * Why not the drift-monitor's two-stage merge: skew counts are sums, which merge exactly at read
 * time, so a per-partition cumulative row needs no second stage, no watermark and no held commits
 * (a late prediction simply updates its window's row). Kept 400 days from the write, as drift_windows.
 */
export const skewWindowsMigration: Migration = {
  id: '0620_skew_windows',
  statements: [skewWindowsTable(SKEW_WINDOWS, '', KEY)],
};

/**
 * 0670: `skew_windows_v2`, `skew_windows` with the source log's epoch in its key (`log_epoch`). A
 * source topic deleted and created again starts its offsets over, and `through_offset` — the
 * replacing version and the replay guard — named the old log's records: in one row per partition,
 * the new log's counts of a window spanning the recreation lost to the old row until its offsets
 * passed the old one, and a new owner skipped the new log's predictions as replays (found by a
 * review). Each log of a partition now has rows of its own: epoch 0 (the first log) in
 * `skew_windows`, where they always were — an instance of the previous release in a rolling deploy
 * reads and writes the same rows —, every later epoch in `skew_windows_v2`. Nothing is copied; a
 * window's value is the sum over both tables, every partition and every epoch ({@link skewWindowRows}).
 * Every row of an epoch also names the log it counts — the offset and fingerprint of the first
 * record its starter processed in it (`log_start_*`) —, so that a process told of a restart the epoch's starter
 * already counted (its commit lost) continues that epoch instead of counting the log again.
 */
export const skewWindowsV2Migration: Migration = {
  id: '0670_skew_windows_v2',
  statements: [skewWindowsV2Table(SKEW_WINDOWS_V2)],
};

/** The DDL of `skew_windows_v2` (0670) under the name `name`. */
function skewWindowsV2Table(name: string): string {
  return skewWindowsTable(
    name,
    `log_epoch UInt32 COMMENT 'which log of the source partition: 1 after its first recreation, +1 at each next (0, the first log: skew_windows)',
      log_start_offset UInt64 COMMENT 'offset of the first record its starter processed in this epoch (where it read the log from)',
      log_start_fingerprint String COMMENT 'recordFingerprint (@driftline/kafka) of that record: with its offset, which log the epoch is',`,
    KEY_V2,
  );
}

/** The tables of skew rows: the first log's (0620) and the later logs' (0670). */
export const SKEW_WINDOW_TABLES = [SKEW_WINDOWS, SKEW_WINDOWS_V2] as const;

/**
 * 0690: `expired` on both tables — sampled (prediction, feature) pairs whose row was absent when
 * read while the prediction was already older than the view's TTL: the row it was served had
 * expired (the store reads it absent), so not comparable. The skew-monitor lagging more than a
 * TTL behind counted them `missing_in_store`, hiding real skew (a review). Rows written before
 * (or by an earlier release) read 0.
 */
export const skewWindowsExpiredMigration: Migration = {
  id: '0690_skew_windows_expired',
  statements: SKEW_WINDOW_TABLES.map(addExpired),
};

function addExpired(name: string): string {
  return `ALTER TABLE {db}.${name} ADD COLUMN IF NOT EXISTS expired UInt64 DEFAULT 0
       COMMENT 'no row read while the prediction was older than the view TTL: its row had expired, not comparable'`;
}

/** Each table's rebuild under the key with `window_end` (0710): its DDL since 0690, columns and identity. */
const WINDOW_END_REBUILD = {
  [SKEW_WINDOWS]: {
    name: SKEW_WINDOWS,
    migration: '0710',
    key: KEY,
    ddl: (name: string) => [skewWindowsTable(name, '', KEY), addExpired(name)],
    columns: `${ROW_COLUMNS_0690}, written_at`,
    identity: 'model, model_version, window_start, window_end, feature, source_topic, source_partition, through_offset',
    bucketHash: 'cityHash64(model, model_version, window_end, feature, source_topic, source_partition)',
  },
  [SKEW_WINDOWS_V2]: {
    name: SKEW_WINDOWS_V2,
    migration: '0710',
    key: KEY_V2,
    ddl: (name: string) => [skewWindowsV2Table(name), addExpired(name)],
    columns: `${ROW_COLUMNS_0690}, log_epoch, log_start_offset, log_start_fingerprint, written_at`,
    identity:
      'model, model_version, window_start, window_end, feature, source_topic, source_partition, log_epoch, through_offset',
    bucketHash: 'cityHash64(model, model_version, window_end, feature, source_topic, source_partition)',
  },
} as const satisfies Record<(typeof SKEW_WINDOW_TABLES)[number], KeyRebuild>;

/**
 * 0710: `window_end` in the key of both tables. Without it, after a change of the window length
 * (DRIFTLINE_SKEW_WINDOW, e.g. 10m → 5m) a row of the new length replaced, under FINAL, the row of the
 * old length starting at the same time in the same partition and log — the old window lost its
 * counts —, and an old-length row of a higher `through_offset` (the old process had counted past its
 * last commit) hid the new-length row: the new window's state and totals read nothing (a review).
 * Tables created since have the key from their DDL (0620, 0670); one created before cannot take an
 * existing column into its key, so it is rebuilt: {@link rebuildWithWindowEnd}.
 */
export const skewWindowsWindowEndMigration: Migration = {
  id: '0710_skew_windows_window_end',
  statements: [],
  apply: async (ch) => {
    for (const name of SKEW_WINDOW_TABLES) await rebuildWithWindowEnd(ch, name);
  },
};

/**
 * Rebuilds `name` under the key with `window_end` ({@link rebuildUnderKey}, in calls of at most
 * `chunkRows` rows). A row the previous release wrote to the old table after its last copy is
 * lost; its partition's next write of the window (rows are cumulative) writes it again.
 */
export function rebuildWithWindowEnd(
  ch: ClickHouse,
  name: (typeof SKEW_WINDOW_TABLES)[number],
  chunkRows = REBUILD_CHUNK_ROWS,
): Promise<void> {
  return rebuildUnderKey(ch, WINDOW_END_REBUILD[name], chunkRows);
}

/**
 * Every current row (FINAL) of skew_windows matching `where` (over {@link ROW_COLUMNS}), of every log
 * epoch: a subquery of both tables, `table` qualifying their names. A window's value is the sum of
 * these rows — over partitions and epochs —, for the skew-monitor's alerts and the report (the
 * dashboards read both tables through `merge()` instead: Grafana cannot ask which exist). Epochs never share a row: epoch 0 lives only in `skew_windows`, others only
 * in `skew_windows_v2`. `tables` (not empty): those to read — a reader of a database it does not
 * migrate (the report) passes those that exist: one not yet migrated to 0670 has no later log.
 */
export function skewWindowRows(
  table: (name: string) => string,
  where: string,
  tables: ReadonlyArray<(typeof SKEW_WINDOW_TABLES)[number]> = SKEW_WINDOW_TABLES,
  columns: string = ROW_COLUMNS,
): string {
  return tables
    .map((name) => `SELECT ${columns} FROM ${table(name)} FINAL WHERE ${where}`)
    .join('\n    UNION ALL\n    ');
}

/** Mergeable counts (the `SkewCounts` of @driftline/skew). */
export interface SkewCountsRow {
  readonly sampled: number;
  readonly compared: number;
  readonly mismatched: number;
  readonly numericCompared: number;
  readonly absDiffSum: number;
  readonly missingInStore: number;
  readonly missingInPrediction: number;
  readonly newerRow: number;
  /** Absent row, the prediction already older than the view's TTL at the read (0690). */
  readonly expired: number;
  readonly stalenessHist: readonly number[];
}

/** A (model, version, window) — what a partition's state and a totals query are keyed by. */
export interface SkewWindowKey {
  readonly model: string;
  readonly version: string;
  readonly windowStart: number;
}

/** The first record processed in a log epoch (sampled or not): its offset and `recordFingerprint` (@driftline/kafka). */
export interface SkewLogStart {
  readonly offset: number;
  readonly fingerprint: string;
}

/**
 * The latest log of a source partition rows were written for: its epoch (0 the first log, +1 at each
 * recreation of the topic) and, from epoch 1, the first record its starter processed (it reads the
 * new log from its start): a log whose record at that offset has that fingerprint is the same log.
 */
export interface SkewLog {
  readonly epoch: number;
  readonly start?: SkewLogStart;
}

/** One partition's counts of one feature of one window, through a source offset of one of its logs. */
export interface SkewPartialRow extends SkewWindowKey {
  readonly windowEnd: number;
  readonly feature: string;
  readonly topic: string;
  readonly partition: number;
  /** Which log of the partition `throughOffset` and the counts are of: 0 the first, +1 at each recreation. */
  readonly logEpoch: number;
  /**
   * From epoch 1: the first record processed in it, written with every row of the epoch (see
   * {@link SkewLog}). Absent, the epoch names no record: a restart reported later starts the next one.
   */
  readonly logStart?: SkewLogStart;
  readonly throughOffset: number;
  readonly counts: SkewCountsRow;
  readonly updatedAt: number;
}

/** The counts of one feature of one window over every source partition. */
export interface SkewTotalsRow extends SkewWindowKey {
  readonly feature: string;
  readonly counts: SkewCountsRow;
}

/** A window of a source topic as the skew-monitor's release sweep reads it. */
export interface SkewWrittenWindow extends SkewWindowKey {
  readonly windowEnd: number;
  /** The latest `updated_at` of its rows, over every partition and feature. */
  readonly lastWrittenAt: number;
}

/**
 * Where a page of `windowsEnding` starts: strictly after this window in (window_end, model,
 * version, window_start) order — the last window of the previous page, or `{ windowEnd: t,
 * model: '', version: '', windowStart: 0 }` for every window ending at t or later (a model name is
 * never empty).
 */
export type SkewWindowCursor = SkewWindowKey & { readonly windowEnd: number };

export interface SkewWindowStore {
  /** Epoch 0's rows go to `skew_windows`, later epochs' to `skew_windows_v2` (one insert each). */
  write(rows: readonly SkewPartialRow[]): Promise<void>;
  /** The latest log a row of the source partition was written for (epoch 0, no start, when none above it). */
  latestLog(topic: string, partition: number): Promise<SkewLog>;
  /**
   * The current rows of one source partition for these windows, of one of its logs (its state
   * after a restart or rebalance). Only windows `windowMs` long: after a change of the window
   * length (DRIFTLINE_SKEW_WINDOW), a row of an old window starting where a new one does is not
   * the new one's state (before this filter a 5-minute window took up a 10-minute one's counts,
   * and before 0710 put window_end in the key, FINAL kept one of the two rows; reviews).
   */
  partials(
    topic: string,
    partition: number,
    logEpoch: number,
    keys: readonly SkewWindowKey[],
    windowMs: number,
  ): Promise<SkewPartialRow[]>;
  /**
   * Window counts summed over every partition and log epoch of `topic`, for these windows and
   * features, of windows `windowMs` long only (as `partials`: rows of another window length are
   * another window).
   */
  totals(topic: string, keys: readonly SkewWindowKey[], windowMs: number): Promise<SkewTotalsRow[]>;
  /**
   * Windows of `topic` after `after` whose end is at most `upTo`, in (window_end, model, version,
   * window_start) order, at most `limit` (at most 500), of windows `windowMs` long only: those of
   * an earlier configuration (DRIFTLINE_SKEW_WINDOW changed) are not this process's to alert on,
   * and `totals` reads none of their rows. `windowMs` also bounds their start for the table's key
   * (window_start ≥ after.windowEnd − windowMs).
   */
  windowsEnding(
    topic: string,
    after: SkewWindowCursor,
    upTo: number,
    windowMs: number,
    limit: number,
  ): Promise<SkewWrittenWindow[]>;
}

/** Most windows `windowsEnding` answers at once. */
const WINDOWS_PER_PAGE = 500;

interface RawCounts {
  sampled: number | string;
  compared: number | string;
  mismatched: number | string;
  numeric_compared: number | string;
  abs_diff_sum: number;
  missing_in_store: number | string;
  missing_in_prediction: number | string;
  newer_row: number | string;
  expired: number | string;
  staleness_hist: Array<number | string>;
}

const COUNT_COLUMNS = `sampled, compared, mismatched, numeric_compared, abs_diff_sum, missing_in_store,
  missing_in_prediction, newer_row, expired, staleness_hist`;
const SUM_COLUMNS = `sum(sampled) AS sampled, sum(compared) AS compared, sum(mismatched) AS mismatched,
  sum(numeric_compared) AS numeric_compared, sum(abs_diff_sum) AS abs_diff_sum,
  sum(missing_in_store) AS missing_in_store, sum(missing_in_prediction) AS missing_in_prediction,
  sum(newer_row) AS newer_row, sum(expired) AS expired, sumForEach(staleness_hist) AS staleness_hist`;

/**
 * A row's window is `{windowMs}` long: windows of another length (DRIFTLINE_SKEW_WINDOW changed)
 * may start at the same time — rows of their own since 0710 put window_end in the key.
 */
const WINDOW_LENGTH_IS = `toUnixTimestamp64Milli(window_end) - toUnixTimestamp64Milli(window_start) = {windowMs:Int64}`;

/** Bytes a window key adds to the three arrays in the URL (its start: digits and a comma). */
const keyUrlBytes = (k: SkewWindowKey) =>
  arrayElementUrlBytes(k.model) + arrayElementUrlBytes(k.version) + String(k.windowStart).length + 3;

/** Window keys as three parallel arrays (zipped in SQL: tuples are no query parameter type of the client). */
function keyParams(keys: readonly SkewWindowKey[]) {
  return {
    models: keys.map((k) => k.model),
    versions: keys.map((k) => k.version),
    starts: keys.map((k) => k.windowStart),
  };
}

function countsOf(r: RawCounts): SkewCountsRow {
  return {
    sampled: Number(r.sampled),
    compared: Number(r.compared),
    mismatched: Number(r.mismatched),
    numericCompared: Number(r.numeric_compared),
    absDiffSum: Number(r.abs_diff_sum),
    missingInStore: Number(r.missing_in_store),
    missingInPrediction: Number(r.missing_in_prediction),
    newerRow: Number(r.newer_row),
    expired: Number(r.expired),
    stalenessHist: r.staleness_hist.map(Number),
  };
}

export class ClickHouseSkewWindowStore implements SkewWindowStore {
  constructor(private readonly ch: ClickHouse) {}

  async write(rows: readonly SkewPartialRow[]): Promise<void> {
    const first = rows.filter((r) => r.logEpoch === 0);
    const later = rows.filter((r) => r.logEpoch !== 0);
    if (first.length > 0) await this.ch.insert(SKEW_WINDOWS, first.map(columnsOf));
    if (later.length > 0)
      await this.ch.insert(
        SKEW_WINDOWS_V2,
        later.map((r) => ({
          ...columnsOf(r),
          log_epoch: r.logEpoch,
          log_start_offset: r.logStart?.offset ?? 0,
          log_start_fingerprint: r.logStart?.fingerprint ?? '',
        })),
      );
  }

  async latestLog(topic: string, partition: number): Promise<SkewLog> {
    // skew_windows_v2 holds only the partitions whose topic was recreated: small, and read once
    // per partition a process takes up. Of the latest epoch, its earliest row: its starter's.
    const [row] = await this.ch.select<{ epoch: number | string; offset: number | string; fingerprint: string }>(
      `SELECT log_epoch AS epoch, log_start_offset AS offset, log_start_fingerprint AS fingerprint
       FROM ${this.ch.table(SKEW_WINDOWS_V2)}
       WHERE source_topic = {topic:String} AND source_partition = {partition:UInt32}
       ORDER BY log_epoch DESC, updated_at
       LIMIT 1`,
      { topic, partition },
    );
    if (row === undefined) return { epoch: 0 };
    const epoch = Number(row.epoch);
    return row.fingerprint === ''
      ? { epoch }
      : { epoch, start: { offset: Number(row.offset), fingerprint: row.fingerprint } };
  }

  async partials(
    topic: string,
    partition: number,
    logEpoch: number,
    keys: readonly SkewWindowKey[],
    windowMs: number,
  ): Promise<SkewPartialRow[]> {
    const out: SkewPartialRow[] = [];
    const from =
      logEpoch === 0
        ? `${this.ch.table(SKEW_WINDOWS)} FINAL WHERE 1`
        : `${this.ch.table(SKEW_WINDOWS_V2)} FINAL WHERE log_epoch = {logEpoch:UInt32}`;
    // The keys travel in the URL: chunks by their encoded bytes.
    for (const chunk of chunksByUrlBytes(keys, keyUrlBytes)) {
      const rows = await this.ch.select<
        RawCounts & {
          model: string;
          model_version: string;
          ws: number | string;
          we: number | string;
          feature: string;
          through_offset: number | string;
          ua: number | string;
        }
      >(
        `SELECT model, model_version, toUnixTimestamp64Milli(window_start) AS ws,
           toUnixTimestamp64Milli(window_end) AS we, feature, through_offset,
           toUnixTimestamp64Milli(updated_at) AS ua, ${COUNT_COLUMNS}
         FROM ${from}
           AND source_topic = {topic:String} AND source_partition = {partition:UInt32}
           AND model IN {models:Array(String)}
           AND has(arrayZip({models:Array(String)}, {versions:Array(String)}, {starts:Array(Int64)}),
                   (model, model_version, toUnixTimestamp64Milli(window_start)))
           AND ${WINDOW_LENGTH_IS}`,
        { topic, partition, logEpoch, windowMs, ...keyParams(chunk) },
      );
      for (const r of rows) {
        out.push({
          model: r.model,
          version: r.model_version,
          windowStart: Number(r.ws),
          windowEnd: Number(r.we),
          feature: r.feature,
          topic,
          partition,
          logEpoch,
          throughOffset: Number(r.through_offset),
          counts: countsOf(r),
          updatedAt: Number(r.ua),
        });
      }
    }
    return out;
  }

  async windowsEnding(
    topic: string,
    after: SkewWindowCursor,
    upTo: number,
    windowMs: number,
    limit: number,
  ): Promise<SkewWrittenWindow[]> {
    // The start bounds let the key (model, model_version, window_start, …) skip parts and granules:
    // without them every tick read the topic's whole history.
    const rows = await this.ch.select<{
      model: string;
      model_version: string;
      ws: number | string;
      we: number | string;
      written: number | string;
    }>(
      `SELECT model, model_version, toUnixTimestamp64Milli(window_start) AS ws,
         toUnixTimestamp64Milli(window_end) AS we, toUnixTimestamp64Milli(max(updated_at)) AS written
       FROM (${skewWindowRows(
         (name) => this.ch.table(name),
         `source_topic = {topic:String}
           AND window_start >= fromUnixTimestamp64Milli({startFrom:Int64}, 'UTC')
           AND window_start <= fromUnixTimestamp64Milli({upTo:Int64}, 'UTC')
           AND window_end <= fromUnixTimestamp64Milli({upTo:Int64}, 'UTC')
           AND (toUnixTimestamp64Milli(window_end), model, model_version, toUnixTimestamp64Milli(window_start))
               > ({afterEnd:Int64}, {afterModel:String}, {afterVersion:String}, {afterStart:Int64})
           AND ${WINDOW_LENGTH_IS}`,
       )})
       GROUP BY model, model_version, window_start, window_end
       ORDER BY we, model, model_version, ws
       LIMIT {limit:UInt32}`,
      {
        topic,
        windowMs,
        startFrom: after.windowEnd - windowMs,
        upTo,
        afterEnd: after.windowEnd,
        afterModel: after.model,
        afterVersion: after.version,
        afterStart: after.windowStart,
        limit: Math.min(limit, WINDOWS_PER_PAGE),
      },
    );
    return rows.map((r) => ({
      model: r.model,
      version: r.model_version,
      windowStart: Number(r.ws),
      windowEnd: Number(r.we),
      lastWrittenAt: Number(r.written),
    }));
  }

  async totals(topic: string, keys: readonly SkewWindowKey[], windowMs: number): Promise<SkewTotalsRow[]> {
    const out: SkewTotalsRow[] = [];
    // The keys travel in the URL: chunks by their encoded bytes.
    for (const chunk of chunksByUrlBytes(keys, keyUrlBytes)) {
      const rows = await this.ch.select<
        RawCounts & { model: string; model_version: string; ws: number | string; feature: string }
      >(
        `SELECT model, model_version, toUnixTimestamp64Milli(window_start) AS ws, feature, ${SUM_COLUMNS}
         FROM (${skewWindowRows(
           (name) => this.ch.table(name),
           `source_topic = {topic:String}
             AND model IN {models:Array(String)}
             AND has(arrayZip({models:Array(String)}, {versions:Array(String)}, {starts:Array(Int64)}),
                     (model, model_version, toUnixTimestamp64Milli(window_start)))
             AND ${WINDOW_LENGTH_IS}`,
           SKEW_WINDOW_TABLES,
           ROW_COLUMNS_0690,
         )})
         GROUP BY model, model_version, window_start, feature`,
        { topic, windowMs, ...keyParams(chunk) },
      );
      for (const r of rows) {
        out.push({
          model: r.model,
          version: r.model_version,
          windowStart: Number(r.ws),
          feature: r.feature,
          counts: countsOf(r),
        });
      }
    }
    return out;
  }
}

/** A row's columns shared by both tables. */
function columnsOf(r: SkewPartialRow) {
  return {
    model: r.model,
    model_version: r.version,
    window_start: chTime(r.windowStart),
    window_end: chTime(r.windowEnd),
    feature: r.feature,
    source_topic: r.topic,
    source_partition: r.partition,
    through_offset: r.throughOffset,
    sampled: r.counts.sampled,
    compared: r.counts.compared,
    mismatched: r.counts.mismatched,
    numeric_compared: r.counts.numericCompared,
    abs_diff_sum: r.counts.absDiffSum,
    missing_in_store: r.counts.missingInStore,
    missing_in_prediction: r.counts.missingInPrediction,
    newer_row: r.counts.newerRow,
    expired: r.counts.expired,
    staleness_hist: r.counts.stalenessHist,
    updated_at: chTime(r.updatedAt),
  };
}
