import { describe, expect, it } from 'vitest';
import { benchStats } from '../bench/stats-bench.js';

describe('stats micro-benchmark', () => {
  it('runs at a tiny scale and reports the expected keys', async () => {
    const r = await benchStats({ runs: 1, referenceSize: 5000, valuesPerRun: 20000, closesPerRun: 2 });
    expect(Object.keys(r).sort()).toEqual([
      'drift.bytes_per_feature_window',
      'drift.ks_error_bound',
      'drift.values_per_s',
      'drift.window_close_us_drifted',
      'drift.window_close_us_no_drift',
      'drift.window_close_us_per_feature',
    ]);
    expect(r['drift.values_per_s']).toBeGreaterThan(0);
    expect(r['drift.bytes_per_feature_window']).toBeLessThan(16_000);
  });
});
