import { SinkUnavailableError } from '@driftline/core';
import type { ClickHouse } from '../client.js';
import { arrayElementUrlBytes, chunksByUrlBytes, MAX_LOOKUP_URL_BYTES } from '../lookup-chunks.js';
import type { Migration } from '../migrate.js';

/**
 * `alert_deliveries`: one row per message the alert-router finished with — delivered, or given up
 * on (refused, or failing while the receiver was up) — with the alert ids it carried. It is also
 * the router's deduplication state: an alert id with any row for a receiver, `delivered` or
 * `failed`, is never sent to it again (a replay after a crash, a restart, a duplicate alert).
 * Plain MergeTree: every outcome is kept, a failure followed by a later success shows as two rows
 * (the lookup reads such an id as delivered). Kept 90 days from the write (the deduplication
 * horizon; the retention clock is the server's `written_at`, as for every table: see retention.ts).
 */
export const alertDeliveriesMigration: Migration = {
  id: '0400_alert_deliveries',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.alert_deliveries (
      delivery_id String COMMENT 'hash of receiver and alert ids: a replayed message has the same id',
      receiver LowCardinality(String),
      alert_ids Array(String),
      group_key String COMMENT 'model/kind/bucket, or digest when the rate limit merged groups',
      model String COMMENT 'empty for a digest of several models',
      kind LowCardinality(String) COMMENT 'empty for a digest of several kinds',
      severity LowCardinality(String),
      status LowCardinality(String) COMMENT 'delivered or failed',
      attempts UInt16,
      http_status Nullable(UInt16) COMMENT 'of the last attempt; NULL when it got no answer',
      latency_ms UInt32 COMMENT 'first attempt to the final outcome',
      error String COMMENT 'of the last failed attempt; empty when delivered at once',
      first_attempt_at DateTime64(3, 'UTC'),
      finished_at DateTime64(3, 'UTC'),
      written_at DateTime MATERIALIZED now() COMMENT 'when the row was written (retention clock)'
    ) ENGINE = MergeTree
    ORDER BY (receiver, finished_at, delivery_id)
    TTL written_at + INTERVAL 90 DAY`,
  ],
};

/** The id lookup of `alert_deliveries` (0720): one row per alert id of each delivery row. */
const ALERT_DELIVERY_IDS = 'alert_delivery_ids';
/** How far 0720's copy of the rows written before its view has gone, per receiver. */
const ALERT_DELIVERY_IDS_BACKFILL = 'alert_delivery_ids_backfill';

/**
 * 0720: `alert_delivery_ids`, the index {@link AlertDeliveryStore.outcomes} reads: one row per
 * alert id of each `alert_deliveries` row, with that row's receiver and `finished_at` (the head of
 * its key), sorted by (receiver, alert_id). `alert_deliveries`' key has no alert id, so a lookup
 * read the receiver's whole 90-day history (linear: 4-7 s for 500 ids among 10 M, 27 s among 30 M,
 * past the 30 s call timeout beyond: every batch then failed for ever).
 *
 * A materialized view writes it from every insert into `alert_deliveries` (any writer, an older
 * release's too), within the same INSERT. The lookup then reads the delivery rows it names, by
 * their key, and takes the outcome from them: a lookup row that landed without its delivery row
 * (an INSERT cut short between the two) counts for nothing; a delivery row whose lookup row did not
 * land is missed, so its ids are sent again (as when the delivery row itself is lost). An INSERT
 * that fails is retried by the router, writing both again. ReplacingMergeTree: a row written twice
 * (the view and the copy below, a retried insert) is one row after a merge; the reads need no FINAL.
 * Granules of 256 rows compressed one by one: 500 random ids read at most 500 granules of each part
 * (128 k rows of a merged table, not its millions). `written_at` is the delivery row's, so both
 * expire together (90 days).
 *
 * Rows written before the view are copied by {@link backfillAlertDeliveryIds} (`apply`).
 */
export const alertDeliveryIdsMigration: Migration = {
  id: '0720_alert_delivery_ids',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.${ALERT_DELIVERY_IDS} (
      receiver LowCardinality(String),
      alert_id String,
      finished_at DateTime64(3, 'UTC'),
      written_at DateTime DEFAULT now() COMMENT 'the alert_deliveries row''s (retention clock)'
    ) ENGINE = ReplacingMergeTree
    PRIMARY KEY (receiver, alert_id)
    ORDER BY (receiver, alert_id, finished_at)
    TTL written_at + INTERVAL 90 DAY
    SETTINGS index_granularity = 256, min_compress_block_size = 4096`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.${ALERT_DELIVERY_IDS}_view TO {db}.${ALERT_DELIVERY_IDS}
    AS SELECT receiver, alert_id, finished_at, written_at
    FROM {db}.alert_deliveries ARRAY JOIN alert_ids AS alert_id`,
    `CREATE TABLE IF NOT EXISTS {db}.${ALERT_DELIVERY_IDS_BACKFILL} (
      receiver String,
      through Int64 COMMENT 'finished_at (unix ms) up to which the receiver''s rows are copied',
      written_at DateTime MATERIALIZED now() COMMENT 'when the row was written (retention clock)'
    ) ENGINE = ReplacingMergeTree(through)
    ORDER BY receiver
    TTL written_at + INTERVAL 90 DAY`,
  ],
  apply: (ch) => backfillAlertDeliveryIds(ch),
};

/** Most alert ids a call of 0720's copy reads and writes (1.7 s for 200,000; 17 s at most on a 2-CPU host at load 20-35). */
const BACKFILL_CHUNK_IDS = 250_000;
/** Finished times up to a day past the server's clock are copied: a router's clock running ahead. */
const CLOCK_AHEAD_MS = 86_400_000;

/** A receiver as SQL text without quoting: its bytes in hex (a command takes no parameters). */
const receiverSql = (receiver: string) => `unhex('${Buffer.from(receiver, 'utf8').toString('hex')}')`;
const msSql = (ms: number) => `fromUnixTimestamp64Milli(toInt64(${Math.trunc(ms)}), 'UTC')`;

/**
 * Copies into `alert_delivery_ids` the ids of the `alert_deliveries` rows written before 0720's
 * view (which writes every later row), receiver by receiver in `finished_at` order, each call
 * reading and writing about `chunkIds` ids (a bound found through the key, so no call grows with
 * the table): the call timeout bounds one call, not the copy. Each receiver's progress is recorded
 * in `alert_delivery_ids_backfill` after each call, so a start cut short (a timeout, a crash) goes
 * on from there; processes migrating at once may copy a span twice (one row after a merge). A row
 * written before the view finished by then on its router's clock, up to {@link CLOCK_AHEAD_MS}
 * ahead of the server's: rows up to that bound are copied (later ones are the view's).
 */
export async function backfillAlertDeliveryIds(ch: ClickHouse, chunkIds = BACKFILL_CHUNK_IDS): Promise<void> {
  const [clock] = await ch.select<{ now: number }>('SELECT toUnixTimestamp64Milli(now64(3)) AS now');
  const until = Number(clock?.now) + CLOCK_AHEAD_MS;
  if (!Number.isFinite(until)) throw new SinkUnavailableError(`0720: the server's clock read as ${String(clock?.now)}`);
  const recorded = await ch.select<{ receiver: string; through: number }>(
    `SELECT receiver, max(through) AS through FROM ${ch.table(ALERT_DELIVERY_IDS_BACKFILL)} GROUP BY receiver`,
  );
  const through = new Map(recorded.map((r) => [r.receiver, Number(r.through)]));
  const source = ch.table('alert_deliveries');
  let previous: string | undefined;
  for (;;) {
    // The next receiver in key order: a read of one granule, not of the receiver column.
    const [next] = await ch.select<{ receiver: string }>(
      `SELECT receiver FROM ${source} WHERE ${previous === undefined ? '1' : 'receiver > {previous:String}'}
       ORDER BY receiver LIMIT 1`,
      previous === undefined ? {} : { previous },
    );
    if (next === undefined) return;
    const receiver = next.receiver;
    previous = receiver;
    let from = through.get(receiver);
    while (from === undefined || from < until) {
      const after = from === undefined ? '' : `AND finished_at > ${msSql(from)}`;
      // The finished time up to which about chunkIds ids follow `from` (at least one row).
      const [bound] = await ch.select<{ to: number; rows: number }>(
        `SELECT max(t) AS to, count() AS rows FROM (
           SELECT t, n, sum(n) OVER (ORDER BY t ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS ids FROM (
             SELECT toUnixTimestamp64Milli(finished_at) AS t, length(alert_ids) AS n FROM ${source}
             WHERE receiver = {receiver:String} ${after} AND finished_at <= ${msSql(until)}
             ORDER BY finished_at LIMIT {chunk:UInt64}))
         WHERE ids - n < {chunk:UInt64}`,
        { receiver, chunk: chunkIds },
      );
      const to = Number(bound?.rows) > 0 ? Number(bound?.to) : until;
      if (Number(bound?.rows) > 0)
        await ch.command(
          `INSERT INTO ${ch.table(ALERT_DELIVERY_IDS)} (receiver, alert_id, finished_at, written_at)
           SELECT receiver, alert_id, finished_at, written_at
           FROM ${source} ARRAY JOIN alert_ids AS alert_id
           WHERE receiver = ${receiverSql(receiver)} ${after} AND finished_at <= ${msSql(to)}`,
        );
      await ch.insert(ALERT_DELIVERY_IDS_BACKFILL, [{ receiver, through: to }]);
      from = to;
    }
  }
}

/** A row of `alert_deliveries` (times as chTime text). */
export interface AlertDeliveryRow {
  readonly delivery_id: string;
  readonly receiver: string;
  readonly alert_ids: readonly string[];
  readonly group_key: string;
  readonly model: string;
  readonly kind: string;
  readonly severity: string;
  readonly status: 'delivered' | 'failed';
  readonly attempts: number;
  readonly http_status: number | null;
  readonly latency_ms: number;
  readonly error: string;
  readonly first_attempt_at: string;
  readonly finished_at: string;
}

/** An alert id's recorded outcome for a receiver: `delivered` when any of its rows says so. */
type AlertDeliveryOutcome = AlertDeliveryRow['status'];

/** What the alert-router needs from storage. */
export interface AlertDeliveryStore {
  /**
   * The recorded outcome of each id among `alertIds` that `receiver` has a row for (within the
   * table's 90-day TTL); ids without a row are absent. A failed id counts: a new process must not
   * send again what was given up (it did, once, when only delivered rows were read).
   */
  outcomes(receiver: string, alertIds: readonly string[]): Promise<Map<string, AlertDeliveryOutcome>>;
  /**
   * Which of `receivers` have any row (delivered or failed, within the 90-day TTL): the router's
   * start-up tells a receiver whose group's commits were deleted from a new one by it.
   */
  receiversWithDeliveries(receivers: readonly string[]): Promise<Set<string>>;
  write(rows: readonly AlertDeliveryRow[]): Promise<void>;
}

export class ClickHouseAlertDeliveryStore implements AlertDeliveryStore {
  constructor(private readonly ch: ClickHouse) {}

  async outcomes(receiver: string, alertIds: readonly string[]): Promise<Map<string, AlertDeliveryOutcome>> {
    const out = new Map<string, AlertDeliveryOutcome>();
    // The ids travel in the URL: chunks by their encoded bytes (1,000 ids of 32 hex were 39 KiB),
    // half the bound each for the ids and the times of the second query.
    const half = MAX_LOOKUP_URL_BYTES / 2;
    for (const ids of chunksByUrlBytes(new Set(alertIds), arrayElementUrlBytes, half)) {
      // alert_delivery_ids, sorted by id, names when the ids' delivery rows finished: only the ids'
      // granules are read. A scan of the receiver's rows (ARRAY JOIN … WHERE receiver) grew with its
      // history: 4-7 s for 500 ids among 10 M, 27 s among 30 M, past the 30 s call timeout beyond.
      const found = await this.ch.select<{ finished_at: string }>(
        `SELECT DISTINCT finished_at FROM ${this.ch.table(ALERT_DELIVERY_IDS)}
         WHERE receiver = {receiver:String} AND alert_id IN {ids:Array(String)}`,
        { receiver, ids },
      );
      // Then those rows, by alert_deliveries' key: the outcome is a delivery row's, so an id whose
      // lookup row landed without its delivery row (an insert cut short between the two) counts for nothing.
      for (const times of chunksByUrlBytes(
        found.map((r) => r.finished_at),
        arrayElementUrlBytes,
        half,
      )) {
        const rows = await this.ch.select<{ id: string; delivered: number }>(
          `SELECT id, max(status = 'delivered') AS delivered
           FROM ${this.ch.table('alert_deliveries')} ARRAY JOIN alert_ids AS id
           WHERE receiver = {receiver:String} AND finished_at IN {times:Array(DateTime64(3, 'UTC'))}
             AND id IN {ids:Array(String)}
           GROUP BY id`,
          { receiver, times, ids },
        );
        for (const r of rows)
          if (out.get(r.id) !== 'delivered') out.set(r.id, Number(r.delivered) === 1 ? 'delivered' : 'failed');
      }
    }
    return out;
  }

  async receiversWithDeliveries(receivers: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (const names of chunksByUrlBytes(new Set(receivers), arrayElementUrlBytes)) {
      // `receiver` leads the order key: only those receivers' granules are read.
      const rows = await this.ch.select<{ receiver: string }>(
        `SELECT DISTINCT receiver FROM ${this.ch.table('alert_deliveries')}
         WHERE receiver IN {receivers:Array(String)}`,
        { receivers: names },
      );
      for (const r of rows) found.add(r.receiver);
    }
    return found;
  }

  write(rows: readonly AlertDeliveryRow[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return this.ch.insert('alert_deliveries', rows);
  }
}
