import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  chTime,
  createClickHouse,
  migrate,
  migrations,
  type SequentialDetectionRow,
  warehouseOn,
} from '../src/index.js';
import { testClickHouse } from './fixtures/clickhouse.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-seq-'));

describe('sequential_detections (0640)', () => {
  it('keeps one row per (model, version, feature, window, partition): a replayed alarm replaces it', async () => {
    const ch = await createClickHouse(testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    await migrate(ch, migrations);
    const store = warehouseOn(ch).sequentialDetections;
    const now = Date.now();
    const row = (partition: number, statistic: number, detectedAt: number): SequentialDetectionRow => ({
      model: 'm',
      version: 'v1',
      reference_id: 'r',
      feature: 'x',
      source_topic: 'predictions.v1',
      source_partition: partition,
      window_start: chTime(now - 60_000),
      window_end: chTime(now),
      event_time: chTime(now - 30_000),
      source_offset: 12_345_678_901,
      statistic_kind: 'cvm',
      statistic,
      threshold: 1.5,
      t: 250,
      run_length: 51,
      window_size: 200,
      check_every: 10,
      ert: 100_000,
      detected_at: chTime(detectedAt),
    });
    await store.insert([row(0, 2, now), row(1, 3, now)]);
    await store.insert([row(0, 4, now + 1)]); // the replay of partition 0's alarm
    await store.insert([]);
    const got = await store.list('m');
    expect(got.map((r) => [r.source_partition, r.statistic])).toEqual([
      [0, 4],
      [1, 3],
    ]);
    expect(got[0]).toMatchObject({ source_offset: 12_345_678_901, t: 250, run_length: 51, ert: 100_000 });
    expect(await store.list('other')).toEqual([]);
    await ch.close();
  });
});
