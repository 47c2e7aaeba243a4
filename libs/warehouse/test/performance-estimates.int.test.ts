import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fitIsotonicCalibration,
  mergeScoreHistograms,
  type ScoreHistogram,
  scoreHistogram,
} from '@driftline/performance';
import { describe, expect, it } from 'vitest';
import { type ClickHouse, chTime, createClickHouse, migrate, migrations, warehouseOn } from '../src/index.js';
import { ClickHousePerformanceEstimateStore } from '../src/tables/performance-estimates.js';

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

describe('score_histograms_v2: threshold in the key, the 0610 table still read (0650)', () => {
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
    await ch.command(`OPTIMIZE TABLE ${ch.table('score_histograms_v2')} FINAL`);
    expect((await store.histogram(ref, 0.5))?.counts).toEqual(old.counts);
    expect((await store.histogram(ref, 0.6))?.counts).toEqual(current.counts);
    await ch.close();
  });

  it('migrates a 0610 deployment without copying (two processes at once): its rows stay where they are and still count', async () => {
    const db = database();
    const first = await createClickHouse({ mode: 'embedded', path, database: db });
    const second = await createClickHouse({ mode: 'embedded', path, database: db });
    await migrate(
      first,
      migrations.filter((m) => m.id < '0650'),
    );
    // A flush the 0610 code wrote (its table, its key).
    const written = scoreHistogram([0.1, 0.7, 0.9], 0.5);
    await insert0610(first, [{ flushId: 'f-old', threshold: 0.5, histogram: written }]);
    const [a, b] = await Promise.all([migrate(first, migrations), migrate(second, migrations)]);
    expect([...a, ...b]).toContain('0650_score_histograms_v2');
    expect(await sortingKeys(first)).toEqual({
      score_histograms: 'model, model_version, window_start, flush_id',
      score_histograms_v2: 'model, model_version, window_start, threshold, flush_id',
    });
    expect(await first.select(`SELECT count() AS n FROM ${first.table('score_histograms')}`)).toEqual([{ n: 1 }]);

    const store = warehouseOn(first).estimates;
    const later = scoreHistogram([0.2, 0.6], 0.5);
    await store.insertHistograms([{ ref, threshold: 0.5, flushId: 'f-new', histogram: later }]);
    expect(await first.select(`SELECT flush_id FROM ${first.table('score_histograms_v2')}`)).toEqual([
      { flush_id: 'f-new' },
    ]);
    expect((await store.histogram(ref, 0.5))?.counts).toEqual(mergeScoreHistograms(written, later).counts);
    await first.close();
    await second.close();
  });

  it('counts a flush that landed in both tables once (a batch in flight retaken across a rolling deploy)', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const store = warehouseOn(ch).estimates;
    const both = scoreHistogram([0.1, 0.9, 0.95], 0.5);
    const other = scoreHistogram([0.4], 0.6);
    const oldOnly = scoreHistogram([0.3, 0.55], 0.5);
    // An old-code instance inserted flush f1 and died before acknowledging it; a new-code instance
    // took the same batch again and inserted it into the new table (its 0.6 group too, which the old
    // table had merged away). f2 only ever reached the old table.
    await insert0610(ch, [
      { flushId: 'f1', threshold: 0.5, histogram: both },
      { flushId: 'f2', threshold: 0.5, histogram: oldOnly },
    ]);
    await store.insertHistograms([
      { ref, threshold: 0.5, flushId: 'f1', histogram: both },
      { ref, threshold: 0.6, flushId: 'f1', histogram: other },
    ]);
    const want = mergeScoreHistograms(both, oldOnly);
    expect((await store.histogram(ref, 0.5))?.counts).toEqual(want.counts);
    expect((await store.histogram(ref, 0.6))?.counts).toEqual(other.counts);
    const scores = (h: { counts: readonly number[] }) => h.counts.reduce((x, y) => x + y, 0);
    expect(
      (await store.scoreTotals(ref.model)).map(({ modelVersion, windowStart, threshold, count }) => ({
        modelVersion,
        windowStart,
        threshold,
        count,
      })),
    ).toEqual([
      { modelVersion: 'v1', windowStart: ref.windowStart, threshold: 0.5, count: scores(want) },
      { modelVersion: 'v1', windowStart: ref.windowStart, threshold: 0.6, count: scores(other) },
    ]);
    expect(await store.scoreTotals('no-such-model')).toEqual([]);
    await ch.close();
  });
});

/** Rows as the 0610 code wrote them: into `score_histograms`, sparse slots. */
async function insert0610(
  ch: ClickHouse,
  flushes: ReadonlyArray<{ flushId: string; threshold: number; histogram: ScoreHistogram }>,
): Promise<void> {
  await ch.insert(
    'score_histograms',
    flushes.map(({ flushId, threshold, histogram }) => {
      const slots = [...histogram.counts.keys()].filter((slot) => histogram.counts[slot] !== 0);
      return {
        model: ref.model,
        model_version: ref.modelVersion,
        window_start: chTime(ref.windowStart),
        threshold,
        flush_id: flushId,
        slots,
        counts: slots.map((slot) => histogram.counts[slot]),
        sums: slots.map((slot) => histogram.sums[slot]),
        recorded_at: chTime(Date.now()),
      };
    }),
  );
}

async function sortingKeys(ch: ClickHouse): Promise<Record<string, string>> {
  const rows = await ch.select<{ name: string; sorting_key: string }>(
    `SELECT name, sorting_key FROM system.tables WHERE database = {db:String} AND name LIKE 'score_histograms%'`,
    { db: ch.database },
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.sorting_key]));
}

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
