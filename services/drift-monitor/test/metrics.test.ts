import { createMetricsRegistry, MAX_LABEL_VALUES, OTHER_LABEL_VALUE } from '@driftline/observability';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { driftMetrics } from '../src/metrics.js';

describe('drift metrics', () => {
  it('keep a bounded number of (model, feature) series whatever the models and features', async () => {
    const registry = createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false });
    const metrics = driftMetrics(registry);
    for (let i = 0; i < 5_000; i++) {
      metrics.statistic.set({ model: `m${i}`, feature: `f${i}` }, 0.1);
      metrics.drifted.set({ model: `m${i}`, feature: `f${i}` }, 0);
    }
    expect((await metrics.statistic.get()).values.length).toBe(MAX_LABEL_VALUES + 1);
    expect((await metrics.drifted.get()).values.length).toBe(MAX_LABEL_VALUES + 1);
  });

  it('keep a series of its own for every (model, feature) pair within the bound: a drifted pair is never folded (found by a review)', async () => {
    const registry = createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false });
    const metrics = driftMetrics(registry, 60_000);
    const models = MAX_LABEL_VALUES;
    const features = MAX_LABEL_VALUES;
    const drifted = { model: `m${models - 1}`, feature: `f${features - 1}` }; // the last pair set
    // Two windows, every pair renewed in each (nothing idles).
    for (let window = 0; window < 2; window++) {
      for (let m = 0; m < models; m++) {
        for (let f = 0; f < features; f++) {
          const pair = { model: `m${m}`, feature: `f${f}` };
          metrics.statistic.set(pair, (m * features + f) / (models * features));
          metrics.drifted.set(pair, pair.model === drifted.model && pair.feature === drifted.feature ? 1 : 0);
        }
      }
    }
    const values = (await metrics.drifted.get()).values;
    expect(values).toHaveLength(models * features);
    expect(values.filter((v) => v.labels.model === OTHER_LABEL_VALUE)).toEqual([]);
    expect(values.filter((v) => v.value === 1).map((v) => v.labels)).toEqual([drifted]);
    const statistic = (await metrics.statistic.get()).values.find(
      (v) => v.labels.model === 'm42' && v.labels.feature === 'f7',
    );
    expect(statistic?.value).toBe((42 * features + 7) / (models * features));
    const dropped = (await registry.getSingleMetric('driftline_metric_series_dropped_total')?.get())?.values;
    expect(dropped?.map((v) => v.value)).toEqual([0, 0]);
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('a feature set once per window keeps its place for three windows (series vanished between windows)', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
    const registry = createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false });
    const metrics = driftMetrics(registry, 3_600_000); // hourly windows
    for (let f = 0; f < MAX_LABEL_VALUES; f++) metrics.statistic.set({ model: 'a', feature: `f${f}` }, 0.1);
    vi.advanceTimersByTime(20 * 60_000); // another model's window closes 20 minutes later
    for (let f = 0; f < 10; f++) metrics.statistic.set({ model: 'a', feature: `g${f}` }, 0.2);
    const features = new Set((await metrics.statistic.get()).values.map((v) => v.labels.feature));
    expect(features.has('f0')).toBe(true);
    expect(features.has('g0')).toBe(false); // counted under __other__ until a place is idle three windows
  });
});
