// A window over readWindow's `maxRows` read as a sample (embedded ClickHouse, a real engine; the
// store's ClickHouse is the real one, its `select` only watched or followed by an insert).
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeWindow, type PerformanceRow, type WindowColumns, windowStart } from '@driftline/performance';
import { describe, expect, it } from 'vitest';
import { type ClickHouse, ClickHousePredictionStore, createClickHouse, migrate, migrations } from '../src/index.js';
import { testClickHouse } from './fixtures/clickhouse.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-sample-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const WINDOW = 3_600_000;
// Recent: inside the tables' retention.
const START = windowStart(Date.now() - 2 * WINDOW, WINDOW);

async function open(): Promise<ClickHouse> {
  const ch = await createClickHouse(testClickHouse(path, database()));
  await migrate(ch, migrations);
  return ch;
}

/**
 * `n` labeled rows of model `model` from row `from` on (10 ms apart), segment `user` from the SQL
 * expression `segment` (of `number`, the row), score 0.9 and label `label`.
 */
function insertLabeled(ch: ClickHouse, model: string, from: number, n: number, label: string, segment: string) {
  return ch.command(
    `INSERT INTO ${ch.table('labeled_predictions')} (model, model_version, prediction_id, entity_id, prediction_time,
       label_time, features, prediction, predicted_class, label, joined_at)
     SELECT '${model}', 'v1', concat('p-', toString(number + ${from})), 'e',
       fromUnixTimestamp64Milli(toInt64(${START} + (number + ${from}) * 10)), now64(3),
       concat('{"user":"', ${segment}, '"}'), 0.9, NULL, ${label}, now64(3)
     FROM numbers(${n})`,
  );
}

function insertExpired(ch: ClickHouse, model: string, from: number, n: number, segment: string) {
  return ch.command(
    `INSERT INTO ${ch.table('unlabeled_predictions')} (model, model_version, prediction_id, entity_id, prediction_time,
       deadline, expired_at, features, prediction, predicted_class)
     SELECT '${model}', 'v1', concat('x-', toString(number + ${from})), 'e',
       fromUnixTimestamp64Milli(toInt64(${START} + (number + ${from}) * 10)), now64(3), now64(3),
       concat('{"user":"', ${segment}, '"}'), 0.9, NULL
     FROM numbers(${n})`,
  );
}

const rowsOf = (window: WindowColumns, maxSegments: number, segmentFeatures: string[] = ['user']): PerformanceRow[] =>
  computeWindow({
    task: 'classification',
    threshold: 0.5,
    segmentFeatures,
    maxSegments,
    window,
    pending: 0,
    minSampled: 1,
  });

describe('readWindow of a window over maxRows', () => {
  it('reads the counts of the kept segments only, ranked with the expired rows as computeWindow ranks them', async () => {
    const ch = await open();
    let selected = 0;
    // The real engine; the rows each `select` returned (whole results, held at once) are counted.
    const watched: ClickHouse = Object.assign(Object.create(ch) as ClickHouse, {
      select: async <T>(sql: string, params: Record<string, unknown>) => {
        const rows = await ch.select<T>(sql, params);
        selected = Math.max(selected, rows.length);
        return rows;
      },
    });
    // 2,400 rows with a value each, then A ×300, B ×200, C ×100, E ×5 labeled + 150 expired.
    await insertLabeled(ch, 'm', 0, 2_400, 'number % 2', "concat('u-', toString(number))");
    await insertLabeled(ch, 'm', 2_400, 300, '1', "'A'");
    await insertLabeled(ch, 'm', 2_700, 200, '1', "'B'");
    await insertLabeled(ch, 'm', 2_900, 100, '1', "'C'");
    await insertLabeled(ch, 'm', 3_000, 5, '1', "'E'");
    await insertExpired(ch, 'm', 0, 150, "'E'");
    const ref = { model: 'm', modelVersion: 'v1', windowStart: START };
    const MAX_SEGMENTS = 4;
    const sampled = await new ClickHousePredictionStore(watched).readWindow(ref, WINDOW, ['user'], {
      maxRows: 1_000,
      maxSegments: MAX_SEGMENTS,
    });
    expect(sampled.sampled?.labeled).toBe(3_005);
    expect(sampled.labeledCount).toBeLessThanOrEqual(1_000);
    // Every select's result bounded by the segments kept (the ranking's maxSegments + 1 rows),
    // not by the feature's 2,404 values (up to maxRows of them had been returned).
    expect(selected).toBeLessThanOrEqual(MAX_SEGMENTS + 1);
    const whole = await new ClickHousePredictionStore(ch).readWindow(ref, WINDOW, ['user']);
    const slices = (rows: PerformanceRow[]) => rows.map((r) => [r.segment, r.labeled, r.expired]);
    // E (5 labeled, 150 expired) outranks C (100 labeled) as in a whole read.
    expect(slices(rowsOf(sampled, MAX_SEGMENTS))).toEqual(slices(rowsOf(whole, MAX_SEGMENTS)));
    expect(slices(rowsOf(sampled, MAX_SEGMENTS))).toEqual([
      ['__all__', 3_005, 150],
      ['A', 300, 0],
      ['B', 200, 0],
      ['E', 5, 150],
      ['__other__', 2_500, 0],
    ]);
    await ch.close();
  });

  it('rows written between the count and the read: counted again and read as a uniform sample, flagged', async () => {
    const ch = await open();
    // After the window's count (the aggregate without GROUP BY), the next insert of `inserts`.
    const inserts: Array<() => Promise<void>> = [];
    const hooked: ClickHouse = Object.assign(Object.create(ch) as ClickHouse, {
      select: async <T>(sql: string, params: Record<string, unknown>) => {
        const rows = await ch.select<T>(sql, params);
        if (/count\(\) AS n, countIf/.test(sql) && !/GROUP BY/.test(sql)) await inserts.shift()?.();
        return rows;
      },
    });
    const store = new ClickHousePredictionStore(hooked);
    const BOUND = 5_000;
    const cases: Array<{ model: string; first: number; extra: number[] }> = [
      { model: 'under', first: 4_990, extra: [300] }, // under the bound when counted
      { model: 'over', first: 6_000, extra: [6_000] }, // over it, and twice the rows by the read
    ];
    for (const { model, first, extra } of cases) {
      // Early rows all right, the rows joined during the read all wrong.
      await insertLabeled(ch, model, 0, first, '1', "'US'");
      let at = first;
      for (const n of extra) {
        const from = at;
        inserts.push(() => insertLabeled(ch, model, from, n, '0', "'US'"));
        at += n;
      }
      const window = await store.readWindow({ model, modelVersion: 'v1', windowStart: START }, WINDOW, [], {
        maxRows: BOUND,
      });
      expect(window.sampled?.labeled, model).toBe(at);
      expect(window.sampled?.cut, model).toBeUndefined();
      expect(window.labeledCount, model).toBeLessThanOrEqual(BOUND);
      const [whole] = rowsOf(window, 10, []);
      // A uniform sample of all the rows, not the earliest by time (0.998 and 0.947 had been
      // published): the share of wrong rows in a sample of thousands is within 0.02 of the window's.
      expect(Math.abs((whole?.metrics.accuracy as number) - first / at), model).toBeLessThan(0.02);
      expect(whole?.sampled, model).toBe(window.labeledCount);
    }
    await ch.close();
  });

  it('rows still arriving past the bound after the second count: the window has no metrics, flagged cut', async () => {
    const ch = await open();
    const inserts: Array<() => Promise<void>> = [];
    const hooked: ClickHouse = Object.assign(Object.create(ch) as ClickHouse, {
      select: async <T>(sql: string, params: Record<string, unknown>) => {
        const rows = await ch.select<T>(sql, params);
        if (/count\(\) AS n, countIf/.test(sql) && !/GROUP BY/.test(sql)) await inserts.shift()?.();
        return rows;
      },
    });
    await insertLabeled(ch, 'm', 0, 6_000, '1', "'US'");
    inserts.push(() => insertLabeled(ch, 'm', 6_000, 6_000, '0', "'US'"));
    inserts.push(() => insertLabeled(ch, 'm', 12_000, 60_000, '0', "'US'"));
    const window = await new ClickHousePredictionStore(hooked).readWindow(
      { model: 'm', modelVersion: 'v1', windowStart: START },
      WINDOW,
      [],
      { maxRows: 5_000 },
    );
    expect(window.sampled).toMatchObject({ labeled: 12_000, cut: true });
    expect(window.labeledCount).toBe(5_000);
    const [whole] = rowsOf(window, 10, []);
    expect(whole).toMatchObject({ labeled: 12_000, sampled: 5_000 });
    expect(whole?.metrics.accuracy).toBeNull();
    await ch.close();
  });
});
