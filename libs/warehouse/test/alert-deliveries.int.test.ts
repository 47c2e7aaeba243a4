import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type AlertDeliveryRow,
  type ClickHouse,
  chTime,
  createClickHouse,
  migrate,
  migrations,
  type QueryParams,
  type TypedResult,
  warehouseOn,
} from '../src/index.js';
import { backfillAlertDeliveryIds, ClickHouseAlertDeliveryStore } from '../src/tables/alert-deliveries.js';
import { testClickHouse } from './fixtures/clickhouse.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-deliveries-'));

const row = (receiver: string, status: AlertDeliveryRow['status'], alertIds: string[]): AlertDeliveryRow => ({
  delivery_id: `${receiver}-${alertIds.join()}`,
  receiver,
  alert_ids: alertIds,
  group_key: 'fraud/FEATURE_DRIFT/0',
  model: 'fraud',
  kind: 'FEATURE_DRIFT',
  severity: 'warning',
  status,
  attempts: 1,
  http_status: status === 'delivered' ? 200 : 404,
  latency_ms: 3,
  error: '',
  first_attempt_at: chTime(Date.now()),
  finished_at: chTime(Date.now()),
});

describe('alert_deliveries: receiversWithDeliveries', () => {
  it('names the receivers with any row, delivered or failed, among those asked', async () => {
    const ch = await createClickHouse(testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    await migrate(ch, migrations);
    const store = warehouseOn(ch).alertDeliveries;
    await store.write([
      row('pager', 'delivered', ['a1', 'a2']),
      row('pager', 'delivered', ['a3']),
      row("it's-failed", 'failed', ['a1']),
      row('not-asked', 'delivered', ['a1']),
    ]);
    const found = await store.receiversWithDeliveries(['pager', "it's-failed", 'renamed', 'pager']);
    expect([...found].sort()).toEqual(["it's-failed", 'pager']);
    expect(await store.receiversWithDeliveries(['renamed'])).toEqual(new Set());
    expect(await store.receiversWithDeliveries([])).toEqual(new Set());
    await ch.close();
  });
});

/** A store whose every select also reports the rows the engine read for it (FORMAT JSON's statistics). */
function countingStore(ch: ClickHouse): { store: ClickHouseAlertDeliveryStore; readRows: () => number } {
  let read = 0;
  const counting: ClickHouse = {
    ...ch,
    select: async <T>(sql: string, params: QueryParams = {}) => {
      const result: TypedResult & { statistics?: { rows_read?: number } } = await ch.selectTyped(sql, params);
      read += Number(result.statistics?.rows_read ?? Number.NaN);
      return result.data as unknown as T[];
    },
  };
  return {
    store: new ClickHouseAlertDeliveryStore(counting),
    readRows: () => {
      const n = read;
      read = 0;
      return n;
    },
  };
}

/**
 * `count` rows of one id each for `receiver` (ids as 32 hex), one a millisecond back from now, every
 * 7th failed: one insert, so one part in each table, as merges leave them.
 */
const manyRows = (ch: ClickHouse, receiver: string, count: number) =>
  ch.command(
    `INSERT INTO ${ch.table('alert_deliveries')} (delivery_id, receiver, alert_ids, group_key, model, kind, severity,
       status, attempts, http_status, latency_ms, error, first_attempt_at, finished_at)
     SELECT toString(number), unhex('${Buffer.from(receiver).toString('hex')}'),
       [substring(lower(hex(SHA256(toString(number)))), 1, 32)], 'g', 'fraud', 'FEATURE_DRIFT', 'warning',
       if(number % 7 = 0, 'failed', 'delivered'), 1, 200, 5, '', now64(3) - number / 1000, now64(3) - number / 1000
     FROM numbers(${count})`,
  );
/** The id `manyRows` gave row `n` (the same SHA-256, cut to 32 hex). */
const idOf = (n: number) => createHash('sha256').update(String(n)).digest('hex').slice(0, 32);

describe('alert_deliveries: outcomes', () => {
  it('reads the asked ids’ granules, not the receiver’s whole history (600,000 ids stored)', async () => {
    const ch = await createClickHouse(
      testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`, 120_000),
    );
    try {
      await migrate(ch, migrations);
      const stored = 600_000;
      await manyRows(ch, 'pager', stored);
      const { store, readRows } = countingStore(ch);
      // A batch as the router asks: 250 ids of recent deliveries (a replay after a crash), 250 new.
      const recent = Array.from({ length: 250 }, (_, i) => idOf(i * 3));
      const fresh = Array.from({ length: 250 }, () => randomUUID().replaceAll('-', ''));
      const outcomes = await store.outcomes('pager', [...recent, ...fresh]);
      expect(outcomes).toEqual(new Map(recent.map((id, i) => [id, (i * 3) % 7 === 0 ? 'failed' : 'delivered'])));
      // At most one granule of the lookup per id (256 rows) and a few of the delivery rows: the
      // scan read every one of the receiver's 600,000 rows.
      expect(readRows()).toBeLessThanOrEqual(500 * 256 + 4 * 8_192);
      // 500 new ids: the lookup alone.
      const none = Array.from({ length: 500 }, () => randomUUID().replaceAll('-', ''));
      expect(await store.outcomes('pager', none)).toEqual(new Map());
      expect(readRows()).toBeLessThanOrEqual(500 * 256);
      // Old ids (a day back: 90,000,000 ms) are found as well: no time bound on the look-up.
      expect(await store.outcomes('pager', [idOf(stored - 1), idOf(stored - 2)])).toEqual(
        new Map([
          [idOf(stored - 1), (stored - 1) % 7 === 0 ? 'failed' : 'delivered'],
          [idOf(stored - 2), (stored - 2) % 7 === 0 ? 'failed' : 'delivered'],
        ]),
      );
      // A lookup row without its delivery row (a crash between the two) says nothing.
      await ch.insert('alert_delivery_ids', [
        { receiver: 'pager', alert_id: 'orphan', finished_at: chTime(Date.now()) },
      ]);
      expect(await store.outcomes('pager', ['orphan', idOf(0)])).toEqual(new Map([[idOf(0), 'failed']]));
    } finally {
      await ch.close();
    }
  }, 120_000);
});

describe('0720 on a table written before it', () => {
  it('copies the earlier rows’ ids in bounded calls; a start cut short goes on from its progress', async () => {
    const ch = await createClickHouse(testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    try {
      await migrate(
        ch,
        migrations.filter((m) => m.id < '0720'),
      );
      const store = warehouseOn(ch).alertDeliveries;
      const day = 86_400_000;
      const at = (row: AlertDeliveryRow, ms: number): AlertDeliveryRow => ({ ...row, finished_at: chTime(ms) });
      const now = Date.now();
      const before: AlertDeliveryRow[] = [
        ...Array.from({ length: 10 }, (_, i) => at(row('pager', 'delivered', [`p${i}a`, `p${i}b`]), now - i * 3 * day)),
        at(row('pager', 'failed', ['p-retried']), now - 20 * day),
        at(row('pager', 'delivered', ['p-retried', 'p-later']), now - 19 * day),
        at(row("it's", 'failed', ['q1']), now - day),
        at(row("it's", 'delivered', ['q2']), now - day), // the same finished time as q1's row
        at(row('slack', 'delivered', ['s1', 's2', 's3']), now - 80 * day),
        at(row('slack', 'delivered', ['s4']), now + 3_600_000), // a router clock an hour ahead
      ];
      await store.write(before);
      // Copies of at most 2 ids a call: pager's rows one by one. The 4th copy fails (a timeout).
      const small = migrations.map((m) =>
        m.id === '0720_alert_delivery_ids' ? { ...m, apply: (x: ClickHouse) => backfillAlertDeliveryIds(x, 2) } : m,
      );
      let copies = 0;
      const copying = (fail: number | undefined): ClickHouse => ({
        ...ch,
        command: async (sql) => {
          if (sql.includes('INSERT INTO') && ++copies === fail) throw new Error('cut short');
          return ch.command(sql);
        },
      });
      await expect(migrate(copying(4), small)).rejects.toThrow('cut short');
      copies = 0;
      // 0720 and every later migration (0730 came later), each recorded.
      expect(await migrate(copying(undefined), small)).toEqual(
        migrations.filter((m) => m.id >= '0720').map((m) => m.id),
      );
      // 14 copies in all (it's 1; pager 11: its two rows of p-retried in one; slack 2), 3 before the cut.
      expect(copies).toBe(11);
      // Rows written since go through the view.
      await store.write([row('pager', 'delivered', ['after']), row('slack', 'failed', ['s1'])]);
      const ids = [...new Set(before.flatMap((r) => r.alert_ids)), 'after', 'never'];
      expect(Object.fromEntries(await store.outcomes('pager', ids))).toEqual({
        ...Object.fromEntries(
          Array.from({ length: 10 }, (_, i) => [
            [`p${i}a`, 'delivered'],
            [`p${i}b`, 'delivered'],
          ]).flat(),
        ),
        'p-retried': 'delivered',
        'p-later': 'delivered',
        after: 'delivered',
      });
      expect(Object.fromEntries(await store.outcomes("it's", ids))).toEqual({ q1: 'failed', q2: 'delivered' });
      expect(Object.fromEntries(await store.outcomes('slack', ids))).toEqual({
        s1: 'delivered',
        s2: 'delivered',
        s3: 'delivered',
        s4: 'delivered',
      });
      // Each id of each row once (a span copied twice is merged away: FINAL).
      const [{ n } = { n: -1 }] = await ch.select<{ n: number }>(
        `SELECT count() AS n FROM ${ch.table('alert_delivery_ids')} FINAL`,
      );
      expect(Number(n)).toBe(before.reduce((sum, r) => sum + r.alert_ids.length, 0) + 2);
    } finally {
      await ch.close();
    }
  }, 120_000);
});
