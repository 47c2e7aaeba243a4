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

  // What the engine stores for JSON's null at each place was checked on it (26.x): a default (0, '',
  // [], (0, '')) wherever the type there is not Nullable, also inside a Tuple that has a Nullable
  // element elsewhere — which the check had taken for a Nullable column. Found by a review.
  it('inside a Tuple, an Array of Tuples, a Map of Tuples: poison where the element is not Nullable, whatever its neighbours', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, []);
    await ch.command(`CREATE TABLE ${ch.table('tuples')} (
      id String,
      t Tuple(a Float64, b Nullable(Float64)),
      u Tuple(Float64, LowCardinality(Nullable(String))),
      n Array(Tuple(x Float64, y Nullable(Float64))),
      m Map(String, Tuple(Float64, Nullable(Float64)))
    ) ENGINE = MergeTree ORDER BY id`);
    const ok = { id: 'ok', t: { a: 1, b: 2 }, u: [1, 's'], n: [{ x: 1, y: 2 }], m: { k: [1, 2] } };
    for (const [column, value, at] of [
      ['t', { a: Number.NaN, b: 2 }, 't["a"] (Float64)'],
      ['u', [Number.POSITIVE_INFINITY, null], 'u[0] (Float64)'],
      [
        'n',
        [
          { x: 1, y: 2 },
          { x: Number.NEGATIVE_INFINITY, y: null },
        ],
        'n[1]["x"] (Float64)',
      ],
      ['m', { k: [Number.NaN, 1] }, 'm["k"][0] (Float64)'],
    ] as const) {
      const error = await failure(ch.insert('tuples', [ok, { ...ok, id: 'bad', [column]: value }]));
      expect(error, column).toMatchObject({
        code: 'SINK_REJECTED',
        retriable: false,
        details: { clickhouse: { name: 'NON_FINITE_NUMBER', column } },
      });
      expect((error as Error).message).toContain(` at ${at}`);
    }
    // A Nullable element keeps NULL, as a Nullable column does.
    await ch.insert('tuples', [
      { ...ok, t: { a: 1, b: Number.NaN }, n: [{ x: 1, y: Number.POSITIVE_INFINITY }], m: { k: [1, Number.NaN] } },
    ]);
    expect(
      await ch.select(
        `SELECT id, toString(t) AS t, toString(u) AS u, toString(n) AS n, toString(m) AS m FROM ${ch.table('tuples')}`,
      ),
    ).toEqual([{ id: 'ok', t: '(1,NULL)', u: "(1,'s')", n: '[(1,NULL)]', m: "{'k':(1,NULL)}" }]);
    await ch.close();
  });

  it('NULL where the type holds one: LowCardinality(Nullable), Variant, Dynamic; a default in LowCardinality(Float64)', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, []);
    await ch.command(`CREATE TABLE ${ch.table('open_types')} (
      id String,
      lc LowCardinality(Nullable(Float64)),
      v Variant(Float64, String),
      d Dynamic,
      lf LowCardinality(Float64)
    ) ENGINE = MergeTree ORDER BY id SETTINGS allow_suspicious_low_cardinality_types = 1`);
    const row = { id: 'x', lc: Number.NaN, v: Number.POSITIVE_INFINITY, d: Number.NEGATIVE_INFINITY, lf: 1 };
    expect(await failure(ch.insert('open_types', [{ ...row, lf: Number.NaN }]))).toMatchObject({
      code: 'SINK_REJECTED',
      details: { clickhouse: { name: 'NON_FINITE_NUMBER', column: 'lf' } },
    });
    await ch.insert('open_types', [row]);
    expect(
      await ch.select(`SELECT id, isNull(lc) AS lc, isNull(v) AS v, isNull(d) AS d, lf FROM ${ch.table('open_types')}`),
    ).toEqual([{ id: 'x', lc: 1, v: 1, d: 1, lf: 1 }]);
    await ch.close();
  });
});
