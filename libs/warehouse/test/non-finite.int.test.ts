import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chTime, createClickHouse, type DriftWindowRow, migrate, migrations, warehouseOn } from '../src/index.js';
import { testClickHouse } from './fixtures/clickhouse.js';

// JSON has no NaN or ±Infinity: JSON.stringify writes null, and ClickHouse stores a null as 0 in a
// column that is not Nullable. Found by a review: a NaN drift statistic was stored as 0 ("no drift").
const path = mkdtempSync(join(tmpdir(), 'driftline-ch-nonfinite-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const T0 = Date.now() - 3_600_000; // inside the tables' retention

function window(feature: string, values: Partial<DriftWindowRow> = {}): DriftWindowRow {
  return {
    model: 'm',
    version: 'v1',
    reference_id: 'r',
    feature,
    window_start: chTime(T0),
    window_end: chTime(T0 + 60_000),
    method: 'psi',
    statistic: 0.3,
    p_value: 0.01,
    threshold: 0.2,
    drifted: 1,
    reference_size: 100,
    current_size: 100,
    events: 100,
    late_events: 0,
    error_bound: 0.05,
    source_partitions: 1,
    idle_partitions: 0,
    computed_at: chTime(T0 + 61_000),
    ...values,
  };
}

const failure = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

describe('non-finite numbers on the real engine', () => {
  it('are poison in a column that is not Nullable (named in the error), NULL in a Nullable one', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
    const store = warehouseOn(ch).driftWindows;

    for (const [column, value] of [
      ['statistic', Number.NaN],
      ['threshold', Number.POSITIVE_INFINITY],
      ['statistic', 1e308 * 10], // an overflow is Infinity
      ['threshold', Number.NEGATIVE_INFINITY],
    ] as const) {
      const error = await failure(store.insert([window('ok-1'), window(`bad-${column}`, { [column]: value })]));
      expect(error, `${column} = ${value}`).toMatchObject({
        code: 'SINK_REJECTED',
        retriable: false,
        details: { clickhouse: { category: 'rejected', name: 'NON_FINITE_NUMBER', column } },
      });
      expect((error as Error).message).toContain(`column ${column} (Float64) got ${value}`);
    }

    // Nullable columns keep what they got before: NaN and ±Infinity are NULL.
    await store.insert([window('nullable', { p_value: Number.NaN, error_bound: Number.POSITIVE_INFINITY })]);
    const rows = await ch.select<{
      feature: string;
      statistic: number;
      p_value: number | null;
      error_bound: number | null;
    }>(`SELECT feature, statistic, p_value, error_bound FROM ${ch.table('drift_windows')} ORDER BY feature`);
    // Nothing of a rejected batch was written.
    expect(rows).toEqual([{ feature: 'nullable', statistic: 0.3, p_value: null, error_bound: null }]);
    await ch.close();
  });

  it('inside an array or a map: poison unless the element is Nullable', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, []);
    await ch.command(`CREATE TABLE ${ch.table('nested')}
      (id String, a Array(Float64), m Map(String, Float64), an Array(Nullable(Float64))) ENGINE = MergeTree ORDER BY id`);
    const row = { id: 'x', a: [1], m: { k: 1 }, an: [1] };
    expect(await failure(ch.insert('nested', [{ ...row, a: [1, Number.NaN] }]))).toMatchObject({
      code: 'SINK_REJECTED',
      details: { clickhouse: { column: 'a' } },
    });
    expect(await failure(ch.insert('nested', [{ ...row, m: { k: Number.NEGATIVE_INFINITY } }]))).toMatchObject({
      code: 'SINK_REJECTED',
      details: { clickhouse: { column: 'm' } },
    });
    await ch.insert('nested', [{ ...row, an: [Number.NaN, 2] }]);
    expect(await ch.select(`SELECT id, a, an FROM ${ch.table('nested')}`)).toEqual([
      { id: 'x', a: [1], an: [null, 2] },
    ]);
    await ch.close();
  });
});
