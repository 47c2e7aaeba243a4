import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chTime, createClickHouse, type DriftWindowRow, migrate, migrations, warehouseOn } from '../src/index.js';
import { testClickHouse } from './fixtures/clickhouse.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-written-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const T0 = Date.now() - 3_600_000 - 123; // inside the tables' retention; not on a whole second

const row = (values: Partial<DriftWindowRow>): DriftWindowRow => ({
  model: 'm',
  version: 'v1',
  reference_id: 'r',
  feature: 'x',
  window_start: chTime(T0),
  window_end: chTime(T0 + 60_000),
  method: 'psi',
  statistic: 0.3,
  p_value: null,
  threshold: 0.2,
  drifted: 1,
  reference_size: 100,
  current_size: 100,
  events: 100,
  late_events: 0,
  error_bound: null,
  source_partitions: 1,
  idle_partitions: 0,
  computed_at: chTime(T0 + 61_000),
  ...values,
});

describe('drift_windows: the references a window was written on', () => {
  it('lists each reference id of a (model, version, window) once, sorted; none for another window', async () => {
    const ch = await createClickHouse(testClickHouse(path, database()));
    await migrate(ch, migrations);
    const store = warehouseOn(ch).driftWindows;
    expect(await store.writtenReferences('m', 'v1', T0, T0 + 60_000)).toEqual([]);
    await store.insert([row({ reference_id: 'r2' }), row({ reference_id: 'r2', feature: 'y' })]);
    // A replay (same key, later computed_at), another reference, and neighbours that do not count.
    await store.insert([
      row({ reference_id: 'r2', computed_at: chTime(T0 + 62_000) }),
      row({ reference_id: 'r1', method: 'ks' }),
      row({ reference_id: 'r3', version: 'v2' }),
      row({ reference_id: 'r4', window_start: chTime(T0 + 1), window_end: chTime(T0 + 60_001) }),
    ]);
    expect(await store.writtenReferences('m', 'v1', T0, T0 + 60_000)).toEqual(['r1', 'r2']);
    expect(await store.writtenReferences('m', 'v2', T0, T0 + 60_000)).toEqual(['r3']);
    expect(await store.writtenReferences('m', 'v1', T0 + 60_000, T0 + 120_000)).toEqual([]);
    await ch.close();
  });
});
