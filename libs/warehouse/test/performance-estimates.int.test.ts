import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fitIsotonicCalibration, mergeScoreHistograms, scoreHistogram } from '@driftline/performance';
import { describe, expect, it } from 'vitest';
import { createClickHouse, migrate, migrations, warehouseOn } from '../src/index.js';
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
