import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fitIsotonicCalibration, mergeScoreHistograms, scoreHistogram } from '@driftline/performance';
import { describe, expect, it } from 'vitest';
import { createClickHouse, migrate, migrations, warehouseOn } from '../src/index.js';
import {
  ClickHousePerformanceEstimateStore,
  scoreHistogramsThresholdKeyMigration,
} from '../src/tables/performance-estimates.js';

// The embedded engine (chdb) is a real ClickHouse; one data directory per test process.
const path = mkdtempSync(join(tmpdir(), 'driftline-ch-estimates-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const ref = { model: 'fraud', modelVersion: 'v1', windowStart: 1_700_000_000_000 };

describe('score_histograms and calibration_maps (0610)', () => {
  it('sums flushes of a window, a retried flush id counts once, other thresholds and windows stay apart', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const store = warehouseOn(ch).estimates;
    const a = scoreHistogram([0.1, 0.7, 0.7, 0.99], 0.5);
    const b = scoreHistogram([0.2, 0.51, 1e-9], 0.5);
    await store.insertHistograms([{ ref, threshold: 0.5, flushId: 'f1', histogram: a }]);
    // The same flush again (an insert that landed but answered a timeout), then a second one.
    await store.insertHistograms([{ ref, threshold: 0.5, flushId: 'f1', histogram: a }]);
    await store.insertHistograms([
      { ref, threshold: 0.5, flushId: 'f2', histogram: b },
      { ref, threshold: 0.3, flushId: 'f3', histogram: scoreHistogram([0.9], 0.3) },
      { ref: { ...ref, windowStart: ref.windowStart + 1 }, threshold: 0.5, flushId: 'f4', histogram: b },
    ]);
    const got = await store.histogram(ref, 0.5);
    const want = mergeScoreHistograms(a, b);
    expect(got?.counts).toEqual(want.counts);
    expect(got?.sums).toHaveLength(want.sums.length); // the loop below checks nothing on an empty list
    for (const [i, s] of (got?.sums ?? []).entries()) expect(s).toBeCloseTo(want.sums[i]!, 12);
    expect(await store.histogram({ ...ref, modelVersion: 'v2' }, 0.5)).toBeUndefined();
    await ch.close();
  });

  it('stores a calibration map and reads the newest; a malformed one fails naming the row', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    let now = 1_000;
    const store = warehouseOn(ch).estimates;
    const timed = new ClickHousePerformanceEstimateStore(ch, () => now);
    const map = fitIsotonicCalibration([0.1, 0.4, 0.6, 0.9], [0, 1, 0, 1]);
    await timed.saveCalibration('fraud', 'v1', 'ref-1', map);
    now = 2_000;
    const newer = fitIsotonicCalibration([0.1, 0.9], [0, 1]);
    await timed.saveCalibration('fraud', 'v1', 'ref-2', newer);
    expect(await store.calibration('fraud', 'v1')).toEqual({ referenceId: 'ref-2', map: newer });
    expect(await store.calibration('fraud', 'v9')).toBeUndefined();
    await ch.insert('calibration_maps', [
      {
        model: 'bad',
        version: 'v1',
        reference_id: 'r',
        calibration: '{"format":"nope"}',
        created_at: '2024-01-01 00:00:00.000',
      },
    ]);
    await expect(store.calibration('bad', 'v1')).rejects.toThrow(/calibration_maps\[bad\/v1\/r\]\.calibration/);
    await ch.close();
  });
});

describe('score_histograms keyed by threshold (0650)', () => {
  it("keeps two thresholds' tallies of one window taken in one flush (found by a review: one was merged away)", async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const store = warehouseOn(ch).estimates;
    // A changed DRIFTLINE_JOINER_THRESHOLD: the old threshold's tally and the new one's, one flush id.
    const old = scoreHistogram([0.1, 0.2, 0.7, 0.9], 0.5);
    const current = scoreHistogram([0.3, 0.8, 0.95], 0.6);
    await store.insertHistograms([
      { ref, threshold: 0.5, flushId: 'f1', histogram: old },
      { ref, threshold: 0.6, flushId: 'f1', histogram: current },
    ]);
    expect((await store.histogram(ref, 0.5))?.counts).toEqual(old.counts);
    expect((await store.histogram(ref, 0.6))?.counts).toEqual(current.counts);
    await ch.close();
  });

  it('rebuilds a 0610 table with the new key, keeping every row and its written_at; a crash mid-way resumes', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    const db = ch.database;
    await migrate(
      ch,
      migrations.filter((m) => m !== scoreHistogramsThresholdKeyMigration),
    );
    const sortingKey = async () =>
      (
        await ch.select<{ sorting_key: string }>(
          `SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = 'score_histograms'`,
          { db },
        )
      )[0]?.sorting_key;
    expect(await sortingKey()).toBe('model, model_version, window_start, flush_id');
    // Rows of an existing deployment, written a year ago (the retention clock must not restart).
    await ch.command(
      `INSERT INTO ${db}.score_histograms
         (model, model_version, window_start, threshold, flush_id, slots, counts, sums, recorded_at, written_at)
       SETTINGS insert_allow_materialized_columns = 1
       VALUES ('fraud', 'v1', '2023-11-14 22:13:20.000', 0.5, 'f1', [1, 7], [2, 3], [0.1, 2.2], '2025-12-01 00:00:00.000', '2025-12-01 00:00:00'),
              ('fraud', 'v1', '2023-11-14 22:23:20.000', 0.5, 'f2', [4], [1], [0.45], '2025-12-01 00:00:00.000', '2025-12-01 00:00:00')`,
    );
    const rows = () =>
      ch.select(
        `SELECT model, window_start, threshold, flush_id, slots, counts, sums, recorded_at, written_at
         FROM ${db}.score_histograms FINAL ORDER BY flush_id`,
      );
    const before = await rows();
    expect(before).toHaveLength(2);

    expect(await migrate(ch, migrations)).toEqual(['0650_score_histograms_threshold_key']);
    expect(await sortingKey()).toBe('model, model_version, window_start, threshold, flush_id');
    expect(await rows()).toEqual(before);
    const tables = async () =>
      (
        await ch.select<{ name: string }>(
          `SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE 'score_histograms%' ORDER BY name`,
          { db },
        )
      ).map((t) => t.name);
    expect(await tables()).toEqual(['score_histograms']);

    // A process that died after moving the table aside: the next run copies the rows back, once.
    await ch.command(`RENAME TABLE ${db}.score_histograms TO ${db}.score_histograms_0610`);
    await scoreHistogramsThresholdKeyMigration.apply?.(ch);
    // ...or after creating the new table and copying part of it: run again, nothing doubles.
    await scoreHistogramsThresholdKeyMigration.apply?.(ch);
    expect(await rows()).toEqual(before);
    expect(await tables()).toEqual(['score_histograms']);
    const store = warehouseOn(ch).estimates;
    expect((await store.histogram({ ...ref, windowStart: Date.UTC(2023, 10, 14, 22, 13, 20) }, 0.5))?.counts[7]).toBe(
      3,
    );
    await ch.close();
  });
});

describe('model card live metrics over performance_windows', () => {
  it("counts each window's newest recompute only: a segment that moved into __other__ is not counted twice (found by a review)", async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const start = '2023-11-14 22:00:00.000';
    const row = (segmentFeature: string, segment: string, labeled: number, version: number) => ({
      model: 'fraud',
      model_version: 'v1',
      window_start: start,
      window_end: '2023-11-14 22:10:00.000',
      segment_feature: segmentFeature,
      segment,
      task: 'classification',
      predictions: labeled,
      labeled,
      expired: 0,
      pending: 0,
      label_coverage: 1,
      invalid_labels: 0,
      accuracy: 0.9,
      precision: null,
      recall: null,
      f1: null,
      roc_auc: null,
      log_loss: null,
      brier: null,
      mae: null,
      rmse: null,
      mape: null,
      threshold: 0.5,
      version,
      computed_at: start,
    });
    // First recompute: top segments a, b, c. Late labels: d enters, b and c move into __other__.
    await ch.insert('performance_windows', [
      row('', '__all__', 12, 1),
      row('country', 'a', 5, 1),
      row('country', 'b', 4, 1),
      row('country', 'c', 3, 1),
    ]);
    await ch.insert('performance_windows', [
      row('', '__all__', 22, 2),
      row('country', '__other__', 7, 2),
      row('country', 'a', 5, 2),
      row('country', 'd', 10, 2),
    ]);
    const card = await warehouseOn(ch).modelCard('fraud', 'v1');
    const bySegment = Object.fromEntries(
      card.live.filter((l) => l.segmentFeature === 'country').map((l) => [l.segment, l.labeled]),
    );
    expect(bySegment).toEqual({ __other__: 7, a: 5, d: 10 });
    expect(card.live.find((l) => l.segmentFeature === '')?.labeled).toBe(22);
    await ch.close();
  });
});
